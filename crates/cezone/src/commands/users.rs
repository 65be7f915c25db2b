//! `cezone user add|list|disable|reset-password` and `cezone login`: people's accounts in the
//! registry, over its API. The account commands call with the command's credentials
//! (`CEZONE_TOKEN`, or a district_admin token minted from the deployment's key on the
//! operator's machine: how the first account of an empty system is made); `login` needs none.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cezone_platform::settings::Settings;
use cezone_proto::common::v1::PageRequest;
use cezone_proto::registry::v1 as pr;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;

use super::connect::{Services, refused};
use crate::cli::{LoginArgs, OutputFormat, UserCommand};
use crate::render::{fit, local_time};

/// A password from the first line of standard input, or asked on the terminal (twice when
/// `confirm`), never echoed.
fn read_password(from_stdin: bool, confirm: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(password);
    }
    let term = console::Term::stderr();
    if !term.is_term() {
        bail!(
            "no terminal to ask for the password on: give it on standard input with --password-stdin"
        );
    }
    term.write_str("password: ")?;
    let password = term.read_secure_line()?;
    if confirm {
        term.write_str("password again: ")?;
        if term.read_secure_line()? != password {
            bail!("the two passwords differ; nothing was changed");
        }
    }
    if password.is_empty() {
        bail!("no password given; nothing was changed");
    }
    Ok(password)
}

fn scope(a: &pr::Account) -> String {
    [a.unit.as_str(), a.org_unit.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn state(a: &pr::Account, offset: i32) -> String {
    if !a.active {
        "disabled".into()
    } else if !a.locked_until.is_empty() {
        format!("locked until {}", local_time(&a.locked_until, offset))
    } else {
        "active".into()
    }
}

fn describe(a: &pr::Account) -> String {
    let scope = scope(a);
    let email = if a.email.is_empty() {
        String::new()
    } else {
        format!(", reminders to {}", a.email)
    };
    if scope.is_empty() {
        format!("{} ({}, {}{email})", a.login, a.display_name, a.role)
    } else {
        format!(
            "{} ({}, {} {scope}{email})",
            a.login, a.display_name, a.role
        )
    }
}

pub async fn run(cmd: UserCommand) -> Result<ExitCode> {
    match cmd {
        UserCommand::Add {
            login,
            name,
            role,
            unit,
            org_unit,
            email,
            password_stdin,
            config,
        } => {
            let services = Services::load(config.as_deref())?;
            let password = read_password(password_stdin, true)?;
            let mut registry = services.registry().await?;
            let a = registry
                .create_account(pr::CreateAccountRequest {
                    login,
                    display_name: name,
                    role,
                    unit: unit.unwrap_or_default(),
                    org_unit: org_unit.unwrap_or_default(),
                    password,
                    email: email.unwrap_or_default(),
                })
                .await
                .map_err(|s| refused("adding the account", s))?
                .into_inner();
            println!("added {}", describe(&a));
        }
        UserCommand::Update {
            login,
            name,
            email,
            config,
        } => {
            let services = Services::load(config.as_deref())?;
            let mut registry = services.registry().await?;
            let a = registry
                .update_account(pr::UpdateAccountRequest {
                    login,
                    display_name: name,
                    email,
                })
                .await
                .map_err(|s| refused("updating the account", s))?
                .into_inner();
            println!("updated {}", describe(&a));
        }
        UserCommand::List { format, config } => {
            let services = Services::load(config.as_deref())?;
            let mut registry = services.registry().await?;
            let mut accounts = Vec::new();
            let mut token = String::new();
            loop {
                let page = registry
                    .list_accounts(pr::ListAccountsRequest {
                        page: Some(PageRequest {
                            page_size: 1000,
                            page_token: token,
                        }),
                    })
                    .await
                    .map_err(|s| refused("listing the accounts", s))?
                    .into_inner();
                accounts.extend(page.accounts);
                token = page.page.map(|p| p.next_page_token).unwrap_or_default();
                if token.is_empty() {
                    break;
                }
            }
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&accounts)?),
                OutputFormat::Text => {
                    let offset = services.settings.scheduler.utc_offset_hours;
                    println!(
                        "{} {} {} {} {} last sign-in",
                        fit("login", 20),
                        fit("name", 16),
                        fit("role", 18),
                        fit("scope", 24),
                        fit("state", 34),
                    );
                    for a in &accounts {
                        println!(
                            "{} {} {} {} {} {}",
                            fit(&a.login, 20),
                            fit(&a.display_name, 16),
                            fit(&a.role, 18),
                            fit(&scope(a), 24),
                            fit(&state(a, offset), 34),
                            if a.last_login_at.is_empty() {
                                "-".to_string()
                            } else {
                                local_time(&a.last_login_at, offset)
                            },
                        );
                    }
                    eprintln!("{} account(s)", accounts.len());
                }
            }
        }
        UserCommand::Disable { login, config } => {
            let services = Services::load(config.as_deref())?;
            let mut registry = services.registry().await?;
            let a = registry
                .disable_account(pr::DisableAccountRequest { login })
                .await
                .map_err(|s| refused("disabling the account", s))?
                .into_inner();
            println!("disabled {}", describe(&a));
        }
        UserCommand::Enable { login, config } => {
            let services = Services::load(config.as_deref())?;
            let mut registry = services.registry().await?;
            let a = registry
                .enable_account(pr::EnableAccountRequest { login })
                .await
                .map_err(|s| refused("enabling the account", s))?
                .into_inner();
            println!("enabled {}", describe(&a));
        }
        UserCommand::ResetPassword {
            login,
            password_stdin,
            config,
        } => {
            let services = Services::load(config.as_deref())?;
            let new_password = read_password(password_stdin, true)?;
            let mut registry = services.registry().await?;
            let a = registry
                .reset_password(pr::ResetPasswordRequest {
                    login,
                    new_password,
                })
                .await
                .map_err(|s| refused("resetting the password", s))?
                .into_inner();
            println!(
                "new password set for {}; unlocked, and its refresh tokens ended",
                describe(&a)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs in (no token needed) and prints the access token alone on standard output.
pub async fn login(args: LoginArgs) -> Result<ExitCode> {
    let settings = Settings::load(args.config.as_deref())?;
    let password = read_password(args.password_stdin, false)?;
    let url = &settings.services.registry_url;
    let tls = cezone_platform::tls::client_config(&settings.grpc)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let channel = cezone_platform::channel::endpoint(url, &tls)?
        .connect()
        .await
        .with_context(|| format!("the registry at {url} (services.registry_url)"))?;
    let signed_in = RegistryServiceClient::new(channel)
        .login(pr::LoginRequest {
            login: args.login,
            password,
        })
        .await
        .map_err(|s| refused("signing in", s))?
        .into_inner();
    println!("{}", signed_in.access_token);
    if let Some(a) = &signed_in.account {
        eprintln!(
            "signed in as {}; the token is valid until {} (export it as CEZONE_TOKEN)",
            describe(a),
            local_time(&signed_in.expires_at, settings.scheduler.utc_offset_hours)
        );
    }
    Ok(ExitCode::SUCCESS)
}
