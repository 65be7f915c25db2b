//! Reminders at each scheduled lead time: every responsible unit (each town for the towns)
//! that still owes materials (missing, and which of them late) or statistics (not filed, or
//! returned to be filed again) gets one, stored with the run so it is sent once.

use std::collections::BTreeMap;

use cezone_domain::framework::Framework;
use cezone_domain::obligations::metrics_of;
use cezone_domain::org::{OrgLevel, OrgTree};
use cezone_platform::ApiError;
use cezone_platform::access::auth::AuthChannel;
use cezone_proto::evidence::v1 as pe;
use cezone_proto::surveys::v1 as psv;
use cezone_proto::surveys::v1::survey_service_client::SurveyServiceClient;

use crate::store::Reminder;

/// What is owed when the run looks.
pub struct Question<'a> {
    pub checkpoint: &'a str,
    pub period: i32,
    pub as_of: &'a str,
}

pub async fn gather(
    fw: &Framework,
    tree: &OrgTree,
    completeness: &pe::Completeness,
    surveys: &mut SurveyServiceClient<AuthChannel>,
    q: &Question<'_>,
) -> Result<Vec<Reminder>, ApiError> {
    let mut owed: BTreeMap<(String, String), Reminder> = BTreeMap::new();
    let entry = |owed: &mut BTreeMap<(String, String), Reminder>, unit: &str, org: &str| {
        owed.entry((unit.to_string(), org.to_string()))
            .or_insert_with(|| Reminder {
                responsible_unit: unit.to_string(),
                org_unit: org.to_string(),
                materials_missing: 0,
                materials_late: 0,
                statistics_missing: 0,
                statistics_returned: 0,
                text: String::new(),
            })
            .clone()
    };
    for u in &completeness.units {
        let mut r = entry(&mut owed, &u.responsible_unit, &u.org_unit);
        r.materials_missing += u.missing;
        // Of the missing ones, those past the deadline (a slot filed late is no longer owed).
        r.materials_late += u
            .slots
            .iter()
            .filter(|s| s.state == pe::SlotState::Missing as i32 && s.late)
            .count() as u32;
        owed.insert((r.responsible_unit.clone(), r.org_unit.clone()), r);
    }
    let root = tree.unit(tree.root()).id.to_string();
    let towns: Vec<String> = (0..tree.len())
        .filter(|&i| tree.unit(i).level == OrgLevel::Town)
        .map(|i| tree.unit(i).id.to_string())
        .collect();
    for unit in &fw.units.units {
        if metrics_of(fw, &unit.id).is_empty() {
            continue;
        }
        // The towns file one return each; a department one for the district.
        let scopes = if unit.id.as_str() == "towns" {
            towns.clone()
        } else {
            vec![root.clone()]
        };
        for org in scopes {
            let o = surveys
                .list_obligations(psv::ListObligationsRequest {
                    responsible_unit: unit.id.to_string(),
                    org_unit: org.clone(),
                    period: q.period,
                    checkpoint: q.checkpoint.to_string(),
                    as_of: q.as_of.to_string(),
                })
                .await
                .map_err(|s| {
                    ApiError::unavailable(format!("reading what {} owes: {}", unit.id, s.message()))
                })?
                .into_inner();
            let mut r = entry(&mut owed, unit.id.as_str(), &org);
            r.statistics_missing += o.missing;
            r.statistics_returned += o.returned;
            owed.insert((r.responsible_unit.clone(), r.org_unit.clone()), r);
        }
    }
    let due = fw
        .calendar
        .checkpoint(q.checkpoint)
        .map(|c| (c.name.clone(), c.due.to_string()))
        .unwrap_or_default();
    Ok(owed
        .into_values()
        .filter(|r| r.materials_missing + r.statistics_missing + r.statistics_returned > 0)
        .map(|mut r| {
            let who = fw.units.name_of(
                &cezone_domain::units::UnitId::parse(&r.responsible_unit)
                    .unwrap_or_else(|_| fw.units.units[0].id.clone()),
            );
            r.text = format!(
                "提醒：{who}（{org}）在“{name}”（{date}）前尚缺台帐资料 {m} 项（其中逾期 {late} 项），\
                 统计数据未报 {sm} 项、退回待重报 {sr} 项。\
                 Reminder: before {checkpoint} ({date}) {unit} at {org} still owes {m} material(s) \
                 ({late} late), {sm} statistic(s) not filed and {sr} returned to be filed again.",
                org = r.org_unit,
                name = due.0,
                date = due.1,
                m = r.materials_missing,
                late = r.materials_late,
                sm = r.statistics_missing,
                sr = r.statistics_returned,
                checkpoint = q.checkpoint,
                unit = r.responsible_unit,
            );
            r
        })
        .collect())
}
