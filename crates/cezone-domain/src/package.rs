//! A framework package: a manifest naming the indicator table, the unit registry, the rules and
//! the calendar. Files are read through a caller-supplied function, so this stays free of I/O.

use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::calendar::SourceLines;
use crate::findings::Findings;
use crate::framework::{Framework, FrameworkId, FrameworkMeta, MANIFEST_FILE, RULES_FILE};
use crate::import::{Row, TableFormat, parse_table, read_csv_rows, read_xlsx_sheet};
use crate::points::Points;
use crate::rules::RulesFile;
use crate::units::UnitRegistry;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: FrameworkId,
    pub edition: String,
    pub title: String,
    #[serde(default)]
    pub total_points: Option<Points>,
    pub table: String,
    pub units: String,
    #[serde(default)]
    pub rules: Option<String>,
    #[serde(default)]
    pub calendar: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

fn file_err(file: &str, message: impl Into<String>) -> PackageError {
    PackageError::File {
        file: file.to_string(),
        message: message.into(),
    }
}

/// Everything a framework is built from, already read.
#[derive(Debug, Clone)]
pub struct PackageParts {
    pub meta: FrameworkMeta,
    pub table_name: String,
    /// The files' names as findings show them: the manifest's path as given, the others
    /// beside it (`data/guangdong-2013/calendar.toml`).
    pub manifest_name: String,
    /// The line of `total_points` in the manifest.
    pub total_points_line: Option<u32>,
    pub rules_name: Option<String>,
    /// The calendar file's name, for findings.
    pub calendar_name: Option<String>,
    pub rows: Vec<Row>,
    pub units: UnitRegistry,
    pub rules: RulesFile,
    pub calendar: Calendar,
}

pub fn read_table(name: &str, bytes: &[u8]) -> Result<Vec<Row>, PackageError> {
    read_table_sheet(name, bytes).map(|(_, rows)| rows)
}

/// `read_table`, with the name of the worksheet the rows come from (none for CSV, which has
/// no sheets), so that places in the file can name it.
pub fn read_table_sheet(
    name: &str,
    bytes: &[u8],
) -> Result<(Option<String>, Vec<Row>), PackageError> {
    match TableFormat::from_name(name) {
        Some(TableFormat::Csv) => read_csv_rows(bytes)
            .map(|rows| (None, rows))
            .map_err(|e| file_err(name, e)),
        Some(TableFormat::Xlsx) => read_xlsx_sheet(bytes)
            .map(|(sheet, rows)| (Some(sheet).filter(|s| !s.is_empty()), rows))
            .map_err(|e| file_err(name, e)),
        None => Err(file_err(name, "the table must be a .csv or .xlsx file")),
    }
}

/// Reads a manifest and the files it names (paths relative to the manifest).
pub fn read_parts(
    manifest_name: &str,
    manifest_text: &str,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<PackageParts, PackageError> {
    let m: Manifest =
        toml::from_str(manifest_text).map_err(|e| file_err(manifest_name, e.to_string()))?;
    // Where the manifest is, the others are: findings name each file as a person would open it.
    let dir = manifest_name
        .rfind(['/', '\\'])
        .map_or("", |i| &manifest_name[..=i]);
    let shown = |name: &str| format!("{dir}{name}");
    let text = |name: &str| -> Result<String, PackageError> {
        let bytes = read(name).map_err(|e| file_err(name, e))?;
        String::from_utf8(bytes).map_err(|_| file_err(name, "not UTF-8 text"))
    };
    let table_bytes = read(&m.table).map_err(|e| file_err(&m.table, e))?;
    let rows = read_table(&m.table, &table_bytes)?;
    let units = UnitRegistry::from_toml(&text(&m.units)?).map_err(|e| file_err(&m.units, e))?;
    let rules = match &m.rules {
        Some(f) => RulesFile::from_toml(&text(f)?).map_err(|e| file_err(f, e))?,
        None => RulesFile::default(),
    };
    let calendar = match &m.calendar {
        Some(f) => Calendar::from_toml(&text(f)?).map_err(|e| file_err(f, e))?,
        None => Calendar::default(),
    };
    Ok(PackageParts {
        meta: FrameworkMeta {
            id: m.id,
            edition: m.edition,
            title: m.title,
            total_points: m.total_points,
        },
        table_name: shown(&m.table),
        manifest_name: manifest_name.to_string(),
        total_points_line: SourceLines::find(manifest_text, |l| l.starts_with("total_points")),
        rules_name: m.rules.as_deref().map(shown),
        calendar_name: m.calendar.as_deref().map(shown),
        rows,
        units,
        rules,
        calendar,
    })
}

impl PackageParts {
    /// The same package with another indicator table, as when an office imports its own sheet.
    pub fn with_table(mut self, name: &str, rows: Vec<Row>) -> PackageParts {
        self.table_name = name.to_string();
        self.rows = rows;
        self
    }

    /// Builds the framework; every finding carries the file it came from.
    pub fn build(self) -> (Framework, Findings) {
        let table = parse_table(&self.rows, &self.units);
        let mut findings = table.findings;
        for f in &mut findings.0 {
            f.location.file = Some(self.table_name.clone());
        }
        let table_name = self.table_name.clone();
        let rule_lines = self.rules.lines.clone();
        let calendar_lines = self.calendar.lines.clone();
        let (fw, more) = Framework::assemble(
            self.meta,
            table.items,
            self.units,
            self.rules.catalog,
            self.calendar,
            self.rules.rules,
        );
        // Findings that point at a source row point into the table.
        // The calendar, rules and manifest findings name their file and line like the table's.
        for mut f in more.0 {
            let loc = &mut f.location;
            if loc.row.is_some() && loc.file.is_none() {
                loc.file = Some(table_name.clone());
            }
            match loc.file.as_deref() {
                Some("calendar") => {
                    if let Some(name) = &self.calendar_name {
                        loc.file = Some(name.clone());
                    }
                    let key = loc.item.clone().unwrap_or_default();
                    loc.row = calendar_lines.get(&key);
                }
                Some(RULES_FILE) => {
                    if let Some(name) = &self.rules_name {
                        loc.file = Some(name.clone());
                    }
                    loc.row = loc.item.as_deref().and_then(|c| rule_lines.get(c));
                }
                Some(MANIFEST_FILE) => {
                    loc.file = Some(self.manifest_name.clone());
                    loc.row = self.total_points_line;
                }
                _ => {}
            }
            findings.push(f);
        }
        (fw, findings)
    }
}
