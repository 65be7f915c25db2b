//! The framework package against the document it transcribes: the plan as published
//! (`data/guangdong-2013/source/plan-2013.txt`), read here on its own terms — its annex table
//! cell by cell, its 工作分工 paragraph by paragraph — and compared with what the package says:
//! titles, points, ★, materials, responsible units, targets, unit names and duties.

use std::collections::BTreeMap;

use cezone_domain::guangdong;
use cezone_domain::rules::{Fen, Partial, Rule, Target};
use cezone_domain::units::Resolution;

const DOCUMENT: &str = include_str!("../../../../data/guangdong-2013/source/plan-2013.txt");

/// One row of the annex table as the document prints it.
#[derive(Debug, Clone)]
struct DocRow {
    code: String,
    key: bool,
    title: String,
    points: String,
    materials: String,
    units: String,
}

/// A group heading of the table: `1.1认知理念（2分）`.
#[derive(Debug, Clone)]
struct DocGroup {
    code: String,
    title: String,
    points: String,
}

/// The annex's cells in order. A cell starts on a line opening with a tab; the lines after it
/// that do not (the document breaks long cells over several lines) belong to it.
fn cells() -> Vec<String> {
    let start = DOCUMENT.find("\t一级指标").expect("the annex table");
    let mut out: Vec<String> = Vec::new();
    for line in DOCUMENT[start..].lines() {
        if let Some(rest) = line.strip_prefix('\t') {
            out.push(rest.trim().to_string());
        } else if !line.trim().is_empty()
            && let Some(last) = out.last_mut()
        {
            last.push_str(line.trim());
        }
    }
    out
}

fn is_code_char(c: char) -> bool {
    c.is_ascii_digit() || c == '.' || c == '．'
}

/// Splits `★2.3.1区（县、市）…` into (key, code, rest).
fn split_code(cell: &str) -> (bool, String, String) {
    let (key, rest) = match cell.strip_prefix('★') {
        Some(r) => (true, r),
        None => (false, cell),
    };
    let end = rest
        .char_indices()
        .find(|&(_, c)| !is_code_char(c))
        .map_or(rest.len(), |(i, _)| i);
    let code = rest[..end]
        .replace('．', ".")
        .trim_end_matches('.')
        .to_string();
    (key, code, rest[end..].trim().to_string())
}

fn document_table() -> (Vec<DocGroup>, Vec<DocRow>) {
    let cells = cells();
    let mut groups = Vec::new();
    let mut rows = Vec::new();
    let mut i = 0;
    while i < cells.len() {
        let (key, code, rest) = split_code(&cells[i]);
        let depth = code.split('.').filter(|s| !s.is_empty()).count();
        if depth == 3 {
            rows.push(DocRow {
                code,
                key,
                title: rest,
                points: cells[i + 1].clone(),
                materials: cells[i + 2].clone(),
                units: cells[i + 3].clone(),
            });
            i += 4;
            continue;
        }
        if (depth == 1 || depth == 2)
            && let Some(open) = rest.rfind('（')
        {
            let points: String = rest[open..].chars().filter(char::is_ascii_digit).collect();
            groups.push(DocGroup {
                code,
                title: rest[..open].trim().to_string(),
                points,
            });
        }
        i += 1;
    }
    (groups, rows)
}

/// Whitespace does not count: the document pads some cells with spaces.
fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn yuan(f: Fen) -> String {
    let t = format!("{}.{:02}", f.0 / 100, f.0 % 100);
    t.trim_end_matches('0').trim_end_matches('.').to_string() + "元"
}

#[test]
fn the_package_title_is_the_documents() {
    let (fw, _) = guangdong::framework();
    assert!(
        DOCUMENT.contains(&format!("附件： {}", fw.meta.title)),
        "title '{}' is not the annex's",
        fw.meta.title
    );
}

