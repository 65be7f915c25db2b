//! Upload metadata: every field checked, and checked against the registry (the criterion
//! exists, the unit is responsible for it, the org unit exists at the right level).

use cezone_domain::code::ItemCode;
use cezone_domain::framework::{Framework, ItemIdx};
use cezone_domain::org::OrgUnitId;
use cezone_domain::units::UnitId;
use cezone_platform::ApiError;
use cezone_platform::glue::registry_view::RegistryView;
use cezone_proto::evidence::v1::UploadMetadata;

#[derive(Debug, Clone)]
pub struct Checked {
    pub framework_id: String,
    pub edition: String,
    pub criterion: ItemCode,
    pub org_unit: OrgUnitId,
    pub unit: UnitId,
    pub period: i32,
    pub title: String,
    pub material_type: String,
    pub file_name: String,
    pub content_type: String,
    pub replaces: Option<String>,
    pub submitted_by: String,
}

/// A file name that is a plain name: no directories, no control characters, at most 255 bytes.
pub fn safe_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 255 {
        return Err(format!("is {} bytes long; at most 255", name.len()));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character U+{:04X}", c as u32));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(format!(
            "'{name}' contains a path separator; give the file's name only"
        ));
    }
    if let Some(c) = name.chars().find(|c| is_invisible_format(*c)) {
        // Bidirectional overrides and zero-width characters make a name read as another one
        // (`invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`).
        return Err(format!(
            "contains the invisible formatting character U+{:04X}",
            c as u32
        ));
    }
    if name.contains(':') {
        return Err(format!(
            "'{name}' contains ':' (a drive or stream name); give the file's name only"
        ));
    }
    let stem = name.split('.').next().unwrap_or("").to_ascii_uppercase();
    const DEVICES: [&str; 22] = [
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
        "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if DEVICES.contains(&stem.as_str()) {
        return Err(format!(
            "'{name}' is a reserved device name on Windows, where the file may be opened"
        ));
    }
    if name == "." || name == ".." || name.trim() != name || name.ends_with('.') {
        return Err(format!("'{name}' is not a usable file name"));
    }
    Ok(())
}

/// Unicode format characters that change how text reads without being seen.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

