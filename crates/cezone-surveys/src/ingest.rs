//! Bulk ingestion of survey responses: every row checked (row numbers count from 1 across the
//! whole call), written in batches inside one transaction — COPY on PostgreSQL, multi-row
//! INSERT on SQLite — so a rejected call stores nothing.

use cezone_domain::access::Principal;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use cezone_domain::org::{OrgLevel, OrgTree, OrgUnitId};
use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use cezone_proto::surveys::v1 as ps;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, Set, TransactionTrait,
};

use crate::definitions::SurveyDef;
use crate::entities::{batch, response, tally};
use cezone_proto::events::v1 as ev;

/// One checked response, ready to write.
#[derive(Debug, Clone)]
pub struct Row {
    pub number: u64,
    pub respondent: String,
    pub org_unit: String,
    pub answers: String,
}

/// Checks one response against the survey and the org tree; counts it into `tallies`.
pub fn check_response(
    survey: &SurveyDef,
    tree: &OrgTree,
    number: u64,
    r: &ps::Response,
    seen: &mut HashSet<String>,
    tallies: &mut HashMap<(String, usize), (u64, u64)>,
) -> Result<Row, ApiError> {
    let field = |f: &str| format!("responses[{number}].{f}");
    let rid = r.respondent_id.trim();
    if rid.is_empty() || rid.len() > 64 || rid.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            &field("respondent_id"),
            format!(
                "row {number}: '{}' is not a respondent id (1 to 64 printable characters)",
                r.respondent_id.escape_debug()
            ),
        ));
    }
    if !seen.insert(rid.to_string()) {
        return Err(ApiError::invalid(
            &field("respondent_id"),
            format!("row {number}: respondent '{rid}' appears twice in this upload"),
        ));
    }
    let known = OrgUnitId::parse(&r.org_unit)
        .ok()
        .and_then(|id| tree.find(&id))
        .filter(|&i| tree.unit(i).level == OrgLevel::Community);
    if known.is_none() {
        return Err(ApiError::invalid(
            &field("org_unit"),
            format!(
                "row {number}: '{}' is not a known community",
                r.org_unit.escape_debug()
            ),
        ));
    }
    if r.answers.is_empty() {
        return Err(ApiError::invalid(
            &field("answers"),
            format!("row {number}: the response has no answers"),
        ));
    }
    let mut given = vec![None::<i32>; survey.questions.len()];
    for a in &r.answers {
        let Some((qi, q)) = survey.question(&a.question) else {
            return Err(ApiError::invalid(
                &field("answers"),
                format!(
                    "row {number}: '{}' is not a question of survey {}",
                    a.question.escape_debug(),
                    survey.id
                ),
            ));
        };
        if given[qi].is_some() {
            return Err(ApiError::invalid(
                &field("answers"),
                format!("row {number}: '{}' is answered twice", q.id),
            ));
        }
        q.judge(a.value)
            .map_err(|e| ApiError::invalid(&field("answers"), format!("row {number}: {e}")))?;
        given[qi] = Some(a.value);
    }
    let mut answers = String::new();
    for (qi, v) in given.iter().enumerate() {
        let Some(v) = v else { continue };
        let q = &survey.questions[qi];
        let positive = q.judge(*v).unwrap_or(false);
        let t = tallies.entry((r.org_unit.clone(), qi)).or_default();
        t.0 += 1;
        t.1 += u64::from(positive);
        if !answers.is_empty() {
            answers.push(';');
        }
        let _ = write!(answers, "{}={v}", q.id);
    }
    Ok(Row {
        number,
        respondent: rid.to_string(),
        org_unit: r.org_unit.clone(),
        answers,
    })
}

/// Writes chunks of checked rows on its own task, in the call's one transaction, while the
/// call reads and checks the next chunk: reading the stream and writing to the database
/// overlap instead of taking turns.
#[derive(Debug)]
pub struct Pipelined {
    chunks: Option<tokio::sync::mpsc::Sender<Vec<Row>>>,
    task: tokio::task::JoinHandle<Result<Writer, ApiError>>,
}

