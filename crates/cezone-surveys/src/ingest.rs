//! Bulk ingestion of survey responses: every row checked (row numbers count from 1 across the
//! whole call), written in batches inside one transaction — COPY on PostgreSQL, multi-row
//! INSERT on SQLite — so a rejected call stores nothing.

use cezone_domain::access::Principal;
use std::collections::HashMap;
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

/// Per org unit, one (responses, positive) count per question of the survey, in its order.
/// (foldhash, seeded per map: the keys come from an authenticated caller, and SipHash was a
/// tenth of the upload's CPU.)
pub type Tallies = foldhash::HashMap<String, Vec<(u64, u64)>>;

/// The respondents of one upload so far, to refuse a second answer within it.
pub type Seen = foldhash::HashSet<String>;

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
    r: ps::Response,
    seen: &mut Seen,
    tallies: &mut Tallies,
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
    // One lookup per row, and a key allocated once per org unit.
    if !tallies.contains_key(&r.org_unit) {
        tallies.insert(r.org_unit.clone(), vec![(0, 0); survey.questions.len()]);
    }
    let counts = tallies
        .get_mut(&r.org_unit)
        .expect("the org unit's counts were just inserted");
    let mut answers = String::new();
    for (qi, v) in given.iter().enumerate() {
        let Some(v) = v else { continue };
        let q = &survey.questions[qi];
        let positive = q.judge(*v).unwrap_or(false);
        let t = &mut counts[qi];
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
        org_unit: r.org_unit,
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
                writer = writer.write(&survey, &batch_id, &rows).await?;
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
    /// The transaction, and the pool a refused chunk looks up committed rows in.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>, sqlx::PgPool),
    Sea(DatabaseTransaction),
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Writer::Postgres(..) => "Writer::Postgres",
            Writer::Sea(_) => "Writer::Sea",
        })
    }
}

fn pg(e: sqlx::Error) -> ApiError {
    ApiError::internal(e)
}

/// The unique index on (survey, respondent) refused a row.
fn is_answered_twice(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.constraint() == Some("surveys_responses_respondent"))
}

