//! The survey service's schema, migrated at start.

use sea_orm::Schema;
use sea_orm_migration::prelude::*;

use crate::entities::{batch, survey, tally};

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(cezone_platform::access::audit::AuditLogMigration {
                name: "m0002_audit_log",
                service: "surveys",
            }),
            Box::new(RespondentKeysBytewise),
            Box::new(RespondentKeyIsPrimary),
            Box::new(LatestStatisticIndex),
            Box::new(StatisticReview),
            Box::new(PeriodLocks),
            Box::new(BatchReview),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("surveys_migrations").into_iden()
    }
}

pub const LOCK_KEY: i64 = 0x00ce_0003;

/// The statistics table as the first schema made it (before reviews).
mod statistic_v1 {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "surveys_statistics")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub org_unit: String,
        pub metric: String,
        pub period: i32,
        pub value: i64,
        pub version: i32,
        pub latest: bool,
        pub filed_by: String,
        pub note: String,
        pub filed_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Locked periods and the org units unlocked in them for a correction.
/// Survey batches get a review: batches filed before reviews existed stay accepted. Tallies
/// carry the answers still pending review, and a pending batch keeps its own counts until it is
/// decided.
struct BatchReview;

impl MigrationName for BatchReview {
    fn name(&self) -> &str {
        "m0008_batch_review"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for BatchReview {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, column, definition) in [
            (
                "surveys_batches",
                "state",
                "TEXT NOT NULL DEFAULT 'accepted'",
            ),
            ("surveys_batches", "filed_by", "TEXT NOT NULL DEFAULT ''"),
            ("surveys_batches", "period", "INTEGER NOT NULL DEFAULT 0"),
            ("surveys_batches", "reviewed_by", "TEXT NOT NULL DEFAULT ''"),
            ("surveys_batches", "reviewed_at", "TEXT NOT NULL DEFAULT ''"),
            (
                "surveys_batches",
                "review_comment",
                "TEXT NOT NULL DEFAULT ''",
            ),
            (
                "surveys_tallies",
                "pending_responses",
                "BIGINT NOT NULL DEFAULT 0",
            ),
            (
                "surveys_tallies",
                "pending_positive",
                "BIGINT NOT NULL DEFAULT 0",
            ),
        ] {
            // A database made by this release's first migration has them already.
            if !manager.has_column(table, column).await? {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {definition}"
                ))
                .await?;
            }
        }
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS surveys_batch_tallies (batch_id TEXT NOT NULL, \
             org_unit TEXT NOT NULL, question TEXT NOT NULL, responses BIGINT NOT NULL, \
             positive BIGINT NOT NULL, PRIMARY KEY (batch_id, org_unit, question))",
        )
        .await?;
        Ok(())
    }
}

struct PeriodLocks;

impl MigrationName for PeriodLocks {
    fn name(&self) -> &str {
        "m0007_period_locks"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for PeriodLocks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS surveys_period_locks (period INTEGER PRIMARY KEY, \
             reason TEXT NOT NULL, locked_by TEXT NOT NULL, locked_at TEXT NOT NULL, \
             revision BIGINT NOT NULL)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS surveys_unlocks (period INTEGER NOT NULL, \
             org_unit TEXT NOT NULL, reason TEXT NOT NULL, unlocked_by TEXT NOT NULL, \
             unlocked_at TEXT NOT NULL, PRIMARY KEY (period, org_unit))",
        )
        .await?;
        Ok(())
    }
}

/// Statistics get a review: figures filed before reviews existed stay accepted.
struct StatisticReview;

