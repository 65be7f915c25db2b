//! gRPC edge of the survey service.

use cezone_domain::access::{Action, Role, Scoped};
use cezone_platform::ApiError;
use cezone_platform::access::auth::{caller, permit, permit_ever};
use cezone_platform::glue::registry_view::RegistryView;
use cezone_platform::paging::Page;
use cezone_proto::surveys::v1 as psv;
use cezone_proto::surveys::v1::ingest_request::Part;
use cezone_proto::surveys::v1::survey_service_server::SurveyService;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tonic::{Request, Response, Status, Streaming};

use crate::definitions::{self, check_id};
use crate::entities::batch;
use crate::ingest::{Checker, Pipelined, Writer};
use crate::{aggregates, locks, review, statistics};

#[derive(Debug, Clone)]
pub struct SurveyApi {
    pub db: DatabaseConnection,
    /// Woken after a committed change whose event sits in the outbox.
    pub relay: cezone_bus::outbox::RelayHandle,
    pub view: RegistryView,
    pub write_batch_rows: usize,
    /// Metrics are checked against this framework's latest published catalog.
    pub framework_id: String,
    /// How long an ingest stream may stay silent and last.
    pub limits: cezone_platform::grpc::StreamLimits,
}

type Reply<T> = Result<Response<T>, Status>;

/// Whether a checked upload may be stored: it has rows, and a town sends only its own
/// communities' responses.
fn may_store(
    who: &cezone_domain::access::Principal,
    tree: &cezone_domain::org::OrgTree,
    rows: u64,
    tallies: &crate::ingest::Tallies,
) -> Result<(), ApiError> {
    if rows == 0 {
        return Err(ApiError::invalid("batch", "no responses were sent"));
    }
    if who.role == Role::Town {
        let mut places: Vec<&String> = tallies.keys().collect();
        places.sort();
        for o in places {
            let o = cezone_domain::org::OrgUnitId::parse(o)
                .map_err(|e| ApiError::invalid("org_unit", e))?;
            permit(who, &Action::IngestResponses { org_unit: &o }, Some(tree))?;
        }
    }
    Ok(())
}

impl SurveyApi {
    /// The latest published edition of the deployment's framework; `purpose` says in the
    /// refusal what needed it.
    async fn framework(
        &self,
        purpose: &str,
    ) -> Result<std::sync::Arc<cezone_domain::framework::Framework>, ApiError> {
        self.view
            .framework(&self.framework_id, "")
            .await
            .map(|(fw, _)| fw)
            .map_err(|e| {
                ApiError::precondition(format!(
                    "{purpose} framework {}: {}",
                    self.framework_id, e.message
                ))
            })
    }

    /// An org unit cannot have more respondents to a survey than residents: the batch's
    /// respondents there (the most answers any question got) and those of earlier batches,
    /// against its population of the survey's year where known. (Two uploads for the same
    /// org unit at the same moment are each checked against the batches committed before.)
    /// Respondents of earlier batches per org unit (the most answers any question got there),
    /// read before an upload's own transaction takes the connection.
    async fn earlier_respondents(
        &self,
        survey_id: &str,
    ) -> Result<std::collections::HashMap<String, i64>, ApiError> {
        use crate::entities::tally;
        let earlier: Vec<(String, Option<i64>)> = tally::Entity::find()
            .select_only()
            .column(tally::Column::OrgUnit)
            .column_as(tally::Column::Responses.max(), "responses")
            .filter(tally::Column::SurveyId.eq(survey_id))
            .group_by(tally::Column::OrgUnit)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(earlier
            .into_iter()
            .map(|(o, n)| (o, n.unwrap_or(0)))
            .collect())
    }

