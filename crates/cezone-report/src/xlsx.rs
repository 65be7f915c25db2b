//! XLSX workbooks: a summary sheet (★ key criteria first, then every area and the total) and a
//! formatted sheet per first-level area; the checklist as a summary and one sheet per kind of
//! unit. Scores are written as numbers so that they can be summed and checked.

use cezone_domain::engine::SlotStatus;
use cezone_domain::points::Points;
use rust_xlsxwriter::{Color, Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError};

use crate::ReportError;
use crate::model::{Checklist, GroupKind, ItemRow, ReportMeta, SelfScore, status_label};

/// The summary sheet's name.
pub const SUMMARY_SHEET: &str = "汇总 Summary";
/// The self-score workbook's last sheet: the choices the document leaves open.
pub const INTERPRETATIONS_SHEET: &str = "口径 Interpretations";
/// A font with CJK glyphs that office suites in China have; others substitute their own.
const FONT: &str = "Microsoft YaHei";

struct Styles {
    title: Format,
    meta: Format,
    header: Format,
    text: Format,
    group: Format,
    key: Format,
    num: Format,
    num_group: Format,
    num_lost: Format,
    evidence: Format,
    bad: Format,
    hash: Format,
    total: Format,
}

fn styles() -> Styles {
    let base = Format::new()
        .set_font_name(FONT)
        .set_font_size(10)
        .set_text_wrap()
        .set_align(FormatAlign::Top)
        .set_border(FormatBorder::Thin)
        .set_border_color(Color::RGB(0xCBD2D9));
    let num = base
        .clone()
        .set_num_format("0.0##")
        .set_align(FormatAlign::Right);
    Styles {
        title: Format::new()
            .set_font_name(FONT)
            .set_font_size(16)
            .set_bold(),
        meta: Format::new()
            .set_font_name(FONT)
            .set_font_size(10)
            .set_font_color(Color::RGB(0x52606D)),
        header: base
            .clone()
            .set_bold()
            .set_background_color(Color::RGB(0xE4ECF7))
            .set_align(FormatAlign::VerticalCenter),
        text: base.clone(),
        group: base
            .clone()
            .set_bold()
            .set_background_color(Color::RGB(0xF5F7FA)),
        key: base
            .clone()
            .set_bold()
            .set_font_color(Color::RGB(0xB44D12))
            .set_align(FormatAlign::Center),
        num_group: num
            .clone()
            .set_bold()
            .set_background_color(Color::RGB(0xF5F7FA)),
        num_lost: num.clone().set_font_color(Color::RGB(0xB42318)),
        num,
        evidence: base
            .clone()
            .set_font_size(9)
            .set_font_color(Color::RGB(0x52606D)),
        bad: base
            .clone()
            .set_font_size(9)
            .set_font_color(Color::RGB(0xB42318)),
        hash: base
            .clone()
            .set_font_name("Consolas")
            .set_font_size(8)
            .set_font_color(Color::RGB(0x52606D)),
        total: Format::new()
            .set_font_name(FONT)
            .set_font_size(14)
            .set_bold()
            .set_num_format("0.0##"),
    }
}

/// An Excel sheet name: at most 31 characters, none of `[]:*?/\`.
pub fn sheet_name(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') {
                '_'
            } else {
                c
            }
        })
        .take(31)
        .collect();
    cleaned.trim_end_matches('\'').trim().to_string()
}

fn pts(p: Points) -> f64 {
    p.as_f64()
}

fn meta_rows(
    ws: &mut Worksheet,
    s: &Styles,
    title: &str,
    m: &ReportMeta,
) -> Result<u32, XlsxError> {
    ws.write_string_with_format(0, 0, title, &s.title)?;
    let lines = [
        format!("单位 Org unit: {} ({})", m.org_unit_name, m.org_unit),
        format!(
            "指标体系 Framework: {} — {} {} · 年度 period {}",
            m.framework_title, m.framework_id, m.edition, m.period
        ),
        format!("分数来源 Scores: {}", m.source.describe()),
        format!("生成时间 Generated: {}", m.generated_at),
    ];
    for (i, l) in lines.iter().enumerate() {
        ws.write_string_with_format(1 + i as u32, 0, l, &s.meta)?;
    }
    Ok(1 + lines.len() as u32)
}

fn headers(ws: &mut Worksheet, s: &Styles, row: u32, names: &[&str]) -> Result<(), XlsxError> {
    for (c, h) in names.iter().enumerate() {
        ws.write_string_with_format(row, c as u16, *h, &s.header)?;
    }
    Ok(())
}

