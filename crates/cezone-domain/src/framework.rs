//! The indicator framework: a versioned tree of items of any depth. Leaves are the criteria that
//! earn points; every group's points are its children's sum, capped at what it declares.

use std::collections::BTreeMap;

// Keys are the district's own validated ids; a fast hasher is what the hot paths need.
use foldhash::HashMap;

use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::code::ItemCode;
use crate::findings::{Finding, FindingKind, Findings, Location, Severity};
use crate::points::Points;
use crate::rules::{Catalog, Rule};
use crate::units::{UnitId, UnitRegistry};

crate::ident::ident_newtype!(
    /// Stable framework identifier, e.g. `gd-community-education`.
    FrameworkId,
    "a framework",
    "lowercase letters, digits and '-', at most 64",
    crate::ident::kebab_case
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub code: ItemCode,
    pub title: String,
    /// Declared points; for a group without a declaration, its children's sum.
    pub points: Points,
    /// Whether the source declared the points (a group may leave them to its children).
    #[serde(default = "yes")]
    pub declared: bool,
    /// ★ key criterion.
    #[serde(default)]
    pub key: bool,
    /// 提供材料: the materials the responsible units provide.
    #[serde(default)]
    pub materials: String,
    /// 负责单位, canonical.
    #[serde(default)]
    pub responsible: Vec<UnitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_row: Option<u32>,
}

fn yes() -> bool {
    true
}

/// Identifying data of a framework version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameworkMeta {
    pub id: FrameworkId,
    pub edition: String,
    pub title: String,
    /// The total the framework declares (100 for Guangdong), checked against its areas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_points: Option<Points>,
}

pub type ItemIdx = usize;

#[derive(Debug, Clone, PartialEq)]
pub struct Framework {
    pub meta: FrameworkMeta,
    /// Items in preorder: every parent before its children.
    items: Vec<Item>,
    parent: Vec<Option<ItemIdx>>,
    children: Vec<Vec<ItemIdx>>,
    roots: Vec<ItemIdx>,
    index: HashMap<ItemCode, ItemIdx>,
    pub units: UnitRegistry,
    pub catalog: Catalog,
    pub calendar: Calendar,
}

impl Framework {
    /// Links items by their codes, reporting duplicates, orphans, sums that disagree and rules
    /// that do not fit. Orphans and duplicates are left out of the tree; nothing else changes.
    pub fn assemble(
        meta: FrameworkMeta,
        items: Vec<Item>,
        units: UnitRegistry,
        catalog: Catalog,
        calendar: Calendar,
        rules: BTreeMap<String, Rule>,
    ) -> (Framework, Findings) {
        let mut findings = Findings::default();
        let loc = |it: &Item| Location::item(&it.code).with_row(it.source_row);

        // Unique codes; the first occurrence stays.
        let mut kept: Vec<Item> = Vec::with_capacity(items.len());
        let mut first_row: HashMap<ItemCode, Option<u32>> = HashMap::default();
        for it in items {
            if let Some(prev) = first_row.get(&it.code) {
                let prev = prev.map_or("an earlier item".to_string(), |r| format!("row {r}"));
                findings.push(Finding::new(
                    Severity::Error,
                    FindingKind::DuplicateCode,
                    loc(&it),
                    format!(
                        "code {} is used again (first at {prev}); this item is left out",
                        it.code
                    ),
                ));
                continue;
            }
            first_row.insert(it.code.clone(), it.source_row);
            kept.push(it);
        }

        // Orphans: a parent code that no item carries. Repeat until stable, since leaving out an
        // orphan group orphans its children too.
        loop {
            let codes: std::collections::HashSet<ItemCode> =
                kept.iter().map(|i| i.code.clone()).collect();
            let before = kept.len();
            kept.retain(|it| match it.code.parent() {
                Some(p) if !codes.contains(&p) => {
                    findings.push(Finding::new(
                        Severity::Error,
                        FindingKind::OrphanItem,
                        loc(it),
                        format!("item {} has no parent: no item has code {p}", it.code),
                    ));
                    false
                }
                _ => true,
            });
            if kept.len() == before {
                break;
            }
        }

        kept.sort_by(|a, b| a.code.cmp(&b.code));
        let index: HashMap<ItemCode, ItemIdx> = kept
            .iter()
            .enumerate()
            .map(|(i, it)| (it.code.clone(), i))
            .collect();
        let mut parent = vec![None; kept.len()];
        let mut children = vec![Vec::new(); kept.len()];
        let mut roots = Vec::new();
        for (i, it) in kept.iter().enumerate() {
            match it.code.parent() {
                Some(p) => {
                    let pi = index[&p];
                    parent[i] = Some(pi);
                    children[pi].push(i);
                }
                None => roots.push(i),
            }
        }

        let mut fw = Framework {
            meta,
            items: kept,
            parent,
            children,
            roots,
            index,
            units,
            catalog,
            calendar,
        };

        // Groups without declared points take their children's sum (bottom-up).
        for i in (0..fw.items.len()).rev() {
            if !fw.children[i].is_empty() && !fw.items[i].declared {
                let sum: Points = fw.children[i].iter().map(|&c| fw.items[c].points).sum();
                fw.items[i].points = sum;
                findings.push(Finding::new(
                    Severity::Info,
                    FindingKind::PointsMismatch,
                    loc(&fw.items[i]),
                    format!(
                        "group {} declares no points; its children's sum {sum} is used",
                        fw.items[i].code
                    ),
                ));
            }
        }

        // Attach rules to criteria.
        for (code_text, rule) in rules {
            let at = Location::item(&code_text).in_file(RULES_FILE);
            let Ok(code) = ItemCode::parse(&code_text) else {
                findings.push(Finding::new(
                    Severity::Error,
                    FindingKind::RuleForUnknownItem,
                    at,
                    format!("a rule is attached to '{code_text}', which is not an item code"),
                ));
                continue;
            };
            let Some(&i) = fw.index.get(&code) else {
                findings.push(Finding::new(
                    Severity::Error,
                    FindingKind::RuleForUnknownItem,
                    at,
                    format!("a rule is attached to {code}, but the framework has no such item"),
                ));
                continue;
            };
            if !fw.children[i].is_empty() {
                findings.push(Finding::new(
                    Severity::Error,
                    FindingKind::RuleOnGroup,
                    at,
                    format!(
                        "a rule is attached to group {code}; rules belong to criteria (leaves)"
                    ),
                ));
                continue;
            }
            fw.items[i].rule = Some(rule);
        }

        findings.extend(fw.check());
        (fw, findings)
    }