    fn within_population(
        survey_id: &str,
        period: i32,
        tree: &cezone_domain::org::OrgTree,
        tallies: &crate::ingest::Tallies,
        earlier: &std::collections::HashMap<String, i64>,
    ) -> Result<(), ApiError> {
        let residents = tree.populations(period);
        let mut units: Vec<&String> = tallies.keys().collect();
        units.sort();
        for o in units {
            let Some(i) = cezone_domain::org::OrgUnitId::parse(o)
                .ok()
                .and_then(|id| tree.find(&id))
            else {
                continue;
            };
            let now = tallies[o].iter().map(|(n, _)| *n).max().unwrap_or(0);
            let total = now + earlier.get(o.as_str()).copied().unwrap_or(0).max(0) as u64;
            if residents[i] > 0 && total > residents[i] {
                return Err(ApiError::invalid(
                    "batch",
                    format!(
                        "{o} would have {total} respondents to {survey_id} ({now} in this upload), \
                         more than its {} residents in {period}",
                        residents[i]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks every return against the framework and the tree and whether `who` may file it;
    /// refuses the whole call naming each bad one. `batch` names fields `statistics[i].field`.
    /// Checks a filing (who may, what is valid, which periods are open) and stores it, all or
    /// nothing; checked again when a period's lock changed between the check and the write.
    async fn file(
        &self,
        who: &cezone_domain::access::Principal,
        rs: &[psv::StatisticReturn],
        batch: bool,
        dry_run: bool,
        filing: statistics::Filing,
    ) -> Result<statistics::Recorded, ApiError> {
        for _ in 0..3 {
            let locks = self.may_file(who, rs, batch).await?;
            if let Some(done) =
                statistics::record_many(&self.db, who, rs, dry_run, filing, &locks).await?
            {
                return Ok(done);
            }
        }
        Err(ApiError::unavailable(
            "the period's lock is changing; try again",
        ))
    }

    async fn may_file(
        &self,
        who: &cezone_domain::access::Principal,
        rs: &[psv::StatisticReturn],
        batch: bool,
    ) -> Result<locks::Revisions, ApiError> {
        permit_ever(who, Scoped::RecordStatistic)?;
        let (fw, _) = self
            .view
            .framework(&self.framework_id, "")
            .await
            .map_err(|e| {
                ApiError::precondition(format!(
                    "metrics are checked against framework {}: {}",
                    self.framework_id, e.message
                ))
            })?;
        let field = |i: usize, f: &str| {
            if batch {
                format!("statistics[{i}].{f}")
            } else {
                f.to_string()
            }
        };
        let mut tree = self.view.org_tree(false).await?;
        let mut first_look = statistics::Checker::new(&tree, &fw);
        if rs.iter().any(|r| first_look.parse(r).is_err()) {
            // A unit created a moment ago: look again before refusing.
            tree = self.view.org_tree(true).await?;
        }
        let mut checker = statistics::Checker::new(&tree, &fw);
        let mut refused: Vec<(String, String)> = Vec::new();
        let mut parsed = Vec::with_capacity(rs.len());
        let mut first_of: std::collections::HashMap<(&str, &str, i32), usize> =
            std::collections::HashMap::with_capacity(rs.len());
        for (i, r) in rs.iter().enumerate() {
            match checker.parse(r) {
                Ok(f) => parsed.push((i, f)),
                Err(e) => refused.push((field(i, e.field), e.reason)),
            }
            if let Some(first) =
                first_of.insert((r.org_unit.as_str(), r.metric.as_str(), r.period), i)
            {
                refused.push((
                    field(i, "org_unit"),
                    format!(
                        "statistics[{first}] already files {} for '{}' in {}; one value per call",
                        r.metric, r.org_unit, r.period
                    ),
                ));
            }
        }
        if !refused.is_empty() {
            // A whole bad sheet would make an answer larger than any client accepts: the first
            // ones name the pattern, the count tells the rest.
            let total = refused.len();
            refused.truncate(MAX_NAMED_REFUSALS);
            return Err(match total {
                1 => ApiError::invalid(&refused[0].0, refused[0].1.clone()),
                n => ApiError::invalid_many(
                    format!(
                        "{n} of {} statistics are refused{}; nothing was stored",
                        rs.len(),
                        if n > MAX_NAMED_REFUSALS {
                            format!(" (the first {MAX_NAMED_REFUSALS} are named)")
                        } else {
                            String::new()
                        }
                    ),
                    refused,
                ),
            });
        }
        for (_, f) in &parsed {
            let responsible = checker.responsible(f.metric.as_str());
            permit(
                who,
                &Action::RecordStatistic {
                    org_unit: &f.org_unit,
                    metric: &f.metric,
                    responsible,
                },
                Some(&tree),
            )?;
        }
        let targets = locks::targets(rs, if batch { "statistics" } else { "statistic" }, |r| {
            (r.org_unit.as_str(), r.period)
        });
        locks::check(&self.db, who, "statistics", &targets).await
    }
}

/// Refused statistics named one by one in an answer; the message counts all of them.
const MAX_NAMED_REFUSALS: usize = 200;

#[tonic::async_trait]
impl SurveyService for SurveyApi {
    async fn list_audit(
        &self,
        req: tonic::Request<cezone_proto::common::v1::ListAuditRequest>,
    ) -> Result<tonic::Response<cezone_proto::common::v1::ListAuditResponse>, tonic::Status> {
        let who = cezone_platform::access::auth::caller(&req)?;
        let page =
            cezone_platform::access::audit_list::list(&self.db, "surveys", &who, req.get_ref())
                .await?;
        Ok(tonic::Response::new(page))
    }

    async fn define_survey(&self, req: Request<psv::Survey>) -> Reply<psv::Survey> {
        let who = caller(&req)?;
        permit(&who, &Action::DefineSurvey, None)?;
        let def = definitions::from_proto(req.get_ref())?;
        let def = definitions::create(&self.db, &who, def).await?;
        tracing::info!(survey = %def.id, questions = def.questions.len(), "survey defined");
        Ok(Response::new(definitions::to_proto(&def, 0)))
    }

    async fn get_survey(&self, req: Request<psv::GetSurveyRequest>) -> Reply<psv::Survey> {
        let def = definitions::get(&self.db, &req.get_ref().id).await?;
        // Every stored response came in a batch that counts it, in the same transaction.
        let n: Option<i64> = batch::Entity::find()
            .select_only()
            .column_as(
                Expr::cust("CAST(COALESCE(SUM(responses), 0) AS BIGINT)"),
                "responses",
            )
            .filter(batch::Column::SurveyId.eq(&def.id))
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(ApiError::from)?;
        let n = n.unwrap_or(0) as u64;
        Ok(Response::new(definitions::to_proto(&def, n)))
    }

    async fn ingest_responses(
        &self,
        req: Request<Streaming<psv::IngestRequest>>,
    ) -> Reply<psv::IngestSummary> {
        let who = caller(&req)?;
        // Past the outbox's backlog limit, refused with a retry hint: the lag stays bounded.
        self.relay.admit().map_err(ApiError::from)?;
        // Refused before a row is read; a town is checked against each row's org unit.
        permit_ever(&who, Scoped::IngestResponses)?;
        let started = std::time::Instant::now();
        let mut stream = req.into_inner();
        let survey_id = match self
            .limits
            .next(&mut stream, started)
            .await?
            .and_then(|m| m.part)
        {
            Some(Part::SurveyId(id)) => id,
            Some(Part::Batch(_)) => {
                return Err(ApiError::invalid(
                    "survey_id",
                    "the first message must name the survey",
                )
                .into());
            }
            None => {
                return Err(ApiError::invalid(
                    "survey_id",
                    "the upload is empty; name the survey first",
                )
                .into());
            }
        };
        check_id("survey_id", &survey_id)?;
        let survey = definitions::get(&self.db, &survey_id).await?;
        // Read before the writer takes its connection; the org units are known once read.
        let period_locks = locks::locked(&self.db, [survey.period]).await?;
        if let Some(l) = period_locks.get(&survey.period)
            && l.unlocked.is_empty()
        {
            let r = locks::refusal(&period_locks, &[("survey_id".into(), "", survey.period)])
                .expect("a locked period refuses");
            return Err(locks::refuse(&self.db, &who, "survey batch", r)
                .await
                .into());
        }
        let tree = self.view.org_tree(true).await?;
        let earlier = self.earlier_respondents(&survey.id).await?;
        let batch_id = uuid::Uuid::now_v7().to_string();
        let mut pipe = Pipelined::start(
            Writer::begin(&self.db).await?,
            &survey.id,
            &batch_id,
            self.write_batch_rows,
        );
        let mut checker = Checker::new(&survey, &tree);
        let mut rows: u64 = 0;
        let read: Result<(), Status> = async {
            // A stalled or endless stream ends here and is rolled back below.
            while let Some(msg) = self.limits.next(&mut stream, started).await? {
                let batch = match msg.part {
                    Some(Part::Batch(b)) => b,
                    Some(Part::SurveyId(_)) => {
                        return Err(ApiError::invalid(
                            "survey_id",
                            "sent twice; name the survey once, first",
                        )
                        .into());
                    }
                    None => continue,
                };
                for r in batch.responses {
                    rows += 1;
                    checker.check(rows, &r)?;
                    if !pipe.push(&checker, rows, r).await {
                        // The writer stopped on an error; `finish` below returns it.
                        return Ok(());
                    }
                }
            }
            Ok(())
        }
        .await;
        // A writer's error concerns rows before any the reading stopped at: it comes first.
        let writer = pipe.finish(&survey.id, &checker.seen).await?;
        let tallies = checker.tallies;
        let org_units = tallies.len() as u32;
        // Anything refused from here on is rolled back before the connection is given back.
        let refused = match read
            .and_then(|()| may_store(&who, &tree, rows, &tallies).map_err(Status::from))
        {
            Err(e) => Some(e),
            Ok(()) => Self::within_population(&survey.id, survey.period, &tree, &tallies, &earlier)
                .err()
                .map(Status::from),
        };
        if let Some(e) = refused {
            writer.rollback().await;
            return Err(e);
        }
        let mut places: Vec<&String> = tallies.keys().collect();
        places.sort();
        let targets: Vec<(String, &str, i32)> = places
            .iter()
            .map(|o| (format!("batch (org unit {o})"), o.as_str(), survey.period))
            .collect();
        if let Some(r) = locks::refusal(&period_locks, &targets) {
            writer.rollback().await;
            return Err(locks::refuse(&self.db, &who, "survey batch", r)
                .await
                .into());
        }
        // The evaluation office's batches are accepted as filed; a town's wait for review.
        let pending = who.role != Role::EvaluationOffice;
        let seen: locks::Revisions = [(
            survey.period,
            period_locks.get(&survey.period).map_or(0, |l| l.revision),
        )]
        .into();
        if !writer
            .finish(&who, &survey, &batch_id, rows, &tallies, pending, &seen)
            .await?
        {
            // Locked while the batch was being sent: refused as a batch of a locked period is,
            // or sent again when the new lock lets it in.
            let now = locks::locked(&self.db, [survey.period]).await?;
            return Err(match locks::refusal(&now, &targets) {
                Some(r) => locks::refuse(&self.db, &who, "survey batch", r).await,
                None => ApiError::unavailable(
                    "the period's lock changed while the batch was sent; nothing was stored, \
                     send it again",
                ),
            }
            .into());
        }
        self.relay.notify();
        tracing::info!(survey = %survey.id, batch = %batch_id, responses = rows, org_units, pending, "survey responses ingested");
        Ok(Response::new(psv::IngestSummary {
            batch_id,
            accepted: rows,
            org_units,
            state: if pending {
                psv::BatchState::Pending
            } else {
                psv::BatchState::Accepted
            } as i32,
        }))
    }

    async fn record_statistic(
        &self,
        req: Request<psv::StatisticReturn>,
    ) -> Reply<psv::StatisticReturn> {
        let who = caller(&req)?;
        // Past the outbox's backlog limit, refused with a retry hint: the lag stays bounded.
        self.relay.admit().map_err(ApiError::from)?;
        let r = req.into_inner();
        let stored = self
            .file(
                &who,
                std::slice::from_ref(&r),
                false,
                false,
                statistics::Filing::OneByOne,
            )
            .await?
            .stored;
        self.relay.notify();
        let m = &stored[0];
        tracing::debug!(org_unit = %m.org_unit, metric = %m.metric, period = m.period, version = m.version, "statistic recorded");
        Ok(Response::new(statistics::to_proto(m)))
    }

    async fn record_statistics(
        &self,
        req: Request<psv::RecordStatisticsRequest>,
    ) -> Reply<psv::RecordStatisticsResponse> {
        let who = caller(&req)?;
        self.relay.admit().map_err(ApiError::from)?;
        let r = req.into_inner();
        if r.statistics.is_empty() {
            return Err(ApiError::invalid("statistics", "no statistics were sent").into());
        }
        if r.statistics.len() > statistics::MAX_PER_CALL {
            return Err(ApiError::invalid(
                "statistics",
                format!(
                    "{} statistics in one call; at most {} (send the rest in further calls)",
                    r.statistics.len(),
                    statistics::MAX_PER_CALL
                ),
            )
            .into());
        }
        let statistics::Recorded {
            stored, event_ids, ..
        } = self
            .file(
                &who,
                &r.statistics,
                true,
                r.dry_run,
                statistics::Filing::OneByOne,
            )
            .await?;
        if !r.dry_run {
            self.relay.notify();
            tracing::info!(statistics = stored.len(), "statistics recorded");
            tracing::debug!(keys = ?stored.iter().map(|m| format!("{}/{}/{}@{}", m.org_unit, m.metric, m.period, m.version)).collect::<Vec<_>>(), "statistics recorded");
        }
        Ok(Response::new(psv::RecordStatisticsResponse {
            statistics: stored.iter().map(statistics::to_proto).collect(),
            event_ids,
        }))
    }

    async fn import_statistics(
        &self,
        req: Request<Streaming<psv::RecordStatisticsRequest>>,
    ) -> Reply<psv::ImportStatisticsResponse> {
        let who = caller(&req)?;
        self.relay.admit().map_err(ApiError::from)?;
        let started = std::time::Instant::now();
        let mut stream = req.into_inner();
        let mut all: Vec<psv::StatisticReturn> = Vec::new();
        let mut dry_run = None;
        while let Some(part) = self.limits.next(&mut stream, started).await? {
            if part.statistics.len() > statistics::MAX_PER_CALL {
                return Err(ApiError::invalid(
                    "statistics",
                    format!(
                        "a part of {} statistics; at most {} per part",
                        part.statistics.len(),
                        statistics::MAX_PER_CALL
                    ),
                )
                .into());
            }
            dry_run.get_or_insert(part.dry_run);
            if all.len() + part.statistics.len() > statistics::MAX_PER_IMPORT {
                return Err(ApiError::invalid(
                    "statistics",
                    format!(
                        "more than {} statistics in one import; split the return (by town, \
                         for instance)",
                        statistics::MAX_PER_IMPORT
                    ),
                )
                .into());
            }
            all.extend(part.statistics);
        }
        if all.is_empty() {
            return Err(ApiError::invalid("statistics", "no statistics were sent").into());
        }
        let dry_run = dry_run.unwrap_or(false);
        let received_ms = started.elapsed().as_millis() as u64;
        let recorded = self
            .file(&who, &all, true, dry_run, statistics::Filing::Import)
            .await?;
        let stored = &recorded.stored;
        if !dry_run {
            self.relay.notify();
            tracing::info!(
                statistics = stored.len(),
                received_ms,
                elapsed_ms = started.elapsed().as_millis() as u64,
                import_id = %recorded.import_id,
                "statistics imported"
            );
        }
        Ok(Response::new(psv::ImportStatisticsResponse {
            recorded: stored.len() as u64,
            first_filings: stored.iter().filter(|m| m.version == 1).count() as u64,
            dry_run,
            import_id: recorded.import_id.clone(),
        }))
    }

    async fn list_statistics(
        &self,
        req: Request<psv::ListStatisticsRequest>,
    ) -> Reply<psv::ListStatisticsResponse> {
        let (statistics, page) = statistics::list(&self.db, req.get_ref()).await?;
        Ok(Response::new(psv::ListStatisticsResponse {
            statistics,
            page,
        }))
    }

    async fn review_statistics(
        &self,
        req: Request<psv::ReviewStatisticsRequest>,
    ) -> Reply<psv::ReviewStatisticsResponse> {
        let who = caller(&req)?;
        permit_ever(&who, Scoped::ReviewStatistic)?;
        self.relay.admit().map_err(ApiError::from)?;
        let r = review::parse(req.get_ref())?;
        let fw = self.framework("reviewers are found from").await?;
        let tree = self.view.org_tree(false).await?;
        let rows = review::select(&self.db, &r.target, &tree).await?;
        let mut allowed = Vec::with_capacity(rows.len());
        for m in rows {
            let org = cezone_domain::org::OrgUnitId::parse(&m.org_unit)
                .map_err(|e| ApiError::internal_msg(format!("a stored org unit: {e}")))?;
            let metric = cezone_domain::rules::MetricId::parse(&m.metric)
                .map_err(|e| ApiError::internal_msg(format!("a stored metric: {e}")))?;
            let responsible = statistics::responsible_for(&fw, &m.metric);
            let action = Action::ReviewStatistic {
                org_unit: &org,
                metric: &metric,
                responsible: &responsible,
                filed_by: &m.filed_by,
            };
            if r.target.is_named() {
                // A named statistic the caller may not decide refuses the whole call.
                permit(&who, &action, Some(&tree))?;
                allowed.push(m);
            } else if cezone_domain::access::authorize(&who, &action, Some(&tree)).is_ok() {
                allowed.push(m);
            }
        }
        if allowed.is_empty() {
            return Err(ApiError::precondition(match &r.target {
                review::Target::Return {
                    org_unit, period, ..
                } => format!(
                    "nothing under {org_unit} in {period} is pending review by {}",
                    who.describe()
                ),
                review::Target::Named(_) => "nothing to review".to_string(),
            })
            .into());
        }
        let (decided, event_ids) =
            review::decide(&self.db, &who, allowed, r.decision, &r.comment, r.dry_run).await?;
        if !r.dry_run {
            self.relay.notify();
            tracing::info!(
                statistics = decided.len(),
                decision = r.decision.as_str(),
                "statistics reviewed"
            );
        }
        Ok(Response::new(psv::ReviewStatisticsResponse {
            statistics: decided.iter().map(statistics::to_proto).collect(),
            event_ids,
        }))
    }

    async fn lock_period(&self, req: Request<psv::LockPeriodRequest>) -> Reply<psv::PeriodLock> {
        let who = caller(&req)?;
        permit(&who, &Action::LockPeriod, None)?;
        let r = req.into_inner();
        let period = locks::period(r.period)?;
        let reason = locks::reason("reason", &r.reason)?;
        let lock = locks::lock(&self.db, &who, period, &reason).await?;
        self.relay.notify();
        tracing::info!(period, "period locked");
        Ok(Response::new(lock))
    }

    async fn unlock_org_unit(
        &self,
        req: Request<psv::UnlockOrgUnitRequest>,
    ) -> Reply<psv::PeriodLock> {
        let who = caller(&req)?;
        permit(&who, &Action::LockPeriod, None)?;
        let r = req.into_inner();
        let period = locks::period(r.period)?;
        let org = cezone_domain::org::OrgUnitId::parse(&r.org_unit)
            .map_err(|e| ApiError::invalid("org_unit", e))?;
        if self.view.org_tree(true).await?.find(&org).is_none() {
            return Err(ApiError::invalid("org_unit", format!("{org} is not an org unit")).into());
        }
        let reason = locks::reason("reason", &r.reason)?;
        let lock = locks::unlock(&self.db, &who, period, &org, &reason).await?;
        self.relay.notify();
        tracing::info!(period, org_unit = %org, "org unit unlocked");
        Ok(Response::new(lock))
    }

    async fn get_period_lock(
        &self,
        req: Request<psv::GetPeriodLockRequest>,
    ) -> Reply<psv::PeriodLock> {
        let period = locks::period(req.get_ref().period)?;
        Ok(Response::new(locks::get(&self.db, period).await?))
    }

    async fn list_obligations(
        &self,
        req: Request<psv::ListObligationsRequest>,
    ) -> Reply<psv::Obligations> {
        let who = caller(&req)?;
        let fw = self.framework("obligations come from").await?;
        // A community created a moment ago owes its figures at once.
        let tree = self.view.org_tree(true).await?;
        Ok(Response::new(
            crate::obligations::list(&self.db, &who, &fw, &tree, req.get_ref()).await?,
        ))
    }

    async fn review_survey_batch(
        &self,
        req: Request<psv::ReviewSurveyBatchRequest>,
    ) -> Reply<psv::SurveyBatch> {
        let who = caller(&req)?;
        self.relay.admit().map_err(ApiError::from)?;
        let fw = self.framework("reviewers are found from").await?;
        let b = crate::batches::review(&self.db, &fw, &who, req.get_ref()).await?;
        self.relay.notify();
        Ok(Response::new(crate::batches::to_proto(&b)))
    }

    async fn list_survey_batches(
        &self,
        req: Request<psv::ListSurveyBatchesRequest>,
    ) -> Reply<psv::ListSurveyBatchesResponse> {
        let batches = crate::batches::list(&self.db, req.get_ref()).await?;
        Ok(Response::new(psv::ListSurveyBatchesResponse { batches }))
    }

    async fn list_tallies(
        &self,
        req: Request<psv::ListTalliesRequest>,
    ) -> Reply<psv::ListTalliesResponse> {
        let r = req.into_inner();
        let page = Page::parse(r.page.as_ref())?;
        let all: Vec<psv::Tally> = aggregates::tallies(&self.db, r.period)
            .await?
            .into_iter()
            .map(|t| psv::Tally {
                org_unit: t.org_unit.to_string(),
                question: t.question.to_string(),
                period: t.period,
                responses: t.responses,
                positive: t.positive,
                survey_id: t.source,
                version: t.version,
                pending_responses: t.pending_responses,
                pending_positive: t.pending_positive,
            })
            .collect();
        let (tallies, page) = page.slice(&all);
        Ok(Response::new(psv::ListTalliesResponse { tallies, page }))
    }

    async fn get_aggregates(
        &self,
        req: Request<psv::GetAggregatesRequest>,
    ) -> Reply<psv::Aggregates> {
        let r = req.into_inner();
        let tree = self.view.org_tree(false).await?;
        let all = aggregates::tallies(&self.db, r.period).await?;
        Ok(Response::new(aggregates::compute(&tree, &all, &r)?))
    }
}
