//! The scoring service's schema, migrated at start.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use crate::entities::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(SnapshotReadiness),
            Box::new(cezone_platform::access::audit::AuditLogMigration {
                name: "m0003_audit_log",
                service: "scoring",
            }),
            Box::new(ChangeLog),
            Box::new(StatFactState),
            Box::new(TallyPending),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("scoring_migrations").into_iden()
    }
}

pub const LOCK_KEY: i64 = 0x00ce_0004;

struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn index(name: &str, table: DynIden, cols: Vec<DynIden>, unique: bool) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table).if_not_exists();
    if unique {
        i.unique();
    }
    for c in cols {
        i.col(c);
    }
    i.to_owned()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = Schema::new(manager.get_database_backend());
        for mut stmt in [
            schema.create_table_from_entity(framework::Entity),
            schema.create_table_from_entity(org_unit::Entity),
            schema.create_table_from_entity(stat_fact::Entity),
            schema.create_table_from_entity(tally_fact::Entity),
            schema.create_table_from_entity(evidence_fact::Entity),
            schema.create_table_from_entity(cell::Entity),
            schema.create_table_from_entity(run::Entity),
            schema.create_table_from_entity(snapshot::Entity),
            schema.create_table_from_entity(snapshot_cell::Entity),
            schema.create_table_from_entity(processed_event::Entity),
        ] {
            manager
                .create_table(stmt.if_not_exists().to_owned())
                .await?;
        }
        manager
            .create_index(index(
                "scoring_stat_facts_key",
                stat_fact::Entity.into_iden(),
                vec![
                    stat_fact::Column::OrgUnit.into_iden(),
                    stat_fact::Column::Metric.into_iden(),
                    stat_fact::Column::Period.into_iden(),
                ],
                true,
            ))
            .await?;
        manager
            .create_index(index(
                "scoring_tally_facts_key",
                tally_fact::Entity.into_iden(),
                vec![
                    tally_fact::Column::SurveyId.into_iden(),
                    tally_fact::Column::OrgUnit.into_iden(),
                    tally_fact::Column::Question.into_iden(),
                    tally_fact::Column::Period.into_iden(),
                ],
                true,
            ))
            .await?;
        manager
            .create_index(index(
                "scoring_cells_unit",
                cell::Entity.into_iden(),
                vec![
                    cell::Column::OrgUnit.into_iden(),
                    cell::Column::Item.into_iden(),
                ],
                true,
            ))
            .await?;
        let backend = manager.get_database_backend();
        manager
            .get_connection()
            .execute_unprepared(&cezone_bus::outbox::create_table(backend, crate::OUTBOX))
            .await?;
        manager
            .create_index(index(
                "scoring_snapshot_cells_unit",
                snapshot_cell::Entity.into_iden(),
                vec![
                    snapshot_cell::Column::SnapshotId.into_iden(),
                    snapshot_cell::Column::OrgUnit.into_iden(),
                    snapshot_cell::Column::Item.into_iden(),
                ],
                true,
            ))
            .await
    }
}

/// Frozen snapshots keep the readiness report of their moment.
struct SnapshotReadiness;

impl MigrationName for SnapshotReadiness {
    fn name(&self) -> &str {
        "m0002_snapshot_readiness"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for SnapshotReadiness {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Databases created by the initial migration of this release already have it.
        if manager
            .has_column("scoring_snapshots", "readiness_json")
            .await?
        {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(snapshot::Entity)
                    .add_column(
                        ColumnDef::new(snapshot::Column::ReadinessJson)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await
    }
}

/// The typed change log replaces the fact log: the scorer applies records as they are, in an
/// order nothing can appear behind (see `changes`). Unread fact-log rows need nothing: the
/// first start after this migration loads the whole read model, which holds their facts.
struct ChangeLog;

impl MigrationName for ChangeLog {
    fn name(&self) -> &str {
        "m0004_change_log"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for ChangeLog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(crate::changes::create_tables(
            manager.get_database_backend(),
        ))
        .await?;
        db.execute_unprepared("DROP TABLE IF EXISTS scoring_fact_log")
            .await?;
        Ok(())
    }
}

/// Statistics carry their review; the ones stored before were accepted as filed.
struct StatFactState;

impl MigrationName for StatFactState {
    fn name(&self) -> &str {
        "m0005_stat_fact_state"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for StatFactState {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Databases created by the initial migration of this release already have it.
        if manager.has_column("scoring_stat_facts", "state").await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(stat_fact::Entity)
                    .add_column(
                        ColumnDef::new(stat_fact::Column::State)
                            .integer()
                            .not_null()
                            .default(2),
                    )
                    .to_owned(),
            )
            .await
    }
}

/// Survey tallies carry the answers of batches still pending review.
struct TallyPending;

impl MigrationName for TallyPending {
    fn name(&self) -> &str {
        "m0006_tally_pending"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for TallyPending {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Databases created by the initial migration of this release already have them.
        if manager
            .has_column("scoring_tally_facts", "pending_responses")
            .await?
        {
            return Ok(());
        }
        for column in [
            tally_fact::Column::PendingResponses,
            tally_fact::Column::PendingPositive,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(tally_fact::Entity)
                        .add_column(ColumnDef::new(column).big_integer().not_null().default(0))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
