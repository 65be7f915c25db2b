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
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("scheduler_migrations").into_iden()
    }
}

pub const LOCK_KEY: i64 = 0x00ce_0005;

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