fn text(field: &str, value: &str, max: usize, required: bool) -> Result<String, ApiError> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(ApiError::invalid(field, "is empty"));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("is {} characters long; at most {max}", v.chars().count()),
        ));
    }
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(ApiError::invalid(
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(v.to_string())
}

pub fn leaf(fw: &Framework, field: &str, code_text: &str) -> Result<(ItemCode, ItemIdx), ApiError> {
    let code = ItemCode::parse(code_text).map_err(|e| ApiError::invalid(field, e))?;
    let Some(i) = fw.find(&code) else {
        return Err(ApiError::invalid(
            field,
            format!(
                "'{code}' is not a criterion of {} edition {}",
                fw.meta.id, fw.meta.edition
            ),
        ));
    };
    if !fw.is_leaf(i) {
        return Err(ApiError::invalid(
            field,
            format!("'{code}' is a group; evidence belongs to its criteria"),
        ));
    }
    Ok((code, i))
}

pub async fn check(meta: &UploadMetadata, view: &RegistryView) -> Result<Checked, ApiError> {
    let (fw, edition) = view.framework(&meta.framework_id, &meta.edition).await?;
    let (criterion, idx) = leaf(&fw, "criterion", &meta.criterion)?;
    let item = fw.item(idx);
    let unit = UnitId::parse(&meta.responsible_unit)
        .map_err(|e| ApiError::invalid("responsible_unit", e))?;
    if !item.responsible.contains(&unit) {
        let names: Vec<String> = item.responsible.iter().map(ToString::to_string).collect();
        return Err(ApiError::invalid(
            "responsible_unit",
            format!(
                "'{unit}' is not responsible for {criterion} (responsible: {})",
                names.join(", ")
            ),
        ));
    }
    let org_unit =
        OrgUnitId::parse(&meta.org_unit).map_err(|e| ApiError::invalid("org_unit", e))?;
    let mut tree = view.org_tree(false).await?;
    if tree.find(&org_unit).is_none() {
        tree = view.org_tree(true).await?;
    }
    let Some(node) = tree.find(&org_unit) else {
        return Err(ApiError::invalid(
            "org_unit",
            format!("'{org_unit}' is not an existing org unit"),
        ));
    };
    let ru = fw
        .units
        .get(&unit)
        .ok_or_else(|| ApiError::internal_msg(format!("unit {unit} missing from its framework")))?;
    match ru.expands_to() {
        None if node != tree.root() => {
            return Err(ApiError::invalid(
                "org_unit",
                format!(
                    "'{unit}' is a department and files for the whole district '{}', not for '{org_unit}'",
                    tree.unit(tree.root()).id
                ),
            ));
        }
        Some(level) if tree.unit(node).level != level => {
            return Err(ApiError::invalid(
                "org_unit",
                format!(
                    "'{unit}' files once per {}; '{org_unit}' is a {}",
                    level.as_str(),
                    tree.unit(node).level.as_str()
                ),
            ));
        }
        _ => {}
    }
    if !(1900..=2200).contains(&meta.period) {
        return Err(ApiError::invalid(
            "period",
            format!("{} is not a plausible year", meta.period),
        ));
    }
    let title = text("title", &meta.title, 200, true)?;
    let materials = match fw.rule_of(idx).as_ref() {
        cezone_domain::rules::Rule::Evidence { materials } => materials.clone(),
        _ => Vec::new(),
    };
    let material_type = text("material_type", &meta.material_type, 100, false)?;
    if !materials.is_empty() && !materials.contains(&material_type) {
        return Err(ApiError::invalid(
            "material_type",
            format!(
                "'{material_type}' is not one of the materials {criterion} asks for: {}",
                materials.join(", ")
            ),
        ));
    }
    safe_file_name(&meta.file_name).map_err(|e| ApiError::invalid("file_name", e))?;
    let content_type = match text("content_type", &meta.content_type, 100, false)? {
        t if t.is_empty() => "application/octet-stream".to_string(),
        t => t,
    };
    let replaces = match meta.replaces.trim() {
        "" => None,
        r => Some(r.to_string()),
    };
    Ok(Checked {
        framework_id: fw.meta.id.to_string(),
        edition,
        criterion,
        org_unit,
        unit,
        period: meta.period,
        title,
        material_type,
        file_name: meta.file_name.clone(),
        content_type,
        replaces,
        submitted_by: text("submitted_by", &meta.submitted_by, 100, false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_must_be_plain_names() {
        assert!(safe_file_name("会议记录.pdf").is_ok());
        assert!(
            safe_file_name("../../etc/passwd")
                .unwrap_err()
                .contains("path separator")
        );
        assert!(safe_file_name("a\\b.doc").is_err());
        assert!(
            safe_file_name("bad\u{0007}.pdf")
                .unwrap_err()
                .contains("U+0007")
        );
        assert!(safe_file_name("..").is_err());
        assert!(safe_file_name("").is_err());
        for bad in [
            "invoice\u{202E}fdp.exe",
            "a\u{200B}b.pdf",
            "\u{FEFF}x.pdf",
            "C:\\x.pdf",
            "C:x.pdf",
            "report.pdf:hidden",
            "CON",
            "nul.txt",
            "Lpt1.doc",
            "trailing.",
        ] {
            assert!(safe_file_name(bad).is_err(), "{bad:?}");
        }
        assert!(safe_file_name("console.pdf").is_ok());
        assert!(
            safe_file_name("x\u{202E}.pdf")
                .unwrap_err()
                .contains("U+202E")
        );
        assert!(safe_file_name(&"x".repeat(256)).is_err());
    }
}
