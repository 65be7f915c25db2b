//! The Guangdong seed table as transcribed: every criterion present, and every defect of the
//! government table reported, none silently fixed.

use cezone_domain::findings::{FindingKind, Severity};
use cezone_domain::guangdong;
use cezone_domain::points::Points;

use crate::support::code;

#[test]
fn the_seed_framework_has_every_criterion_and_the_100_point_total() {
    let (fw, findings) = guangdong::framework();
    assert!(
        !findings.has_errors(),
        "{:#?}",
        findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect::<Vec<_>>()
    );
    assert_eq!(fw.roots().len(), 5);
    assert_eq!(fw.leaves().count(), 40);
    let areas: Vec<i64> = fw
        .roots()
        .iter()
        .map(|&r| fw.item(r).points.milli() / 1000)
        .collect();
    assert_eq!(areas, vec![16, 24, 20, 20, 20]);
    assert_eq!(fw.max_points(), Points::whole(100));
    let key: Vec<String> = fw
        .leaves()
        .filter(|&c| fw.item(c).key)
        .map(|c| fw.item(c).code.to_string())
        .collect();
    assert_eq!(
        key,
        [
            "1.3.1", "1.4.1", "2.1.1", "2.3.1", "2.4.2", "4.1.1", "4.1.2", "5.1.1", "5.2.2"
        ]
    );
    let c = fw.find(&code("4.3.2")).unwrap();
    assert_eq!(fw.units.name_of(&fw.item(c).responsible[0]), "区公安局");
}

#[test]
fn the_learning_organisation_group_that_does_not_add_up_is_reported_with_both_numbers() {
    let (_, findings) = guangdong::framework();
    let mismatches: Vec<_> = findings.of_kind(FindingKind::PointsMismatch).collect();
    assert_eq!(mismatches.len(), 1, "{mismatches:#?}");
    let m = mismatches[0];
    assert_eq!(m.location.item.as_deref(), Some("3.2"));
    assert!(
        m.message.contains("declares 7") && m.message.contains("add up to 8"),
        "{}",
        m.message
    );
    assert_eq!(m.location.row, Some(27));
}

#[test]
fn same_as_above_cells_are_resolved_and_reported() {
    let (fw, findings) = guangdong::framework();
    let same: Vec<String> = findings
        .of_kind(FindingKind::SameAsAbove)
        .map(|f| f.location.item.clone().unwrap())
        .collect();
    assert_eq!(same, ["1.3.2", "3.1.2", "3.1.3", "3.2.3"]);
    let above = fw.item(fw.find(&code("1.3.1")).unwrap()).materials.clone();
    assert_eq!(fw.item(fw.find(&code("1.3.2")).unwrap()).materials, above);
}

