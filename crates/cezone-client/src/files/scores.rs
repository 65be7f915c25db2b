//! Scores for another system: one row per item of an org unit's scores (current or frozen),
//! as CSV, JSON or XLSX.

use cezone_proto::scoring::v1 as ps;
use rust_xlsxwriter::{Format, Workbook};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ScoresFile<'a> {
    pub org_unit: &'a str,
    pub name: &'a str,
    pub framework_id: &'a str,
    pub edition: &'a str,
    pub period: i32,
    pub max_points: &'a str,
    pub confirmed: &'a str,
    pub projected: &'a str,
    /// RFC 3339, as the service computed it.
    pub computed_at: &'a str,
    /// The frozen snapshot read, when one was.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub snapshot: &'a str,
    pub items: Vec<ItemRow<'a>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemRow<'a> {
    pub code: &'a str,
    pub title: &'a str,
    pub key: bool,
    pub leaf: bool,
    pub points: &'a str,
    pub confirmed: &'a str,
    pub projected: &'a str,
    pub lost: &'a str,
}

pub fn rows<'a>(s: &'a ps::OrgUnitScores, snapshot: &'a str) -> ScoresFile<'a> {
    let total = s.total.as_ref();
    ScoresFile {
        org_unit: &s.org_unit,
        name: &s.name,
        framework_id: &s.framework_id,
        edition: &s.edition,
        period: s.period,
        max_points: &s.max_points,
        confirmed: total.map_or("", |t| t.confirmed.as_str()),
        projected: total.map_or("", |t| t.projected.as_str()),
        computed_at: &s.computed_at,
        snapshot,
        items: s
            .items
            .iter()
            .map(|i| ItemRow {
                code: &i.code,
                title: &i.title,
                key: i.key,
                leaf: i.leaf,
                points: &i.points,
                confirmed: i.score.as_ref().map_or("", |x| x.confirmed.as_str()),
                projected: i.score.as_ref().map_or("", |x| x.projected.as_str()),
                lost: &i.lost,
            })
            .collect(),
    }
}

const HEADERS: [&str; 8] = [
    "代码 code",
    "指标 title",
    "★ key",
    "末级 leaf",
    "分值 points",
    "确认得分 confirmed",
    "预计得分 projected",
    "失分 lost",
];

fn cells(i: &ItemRow<'_>) -> Vec<String> {
    vec![
        i.code.to_string(),
        i.title.to_string(),
        if i.key { "★".into() } else { String::new() },
        if i.leaf { "1".into() } else { "0".into() },
        i.points.to_string(),
        i.confirmed.to_string(),
        i.projected.to_string(),
        i.lost.to_string(),
    ]
}

pub fn to_csv(f: &ScoresFile<'_>) -> Vec<u8> {
    let headers: Vec<String> = HEADERS.iter().map(|s| s.to_string()).collect();
    let mut rows: Vec<Vec<String>> = vec![{
        let mut total = vec![
            String::new(),
            format!("{} {} 合计 total", f.org_unit, f.name),
            String::new(),
            String::new(),
            f.max_points.to_string(),
            f.confirmed.to_string(),
            f.projected.to_string(),
            String::new(),
        ];
        total.truncate(HEADERS.len());
        total
    }];
    rows.extend(f.items.iter().map(cells));
    super::to_csv(&headers, &rows)
}

pub fn to_json(f: &ScoresFile<'_>) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(f).unwrap_or_default();
    v.push(b'\n');
    v
}

pub fn to_xlsx(f: &ScoresFile<'_>) -> Result<Vec<u8>, String> {
    let x = |e: rust_xlsxwriter::XlsxError| e.to_string();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("得分 scores").map_err(x)?;
    let bold = Format::new().set_bold();
    sheet
        .write_string_with_format(
            0,
            0,
            format!(
                "{} {} · {} {} · {} 年 · 合计 {} / {}（预计 {}）· {}",
                f.org_unit,
                f.name,
                f.framework_id,
                f.edition,
                f.period,
                f.confirmed,
                f.max_points,
                f.projected,
                f.computed_at
            ),
            &bold,
        )
        .map_err(x)?;
    for (c, h) in HEADERS.iter().enumerate() {
        sheet
            .write_string_with_format(2, c as u16, *h, &bold)
            .map_err(x)?;
    }
    for (r, item) in f.items.iter().enumerate() {
        for (c, v) in cells(item).iter().enumerate() {
            let (r, c) = (r as u32 + 3, c as u16);
            // Points are decimals as text in the API; numbers in a sheet sum.
            match (c >= 4, v.parse::<f64>()) {
                (true, Ok(n)) => sheet.write_number(r, c, n).map_err(x)?,
                _ => sheet.write_string(r, c, v).map_err(x)?,
            };
        }
    }
    sheet.set_column_width(1, 48).map_err(x)?;
    book.save_to_buffer().map_err(x)
}
