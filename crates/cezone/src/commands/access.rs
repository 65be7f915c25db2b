//! `cezone token issue`, `cezone keys`, `cezone audit verify` (`audit list` is in its own
//! module), and the credentials the other commands call the services with.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cezone_domain::access::{Principal, Role};
use cezone_domain::org::OrgUnitId;
use cezone_domain::units::UnitId;
use cezone_platform::access::auth::{Bearer, Keys};
use cezone_platform::settings::Settings;

use crate::cli::{AuditCommand, KeysCommand, ServiceName, TokenCommand};

/// The credentials of a command: the token in `CEZONE_TOKEN` when set, or else one minted
/// with the registry's signing keys for the operator running the command (as district_admin,
/// so the key file must be readable: the registry's machine, the operator's own).
pub fn credentials(settings: &Settings) -> Result<Bearer> {
    let tls = cezone_platform::tls::client_config(&settings.grpc)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if let Ok(token) = std::env::var("CEZONE_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(Bearer::token(&token)?.with_tls(tls));
    }
    let keys = Keys::load_existing(&settings.auth).context(
        "no CEZONE_TOKEN is set and the registry's signing keys (auth.signing_keys_file) cannot be read",
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

pub fn keys(cmd: KeysCommand) -> Result<ExitCode> {
    use cezone_platform::access::auth::keyset::{KeySet, to_jwks};
    let config = match &cmd {
        KeysCommand::List { config }
        | KeysCommand::Rotate { config, .. }
        | KeysCommand::Public { config } => config.clone(),
    };
    let settings = Settings::load(config.as_deref())?;
    let auth = &settings.auth;
    let path = &auth.signing_keys_file;
    let now = chrono::Utc::now().timestamp();
    let zone = settings.scheduler.utc_offset_hours;
    let local = |t: i64| local(t, zone);
    // A replaced key verifies for as long as a token it signed can live.
    let keep = (auth.max_token_minutes * 60 + auth.leeway_seconds) as i64;
    match cmd {
        KeysCommand::List { .. } => {
            let set = KeySet::read(path)?;
            let current = set.current(now).map(|k| k.kid.clone());
            use crate::render::fit;
            println!(
                "{} {} 状态 state",
                fit("密钥 key id", 28),
                fit("签发起始 signs from", 27)
            );
            for (i, k) in set.keys.iter().enumerate() {
                let state = if Some(&k.kid) == current.as_ref() {
                    "签发中 signing".to_string()
                } else if k.active_from > now {
                    "待启用 next".to_string()
                } else {
                    let replaced = set.keys.get(i + 1).map_or(now, |n| n.active_from);
                    format!("仅验证 verifies until {}", local(replaced + keep))
                };
                println!(
                    "{} {} {state}",
                    fit(&k.kid, 28),
                    fit(&local(k.active_from), 27)
                );
            }
        }
        KeysCommand::Rotate { activate_in, .. } => {
            let minutes = activate_in.unwrap_or_else(|| {
                (2 * auth.keys_refresh_seconds + auth.leeway_seconds).div_ceil(60)
            });
            if minutes > 10_080 {
                bail!("--activate-in {minutes} must be at most 10080 (a week)");
            }
            let mut set = if path.exists() {
                KeySet::read(path)?
            } else {
                KeySet::default()
            };
            let from = now + minutes as i64 * 60;
            let (key, dropped) = set.rotate(now, from, keep)?;
            set.write(path)?;
            println!(
                "新密钥 new key {} signs from {} ({minutes} min); {} key(s) kept",
                key.kid,
                local(from),
                set.keys.len()
            );
            for kid in dropped {
                println!("已删除 dropped {kid}: every token it signed has expired");
            }
            eprintln!(
                "the registry re-reads {} within {} s; the other services fetch the new public key as often",
                path.display(),
                auth.keys_refresh_seconds
            );
        }
        KeysCommand::Public { .. } => {
            let set = KeySet::read(path)?;
            println!("{}", to_jwks(&set.public()?));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A time in the district's zone, with the offset.
fn local(t: i64, hours: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(hours * 3600)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"));
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&offset)
        .format("%Y-%m-%d %H:%M:%S%:z")
        .to_string()
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
        let v = cezone_platform::access::audit::verify(&db, name)
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
