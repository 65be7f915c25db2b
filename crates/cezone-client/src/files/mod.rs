//! The files a district keeps — org lists, statistical returns, survey platforms' exports —
//! read into the services' messages with every bad cell named by sheet (in XLSX), row and
//! column, and the files written back (templates, exports). The commands, the HTTP API and the
//! workbench share them.

pub mod org_list;
pub mod returns;
pub mod scores;
pub mod survey_export;

use std::fmt;

use cezone_domain::package::read_table_sheet;

/// A row as a person finds it: `sheet 统计报表, row 3` in a workbook, `row 3` in a CSV file
/// (which has no sheets).
pub fn at(sheet: Option<&str>, row: u32) -> String {
    match sheet {
        Some(s) => format!("sheet {s}, row {row}"),
        None => format!("row {row}"),
    }
}

/// One bad cell (or row, or file), placed as a person would find it in a spreadsheet; the
/// sheet is the file's (`FileErrors::sheet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// 1-based row as the spreadsheet numbers it; 0 for the file as a whole.
    pub row: u32,
    /// Column letter and header, e.g. `C (上级 parent)`; empty for a whole row.
    pub column: String,
    pub message: String,
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.row, self.column.is_empty()) {
            (0, _) => write!(f, "{}", self.message),
            (r, true) => write!(f, "row {r}: {}", self.message),
            (r, false) => write!(f, "row {r}, column {}: {}", self.column, self.message),
        }
    }
}

/// Everything wrong with a file; nothing is sent while there is any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileErrors {
    pub file: String,
    /// The worksheet the rows were read from (XLSX); none for CSV.
    pub sheet: Option<String>,
    pub errors: Vec<CellError>,
}

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} problem(s); nothing was sent",
            self.file,
            self.errors.len()
        )?;
        for e in &self.errors {
            match &self.sheet {
                Some(sheet) if e.row > 0 => writeln!(f, "  sheet {sheet}, {e}")?,
                _ => writeln!(f, "  {e}")?,
            }
        }
        Ok(())
    }
}

impl FileErrors {
    pub fn whole(file: &str, message: impl Into<String>) -> FileErrors {
        FileErrors {
            file: file.to_string(),
            sheet: None,
            errors: vec![CellError {
                row: 0,
                column: String::new(),
                message: message.into(),
            }],
        }
    }
}

/// A table read from a .csv or .xlsx file (the first worksheet): a header row and data rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub file: String,
    /// The worksheet's name (XLSX); none for CSV.
    pub sheet: Option<String>,
    pub headers: Vec<String>,
    /// (row number as the spreadsheet shows it, cells), blank rows left out.
    pub rows: Vec<(u32, Vec<String>)>,
}

impl Table {
    pub fn read(file: &str, bytes: &[u8]) -> Result<Table, FileErrors> {
        let (sheet, rows) =
            read_table_sheet(file, bytes).map_err(|e| FileErrors::whole(file, e.to_string()))?;
        let mut it = rows
            .into_iter()
            .filter(|r| r.cells.iter().any(|c| !c.trim().is_empty()));
        let header = it
            .next()
            .ok_or_else(|| FileErrors::whole(file, "the file has no header row"))?;
        let headers = header
            .cells
            .iter()
            .map(|c| c.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        Ok(Table {
            file: file.to_string(),
            sheet,
            headers,
            rows: it.map(|r| (r.number, r.cells)).collect(),
        })
    }

    /// The first column whose header carries one of `aliases` as a word (headers are often
    /// bilingual, `上级 parent`), case-insensitively.
    pub fn column(&self, aliases: &[&str]) -> Option<usize> {
        self.headers.iter().position(|h| {
            words(h)
                .iter()
                .any(|w| aliases.iter().any(|a| w.eq_ignore_ascii_case(a)))
        })
    }

    /// `sheet 统计报表, row 3` (XLSX) or `row 3` (CSV).
    pub fn at(&self, row: u32) -> String {
        at(self.sheet.as_deref(), row)
    }

    /// The file's errors, placed in its sheet.
    pub fn refused(&self, errors: Vec<CellError>) -> FileErrors {
        FileErrors {
            file: self.file.clone(),
            sheet: self.sheet.clone(),
            errors,
        }
    }

    /// `C (上级 parent)`: the letter a spreadsheet shows and the header.
    pub fn place(&self, col: usize) -> String {
        format!(
            "{} ({})",
            column_letter(col),
            self.headers.get(col).map_or("", String::as_str)
        )
    }

    pub fn cell<'a>(&self, cells: &'a [String], col: usize) -> &'a str {
        cells.get(col).map_or("", |c| c.trim())
    }
}

