//! What a responsible unit owes in a period's statistical return, and where each figure
//! stands: the metrics its criteria read (by the matrix), at the org units of the level that
//! files each (the catalog's `level` and `community_type`) inside its scope.

use std::collections::HashMap;

use serde::Serialize;

use crate::facts::StatState;
use crate::framework::Framework;
use crate::org::{OrgIdx, OrgTree, OrgUnitId};
use crate::rules::{MetricDef, MetricId};
use crate::units::UnitId;

/// The latest filing of one (org unit, metric) in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub state: StatState,
    pub value: i64,
    pub review_comment: String,
}

/// Where an owed figure stands, the most pressing first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Not filed: 未报送.
    Missing,
    /// Sent back with the reviewer's comment: 已退回.
    Returned,
    /// Waiting for the level above: 待审核.
    Pending,
    /// 已通过.
    Accepted,
}

impl Standing {
    pub fn of(filed: Option<&Filed>) -> Standing {
        match filed.map(|f| f.state) {
            None => Standing::Missing,
            Some(StatState::Returned) => Standing::Returned,
            Some(StatState::Pending) => Standing::Pending,
            Some(StatState::Accepted) => Standing::Accepted,
        }
    }

    /// Still to be done by the unit (not waiting on anyone else).
    pub fn outstanding(self) -> bool {
        matches!(self, Standing::Missing | Standing::Returned)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub metric: MetricId,
    pub org_unit: OrgUnitId,
    pub standing: Standing,
    /// Outstanding past the deadline.
    pub late: bool,
    pub filed: Option<Filed>,
}

/// The metrics read by the rules of the criteria `unit` is responsible for, in catalog order.
pub fn metrics_of<'a>(fw: &'a Framework, unit: &UnitId) -> Vec<&'a MetricDef> {
    let mut ids: Vec<&MetricId> = Vec::new();
    for i in fw.leaves() {
        let item = fw.item(i);
        if !item.responsible.contains(unit) {
            continue;
        }
        if let Some(rule) = &item.rule {
            for m in rule.metrics() {
                if !ids.contains(&m) {
                    ids.push(m);
                }
            }
        }
    }
    fw.catalog
        .metrics
        .iter()
        .filter(|m| ids.contains(&&m.id))
        .collect()
}

/// Every figure `unit` owes under `scope`, the outstanding ones first (missing, returned),
/// then pending, then accepted; within each in org-tree and catalog order. `filed` holds the
/// latest filing per (org unit, metric) of the period; `past_due` marks outstanding ones late.
pub fn owed(
    fw: &Framework,
    tree: &OrgTree,
    unit: &UnitId,
    scope: OrgIdx,
    filed: &HashMap<(OrgUnitId, MetricId), Filed>,
    past_due: bool,
) -> Vec<Owed> {
    let metrics = metrics_of(fw, unit);
    let mut out = Vec::new();
    for i in tree.subtree(scope) {
        let u = tree.unit(i);
        for m in &metrics {
            let at_level = m.level == Some(u.level);
            let of_type = m.community_type.is_none() || m.community_type == u.community_type;
            if !(at_level && of_type) {
                continue;
            }
            let f = filed.get(&(u.id.clone(), m.id.clone())).cloned();
            let standing = Standing::of(f.as_ref());
            out.push(Owed {
                metric: m.id.clone(),
                org_unit: u.id.clone(),
                standing,
                late: past_due && standing.outstanding(),
                filed: f,
            });
        }
    }
    // Stable: tree and catalog order are kept within a standing.
    out.sort_by_key(|o| o.standing);
    out
}

/// The units responsible for the criteria whose rules read `metric`: who may file it.
pub fn responsible_for(fw: &Framework, metric: &str) -> Vec<UnitId> {
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

/// The units responsible for the criteria whose rules read any of `questions`: who may check
/// a survey's batches.
pub fn responsible_for_questions(fw: &Framework, questions: &[&str]) -> Vec<UnitId> {
    let mut units = Vec::new();
    for i in fw.leaves() {
        let item = fw.item(i);
        let reads = item.rule.as_ref().is_some_and(|r| {
            r.questions()
                .iter()
                .any(|q| questions.contains(&q.as_str()))
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guangdong;
    use crate::org::{CommunityType, OrgLevel, OrgUnit, RegionClass};

    fn id(s: &str) -> OrgUnitId {
        OrgUnitId::parse(s).unwrap()
    }

    /// d → t1 → (c1 urban, c2 rural).
    fn tree() -> OrgTree {
        let u = |i: &str, level, parent: Option<&str>, ct| OrgUnit {
            id: id(i),
            name: i.to_string(),
            level,
            parent: parent.map(id),
            community_type: ct,
            region: (level == OrgLevel::District).then_some(RegionClass::PearlRiverDelta),
            population: Default::default(),
        };
        OrgTree::build(vec![
            u("d", OrgLevel::District, None, None),
            u("d.t1", OrgLevel::Town, Some("d"), None),
            u(
                "d.t1.c1",
                OrgLevel::Community,
                Some("d.t1"),
                Some(CommunityType::Urban),
            ),
            u(
                "d.t1.c2",
                OrgLevel::Community,
                Some("d.t1"),
                Some(CommunityType::Rural),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn a_return_owes_each_metric_at_its_level_and_says_where_each_stands() {
        let (fw, _) = guangdong::framework();
        let tree = tree();
        let towns = UnitId::parse("towns").unwrap();
        let metric = |m: &str| MetricId::parse(m).unwrap();
        let mut filed = HashMap::new();
        filed.insert(
            (id("d.t1.c1"), metric("residents_served")),
            Filed {
                state: StatState::Pending,
                value: 10,
                review_comment: String::new(),
            },
        );
        filed.insert(
            (id("d.t1.c2"), metric("residents_served")),
            Filed {
                state: StatState::Returned,
                value: 10,
                review_comment: "请核对".into(),
            },
        );
        let t1 = tree.find(&id("d.t1")).unwrap();
        let owed = owed(&fw, &tree, &towns, t1, &filed, true);
        let find = |o: &str, m: &str| {
            owed.iter()
                .find(|x| x.org_unit.as_str() == o && x.metric.as_str() == m)
        };
        // Community metrics at both communities; urban-only ones at the urban one only.
        assert_eq!(
            find("d.t1.c1", "residents_served").unwrap().standing,
            Standing::Pending
        );
        let returned = find("d.t1.c2", "residents_served").unwrap();
        assert_eq!(
            (returned.standing, returned.late),
            (Standing::Returned, true)
        );
        assert!(find("d.t1.c1", "laid_off_registered").is_some());
        assert!(find("d.t1.c2", "laid_off_registered").is_none());
        assert!(find("d.t1.c2", "rural_labour").is_some());
        // Town metrics at the town; nothing at the district outside the scope.
        let funding = find("d.t1", "education_funding").unwrap();
        assert_eq!((funding.standing, funding.late), (Standing::Missing, true));
        assert!(owed.iter().all(|o| o.org_unit.as_str() != "d"));
        // The most pressing first; a pending figure is never late (it waits on the reviewer).
        assert!(owed.windows(2).all(|w| w[0].standing <= w[1].standing));
        assert!(!find("d.t1.c1", "residents_served").unwrap().late);
        // Every owed metric is one the towns' criteria read.
        let mine: Vec<&MetricId> = metrics_of(&fw, &towns).iter().map(|m| &m.id).collect();
        assert!(owed.iter().all(|o| mine.contains(&&o.metric)));
    }
}
