//! Bulk ingestion of survey responses: every row checked (row numbers count from 1 across the
//! whole call) and written while the next rows are read, inside one transaction — one COPY on
//! PostgreSQL, multi-row INSERTs on SQLite — so a rejected call stores nothing.

use cezone_domain::access::Principal;
use std::collections::HashMap;
use std::hash::BuildHasher as _;

use cezone_domain::org::{OrgLevel, OrgTree, OrgUnitId};
use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use cezone_proto::surveys::v1 as psv;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, Set, TransactionTrait,
};

use crate::definitions::SurveyDef;
use crate::entities::{batch, response, tally};
use cezone_proto::events::v1 as ev;

/// A stored tally: responses, positive, version, pending responses, pending positive.
pub type TallyRow = (i64, i64, i64, i64, i64);

/// Per org unit, one (responses, positive) count per question of the survey, in its order.
/// (foldhash, seeded per map: the keys come from an authenticated caller, and SipHash was a
/// tenth of the upload's CPU.)
pub type Tallies = foldhash::HashMap<String, Vec<(u64, u64)>>;

/// The respondents of one upload so far, each with the row it first came in: a second answer
/// within the upload is refused, and a respondent who answered in an earlier call is named by
/// its row. The ids are kept back to back in one string, not one allocation each: at a million
/// rows a map of strings was a tenth of the upload's CPU, most of it allocating and rehashing.
#[derive(Default)]
pub struct Seen {
    ids: String,
    table: hashbrown::HashTable<Seat>,
    hasher: foldhash::fast::RandomState,
}

/// One respondent: where its id is in `Seen::ids`, its hash and its row.
#[derive(Clone, Copy)]
struct Seat {
    hash: u64,
    start: usize,
    len: usize,
    row: u64,
}

impl Seat {
    fn id<'s>(&self, ids: &'s str) -> &'s str {
        &ids[self.start..self.start + self.len]
    }
}

impl Seen {
    /// The row `respondent` first came in; when it is new, it is recorded as `row` and the
    /// answer is None.
    pub fn first_or_insert(&mut self, respondent: &str, row: u64) -> Option<u64> {
        let hash = self.hasher.hash_one(respondent);
        let ids = &self.ids;
        if let Some(seat) = self.table.find(hash, |s| s.id(ids) == respondent) {
            return Some(seat.row);
        }
        let start = self.ids.len();
        self.ids.push_str(respondent);
        let seat = Seat {
            hash,
            start,
            len: respondent.len(),
            row,
        };
        self.table.insert_unique(hash, seat, |s| s.hash);
        None
    }

    /// The row `respondent` came in, if it did.
    pub fn row(&self, respondent: &str) -> Option<u64> {
        let hash = self.hasher.hash_one(respondent);
        self.table
            .find(hash, |s| s.id(&self.ids) == respondent)
            .map(|s| s.row)
    }

    /// Every respondent, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.table.iter().map(|s| s.id(&self.ids))
    }
}

/// One checked response as SQLite writes it.
#[derive(Debug, Clone)]
pub struct Row {
    pub number: u64,
    pub respondent: String,
    pub org_unit: String,
    pub answers: String,
}

/// Checks the responses of one call against the survey and the org tree, and counts them.
pub struct Checker<'a> {
    survey: &'a SurveyDef,
    tree: &'a OrgTree,
    pub seen: Seen,
    pub tallies: Tallies,
    /// The last checked response's value per question, in the survey's order.
    given: Vec<Option<i32>>,
}

