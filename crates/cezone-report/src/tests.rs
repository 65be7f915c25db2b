use std::io::Cursor;
use std::sync::Arc;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use cezone_domain::calendar::Date;
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::engine::{Engine, Scoreboard};
use cezone_domain::guangdong;
use cezone_domain::org::OrgTree;

use super::*;

struct Fixture {
    engine: Engine,
    board: Scoreboard,
    catalog: EvidenceCatalog,
}

const HOSTILE: &str = "<script>alert('x')</script> & 台帐";

/// A small demo district (2 towns, 8 communities) and its facts.
fn district_facts() -> (
    cezone_domain::demo::DemoDistrict,
    cezone_domain::facts::Facts,
) {
    let (fw, _) = guangdong::framework();
    let district = generate(
        &fw,
        &DemoParams {
            towns: 2,
            communities: 8,
            responses_per_community: 10,
            ..DemoParams::nanhai(7)
        },
    );
    let facts = district.facts(&fw.catalog);
    (district, facts)
}

fn fixture() -> Fixture {
    let (fw, _) = guangdong::framework();
    let (district, facts) = district_facts();
    let tree = OrgTree::build(district.units.clone()).unwrap();
    let engine = Engine::new(Arc::new(fw), Arc::new(tree), &facts, 2013);
    let board = engine.scoreboard();
    let mut catalog: EvidenceCatalog = facts
        .evidence
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                EvidenceMeta {
                    title: format!("{} 台帐", e.criterion),
                    sha256: format!("{:0>64}", e.id.len()),
                },
            )
        })
        .collect();
    let first = facts.evidence[0].id.clone();
    catalog.get_mut(&first).unwrap().title = HOSTILE.to_string();
    Fixture {
        engine,
        board,
        catalog,
    }
}

fn meta(f: &Fixture) -> ReportMeta {
    ReportMeta {
        framework_id: f.engine.fw.meta.id.to_string(),
        edition: f.engine.fw.meta.edition.clone(),
        framework_title: f.engine.fw.meta.title.clone(),
        org_unit: "nanhai".into(),
        org_unit_name: "南海区".into(),
        period: 2013,
        source: ReportSource::Current {
            computed_at: "2013-12-01T00:00:00Z".into(),
        },
        generated_at: "2013-12-01T00:00:00Z".into(),
    }
}

fn self_score(f: &Fixture) -> SelfScore {
    SelfScore::build(&f.engine, &f.board, 0, meta(f), &f.catalog)
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Float(x) => x.to_string(),
        Data::Int(x) => x.to_string(),
        _ => String::new(),
    }
}

#[test]
fn the_workbook_has_a_summary_and_a_sheet_per_area_with_key_criteria_first() {
    let f = fixture();
    let r = self_score(&f);
    let bytes = render_self_score(&r, ReportFormat::Xlsx).unwrap();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    let names = wb.sheet_names();
    assert_eq!(names.len(), 1 + f.engine.fw.roots().len() + 1);
    assert_eq!(names[0], xlsx::SUMMARY_SHEET);
    assert_eq!(names.last().unwrap(), xlsx::INTERPRETATIONS_SHEET);
    assert!(names[1].starts_with("1 "), "{names:?}");
    assert!(names.iter().all(|n| n.chars().count() <= 31));

    let summary = wb.worksheet_range(xlsx::SUMMARY_SHEET).unwrap();
    let rows: Vec<Vec<String>> = summary
        .rows()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    // The total against 100 at the top, equal to the engine's.
    let total = f.board.total(&f.engine.fw, 0);
    let total_row = rows.iter().find(|r| r[0] == "自评总分 Total").unwrap();
    assert_eq!(
        total_row[2].parse::<f64>().unwrap(),
        total.confirmed.as_f64()
    );
    assert_eq!(total_row[4], "100");
    // ★ criteria come before the areas, each flagged.
    let key_at = rows.iter().position(|r| r[1] == "★").unwrap();
    let areas_at = rows.iter().position(|r| r[0] == "一级指标 Areas").unwrap();
    assert!(key_at < areas_at);
    let keys = rows
        .iter()
        .filter(|r| r[1] == "★" && r[0] != "编号 Code")
        .count();
    assert_eq!(keys, r.key_criteria.len());
    assert!(keys > 0);
    // The areas add up to the total row.
    let total_line = rows.iter().find(|r| r[2] == "合计 Total").unwrap();
    assert_eq!(
        total_line[4].parse::<f64>().unwrap(),
        total.confirmed.as_f64()
    );
    assert_eq!(total_line[3], "100");

    // Every criterion of an area is on its sheet, with its score.
    for a in &r.areas {
        let range = wb.worksheet_range(&xlsx::area_sheet_name(&a.row)).unwrap();
        let codes: Vec<(String, String)> = range
            .rows()
            .map(|r| (cell_text(&r[0]), cell_text(&r[4])))
            .collect();
        for it in &a.items {
            let (_, confirmed) = codes
                .iter()
                .find(|(c, _)| *c == it.code)
                .unwrap_or_else(|| panic!("{} missing on its sheet", it.code));
            assert_eq!(confirmed.parse::<f64>().unwrap(), it.confirmed.as_f64());
        }
    }
}