fn score_cells(
    ws: &mut Worksheet,
    s: &Styles,
    row: u32,
    col: u16,
    r: &ItemRow,
    group: bool,
) -> Result<(), XlsxError> {
    let f = if group { &s.num_group } else { &s.num };
    ws.write_number_with_format(row, col, pts(r.points), f)?;
    ws.write_number_with_format(row, col + 1, pts(r.confirmed), f)?;
    ws.write_number_with_format(row, col + 2, pts(r.projected), f)?;
    let lost = if r.lost > Points::ZERO && !group {
        &s.num_lost
    } else {
        f
    };
    ws.write_number_with_format(row, col + 3, pts(r.lost), lost)?;
    Ok(())
}

/// The self-score explanation workbook.
pub fn self_score(r: &SelfScore) -> Result<Vec<u8>, ReportError> {
    let s = styles();
    let mut wb = Workbook::new();
    {
        let ws = wb.add_worksheet();
        ws.set_name(SUMMARY_SHEET)?;
        let title = format!("{} 评估指标体系自评分说明", r.meta.org_unit_name);
        let mut row = meta_rows(ws, &s, &title, &r.meta)? + 1;
        ws.write_string_with_format(row, 0, "自评总分 Total", &s.total)?;
        ws.write_number_with_format(row, 2, pts(r.confirmed), &s.total)?;
        ws.write_string_with_format(row, 3, "/", &s.meta)?;
        ws.write_number_with_format(row, 4, pts(r.max_points), &s.total)?;
        ws.write_string_with_format(row, 5, format!("预计 projected {}", r.projected), &s.meta)?;
        row += 2;
        ws.write_string_with_format(row, 0, "★ 重点指标 Key criteria", &s.title)?;
        row += 1;
        headers(
            ws,
            &s,
            row,
            &[
                "编号 Code",
                "★",
                "指标 Criterion",
                "分值 Points",
                "确认得分 Confirmed",
                "预计得分 Projected",
                "失分 Lost",
                "失分原因 Why points were lost",
            ],
        )?;
        row += 1;
        for k in &r.key_criteria {
            ws.write_string_with_format(row, 0, &k.code, &s.text)?;
            ws.write_string_with_format(row, 1, "★", &s.key)?;
            ws.write_string_with_format(row, 2, &k.title, &s.text)?;
            score_cells(ws, &s, row, 3, k, false)?;
            ws.write_string_with_format(row, 7, k.lost_reasons.join("\n"), &s.text)?;
            row += 1;
        }
        row += 1;
        ws.write_string_with_format(row, 0, "一级指标 Areas", &s.title)?;
        row += 1;
        headers(
            ws,
            &s,
            row,
            &[
                "编号 Code",
                "",
                "一级指标 Area",
                "分值 Points",
                "确认得分 Confirmed",
                "预计得分 Projected",
                "失分 Lost",
                "工作表 Sheet",
            ],
        )?;
        row += 1;
        for a in &r.areas {
            ws.write_string_with_format(row, 0, &a.row.code, &s.text)?;
            ws.write_string_with_format(row, 1, "", &s.text)?;
            ws.write_string_with_format(row, 2, &a.row.title, &s.text)?;
            score_cells(ws, &s, row, 3, &a.row, false)?;
            ws.write_string_with_format(row, 7, area_sheet_name(&a.row), &s.text)?;
            row += 1;
        }
        ws.write_string_with_format(row, 0, "合计", &s.group)?;
        ws.write_string_with_format(row, 1, "", &s.group)?;
        ws.write_string_with_format(row, 2, "合计 Total", &s.group)?;
        ws.write_number_with_format(row, 3, pts(r.max_points), &s.num_group)?;
        ws.write_number_with_format(row, 4, pts(r.confirmed), &s.num_group)?;
        ws.write_number_with_format(row, 5, pts(r.projected), &s.num_group)?;
        ws.write_number_with_format(row, 6, pts(r.max_points - r.confirmed), &s.num_group)?;
        for (c, w) in [
            (0, 10.0),
            (1, 4.0),
            (2, 46.0),
            (3, 10.0),
            (4, 12.0),
            (5, 12.0),
            (6, 9.0),
            (7, 60.0),
        ] {
            ws.set_column_width(c, w)?;
        }
    }
    for a in &r.areas {
        let ws = wb.add_worksheet();
        ws.set_name(area_sheet_name(&a.row))?;
        let title = format!("{} {}（{} 分）", a.row.code, a.row.title, a.row.points);
        let mut row = meta_rows(ws, &s, &title, &r.meta)? + 1;
        headers(
            ws,
            &s,
            row,
            &[
                "编号 Code",
                "★",
                "指标 / 材料 Criterion / evidence",
                "分值 Points",
                "确认得分 Confirmed",
                "预计得分 Projected",
                "失分 Lost",
                "评分规则与事实 Rule and facts",
                "失分原因 Why points were lost",
                "负责单位 Responsible unit",
                "单位 Org unit",
                "审核状态 Review",
                "SHA-256",
            ],
        )?;
        ws.set_freeze_panes(row + 1, 3)?;
        row += 1;
        let area_row = ItemRow {
            rule_lines: Vec::new(),
            ..a.row.clone()
        };
        for it in std::iter::once(&area_row).chain(a.items.iter()) {
            let group = !it.leaf;
            let tf = if group { &s.group } else { &s.text };
            ws.write_string_with_format(row, 0, &it.code, tf)?;
            ws.write_string_with_format(row, 1, if it.key { "★" } else { "" }, &s.key)?;
            let mut title = it.title.clone();
            if it.leaf && !it.materials.is_empty() {
                title.push_str(&format!("\n提供材料：{}", it.materials));
            }
            ws.write_string_with_format(row, 2, title, tf)?;
            score_cells(ws, &s, row, 3, it, group)?;
            ws.write_string_with_format(row, 7, it.rule_lines.join("\n"), tf)?;
            ws.write_string_with_format(row, 8, it.lost_reasons.join("\n"), tf)?;
            ws.write_string_with_format(row, 9, it.responsible.join("、"), tf)?;
            for c in 10..=12 {
                ws.write_string_with_format(row, c, "", tf)?;
            }
            row += 1;
            for e in &it.evidence {
                let mut title = if !e.title.is_empty() {
                    e.title.clone()
                } else if e.evidence_id.is_empty() {
                    "（未提交 nothing submitted）".to_string()
                } else {
                    e.evidence_id.clone()
                };
                if !e.material.is_empty() {
                    title.push_str(&format!(" ({})", e.material));
                }
                let f = match e.status {
                    SlotStatus::Missing | SlotStatus::Returned => &s.bad,
                    _ => &s.evidence,
                };
                for c in [0u16, 1, 3, 4, 5, 6, 7, 8] {
                    ws.write_string_with_format(row, c, "", &s.evidence)?;
                }
                ws.write_string_with_format(row, 2, format!("  · {title}"), &s.evidence)?;
                ws.write_string_with_format(row, 9, &e.unit_name, &s.evidence)?;
                ws.write_string_with_format(row, 10, &e.org_unit_name, &s.evidence)?;
                let mut state = status_label(e.status).to_string();
                if e.status == SlotStatus::Accepted {
                    state.push_str(&format!(" ({})", e.grade));
                }
                ws.write_string_with_format(row, 11, state, f)?;
                ws.write_string_with_format(row, 12, &e.sha256, &s.hash)?;
                row += 1;
            }
        }
        for (c, w) in [
            (0, 9.0),
            (1, 4.0),
            (2, 44.0),
            (3, 8.0),
            (4, 10.0),
            (5, 10.0),
            (6, 8.0),
            (7, 56.0),
            (8, 40.0),
            (9, 18.0),
            (10, 14.0),
            (11, 16.0),
            (12, 22.0),
        ] {
            ws.set_column_width(c, w)?;
        }
        ws.set_landscape();
        ws.set_paper_size(9);
        ws.set_print_fit_to_pages(1, 0);
        ws.set_repeat_rows(row_of_header(), row_of_header())?;
    }
    if !r.interpretations.is_empty() {
        let ws = wb.add_worksheet();
        ws.set_name(INTERPRETATIONS_SHEET)?;
        let mut row = meta_rows(ws, &s, "口径说明 Interpretations", &r.meta)? + 1;
        headers(
            ws,
            &s,
            row,
            &[
                "范围 Scope",
                "事项 Topic",
                "文件原文 Document",
                "口径 Reading",
                "设置 Setting",
            ],
        )?;
        row += 1;
        for i in &r.interpretations {
            let document = if i.document.is_empty() {
                "（文件未涉及 not in the document）"
            } else {
                i.document.as_str()
            };
            ws.write_string_with_format(row, 0, &i.scope, &s.text)?;
            ws.write_string_with_format(row, 1, i.topic.label(), &s.text)?;
            ws.write_string_with_format(row, 2, document, &s.text)?;
            ws.write_string_with_format(row, 3, &i.choice, &s.text)?;
            ws.write_string_with_format(row, 4, &i.setting, &s.text)?;
            row += 1;
        }
        for (c, w) in [(0, 18.0), (1, 18.0), (2, 40.0), (3, 60.0), (4, 30.0)] {
            ws.set_column_width(c, w)?;
        }
    }
    Ok(wb.save_to_buffer()?)
}