impl<'a> Checker<'a> {
    pub fn new(survey: &'a SurveyDef, tree: &'a OrgTree) -> Checker<'a> {
        Checker {
            survey,
            tree,
            seen: Seen::default(),
            tallies: Tallies::default(),
            given: vec![None; survey.questions.len()],
        }
    }

    /// Checks response `number` and counts it into the tallies; a refused response counts
    /// nowhere.
    pub fn check(&mut self, number: u64, r: &psv::Response) -> Result<(), ApiError> {
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
        let known = OrgUnitId::parse(&r.org_unit)
            .ok()
            .and_then(|id| self.tree.find(&id))
            .filter(|&i| self.tree.unit(i).level == OrgLevel::Community);
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
        let survey = self.survey;
        self.given.fill(None);
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
            if self.given[qi].is_some() {
                return Err(ApiError::invalid(
                    &field("answers"),
                    format!("row {number}: '{}' is answered twice", q.id),
                ));
            }
            q.judge(a.value)
                .map_err(|e| ApiError::invalid(&field("answers"), format!("row {number}: {e}")))?;
            self.given[qi] = Some(a.value);
        }
        // Last, so that a refused row is not remembered.
        if let Some(first) = self.seen.first_or_insert(rid, number) {
            return Err(ApiError::invalid(
                &field("respondent_id"),
                format!(
                    "row {number}: respondent '{rid}' appears twice in this upload (first in row {first})"
                ),
            ));
        }
        // One lookup per row, and a key allocated once per org unit.
        if !self.tallies.contains_key(&r.org_unit) {
            self.tallies
                .insert(r.org_unit.clone(), vec![(0, 0); survey.questions.len()]);
        }
        let counts = self
            .tallies
            .get_mut(&r.org_unit)
            .expect("the org unit's counts were just inserted");
        for (qi, v) in self.given.iter().enumerate() {
            let Some(v) = v else { continue };
            let positive = survey.questions[qi].judge(*v).unwrap_or(false);
            let t = &mut counts[qi];
            t.0 += 1;
            t.1 += u64::from(positive);
        }
        Ok(())
    }

    /// The answers of the response just checked, "awareness=1;satisfaction=4" in the survey's
    /// question order. Question ids are lowercase letters, digits and '_', so the text needs no
    /// COPY escaping.
    fn write_answers(&self, out: &mut String) {
        let mut first = true;
        for (qi, v) in self.given.iter().enumerate() {
            let Some(v) = v else { continue };
            if !first {
                out.push(';');
            }
            first = false;
            out.push_str(self.survey.questions[qi].id.as_str());
            out.push('=');
            match u8::try_from(*v) {
                Ok(d @ 0..=9) => out.push(char::from(b'0' + d)),
                _ => out.push_str(&v.to_string()),
            }
        }
    }
}

/// A chunk of checked responses on its way to the writer.
#[derive(Debug)]
enum Chunk {
    /// PostgreSQL: the rows as COPY text lines.
    Copy(String),
    /// SQLite: the rows to insert.
    Rows(Vec<Row>),
}

/// Writes chunks of checked rows on its own task, in the call's one transaction, while the
/// call reads and checks the next chunk: reading the stream and writing to the database
/// overlap instead of taking turns.
#[derive(Debug)]
pub struct Pipelined {
    chunks: Option<tokio::sync::mpsc::Sender<Chunk>>,
    task: tokio::task::JoinHandle<Result<Writer, Refused>>,
    /// Cancelled when the call is dropped before `finish`.
    abandoned: tokio_util::sync::CancellationToken,
    /// The chunk being filled, and how many rows it holds.
    filling: Chunk,
    filled: usize,
    chunk_rows: usize,
    /// Survey and batch, the start of every COPY line.
    prefix: String,
}

/// Why the writer stopped.
#[derive(Debug)]
enum Refused {
    /// PostgreSQL's key refused a respondent; the transaction is rolled back, and the pool is
    /// where the call looks up which row to name.
    AnsweredBefore(sqlx::PgPool),
    Error(ApiError),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Refused {
        Refused::Error(e)
    }
}

