//! The scheduler's own table: one row per planned run done (or manual run), naming the run
//! that did it. A row is written in the same transaction that holds the checkpoint's lock, so a
//! run either happened and is recorded, or is done again.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, DatabaseBackend, QueryOrder, Statement};
use sea_orm_migration::prelude::*;
use sha2::{Digest, Sha256};

pub mod run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "scheduler_runs")]
    pub struct Model {
        /// A planned run's key, or a manual run's.
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        /// The run that did it (itself, or the later run that covered a missed one).
        pub done_by: String,
        pub checkpoint: String,
        pub trigger: String,
        pub snapshot_id: String,
        pub total_confirmed: String,
        pub total_projected: String,
        pub started_at: String,
        pub finished_at: String,
        pub key_short: i32,
        pub units_owing: i32,
        pub slots_missing: i32,
        pub slots_late: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(cezone_platform::access::audit::AuditLogMigration {
                name: "m0002_audit_log",
                service: "scheduler",
            }),
            Box::new(Notifications),
            Box::new(NotificationEmail),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("scheduler_migrations").into_iden()
    }
}

pub const LOCK_KEY: i64 = 0x00ce_0005;

/// Reminders, one per run, responsible unit and org unit (the key keeps them once).
struct Notifications;

impl MigrationName for Notifications {
    fn name(&self) -> &str {
        "m0003_notifications"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Notifications {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let id = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "BIGSERIAL PRIMARY KEY",
            _ => "INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        db.execute_unprepared(&format!(
            "CREATE TABLE IF NOT EXISTS scheduler_notifications (id {id}, \
             run_key TEXT NOT NULL, checkpoint TEXT NOT NULL, responsible_unit TEXT NOT NULL, \
             org_unit TEXT NOT NULL, materials_missing INTEGER NOT NULL, \
             materials_late INTEGER NOT NULL, statistics_missing INTEGER NOT NULL, \
             statistics_returned INTEGER NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL, \
             UNIQUE (run_key, responsible_unit, org_unit))"
        ))
        .await?;
        Ok(())
    }
}

/// Each reminder's e-mail: its state, attempts, claim and outcome. Reminders made before
/// stay "off": nobody is mailed about an old run.
struct NotificationEmail;

