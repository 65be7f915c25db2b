//! Small hand-made frameworks and org trees for the rule tests.

use std::collections::BTreeMap;

use cezone_domain::calendar::Calendar;
use cezone_domain::code::ItemCode;
use cezone_domain::framework::{Framework, FrameworkId, FrameworkMeta, Item};
use cezone_domain::org::{CommunityType, OrgLevel, OrgTree, OrgUnit, OrgUnitId, RegionClass};
use cezone_domain::points::Points;
use cezone_domain::rules::{Catalog, RulesFile};
use cezone_domain::units::{UnitId, UnitRegistry};

pub const UNITS: &str = r#"
[[unit]]
id = "education"
name = "区教育局"
[[unit]]
id = "finance"
name = "区财政局"
[[unit]]
id = "towns"
name = "各镇（街道）"
kind = "each_org_level"
level = "town"
"#;

pub fn code(s: &str) -> ItemCode {
    ItemCode::parse(s).unwrap()
}

pub fn item(c: &str, points: i64, responsible: &[&str]) -> Item {
    Item {
        code: code(c),
        title: format!("item {c}"),
        points: Points::whole(points),
        declared: true,
        key: false,
        materials: "材料".into(),
        responsible: responsible
            .iter()
            .map(|u| UnitId::parse(u).unwrap())
            .collect(),
        rule: None,
        source_row: None,
    }
}

/// A one-area framework: area 1 (declared `area_points`) with the given criteria and rules.
pub fn framework(area_points: i64, criteria: Vec<Item>, rules_toml: &str) -> Framework {
    let rules = RulesFile::from_toml(rules_toml).unwrap();
    let mut items = vec![item("1", area_points, &[])];
    items.extend(criteria);
    let (fw, findings) = Framework::assemble(
        FrameworkMeta {
            id: FrameworkId::parse("test").unwrap(),
            edition: "1".into(),
            title: "test".into(),
            total_points: None,
        },
        items,
        UnitRegistry::from_toml(UNITS).unwrap(),
        rules.catalog,
        Calendar::default(),
        rules.rules,
    );
    assert!(!findings.has_errors(), "{findings:#?}");
    fw
}

pub fn ou(
    id: &str,
    level: OrgLevel,
    parent: Option<&str>,
    ctype: Option<CommunityType>,
    pop: u64,
) -> OrgUnit {
    OrgUnit {
        id: OrgUnitId::parse(id).unwrap(),
        name: id.to_string(),
        level,
        parent: parent.map(|p| OrgUnitId::parse(p).unwrap()),
        community_type: ctype,
        region: None,
        population: if pop > 0 {
            BTreeMap::from([(2013, pop), (2012, pop)])
        } else {
            BTreeMap::new()
        },
    }
}

/// d → t1 (c1 urban 1000, c2 rural 3000), t2 (c3 urban 4000).
pub fn small_tree(region: RegionClass) -> OrgTree {
    let mut d = ou("d", OrgLevel::District, None, None, 0);
    d.region = Some(region);
    OrgTree::build(vec![
        d,
        ou("t1", OrgLevel::Town, Some("d"), None, 0),
        ou("t2", OrgLevel::Town, Some("d"), None, 0),
        ou(
            "c1",
            OrgLevel::Community,
            Some("t1"),
            Some(CommunityType::Urban),
            1000,
        ),
        ou(
            "c2",
            OrgLevel::Community,
            Some("t1"),
            Some(CommunityType::Rural),
            3000,
        ),
        ou(
            "c3",
            OrgLevel::Community,
            Some("t2"),
            Some(CommunityType::Urban),
            4000,
        ),
    ])
    .unwrap()
}

pub fn catalog_toml() -> &'static str {
    r#"
[[metric]]
id = "served"
name = "served"
unit = "person"
[[metric]]
id = "registered"
name = "registered"
unit = "person"
[[metric]]
id = "trained"
name = "trained"
unit = "person"
[[metric]]
id = "funding"
name = "funding"
unit = "yuan"
[[metric]]
id = "managers"
name = "managers"
unit = "person"
[[metric]]
id = "cases"
name = "cases"
unit = "count"
[[question]]
id = "aware"
text = "aware?"
kind = "yes_no"
[[question]]
id = "satisfied"
text = "satisfied?"
kind = "likert5"
satisfied_from = 4
"#
}

#[allow(dead_code)]
pub fn empty_catalog() -> Catalog {
    Catalog::default()
}
