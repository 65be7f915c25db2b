//! Self-contained HTML (inline CSS, no scripts, no external resources) that prints to PDF: one
//! page break per first-level area, table headers repeated on every printed page.

use std::fmt::Write;

use cezone_domain::engine::SlotStatus;

use crate::model::{Checklist, GroupKind, ItemRow, ReportMeta, SelfScore, status_label};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --ink:#1f2933; --muted:#52606d; --line:#cbd2d9; --head:#e4ecf7; --key:#b44d12; --ok:#1f7a3f; --bad:#b42318; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei", "SimSun", sans-serif;
       color: var(--ink); margin: 24px auto; max-width: 1100px; font-size: 13px; line-height: 1.5; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 2px solid var(--ink); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 18px 0 6px; }
.meta { color: var(--muted); margin: 0 0 12px; }
.meta div { margin: 1px 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; }
th, td { border: 1px solid var(--line); padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: var(--head); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.group td { background: #f5f7fa; font-weight: 600; }
tr.key td:first-child { border-left: 4px solid var(--key); }
.star { color: var(--key); font-weight: 700; }
.lost { color: var(--bad); }
.full { color: var(--ok); }
.small { font-size: 11.5px; color: var(--muted); }
.hash { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 10.5px; word-break: break-all; }
ul.lines { margin: 0; padding-left: 16px; }
.total { font-size: 28px; font-weight: 700; }
.status-missing, .status-returned { color: var(--bad); }
.status-pending { color: #9a6700; }
.status-accepted { color: var(--ok); }
.late { color: #fff; background: var(--bad); padding: 0 4px; border-radius: 3px; font-size: 11px; }
section.area { break-before: page; page-break-before: always; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 10.5pt; }
  thead { display: table-header-group; }
  tr, td, th { break-inside: avoid; page-break-inside: avoid; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"#;

fn head(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape(title)
    );
}

fn meta_block(out: &mut String, m: &ReportMeta) {
    let _ = writeln!(
        out,
        "<div class=\"meta\"><div>单位 Org unit: <b>{}</b> ({})</div>\
         <div>指标体系 Framework: {} — {} {} · 年度 period {}</div>\
         <div>分数来源 Scores: {}</div><div>生成时间 Generated: {}</div></div>",
        escape(&m.org_unit_name),
        escape(&m.org_unit),
        escape(&m.framework_title),
        escape(&m.framework_id),
        escape(&m.edition),
        m.period,
        escape(&m.source.describe()),
        escape(&m.generated_at),
    );
}

fn lines(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut s = String::from("<ul class=\"lines\">");
    for l in items {
        let _ = write!(s, "<li>{}</li>", escape(l));
    }
    s.push_str("</ul>");
    s
}

fn status_class(s: SlotStatus) -> &'static str {
    match s {
        SlotStatus::Missing => "status-missing",
        SlotStatus::Returned => "status-returned",
        SlotStatus::Pending => "status-pending",
        SlotStatus::Accepted => "status-accepted",
    }
}

fn code_cell(r: &ItemRow) -> String {
    if r.key {
        format!(
            "<span class=\"star\" title=\"重点指标 key criterion\">★</span> {}",
            escape(&r.code)
        )
    } else {
        escape(&r.code)
    }
}

fn lost_cell(r: &ItemRow) -> String {
    if r.lost.milli() > 0 {
        format!("<span class=\"lost\">{}</span>", r.lost)
    } else {
        "<span class=\"full\">0</span>".to_string()
    }
}

/// The self-score explanation as one HTML document.
pub fn self_score(r: &SelfScore) -> String {
    let m = &r.meta;
    let title = format!("{} 评估指标体系自评分说明", m.org_unit_name);
    let mut out = String::new();
    head(&mut out, &title);
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    meta_block(&mut out, m);
    let _ = writeln!(
        out,
        "<p>自评总分 Total: <span class=\"total\" data-total>{}</span> / {} 分 \
         <span class=\"small\">（计入待审核材料后 projected {}）</span></p>",
        r.confirmed, r.max_points, r.projected
    );
    out.push_str(
        "<h2>汇总 Summary</h2>\n<table><thead><tr><th>一级指标 Area</th><th class=\"num\">分值 Points</th>\
         <th class=\"num\">确认得分 Confirmed</th><th class=\"num\">预计得分 Projected</th>\
         <th class=\"num\">失分 Lost</th></tr></thead><tbody>\n",
    );
    for a in &r.areas {
        let _ = writeln!(
            out,
            "<tr><td>{} {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&a.row.code),
            escape(&a.row.title),
            a.row.points,
            a.row.confirmed,
            a.row.projected,
            lost_cell(&a.row)
        );
    }
    let _ = writeln!(
        out,
        "<tr class=\"group\"><td>合计 Total</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n</tbody></table>",
        r.max_points,
        r.confirmed,
        r.projected,
        r.max_points - r.confirmed
    );
    out.push_str(
        "<h3><span class=\"star\">★</span> 重点指标 Key criteria</h3>\n<table><thead><tr><th>编号 Code</th>\
         <th>指标 Criterion</th><th class=\"num\">分值</th><th class=\"num\">确认</th>\
         <th class=\"num\">预计</th><th class=\"num\">失分</th><th>失分原因 Why</th></tr></thead><tbody>\n",
    );
    for k in &r.key_criteria {
        let _ = writeln!(
            out,
            "<tr class=\"key\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            code_cell(k),
            escape(&k.title),
            k.points,
            k.confirmed,
            k.projected,
            lost_cell(k),
            lines(&k.lost_reasons)
        );
    }
    out.push_str("</tbody></table>\n");
    interpretations(&mut out, r);

    for a in &r.areas {
        let _ = writeln!(
            out,
            "<section class=\"area\" id=\"area-{}\">\n<h2>{} {}（{} 分）— 得分 {} / 预计 {}</h2>",
            escape(&a.row.code),
            escape(&a.row.code),
            escape(&a.row.title),
            a.row.points,
            a.row.confirmed,
            a.row.projected
        );
        out.push_str(
            "<table><thead><tr><th>编号 Code</th><th>指标 Criterion</th><th class=\"num\">分值</th>\
             <th class=\"num\">确认</th><th class=\"num\">预计</th><th class=\"num\">失分</th>\
             <th>评分规则与事实 Rule and facts</th><th>失分原因 Why points were lost</th></tr></thead><tbody>\n",
        );
        for it in &a.items {
            let class = match (it.leaf, it.key) {
                (false, _) => " class=\"group\"",
                (true, true) => " class=\"key\"",
                (true, false) => "",
            };
            let _ = write!(
                out,
                "<tr{class} id=\"item-{}\"><td>{}</td><td>{}",
                escape(&it.code),
                code_cell(it),
                escape(&it.title)
            );
            if it.leaf && !it.materials.is_empty() {
                let _ = write!(
                    out,
                    "<div class=\"small\">提供材料：{}</div>",
                    escape(&it.materials)
                );
            }
            if it.leaf && !it.responsible.is_empty() {
                let _ = write!(
                    out,
                    "<div class=\"small\">负责单位：{}</div>",
                    escape(&it.responsible.join("、"))
                );
            }
            let _ = writeln!(
                out,
                "</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                it.points,
                it.confirmed,
                it.projected,
                lost_cell(it),
                lines(&it.rule_lines),
                lines(&it.lost_reasons)
            );
            if !it.evidence.is_empty() {
                out.push_str("<tr><td></td><td colspan=\"7\"><table class=\"evidence\"><thead><tr><th>材料 Evidence</th><th>负责单位 Unit</th><th>单位 Org unit</th><th>审核状态 Review</th><th>SHA-256</th></tr></thead><tbody>");
                for e in &it.evidence {
                    let title = if e.title.is_empty() {
                        if e.evidence_id.is_empty() {
                            "—".to_string()
                        } else {
                            e.evidence_id.clone()
                        }
                    } else {
                        e.title.clone()
                    };
                    let material = if e.material.is_empty() {
                        String::new()
                    } else {
                        format!(" <span class=\"small\">({})</span>", escape(&e.material))
                    };
                    let grade = if e.status == SlotStatus::Accepted {
                        format!("，评分 {}", e.grade)
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        out,
                        "<tr><td>{}{material}</td><td>{}</td><td>{}</td><td class=\"{}\">{}{grade}</td><td class=\"hash\">{}</td></tr>",
                        escape(&title),
                        escape(&e.unit_name),
                        escape(&e.org_unit_name),
                        status_class(e.status),
                        status_label(e.status),
                        escape(&e.sha256)
                    );
                }
                out.push_str("</tbody></table></td></tr>\n");
            }
        }
        out.push_str("</tbody></table>\n</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// 口径说明: the choices the document leaves open, each beside the document's words.
fn interpretations(out: &mut String, r: &SelfScore) {
    if r.interpretations.is_empty() {
        return;
    }
    out.push_str(
        "<h3 id=\"interpretations\">口径说明 Interpretations</h3>\n<p class=\"small\">评分中文件未作规定、由评估办公室确定的口径，\
         以及可修改的设置。 Choices the source document leaves open, made by the evaluation office, and where each is set.</p>\n\
         <table><thead><tr><th>范围 Scope</th><th>事项 Topic</th><th>文件原文 Document</th>\
         <th>口径 Reading</th><th>设置 Setting</th></tr></thead><tbody>\n",
    );
    for i in &r.interpretations {
        let document = if i.document.is_empty() {
            "（文件未涉及 not in the document）".to_string()
        } else {
            escape(&i.document)
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{document}</td><td>{}</td><td class=\"small\">{}</td></tr>",
            escape(&i.scope),
            escape(i.topic.label()),
            escape(&i.choice),
            escape(&i.setting)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// The responsible-unit checklist as one HTML document.
pub fn checklist(c: &Checklist) -> String {
    let m = &c.meta;
    let title = format!("{} 责任单位材料清单", m.org_unit_name);
    let mut out = String::new();
    head(&mut out, &title);
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    meta_block(&mut out, m);
    let _ = writeln!(
        out,
        "<p>截止节点 Deadline: <b>{}</b> {}（{}）· 统计日期 as of {}</p>",
        escape(&c.deadline.due_wording()),
        escape(&c.deadline.name),
        escape(&c.deadline.id),
        c.as_of
    );
    match &c.next_checkpoint {
        Some(n) => {
            let _ = writeln!(
                out,
                "<p>下一节点 Next checkpoint: {} {}</p>",
                n.due,
                escape(&n.name)
            );
        }
        None => out.push_str(
            "<p>日历中的所有节点均已过去 Every checkpoint of the calendar is past.</p>\n",
        ),
    }
    out.push_str(
        "<h2>汇总 Summary</h2>\n<table><thead><tr><th>类别</th><th>单位 Unit</th><th class=\"num\">应交 Required</th>\
         <th class=\"num\">已通过 Accepted</th><th class=\"num\">待审核 Pending</th><th class=\"num\">缺交 Missing</th>\
         <th class=\"num\">逾期 Late</th></tr></thead><tbody>\n",
    );
    for g in &c.groups {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            kind_label(g.kind),
            escape(&g.name),
            g.required,
            g.accepted,
            g.pending,
            g.missing,
            g.late
        );
    }
    out.push_str("</tbody></table>\n");
    for (kind, heading) in [
        (GroupKind::Department, "区直部门 Departments"),
        (GroupKind::Town, "镇（街道）Towns and streets"),
    ] {
        let groups: Vec<_> = c.groups.iter().filter(|g| g.kind == kind).collect();
        if groups.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<section class=\"area\">\n<h2>{}</h2>",
            escape(heading)
        );
        for g in groups {
            let _ = writeln!(
                out,
                "<h3>{} — 缺交 {} · 逾期 {} · 待审核 {}</h3>",
                escape(&g.name),
                g.missing,
                g.late,
                g.pending
            );
            if g.items.is_empty() {
                out.push_str(
                    "<p class=\"full\">材料已全部通过审核 Every material is accepted.</p>\n",
                );
                continue;
            }
            out.push_str(
                "<table><thead><tr><th>编号 Code</th><th>指标 Criterion</th><th>材料 Material</th><th>负责单位 Unit</th>\
                 <th>单位 Org unit</th><th>状态 Status</th><th>截止 Deadline</th><th>已提交 Filed</th></tr></thead><tbody>\n",
            );
            for i in &g.items {
                let code = if i.key {
                    format!("<span class=\"star\">★</span> {}", escape(&i.criterion))
                } else {
                    escape(&i.criterion)
                };
                let late = if i.late {
                    " <span class=\"late\">逾期 late</span>"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "<tr><td>{code}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}{late}</td><td>{}</td><td>{}</td></tr>",
                    escape(&i.criterion_title),
                    escape(&i.material),
                    escape(&i.unit_name),
                    escape(&i.org_unit_name),
                    status_class(i.status),
                    status_label(i.status),
                    i.deadline,
                    escape(&i.evidence.join("；"))
                );
            }
            out.push_str("</tbody></table>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

pub fn kind_label(k: GroupKind) -> &'static str {
    match k {
        GroupKind::Department => "部门 department",
        GroupKind::Town => "镇街 town",
    }
}
