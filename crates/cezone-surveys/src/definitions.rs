//! Survey definitions: questions yes/no or Likert 1–5 with the "satisfied" cut.

use cezone_domain::access::Principal;
use cezone_domain::rules::{QuestionDef, QuestionId, QuestionKind};
use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use cezone_proto::surveys::v1 as psv;
use sea_orm::TransactionTrait;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};

use crate::entities::survey;

#[derive(Debug, Clone)]
pub struct SurveyDef {
    pub id: String,
    pub title: String,
    pub period: i32,
    pub questions: Vec<QuestionDef>,
    pub created_at: String,
}

impl SurveyDef {
    pub fn question(&self, id: &str) -> Option<(usize, &QuestionDef)> {
        self.questions
            .iter()
            .enumerate()
            .find(|(_, q)| q.id.as_str() == id)
    }
}

/// Most questions one survey may ask: a resident questionnaire, not a data store.
pub const MAX_QUESTIONS: usize = 200;

pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("'{id}' is not an id (lowercase letters, digits, '-', '_', at most 64)"),
        ))
    }
}

pub fn from_proto(s: &psv::Survey) -> Result<SurveyDef, ApiError> {
    check_id("id", &s.id)?;
    if s.title.trim().is_empty() {
        return Err(ApiError::invalid("title", "is empty"));
    }
    if !(1900..=2200).contains(&s.period) {
        return Err(ApiError::invalid(
            "period",
            format!("{} is not a plausible year", s.period),
        ));
    }
    if s.questions.is_empty() {
        return Err(ApiError::invalid(
            "questions",
            "is empty; a survey asks at least one question",
        ));
    }
    if s.questions.len() > MAX_QUESTIONS {
        return Err(ApiError::invalid(
            "questions",
            format!(
                "has {} questions; a survey asks at most {MAX_QUESTIONS}",
                s.questions.len()
            ),
        ));
    }
    let mut questions: Vec<QuestionDef> = Vec::new();
    for (i, q) in s.questions.iter().enumerate() {
        let field = |f: &str| format!("questions[{i}].{f}");
        let id = QuestionId::parse(&q.id).map_err(|e| ApiError::invalid(&field("id"), e))?;
        if questions.iter().any(|x| x.id == id) {
            return Err(ApiError::invalid(
                &field("id"),
                format!("'{id}' is asked twice"),
            ));
        }
        let (kind, cut) = match psv::QuestionKind::try_from(q.kind) {
            Ok(psv::QuestionKind::YesNo) => {
                if q.satisfied_from != 0 {
                    return Err(ApiError::invalid(
                        &field("satisfied_from"),
                        "applies to Likert questions only",
                    ));
                }
                (QuestionKind::YesNo, None)
            }
            Ok(psv::QuestionKind::Likert5) => {
                let cut = if q.satisfied_from == 0 {
                    4
                } else {
                    q.satisfied_from
                };
                if !(2..=5).contains(&cut) {
                    return Err(ApiError::invalid(
                        &field("satisfied_from"),
                        format!("{cut} is not between 2 and 5"),
                    ));
                }
                (QuestionKind::Likert5, Some(cut as u8))
            }
            _ => {
                return Err(ApiError::invalid(
                    &field("kind"),
                    "must be yes/no or Likert 1–5",
                ));
            }
        };
        questions.push(QuestionDef {
            id,
            text: q.text.trim().to_string(),
            kind,
            satisfied_from: cut,
        });
    }
    Ok(SurveyDef {
        id: s.id.clone(),
        title: s.title.trim().to_string(),
        period: s.period,
        questions,
        created_at: String::new(),
    })
}

pub fn to_proto(d: &SurveyDef, responses: u64) -> psv::Survey {
    psv::Survey {
        id: d.id.clone(),
        title: d.title.clone(),
        period: d.period,
        questions: d
            .questions
            .iter()
            .map(|q| psv::Question {
                id: q.id.to_string(),
                text: q.text.clone(),
                kind: match q.kind {
                    QuestionKind::YesNo => psv::QuestionKind::YesNo,
                    QuestionKind::Likert5 => psv::QuestionKind::Likert5,
                } as i32,
                satisfied_from: u32::from(q.satisfied_from.unwrap_or(0)),
            })
            .collect(),
        created_at: d.created_at.clone(),
        responses,
    }
}

pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    mut d: SurveyDef,
) -> Result<SurveyDef, ApiError> {
    let txn = db.begin().await?;
    if survey::Entity::find_by_id(d.id.clone())
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(ApiError::already_exists(format!(
            "survey '{}' already exists",
            d.id
        )));
    }
    d.created_at = now_rfc3339();
    survey::ActiveModel {
        id: Set(d.id.clone()),
        title: Set(d.title.clone()),
        period: Set(d.period),
        questions_json: Set(serde_json::to_string(&d.questions)
            .map_err(|e| ApiError::internal_msg(e.to_string()))?),
        created_at: Set(d.created_at.clone()),
    }
    .insert(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            ApiError::already_exists(format!("survey '{}' already exists", d.id))
        }
        _ => e.into(),
    })?;
    cezone_platform::access::audit::append(
        &txn,
        "surveys",
        cezone_platform::access::audit::Entry {
            actor: who,
            action: "survey.defined",
            target: &d.id,
            details: serde_json::json!({
                "title": d.title,
                "period": d.period,
                "questions": d.questions,
            }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(d)
}

pub async fn get(db: &DatabaseConnection, id: &str) -> Result<SurveyDef, ApiError> {
    let m = survey::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("survey '{id}' does not exist")))?;
    Ok(SurveyDef {
        questions: serde_json::from_str(&m.questions_json)
            .map_err(|e| ApiError::internal_msg(format!("stored survey {id}: {e}")))?,
        id: m.id,
        title: m.title,
        period: m.period,
        created_at: m.created_at,
    })
}
