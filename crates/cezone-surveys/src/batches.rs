//! The review of survey batches. A batch a town files is pending: its answers are in the
//! tallies (the projected score) and also counted as pending (left out of the confirmed score),
//! and its own counts are kept under it. Accepting takes them out of the pending counts;
//! returning takes them out of the tallies altogether and forgets its responses, so its
//! respondents may be filed again. Either way each changed tally's version goes up and the new
//! totals are announced, as after an ingest.

use cezone_domain::access::{Action, Principal};
use cezone_domain::framework::Framework;
use cezone_platform::ApiError;
use cezone_platform::access::auth::permit;
use cezone_platform::db::stmt;
use cezone_platform::time::now_rfc3339;
use cezone_proto::events::v1 as ev;
use cezone_proto::surveys::v1 as psv;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

use crate::entities::batch;
use crate::ingest::TallyRow;

/// The longest review comment kept.
const MAX_COMMENT_CHARS: usize = 2000;

/// A tally's new totals as the `survey.batch_aggregated` event carries them.
pub fn tally_event(
    survey_id: &str,
    org_unit: &str,
    question: &str,
    period: i32,
    (n, k, v, pn, pk): TallyRow,
) -> ev::SurveyTally {
    ev::SurveyTally {
        survey_id: survey_id.to_string(),
        org_unit: org_unit.to_string(),
        question: question.to_string(),
        period,
        responses: n.max(0) as u64,
        positive: k.max(0) as u64,
        version: v.max(0) as u64,
        pending_responses: pn.max(0) as u64,
        pending_positive: pk.max(0) as u64,
    }
}

pub fn state_of(s: &str) -> psv::BatchState {
    match s {
        "pending" => psv::BatchState::Pending,
        "returned" => psv::BatchState::Returned,
        _ => psv::BatchState::Accepted,
    }
}

pub fn to_proto(m: &batch::Model) -> psv::SurveyBatch {
    psv::SurveyBatch {
        id: m.id.clone(),
        survey_id: m.survey_id.clone(),
        period: m.period,
        responses: m.responses.max(0) as u64,
        state: state_of(&m.state) as i32,
        filed_by: m.filed_by.clone(),
        received_at: m.received_at.clone(),
        reviewed_by: m.reviewed_by.clone(),
        reviewed_at: m.reviewed_at.clone(),
        review_comment: m.review_comment.clone(),
    }
}

/// The batches filed, newest first.
pub async fn list(
    db: &DatabaseConnection,
    r: &psv::ListSurveyBatchesRequest,
) -> Result<Vec<psv::SurveyBatch>, ApiError> {
    let mut q = batch::Entity::find();
    if !r.survey_id.trim().is_empty() {
        q = q.filter(batch::Column::SurveyId.eq(r.survey_id.trim()));
    }
    let state = psv::BatchState::try_from(r.state)
        .map_err(|_| ApiError::invalid("state", format!("{} is not a batch state", r.state)))?;
    let name = match state {
        psv::BatchState::Unspecified => None,
        psv::BatchState::Pending => Some("pending"),
        psv::BatchState::Accepted => Some("accepted"),
        psv::BatchState::Returned => Some("returned"),
    };
    if let Some(name) = name {
        q = q.filter(batch::Column::State.eq(name));
    }
    Ok(q.order_by_desc(batch::Column::ReceivedAt)
        .order_by_desc(batch::Column::Id)
        .all(db)
        .await?
        .iter()
        .map(to_proto)
        .collect())
}

