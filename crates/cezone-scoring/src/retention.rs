//! Bounded growth: applied change records and remembered event ids older than the retention
//! are deleted once an hour. (Published outbox rows are the relay's to purge.) A redelivered
//! event whose id was forgotten is harmless: facts only ever move to a newer version.

use std::time::Duration;

use cezone_platform::settings::BusSettings;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;

use crate::changes;
use crate::facts_db::stmt;

const EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub retention: Duration,
}

impl From<&BusSettings> for Settings {
    fn from(b: &BusSettings) -> Settings {
        Settings {
            retention: b.retention(),
        }
    }
}

pub async fn run(db: DatabaseConnection, settings: Settings, shutdown: CancellationToken) {
    loop {
        match purge(&db, settings.retention).await {
            Ok((0, 0)) => {}
            Ok((changes, events)) => tracing::info!(
                changes,
                events,
                "change records and event ids past the retention deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot purge past the retention"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Deletes what is older than `retention`; returns (change records, event ids) deleted.
pub async fn purge(db: &DatabaseConnection, retention: Duration) -> Result<(u64, u64), DbErr> {
    let before = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| chrono::Utc::now().checked_sub_signed(r))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let changes = changes::purge(db, &before).await?;
    let events = db
        .execute(stmt(
            db.get_database_backend(),
            "DELETE FROM scoring_processed_events WHERE processed_at < ?",
            vec![before.into()],
        ))
        .await?
        .rows_affected();
    Ok((changes, events))
}