/// The header row of an area sheet (after the title and four meta lines and a blank).
fn row_of_header() -> u32 {
    6
}

/// The sheet of a first-level area: its code and title, within Excel's limits.
pub fn area_sheet_name(area: &ItemRow) -> String {
    sheet_name(&format!("{} {}", area.code, area.title))
}

/// The checklist workbook.
pub fn checklist(c: &Checklist) -> Result<Vec<u8>, ReportError> {
    let s = styles();
    let mut wb = Workbook::new();
    {
        let ws = wb.add_worksheet();
        ws.set_name(SUMMARY_SHEET)?;
        let title = format!("{} 责任单位材料清单", c.meta.org_unit_name);
        let mut row = meta_rows(ws, &s, &title, &c.meta)?;
        ws.write_string_with_format(
            row,
            0,
            format!(
                "截止节点 Deadline: {} {} ({}) · 统计日期 as of {}",
                c.deadline.due_wording(),
                c.deadline.name,
                c.deadline.id,
                c.as_of
            ),
            &s.meta,
        )?;
        row += 1;
        let next = match &c.next_checkpoint {
            Some(n) => format!("下一节点 Next checkpoint: {} {}", n.due, n.name),
            None => "日历中的所有节点均已过去 Every checkpoint of the calendar is past".to_string(),
        };
        ws.write_string_with_format(row, 0, next, &s.meta)?;
        row += 2;
        headers(
            ws,
            &s,
            row,
            &[
                "类别 Kind",
                "单位 Unit",
                "应交 Required",
                "已通过 Accepted",
                "待审核 Pending",
                "缺交 Missing",
                "逾期 Late",
            ],
        )?;
        row += 1;
        for g in &c.groups {
            ws.write_string_with_format(row, 0, crate::html::kind_label(g.kind), &s.text)?;
            ws.write_string_with_format(row, 1, &g.name, &s.text)?;
            for (i, n) in [g.required, g.accepted, g.pending, g.missing, g.late]
                .into_iter()
                .enumerate()
            {
                let f = if (i == 3 || i == 4) && n > 0 {
                    &s.num_lost
                } else {
                    &s.num
                };
                ws.write_number_with_format(row, 2 + i as u16, n as f64, f)?;
            }
            row += 1;
        }
        for (col, w) in [
            (0, 16.0),
            (1, 28.0),
            (2, 12.0),
            (3, 12.0),
            (4, 12.0),
            (5, 12.0),
            (6, 12.0),
        ] {
            ws.set_column_width(col, w)?;
        }
    }
    for (kind, name) in [
        (GroupKind::Department, "部门 Departments"),
        (GroupKind::Town, "镇街 Towns"),
    ] {
        let groups: Vec<_> = c.groups.iter().filter(|g| g.kind == kind).collect();
        if groups.is_empty() {
            continue;
        }
        let ws = wb.add_worksheet();
        ws.set_name(name)?;
        let mut row = meta_rows(ws, &s, name, &c.meta)? + 1;
        headers(
            ws,
            &s,
            row,
            &[
                "单位 Unit",
                "编号 Code",
                "★",
                "指标 Criterion",
                "材料 Material",
                "负责单位 Responsible unit",
                "单位 Org unit",
                "状态 Status",
                "截止 Deadline",
                "逾期 Late",
                "已提交 Filed",
            ],
        )?;
        ws.set_freeze_panes(row + 1, 1)?;
        row += 1;
        for g in groups {
            for i in &g.items {
                let f = if i.late { &s.bad } else { &s.text };
                ws.write_string_with_format(row, 0, &g.name, &s.text)?;
                ws.write_string_with_format(row, 1, &i.criterion, &s.text)?;
                ws.write_string_with_format(row, 2, if i.key { "★" } else { "" }, &s.key)?;
                ws.write_string_with_format(row, 3, &i.criterion_title, &s.text)?;
                ws.write_string_with_format(row, 4, &i.material, &s.text)?;
                ws.write_string_with_format(row, 5, &i.unit_name, &s.text)?;
                ws.write_string_with_format(row, 6, &i.org_unit_name, &s.text)?;
                ws.write_string_with_format(row, 7, status_label(i.status), f)?;
                ws.write_string_with_format(row, 8, i.deadline.to_string(), &s.text)?;
                ws.write_string_with_format(row, 9, if i.late { "逾期 late" } else { "" }, f)?;
                ws.write_string_with_format(row, 10, i.evidence.join("\n"), &s.text)?;
                row += 1;
            }
        }
        for (col, w) in [
            (0, 16.0),
            (1, 9.0),
            (2, 4.0),
            (3, 40.0),
            (4, 36.0),
            (5, 18.0),
            (6, 14.0),
            (7, 16.0),
            (8, 12.0),
            (9, 9.0),
            (10, 30.0),
        ] {
            ws.set_column_width(col, w)?;
        }
        ws.set_landscape();
        ws.set_paper_size(9);
        ws.set_print_fit_to_pages(1, 0);
    }
    Ok(wb.save_to_buffer()?)
}