impl Pipelined {
    pub fn start(writer: Writer, survey: String, batch_id: String) -> Pipelined {
        // One chunk waiting beside the one being written bounds the memory held.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Row>>(1);
        let task = tokio::spawn(async move {
            let mut writer = writer;
            while let Some(rows) = rx.recv().await {
                writer.check_new(&survey, &rows).await?;
                writer.write(&survey, &batch_id, &rows).await?;
            }
            Ok(writer)
        });
        Pipelined {
            chunks: Some(tx),
            task,
        }
    }

    /// Hands a chunk over; false when the writer stopped on an error, which `finish` returns.
    pub async fn send(&self, rows: Vec<Row>) -> bool {
        match &self.chunks {
            Some(tx) => tx.send(rows).await.is_ok(),
            None => false,
        }
    }

    /// Waits until every chunk handed over is written: the transaction to finish, or the
    /// first error.
    pub async fn finish(mut self) -> Result<Writer, ApiError> {
        self.chunks.take();
        (&mut self.task).await.map_err(|e| {
            tracing::error!(error = %e, "survey writer task failed");
            ApiError::internal_msg("the responses could not be written".to_string())
        })?
    }
}

impl Drop for Pipelined {
    /// A call dropped before `finish` (its client went away) stops writing at once; the
    /// transaction is dropped with the task and rolls back.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The open transaction a call writes into.
pub enum Writer {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sea(DatabaseTransaction),
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Writer::Postgres(_) => "Writer::Postgres",
            Writer::Sea(_) => "Writer::Sea",
        })
    }
}

fn pg(e: sqlx::Error) -> ApiError {
    ApiError::internal(e)
}