#[test]
fn every_criterion_and_group_reads_as_the_document_prints_it() {
    let (fw, _) = guangdong::framework();
    let (groups, rows) = document_table();
    assert_eq!(rows.len(), 40, "the document's table has 40 criteria");
    assert_eq!(groups.len(), 5 + 16, "5 areas and 16 items: {groups:#?}");
    assert_eq!(fw.leaves().count(), rows.len());

    for g in &groups {
        let code = cezone_domain::ItemCode::parse(&g.code).unwrap();
        let it = fw.item(
            fw.find(&code)
                .unwrap_or_else(|| panic!("{} missing", g.code)),
        );
        assert_eq!(squash(&it.title), squash(&g.title), "title of {}", g.code);
        assert_eq!(it.points.to_string(), g.points, "points of {}", g.code);
    }

    let mut previous_materials = String::new();
    for r in &rows {
        let code = cezone_domain::ItemCode::parse(&r.code).unwrap();
        let i = fw
            .find(&code)
            .unwrap_or_else(|| panic!("{} missing", r.code));
        let it = fw.item(i);
        assert_eq!(squash(&it.title), squash(&r.title), "title of {}", r.code);
        assert_eq!(it.key, r.key, "★ of {}", r.code);
        assert_eq!(format!("{}分", it.points), r.points, "points of {}", r.code);
        // "同上" (same as above) is the row above's materials, as the package resolves it.
        let materials = if r.materials.starts_with("同上") {
            previous_materials.clone()
        } else {
            r.materials.clone()
        };
        assert_eq!(
            squash(&it.materials),
            squash(&materials),
            "materials of {}",
            r.code
        );
        previous_materials = materials;

        // Every name in the cell is one of the package's units, in the document's order, and
        // the name people see is the one the table writes unless the table misspells it.
        let resolved = fw.units.resolve_cell(&r.units);
        let mut ids = Vec::new();
        for (spelling, res) in &resolved {
            let id = match res {
                Resolution::Canonical(id) => {
                    assert_eq!(
                        fw.units.name_of(id),
                        *spelling,
                        "{}: the table's '{spelling}' is shown as another name",
                        r.code
                    );
                    id
                }
                Resolution::Alias { id, added, .. } => {
                    assert!(
                        !added,
                        "{}: '{spelling}' is the document's, not an added alias",
                        r.code
                    );
                    id
                }
                Resolution::Unknown => panic!("{}: '{spelling}' is not a unit", r.code),
            };
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        assert_eq!(it.responsible, ids, "responsible units of {}", r.code);
    }
}

#[test]
fn every_target_and_basis_is_in_the_criterion_it_scores() {
    let (fw, _) = guangdong::framework();
    let (_, rows) = document_table();
    let text: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r.code.clone(), squash(&r.title)))
        .collect();
    let mut checked = 0;
    for i in fw.leaves() {
        let it = fw.item(i);
        let Some(rule) = &it.rule else { continue };
        let criterion = &text[&it.code.to_string()];
        let mut stack = vec![rule];
        while let Some(r) = stack.pop() {
            let (basis, targets): (&str, Vec<String>) = match r {
                Rule::Ratio {
                    basis,
                    target,
                    partial,
                    ..
                }
                | Rule::SurveyRate {
                    basis,
                    target,
                    partial,
                    ..
                } => {
                    // A band is the office's, the target and its "左右" are the document's.
                    if matches!(partial, Partial::Band { .. }) {
                        assert!(
                            criterion.contains("左右"),
                            "{}: a band without 左右",
                            it.code
                        );
                    }
                    let ts = match target {
                        Target::Fixed(t) => vec![t.to_string()],
                        Target::ByRegion {
                            pearl_river_delta,
                            less_developed,
                        } => vec![pearl_river_delta.to_string(), less_developed.to_string()],
                    };
                    (basis, ts)
                }
                Rule::PerCapita { basis, target, .. } => {
                    let ts = match target {
                        Target::Fixed(t) => vec![yuan(*t)],
                        Target::ByRegion {
                            pearl_river_delta,
                            less_developed,
                        } => vec![yuan(*pearl_river_delta), yuan(*less_developed)],
                    };
                    (basis, ts)
                }
                Rule::CountAtLeast { basis, .. } | Rule::Trend { basis, .. } => (basis, Vec::new()),
                Rule::ByCommunityType { urban, rural } => {
                    stack.push(urban);
                    stack.push(rural);
                    continue;
                }
                Rule::AllOf { rules } => {
                    stack.extend(rules.iter());
                    continue;
                }
                Rule::Weighted { parts } => {
                    stack.extend(parts.iter().map(|p| &p.rule));
                    continue;
                }
                Rule::Evidence { .. } => continue,
            };
            assert!(
                criterion.contains(&squash(basis)),
                "{}: basis '{basis}' is not the criterion's words",
                it.code
            );
            for t in targets {
                assert!(
                    squash(basis).contains(&t),
                    "{}: target {t} is not in its basis '{basis}'",
                    it.code
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 14, "only {checked} targets checked");
}

#[test]
fn unit_names_and_duties_are_the_documents_and_added_aliases_are_not() {
    let (fw, _) = guangdong::framework();
    let plan = &DOCUMENT[DOCUMENT.find("五、工作分工").unwrap()..DOCUMENT.find("附件").unwrap()];
    for u in &fw.units.units {
        assert!(
            DOCUMENT.contains(&u.name),
            "{}: '{}' is not a name the document uses",
            u.id,
            u.name
        );
        if let Some(p) = &u.plan_name {
            assert!(plan.contains(p), "{}: '{p}' is not in 工作分工", u.id);
        }
        for a in &u.aliases {
            assert!(
                DOCUMENT.contains(a.as_str()),
                "{}: alias '{a}' is not the document's",
                u.id
            );
        }
        for a in &u.added_aliases {
            assert!(
                !DOCUMENT.contains(a.as_str()),
                "{}: '{a}' is in the document; list it under aliases",
                u.id
            );
        }
        if !u.duties.is_empty() {
            assert!(
                plan.contains(&u.duties),
                "{}: duties are not quoted word for word: {}",
                u.id,
                u.duties
            );
            let heading = u.duties_source.trim_start_matches("五、工作分工");
            let at = plan
                .find(heading)
                .unwrap_or_else(|| panic!("{}: no paragraph {heading}", u.id));
            let after = plan[at + heading.len()..].trim_start_matches([':', '：', ' ']);
            assert!(
                after.starts_with(&u.duties),
                "{}: duties are not those of {}",
                u.id,
                u.duties_source
            );
        }
    }
    // The plan's own "区委办、政府办" names the unit the table calls 区府办.
    let resolved = fw.units.resolve_cell("区委办、政府办");
    assert_eq!(resolved.len(), 1);
    assert!(
        matches!(&resolved[0].1, Resolution::Canonical(id) if id.as_str() == "district-office")
    );
    // 区委统战部 is not in the document: it is at most an added alias.
    assert!(!DOCUMENT.contains("区委统战部"));
    assert!(
        fw.units
            .units
            .iter()
            .all(|u| u.name != "区委统战部" && u.plan_name.as_deref() != Some("区委统战部"))
    );
}
