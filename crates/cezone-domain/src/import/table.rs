//! The seed-table shape: level columns (一级指标, 二级指标, 三级指标 …), then 分值, 提供材料,
//! 负责单位. Merged cells arrive as empty cells below the first; "同上" repeats the row above.
//! `parse_table` finds the header; a `Reader` then reads the rows below it one by one.

use crate::code::{ItemCode, split_cell};
use crate::findings::{Finding, FindingKind, Findings, Location, Severity};
use crate::framework::Item;
use crate::import::Row;
use crate::points::Points;
use crate::units::{Resolution, UnitId, UnitRegistry};

#[derive(Debug, Clone, Default)]
pub struct TableItems {
    pub items: Vec<Item>,
    pub findings: Findings,
}

struct Columns {
    levels: Vec<usize>,
    points: usize,
    materials: usize,
    units: usize,
}

const LEVEL_NAMES: [&str; 9] = ["一", "二", "三", "四", "五", "六", "七", "八", "九"];

fn header_level(cell: &str) -> Option<usize> {
    let c = cell.trim().to_ascii_lowercase().replace([' ', '_'], "-");
    for (i, n) in LEVEL_NAMES.iter().enumerate() {
        if c == format!("{n}级指标") || c == format!("level-{}", i + 1) {
            return Some(i);
        }
    }
    None
}

fn find_columns(row: &Row) -> Result<Columns, String> {
    let mut levels: Vec<(usize, usize)> = Vec::new();
    let (mut points, mut materials, mut units) = (None, None, None);
    for (i, cell) in row.cells.iter().enumerate() {
        let c = cell.trim();
        if let Some(l) = header_level(c) {
            levels.push((l, i));
        } else if c == "分值" || c.eq_ignore_ascii_case("points") {
            points = Some(i);
        } else if c == "提供材料" || c.eq_ignore_ascii_case("materials") {
            materials = Some(i);
        } else if c == "负责单位" || c.eq_ignore_ascii_case("responsible units") {
            units = Some(i);
        }
    }
    levels.sort();
    if levels.is_empty() {
        return Err("no level columns (一级指标, 二级指标 … or level-1, level-2 …)".into());
    }
    for (expect, (l, _)) in levels.iter().enumerate() {
        if *l != expect {
            return Err(format!(
                "level columns must start at 一级指标 and have no gaps; level {} is missing",
                expect + 1
            ));
        }
    }
    let missing: Vec<&str> = [
        (points, "分值"),
        (materials, "提供材料"),
        (units, "负责单位"),
    ]
    .iter()
    .filter(|(c, _)| c.is_none())
    .map(|(_, n)| *n)
    .collect();
    if !missing.is_empty() {
        return Err(format!("missing column(s): {}", missing.join(", ")));
    }
    Ok(Columns {
        levels: levels.into_iter().map(|(_, i)| i).collect(),
        points: points.unwrap_or_default(),
        materials: materials.unwrap_or_default(),
        units: units.unwrap_or_default(),
    })
}

fn is_same_as_above(cell: &str) -> bool {
    let t = cell
        .trim()
        .trim_end_matches(['，', ',', '。', '.', '；', ';'])
        .trim();
    t == "同上" || t == "同上栏" || t == "同上述"
}

/// Parses table rows into items. The header is the first row naming the level columns.
pub fn parse_table(rows: &[Row], units: &UnitRegistry) -> TableItems {
    let mut out = TableItems::default();
    let Some(header_at) = rows
        .iter()
        .position(|r| r.cells.iter().any(|c| header_level(c).is_some()))
    else {
        out.findings.push(Finding::new(
            Severity::Error,
            FindingKind::MalformedHeader,
            Location::default(),
            "no header row naming the level columns (一级指标, 二级指标 …) was found",
        ));
        return out;
    };
    let cols = match find_columns(&rows[header_at]) {
        Ok(c) => c,
        Err(e) => {
            out.findings.push(Finding::new(
                Severity::Error,
                FindingKind::MalformedHeader,
                Location::row(rows[header_at].number),
                format!("header row: {e}"),
            ));
            return out;
        }
    };
    let mut reader = Reader {
        context: vec![None; cols.levels.len()],
        labels_per_level: None,
        above: None,
        out,
    };
    for row in &rows[header_at + 1..] {
        if row.cells.iter().any(|c| !c.trim().is_empty()) {
            reader.row(row, &cols, units);
        }
    }
    reader.out
}

