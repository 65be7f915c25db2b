//! Reading indicator tables as a government office keeps them (CSV or XLSX with one column per
//! level, then points, materials and responsible units) into framework items, with findings.

mod table;
mod sources;

pub use sources::{read_csv_rows, read_xlsx_rows, Row, TableFormat};
pub use table::{parse_table, TableItems};
