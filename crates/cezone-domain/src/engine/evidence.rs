//! Evidence slots: for each criterion, one slot per responsible unit (a department files for the
//! district; a unit group such as 各镇（街道） files once per town) and per required material.
//! A slot's value comes from the evidence records filed for it; `apply` replaces one record and
//! refreshes just its slots.

// Keys are the district's own validated ids; a fast hasher is what the hot paths need.
use foldhash::HashMap;
use std::ops::Range;

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

/// (criterion, position of the unit among the criterion's responsible units, org unit).
type SlotKey = (ItemIdx, usize, OrgIdx);

#[derive(Debug, Clone, Default)]
pub struct EvidenceIndex {
    /// Slots per framework item (empty for groups and for rules without an evidence part).
    pub slots: Vec<Vec<Slot>>,
    /// The record that counts for each id: highest version, ties by state.
    records: HashMap<String, EvidenceFact>,
    /// Record ids per (criterion, unit, org unit), sorted.
    filed: HashMap<SlotKey, Vec<String>>,
    /// Where each (criterion, unit, org unit)'s slots sit in `slots[criterion]`: one per
    /// material, side by side.
    positions: HashMap<SlotKey, Range<usize>>,
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

impl EvidenceIndex {
    pub fn build(fw: &Framework, org: &OrgTree, evidence: &[EvidenceFact]) -> EvidenceIndex {
        let mut idx = EvidenceIndex {
            slots: vec![Vec::new(); fw.len()],
            ..Default::default()
        };
        for e in evidence {
            match idx.records.get(&e.id) {
                Some(cur) if e.precedence() <= cur.precedence() => {}
                _ => {
                    idx.records.insert(e.id.clone(), e.clone());
                }
            }
        }
        for e in idx.records.values() {
            if let Some(key) = key_of(fw, org, e) {
                idx.filed.entry(key).or_default().push(e.id.clone());
            }
        }
        for ids in idx.filed.values_mut() {
            ids.sort();
        }
        // Nodes of each level, for unit groups.
        let mut by_level: HashMap<crate::org::OrgLevel, Vec<OrgIdx>> = HashMap::default();
        for i in 0..org.len() {
            by_level.entry(org.unit(i).level).or_default().push(i);
        }
        for c in fw.leaves() {
            let Some(materials) = materials_of(&fw.rule_of(c)) else {
                continue;
            };
            let responsible = &fw.item(c).responsible;
            for (u, unit) in responsible.iter().enumerate() {
                // A unit named twice files once: records go to its first position (`key_of`).
                if responsible[..u].contains(unit) {
                    continue;
                }
                let nodes: Vec<OrgIdx> = match fw.units.get(unit).and_then(|u| u.expands_to()) {
                    Some(level) => by_level.get(&level).cloned().unwrap_or_default(),
                    None => vec![org.root()],
                };
                for node in nodes {
                    let key = (c, u, node);
                    let first = idx.slots[c].len();
                    for m in &materials {
                        idx.slots[c].push(Slot {
                            unit: unit.clone(),
                            node,
                            material: m.clone(),
                            confirmed: 0,
                            projected: 0,
                            status: SlotStatus::Missing,
                            evidence_ids: Vec::new(),
                        });
                    }
                    let filed = idx.filed.contains_key(&key);
                    idx.positions.insert(key, first..idx.slots[c].len());
                    // A slot with nothing filed for it stays missing, as made.
                    if filed {
                        idx.refresh(&key);
                    }
                }
            }
        }
        idx
    }

    /// Recomputes the slots of one (criterion, unit, org unit) from the records filed for it.
    fn refresh(&mut self, key: &SlotKey) {
        let Some(positions) = self.positions.get(key) else {
            return;
        };
        let ids = self.filed.get(key).map_or(&[][..], Vec::as_slice);
        for slot in &mut self.slots[key.0][positions.clone()] {
            slot.confirmed = 0;
            slot.projected = 0;
            slot.status = SlotStatus::Missing;
            slot.evidence_ids.clear();
            let (mut accepted, mut pending, mut returned) = (false, false, false);
            for id in ids {
                let Some(e) = self.records.get(id) else {
                    continue;
                };
                // Without a material list any material counts toward the one slot.
                if slot.material.is_some() && slot.material != e.material {
                    continue;
                }
                slot.evidence_ids.push(id.clone());
                match e.state {
                    EvidenceState::Accepted { grade } => {
                        accepted = true;
                        slot.confirmed = slot.confirmed.max(grade.min(100));
                    }
                    EvidenceState::Submitted => pending = true,
                    EvidenceState::Returned => returned = true,
                }
            }
            slot.projected = if pending { 100 } else { slot.confirmed };
            slot.status = if accepted {
                SlotStatus::Accepted
            } else if pending {
                SlotStatus::Pending
            } else if returned {
                SlotStatus::Returned
            } else {
                SlotStatus::Missing
            };
        }
    }

    /// Applies one record if it takes precedence over the one held for its id. Returns the
    /// criterion and the org units of the slots that changed.
    pub fn apply(
        &mut self,
        fw: &Framework,
        org: &OrgTree,
        e: &EvidenceFact,
    ) -> Vec<(ItemIdx, OrgIdx)> {
        if let Some(cur) = self.records.get(&e.id)
            && e.precedence() <= cur.precedence()
        {
            return Vec::new();
        }
        let old_key = self.records.get(&e.id).and_then(|old| key_of(fw, org, old));
        self.records.insert(e.id.clone(), e.clone());
        let new_key = key_of(fw, org, e);
        let mut touched = Vec::new();
        if old_key != new_key
            && let Some(k) = &old_key
            && let Some(ids) = self.filed.get_mut(k)
        {
            ids.retain(|x| x != &e.id);
        }
        if let Some(k) = &new_key {
            let ids = self.filed.entry(*k).or_default();
            if let Err(pos) = ids.binary_search(&e.id) {
                ids.insert(pos, e.id.clone());
            }
        }
        for k in [old_key, new_key].into_iter().flatten() {
            self.refresh(&k);
            if !touched.contains(&(k.0, k.2)) {
                touched.push((k.0, k.2));
            }
        }
        touched
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
                ratio(
                    sub[i].0 + anc[i].0,
                    sub[i].1 + anc[i].1,
                    sub[i].2 + anc[i].2,
                )
            })
            .collect()
    }

    /// The fraction of one org unit alone, without computing every unit's.
    pub fn fraction_at(&self, org: &OrgTree, c: ItemIdx, node: OrgIdx) -> (f64, f64) {
        let (mut a, mut b, mut k) = (0u64, 0u64, 0u64);
        for s in self.relevant(org, c, node) {
            a += u64::from(s.confirmed);
            b += u64::from(s.projected);
            k += 1;
        }
        ratio(a, b, k)
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

fn ratio(confirmed: u64, projected: u64, slots: u64) -> (f64, f64) {
    if slots == 0 {
        (0.0, 0.0)
    } else {
        let d = (slots * 100) as f64;
        (confirmed as f64 / d, projected as f64 / d)
    }
}

/// Where a record is filed; none when its unit is not responsible for its criterion, as no
/// slot would take it.
fn key_of(fw: &Framework, org: &OrgTree, e: &EvidenceFact) -> Option<SlotKey> {
    let c = fw.find(&e.criterion)?;
    let u = fw.item(c).responsible.iter().position(|r| r == &e.unit)?;
    Some((c, u, org.find(&e.org_unit)?))
}