impl Pipelined {
    /// Starts the writer; rows go to it `chunk_rows` at a time.
    pub fn start(writer: Writer, survey: &str, batch_id: &str, chunk_rows: usize) -> Pipelined {
        let mut prefix = String::new();
        copy_field(&mut prefix, survey);
        prefix.push('\t');
        copy_field(&mut prefix, batch_id);
        prefix.push('\t');
        let filling = match writer {
            Writer::Postgres(..) => Chunk::Copy(String::new()),
            Writer::Sea(_) => Chunk::Rows(Vec::with_capacity(chunk_rows)),
        };
        // One chunk waiting beside the one being written bounds the memory held.
        let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(1);
        let (survey, batch_id) = (survey.to_string(), batch_id.to_string());
        let abandoned = tokio_util::sync::CancellationToken::new();
        let stop = abandoned.clone();
        let task = tokio::spawn(async move {
            match writer {
                Writer::Postgres(tx, pool) => copy_all(tx, pool, rx, stop).await,
                Writer::Sea(tx) => {
                    let written = tokio::select! {
                        biased;
                        () = stop.cancelled() => Err(Refused::Error(abandoned_error())),
                        written = insert_all(&tx, &survey, &batch_id, rx) => written,
                    };
                    match written {
                        Ok(()) => Ok(Writer::Sea(tx)),
                        Err(e) => {
                            Writer::Sea(tx).rollback().await;
                            Err(e)
                        }
                    }
                }
            }
        });
        Pipelined {
            chunks: Some(tx),
            task,
            abandoned,
            filling,
            filled: 0,
            chunk_rows: chunk_rows.max(1),
            prefix,
        }
    }

    /// Adds response `number`, which `checker` has just checked; a full chunk goes to the
    /// writer. False when the writer stopped on an error, which `finish` returns.
    pub async fn push(&mut self, checker: &Checker<'_>, number: u64, r: psv::Response) -> bool {
        let respondent = r.respondent_id.trim();
        match &mut self.filling {
            Chunk::Copy(text) => {
                text.push_str(&self.prefix);
                copy_field(text, respondent);
                text.push('\t');
                copy_field(text, &r.org_unit);
                text.push('\t');
                checker.write_answers(text);
                text.push('\n');
            }
            Chunk::Rows(rows) => {
                let mut answers = String::new();
                checker.write_answers(&mut answers);
                rows.push(Row {
                    number,
                    respondent: respondent.to_string(),
                    org_unit: r.org_unit,
                    answers,
                });
            }
        }
        self.filled += 1;
        if self.filled >= self.chunk_rows {
            self.hand_over().await
        } else {
            true
        }
    }

    async fn hand_over(&mut self) -> bool {
        let next = match &self.filling {
            Chunk::Copy(text) => Chunk::Copy(String::with_capacity(text.capacity())),
            Chunk::Rows(_) => Chunk::Rows(Vec::with_capacity(self.chunk_rows)),
        };
        let full = std::mem::replace(&mut self.filling, next);
        self.filled = 0;
        match &self.chunks {
            Some(tx) => tx.send(full).await.is_ok(),
            None => false,
        }
    }

    /// Writes the rows pushed so far and waits for the writer: the transaction to finish, or
    /// the first error. A respondent who answered in an earlier call is named by its row in
    /// `seen`.
    pub async fn finish(mut self, survey: &str, seen: &Seen) -> Result<Writer, ApiError> {
        if self.filled > 0 {
            self.hand_over().await;
        }
        self.chunks.take();
        let written = (&mut self.task).await.map_err(|e| {
            tracing::error!(error = %e, "survey writer task failed");
            ApiError::internal_msg("the responses could not be written".to_string())
        })?;
        match written {
            Ok(w) => Ok(w),
            Err(Refused::Error(e)) => Err(e),
            Err(Refused::AnsweredBefore(pool)) => {
                // Only committed rows are seen: a concurrent call's rows once it committed,
                // which is when the key refuses them.
                let ids: Vec<&str> = seen.ids().collect();
                let mut first: Option<(u64, String)> = None;
                for part in ids.chunks(50_000) {
                    let existing: Vec<String> = sqlx::query_scalar(
                        "SELECT respondent_id FROM surveys_responses WHERE survey_id = $1 AND respondent_id = ANY($2)",
                    )
                    .bind(survey)
                    .bind(part)
                    .fetch_all(&pool)
                    .await
                    .map_err(pg)?;
                    for r in existing {
                        let Some(row) = seen.row(&r) else { continue };
                        if first.as_ref().is_none_or(|(n, _)| row < *n) {
                            first = Some((row, r));
                        }
                    }
                }
                Err(match first {
                    Some((row, respondent)) => answered_before(survey, row, &respondent),
                    None => ApiError::precondition(format!(
                        "a respondent of this upload already answered survey {survey}"
                    )),
                })
            }
        }
    }
}