#[test]
fn chinese_text_survives_the_workbook() {
    let f = fixture();
    let r = self_score(&f);
    let bytes = render_self_score(&r, ReportFormat::Xlsx).unwrap();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    let range = wb.worksheet_range(xlsx::SUMMARY_SHEET).unwrap();
    assert_eq!(
        cell_text(range.get((0, 0)).unwrap()),
        "南海区 评估指标体系自评分说明"
    );
    let first_area = &r.areas[0].row.title;
    assert!(range.rows().any(|row| cell_text(&row[2]) == *first_area));
}

#[test]
fn the_html_lists_every_criterion_and_escapes_what_users_typed() {
    let f = fixture();
    let r = self_score(&f);
    let html = String::from_utf8(render_self_score(&r, ReportFormat::Html).unwrap()).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("Noto Sans CJK SC"), "a CJK font stack");
    assert!(html.contains("@media print") && html.contains("page-break-before: always"));
    for it in r.areas.iter().flat_map(|a| a.items.iter()) {
        assert!(
            html.contains(&format!("id=\"item-{}\"", it.code)),
            "{} missing",
            it.code
        );
    }
    assert!(!html.contains("<script>"), "user text is escaped");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; 台帐"));
    assert!(html.contains("南海区 评估指标体系自评分说明"));
    assert!(html.contains("★"));
    // No external resources: it prints the same anywhere.
    assert!(!html.contains("src=") && !html.contains("href="));
}

#[test]
fn every_criterion_carries_its_rule_and_lost_points_are_explained() {
    let f = fixture();
    let r = self_score(&f);
    let criteria: Vec<_> = r.criteria().collect();
    assert_eq!(criteria.len(), f.engine.fw.leaves().count());
    for c in &criteria {
        assert!(!c.rule_lines.is_empty(), "{} has no rule", c.code);
        assert_eq!(c.lost, c.points - c.confirmed);
        if c.lost.milli() > 0 {
            assert!(
                !c.lost_reasons.is_empty(),
                "{} lost points silently",
                c.code
            );
        }
    }
    let with_hash = criteria
        .iter()
        .flat_map(|c| c.evidence.iter())
        .filter(|e| e.sha256.len() == 64)
        .count();
    assert!(with_hash > 0, "evidence lines carry their hashes");
}

#[test]
fn the_checklist_groups_owed_materials_by_department_and_town_with_deadlines() {
    let f = fixture();
    let as_of = Date::parse("2014-03-15").unwrap();
    let c = Checklist::build(&f.engine, 0, meta(&f), &f.catalog, "", as_of).unwrap();
    assert_eq!(c.deadline.id, "materials-submitted");
    assert_eq!(
        c.next_checkpoint.as_ref().unwrap().id,
        "key-unit-inspection"
    );
    assert!(c.groups.iter().any(|g| g.kind == GroupKind::Department));
    let towns: Vec<_> = c
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Town)
        .collect();
    assert_eq!(towns.len(), 2, "one group per town");
    for g in &c.groups {
        assert_eq!(g.required, g.accepted + g.pending + g.missing);
        assert_eq!(g.items.len(), g.pending + g.missing);
        for i in &g.items {
            assert_eq!(i.deadline, Date::parse("2014-02-28").unwrap());
            assert_eq!(
                i.late,
                i.status != cezone_domain::engine::SlotStatus::Pending
            );
        }
    }
    // Before the deadline nothing is late.
    let early = Checklist::build(
        &f.engine,
        0,
        meta(&f),
        &f.catalog,
        "",
        Date::parse("2014-01-15").unwrap(),
    )
    .unwrap();
    assert!(early.groups.iter().all(|g| g.late == 0));
    let html = String::from_utf8(render_checklist(&c, ReportFormat::Html).unwrap()).unwrap();
    assert!(html.contains("镇（街道）Towns and streets") && html.contains("2014-02-28"));
    // The deadline says the day itself is still in time, as the calendar reads "…前".
    assert!(
        html.contains("2014-02-28 截止（含当日）due on or before 2014-02-28"),
        "{html}"
    );
    let bytes = render_checklist(&c, ReportFormat::Xlsx).unwrap();
    let wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    assert_eq!(
        wb.sheet_names(),
        vec![xlsx::SUMMARY_SHEET, "部门 Departments", "镇街 Towns"]
    );
}

