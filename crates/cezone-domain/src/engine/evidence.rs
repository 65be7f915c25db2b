//! Evidence slots: for each criterion, one slot per responsible unit (a department files for the
//! district; a unit group such as 各镇（街道） files once per town) and per required material.

use std::collections::HashMap;

use serde::Serialize;

use crate::facts::{EvidenceFact, EvidenceState};
use crate::framework::{Framework, ItemIdx};
use crate::org::{OrgIdx, OrgTree};
use crate::rules::Rule;
use crate::units::UnitId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    Missing,
    Returned,
    Pending,
    Accepted,
}

#[derive(Debug, Clone)]
pub struct Slot {
    pub unit: UnitId,
    pub node: OrgIdx,
    pub material: Option<String>,
    /// Best accepted grade (0–100), 0 if none.
    pub confirmed: u8,
    /// Grade counting pending submissions as accepted at 100.
    pub projected: u8,
    pub status: SlotStatus,
    pub evidence_ids: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct EvidenceIndex {
    /// Slots per framework item (empty for groups and for rules without an evidence part).
    pub slots: Vec<Vec<Slot>>,
}

fn materials_of(rule: &Rule) -> Option<Vec<Option<String>>> {
    match rule {
        Rule::Evidence { materials } if materials.is_empty() => Some(vec![None]),
        Rule::Evidence { materials } => Some(materials.iter().cloned().map(Some).collect()),
        Rule::ByCommunityType { urban, rural } => {
            materials_of(urban).or_else(|| materials_of(rural))
        }
        Rule::AllOf { rules } => rules.iter().find_map(materials_of),
        Rule::Weighted { parts } => parts.iter().find_map(|p| materials_of(&p.rule)),
        _ => None,
    }
}

type SlotKey<'a> = (ItemIdx, &'a UnitId, OrgIdx);

#[derive(Default)]
struct Found {
    best_grade: Option<u8>,
    pending: bool,
    returned: bool,
    ids: Vec<String>,
}

impl EvidenceIndex {
    pub fn build(fw: &Framework, org: &OrgTree, evidence: &[EvidenceFact]) -> EvidenceIndex {
        // The record that counts for each id: highest version, ties by state.
        let mut latest: HashMap<&str, &EvidenceFact> = HashMap::new();
        for e in evidence {
            latest
                .entry(e.id.as_str())
                .and_modify(|cur| {
                    if e.precedence() > cur.precedence() {
                        *cur = e;
                    }
                })
                .or_insert(e);
        }
        let mut records: Vec<&EvidenceFact> = latest.into_values().collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));

        // Found evidence by (criterion, unit, org unit), then by material.
        let mut found: HashMap<SlotKey<'_>, Vec<(Option<&str>, Found)>> = HashMap::new();
        for e in records {
            let (Some(c), Some(node)) = (fw.find(&e.criterion), org.find(&e.org_unit)) else {
                continue;
            };
            let per_material = found.entry((c, &e.unit, node)).or_default();
            let material = e.material.as_deref();
            let pos = match per_material.iter().position(|(m, _)| *m == material) {
                Some(p) => p,
                None => {
                    per_material.push((material, Found::default()));
                    per_material.len() - 1
                }
            };
            let f = &mut per_material[pos].1;
            f.ids.push(e.id.clone());
            match e.state {
                EvidenceState::Accepted { grade } => {
                    f.best_grade = Some(f.best_grade.unwrap_or(0).max(grade.min(100)));
                }
                EvidenceState::Submitted => f.pending = true,
                EvidenceState::Returned => f.returned = true,
            }
        }
        for v in found.values_mut() {
            v.sort_by(|a, b| a.0.cmp(&b.0));
        }

        let mut slots = vec![Vec::new(); fw.len()];
        for c in fw.leaves() {
            let Some(materials) = materials_of(&fw.rule_of(c)) else {
                continue;
            };
            let item = fw.item(c);
            let mut out = Vec::new();
            for unit in &item.responsible {
                let nodes: Vec<OrgIdx> = match fw.units.get(unit).and_then(|u| u.expands_to()) {
                    Some(level) => (0..org.len())
                        .filter(|&i| org.unit(i).level == level)
                        .collect(),
                    None => vec![org.root()],
                };
                for node in nodes {
                    for m in &materials {
                        let mut slot = Slot {
                            unit: unit.clone(),
                            node,
                            material: m.clone(),
                            confirmed: 0,
                            projected: 0,
                            status: SlotStatus::Missing,
                            evidence_ids: Vec::new(),
                        };
                        let mut absorb = |f: &Found| {
                            if let Some(g) = f.best_grade {
                                slot.confirmed = slot.confirmed.max(g);
                                slot.status = SlotStatus::Accepted;
                            }
                            if f.pending {
                                slot.projected = 100;
                                if slot.status != SlotStatus::Accepted {
                                    slot.status = SlotStatus::Pending;
                                }
                            }
                            if f.returned && slot.status == SlotStatus::Missing {
                                slot.status = SlotStatus::Returned;
                            }
                            slot.evidence_ids.extend(f.ids.iter().cloned());
                        };
                        // Without a material list any material counts toward the one slot.
                        if let Some(per_material) = found.get(&(c, unit, node)) {
                            for (fm, f) in per_material {
                                if m.is_none() || m.as_deref() == *fm {
                                    absorb(f);
                                }
                            }
                        }
                        slot.projected = slot.projected.max(slot.confirmed);
                        out.push(slot);
                    }
                }
            }
            slots[c] = out;
        }
        EvidenceIndex { slots }
    }

    /// Per-unit fractions (confirmed, projected) of a criterion's evidence for every org unit:
    /// the slots at the unit's ancestors, itself and its descendants count.
    pub fn fractions(&self, org: &OrgTree, c: ItemIdx) -> Vec<(f64, f64)> {
        let n = org.len();
        let slots = &self.slots[c];
        if slots.is_empty() {
            return vec![(0.0, 0.0); n];
        }
        let mut own = vec![(0u64, 0u64, 0u64); n];
        for s in slots {
            let o = &mut own[s.node];
            o.0 += u64::from(s.confirmed);
            o.1 += u64::from(s.projected);
            o.2 += 1;
        }
        let mut sub = own.clone();
        for i in (0..n).rev() {
            for &ch in org.children(i) {
                let (a, b, k) = sub[ch];
                sub[i].0 += a;
                sub[i].1 += b;
                sub[i].2 += k;
            }
        }
        let mut anc = vec![(0u64, 0u64, 0u64); n];
        for i in 0..n {
            if let Some(p) = org.parent(i) {
                anc[i] = (
                    anc[p].0 + own[p].0,
                    anc[p].1 + own[p].1,
                    anc[p].2 + own[p].2,
                );
            }
        }
        (0..n)
            .map(|i| {
                let k = sub[i].2 + anc[i].2;
                if k == 0 {
                    (0.0, 0.0)
                } else {
                    let d = (k * 100) as f64;
                    (
                        (sub[i].0 + anc[i].0) as f64 / d,
                        (sub[i].1 + anc[i].1) as f64 / d,
                    )
                }
            })
            .collect()
    }

    /// The slots that count for one org unit.
    pub fn relevant<'s>(
        &'s self,
        org: &'s OrgTree,
        c: ItemIdx,
        node: OrgIdx,
    ) -> impl Iterator<Item = &'s Slot> + 's {
        self.slots[c]
            .iter()
            .filter(move |s| org.contains(node, s.node) || org.contains(s.node, node))
    }
}
