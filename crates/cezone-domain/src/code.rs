//! Item codes such as `3.2.1`: dot-separated positive numbers, one per level of the tree.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemCode(Vec<u32>);

impl ItemCode {
    /// Parses `3`, `3.2`, `3.2.1`; a trailing dot (`1.`, `2．`) is tolerated.
    pub fn parse(text: &str) -> Result<ItemCode, String> {
        let t = text.trim().replace('．', ".");
        let t = t.trim_end_matches('.');
        if t.is_empty() {
            return Err(format!(
                "'{text}' is not an item code (expected e.g. 3.2.1)"
            ));
        }
        let mut parts = Vec::new();
        for seg in t.split('.') {
            if seg.is_empty() || !seg.chars().all(|c| c.is_ascii_digit()) || seg.len() > 6 {
                return Err(format!(
                    "'{text}' is not an item code (expected e.g. 3.2.1)"
                ));
            }
            let n: u32 = seg
                .parse()
                .map_err(|_| format!("'{text}' is not an item code"))?;
            if n == 0 {
                return Err(format!("'{text}' has a zero segment; codes count from 1"));
            }
            parts.push(n);
        }
        Ok(ItemCode(parts))
    }

    pub fn depth(&self) -> usize {
        self.0.len()
    }

    pub fn segments(&self) -> &[u32] {
        &self.0
    }

    /// The code one level up, `3.2` for `3.2.1`; none for a first-level code.
    pub fn parent(&self) -> Option<ItemCode> {
        (self.0.len() > 1).then(|| ItemCode(self.0[..self.0.len() - 1].to_vec()))
    }

    pub fn is_prefix_of(&self, other: &ItemCode) -> bool {
        other.0.len() > self.0.len() && other.0.starts_with(&self.0)
    }

    /// First-level ancestor (the area), `3` for `3.2.1`.
    pub fn area(&self) -> ItemCode {
        ItemCode(vec![self.0[0]])
    }
}

impl fmt::Display for ItemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl Serialize for ItemCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ItemCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ItemCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Splits a table cell such as `★1.3.1区（县、市）…` or `1.领导与管理（16分）` into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellHead {
    pub key: bool,
    pub code: Option<ItemCode>,
    /// The code text as written when it could not be parsed.
    pub raw_code: String,
    pub title: String,
    /// Points declared inside the cell, as in `（16分）`.
    pub points: Option<String>,
}

pub fn split_cell(cell: &str) -> CellHead {
    let mut rest = cell.trim();
    let mut key = false;
    for star in ['★', '☆', '*'] {
        if let Some(r) = rest.strip_prefix(star) {
            key = true;
            rest = r.trim_start();
        }
    }
    let code_len: usize = rest
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_digit() || *c == '.' || *c == '．')
        .map(|(_, c)| c.len_utf8())
        .sum();
    let raw_code = rest[..code_len].to_string();
    let code = ItemCode::parse(&raw_code).ok();
    let mut title = rest[code_len..].trim().to_string();
    let mut points = None;
    // A trailing （N分） or (N分) declares the item's points.
    for (open, close) in [('（', '）'), ('(', ')')] {
        if title.ends_with(close)
            && let Some(start) = title.rfind(open)
        {
            let inner = &title[start + open.len_utf8()..title.len() - close.len_utf8()];
            if inner.trim().ends_with('分') {
                points = Some(inner.trim().to_string());
                title = title[..start].trim().to_string();
                break;
            }
        }
    }
    CellHead {
        key,
        code,
        raw_code,
        title,
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes() {
        assert_eq!(ItemCode::parse("3.2.1").unwrap().to_string(), "3.2.1");
        assert_eq!(ItemCode::parse("2．").unwrap().to_string(), "2");
        assert!(ItemCode::parse("3..1").is_err());
        assert!(ItemCode::parse("3.0").is_err());
        assert!(ItemCode::parse("a.1").is_err());
        assert_eq!(
            ItemCode::parse("3.2.1")
                .unwrap()
                .parent()
                .unwrap()
                .to_string(),
            "3.2"
        );
    }

    #[test]
    fn splits_table_cells() {
        let h = split_cell(" 2．条件与保障（ 24分）");
        assert_eq!(h.code.unwrap().to_string(), "2");
        assert_eq!(h.title, "条件与保障");
        assert_eq!(h.points.as_deref(), Some("24分"));
        let h = split_cell("★1.3.1区（县、市）、街道（乡镇）成立…");
        assert!(h.key);
        assert_eq!(h.code.unwrap().to_string(), "1.3.1");
        assert!(h.title.starts_with("区（县、市）"));
        assert_eq!(h.points, None);
        let h = split_cell("认知理念");
        assert_eq!(h.code, None);
        assert_eq!(h.raw_code, "");
    }
}