impl Drop for Pipelined {
    /// A call dropped before `finish` (its client went away) stops writing at once: the writer
    /// abandons its COPY and rolls back, so its connection goes back to the pool ready for the
    /// next call. (Aborting the writer instead left PostgreSQL inside the COPY; the pool then
    /// threw the connection away, and with a pool of one the next upload waited for it.)
    fn drop(&mut self) {
        self.abandoned.cancel();
    }
}

/// The open transaction a call writes into.
pub enum Writer {
    /// The transaction, and the pool a refused upload looks up committed rows in.
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

/// The key that refuses a second answer from a respondent, whichever call it comes in.
const RESPONDENT_KEY: &str = "surveys_responses_respondent";

/// The responses' key refused a row.
fn is_answered_twice(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.constraint() == Some(RESPONDENT_KEY))
}

fn abandoned_error() -> ApiError {
    ApiError::precondition("the upload was abandoned by its client")
}

fn answered_before(survey: &str, row: u64, respondent: &str) -> ApiError {
    ApiError::invalid(
        &format!("responses[{row}].respondent_id"),
        format!("row {row}: respondent '{respondent}' already answered survey {survey}"),
    )
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

/// PostgreSQL: one COPY for the whole call, fed chunk by chunk, so the backend never waits for
/// a statement to start or finish between chunks. The key refuses a respondent who answered in
/// an earlier call; no lookup precedes the rows.
async fn copy_all(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pool: sqlx::PgPool,
    mut chunks: tokio::sync::mpsc::Receiver<Chunk>,
    abandoned: tokio_util::sync::CancellationToken,
) -> Result<Writer, Refused> {
    // Some(rows) once the COPY is complete; None when the call was abandoned and the COPY
    // failed on purpose.
    let copied = async {
        let mut copy = (*tx)
            .copy_in_raw(
                "COPY surveys_responses (survey_id, batch_id, respondent_id, org_unit, answers) FROM STDIN",
            )
            .await?;
        loop {
            let chunk = tokio::select! {
                biased;
                () = abandoned.cancelled() => {
                    copy.abort("the upload was abandoned by its client").await?;
                    return Ok(None);
                }
                chunk = chunks.recv() => chunk,
            };
            match chunk {
                Some(Chunk::Copy(text)) => {
                    copy.send(text.as_bytes()).await?;
                }
                Some(Chunk::Rows(_)) => {}
                None => break,
            }
        }
        copy.finish().await.map(Some)
    }
    .await;
    match copied {
        Ok(Some(_)) => Ok(Writer::Postgres(tx, pool)),
        Ok(None) => {
            Writer::Postgres(tx, pool).rollback().await;
            Err(Refused::Error(abandoned_error()))
        }
        Err(e) if is_answered_twice(&e) => {
            // Rolled back first: its connection is free for the lookup, even in a pool of one.
            Writer::Postgres(tx, pool.clone()).rollback().await;
            Err(Refused::AnsweredBefore(pool))
        }
        Err(e) => Err(pg(e).into()),
    }
}

/// SQLite: multi-row INSERTs per chunk, each chunk's respondents first looked up among the
/// survey's earlier answers.
async fn insert_all(
    tx: &DatabaseTransaction,
    survey: &str,
    batch_id: &str,
    mut chunks: tokio::sync::mpsc::Receiver<Chunk>,
) -> Result<(), Refused> {
    while let Some(chunk) = chunks.recv().await {
        let Chunk::Rows(rows) = chunk else { continue };
        let ids: Vec<String> = rows.iter().map(|r| r.respondent.clone()).collect();
        let existing: Vec<String> = response::Entity::find()
            .filter(response::Column::SurveyId.eq(survey))
            .filter(response::Column::RespondentId.is_in(ids))
            .all(tx)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|m| m.respondent_id)
            .collect();
        if let Some(dup) = rows.iter().find(|r| existing.contains(&r.respondent)) {
            return Err(answered_before(survey, dup.number, &dup.respondent).into());
        }
        // SQLite allows 32,766 parameters per statement: 5 per row.
        for part in rows.chunks(6000) {
            response::Entity::insert_many(part.iter().map(|r| response::ActiveModel {
                survey_id: Set(survey.to_string()),
                batch_id: Set(batch_id.to_string()),
                respondent_id: Set(r.respondent.clone()),
                org_unit: Set(r.org_unit.clone()),
                answers: Set(r.answers.clone()),
            }))
            .exec_without_returning(tx)
            .await
            .map_err(ApiError::from)?;
        }
    }
    Ok(())
}