#[test]
fn an_unknown_checkpoint_kind_or_format_is_refused_by_name() {
    let f = fixture();
    let err = Checklist::build(
        &f.engine,
        0,
        meta(&f),
        &f.catalog,
        "someday",
        Date::parse("2014-01-15").unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("someday") && err.contains("materials-submitted"),
        "{err}"
    );
    assert!(
        ReportFormat::parse("pdf")
            .unwrap_err()
            .to_string()
            .contains("'pdf'")
    );
    assert!(ReportKind::parse("summary").is_err());
    assert_eq!(
        ReportKind::parse("self-score").unwrap(),
        ReportKind::SelfScore
    );
}

#[test]
fn the_self_score_names_every_interpretation_beside_the_documents_basis() {
    let f = fixture();
    let r = self_score(&f);
    // In the criterion's explanation: the document's words, then the office's 口径.
    let row = r.criteria().find(|c| c.code == "3.2.2").unwrap();
    let basis = row
        .rule_lines
        .iter()
        .position(|l| l.contains("依据 basis: 学习型党政机关创建率达70%左右"))
        .unwrap_or_else(|| panic!("{:#?}", row.rule_lines));
    let band = row
        .rule_lines
        .iter()
        .position(|l| l.starts_with("口径 interpretation") && l.contains("65%–70%"))
        .unwrap_or_else(|| panic!("{:#?}", row.rule_lines));
    assert!(basis < band);
    let weights = r.criteria().find(|c| c.code == "2.3.1").unwrap();
    assert!(
        weights
            .rule_lines
            .iter()
            .any(|l| l.starts_with("口径") && l.contains("1 : 2")),
        "{:#?}",
        weights.rule_lines
    );
    // The responsible units as the table writes them.
    assert_eq!(
        r.criteria()
            .find(|c| c.code == "3.1.1")
            .unwrap()
            .responsible,
        ["区教育局", "区人社局", "各镇（街道）"]
    );

    // The list: in the HTML section and on its own sheet.
    assert!(r.interpretations.len() > 20);
    let html = String::from_utf8(render_self_score(&r, ReportFormat::Html).unwrap()).unwrap();
    let at = html.find("口径说明 Interpretations").expect("the section");
    let section = &html[at..];
    assert!(section.contains("学习型党政机关创建率达70%左右"));
    assert!(section.contains("2014年4月10日前要对重点单位进行检查"));
    assert!(section.contains("calendar.toml deadline_before"));
    let bytes = render_self_score(&r, ReportFormat::Xlsx).unwrap();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    let sheet = wb.worksheet_range(xlsx::INTERPRETATIONS_SHEET).unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    let band = rows
        .iter()
        .find(|r| r[0] == "3.2.2" && r[3].contains("65%–70%"))
        .expect("the band on the sheet");
    assert_eq!(band[2], "学习型党政机关创建率达70%左右");
    assert_eq!(
        rows.iter().filter(|r| r[1] == "分值分配 weights").count(),
        r.interpretations
            .iter()
            .filter(|i| i.topic == cezone_domain::interpret::Topic::Weights)
            .count()
    );
}

/// A criterion whose figures are still pending review says so beside its lost points, naming
/// the figures.
#[test]
fn pending_statistics_are_named_where_the_points_are_explained() {
    let f = fixture();
    let (_, mut facts) = district_facts();
    let who = facts
        .statistics
        .iter()
        .find(|s| s.metric.as_str() == "residents_served" && s.period == 2013)
        .expect("a residents_served figure")
        .org_unit
        .to_string();
    for s in facts.statistics.iter_mut().filter(|s| {
        s.metric.as_str() == "residents_served" && s.period == 2013 && s.org_unit.as_str() == who
    }) {
        s.state = cezone_domain::facts::StatState::Pending;
    }
    let engine = Engine::new(f.engine.fw.clone(), f.engine.org.clone(), &facts, 2013);
    let board = engine.scoreboard();
    let r = SelfScore::build(&engine, &board, 0, meta(&f), &f.catalog);
    let row = r
        .areas
        .iter()
        .flat_map(|a| a.items.iter())
        .find(|i| i.code == "3.1.1")
        .unwrap();
    let line = row
        .lost_reasons
        .iter()
        .find(|l| l.contains("待审核统计数据"))
        .unwrap_or_else(|| panic!("{:?}", row.lost_reasons));
    let name = &engine
        .org
        .unit(engine.org.find(&pending_id(&who)).unwrap())
        .name;
    assert!(
        line.contains("1 statistic(s) still pending review")
            && line.contains(&format!("{name} residents_served 2013 (pending)")),
        "{line}"
    );
}

fn pending_id(id: &str) -> cezone_domain::org::OrgUnitId {
    cezone_domain::org::OrgUnitId::parse(id).unwrap()
}
