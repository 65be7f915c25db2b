//! Responsible units (负责单位): canonical names, the aliases tables use, and unit groups such as
//! 各镇（街道） that stand for every org unit at one level.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::org::OrgLevel;

crate::ident::ident_newtype!(
    /// Stable ASCII identifier of a responsible unit, e.g. `education`.
    UnitId,
    "a unit",
    "lowercase letters, digits and '-', at most 64",
    crate::ident::kebab_case
);

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
    /// The name people see: the spelling the indicator table uses (区人社局), so that whatever
    /// quotes the table quotes it as written.
    pub name: String,
    /// The long form the plan itself uses elsewhere (五、工作分工: 区人力资源和社会保障局), when
    /// it differs from `name`. Read as this unit without a finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_name: Option<String>,
    /// Other spellings the source document uses for this unit (区教育 for 区教育局); a table
    /// using one is read as this unit and the spelling is reported.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Spellings the document never uses, accepted as an import convenience (区卫计局); read as
    /// this unit and reported as an added alias.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_aliases: Vec<String>,
    #[serde(default)]
    pub kind: UnitKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<OrgLevel>,
    /// The unit's duties, quoted word for word from the plan (empty when the plan gives none).
    #[serde(default)]
    pub duties: String,
    /// Where `duties` is quoted from, e.g. `五、工作分工（三）`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duties_source: String,
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
    /// The table's own name or the plan's long form.
    Canonical(UnitId),
    /// Another spelling; `added` when the document never uses it (an import convenience).
    Alias {
        id: UnitId,
        canonical: String,
        added: bool,
    },
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
            for name in u.spellings() {
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
            if normalize(&u.name) == key
                || u.plan_name.as_deref().map(normalize) == Some(key.clone())
            {
                return Resolution::Canonical(u.id.clone());
            }
        }
        for u in &self.units {
            for (list, added) in [(&u.aliases, false), (&u.added_aliases, true)] {
                if list.iter().any(|a| normalize(a) == key) {
                    return Resolution::Alias {
                        id: u.id.clone(),
                        canonical: u.name.clone(),
                        added,
                    };
                }
            }
        }
        Resolution::Unknown
    }

    /// Splits a 负责单位 cell and resolves each name. Two neighbours the separator split apart
    /// are read as one when together they are a known spelling: the plan's own
    /// "区委办、政府办" names one responsible body.
    pub fn resolve_cell(&self, cell: &str) -> Vec<(String, Resolution)> {
        let parts = split_unit_list(cell);
        let mut out = Vec::with_capacity(parts.len());
        let mut i = 0;
        while i < parts.len() {
            if i + 1 < parts.len() {
                let joined = format!("{}、{}", parts[i], parts[i + 1]);
                let r = self.resolve(&joined);
                if r != Resolution::Unknown {
                    out.push((joined, r));
                    i += 2;
                    continue;
                }
            }
            out.push((parts[i].clone(), self.resolve(&parts[i])));
            i += 1;
        }
        out
    }
}

impl ResponsibleUnit {
    /// Every spelling that resolves to this unit: name, plan name, aliases, added aliases.
    pub fn spellings(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.name)
            .chain(self.plan_name.as_ref())
            .chain(&self.aliases)
            .chain(&self.added_aliases)
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
    fn plan_names_are_canonical_added_aliases_are_marked_and_pairs_join() {
        let r = UnitRegistry::from_toml(
            r#"
[[unit]]
id = "district-office"
name = "区府办"
plan_name = "区委办、政府办"
added_aliases = ["区政府办"]
[[unit]]
id = "hrss"
name = "区人社局"
plan_name = "区人力资源和社会保障局"
"#,
        )
        .unwrap();
        let hrss = UnitId::parse("hrss").unwrap();
        assert_eq!(
            r.resolve("区人力资源和社会保障局"),
            Resolution::Canonical(hrss.clone())
        );
        assert!(matches!(
            r.resolve("区政府办"),
            Resolution::Alias { added: true, .. }
        ));
        let cell = r.resolve_cell("区委办、政府办、区人社局");
        let names: Vec<&str> = cell.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["区委办、政府办", "区人社局"]);
        assert_eq!(
            cell[0].1,
            Resolution::Canonical(UnitId::parse("district-office").unwrap())
        );
        assert_eq!(cell[1].1, Resolution::Canonical(hrss));
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