/// COPY text format: backslash, tab, newline and carriage return escaped.
pub fn copy_field(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

impl Writer {
    pub async fn begin(db: &DatabaseConnection) -> Result<Writer, ApiError> {
        Ok(match db.get_database_backend() {
            DatabaseBackend::Postgres => Writer::Postgres(
                db.get_postgres_connection_pool()
                    .begin()
                    .await
                    .map_err(pg)?,
            ),
            _ => Writer::Sea(db.begin().await?),
        })
    }

    /// Refuses rows whose respondent already answered this survey in an earlier call.
    pub async fn check_new(&mut self, survey: &str, rows: &[Row]) -> Result<(), ApiError> {
        let ids: Vec<String> = rows.iter().map(|r| r.respondent.clone()).collect();
        let existing: Vec<String> = match self {
            Writer::Postgres(tx) => sqlx::query_scalar::<_, String>(
                "SELECT respondent_id FROM surveys_responses WHERE survey_id = $1 AND respondent_id = ANY($2)",
            )
            .bind(survey)
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await
            .map_err(pg)?,
            Writer::Sea(tx) => response::Entity::find()
                .filter(response::Column::SurveyId.eq(survey))
                .filter(response::Column::RespondentId.is_in(ids))
                .all(tx)
                .await?
                .into_iter()
                .map(|m| m.respondent_id)
                .collect(),
        };
        if let Some(dup) = rows.iter().find(|r| existing.contains(&r.respondent)) {
            return Err(ApiError::invalid(
                &format!("responses[{}].respondent_id", dup.number),
                format!(
                    "row {}: respondent '{}' already answered survey {survey}",
                    dup.number, dup.respondent
                ),
            ));
        }
        Ok(())
    }

    pub async fn write(
        &mut self,
        survey: &str,
        batch_id: &str,
        rows: &[Row],
    ) -> Result<(), ApiError> {
        match self {
            Writer::Postgres(tx) => {
                let mut buf = String::with_capacity(rows.len() * 96);
                for r in rows {
                    copy_field(&mut buf, survey);
                    buf.push('\t');
                    copy_field(&mut buf, batch_id);
                    buf.push('\t');
                    copy_field(&mut buf, &r.respondent);
                    buf.push('\t');
                    copy_field(&mut buf, &r.org_unit);
                    buf.push('\t');
                    copy_field(&mut buf, &r.answers);
                    buf.push('\n');
                }
                let mut copy = (**tx)
                    .copy_in_raw("COPY surveys_responses (survey_id, batch_id, respondent_id, org_unit, answers) FROM STDIN")
                    .await
                    .map_err(pg)?;
                copy.send(buf.as_bytes()).await.map_err(pg)?;
                copy.finish().await.map_err(pg)?;
            }
            Writer::Sea(tx) => {
                // SQLite allows 32,766 parameters per statement: 5 per row.
                for chunk in rows.chunks(6000) {
                    response::Entity::insert_many(chunk.iter().map(|r| response::ActiveModel {
                        survey_id: Set(survey.to_string()),
                        batch_id: Set(batch_id.to_string()),
                        respondent_id: Set(r.respondent.clone()),
                        org_unit: Set(r.org_unit.clone()),
                        answers: Set(r.answers.clone()),
                        ..Default::default()
                    }))
                    .exec(tx)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Records the batch, adds its counts to the tallies (each changed tally's version goes up)
    /// and enqueues the `survey.batch_aggregated` event with the new totals, then commits.
    pub async fn finish(
        self,
        who: &Principal,
        survey: &SurveyDef,
        batch_id: &str,
        accepted: u64,
        tallies: &HashMap<(String, usize), (u64, u64)>,
    ) -> Result<(), ApiError> {
        let mut keys: Vec<_> = tallies.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let mut totals = Vec::with_capacity(keys.len());
        let tally_event = |org: &str, qi: usize, (n, k, v): (i64, i64, i64)| ev::SurveyTally {
            survey_id: survey.id.clone(),
            org_unit: org.to_string(),
            question: survey.questions[qi].id.to_string(),
            period: survey.period,
            responses: n as u64,
            positive: k as u64,
            version: v as u64,
        };
        let event = |totals: Vec<ev::SurveyTally>| {
            let payload = ev::SurveyBatchAggregated {
                survey_id: survey.id.clone(),
                batch_id: batch_id.to_string(),
                responses: accepted,
                tallies: totals,
            };
            cezone_bus::envelope("survey.batch_aggregated", "surveys", &payload, None)
        };
        let org_units: std::collections::BTreeSet<&str> =
            keys.iter().map(|((o, _), _)| o.as_str()).collect();
        let audit = cezone_platform::audit::Entry {
            actor: who,
            action: "survey.responses_ingested",
            target: batch_id,
            details: serde_json::json!({
                "survey": survey.id,
                "period": survey.period,
                "responses": accepted,
                "org_units": org_units,
            }),
        };
        match self {
            Writer::Postgres(mut tx) => {
                sqlx::query("INSERT INTO surveys_batches (id, survey_id, responses, received_at) VALUES ($1, $2, $3, $4)")
                    .bind(batch_id)
                    .bind(&survey.id)
                    .bind(accepted as i64)
                    .bind(now_rfc3339())
                    .execute(&mut *tx)
                    .await
                    .map_err(pg)?;
                for ((org, qi), (n, k)) in keys {
                    let row: (i64, i64, i64) = sqlx::query_as(
                        "INSERT INTO surveys_tallies (survey_id, org_unit, question, period, responses, positive, version) \
                         VALUES ($1, $2, $3, $4, $5, $6, 1) \
                         ON CONFLICT (survey_id, org_unit, question, period) DO UPDATE SET \
                         responses = surveys_tallies.responses + excluded.responses, \
                         positive = surveys_tallies.positive + excluded.positive, \
                         version = surveys_tallies.version + 1 \
                         RETURNING responses, positive, version",
                    )
                    .bind(&survey.id)
                    .bind(org)
                    .bind(survey.questions[*qi].id.as_str())
                    .bind(survey.period)
                    .bind(*n as i64)
                    .bind(*k as i64)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(pg)?;
                    totals.push(tally_event(org, *qi, row));
                }
                let env = event(totals);
                sqlx::query(&format!(
                    "INSERT INTO {} (event_id, event_type, envelope, created_at) VALUES ($1, $2, $3, $4)",
                    crate::OUTBOX
                ))
                .bind(&env.event_id)
                .bind(&env.r#type)
                .bind(cezone_bus::encode(&env))
                .bind(now_rfc3339())
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
                let table = cezone_platform::audit::table("surveys");
                sqlx::query(cezone_platform::audit::PG_LOCK_SQL)
                    .bind(&table)
                    .execute(&mut *tx)
                    .await
                    .map_err(pg)?;
                let last: Option<(i64, String)> =
                    sqlx::query_as(&cezone_platform::audit::last_sql("surveys"))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(pg)?;
                let s = cezone_platform::audit::seal(&audit, last);
                sqlx::query(&cezone_platform::audit::insert_sql(
                    "surveys",
                    sea_orm::DatabaseBackend::Postgres,
                ))
                .bind(s.seq)
                .bind(s.at)
                .bind(s.actor)
                .bind(s.action)
                .bind(s.target)
                .bind(s.details)
                .bind(s.prev_hash)
                .bind(s.hash)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
                tx.commit().await.map_err(pg)?;
            }
            Writer::Sea(tx) => {
                batch::Entity::insert(batch::ActiveModel {
                    id: Set(batch_id.to_string()),
                    survey_id: Set(survey.id.clone()),
                    responses: Set(accepted as i64),
                    received_at: Set(now_rfc3339()),
                })
                .exec(&tx)
                .await?;
                for ((org, qi), (n, k)) in keys {
                    let question = survey.questions[*qi].id.to_string();
                    tally::Entity::insert(tally::ActiveModel {
                        survey_id: Set(survey.id.clone()),
                        org_unit: Set(org.clone()),
                        question: Set(question.clone()),
                        period: Set(survey.period),
                        responses: Set(*n as i64),
                        positive: Set(*k as i64),
                        version: Set(1),
                        ..Default::default()
                    })
                    .on_conflict(
                        OnConflict::columns([
                            tally::Column::SurveyId,
                            tally::Column::OrgUnit,
                            tally::Column::Question,
                            tally::Column::Period,
                        ])
                        .value(
                            tally::Column::Responses,
                            Expr::cust("surveys_tallies.responses + excluded.responses"),
                        )
                        .value(
                            tally::Column::Positive,
                            Expr::cust("surveys_tallies.positive + excluded.positive"),
                        )
                        .value(
                            tally::Column::Version,
                            Expr::cust("surveys_tallies.version + 1"),
                        )
                        .to_owned(),
                    )
                    .exec(&tx)
                    .await?;
                    let row = tally::Entity::find()
                        .filter(tally::Column::SurveyId.eq(&survey.id))
                        .filter(tally::Column::OrgUnit.eq(org.as_str()))
                        .filter(tally::Column::Question.eq(question.as_str()))
                        .filter(tally::Column::Period.eq(survey.period))
                        .one(&tx)
                        .await?
                        .ok_or_else(|| ApiError::internal_msg("an upserted tally is missing"))?;
                    totals.push(tally_event(
                        org,
                        *qi,
                        (row.responses, row.positive, row.version),
                    ));
                }
                cezone_bus::outbox::enqueue(&tx, crate::OUTBOX, &event(totals)).await?;
                cezone_platform::audit::append(&tx, "surveys", audit).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_escape_the_separators() {
        let mut s = String::new();
        copy_field(&mut s, "a\tb\\c\nd");
        assert_eq!(s, "a\\tb\\\\c\\nd");
    }
}
