//! Reading indicator tables as a government office keeps them (CSV or XLSX with one column per
//! level, then points, materials and responsible units) into framework items, with findings.

mod sources;
mod table;
mod untrusted;

pub use sources::{Row, TableFormat, read_csv_rows, read_xlsx_rows, read_xlsx_sheet};
pub use table::{TableItems, parse_table};
pub use untrusted::read_untrusted;