/// Accepts or returns a pending batch, whole, in one transaction.
pub async fn review(
    db: &DatabaseConnection,
    fw: &Framework,
    who: &Principal,
    r: &psv::ReviewSurveyBatchRequest,
) -> Result<batch::Model, ApiError> {
    let id = r.batch_id.trim();
    if id.is_empty() {
        return Err(ApiError::invalid("batch_id", "is empty"));
    }
    let comment = r.comment.trim();
    if !r.accept && comment.is_empty() {
        return Err(ApiError::invalid(
            "comment",
            "a returned batch needs a comment saying what to correct",
        ));
    }
    if comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::invalid(
            "comment",
            format!("is longer than {MAX_COMMENT_CHARS} characters"),
        ));
    }
    let Some(b) = batch::Entity::find_by_id(id.to_string()).one(db).await? else {
        return Err(ApiError::not_found(format!("survey batch '{id}'")));
    };
    let survey = crate::definitions::get(db, &b.survey_id).await?;
    let questions: Vec<&str> = survey.questions.iter().map(|q| q.id.as_str()).collect();
    let responsible = cezone_domain::obligations::responsible_for_questions(fw, &questions);
    permit(
        who,
        &Action::ReviewSurveyBatch {
            survey: &b.survey_id,
            responsible: &responsible,
            filed_by: &b.filed_by,
        },
        None,
    )?;
    let (state, action) = if r.accept {
        ("accepted", "survey_batch.accepted")
    } else {
        ("returned", "survey_batch.returned")
    };
    let at = now_rfc3339();
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    // Taken only while still pending: two reviewers at once cannot both decide it.
    let claimed = txn
        .execute(stmt(
            backend,
            "UPDATE surveys_batches SET state = ?, reviewed_by = ?, reviewed_at = ?, \
             review_comment = ? WHERE id = ? AND state = 'pending'",
            vec![
                state.into(),
                who.subject.clone().into(),
                at.clone().into(),
                comment.into(),
                id.into(),
            ],
        ))
        .await?;
    if claimed.rows_affected() != 1 {
        return Err(ApiError::precondition(format!(
            "survey batch '{id}' is {}; only a pending batch is reviewed",
            b.state
        )));
    }
    let own = txn
        .query_all(stmt(
            backend,
            "SELECT org_unit, question, responses, positive FROM surveys_batch_tallies \
             WHERE batch_id = ? ORDER BY org_unit, question",
            vec![id.into()],
        ))
        .await?;
    // Returning takes the batch out of the tallies; accepting out of the pending counts only.
    let out = i64::from(!r.accept);
    let mut totals = Vec::with_capacity(own.len());
    for row in own {
        let org: String = row.try_get("", "org_unit")?;
        let question: String = row.try_get("", "question")?;
        let n: i64 = row.try_get("", "responses")?;
        let k: i64 = row.try_get("", "positive")?;
        let key = vec![
            b.survey_id.clone().into(),
            org.clone().into(),
            question.clone().into(),
            b.period.into(),
        ];
        let mut values: Vec<sea_orm::Value> =
            vec![n.into(), k.into(), (n * out).into(), (k * out).into()];
        values.extend(key.clone());
        txn.execute(stmt(
            backend,
            "UPDATE surveys_tallies SET pending_responses = pending_responses - ?, \
             pending_positive = pending_positive - ?, responses = responses - ?, \
             positive = positive - ?, version = version + 1 \
             WHERE survey_id = ? AND org_unit = ? AND question = ? AND period = ?",
            values,
        ))
        .await?;
        let t = txn
            .query_one(stmt(
                backend,
                "SELECT responses, positive, version, pending_responses, pending_positive \
                 FROM surveys_tallies \
                 WHERE survey_id = ? AND org_unit = ? AND question = ? AND period = ?",
                key,
            ))
            .await?
            .ok_or_else(|| ApiError::internal_msg("a reviewed batch's tally is missing"))?;
        totals.push(tally_event(
            &b.survey_id,
            &org,
            &question,
            b.period,
            (
                t.try_get("", "responses")?,
                t.try_get("", "positive")?,
                t.try_get("", "version")?,
                t.try_get("", "pending_responses")?,
                t.try_get("", "pending_positive")?,
            ),
        ));
    }
    if !r.accept {
        txn.execute(stmt(
            backend,
            "DELETE FROM surveys_responses WHERE batch_id = ?",
            vec![id.into()],
        ))
        .await?;
    }
    txn.execute(stmt(
        backend,
        "DELETE FROM surveys_batch_tallies WHERE batch_id = ?",
        vec![id.into()],
    ))
    .await?;
    let payload = ev::SurveyBatchAggregated {
        survey_id: b.survey_id.clone(),
        batch_id: id.to_string(),
        responses: b.responses.max(0) as u64,
        tallies: totals,
    };
    cezone_bus::outbox::enqueue(
        &txn,
        crate::OUTBOX,
        &cezone_bus::envelope("survey.batch_aggregated", "surveys", &payload, None),
    )
    .await?;
    cezone_platform::access::audit::append(
        &txn,
        "surveys",
        cezone_platform::access::audit::Entry {
            actor: who,
            action,
            target: id,
            details: serde_json::json!({
                "survey": b.survey_id,
                "period": b.period,
                "responses": b.responses,
                "filed_by": b.filed_by,
                "comment": comment,
            }),
        },
    )
    .await?;
    txn.commit().await?;
    tracing::info!(batch = %id, state, reviewer = %who.subject, "survey batch reviewed");
    Ok(batch::Model {
        state: state.to_string(),
        reviewed_by: who.subject.clone(),
        reviewed_at: at,
        review_comment: comment.to_string(),
        ..b
    })
}
