//! Turning CSV and XLSX bytes into rows of text cells, keeping the source row numbers.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};

/// One source row: its 1-based number in the file and its cells as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub number: u32,
    pub cells: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Xlsx,
}

impl TableFormat {
    /// By file name: `.csv` or `.xlsx` (case-insensitive).
    pub fn from_name(name: &str) -> Option<TableFormat> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(TableFormat::Csv)
        } else if lower.ends_with(".xlsx") || lower.ends_with(".xlsm") {
            Some(TableFormat::Xlsx)
        } else {
            None
        }
    }
}

/// CSV in UTF-8 (a leading byte-order mark is allowed). Rows may have differing lengths.
pub fn read_csv_rows(bytes: &[u8]) -> Result<Vec<Row>, String> {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "the CSV file is not UTF-8 text (byte {}); save it as CSV UTF-8",
            e.valid_up_to()
        )
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| format!("the CSV file cannot be read: {e}"))?;
        let number = rec
            .position()
            .map_or(rows.len() as u32 + 1, |p| p.line() as u32);
        rows.push(Row {
            number,
            cells: rec.iter().map(str::to_string).collect(),
        });
    }
    Ok(rows)
}

/// The first worksheet of an XLSX workbook. Merged cells hold their value in the top-left cell
/// only, which is exactly the "continued from above" convention the importer expects.
pub fn read_xlsx_rows(bytes: &[u8]) -> Result<Vec<Row>, String> {
    read_xlsx_sheet(bytes).map(|(_, rows)| rows)
}

/// The first worksheet of an XLSX workbook, with the name its tab shows.
pub fn read_xlsx_sheet(bytes: &[u8]) -> Result<(String, Vec<Row>), String> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec()))
        .map_err(|e| format!("the XLSX file cannot be opened: {e}"))?;
    let name = book.sheet_names().first().cloned().unwrap_or_default();
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| "the XLSX file has no worksheet".to_string())?
        .map_err(|e| format!("the first worksheet cannot be read: {e}"))?;
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let mut rows = Vec::new();
    for (i, r) in range.rows().enumerate() {
        let mut cells: Vec<String> = vec![String::new(); first_col as usize];
        cells.extend(r.iter().map(cell_text));
        rows.push(Row {
            number: first_row + i as u32 + 1,
            cells,
        });
    }
    Ok((name, rows))
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}