    /// Structural checks that do not change the framework: sums, totals, fields, rules, calendar.
    pub fn check(&self) -> Findings {
        let mut findings = Findings::default();
        let loc = |it: &Item| Location::item(&it.code).with_row(it.source_row);
        for (i, it) in self.items.iter().enumerate() {
            if it.title.trim().is_empty() {
                findings.push(Finding::new(
                    Severity::Error,
                    FindingKind::EmptyField,
                    loc(it).with_column("title"),
                    format!("item {} has no title", it.code),
                ));
            }
            let kids = &self.children[i];
            if kids.is_empty() {
                if it.materials.trim().is_empty() {
                    findings.push(Finding::new(
                        Severity::Error,
                        FindingKind::EmptyField,
                        loc(it).with_column("materials"),
                        format!("criterion {} names no materials to provide", it.code),
                    ));
                }
                if it.responsible.is_empty() {
                    findings.push(Finding::new(
                        Severity::Error,
                        FindingKind::EmptyField,
                        loc(it).with_column("responsible units"),
                        format!("criterion {} names no responsible unit", it.code),
                    ));
                }
                if it.points == Points::ZERO {
                    findings.push(Finding::new(
                        Severity::Warning,
                        FindingKind::EmptyField,
                        loc(it).with_column("points"),
                        format!("criterion {} is worth 0 points", it.code),
                    ));
                }
                if let Some(rule) = &it.rule {
                    for p in rule.problems(&self.catalog) {
                        findings.push(Finding::new(
                            Severity::Error,
                            FindingKind::InvalidRule,
                            Location::item(&it.code).in_file(RULES_FILE),
                            format!("rule of {}: {p}", it.code),
                        ));
                    }
                }
            } else if it.declared {
                let sum: Points = kids.iter().map(|&c| self.items[c].points).sum();
                if sum != it.points {
                    let effect = if sum > it.points {
                        format!("scores are capped at the declared {}", it.points)
                    } else {
                        format!("at most {sum} can be earned")
                    };
                    findings.push(Finding::new(
                        Severity::Warning,
                        FindingKind::PointsMismatch,
                        loc(it),
                        format!(
                            "group {} declares {} points but its {} children add up to {sum}; {effect}",
                            it.code,
                            it.points,
                            kids.len()
                        ),
                    ));
                }
            }
            for (k, u) in it.responsible.iter().enumerate() {
                if it.responsible[..k].contains(u) {
                    findings.push(Finding::new(
                        Severity::Warning,
                        FindingKind::DuplicateUnit,
                        loc(it),
                        format!(
                            "responsible unit '{u}' is named twice for {}; its evidence counts once",
                            it.code
                        ),
                    ));
                }
                if self.units.get(u).is_none() {
                    findings.push(Finding::new(
                        Severity::Error,
                        FindingKind::UnknownUnit,
                        loc(it),
                        format!("responsible unit id '{u}' is not in the unit registry"),
                    ));
                }
            }
        }
        if let Some(total) = self.meta.total_points {
            let at = Location::default()
                .in_file(MANIFEST_FILE)
                .with_column("total_points");
            let sum: Points = self.roots.iter().map(|&r| self.items[r].points).sum();
            if sum != total {
                findings.push(Finding::new(
                    Severity::Warning,
                    FindingKind::TotalMismatch,
                    at.clone(),
                    format!(
                        "the framework declares a total of {total} points but its {} areas add up to {sum}",
                        self.roots.len()
                    ),
                ));
            }
            // The criteria themselves: a group over its declared points makes them add up to
            // more than the framework is worth.
            let leaves: Points = self.leaves().map(|i| self.items[i].points).sum();
            if leaves != total {
                let groups: Vec<String> = (0..self.items.len())
                    .filter(|&i| !self.children[i].is_empty() && self.items[i].declared)
                    .filter_map(|i| {
                        let kids: Points =
                            self.children[i].iter().map(|&c| self.items[c].points).sum();
                        (kids != self.items[i].points).then(|| {
                            format!(
                                "{} declares {} over children worth {kids}",
                                self.items[i].code, self.items[i].points
                            )
                        })
                    })
                    .collect();
                let why = if groups.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", groups.join("; "))
                };
                findings.push(Finding::new(
                    Severity::Warning,
                    FindingKind::TotalMismatch,
                    at,
                    format!(
                        "the framework declares a total of {total} points but its {} criteria add up to {leaves}{why}; \
                         with every group capped at its declared points at most {} can be earned",
                        self.leaves().count(),
                        self.max_points()
                    ),
                ));
            }
        }
        findings.extend(self.calendar.check());
        findings
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn item(&self, i: ItemIdx) -> &Item {
        &self.items[i]
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn find(&self, code: &ItemCode) -> Option<ItemIdx> {
        self.index.get(code).copied()
    }

    pub fn roots(&self) -> &[ItemIdx] {
        &self.roots
    }

    pub fn parent(&self, i: ItemIdx) -> Option<ItemIdx> {
        self.parent[i]
    }

    pub fn children(&self, i: ItemIdx) -> &[ItemIdx] {
        &self.children[i]
    }

    pub fn is_leaf(&self, i: ItemIdx) -> bool {
        self.children[i].is_empty()
    }

    /// The criteria (leaves), in code order.
    pub fn leaves(&self) -> impl Iterator<Item = ItemIdx> + '_ {
        (0..self.items.len()).filter(|&i| self.children[i].is_empty())
    }

