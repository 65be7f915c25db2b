//! The evidence service's schema, migrated at start.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use crate::entities::{blob, record, version};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(cezone_platform::access::audit::AuditLogMigration {
                name: "m0002_audit_log",
                service: "evidence",
            }),
            Box::new(Closures),
            Box::new(PeriodLocks),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("evidence_migrations").into_iden()
    }
}

/// Periods closed by a frozen snapshot of the closing checkpoint.
struct Closures;

impl MigrationName for Closures {
    fn name(&self) -> &str {
        "m0003_closures"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Closures {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(crate::closures::TABLE_SQL)
            .await?;
        Ok(())
    }
}

/// Locked periods as the survey service announces them.
struct PeriodLocks;

impl MigrationName for PeriodLocks {
    fn name(&self) -> &str {
        "m0004_period_locks"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for PeriodLocks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(crate::period_locks::TABLE_SQL)
            .await?;
        Ok(())
    }
}

pub const LOCK_KEY: i64 = 0x00ce_0002;

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The transactional outbox: state changes and their events commit together.
        let backend = manager.get_database_backend();
        manager
            .get_connection()
            .execute_unprepared(&cezone_bus::outbox::create_table(backend, crate::OUTBOX))
            .await?;
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(record::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(version::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(blob::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("evidence_versions_record_version")
                    .table(version::Entity)
                    .col(version::Column::EvidenceId)
                    .col(version::Column::Version)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("evidence_records_criterion")
                    .table(record::Entity)
                    .col(record::Column::FrameworkId)
                    .col(record::Column::Criterion)
                    .col(record::Column::OrgUnit)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
