//! The org hierarchy scores are computed for: district → towns/streets → communities, with the
//! district's region class, each community's type and resident populations per year.

use std::collections::BTreeMap;

// Keys are the district's own validated ids; a fast hasher is what the hot paths need.
use foldhash::HashMap;

use serde::{Deserialize, Serialize};

crate::ident::ident_newtype!(
    /// Stable identifier of an org unit, e.g. `nanhai` or `nanhai.guicheng.c012`.
    OrgUnitId,
    "an org unit",
    "ASCII letters, digits, '-', '_', '.', at most 128",
    |text| {
        !text.is_empty()
            && text.len() <= 128
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    }
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgLevel {
    Province,
    City,
    District,
    Town,
    Community,
}

impl OrgLevel {
    pub fn parse(text: &str) -> Result<OrgLevel, String> {
        match text {
            "province" => Ok(OrgLevel::Province),
            "city" => Ok(OrgLevel::City),
            "district" => Ok(OrgLevel::District),
            "town" => Ok(OrgLevel::Town),
            "community" => Ok(OrgLevel::Community),
            _ => Err(format!(
                "'{text}' is not an org level (province, city, district, town, community)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrgLevel::Province => "province",
            OrgLevel::City => "city",
            OrgLevel::District => "district",
            OrgLevel::Town => "town",
            OrgLevel::Community => "community",
        }
    }
}

/// 城市社区 (居委会) or 农村社区 (村委会).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommunityType {
    Urban,
    Rural,
}

impl CommunityType {
    pub fn parse(text: &str) -> Result<CommunityType, String> {
        match text {
            "urban" => Ok(CommunityType::Urban),
            "rural" => Ok(CommunityType::Rural),
            _ => Err(format!("'{text}' is not a community type (urban, rural)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CommunityType::Urban => "urban",
            CommunityType::Rural => "rural",
        }
    }
}

/// 珠江三角洲 (Pearl River Delta) or 粤东、粤西、粤北 (less developed): targets depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegionClass {
    #[default]
    PearlRiverDelta,
    LessDeveloped,
}

impl RegionClass {
    pub fn parse(text: &str) -> Result<RegionClass, String> {
        match text {
            "pearl_river_delta" => Ok(RegionClass::PearlRiverDelta),
            "less_developed" => Ok(RegionClass::LessDeveloped),
            _ => Err(format!(
                "'{text}' is not a region class (pearl_river_delta, less_developed)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegionClass::PearlRiverDelta => "pearl_river_delta",
            RegionClass::LessDeveloped => "less_developed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUnit {
    pub id: OrgUnitId,
    pub name: String,
    pub level: OrgLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<OrgUnitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_type: Option<CommunityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionClass>,
    /// Resident population (常住人口) by year.
    #[serde(default)]
    pub population: BTreeMap<i32, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgError {
    #[error("org unit '{0}' already exists")]
    Duplicate(OrgUnitId),
    #[error("org unit '{id}' names parent '{parent}', which does not exist")]
    UnknownParent { id: OrgUnitId, parent: OrgUnitId },
    #[error("org unit '{0}' has no parent but the tree already has root '{1}'")]
    SecondRoot(OrgUnitId, OrgUnitId),
    #[error("org unit '{id}' at level {level} cannot sit under '{parent}' at level {parent_level}")]
    LevelOrder {
        id: OrgUnitId,
        level: &'static str,
        parent: OrgUnitId,
        parent_level: &'static str,
    },
    #[error("community '{0}' needs a community_type (urban or rural)")]
    MissingCommunityType(OrgUnitId),
    #[error("the org tree is empty")]
    Empty,
    #[error("org unit '{0}' does not exist")]
    NotFound(OrgUnitId),
    #[error("moving '{id}' under '{parent}' would put it inside its own subtree")]
    Cycle { id: OrgUnitId, parent: OrgUnitId },
}

/// Index of a unit inside one `OrgTree`. Indices are preorder positions: a parent always comes
/// before its children, so a reverse scan visits children before parents.
pub type OrgIdx = usize;

#[derive(Debug, Clone)]
pub struct OrgTree {
    units: Vec<OrgUnit>,
    parent: Vec<Option<OrgIdx>>,
    children: Vec<Vec<OrgIdx>>,
    /// Exclusive end of each unit's subtree in preorder.
    end: Vec<OrgIdx>,
    index: HashMap<OrgUnitId, OrgIdx>,
}

impl OrgTree {
    /// Builds the tree from units in any order; checks ids, parents, levels and community types.
    pub fn build(units: Vec<OrgUnit>) -> Result<OrgTree, OrgError> {
        let mut by_id: HashMap<OrgUnitId, usize> = HashMap::default();
        for (i, u) in units.iter().enumerate() {
            if by_id.insert(u.id.clone(), i).is_some() {
                return Err(OrgError::Duplicate(u.id.clone()));
            }
        }
        let mut root = None;
        let mut kids: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
        for (i, u) in units.iter().enumerate() {
            if u.level == OrgLevel::Community && u.community_type.is_none() {
                return Err(OrgError::MissingCommunityType(u.id.clone()));
            }
            match &u.parent {
                None => {
                    if let Some(r) = root {
                        let r: &OrgUnit = &units[r];
                        return Err(OrgError::SecondRoot(u.id.clone(), r.id.clone()));
                    }
                    root = Some(i);
                }
                Some(p) => {
                    let Some(&pi) = by_id.get(p) else {
                        return Err(OrgError::UnknownParent {
                            id: u.id.clone(),
                            parent: p.clone(),
                        });
                    };
                    if units[pi].level >= u.level {
                        return Err(OrgError::LevelOrder {
                            id: u.id.clone(),
                            level: u.level.as_str(),
                            parent: p.clone(),
                            parent_level: units[pi].level.as_str(),
                        });
                    }
                    kids[pi].push(i);
                }
            }
        }
        let root = root.ok_or(OrgError::Empty)?;
        // Children in a stable order (by id) so every traversal is deterministic.
        for k in &mut kids {
            k.sort_by(|a, b| units[*a].id.cmp(&units[*b].id));
        }
        // Preorder renumbering. Levels strictly increase downwards, so there is no cycle.
        let mut order = Vec::with_capacity(units.len());
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            order.push(i);
            for &c in kids[i].iter().rev() {
                stack.push(c);
            }
        }
        let mut new_of = vec![usize::MAX; units.len()];
        for (new, &old) in order.iter().enumerate() {
            new_of[old] = new;
        }
        let mut slots: Vec<Option<OrgUnit>> = units.into_iter().map(Some).collect();
        let mut out_units = Vec::with_capacity(order.len());
        let mut parent = Vec::with_capacity(order.len());
        let mut children = Vec::with_capacity(order.len());
        for &old in &order {
            let u = slots[old].take().expect("each unit once");
            parent.push(u.parent.as_ref().map(|p| new_of[by_id[p]]));
            children.push(kids[old].iter().map(|&c| new_of[c]).collect::<Vec<_>>());
            out_units.push(u);
        }
        let n = out_units.len();
        let mut end = vec![0; n];
        for i in (0..n).rev() {
            end[i] = children[i].last().map_or(i + 1, |&c| end[c]);
        }
        let index = out_units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        Ok(OrgTree {
            units: out_units,
            parent,
            children,
            end,
            index,
        })
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub fn root(&self) -> OrgIdx {
        0
    }

    pub fn unit(&self, i: OrgIdx) -> &OrgUnit {
        &self.units[i]
    }

    pub fn units(&self) -> &[OrgUnit] {
        &self.units
    }

    pub fn find(&self, id: &OrgUnitId) -> Option<OrgIdx> {
        self.index.get(id).copied()
    }

    pub fn parent(&self, i: OrgIdx) -> Option<OrgIdx> {
        self.parent[i]
    }

    pub fn children(&self, i: OrgIdx) -> &[OrgIdx] {
        &self.children[i]
    }

    /// The half-open preorder range of `i`'s subtree (itself included).
    pub fn subtree(&self, i: OrgIdx) -> std::ops::Range<OrgIdx> {
        i..self.end[i]
    }

    pub fn contains(&self, ancestor: OrgIdx, i: OrgIdx) -> bool {
        ancestor <= i && i < self.end[ancestor]
    }

    /// Strict ancestors, nearest first.
    pub fn ancestors(&self, i: OrgIdx) -> impl Iterator<Item = OrgIdx> + '_ {
        std::iter::successors(self.parent[i], move |&p| self.parent[p])
    }

    /// The unit itself and then its ancestors up to the root.
    pub fn path_to_root(&self, i: OrgIdx) -> impl Iterator<Item = OrgIdx> + '_ {
        std::iter::once(i).chain(self.ancestors(i))
    }

    /// The region class in force for a unit: its own or its nearest ancestor's, else the default.
    pub fn region(&self, i: OrgIdx) -> RegionClass {
        self.path_to_root(i)
            .find_map(|a| self.units[a].region)
            .unwrap_or_default()
    }

    /// The unit at `level` on the path from `i` to the root, if any.
    pub fn ancestor_at(&self, i: OrgIdx, level: OrgLevel) -> Option<OrgIdx> {
        self.path_to_root(i).find(|&a| self.units[a].level == level)
    }

    pub fn count_at_level(&self, level: OrgLevel) -> usize {
        self.units.iter().filter(|u| u.level == level).count()
    }

    /// Population for one year: the unit's own figure if filed, else the sum of its children's.
    pub fn populations(&self, year: i32) -> Vec<u64> {
        let mut pop = vec![0u64; self.len()];
        for i in (0..self.len()).rev() {
            pop[i] = match self.units[i].population.get(&year) {
                Some(&p) => p,
                None => self.children[i].iter().map(|&c| pop[c]).sum(),
            };
        }
        pop
    }

    /// Consumes the tree, giving back its units (in preorder) for rebuilding after a change.
    pub fn into_units(self) -> Vec<OrgUnit> {
        self.units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, level: OrgLevel, parent: Option<&str>) -> OrgUnit {
        OrgUnit {
            id: OrgUnitId::parse(id).unwrap(),
            name: id.to_string(),
            level,
            parent: parent.map(|p| OrgUnitId::parse(p).unwrap()),
            community_type: (level == OrgLevel::Community).then_some(CommunityType::Urban),
            region: None,
            population: BTreeMap::from([(2013, 10)]),
        }
    }

    #[test]
    fn builds_preorder_with_subtree_ranges() {
        let t = OrgTree::build(vec![
            unit("c2", OrgLevel::Community, Some("t1")),
            unit("d", OrgLevel::District, None),
            unit("t1", OrgLevel::Town, Some("d")),
            unit("c1", OrgLevel::Community, Some("t1")),
            unit("t2", OrgLevel::Town, Some("d")),
        ])
        .unwrap();
        let ids: Vec<&str> = t.units().iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["d", "t1", "c1", "c2", "t2"]);
        assert_eq!(t.subtree(1), 1..4);
        assert!(t.contains(0, 4));
        assert!(!t.contains(1, 4));
        assert_eq!(t.ancestors(3).collect::<Vec<_>>(), vec![1, 0]);
    }

    #[test]
    fn population_falls_back_to_children() {
        let mut d = unit("d", OrgLevel::District, None);
        d.population.clear();
        let t = OrgTree::build(vec![
            d,
            unit("t1", OrgLevel::Town, Some("d")),
            unit("t2", OrgLevel::Town, Some("d")),
        ])
        .unwrap();
        assert_eq!(t.populations(2013)[0], 20);
        assert_eq!(t.populations(2099)[0], 0);
    }

    #[test]
    fn rejects_bad_trees() {
        assert!(matches!(
            OrgTree::build(vec![unit("t", OrgLevel::Town, Some("d"))]),
            Err(OrgError::UnknownParent { .. })
        ));
        assert!(matches!(
            OrgTree::build(vec![
                unit("d", OrgLevel::District, None),
                unit("d2", OrgLevel::District, Some("d"))
            ]),
            Err(OrgError::LevelOrder { .. })
        ));
        let mut c = unit("c", OrgLevel::Community, Some("d"));
        c.community_type = None;
        assert!(matches!(
            OrgTree::build(vec![unit("d", OrgLevel::District, None), c]),
            Err(OrgError::MissingCommunityType(_))
        ));
        assert!(matches!(OrgTree::build(vec![]), Err(OrgError::Empty)));
    }
}