impl MigrationName for NotificationEmail {
    fn name(&self) -> &str {
        "m0004_notification_email"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for NotificationEmail {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for column in [
            "email_state TEXT NOT NULL DEFAULT 'off'",
            "email_attempts INTEGER NOT NULL DEFAULT 0",
            "email_claimed_at TEXT",
            "emailed_to TEXT",
            "emailed_at TEXT",
            "email_error TEXT",
        ] {
            db.execute_unprepared(&format!(
                "ALTER TABLE scheduler_notifications ADD COLUMN {column}"
            ))
            .await?;
        }
        Ok(())
    }
}

/// A reminder whose e-mail is to be sent.
#[derive(Debug, Clone)]
pub struct PendingEmail {
    pub id: i64,
    pub checkpoint: String,
    pub responsible_unit: String,
    pub org_unit: String,
    pub text: String,
}

/// Reminders waiting for their e-mail (or whose claim expired before `expired_before`),
/// oldest first, at most 200 a look.
pub async fn pending_emails(
    c: &impl ConnectionTrait,
    expired_before: &str,
) -> Result<Vec<PendingEmail>, DbErr> {
    let rows = c
        .query_all(cezone_platform::db::stmt(
            c.get_database_backend(),
            "SELECT id, checkpoint, responsible_unit, org_unit, text FROM scheduler_notifications \
             WHERE email_state = 'pending' \
                OR (email_state = 'sending' AND email_claimed_at < ?) \
             ORDER BY id LIMIT 200",
            vec![expired_before.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(PendingEmail {
                id: r.try_get("", "id")?,
                checkpoint: r.try_get("", "checkpoint")?,
                responsible_unit: r.try_get("", "responsible_unit")?,
                org_unit: r.try_get("", "org_unit")?,
                text: r.try_get("", "text")?,
            })
        })
        .collect()
}

/// Takes reminder `id` for sending; false when another scheduler has it.
pub async fn claim_email(
    c: &impl ConnectionTrait,
    id: i64,
    now: &str,
    expired_before: &str,
) -> Result<bool, DbErr> {
    let done = c
        .execute(cezone_platform::db::stmt(
            c.get_database_backend(),
            "UPDATE scheduler_notifications SET email_state = 'sending', email_claimed_at = ? \
             WHERE id = ? AND (email_state = 'pending' \
                OR (email_state = 'sending' AND email_claimed_at < ?))",
            vec![now.into(), id.into(), expired_before.into()],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the outcome of reminder `id`'s e-mail: "sent" (to `to`) or "no_recipient".
pub async fn email_done(
    c: &impl ConnectionTrait,
    id: i64,
    state: &str,
    to: &str,
    at: &str,
) -> Result<(), DbErr> {
    c.execute(cezone_platform::db::stmt(
        c.get_database_backend(),
        "UPDATE scheduler_notifications SET email_state = ?, emailed_to = ?, emailed_at = ?, \
         email_error = NULL WHERE id = ?",
        vec![state.into(), to.into(), at.into(), id.into()],
    ))
    .await?;
    Ok(())
}

/// A failed attempt at reminder `id`'s e-mail: tried again later, given up after
/// `crate::mail::MAX_ATTEMPTS`.
pub async fn email_failed(c: &impl ConnectionTrait, id: i64, reason: &str) -> Result<(), DbErr> {
    c.execute(cezone_platform::db::stmt(
        c.get_database_backend(),
        &format!(
            "UPDATE scheduler_notifications SET email_attempts = email_attempts + 1, \
             email_state = CASE WHEN email_attempts + 1 >= {} THEN 'failed' ELSE 'pending' END, \
             email_error = ? WHERE id = ?",
            crate::mail::MAX_ATTEMPTS
        ),
        vec![
            reason.chars().take(500).collect::<String>().into(),
            id.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A reminder to store with its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    pub responsible_unit: String,
    pub org_unit: String,
    pub materials_missing: u32,
    pub materials_late: u32,
    pub statistics_missing: u32,
    pub statistics_returned: u32,
    pub text: String,
}

/// Stores the run's reminders (in the run's transaction: once with the run); their e-mails
/// wait to be sent when `email` (an SMTP server is configured).
pub async fn remind(
    c: &impl ConnectionTrait,
    run_key: &str,
    checkpoint: &str,
    created_at: &str,
    reminders: &[Reminder],
    email: bool,
) -> Result<(), DbErr> {
    for r in reminders {
        c.execute(cezone_platform::db::stmt(
            c.get_database_backend(),
            "INSERT INTO scheduler_notifications (run_key, checkpoint, responsible_unit, org_unit, \
             materials_missing, materials_late, statistics_missing, statistics_returned, text, \
             created_at, email_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (run_key, responsible_unit, org_unit) DO NOTHING",
            vec![
                run_key.into(),
                checkpoint.into(),
                r.responsible_unit.clone().into(),
                r.org_unit.clone().into(),
                (r.materials_missing as i32).into(),
                (r.materials_late as i32).into(),
                (r.statistics_missing as i32).into(),
                (r.statistics_returned as i32).into(),
                r.text.clone().into(),
                created_at.into(),
                if email { "pending" } else { "off" }.into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// The newest reminders, at most `limit`, of `unit` (and `org_unit`) when given.
pub async fn notifications(
    c: &impl ConnectionTrait,
    unit: Option<&str>,
    org_unit: Option<&str>,
    limit: u32,
) -> Result<Vec<cezone_proto::scheduler::v1::Notification>, DbErr> {
    let mut sql = "SELECT id, run_key, checkpoint, responsible_unit, org_unit, materials_missing, \
                   materials_late, statistics_missing, statistics_returned, text, created_at, \
                   email_state, emailed_to, emailed_at FROM scheduler_notifications WHERE 1 = 1"
        .to_string();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    if let Some(u) = unit {
        sql.push_str(" AND responsible_unit = ?");
        values.push(u.into());
    }
    if let Some(o) = org_unit {
        sql.push_str(" AND org_unit = ?");
        values.push(o.into());
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
    let rows = c
        .query_all(cezone_platform::db::stmt(
            c.get_database_backend(),
            &sql,
            values,
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n = |f: &str| -> Result<u32, DbErr> { Ok(r.try_get::<i32>("", f)?.max(0) as u32) };
        out.push(cezone_proto::scheduler::v1::Notification {
            id: r.try_get("", "id")?,
            run_key: r.try_get("", "run_key")?,
            checkpoint: r.try_get("", "checkpoint")?,
            responsible_unit: r.try_get("", "responsible_unit")?,
            org_unit: r.try_get("", "org_unit")?,
            materials_missing: n("materials_missing")?,
            materials_late: n("materials_late")?,
            statistics_missing: n("statistics_missing")?,
            statistics_returned: n("statistics_returned")?,
            text: r.try_get("", "text")?,
            created_at: r.try_get("", "created_at")?,
            email_state: r.try_get("", "email_state")?,
            emailed_to: r
                .try_get::<Option<String>>("", "emailed_to")?
                .unwrap_or_default(),
            emailed_at: r
                .try_get::<Option<String>>("", "emailed_at")?
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = sea_orm::Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(run::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Every recorded row, oldest first.
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<run::Model>, DbErr> {
    run::Entity::find()
        .order_by_asc(run::Column::StartedAt)
        .all(db)
        .await
}

/// On PostgreSQL, takes the checkpoint's lock for the rest of the transaction, or says another
/// replica holds it. SQLite serves one process, whose transactions already exclude each other.
pub async fn try_lock_checkpoint(
    txn: &impl ConnectionTrait,
    checkpoint: &str,
) -> Result<bool, DbErr> {
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(true);
    }
    let row = txn
        .query_one(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS locked",
            [lock_id(checkpoint).into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("pg_try_advisory_xact_lock returned no row".into()))?;
    row.try_get("", "locked")
}

/// A stable 64-bit lock id per checkpoint, apart from the migration locks.
fn lock_id(checkpoint: &str) -> i64 {
    let digest = Sha256::digest(format!("cezone-scheduler/{checkpoint}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}