impl MigrationName for StatisticReview {
    fn name(&self) -> &str {
        "m0006_statistic_review"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for StatisticReview {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // One column per statement: SQLite adds one at a time.
        for column in [
            "state VARCHAR(16) NOT NULL DEFAULT 'accepted'",
            "reviewed_by TEXT NOT NULL DEFAULT ''",
            "reviewed_at TEXT NOT NULL DEFAULT ''",
            "review_comment TEXT NOT NULL DEFAULT ''",
        ] {
            db.execute_unprepared(&format!(
                "ALTER TABLE surveys_statistics ADD COLUMN {column}"
            ))
            .await?;
        }
        // The review queue: pending figures by period.
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS surveys_statistics_queue \
             ON surveys_statistics (state, period) WHERE latest",
        )
        .await?;
        Ok(())
    }
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
        // The transactional outbox: state changes and their events commit together.
        let backend = manager.get_database_backend();
        manager
            .get_connection()
            .execute_unprepared(&cezone_bus::outbox::create_table(backend, crate::OUTBOX))
            .await?;
        let schema = Schema::new(manager.get_database_backend());
        for mut stmt in [
            schema.create_table_from_entity(survey::Entity),
            schema.create_table_from_entity(response_v1::Entity),
            schema.create_table_from_entity(batch::Entity),
            schema.create_table_from_entity(tally::Entity),
            schema.create_table_from_entity(statistic_v1::Entity),
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
                response_v1::Entity.into_iden(),
                vec![
                    response_v1::Column::SurveyId.into_iden(),
                    response_v1::Column::RespondentId.into_iden(),
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
                statistic_v1::Entity.into_iden(),
                vec![
                    statistic_v1::Column::OrgUnit.into_iden(),
                    statistic_v1::Column::Metric.into_iden(),
                    statistic_v1::Column::Period.into_iden(),
                    statistic_v1::Column::Version.into_iden(),
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

/// The responses table as m0001 made it: a bigserial key beside the unique (survey, respondent)
/// index. Kept here so the first migration always makes the same table.
mod response_v1 {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "surveys_responses")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub survey_id: String,
        pub batch_id: String,
        pub respondent_id: String,
        pub org_unit: String,
        pub answers: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// (respondent, survey) becomes the responses' primary key and the bigserial goes: every row
/// written was inserted into two indexes, and nothing reads the serial. The respondent comes
/// first because it is what tells keys apart (one survey's keys all share their survey), and
/// the pages are filled up, as keys are only ever added; a survey's responses are counted from
/// its batches. The key keeps the name an upload's refusal is recognised by. SQLite cannot
/// drop a key column, so there the table is rebuilt.
struct RespondentKeyIsPrimary;

impl MigrationName for RespondentKeyIsPrimary {
    fn name(&self) -> &str {
        "m0004_respondent_key_is_primary"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for RespondentKeyIsPrimary {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE surveys_responses DROP CONSTRAINT surveys_responses_pkey; \
                     ALTER TABLE surveys_responses DROP COLUMN id; \
                     DROP INDEX surveys_responses_respondent; \
                     ALTER TABLE surveys_responses ADD CONSTRAINT surveys_responses_respondent \
                     PRIMARY KEY (respondent_id, survey_id) WITH (fillfactor = 100)",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE TABLE surveys_responses_m0004 (\
                     survey_id varchar NOT NULL, batch_id varchar NOT NULL, \
                     respondent_id varchar NOT NULL, org_unit varchar NOT NULL, \
                     answers varchar NOT NULL, \
                     CONSTRAINT surveys_responses_respondent PRIMARY KEY (respondent_id, survey_id)); \
                     INSERT INTO surveys_responses_m0004 \
                     SELECT survey_id, batch_id, respondent_id, org_unit, answers \
                     FROM surveys_responses ORDER BY id; \
                     DROP TABLE surveys_responses; \
                     ALTER TABLE surveys_responses_m0004 RENAME TO surveys_responses",
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// One latest version per (org unit, metric, period), found without reading the others: the
/// filing path looks the latest up and moves the flag for every statistic it files, and with
/// only the (…, version) key each lookup read every version ever filed.
struct LatestStatisticIndex;

impl MigrationName for LatestStatisticIndex {
    fn name(&self) -> &str {
        "m0005_latest_statistic_index"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for LatestStatisticIndex {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS surveys_statistics_latest \
                 ON surveys_statistics (org_unit, metric, period) WHERE latest",
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectionTrait, Database, Statement};

    const COLUMNS: &str = "survey_id, batch_id, respondent_id, org_unit, answers";

    /// Responses stored before m0004 keep every column, and the new key still refuses a second
    /// answer from a respondent to the same survey (and only to the same survey).
    async fn upgrading_keeps_the_responses_and_their_key(url: &str, refusal: &str) {
        let db = Database::connect(url).await.unwrap();
        Migrator::up(&db, Some(3)).await.unwrap();
        db.execute_unprepared(&format!(
            "INSERT INTO surveys_responses ({COLUMNS}) VALUES \
             ('s', 'b1', 'r1', 'c1', 'q=1'), ('s', 'b1', 'r2', 'c1', 'q=0'), \
             ('t', 'b2', 'r1', 'c2', 'q=1')"
        ))
        .await
        .unwrap();
        Migrator::up(&db, None).await.unwrap();

        let rows = db
            .query_all(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT {COLUMNS} FROM surveys_responses ORDER BY survey_id, respondent_id"
                ),
            ))
            .await
            .unwrap();
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                COLUMNS
                    .split(", ")
                    .map(|c| r.try_get::<String>("", c).unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(
            rows,
            [
                ["s", "b1", "r1", "c1", "q=1"],
                ["s", "b1", "r2", "c1", "q=0"],
                ["t", "b2", "r1", "c2", "q=1"],
            ]
        );
        let again = db
            .execute_unprepared(&format!(
                "INSERT INTO surveys_responses ({COLUMNS}) VALUES ('s', 'b3', 'r1', 'c1', 'q=0')"
            ))
            .await
            .unwrap_err();
        assert!(again.to_string().contains(refusal), "{again}");
        db.execute_unprepared(&format!(
            "INSERT INTO surveys_responses ({COLUMNS}) VALUES ('u', 'b3', 'r1', 'c1', 'q=0')"
        ))
        .await
        .unwrap();
        assert!(
            db.execute_unprepared("SELECT id FROM surveys_responses")
                .await
                .is_err(),
            "the serial column is gone"
        );
    }

    #[tokio::test]
    async fn upgrading_keeps_the_responses_and_their_key_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("cezone-m0004-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("surveys.db").display());
        upgrading_keeps_the_responses_and_their_key(
            &url,
            "UNIQUE constraint failed: surveys_responses.respondent_id, surveys_responses.survey_id",
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn upgrading_keeps_the_responses_and_their_key_on_postgres() {
        let url = cezone_platform::testing::fresh_postgres_database().await;
        upgrading_keeps_the_responses_and_their_key(
            &url,
            "duplicate key value violates unique constraint \"surveys_responses_respondent\"",
        )
        .await;
    }
}
