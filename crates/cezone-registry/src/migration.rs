//! The registry's schema, migrated at start.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use crate::entities::{account, framework_version, org_unit, refresh_token};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(cezone_platform::access::audit::AuditLogMigration {
                name: "m0002_audit_log",
                service: "registry",
            }),
            Box::new(Accounts),
            Box::new(AccountEmail),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("registry_migrations").into_iden()
    }
}

/// Advisory-lock key of the registry's migrations on PostgreSQL.
pub const LOCK_KEY: i64 = 0x00ce_0001;

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
                    .create_table_from_entity(framework_version::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registry_framework_versions_id_edition")
                    .table(framework_version::Entity)
                    .col(framework_version::Column::FrameworkId)
                    .col(framework_version::Column::Edition)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(org_unit::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registry_org_units_parent")
                    .table(org_unit::Entity)
                    .col(org_unit::Column::ParentId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}

/// People's accounts and their refresh tokens.
struct Accounts;

impl MigrationName for Accounts {
    fn name(&self) -> &str {
        "m0003_accounts"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Accounts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        manager
            .create_table(
                schema
                    .create_table_from_entity(account::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                schema
                    .create_table_from_entity(refresh_token::Entity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registry_refresh_tokens_login")
                    .table(refresh_token::Entity)
                    .col(refresh_token::Column::Login)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Accounts get an e-mail address (for reminders). A database made after the entity gained the
/// column already has it from m0003.
struct AccountEmail;

impl MigrationName for AccountEmail {
    fn name(&self) -> &str {
        "m0004_account_email"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for AccountEmail {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_column("registry_accounts", "email").await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(account::Entity)
                    .add_column(ColumnDef::new(account::Column::Email).string().null())
                    .to_owned(),
            )
            .await
    }
}
