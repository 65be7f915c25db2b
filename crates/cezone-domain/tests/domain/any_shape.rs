//! Frameworks coded otherwise than Guangdong's: letters (`A1.2.1`, `B2`) and Chinese numbering
//! by level (`一、`, `（一）`, `1.`). They import, validate, score and export with their codes as
//! written.

use std::path::PathBuf;

use cezone_domain::code::ItemCode;
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::engine::Engine;
use cezone_domain::export;
use cezone_domain::findings::{FindingKind, Findings};
use cezone_domain::framework::Framework;
use cezone_domain::import::read_csv_rows;
use cezone_domain::org::OrgTree;
use cezone_domain::package::{PackageParts, read_parts};
use cezone_domain::points::Points;
use proptest::prelude::*;

fn package_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

fn parts(name: &str) -> PackageParts {
    let dir = package_dir(name);
    let manifest = std::fs::read_to_string(dir.join("framework.toml")).unwrap();
    let read = move |f: &str| std::fs::read(dir.join(f)).map_err(|e| e.to_string());
    read_parts(&format!("data/{name}/framework.toml"), &manifest, &read).unwrap()
}

fn package(name: &str) -> (Framework, Findings) {
    parts(name).build()
}

fn codes(fw: &Framework) -> Vec<String> {
    fw.items().iter().map(|i| i.code.to_string()).collect()
}

fn find<'f>(fw: &'f Framework, code: &str) -> &'f cezone_domain::framework::Item {
    fw.item(fw.find(&ItemCode::parse(code).unwrap()).unwrap())
}

#[test]
fn a_lettered_framework_imports_with_its_codes_as_written() {
    let (fw, findings) = package("example-lettered");
    assert_eq!(findings.errors(), 0, "{findings:#?}");
    assert_eq!(
        codes(&fw),
        [
            "A1", "A1.1", "A1.1.1", "A1.1.2", "A1.2", "A1.2.1", "B2", "B2.1", "B2.1.1", "B2.1.2",
            "B2.2", "B2.2.1", "B2.2.2"
        ]
    );
    let it = find(&fw, "A1.1.1");
    assert!(it.key);
    assert_eq!(it.title, "成立社区教育领导小组，定期研究社区教育工作。");
    assert_eq!(find(&fw, "B2").title, "教育活动");
    assert_eq!(find(&fw, "B2").points, Points::whole(12));
    assert_eq!(fw.max_points(), Points::whole(20));
    for c in ["A1.2.1", "B2.1.1", "B2.1.2", "B2.2.1", "B2.2.2"] {
        assert!(find(&fw, c).rule.is_some(), "{c} has its rule");
    }
}

#[test]
fn a_framework_numbered_the_chinese_way_builds_codes_from_its_levels() {
    let (fw, findings) = package("example-chinese");
    assert_eq!(findings.errors(), 0, "{findings:#?}");
    assert_eq!(
        codes(&fw),
        [
            "一",
            "一.（一）",
            "一.（一）.1",
            "一.（一）.2",
            "一.（二）",
            "一.（二）.1",
            "二",
            "二.（一）",
            "二.（一）.1",
            "二.（二）",
            "二.（二）.1"
        ]
    );
    assert_eq!(find(&fw, "一").title, "组织领导");
    assert_eq!(find(&fw, "一.（一）").title, "领导机制");
    assert_eq!(find(&fw, "一.（一）").points, Points::whole(6));
    let it = find(&fw, "一.（一）.1");
    assert!(it.key);
    assert_eq!(it.title, "成立社区教育领导小组，明确牵头部门。");
    assert_eq!(it.source_row, Some(2));
    for c in ["一.（二）.1", "二.（一）.1", "二.（二）.1"] {
        assert!(find(&fw, c).rule.is_some(), "{c} has its rule");
    }
}

#[test]
fn other_shapes_score_over_demo_facts_for_their_own_rules() {
    for name in ["example-lettered", "example-chinese"] {
        let (fw, _) = package(name);
        let d = generate(&fw, &DemoParams::nanhai(2013));
        let facts = d.facts(&fw.catalog);
        // Facts for every metric and question the package's rules read, none for Guangdong's.
        for c in fw.leaves() {
            let rule = fw.rule_of(c);
            for m in rule.metrics() {
                assert!(
                    facts.statistics.iter().any(|s| &s.metric == m),
                    "{name}: no statistic of {m}"
                );
            }
            for q in rule.questions() {
                assert!(
                    facts.surveys.iter().any(|s| &s.question == q),
                    "{name}: no survey answers to {q}"
                );
            }
        }
        for s in &facts.statistics {
            assert!(
                fw.catalog.metric(&s.metric).is_some(),
                "{name}: {} is not the package's",
                s.metric
            );
        }
        let tree = OrgTree::build(d.units.clone()).unwrap();
        let engine = Engine::new(fw.clone().into(), tree.clone().into(), &facts, 2013);
        let board = engine.scoreboard();
        let total = board.total(&fw, tree.root());
        assert!(
            total.confirmed > Points::ZERO && total.projected <= fw.max_points(),
            "{name}: {total:?}"
        );
        // Every criterion scored by a measured target earns something from the demo's facts.
        for c in fw.leaves().filter(|&c| fw.item(c).rule.is_some()) {
            assert!(
                board.cell(tree.root(), c).projected > Points::ZERO,
                "{name}: {} earned nothing",
                fw.item(c).code
            );
        }
        let summary = engine.summary(&board, tree.root(), 8);
        let areas: Vec<&str> = summary.areas.iter().map(|a| a.code.as_str()).collect();
        let want: Vec<String> = fw
            .roots()
            .iter()
            .map(|&r| fw.item(r).code.to_string())
            .collect();
        assert_eq!(areas, want);
        for k in &summary.key_criteria {
            assert!(ItemCode::parse(&k.code).is_ok(), "{}", k.code);
        }
    }
}

