//! A unit's statistical return (统计报表) as a spreadsheet: the template it fills in (the
//! metrics the responsibility matrix gives it, one row per org unit in its scope, current
//! values pre-filled, units of measure in the headers, data validation in the cells) and the
//! filled-in file read back cell by cell.

use std::collections::HashMap;
use std::sync::Arc;

use cezone_domain::framework::Framework;
use cezone_domain::org::{OrgTree, OrgUnit, OrgUnitId};
use cezone_domain::rules::{MetricDef, MetricUnit};
use cezone_domain::units::UnitId;
use cezone_proto::surveys::v1 as psv;
use rust_xlsxwriter::{DataValidation, DataValidationRule, Format, Workbook};

use super::{CellError, FileErrors, Table};

const ORG_UNIT: &[&str] = &["org_unit", "code", "代码"];
const PERIOD: &[&str] = &["period", "年度", "year"];

/// Current values: (org unit, metric, period) → value as stored (fen for yuan).
pub type Current = HashMap<(String, String, i32), i64>;

/// The metrics read by the rules of the criteria `unit` is responsible for, in catalog order.
pub use cezone_domain::obligations::metrics_of;

/// A unit of measure as headers show it: Chinese, then English.
pub fn unit_label(u: MetricUnit) -> &'static str {
    match u {
        MetricUnit::Count => "个 count",
        MetricUnit::Person => "人 persons",
        MetricUnit::Yuan => "元 yuan",
    }
}

/// The header of a metric's column: its name, unit of measure and id, e.g.
/// `社区教育经费（元 yuan）funding`. The id is what the import reads.
pub fn metric_header(m: &MetricDef) -> String {
    format!("{}（{}）{}", m.name, unit_label(m.unit), m.id)
}

/// A value as a person writes it: yuan with two decimals, counts as they are.
pub fn shown(m: &MetricDef, value: i64) -> String {
    match m.unit {
        MetricUnit::Yuan => format!("{}.{:02}", value / 100, (value % 100).abs()),
        _ => value.to_string(),
    }
}

/// Reads what a person wrote into a metric's cell: a whole number for counts and persons, yuan
/// with at most two decimals (stored in fen); thousands separators tolerated.
pub fn parse_value(m: &MetricDef, text: &str) -> Result<i64, String> {
    let t = text.trim().replace([',', '，', ' '], "");
    let value = match m.unit {
        MetricUnit::Yuan => {
            let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
            let ok = !whole.is_empty()
                && whole.chars().all(|c| c.is_ascii_digit())
                && frac.len() <= 2
                && frac.chars().all(|c| c.is_ascii_digit());
            if !ok {
                return Err(format!(
                    "'{text}' is not an amount in yuan (a number with at most two decimals, not negative)"
                ));
            }
            let yuan: i64 = whole
                .parse()
                .map_err(|_| format!("'{text}' is larger than any amount"))?;
            let fen: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
            yuan.checked_mul(100)
                .and_then(|v| v.checked_add(fen))
                .ok_or_else(|| format!("'{text}' is larger than any amount"))?
        }
        MetricUnit::Count | MetricUnit::Person => {
            if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "'{text}' is not a {} (a whole number, not negative)",
                    match m.unit {
                        MetricUnit::Person => "number of persons",
                        _ => "count",
                    }
                ));
            }
            t.parse()
                .map_err(|_| format!("'{text}' is larger than any count"))?
        }
    };
    if value > m.max() {
        return Err(format!(
            "{text} is more than {} ({}), the most any org unit may report for {}",
            shown(m, m.max()),
            unit_label(m.unit),
            m.id
        ));
    }
    Ok(value)
}

/// The template as an XLSX workbook.
pub fn template(
    fw: &Framework,
    tree: &OrgTree,
    unit: &UnitId,
    period: i32,
    scope: Option<&OrgUnitId>,
    current: &Current,
) -> Result<Vec<u8>, String> {
    let metrics = metrics_of(fw, unit);
    if metrics.is_empty() {
        return Err(format!(
            "unit '{unit}' is responsible for no criterion that reads a statistic; it files no return"
        ));
    }
    let root = match scope {
        Some(id) => tree
            .find(id)
            .ok_or_else(|| format!("org unit '{id}' does not exist"))?,
        None => tree.root(),
    };
    let rows: Vec<&OrgUnit> = tree.subtree(root).map(|i| tree.unit(i)).collect();
    sheet(&metrics, &rows, period, current)
}