/// The first of `rows` whose respondent is among `existing`, refused with its row number.
fn refuse_answered(survey: &str, rows: &[Row], existing: &[String]) -> Result<(), ApiError> {
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

/// COPY text format: backslash, tab, newline and carriage return escaped.
pub fn copy_field(out: &mut String, s: &str) {
    // Runs without a separator are copied whole; the separators are ASCII, so every split
    // falls on a character boundary.
    let mut rest = s;
    while let Some(at) = rest
        .bytes()
        .position(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

impl Writer {
    pub async fn begin(db: &DatabaseConnection) -> Result<Writer, ApiError> {
        Ok(match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let pool = db.get_postgres_connection_pool();
                Writer::Postgres(pool.begin().await.map_err(pg)?, pool.clone())
            }
            _ => Writer::Sea(db.begin().await?),
        })
    }

    /// Refuses rows whose respondent already answered this survey in an earlier call (SQLite;
    /// on PostgreSQL the unique index refuses them during the COPY, see `write`).
    async fn check_new(
        tx: &DatabaseTransaction,
        survey: &str,
        rows: &[Row],
    ) -> Result<(), ApiError> {
        let ids: Vec<String> = rows.iter().map(|r| r.respondent.clone()).collect();
        let existing: Vec<String> = response::Entity::find()
            .filter(response::Column::SurveyId.eq(survey))
            .filter(response::Column::RespondentId.is_in(ids))
            .all(tx)
            .await?
            .into_iter()
            .map(|m| m.respondent_id)
            .collect();
        refuse_answered(survey, rows, &existing)
    }

    /// Writes one chunk; the writer comes back for the next one.
    pub async fn write(
        self,
        survey: &str,
        batch_id: &str,
        rows: &[Row],
    ) -> Result<Writer, ApiError> {
        match self {
            Writer::Postgres(mut tx, pool) => {
                let mut prefix = String::new();
                copy_field(&mut prefix, survey);
                prefix.push('\t');
                copy_field(&mut prefix, batch_id);
                prefix.push('\t');
                let mut buf = String::with_capacity(rows.len() * 128);
                for r in rows {
                    buf.push_str(&prefix);
                    copy_field(&mut buf, &r.respondent);
                    buf.push('\t');
                    copy_field(&mut buf, &r.org_unit);
                    buf.push('\t');
                    copy_field(&mut buf, &r.answers);
                    buf.push('\n');
                }
                let copied = async {
                    let mut copy = (*tx)
                        .copy_in_raw("COPY surveys_responses (survey_id, batch_id, respondent_id, org_unit, answers) FROM STDIN")
                        .await?;
                    copy.send(buf.as_bytes()).await?;
                    copy.finish().await
                }
                .await;
                // The unique index refuses a respondent who answered in an earlier call, so no
                // lookup precedes each chunk. Only a refused chunk looks for the rows to name,
                // among committed rows (a concurrent call's rows are seen once it committed,
                // which is when the index refuses them).
                if let Err(e) = copied {
                    if !is_answered_twice(&e) {
                        return Err(pg(e));
                    }
                    // Rolled back first: its connection is free for the lookup, even in a
                    // pool of one.
                    if let Err(e) = tx.rollback().await {
                        tracing::warn!(error = %e, "rolling back a refused survey upload failed");
                    }
                    let ids: Vec<&str> = rows.iter().map(|r| r.respondent.as_str()).collect();
                    let existing: Vec<String> = sqlx::query_scalar(
                        "SELECT respondent_id FROM surveys_responses WHERE survey_id = $1 AND respondent_id = ANY($2)",
                    )
                    .bind(survey)
                    .bind(&ids)
                    .fetch_all(&pool)
                    .await
                    .map_err(pg)?;
                    refuse_answered(survey, rows, &existing)?;
                    return Err(ApiError::precondition(format!(
                        "a respondent of this upload already answered survey {survey}"
                    )));
                }
                Ok(Writer::Postgres(tx, pool))
            }
            Writer::Sea(tx) => {
                Writer::check_new(&tx, survey, rows).await?;
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
                    .exec(&tx)
                    .await?;
                }
                Ok(Writer::Sea(tx))
            }
        }
    }

    /// Records the batch, adds its counts to the tallies (each changed tally's version goes up)
    /// and enqueues the `survey.batch_aggregated` event with the new totals, then commits.
    pub async fn finish(
        self,
        who: &Principal,
        survey: &SurveyDef,
        batch_id: &str,
        accepted: u64,
        tallies: &Tallies,
    ) -> Result<(), ApiError> {
        // (org unit, question index, responses, positive) in key order, the order rows lock in.
        let mut keys: Vec<(&String, usize, u64, u64)> = tallies
            .iter()
            .flat_map(|(org, counts)| {
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| *n > 0)
                    .map(move |(qi, (n, k))| (org, qi, *n, *k))
            })
            .collect();
        keys.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
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
            tallies.keys().map(String::as_str).collect();
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
            Writer::Postgres(mut tx, _) => {
                sqlx::query("INSERT INTO surveys_batches (id, survey_id, responses, received_at) VALUES ($1, $2, $3, $4)")
                    .bind(batch_id)
                    .bind(&survey.id)
                    .bind(accepted as i64)
                    .bind(now_rfc3339())
                    .execute(&mut *tx)
                    .await
                    .map_err(pg)?;
                // Every tally in one statement: the counts travel as arrays, one per column.
                let orgs: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
                let questions: Vec<&str> = keys
                    .iter()
                    .map(|k| survey.questions[k.1].id.as_str())
                    .collect();
                let ns: Vec<i64> = keys.iter().map(|k| k.2 as i64).collect();
                let ks: Vec<i64> = keys.iter().map(|k| k.3 as i64).collect();
                let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
                    "INSERT INTO surveys_tallies (survey_id, org_unit, question, period, responses, positive, version) \
                     SELECT $1, o, q, $2, n, k, 1 FROM unnest($3::varchar[], $4::varchar[], $5::int8[], $6::int8[]) AS t(o, q, n, k) \
                     ON CONFLICT (survey_id, org_unit, question, period) DO UPDATE SET \
                     responses = surveys_tallies.responses + excluded.responses, \
                     positive = surveys_tallies.positive + excluded.positive, \
                     version = surveys_tallies.version + 1 \
                     RETURNING org_unit, question, responses, positive, version",
                )
                .bind(&survey.id)
                .bind(survey.period)
                .bind(&orgs)
                .bind(&questions)
                .bind(&ns)
                .bind(&ks)
                .fetch_all(&mut *tx)
                .await
                .map_err(pg)?;
                let stored: HashMap<(&str, &str), (i64, i64, i64)> = rows
                    .iter()
                    .map(|(o, q, n, k, v)| ((o.as_str(), q.as_str()), (*n, *k, *v)))
                    .collect();
                for (org, qi, ..) in &keys {
                    let row = stored
                        .get(&(org.as_str(), survey.questions[*qi].id.as_str()))
                        .ok_or_else(|| ApiError::internal_msg("an upserted tally is missing"))?;
                    totals.push(tally_event(org, *qi, *row));
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
                for (org, qi, n, k) in keys {
                    let question = survey.questions[qi].id.to_string();
                    tally::Entity::insert(tally::ActiveModel {
                        survey_id: Set(survey.id.clone()),
                        org_unit: Set(org.clone()),
                        question: Set(question.clone()),
                        period: Set(survey.period),
                        responses: Set(n as i64),
                        positive: Set(k as i64),
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
                        qi,
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

    /// The character-by-character escaping `copy_field` must agree with.
    fn escaped_char_by_char(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn copy_fields_escape_like_the_char_by_char_rule(s in "(\\PC|[\\\\\t\n\r社区])*") {
            let mut out = String::from("prefix\t");
            copy_field(&mut out, &s);
            proptest::prop_assert_eq!(out, format!("prefix\t{}", escaped_char_by_char(&s)));
        }
    }
}