impl Writer {
    /// Rolls back what the call wrote, before its connection goes back to the pool.
    pub async fn rollback(self) {
        let rolled = match self {
            Writer::Postgres(tx, _) => tx.rollback().await.map_err(|e| e.to_string()),
            Writer::Sea(tx) => tx.rollback().await.map_err(|e| e.to_string()),
        };
        if let Err(e) = rolled {
            tracing::warn!(error = %e, "rolling back a survey upload failed");
        }
    }

    pub async fn begin(db: &DatabaseConnection) -> Result<Writer, ApiError> {
        Ok(match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let pool = db.get_postgres_connection_pool();
                Writer::Postgres(pool.begin().await.map_err(pg)?, pool.clone())
            }
            _ => Writer::Sea(db.begin().await?),
        })
    }

    /// Records the batch, adds its counts to the tallies (each changed tally's version goes up;
    /// a `pending` batch's counts also as pending, and kept under the batch for its review)
    /// and enqueues the `survey.batch_aggregated` event with the new totals, then commits.
    /// When the survey period's lock is no longer as the check saw it (`locks`: locked since),
    /// rolls back instead and answers false.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        self,
        who: &Principal,
        survey: &SurveyDef,
        batch_id: &str,
        accepted: u64,
        tallies: &Tallies,
        pending: bool,
        locks: &crate::locks::Revisions,
    ) -> Result<bool, ApiError> {
        let w = BatchWrite::new(who, survey, batch_id, accepted, tallies, pending);
        match self {
            Writer::Postgres(tx, _) => w.on_postgres(tx, locks).await,
            Writer::Sea(tx) => w.on_sea(tx, locks).await,
        }
    }
}

/// What one batch writes, on either backend: the batch row, its counts added to the tallies,
/// the event with the new totals and the audit entry.
struct BatchWrite<'a> {
    who: &'a Principal,
    survey: &'a SurveyDef,
    batch_id: &'a str,
    accepted: u64,
    pending: bool,
    /// (org unit, question index, responses, positive) in key order, the order rows lock in.
    keys: Vec<(&'a String, usize, u64, u64)>,
    org_units: std::collections::BTreeSet<&'a str>,
}