/// A return sheet for `metrics` × `rows`, values filled in from `current`, with the headers,
/// number formats and data validation of the template.
pub fn sheet(
    metrics: &[&MetricDef],
    rows: &[&OrgUnit],
    period: i32,
    current: &Current,
) -> Result<Vec<u8>, String> {
    let x = |e: rust_xlsxwriter::XlsxError| e.to_string();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("统计报表").map_err(x)?;
    let head = Format::new().set_bold().set_text_wrap();
    let money = Format::new().set_num_format("#,##0.00");
    let headers: Vec<String> = ["代码 org_unit", "名称 name", "年度 period"]
        .iter()
        .map(|s| s.to_string())
        .chain(metrics.iter().map(|m| metric_header(m)))
        .collect();
    for (c, h) in headers.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, h, &head)
            .map_err(x)?;
        sheet
            .set_column_width(c as u16, if c < 3 { 16 } else { 22 })
            .map_err(x)?;
    }
    for (r, u) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet.write_string(r, 0, u.id.as_str()).map_err(x)?;
        sheet.write_string(r, 1, &u.name).map_err(x)?;
        sheet.write_number(r, 2, f64::from(period)).map_err(x)?;
        for (c, m) in metrics.iter().enumerate() {
            let key = (u.id.to_string(), m.id.to_string(), period);
            if let Some(v) = current.get(&key) {
                let c = c as u16 + 3;
                match m.unit {
                    MetricUnit::Yuan => sheet
                        .write_number_with_format(r, c, *v as f64 / 100.0, &money)
                        .map_err(x)?,
                    _ => sheet.write_number(r, c, *v as f64).map_err(x)?,
                };
            }
        }
    }
    let last = rows.len().max(1) as u32;
    for (c, m) in metrics.iter().enumerate() {
        let c = c as u16 + 3;
        let message = format!(
            "{}：{}，0 至 {}",
            m.name,
            match m.unit {
                MetricUnit::Yuan => "金额（元，最多两位小数）amount in yuan",
                MetricUnit::Person => "人数（整数）persons, a whole number",
                MetricUnit::Count => "数量（整数）a whole number",
            },
            shown(m, m.max())
        );
        let rule = match m.unit {
            MetricUnit::Yuan => DataValidation::new()
                .allow_decimal_number(DataValidationRule::Between(0.0, m.max() as f64 / 100.0)),
            _ => DataValidation::new().allow_whole_number(DataValidationRule::Between(
                0,
                i32::try_from(m.max()).unwrap_or(i32::MAX),
            )),
        };
        let rule = rule
            .set_error_title("数值无效 Invalid value")
            .map_err(x)?
            .set_error_message(&message)
            .map_err(x)?;
        sheet.add_data_validation(1, c, last, c, &rule).map_err(x)?;
    }
    sheet.set_freeze_panes(1, 3).map_err(x)?;
    book.save_to_buffer().map_err(x)
}

/// One filled-in cell of a return.
#[derive(Debug, Clone, PartialEq)]
pub struct Filed {
    /// The worksheet (XLSX; shared by every cell of the file), none for CSV.
    pub sheet: Option<Arc<str>>,
    pub row: u32,
    pub column: String,
    pub statistic: psv::StatisticReturn,
}

impl Filed {
    /// `sheet 统计报表, row 3` (XLSX) or `row 3` (CSV).
    pub fn at(&self) -> String {
        super::at(self.sheet.as_deref(), self.row)
    }

    /// `sheet 统计报表, row 3, column D (…)`: the cell as a person finds it.
    pub fn place(&self) -> String {
        format!("{}, column {}", self.at(), self.column)
    }
}

