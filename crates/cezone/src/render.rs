//! Plain-text rendering for terminals: columns aligned by display width (CJK is two columns).

use cezone_domain::findings::{Findings, Severity};
use cezone_domain::framework::Framework;
use cezone_domain::interpret::Interpretation;
use cezone_domain::points::Points;
use cezone_domain::summary::Summary;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Pads or cuts `s` to exactly `width` display columns.
pub fn fit(s: &str, width: usize) -> String {
    let mut out = String::new();
    if s.width() <= width {
        out.push_str(s);
    } else if width > 0 {
        // Keep one column for the ellipsis.
        let mut w = 0;
        for ch in s.chars() {
            let cw = ch.width().unwrap_or(0);
            if w + cw > width - 1 {
                break;
            }
            out.push(ch);
            w += cw;
        }
        out.push('…');
    }
    let w = out.width();
    out.push_str(&" ".repeat(width.saturating_sub(w)));
    out
}

fn cut(s: &str, width: usize) -> String {
    if s.width() <= width {
        s.to_string()
    } else {
        fit(s, width).trim_end().to_string()
    }
}

fn bar(score: Points, max: Points, width: usize) -> String {
    if max.milli() <= 0 {
        return " ".repeat(width);
    }
    let filled = ((score.milli() as f64 / max.milli() as f64) * width as f64).round() as usize;
    let filled = filled.min(width);
    format!("{}{}", "█".repeat(filled), "·".repeat(width - filled))
}

fn p1(p: Points) -> String {
    format!("{:.1}", p.as_f64())
}

pub fn findings(findings: &Findings) -> String {
    let mut list: Vec<_> = findings.iter().collect();
    list.sort_by(|a, b| {
        // Lines of one file together: rows of the table, lines of a settings file.
        b.severity
            .cmp(&a.severity)
            .then(a.location.file.cmp(&b.location.file))
            .then(a.location.row.cmp(&b.location.row))
    });
    let mut out = String::new();
    for f in list {
        out.push_str(&format!("{f}\n"));
    }
    out.push_str(&format!(
        "{} error(s), {} warning(s), {} note(s)\n",
        findings.errors(),
        findings.warnings(),
        findings.count(Severity::Info)
    ));
    out
}

pub fn framework_tree(fw: &Framework) -> String {
    let mut out = format!(
        "{} — {} (edition {}), {} points\n",
        fw.meta.id,
        fw.meta.title,
        fw.meta.edition,
        fw.max_points()
    );
    for (i, it) in fw.items().iter().enumerate() {
        let depth = it.code.depth() - 1;
        let star = if it.key { "★" } else { " " };
        let rule = if fw.is_leaf(i) {
            fw.rule_of(i).kind_name().to_string()
        } else {
            String::new()
        };
        let units = it
            .responsible
            .iter()
            .map(|u| fw.units.name_of(u))
            .collect::<Vec<_>>()
            .join("、");
        out.push_str(&format!(
            "{}{star}{} {} [{}] {} {}\n",
            "  ".repeat(depth),
            it.code,
            cut(&it.title, 48),
            it.points,
            rule,
            cut(&units, 40)
        ));
    }
    let cal = &fw.calendar;
    if !cal.checkpoints.is_empty() {
        out.push_str(&format!(
            "\n检查节点 checkpoints — {}\n",
            cal.deadline_before.describe()
        ));
        for c in &cal.checkpoints {
            out.push_str(&format!(
                "  {} {}：{}（文件 “{}”）\n",
                c.id,
                c.name,
                c.due_wording(),
                c.original
            ));
        }
    }
    out
}

