//! Everything an untrusted framework file goes through, as one call: the entry point of the
//! importer's fuzz target (`fuzz/`) and of the property tests that run the same inputs on
//! stable Rust. It must return findings or an error for any bytes, never panic.

use crate::findings::Findings;
use crate::framework::{Framework, FrameworkDocument};

/// Reads `bytes` as the file `name` would be read: a table (.csv/.xlsx) with the Guangdong
/// package's units, rules and calendar, or a framework document (.json).
pub fn read_untrusted(name: &str, bytes: &[u8]) -> Result<(Framework, Findings), String> {
    if name.ends_with(".json") {
        let doc: FrameworkDocument = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        return Ok(Framework::from_document(doc));
    }
    let rows = crate::package::read_table(name, bytes).map_err(|e| e.to_string())?;
    Ok(crate::guangdong::parts().with_table(name, rows).build())
}
