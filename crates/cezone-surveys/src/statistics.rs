//! Statistical returns: one value per org unit, metric and period, versioned — a correction is
//! a new version and the newest counts — with who filed it.

use cezone_domain::access::Principal;
use cezone_domain::framework::Framework;
use cezone_domain::org::{OrgTree, OrgUnitId};
use cezone_domain::rules::MetricId;
use cezone_platform::ApiError;
use cezone_platform::paging::Page;
use cezone_platform::time::now_rfc3339;
use cezone_proto::common::v1::PageInfo;
use cezone_proto::surveys::v1 as ps;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::entities::statistic as st;

pub fn to_proto(m: &st::Model) -> ps::StatisticReturn {
    ps::StatisticReturn {
        org_unit: m.org_unit.clone(),
        metric: m.metric.clone(),
        period: m.period,
        value: m.value,
        filed_by: m.filed_by.clone(),
        note: m.note.clone(),
        version: m.version as u64,
        filed_at: m.filed_at.clone(),
    }
}

fn short_text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} printable characters"),
        ));
    }
    Ok(v.to_string())
}

/// The units responsible for the criteria whose rules read `metric`: who may file it.
pub fn responsible_for(fw: &Framework, metric: &str) -> Vec<cezone_domain::units::UnitId> {
    let mut units = Vec::new();
    for i in fw.leaves() {
        let item = fw.item(i);
        let reads = item
            .rule
            .as_ref()
            .is_some_and(|r| r.metrics().iter().any(|m| m.as_str() == metric));
        if reads {
            for u in &item.responsible {
                if !units.contains(u) {
                    units.push(u.clone());
                }
            }
        }
    }
    units
}

/// Checks a return against the org tree and the framework's metric catalog.
pub fn check(r: &ps::StatisticReturn, tree: &OrgTree, fw: &Framework) -> Result<(), ApiError> {
    let id = OrgUnitId::parse(&r.org_unit).map_err(|e| ApiError::invalid("org_unit", e))?;
    if tree.find(&id).is_none() {
        return Err(ApiError::invalid(
            "org_unit",
            format!("'{id}' is not an existing org unit"),
        ));
    }
    let metric = MetricId::parse(&r.metric).map_err(|e| ApiError::invalid("metric", e))?;
    if fw.catalog.metric(&metric).is_none() {
        let known: Vec<&str> = fw.catalog.metrics.iter().map(|m| m.id.as_str()).collect();
        return Err(ApiError::invalid(
            "metric",
            format!(
                "'{metric}' is not a metric of {} (known: {})",
                fw.meta.id,
                known.join(", ")
            ),
        ));
    }
    if !(1900..=2200).contains(&r.period) {
        return Err(ApiError::invalid(
            "period",
            format!("{} is not a plausible year", r.period),
        ));
    }
    if r.value < 0 {
        return Err(ApiError::invalid(
            "value",
            format!("{} is negative; counts and amounts are 0 or more", r.value),
        ));
    }
    short_text("filed_by", &r.filed_by, 100)?;
    short_text("note", &r.note, 500)?;
    Ok(())
}

pub async fn record(
    db: &DatabaseConnection,
    who: &Principal,
    r: &ps::StatisticReturn,
) -> Result<st::Model, ApiError> {
    // Two filings of one key at once race for the next version; the loser retries.
    for _ in 0..5 {
        let txn = db.begin().await?;
        let last = st::Entity::find()
            .filter(st::Column::OrgUnit.eq(&r.org_unit))
            .filter(st::Column::Metric.eq(&r.metric))
            .filter(st::Column::Period.eq(r.period))
            .order_by_desc(st::Column::Version)
            .one(&txn)
            .await?;
        let version = last.as_ref().map_or(1, |m| m.version + 1);
        st::Entity::update_many()
            .col_expr(st::Column::Latest, Expr::value(false))
            .filter(st::Column::OrgUnit.eq(&r.org_unit))
            .filter(st::Column::Metric.eq(&r.metric))
            .filter(st::Column::Period.eq(r.period))
            .filter(st::Column::Latest.eq(true))
            .exec(&txn)
            .await?;
        let inserted = st::ActiveModel {
            org_unit: Set(r.org_unit.clone()),
            metric: Set(r.metric.clone()),
            period: Set(r.period),
            value: Set(r.value),
            version: Set(version),
            latest: Set(true),
            filed_by: Set(r.filed_by.trim().to_string()),
            note: Set(r.note.trim().to_string()),
            filed_at: Set(now_rfc3339()),
            ..Default::default()
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(m) => {
                let payload = cezone_proto::events::v1::StatisticRecorded {
                    statistic: Some(to_proto(&m)),
                };
                cezone_bus::outbox::enqueue(
                    &txn,
                    crate::OUTBOX,
                    &cezone_bus::envelope("statistic.recorded", "surveys", &payload, None),
                )
                .await?;
                cezone_platform::audit::append(
                    &txn,
                    "surveys",
                    cezone_platform::audit::Entry {
                        actor: who,
                        action: "statistic.recorded",
                        target: &format!("{}/{}/{}", m.org_unit, m.metric, m.period),
                        details: serde_json::json!({
                            "version": m.version,
                            "value": m.value,
                            "before": last.as_ref().map(|l| l.value),
                            "filed_by": m.filed_by,
                            "note": m.note,
                        }),
                    },
                )
                .await?;
                txn.commit().await?;
                return Ok(m);
            }
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(
        "the statistic is being filed concurrently; try again",
    ))
}

pub async fn list(
    db: &DatabaseConnection,
    r: &ps::ListStatisticsRequest,
) -> Result<(Vec<ps::StatisticReturn>, Option<PageInfo>), ApiError> {
    let page = Page::parse(r.page.as_ref())?;
    let mut q = st::Entity::find();
    if !r.org_unit.is_empty() {
        q = q.filter(st::Column::OrgUnit.eq(&r.org_unit));
    }
    if !r.metric.is_empty() {
        q = q.filter(st::Column::Metric.eq(&r.metric));
    }
    if r.period != 0 {
        q = q.filter(st::Column::Period.eq(r.period));
    }
    if !r.all_versions {
        q = q.filter(st::Column::Latest.eq(true));
    }
    if let Some(after) = &page.after {
        let after: i64 = after
            .parse()
            .map_err(|_| ApiError::invalid("page.page_token", "is not from this listing"))?;
        q = q.filter(st::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(st::Column::Id)
        .limit(page.size + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > page.size;
    let rows: Vec<st::Model> = rows.into_iter().take(page.size as usize).collect();
    let last = if more {
        rows.last().map(|m| m.id.to_string())
    } else {
        None
    };
    Ok((rows.iter().map(to_proto).collect(), page.info_after(last)))
}