/// The words of a header: split at spaces, slashes and brackets of either width.
pub fn words(header: &str) -> Vec<&str> {
    header
        .split(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    '/' | '(' | ')' | '（' | '）' | '[' | ']' | '|' | '：' | ':'
                )
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Spreadsheet column letters: 0 → A, 25 → Z, 26 → AA.
pub fn column_letter(mut col: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII letters")
}

/// Writes rows as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese).
pub fn to_csv(headers: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        // Writing to memory cannot fail.
        let _ = w.write_record(headers);
        for r in rows {
            let _ = w.write_record(r);
        }
        let _ = w.flush();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_words() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(words("上级 parent"), vec!["上级", "parent"]);
        assert_eq!(words("人口（2013）"), vec!["人口", "2013"]);
    }

    #[test]
    fn a_table_finds_its_columns_and_places_cells() {
        let csv = "\u{feff}代码 code,名称 name\nnanhai,南海区\n\n,\nx,y\n";
        let t = Table::read("o.csv", csv.as_bytes()).unwrap();
        assert_eq!(t.column(&["code"]), Some(0));
        assert_eq!(t.column(&["名称"]), Some(1));
        assert_eq!(t.column(&["parent"]), None);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(
            t.rows[1].0, 5,
            "rows keep the numbers the spreadsheet shows"
        );
        assert_eq!(t.place(1), "B (名称 name)");
        assert_eq!(t.sheet, None, "CSV has no sheets");
        assert_eq!(t.at(5), "row 5");
    }

    /// A workbook whose first sheet is `name`, with `rows` of text from A1.
    fn workbook(name: &str, rows: &[&[&str]]) -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.set_name(name).unwrap();
        for (r, cells) in rows.iter().enumerate() {
            for (c, v) in cells.iter().enumerate() {
                sheet.write_string(r as u32, c as u16, *v).unwrap();
            }
        }
        book.save_to_buffer().unwrap()
    }

    #[test]
    fn cells_of_a_workbook_are_placed_by_sheet_row_and_column() {
        let bytes = workbook(
            "组织机构",
            &[
                &["代码 code", "名称 name", "上级 parent", "层级 level"],
                &["nanhai", "南海区", "", "district"],
                &["nanhai.x", "", "nanhai", "village"],
            ],
        );
        let t = Table::read("orgs.xlsx", &bytes).unwrap();
        assert_eq!(t.sheet.as_deref(), Some("组织机构"));
        assert_eq!(t.at(3), "sheet 组织机构, row 3");
        let e = org_list::read("orgs.xlsx", &bytes).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("sheet 组织机构, row 3, column B (名称 name): is empty"),
            "{shown}"
        );
        assert!(
            shown
                .contains("sheet 组织机构, row 3, column D (层级 level): 'village' is not a level"),
            "{shown}"
        );
        assert_eq!(
            org_list::rows("orgs.xlsx", &bytes),
            vec!["sheet 组织机构, row 2", "sheet 组织机构, row 3"]
        );
        // A problem with the whole file names no sheet or row.
        let e = FileErrors::whole("x.xlsx", "the file has no header row");
        assert_eq!(
            e.to_string().lines().nth(1),
            Some("  the file has no header row")
        );
    }
}