/// The choices the document leaves open, one block each: what it applies to, what the
/// document says, the office's reading and where to change it.
pub fn interpretations(fw: &Framework, list: &[Interpretation]) -> String {
    let mut out = format!(
        "{} — {} (edition {}): {} 项口径 interpretations
",
        fw.meta.id,
        fw.meta.title,
        fw.meta.edition,
        list.len()
    );
    for (n, i) in list.iter().enumerate() {
        out.push_str(&format!("\n{}. [{}] {}\n", n + 1, i.topic.label(), i.scope));
        let document = if i.document.is_empty() {
            "（文件未涉及 not in the document）"
        } else {
            &i.document
        };
        out.push_str(&format!("   文件 document: {document}\n"));
        out.push_str(&format!("   口径 reading:  {}\n", i.choice));
        out.push_str(&format!("   设置 setting:  {}\n", i.setting));
    }
    out
}

/// The same list as CSV: scope, topic, document, choice, setting.
pub fn interpretations_csv(list: &[Interpretation]) -> String {
    let field = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("scope,topic,document,choice,setting\n");
    for i in list {
        let row = [
            i.scope.as_str(),
            i.topic.label(),
            i.document.as_str(),
            i.choice.as_str(),
            i.setting.as_str(),
        ];
        out.push_str(&row.map(field).join(","));
        out.push('\n');
    }
    out
}

pub fn scoreboard(s: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} · {} ({}) · period {}\n",
        s.org_unit_name, s.framework, s.edition, s.period
    ));
    out.push_str(&format!(
        "TOTAL  confirmed {} / {}   projected {} / {}   {}\n\n",
        p1(s.total.confirmed),
        s.max_points,
        p1(s.total.projected),
        s.max_points,
        bar(s.total.confirmed, s.max_points, 30)
    ));
    out.push_str("AREAS                          points  confirmed  projected\n");
    for a in &s.areas {
        out.push_str(&format!(
            "  {} {} {:>6} {:>10} {:>10}  {}\n",
            a.code,
            fit(&a.title, 26),
            a.points.to_string(),
            p1(a.confirmed),
            p1(a.projected),
            bar(a.confirmed, a.points, 20)
        ));
    }
    if !s.children.is_empty() {
        out.push_str("\nUNITS                      total");
        for a in &s.areas {
            // A numbered area reads A1, A2 …; any other code is shown as written.
            let head = if a.code.chars().all(|c| c.is_ascii_digit()) {
                format!("A{}", a.code)
            } else {
                a.code.clone()
            };
            out.push_str(&format!("  {head:>5}"));
        }
        out.push('\n');
        for c in &s.children {
            out.push_str(&format!(
                "  {} {:>7}",
                fit(&c.name, 22),
                p1(c.total.confirmed)
            ));
            for cell in &c.areas {
                out.push_str(&format!("  {:>5}", p1(cell.confirmed)));
            }
            out.push('\n');
        }
    }
    out.push_str("\nKEY CRITERIA (★)\n");
    for k in &s.key_criteria {
        let mark = if k.full_marks { "✓" } else { "✗" };
        out.push_str(&format!(
            "  {mark} {:<6} {} {:>4} / {:<3} (projected {})\n",
            k.code,
            fit(&k.title, 40),
            p1(k.confirmed),
            k.points.to_string(),
            p1(k.projected)
        ));
    }
    out.push_str("\nWEAK LINKS (points lost, confirmed)\n");
    for (i, w) in s.weak_links.iter().enumerate() {
        out.push_str(&format!(
            "  {:>2}. {}{:<6} {} lost {:>4} of {}\n",
            i + 1,
            if w.key { "★" } else { " " },
            w.code,
            fit(&w.title, 40),
            p1(w.lost),
            w.points
        ));
    }
    out
}

/// An RFC 3339 time in the district's zone with the offset (see `cezone_platform::time::local`).
pub fn local_time(rfc3339: &str, utc_offset_hours: i32) -> String {
    cezone_platform::time::local(rfc3339, utc_offset_hours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_counts_chinese_as_two_columns() {
        assert_eq!(fit("桂城街道", 10).width(), 10);
        assert_eq!(fit("桂城街道", 5).width(), 5);
        assert_eq!(fit("abc", 2), "a…");
    }
}
