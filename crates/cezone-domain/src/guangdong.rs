//! The Guangdong framework as Nanhai's 2013 plan assigns it, embedded in the binary.

use crate::findings::Findings;
use crate::framework::Framework;
use crate::package::{PackageParts, read_parts};

pub const MANIFEST: &str = include_str!("../../../data/guangdong-2013/framework.toml");
pub const TABLE: &str = include_str!("../../../data/guangdong-2013/indicators.csv");
pub const UNITS: &str = include_str!("../../../data/guangdong-2013/units.toml");
pub const RULES: &str = include_str!("../../../data/guangdong-2013/rules.toml");
pub const CALENDAR: &str = include_str!("../../../data/guangdong-2013/calendar.toml");

/// Where the package lives in the repository, for messages and documentation.
pub const PACKAGE_DIR: &str = "data/guangdong-2013";

fn embedded(name: &str) -> Result<Vec<u8>, String> {
    match name
        .strip_prefix(PACKAGE_DIR)
        .map_or(name, |n| n.trim_start_matches('/'))
    {
        "indicators.csv" => Ok(TABLE.as_bytes().to_vec()),
        "units.toml" => Ok(UNITS.as_bytes().to_vec()),
        "rules.toml" => Ok(RULES.as_bytes().to_vec()),
        "calendar.toml" => Ok(CALENDAR.as_bytes().to_vec()),
        other => Err(format!("'{other}' is not part of the embedded package")),
    }
}

pub fn parts() -> PackageParts {
    read_parts(
        &format!("{PACKAGE_DIR}/framework.toml"),
        MANIFEST,
        &embedded,
    )
    .expect("the embedded package is valid")
}

/// The embedded framework and what validation says about the seed table.
pub fn framework() -> (Framework, Findings) {
    parts().build()
}
