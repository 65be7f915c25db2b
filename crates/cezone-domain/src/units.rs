//! Responsible units (负责单位): canonical names, the aliases tables use, and unit groups such as
//! 各镇（街道） that stand for every org unit at one level.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::org::OrgLevel;

/// Stable ASCII identifier of a responsible unit, e.g. `education`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnitId(String);

impl UnitId {
    pub fn parse(text: &str) -> Result<UnitId, String> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !text.starts_with('-');
        if ok {
            Ok(UnitId(text.to_string()))
        } else {
            Err(format!(
                "'{text}' is not a unit id (lowercase letters, digits and '-', at most 64)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A district department; its evidence is filed for the district as a whole.
    #[default]
    Department,
    /// Stands for every org unit at `level` (each town or street files its own evidence).
    EachOrgLevel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsibleUnit {
    pub id: UnitId,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub kind: UnitKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<OrgLevel>,
    #[serde(default)]
    pub duties: String,
}

impl ResponsibleUnit {
    /// The org level whose every unit files separately, for a unit group.
    pub fn expands_to(&self) -> Option<OrgLevel> {
        match self.kind {
            UnitKind::Department => None,
            UnitKind::EachOrgLevel => Some(self.level.unwrap_or(OrgLevel::Town)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Canonical(UnitId),
    Alias { id: UnitId, canonical: String },
    Unknown,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRegistry {
    #[serde(rename = "unit", default)]
    pub units: Vec<ResponsibleUnit>,
}

impl UnitRegistry {
    pub fn from_toml(text: &str) -> Result<UnitRegistry, String> {
        let reg: UnitRegistry = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen: HashMap<String, &UnitId> = HashMap::new();
        for u in &reg.units {
            for name in std::iter::once(&u.name).chain(&u.aliases) {
                let key = normalize(name);
                if let Some(other) = seen.insert(key, &u.id)
                    && other != &u.id
                {
                    return Err(format!(
                        "the spelling '{name}' is claimed by both '{other}' and '{}'",
                        u.id
                    ));
                }
            }
        }
        let mut ids: Vec<&UnitId> = reg.units.iter().map(|u| &u.id).collect();
        ids.sort();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("unit id '{}' is declared twice", w[0]));
        }
        Ok(reg)
    }

    pub fn get(&self, id: &UnitId) -> Option<&ResponsibleUnit> {
        self.units.iter().find(|u| &u.id == id)
    }

    pub fn name_of(&self, id: &UnitId) -> String {
        self.get(id)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// Maps a spelling to its unit; full-width and half-width brackets and spaces are equal.
    pub fn resolve(&self, spelling: &str) -> Resolution {
        let key = normalize(spelling);
        for u in &self.units {
            if normalize(&u.name) == key {
                return Resolution::Canonical(u.id.clone());
            }
        }
        for u in &self.units {
            if u.aliases.iter().any(|a| normalize(a) == key) {
                return Resolution::Alias {
                    id: u.id.clone(),
                    canonical: u.name.clone(),
                };
            }
        }
        Resolution::Unknown
    }
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            c => c,
        })
        .collect()
}

/// Splits a 负责单位 cell on the separators government tables use.
pub fn split_unit_list(cell: &str) -> Vec<String> {
    cell.split(['、', '，', ',', '；', ';', '/', '\n'])
        .map(|s| s.trim().trim_end_matches('。').trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> UnitRegistry {
        UnitRegistry::from_toml(
            r#"
[[unit]]
id = "education"
name = "区教育局"
aliases = ["区教育"]
[[unit]]
id = "towns"
name = "各镇（街道）"
kind = "each_org_level"
level = "town"
"#,
        )
        .unwrap()
    }

    #[test]
    fn resolves_canonical_alias_and_unknown() {
        let r = registry();
        assert_eq!(
            r.resolve("区教育局"),
            Resolution::Canonical(UnitId::parse("education").unwrap())
        );
        assert!(matches!(r.resolve("区教育"), Resolution::Alias { .. }));
        assert_eq!(
            r.resolve("各镇(街道)"),
            Resolution::Canonical(UnitId::parse("towns").unwrap())
        );
        assert_eq!(r.resolve("区体育局"), Resolution::Unknown);
    }

    #[test]
    fn rejects_a_spelling_claimed_twice() {
        let err = UnitRegistry::from_toml(
            "[[unit]]\nid = \"a\"\nname = \"x\"\n[[unit]]\nid = \"b\"\nname = \"y\"\naliases = [\"x\"]\n",
        )
        .unwrap_err();
        assert!(err.contains("'x'"), "{err}");
    }

    #[test]
    fn splits_unit_cells() {
        assert_eq!(
            split_unit_list("区府办、区教育、各镇（街道）"),
            vec!["区府办", "区教育", "各镇（街道）"]
        );
        assert_eq!(split_unit_list(" 区公安局 "), vec!["区公安局"]);
    }
}
