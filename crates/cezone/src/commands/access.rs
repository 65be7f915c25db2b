//! `cezone token issue`, `cezone audit verify` (`audit list` is in its own module), and the credentials the other commands call
//! the services with.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cezone_domain::access::{Principal, Role};
use cezone_domain::org::OrgUnitId;
use cezone_domain::units::UnitId;
use cezone_platform::auth::{Bearer, Keys};
use cezone_platform::settings::Settings;

use crate::cli::{AuditCommand, ServiceName, TokenCommand};

/// The credentials of a command: the token in `CEZONE_TOKEN` when set, or else one minted
/// from the deployment's key for the operator running the command (as district_admin, so
/// the key file must be readable: it is the operator's own machine).
pub fn credentials(settings: &Settings) -> Result<Bearer> {
    let tls = cezone_platform::tls::client_config(&settings.grpc)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if let Ok(token) = std::env::var("CEZONE_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(Bearer::token(&token)?.with_tls(tls));
    }
    let keys = Keys::load_existing(&settings.auth).context(
        "no CEZONE_TOKEN is set and the deployment's key (auth.secret or auth.secret_file) cannot be read",
    )?;
    let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let who = Principal::new(&format!("cli:{user}"), Role::DistrictAdmin, None, None)
        .map_err(anyhow::Error::msg)?;
    Ok(Bearer::minted(keys, who).with_tls(tls))
}

pub fn token(cmd: TokenCommand) -> Result<ExitCode> {
    let TokenCommand::Issue {
        subject,
        role,
        unit,
        org_unit,
        minutes,
        config,
    } = cmd;
    let settings = Settings::load(config.as_deref())?;
    let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("--role: {e}"))?;
    let unit = unit
        .map(|u| UnitId::parse(&u))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--unit: {e}"))?;
    let org_unit = org_unit
        .map(|o| OrgUnitId::parse(&o))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--org-unit: {e}"))?;
    let who = Principal::new(&subject, role, unit, org_unit).map_err(anyhow::Error::msg)?;
    let minutes = minutes.unwrap_or(settings.auth.token_minutes);
    if !(1..=43_200).contains(&minutes) {
        bail!("--minutes {minutes} must be between 1 and 43200 (30 days)");
    }
    let keys = Keys::load_existing(&settings.auth)?;
    println!("{}", keys.issue(&who, minutes as i64 * 60)?);
    eprintln!("token for {} valid {minutes} minutes", who.describe());
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(cmd: AuditCommand) -> Result<ExitCode> {
    let (services, config) = match cmd {
        AuditCommand::Verify { services, config } => (services, config),
        AuditCommand::List {
            services,
            actor,
            action,
            target,
            since,
            until,
            limit,
            format,
            config,
        } => {
            let filter = super::audit_list::Filter {
                actor,
                action,
                target,
                since,
                until,
                limit,
            };
            return super::audit_list::run(services, filter, format, config.as_deref()).await;
        }
    };
    let settings = Settings::load(config.as_deref())?;
    let services: Vec<ServiceName> = if services.is_empty() {
        ServiceName::ALL
            .into_iter()
            .filter(|s| *s != ServiceName::Web)
            .collect()
    } else {
        services
    };
    let mut intact = true;
    for s in services {
        if s == ServiceName::Web {
            bail!("the web page keeps no audit log");
        }
        let name = s.name();
        let db = cezone_platform::db::connect(&settings.database, name)
            .await
            .with_context(|| format!("the {name} database"))?;
        let v = cezone_platform::audit::verify(&db, name)
            .await
            .with_context(|| format!("reading the {name} audit log"))?;
        match &v.broken {
            None => println!(
                "{name:<10} intact    {} entries, head {}",
                v.entries,
                v.head.as_deref().unwrap_or("-")
            ),
            Some((seq, reason)) => {
                intact = false;
                println!("{name:<10} BROKEN    at entry {seq}: {reason}");
            }
        }
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
