//! The survey service's schema, migrated at start.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use crate::entities::{batch, response, statistic, survey, tally};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(cezone_platform::audit::AuditLogMigration {
                name: "m0002_audit_log",
                service: "surveys",
            }),
            Box::new(RespondentKeysBytewise),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("surveys_migrations").into_iden()
    }
}

pub const LOCK_KEY: i64 = 0x00ce_0003;

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
        for mut stmt in [
            schema.create_table_from_entity(survey::Entity),
            schema.create_table_from_entity(response::Entity),
            schema.create_table_from_entity(batch::Entity),
            schema.create_table_from_entity(tally::Entity),
            schema.create_table_from_entity(statistic::Entity),
        ] {
            manager
                .create_table(stmt.if_not_exists().to_owned())
                .await?;
        }
        let unique = |name: &str, table: DynIden, cols: Vec<DynIden>| {
            let mut i = Index::create();
            i.name(name).table(table).unique().if_not_exists();
            for c in cols {
                i.col(c);
            }
            i.to_owned()
        };
        manager
            .create_index(unique(
                "surveys_responses_respondent",
                response::Entity.into_iden(),
                vec![
                    response::Column::SurveyId.into_iden(),
                    response::Column::RespondentId.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(unique(
                "surveys_tallies_key",
                tally::Entity.into_iden(),
                vec![
                    tally::Column::SurveyId.into_iden(),
                    tally::Column::OrgUnit.into_iden(),
                    tally::Column::Question.into_iden(),
                    tally::Column::Period.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(unique(
                "surveys_statistics_key",
                statistic::Entity.into_iden(),
                vec![
                    statistic::Column::OrgUnit.into_iden(),
                    statistic::Column::Metric.into_iden(),
                    statistic::Column::Period.into_iden(),
                    statistic::Column::Version.into_iden(),
                ],
            ))
            .await
    }
}

/// The key a response is refused twice by, (survey, respondent), compared byte by byte on
/// PostgreSQL. Ids are matched for equality, never shown sorted, and every chunk of an upload
/// checks each row against the index: the database's locale collation (strcoll) made that
/// check cost as much as writing the row. SQLite already compares bytes.
struct RespondentKeysBytewise;

impl MigrationName for RespondentKeysBytewise {
    fn name(&self) -> &str {
        "m0003_respondent_keys_bytewise"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for RespondentKeysBytewise {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE surveys_responses \
                 ALTER COLUMN survey_id TYPE varchar COLLATE \"C\", \
                 ALTER COLUMN respondent_id TYPE varchar COLLATE \"C\"",
            )
            .await?;
        Ok(())
    }
}