impl<'a> BatchWrite<'a> {
    fn new(
        who: &'a Principal,
        survey: &'a SurveyDef,
        batch_id: &'a str,
        accepted: u64,
        tallies: &'a Tallies,
        pending: bool,
    ) -> BatchWrite<'a> {
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
        BatchWrite {
            who,
            survey,
            batch_id,
            accepted,
            pending,
            keys,
            org_units: tallies.keys().map(String::as_str).collect(),
        }
    }

    fn state(&self) -> &'static str {
        if self.pending { "pending" } else { "accepted" }
    }

    /// 1 when the counts are also pending review, else 0.
    fn share(&self) -> i64 {
        i64::from(self.pending)
    }

    fn tally_event(&self, org: &str, qi: usize, row: TallyRow) -> ev::SurveyTally {
        crate::batches::tally_event(
            &self.survey.id,
            org,
            self.survey.questions[qi].id.as_str(),
            self.survey.period,
            row,
        )
    }

    fn event(&self, totals: Vec<ev::SurveyTally>) -> cezone_bus::Envelope {
        let payload = ev::SurveyBatchAggregated {
            survey_id: self.survey.id.clone(),
            batch_id: self.batch_id.to_string(),
            responses: self.accepted,
            tallies: totals,
        };
        cezone_bus::envelope("survey.batch_aggregated", "surveys", &payload, None)
    }

    fn audit(&self) -> cezone_platform::access::audit::Entry<'a> {
        cezone_platform::access::audit::Entry {
            actor: self.who,
            action: "survey.responses_ingested",
            target: self.batch_id,
            details: serde_json::json!({
                "survey": self.survey.id,
                "period": self.survey.period,
                "responses": self.accepted,
                "org_units": self.org_units,
                "state": self.state(),
            }),
        }
    }

    /// On PostgreSQL: every tally in one statement, the counts travelling as arrays.
    async fn on_postgres(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        locks: &crate::locks::Revisions,
    ) -> Result<bool, ApiError> {
        let mut totals = Vec::with_capacity(self.keys.len());
        if !crate::locks::guard_pg(&mut tx, locks).await.map_err(pg)? {
            tx.rollback().await.map_err(pg)?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO surveys_batches (id, survey_id, responses, received_at, state, \
             filed_by, period, reviewed_by, reviewed_at, review_comment) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, '', '', '')",
        )
        .bind(self.batch_id)
        .bind(&self.survey.id)
        .bind(self.accepted as i64)
        .bind(now_rfc3339())
        .bind(self.state())
        .bind(&self.who.subject)
        .bind(self.survey.period)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
        // Every tally in one statement: the counts travel as arrays, one per column.
        let orgs: Vec<&str> = self.keys.iter().map(|k| k.0.as_str()).collect();
        let questions: Vec<&str> = self
            .keys
            .iter()
            .map(|k| self.survey.questions[k.1].id.as_str())
            .collect();
        let ns: Vec<i64> = self.keys.iter().map(|k| k.2 as i64).collect();
        let ks: Vec<i64> = self.keys.iter().map(|k| k.3 as i64).collect();
        let rows: Vec<(String, String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "INSERT INTO surveys_tallies (survey_id, org_unit, question, period, responses, positive, version, pending_responses, pending_positive) \
             SELECT $1, o, q, $2, n, k, 1, n * $7, k * $7 FROM unnest($3::varchar[], $4::varchar[], $5::int8[], $6::int8[]) AS t(o, q, n, k) \
             ON CONFLICT (survey_id, org_unit, question, period) DO UPDATE SET \
             responses = surveys_tallies.responses + excluded.responses, \
             positive = surveys_tallies.positive + excluded.positive, \
             pending_responses = surveys_tallies.pending_responses + excluded.pending_responses, \
             pending_positive = surveys_tallies.pending_positive + excluded.pending_positive, \
             version = surveys_tallies.version + 1 \
             RETURNING org_unit, question, responses, positive, version, pending_responses, pending_positive",
        )
        .bind(&self.survey.id)
        .bind(self.survey.period)
        .bind(&orgs)
        .bind(&questions)
        .bind(&ns)
        .bind(&ks)
        .bind(self.share())
        .fetch_all(&mut *tx)
        .await
        .map_err(pg)?;
        if self.pending {
            // The batch's own counts, for its review.
            sqlx::query(
                "INSERT INTO surveys_batch_tallies (batch_id, org_unit, question, responses, positive) \
                 SELECT $1, o, q, n, k FROM unnest($2::varchar[], $3::varchar[], $4::int8[], $5::int8[]) AS t(o, q, n, k)",
            )
            .bind(self.batch_id)
            .bind(&orgs)
            .bind(&questions)
            .bind(&ns)
            .bind(&ks)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        }
        let stored: HashMap<(&str, &str), TallyRow> = rows
            .iter()
            .map(|(o, q, n, k, v, pn, pk)| ((o.as_str(), q.as_str()), (*n, *k, *v, *pn, *pk)))
            .collect();
        for (org, qi, ..) in &self.keys {
            let row = stored
                .get(&(org.as_str(), self.survey.questions[*qi].id.as_str()))
                .ok_or_else(|| ApiError::internal_msg("an upserted tally is missing"))?;
            totals.push(self.tally_event(org, *qi, *row));
        }
        let env = self.event(totals);
        cezone_bus::outbox::enqueue_many_pg(&mut tx, crate::OUTBOX, &[env]).await?;
        cezone_platform::access::audit::append_many_pg(&mut tx, "surveys", &[self.audit()])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(true)
    }

    /// On SQLite: the tallies one upsert at a time, each read back for its totals.
    async fn on_sea(
        &self,
        tx: sea_orm::DatabaseTransaction,
        locks: &crate::locks::Revisions,
    ) -> Result<bool, ApiError> {
        let mut totals = Vec::with_capacity(self.keys.len());
        if !crate::locks::unchanged(&tx, locks).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        batch::Entity::insert(batch::ActiveModel {
            id: Set(self.batch_id.to_string()),
            survey_id: Set(self.survey.id.clone()),
            responses: Set(self.accepted as i64),
            received_at: Set(now_rfc3339()),
            state: Set(self.state().to_string()),
            filed_by: Set(self.who.subject.clone()),
            period: Set(self.survey.period),
            reviewed_by: Set(String::new()),
            reviewed_at: Set(String::new()),
            review_comment: Set(String::new()),
        })
        .exec(&tx)
        .await?;
        for &(org, qi, n, k) in &self.keys {
            let question = self.survey.questions[qi].id.to_string();
            tally::Entity::insert(tally::ActiveModel {
                survey_id: Set(self.survey.id.clone()),
                org_unit: Set(org.clone()),
                question: Set(question.clone()),
                period: Set(self.survey.period),
                responses: Set(n as i64),
                positive: Set(k as i64),
                version: Set(1),
                pending_responses: Set(n as i64 * self.share()),
                pending_positive: Set(k as i64 * self.share()),
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
                    tally::Column::PendingResponses,
                    Expr::cust("surveys_tallies.pending_responses + excluded.pending_responses"),
                )
                .value(
                    tally::Column::PendingPositive,
                    Expr::cust("surveys_tallies.pending_positive + excluded.pending_positive"),
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
                .filter(tally::Column::SurveyId.eq(&self.survey.id))
                .filter(tally::Column::OrgUnit.eq(org.as_str()))
                .filter(tally::Column::Question.eq(question.as_str()))
                .filter(tally::Column::Period.eq(self.survey.period))
                .one(&tx)
                .await?
                .ok_or_else(|| ApiError::internal_msg("an upserted tally is missing"))?;
            if self.pending {
                tx.execute(cezone_platform::db::stmt(
                    tx.get_database_backend(),
                    "INSERT INTO surveys_batch_tallies (batch_id, org_unit, question, \
                     responses, positive) VALUES (?, ?, ?, ?, ?)",
                    vec![
                        self.batch_id.into(),
                        org.as_str().into(),
                        question.as_str().into(),
                        (n as i64).into(),
                        (k as i64).into(),
                    ],
                ))
                .await?;
            }
            totals.push(self.tally_event(
                org,
                qi,
                (
                    row.responses,
                    row.positive,
                    row.version,
                    row.pending_responses,
                    row.pending_positive,
                ),
            ));
        }
        cezone_bus::outbox::enqueue(&tx, crate::OUTBOX, &self.event(totals)).await?;
        cezone_platform::access::audit::append(&tx, "surveys", self.audit()).await?;
        tx.commit().await?;
        Ok(true)
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
        /// `Seen` answers like a map from respondent to the row it first came in.
        #[test]
        fn seen_remembers_the_first_row_of_each_respondent(
            ids in proptest::collection::vec("[a-c]{0,3}|社区[0-9]", 0..200)
        ) {
            let mut seen = Seen::default();
            let mut model: HashMap<String, u64> = HashMap::new();
            for (i, id) in ids.iter().enumerate() {
                let row = i as u64 + 1;
                let expected = model.get(id).copied();
                proptest::prop_assert_eq!(seen.first_or_insert(id, row), expected);
                model.entry(id.clone()).or_insert(row);
            }
            for (id, row) in &model {
                proptest::prop_assert_eq!(seen.row(id), Some(*row));
            }
            proptest::prop_assert_eq!(seen.row("not-given"), None);
            let mut listed: Vec<&str> = seen.ids().collect();
            listed.sort_unstable();
            let mut expected: Vec<&str> = model.keys().map(String::as_str).collect();
            expected.sort_unstable();
            proptest::prop_assert_eq!(listed, expected);
        }

        #[test]
        fn copy_fields_escape_like_the_char_by_char_rule(s in "(\\PC|[\\\\\t\n\r社区])*") {
            let mut out = String::from("prefix\t");
            copy_field(&mut out, &s);
            proptest::prop_assert_eq!(out, format!("prefix\t{}", escaped_char_by_char(&s)));
        }
    }
}