fn cell(r: &Row, i: usize) -> String {
    r.cells
        .get(i)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Reads the rows below the header one by one, keeping what merged cells and "同上" carry
/// down from the rows above.
struct Reader {
    /// Code of the current item at each level, as the merged cells continue downwards.
    context: Vec<Option<ItemCode>>,
    /// Whether the table numbers each level on its own, as Chinese documents do (一、 then
    /// （一） then 1.), rather than writing the full path (1, 1.1, 1.1.1): its first level-1
    /// code says.
    labels_per_level: Option<bool>,
    /// The last row's number and resolved materials and units, for "同上".
    above: Option<(u32, String, String)>,
    out: TableItems,
}

impl Reader {
    fn finding(
        &mut self,
        severity: Severity,
        kind: FindingKind,
        at: Location,
        text: impl Into<String>,
    ) {
        self.out
            .findings
            .push(Finding::new(severity, kind, at, text));
    }

    /// One row: the items its level columns start, then its points, materials and units,
    /// which belong to the deepest of them.
    fn row(&mut self, row: &Row, cols: &Columns, units: &UnitRegistry) {
        let n = row.number;
        let mut deepest = None;
        for (level, &col) in cols.levels.iter().enumerate() {
            let text = cell(row, col);
            if !text.is_empty() {
                deepest = self.level_item(n, level, &text).or(deepest);
            }
        }
        let points_cell = cell(row, cols.points);
        let mut materials = cell(row, cols.materials);
        let mut unit_cell = cell(row, cols.units);
        let Some(deepest) = deepest else {
            if !points_cell.is_empty() || !materials.is_empty() || !unit_cell.is_empty() {
                self.finding(
                    Severity::Error,
                    FindingKind::OrphanItem,
                    Location::row(n),
                    "the row has points, materials or units but no item in any level column",
                );
            }
            return;
        };
        let code = self.out.items[deepest].code.clone();
        let at = |column: &str| Location::row(n).with_column(column).with_item(&code);
        self.points_column(deepest, &points_cell, at("分值"));
        self.same_as_above(&mut materials, "提供材料", at("提供材料"));
        self.same_as_above(&mut unit_cell, "负责单位", at("负责单位"));
        let responsible = self.responsible(units, &unit_cell, at("负责单位"));
        let it = &mut self.out.items[deepest];
        it.materials = materials.clone();
        it.responsible = responsible;
        self.above = Some((n, materials, unit_cell));
    }

    /// The item a level cell starts, its index in the items; none (with a finding) when the
    /// cell's code cannot be placed.
    fn level_item(&mut self, n: u32, level: usize, text: &str) -> Option<usize> {
        let column = format!("level-{}", level + 1);
        let head = split_cell(text);
        let Some(code) = self.code_of(n, level, &column, text, &head) else {
            self.context[level..].iter_mut().for_each(|c| *c = None);
            return None;
        };
        self.check_place(n, level, &column, &code);
        let (points, declared) = match &head.points {
            Some(p) => match Points::parse(p) {
                Ok(v) => (v, true),
                Err(e) => {
                    let at = Location::row(n).with_column(&column).with_item(&code);
                    self.finding(Severity::Error, FindingKind::MalformedPoints, at, e);
                    (Points::ZERO, false)
                }
            },
            None => (Points::ZERO, false),
        };
        if head.title.is_empty() {
            let at = Location::row(n).with_column(&column).with_item(&code);
            let text = format!("item {code} has a code but no title");
            self.finding(Severity::Error, FindingKind::EmptyField, at, text);
        }
        self.context[level] = Some(code.clone());
        self.context[level + 1..].iter_mut().for_each(|c| *c = None);
        self.out.items.push(Item {
            code,
            title: head.title,
            points,
            declared,
            key: head.key,
            materials: String::new(),
            responsible: Vec::new(),
            rule: None,
            source_row: Some(n),
        });
        Some(self.out.items.len() - 1)
    }

    /// The full code of a level cell: as written, or (for a level's own label, （一）, or 1.
    /// in a table numbered the Chinese way) continuing the code of the item above it: 一.（一）.1.
    fn code_of(
        &mut self,
        n: u32,
        level: usize,
        column: &str,
        text: &str,
        head: &crate::code::CellHead,
    ) -> Option<ItemCode> {
        let Some(written) = head.code.clone() else {
            let shown = if head.raw_code.is_empty() {
                text.chars().take(12).collect()
            } else {
                head.raw_code.clone()
            };
            self.finding(
                Severity::Error,
                FindingKind::MalformedCode,
                Location::row(n).with_column(column),
                format!(
                    "'{shown}' does not start with an item code such as 3.2.1, A1.2.1, 一、 or （一）; \
                     the row's item is left out"
                ),
            );
            return None;
        };
        if level == 0 && self.labels_per_level.is_none() {
            self.labels_per_level = Some(head.label);
        }
        let own_label = level > 0
            && written.depth() == 1
            && (head.label || self.labels_per_level == Some(true));
        if !own_label {
            return Some(written);
        }
        match &self.context[level - 1] {
            Some(parent) => Some(parent.child(&written)),
            None => {
                self.finding(
                    Severity::Error,
                    FindingKind::CodeOutOfPlace,
                    Location::row(n).with_column(column).with_item(&written),
                    format!(
                        "label {written} stands in the level-{} column with no level-{} item above it; \
                         the row's item is left out",
                        level + 1,
                        level
                    ),
                );
                None
            }
        }
    }

    /// A code in the wrong column, or under another parent than the rows above say, is placed
    /// by its code, with a finding.
    fn check_place(&mut self, n: u32, level: usize, column: &str, code: &ItemCode) {
        let at = Location::row(n).with_column(column).with_item(code);
        if code.depth() != level + 1 {
            let text = format!(
                "code {code} has {} level(s) but stands in the level-{} column",
                code.depth(),
                level + 1
            );
            self.finding(Severity::Error, FindingKind::CodeOutOfPlace, at, text);
        } else if level > 0
            && let Some(Some(parent)) = self.context.get(level - 1)
            && code.parent().as_ref() != Some(parent)
        {
            let text =
                format!("code {code} stands under {parent} in the table; it is placed by its code");
            self.finding(Severity::Error, FindingKind::CodeOutOfPlace, at, text);
        }
    }

    /// The points column: required unless the title declared them, and equal to them if it did.
    fn points_column(&mut self, deepest: usize, points_cell: &str, at: Location) {
        let code = self.out.items[deepest].code.clone();
        if points_cell.is_empty() {
            if !self.out.items[deepest].declared {
                let text = format!("item {code} has no points");
                self.finding(Severity::Error, FindingKind::EmptyField, at, text);
            }
            return;
        }
        match Points::parse(points_cell) {
            Ok(p) => {
                let it = &mut self.out.items[deepest];
                let clash = (it.declared && it.points != p).then(|| {
                    format!(
                        "item {code} declares {} in its title but {p} in the points column",
                        it.points
                    )
                });
                it.points = p;
                it.declared = true;
                if let Some(text) = clash {
                    self.finding(Severity::Error, FindingKind::MalformedPoints, at, text);
                }
            }
            Err(e) => self.finding(Severity::Error, FindingKind::MalformedPoints, at, e),
        }
    }

    /// "同上" in `column` takes the row above's value (a warning says which), or is an error
    /// on the first row.
    fn same_as_above(&mut self, value: &mut String, column: &str, at: Location) {
        if !is_same_as_above(value) {
            return;
        }
        let said = value.trim().to_string();
        match &self.above {
            Some((row_above, m, u)) => {
                let resolved = (if column == "提供材料" { m } else { u }).clone();
                let text = format!(
                    "'{said}' (same as above) is resolved to row {row_above}'s value: {resolved}"
                );
                self.finding(Severity::Warning, FindingKind::SameAsAbove, at, text);
                *value = resolved;
            }
            None => {
                let text = format!("'{said}' (same as above) but there is no row above");
                self.finding(Severity::Error, FindingKind::SameAsAbove, at, text);
                value.clear();
            }
        }
    }

    /// The units a 负责单位 cell names, each once; an alias is read with a warning, an
    /// unknown name left out with an error.
    fn responsible(&mut self, units: &UnitRegistry, cell: &str, at: Location) -> Vec<UnitId> {
        let mut responsible = Vec::new();
        for (spelling, resolution) in units.resolve_cell(cell) {
            let id = match resolution {
                Resolution::Canonical(id) => id,
                Resolution::Alias {
                    id,
                    canonical,
                    added,
                } => {
                    let origin = if added {
                        "; an alias cezone accepts, not a spelling of the source document"
                    } else {
                        ""
                    };
                    let text = format!("'{spelling}' is read as '{canonical}' ({id}){origin}");
                    self.finding(Severity::Warning, FindingKind::UnitAlias, at.clone(), text);
                    id
                }
                Resolution::Unknown => {
                    let text = format!(
                        "'{spelling}' is not a known responsible unit or alias; it is left out"
                    );
                    self.finding(Severity::Error, FindingKind::UnknownUnit, at.clone(), text);
                    continue;
                }
            };
            if !responsible.contains(&id) {
                responsible.push(id);
            }
        }
        responsible
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lines: &[&[&str]]) -> Vec<Row> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| Row {
                number: i as u32 + 1,
                cells: l.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }

    fn registry() -> UnitRegistry {
        UnitRegistry::from_toml(
            "[[unit]]\nid = \"education\"\nname = \"区教育局\"\naliases = [\"区教育\"]\n",
        )
        .unwrap()
    }

    const HEADER: &[&str] = &[
        "一级指标",
        "二级指标",
        "三级指标",
        "分值",
        "提供材料",
        "负责单位",
    ];

    #[test]
    fn reads_merged_cells_and_same_as_above() {
        let t = parse_table(
            &rows(&[
                HEADER,
                &[
                    "1.领导（4分）",
                    "1.1认知（4分）",
                    "★1.1.1认识到位",
                    "2分",
                    "文件",
                    "区教育",
                ],
                &["", "", "1.1.2规划", "2分", "同上，", "区教育局"],
            ]),
            &registry(),
        );
        assert_eq!(t.items.len(), 4);
        assert!(t.items[2].key);
        assert_eq!(t.items[3].materials, "文件");
        assert_eq!(t.findings.of_kind(FindingKind::SameAsAbove).count(), 1);
        let alias = t.findings.of_kind(FindingKind::UnitAlias).next().unwrap();
        assert_eq!(alias.location.row, Some(2));
        assert!(alias.message.contains("区教育局"));
    }

    #[test]
    fn reports_codes_out_of_place_and_unknown_units() {
        let t = parse_table(
            &rows(&[
                HEADER,
                &[
                    "1.领导（4分）",
                    "1.1认知（4分）",
                    "1.2.1错位",
                    "2分",
                    "文件",
                    "区体育局",
                ],
                &["", "", "x认识", "2分", "文件", "区教育局"],
            ]),
            &registry(),
        );
        assert_eq!(t.findings.of_kind(FindingKind::CodeOutOfPlace).count(), 1);
        assert_eq!(t.findings.of_kind(FindingKind::UnknownUnit).count(), 1);
        let bad = t
            .findings
            .of_kind(FindingKind::MalformedCode)
            .next()
            .unwrap();
        assert_eq!(bad.location.row, Some(3));
    }

    #[test]
    fn a_missing_column_is_a_header_error() {
        let t = parse_table(&rows(&[&["一级指标", "分值", "提供材料"]]), &registry());
        let f = t
            .findings
            .of_kind(FindingKind::MalformedHeader)
            .next()
            .unwrap();
        assert!(f.message.contains("负责单位"), "{}", f.message);
    }
}
