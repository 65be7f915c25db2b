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
            Box::new(cezone_platform::audit::AuditLogMigration {
                name: "m0002_audit_log",
                service: "scheduler",
            }),
            Box::new(Notifications),
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

/// Stores the run's reminders (in the run's transaction: once with the run).
pub async fn remind(
    c: &impl ConnectionTrait,
    run_key: &str,
    checkpoint: &str,
    created_at: &str,
    reminders: &[Reminder],
) -> Result<(), DbErr> {
    for r in reminders {
        c.execute(cezone_platform::db::stmt(
            c.get_database_backend(),
            "INSERT INTO scheduler_notifications (run_key, checkpoint, responsible_unit, org_unit, \
             materials_missing, materials_late, statistics_missing, statistics_returned, text, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
                   materials_late, statistics_missing, statistics_returned, text, created_at \
                   FROM scheduler_notifications WHERE 1 = 1"
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