#[test]
fn unit_aliases_are_mapped_to_one_canonical_unit_and_reported() {
    let (fw, findings) = guangdong::framework();
    // The table spells two units two ways; the other short names are the table's own and are
    // what people see (the plan's long forms are read as the same units).
    let aliases: std::collections::BTreeSet<String> = findings
        .of_kind(FindingKind::UnitAlias)
        .map(|f| f.message.split('\'').nth(1).unwrap().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> = ["区教育", "区社工委员"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(aliases, expected);
    for (id, table, plan) in [
        ("publicity-dept", "区宣传部", Some("区委宣传部")),
        ("civil-affairs", "区民政局", Some("区民政和外事侨务局")),
        ("organization-dept", "区组织部", Some("区委组织部")),
        ("hrss", "区人社局", Some("区人力资源和社会保障局")),
        ("united-front-dept", "区统战部", None),
    ] {
        let id = cezone_domain::units::UnitId::parse(id).unwrap();
        assert_eq!(fw.units.name_of(&id), table);
        assert_eq!(fw.units.get(&id).unwrap().plan_name.as_deref(), plan);
    }
    let c = fw.find(&code("3.2.3")).unwrap();
    let shown: Vec<String> = fw
        .item(c)
        .responsible
        .iter()
        .map(|u| fw.units.name_of(u))
        .collect();
    assert_eq!(
        shown,
        [
            "区组织部",
            "区宣传部",
            "区教育局",
            "区民政局",
            "各镇（街道）"
        ]
    );
    // 区社工委员 (2.4.1) and 区社工委 (1.3.2) are one unit.
    let a = &fw.item(fw.find(&code("2.4.1")).unwrap()).responsible;
    let b = &fw.item(fw.find(&code("1.3.2")).unwrap()).responsible;
    assert!(a.iter().any(|u| u.as_str() == "social-work"));
    assert!(b.iter().any(|u| u.as_str() == "social-work"));
}

#[test]
fn the_plans_impossible_date_and_mistyped_year_are_reported_beside_the_corrections() {
    let (fw, findings) = guangdong::framework();
    let invalid: Vec<_> = findings.of_kind(FindingKind::InvalidDate).collect();
    assert_eq!(invalid.len(), 1, "{invalid:#?}");
    assert!(
        invalid[0].message.contains("2014年2月30日") && invalid[0].message.contains("2014-02-28")
    );
    let typo: Vec<_> = findings.of_kind(FindingKind::MistypedYear).collect();
    assert_eq!(typo.len(), 2, "start and end of phase 4: {typo:#?}");
    assert!(
        typo.iter()
            .all(|f| f.message.contains("2104") && f.severity == Severity::Warning)
    );
    assert_eq!(fw.calendar.phases.len(), 4);
    assert_eq!(
        fw.calendar
            .checkpoint("materials-submitted")
            .unwrap()
            .due
            .to_string(),
        "2014-02-28"
    );
}

#[test]
fn every_criterion_with_a_quantitative_target_has_a_rule() {
    let (fw, _) = guangdong::framework();
    let with_rule: Vec<String> = fw
        .leaves()
        .filter(|&c| fw.item(c).rule.is_some())
        .map(|c| fw.item(c).code.to_string())
        .collect();
    for c in [
        "2.3.1", "2.4.1", "2.4.3", "3.1.1", "3.1.2", "3.1.3", "3.2.1", "3.2.2", "3.2.3", "4.1.1",
        "4.1.2", "4.3.2",
    ] {
        assert!(with_rule.iter().any(|x| x == c), "{c} has no rule");
    }
}

#[test]
fn the_framework_total_is_reported_with_both_numbers_where_it_is_declared() {
    let (_, findings) = guangdong::framework();
    let totals: Vec<_> = findings.of_kind(FindingKind::TotalMismatch).collect();
    assert_eq!(totals.len(), 1, "{totals:#?}");
    let t = totals[0];
    assert!(
        t.message.contains("total of 100") && t.message.contains("add up to 101"),
        "{}",
        t.message
    );
    assert!(
        t.message.contains("3.2 declares 7 over children worth 8"),
        "{}",
        t.message
    );
    assert_eq!(
        t.location.file.as_deref(),
        Some("data/guangdong-2013/framework.toml")
    );
    assert_eq!(t.location.row, Some(6), "the total_points line");
}

#[test]
fn calendar_and_rules_findings_name_the_file_with_its_path_and_line() {
    let (_, findings) = guangdong::framework();
    let invalid = findings.of_kind(FindingKind::InvalidDate).next().unwrap();
    assert_eq!(
        invalid.location.file.as_deref(),
        Some("data/guangdong-2013/calendar.toml")
    );
    let line = invalid.location.row.expect("a line");
    let text: Vec<&str> = guangdong::CALENDAR.lines().collect();
    assert_eq!(text[line as usize - 1], "[[checkpoint]]");
    assert_eq!(text[line as usize], "id = \"materials-submitted\"");
    // Table findings name the table beside the manifest.
    let same = findings.of_kind(FindingKind::SameAsAbove).next().unwrap();
    assert_eq!(
        same.location.file.as_deref(),
        Some("data/guangdong-2013/indicators.csv")
    );

    // A rule that does not fit points at its entry in the rules file.
    let rules = format!(
        "{}\n[rules.\"9.9.9\"]\nkind = \"evidence\"\n",
        guangdong::RULES
    );
    let mut parts = guangdong::parts();
    parts.rules = cezone_domain::rules::RulesFile::from_toml(&rules).unwrap();
    let (_, findings) = parts.build();
    let stray = findings
        .of_kind(FindingKind::RuleForUnknownItem)
        .next()
        .unwrap();
    assert_eq!(
        stray.location.file.as_deref(),
        Some("data/guangdong-2013/rules.toml")
    );
    let line = stray.location.row.expect("a line") as usize;
    assert_eq!(rules.lines().nth(line - 1), Some("[rules.\"9.9.9\"]"));
}

#[test]
fn the_before_convention_is_a_setting_each_due_date_is_checked_against() {
    let (fw, findings) = guangdong::framework();
    assert_eq!(
        fw.calendar.deadline_before,
        cezone_domain::calendar::DeadlineBefore::Inclusive
    );
    assert_eq!(findings.of_kind(FindingKind::DateMismatch).count(), 0);
    let c = fw.calendar.checkpoint("key-unit-inspection").unwrap();
    assert_eq!(
        c.due_wording(),
        "2014-04-10 截止（含当日）due on or before 2014-04-10"
    );

    // Read "…前" as excluding the day, and the dates that still name the day are reported.
    let text = guangdong::CALENDAR.replace(
        "deadline_before = \"inclusive\"",
        "deadline_before = \"exclusive\"",
    );
    let cal = cezone_domain::calendar::Calendar::from_toml(&text).unwrap();
    let f = cal.check();
    let wrong: Vec<String> = f
        .of_kind(FindingKind::DateMismatch)
        .map(|f| f.message.clone())
        .collect();
    assert_eq!(wrong.len(), 2, "{wrong:#?}");
    assert!(
        wrong
            .iter()
            .any(|m| m.contains("2014年4月10日前") && m.contains("due 2014-04-09")),
        "{wrong:#?}"
    );
    // With the dates moved to the day before, it holds.
    let moved = text
        .replace("due = \"2014-01-01\"", "due = \"2013-12-31\"")
        .replace("due = \"2014-04-10\"", "due = \"2014-04-09\"");
    let cal = cezone_domain::calendar::Calendar::from_toml(&moved).unwrap();
    assert_eq!(cal.check().of_kind(FindingKind::DateMismatch).count(), 0);
}

#[test]
fn every_choice_the_document_leaves_open_is_listed_with_its_setting() {
    use cezone_domain::interpret::{Topic, interpretations};
    let (fw, _) = guangdong::framework();
    let all = interpretations(&fw);
    let find = |scope: &str, topic: Topic| {
        all.iter()
            .find(|i| i.scope == scope && i.topic == topic)
            .unwrap_or_else(|| panic!("no {topic:?} for {scope}: {all:#?}"))
    };
    let band = find("3.2.2", Topic::ToleranceBand);
    assert_eq!(band.document, "学习型党政机关创建率达70%左右");
    assert!(band.choice.contains("65%–70%"));
    assert_eq!(
        band.setting,
        "rules.toml [rules.\"3.2.2\"] parts[1].rule.partial"
    );
    let w = find("2.3.1", Topic::Weights);
    assert!(w.choice.contains("1 : 2"), "{}", w.choice);
    assert!(w.document.contains("3 分"), "{}", w.document);
    assert!(find("4.1.1", Topic::Weights).choice.contains("1 : 4"));
    assert!(
        find("2.3.1", Topic::PartialCredit)
            .choice
            .contains("实测÷目标")
    );
    let cap = find("3.2", Topic::GroupCap);
    assert!(cap.document.contains("合计 8 分"), "{}", cap.document);
    let total = find("gd-community-education", Topic::Total);
    assert!(total.document.contains("101"), "{}", total.document);
    let before = find("checkpoint key-unit-inspection", Topic::Deadline);
    assert_eq!(before.document, "2014年4月10日前要对重点单位进行检查");
    assert_eq!(before.setting, "calendar.toml deadline_before");
    assert!(
        find("checkpoint materials-complete", Topic::Deadline)
            .choice
            .contains("含当日")
    );
    let alias = find("health", Topic::AddedAlias);
    assert!(alias.choice.contains("区卫计局"));
    let name = find("hrss", Topic::UnitName);
    assert!(name.document.contains("区人力资源和社会保障局"));
    // Criteria without a rule are listed together, with what the office does with them.
    let evidence = all
        .iter()
        .find(|i| i.topic == Topic::EvidenceGrading && i.scope.contains("1.1.1"))
        .unwrap();
    assert!(!evidence.scope.contains("2.3.1"));
}