/// Reads a filled-in return; every bad cell is reported and nothing is returned while any is.
/// Empty cells file nothing. Metric columns are those whose header carries a catalog metric id.
pub fn read(
    file: &str,
    bytes: &[u8],
    fw: &Framework,
    tree: &OrgTree,
) -> Result<Vec<Filed>, FileErrors> {
    let t = Table::read(file, bytes)?;
    let mut errors = Vec::new();
    let org_c = t.column(ORG_UNIT);
    let period_c = t.column(PERIOD);
    let metric_cols: Vec<(usize, &MetricDef)> = t
        .headers
        .iter()
        .enumerate()
        .filter_map(|(c, h)| {
            let words = super::words(h);
            fw.catalog
                .metrics
                .iter()
                .find(|m| words.contains(&m.id.as_str()))
                .map(|m| (c, m))
        })
        .collect();
    if org_c.is_none() {
        errors.push(CellError {
            row: 1,
            column: String::new(),
            message: "no org unit column (a header such as '代码 org_unit')".into(),
        });
    }
    if period_c.is_none() {
        errors.push(CellError {
            row: 1,
            column: String::new(),
            message: "no period column (a header such as '年度 period')".into(),
        });
    }
    if metric_cols.is_empty() {
        errors.push(CellError {
            row: 1,
            column: String::new(),
            message: "no metric column: a header must carry a metric id of the framework's catalog"
                .into(),
        });
    }
    let (Some(org_c), Some(period_c)) = (org_c, period_c) else {
        return Err(t.refused(errors));
    };
    let sheet: Option<Arc<str>> = t.sheet.as_deref().map(Arc::from);
    let mut filed = Vec::new();
    for (row, cells) in &t.rows {
        let mut bad = |col: usize, message: String| {
            errors.push(CellError {
                row: *row,
                column: t.place(col),
                message,
            })
        };
        let code = t.cell(cells, org_c);
        let org = match OrgUnitId::parse(code) {
            Ok(id) if tree.find(&id).is_some() => Some(id),
            Ok(_) => {
                bad(
                    org_c,
                    format!("'{code}' is not an org unit of the district"),
                );
                None
            }
            Err(e) => {
                bad(org_c, e);
                None
            }
        };
        let period_text = t.cell(cells, period_c);
        let period = match period_text.parse::<i32>() {
            Ok(p) if (1900..=2200).contains(&p) => Some(p),
            _ => {
                bad(period_c, format!("'{period_text}' is not a year"));
                None
            }
        };
        for (c, m) in &metric_cols {
            let text = t.cell(cells, *c);
            if text.is_empty() {
                continue;
            }
            match parse_value(m, text) {
                Ok(value) => {
                    if let (Some(org), Some(period)) = (&org, period) {
                        filed.push(Filed {
                            sheet: sheet.clone(),
                            row: *row,
                            column: t.place(*c),
                            statistic: psv::StatisticReturn {
                                org_unit: org.to_string(),
                                metric: m.id.to_string(),
                                period,
                                value,
                                ..Default::default()
                            },
                        });
                    }
                }
                Err(e) => bad(*c, e),
            }
        }
    }
    // One value per (org unit, metric, period): a second row for the same org unit is a mistake.
    let mut first: HashMap<(String, String, i32), u32> = HashMap::new();
    for f in &filed {
        let s = &f.statistic;
        if let Some(r) = first.insert((s.org_unit.clone(), s.metric.clone(), s.period), f.row) {
            errors.push(CellError {
                row: f.row,
                column: f.column.clone(),
                message: format!(
                    "row {r} already gives {} for '{}' in {}",
                    s.metric, s.org_unit, s.period
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(filed)
    } else {
        errors.sort_by_key(|e| e.row);
        Err(t.refused(errors))
    }
}

/// What an import changes against the current values.
#[derive(Debug, Default)]
pub struct Changes<'a> {
    /// (cell, value before) for each new or different value.
    pub changed: Vec<(&'a Filed, Option<i64>)>,
    pub unchanged: usize,
}

pub fn changes<'a>(filed: &'a [Filed], current: &Current) -> Changes<'a> {
    let mut out = Changes::default();
    for f in filed {
        let s = &f.statistic;
        let before = current
            .get(&(s.org_unit.clone(), s.metric.clone(), s.period))
            .copied();
        if before == Some(s.value) {
            out.unchanged += 1;
        } else {
            out.changed.push((f, before));
        }
    }
    out
}