    /// Sum of the first-level areas' points: what a perfect score is worth.
    pub fn max_points(&self) -> Points {
        self.roots.iter().map(|&r| self.items[r].points).sum()
    }

    /// The rule a criterion is scored by: its own, else evidence alone.
    pub fn rule_of(&self, i: ItemIdx) -> std::borrow::Cow<'_, Rule> {
        match &self.items[i].rule {
            Some(r) => std::borrow::Cow::Borrowed(r),
            None => std::borrow::Cow::Owned(Rule::evidence()),
        }
    }

    /// Nested JSON-friendly form of the whole framework.
    pub fn to_document(&self) -> FrameworkDocument {
        fn node(fw: &Framework, i: ItemIdx) -> ItemNode {
            ItemNode {
                item: fw.items[i].clone(),
                children: fw.children[i].iter().map(|&c| node(fw, c)).collect(),
            }
        }
        FrameworkDocument {
            format: DOCUMENT_FORMAT.to_string(),
            meta: self.meta.clone(),
            units: self.units.clone(),
            catalog: self.catalog.clone(),
            calendar: self.calendar.clone(),
            items: self.roots.iter().map(|&r| node(self, r)).collect(),
        }
    }

    /// Reads the nested JSON form back, with the same checks as any import.
    pub fn from_document(doc: FrameworkDocument) -> (Framework, Findings) {
        fn flatten(n: ItemNode, out: &mut Vec<Item>) {
            out.push(n.item);
            for c in n.children {
                flatten(c, out);
            }
        }
        let mut items = Vec::new();
        for n in doc.items {
            flatten(n, &mut items);
        }
        let rules = items
            .iter_mut()
            .filter_map(|it| it.rule.take().map(|r| (it.code.to_string(), r)))
            .collect();
        Framework::assemble(doc.meta, items, doc.units, doc.catalog, doc.calendar, rules)
    }
}

pub const DOCUMENT_FORMAT: &str = "cezone.framework.v1";

/// The file a finding about a rule points into until a package names it.
pub const RULES_FILE: &str = "rules";
/// The file a finding about the manifest (id, title, declared total) points into until a
/// package names it.
pub const MANIFEST_FILE: &str = "manifest";

/// The stable JSON form of a framework (`cezone framework show --format json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkDocument {
    pub format: String,
    #[serde(flatten)]
    pub meta: FrameworkMeta,
    pub units: UnitRegistry,
    pub catalog: Catalog,
    pub calendar: Calendar,
    pub items: Vec<ItemNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemNode {
    #[serde(flatten)]
    pub item: Item,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ItemNode>,
}
