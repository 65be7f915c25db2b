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
    let aliases: std::collections::BTreeSet<String> = findings
        .of_kind(FindingKind::UnitAlias)
        .map(|f| f.message.split('\'').nth(1).unwrap().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> = [
        "区教育",
        "区民政局",
        "区人社局",
        "区组织部",
        "区宣传部",
        "区统战部",
        "区社工委员",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(aliases, expected);
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