#[test]
fn other_shapes_survive_the_csv_and_json_round_trips() {
    for name in ["example-lettered", "example-chinese"] {
        let (fw, _) = package(name);
        let csv = export::to_csv(&fw);
        let rows = read_csv_rows(csv.as_bytes()).unwrap();
        let (again, findings) = parts(name).with_table("exported.csv", rows).build();
        assert_eq!(findings.errors(), 0, "{name}: {findings:#?}\n{csv}");
        assert_eq!(codes(&again), codes(&fw), "{name}:\n{csv}");
        for (a, b) in again.items().iter().zip(fw.items()) {
            assert_eq!(
                (&a.title, a.points, a.key, &a.rule),
                (&b.title, b.points, b.key, &b.rule),
                "{name} {}",
                a.code
            );
        }
        let doc: cezone_domain::framework::FrameworkDocument =
            serde_json::from_str(&export::to_json(&fw)).unwrap();
        let (back, findings) = Framework::from_document(doc);
        assert_eq!(findings.errors(), 0, "{name}: {findings:#?}");
        assert_eq!(codes(&back), codes(&fw));
    }
    let (fw, _) = package("example-chinese");
    let csv = export::to_csv(&fw);
    assert!(
        csv.contains("一、组织领导（10分）,（一）领导机制（6分）,★1.成立社区教育领导小组"),
        "{csv}"
    );
}

#[test]
fn a_chinese_label_without_an_item_above_it_is_reported_where_it_stands() {
    let table = "一级指标,二级指标,三级指标,分值,提供材料,负责单位\n\
                 ,（一）领导机制（2分）,1.成立领导小组,2分,文件,区教育局\n\
                 一、组织领导（2分）,（一）领导机制（2分）,乙.成立领导小组,2分,文件,区教育局\n";
    let rows = read_csv_rows(table.as_bytes()).unwrap();
    let (_, findings) = parts("example-chinese").with_table("t.csv", rows).build();
    let out_of_place = findings
        .of_kind(FindingKind::CodeOutOfPlace)
        .next()
        .unwrap();
    assert_eq!(out_of_place.location.row, Some(2));
    assert!(
        out_of_place.message.contains("（一）") && out_of_place.message.contains("level-1"),
        "{}",
        out_of_place.message
    );
    let malformed = findings.of_kind(FindingKind::MalformedCode).next().unwrap();
    assert_eq!(malformed.location.row, Some(3));
    assert!(
        malformed.message.contains("A1.2.1") && malformed.message.contains("一、"),
        "{}",
        malformed.message
    );
}

/// Labels of every accepted shape, and text around them, for the properties below.
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..200).prop_map(|n| n.to_string()),
        ("[A-C]{1,2}", 1u32..30).prop_map(|(l, n)| format!("{l}{n}")),
        prop::sample::select(vec![
            "一",
            "二",
            "九",
            "十",
            "十一",
            "二十",
            "（一）",
            "(二)",
            "（3）",
            "①"
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    /// A code reads back as itself, orders consistently with equality, and is after its parent.
    #[test]
    fn codes_read_back_and_order_consistently(a in prop::collection::vec(label(), 1..4),
                                              b in prop::collection::vec(label(), 1..4)) {
        let a = ItemCode::parse(&a.join(".")).unwrap();
        let b = ItemCode::parse(&b.join(".")).unwrap();
        prop_assert_eq!(ItemCode::parse(&a.to_string()).unwrap(), a.clone());
        prop_assert_eq!(a.cmp(&b) == std::cmp::Ordering::Equal, a == b);
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        if let Some(p) = a.parent() {
            prop_assert!(p < a && p.is_prefix_of(&a));
        }
    }

    /// Any cell splits without panicking; a code it finds reads back as itself.
    #[test]
    fn any_cell_splits(cell in "\\PC{0,24}", code in label(), title in "\\PC{0,8}") {
        for text in [cell, format!("{code}、{title}"), format!("★{code}.{title}")] {
            let head = cezone_domain::code::split_cell(&text);
            if let Some(c) = head.code {
                prop_assert_eq!(ItemCode::parse(&c.to_string()).unwrap(), c);
            }
        }
    }
}
