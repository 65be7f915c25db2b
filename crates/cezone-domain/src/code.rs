//! Item codes: one label per level of the tree, joined with dots, kept as the table writes them.
//!
//! A label carries a number, written in one of the ways indicator tables number their items:
//! - arabic digits: `3.2.1` (a full path in every level column, as Guangdong's table writes it);
//! - a few Latin letters before the digits: `A1.2.1`, `B2`;
//! - Chinese numerals, as government documents number their levels: `一`, `（一）` or `(一)`,
//!   `（1）`, `①`.
//!
//! Tables numbered the Chinese way write only each level's own label (`一、` for level 1,
//! `（一）` for level 2, `1.` for level 3); the importer builds the full code from the levels,
//! `一.（一）.1`: each level's label as written, without the 、 or . that follows it, joined with
//! dots. Arabic-only labels are read as numbers (`01` is written `1`, as before); every other
//! label is kept character for character, brackets included.
//!
//! Codes order level by level: by the letters before the number, then by the number (Chinese
//! numerals read as numbers, so `十` follows `九`), then by the text as written. For arabic codes
//! this is the numeric order `1.2` < `1.10`.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An item's code as written, e.g. `3.2.1`, `A1.2.1` or `一.（一）.1`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemCode(Arc<str>);

const EXPECTED: &str = "expected e.g. 3.2.1, A1.2.1 or 一.（一）.1";

/// The longest label accepted, in characters.
const MAX_LABEL: usize = 12;

impl ItemCode {
    /// Parses `3`, `3.2`, `3.2.1`, `A1.2.1`, `一.（一）.1`; a trailing dot or 、 (`1.`, `2．`,
    /// `一、`) is tolerated, a full-width dot reads as a dot.
    pub fn parse(text: &str) -> Result<ItemCode, String> {
        let t = text.trim().replace('．', ".");
        let t = t.trim_end_matches(['.', '、']);
        if t.is_empty() {
            return Err(format!("'{text}' is not an item code ({EXPECTED})"));
        }
        let mut out = String::with_capacity(t.len());
        for (i, seg) in t.split('.').enumerate() {
            let label = Label::parse(seg)
                .map_err(|why| format!("'{text}' is not an item code: {why} ({EXPECTED})"))?;
            if i > 0 {
                out.push('.');
            }
            label.write(seg, &mut out);
        }
        Ok(ItemCode(out.into()))
    }

    /// The code as written, `一.（一）.1`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn depth(&self) -> usize {
        self.0.split('.').count()
    }

    /// Each level's label, `一`, `（一）`, `1`.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// The code one level up, `3.2` for `3.2.1`; none for a first-level code.
    pub fn parent(&self) -> Option<ItemCode> {
        self.0.rfind('.').map(|i| ItemCode(self.0[..i].into()))
    }

    /// The code of a child labelled `label` (a one-level code): `一.（一）` under `一`.
    pub fn child(&self, label: &ItemCode) -> ItemCode {
        ItemCode(format!("{}.{}", self.0, label.0).into())
    }

    pub fn is_prefix_of(&self, other: &ItemCode) -> bool {
        other.0.len() > self.0.len()
            && other.0.starts_with(&*self.0)
            && other.0.as_bytes()[self.0.len()] == b'.'
    }

    /// Whether the first level is numbered the Chinese way (`一`, `（一）`, `①`): a table of
    /// such a framework writes each level's own label in its column rather than the path.
    pub fn numbered_by_level(&self) -> bool {
        let first = self.segments().next().unwrap_or_default();
        Label::parse(first).is_ok_and(|l| l.kind == LabelKind::Numbered)
    }

    /// The last level's label as a table cell of a framework numbered by level writes it
    /// before the title: `一、`, `（一）`, `1.`.
    pub fn label_for_cell(&self) -> String {
        let last = self.segments().last().unwrap_or_default();
        let bare_numerals = last.chars().all(is_chinese_numeral);
        match Label::parse(last).map(|l| l.kind) {
            Ok(LabelKind::Numbered) if bare_numerals => format!("{last}、"),
            Ok(LabelKind::Numbered) => last.to_string(),
            Ok(LabelKind::Lettered { .. }) => format!("{last} "),
            _ => format!("{last}."),
        }
    }

    /// First-level ancestor (the area), `3` for `3.2.1`.
    pub fn area(&self) -> ItemCode {
        match self.0.find('.') {
            Some(i) => ItemCode(self.0[..i].into()),
            None => self.clone(),
        }
    }
}

impl Ord for ItemCode {
    fn cmp(&self, other: &Self) -> Ordering {
        let mut a = self.segments();
        let mut b = other.segments();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => {
                    let o = label_order(x, y);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
            }
        }
    }
}

impl PartialOrd for ItemCode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Letters, then number, then the text as written (so the order agrees with equality).
fn label_order(a: &str, b: &str) -> Ordering {
    let key = |s| match Label::parse(s) {
        Ok(l) => (l.letters_of(s), l.number),
        Err(_) => ("", 0),
    };
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

impl fmt::Display for ItemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ItemCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ItemCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ItemCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How one level's label is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelKind {
    /// `3`: read as its number.
    Arabic,
    /// `A1`: letters, then digits.
    Lettered { letters: usize },
    /// `一`, `（一）`, `(1)`, `①`: the document's own numbering, kept as written.
    Numbered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label {
    kind: LabelKind,
    number: u32,
}

impl Label {
    fn parse(seg: &str) -> Result<Label, String> {
        if seg.is_empty() {
            return Err("a level is empty".into());
        }
        if seg.chars().count() > MAX_LABEL {
            return Err(format!(
                "label '{seg}' is longer than {MAX_LABEL} characters"
            ));
        }
        let nonzero = |n: u32| {
            if n == 0 {
                Err(format!("label '{seg}' is zero; codes count from 1"))
            } else {
                Ok(n)
            }
        };
        if seg.chars().all(|c| c.is_ascii_digit()) {
            let n = digits(seg).ok_or_else(|| format!("label '{seg}' is too long a number"))?;
            return Ok(Label {
                kind: LabelKind::Arabic,
                number: nonzero(n)?,
            });
        }
        let letters = seg.chars().take_while(char::is_ascii_alphabetic).count();
        if letters > 0 {
            let n = (letters <= 3)
                .then(|| digits(&seg[letters..]))
                .flatten()
                .ok_or_else(|| {
                    format!("label '{seg}' must be up to 3 letters followed by a number, as A1")
                })?;
            return Ok(Label {
                kind: LabelKind::Lettered { letters },
                number: nonzero(n)?,
            });
        }
        let n = numbered(seg).ok_or_else(|| format!("label '{seg}' carries no number"))?;
        Ok(Label {
            kind: LabelKind::Numbered,
            number: nonzero(n)?,
        })
    }

    fn letters_of<'s>(&self, seg: &'s str) -> &'s str {
        match self.kind {
            LabelKind::Lettered { letters } => &seg[..letters],
            _ => "",
        }
    }

    fn write(&self, seg: &str, out: &mut String) {
        match self.kind {
            LabelKind::Arabic => out.push_str(&self.number.to_string()),
            LabelKind::Lettered { letters } => {
                out.push_str(&seg[..letters]);
                out.push_str(&self.number.to_string());
            }
            LabelKind::Numbered => out.push_str(seg),
        }
    }
}

/// One to six ASCII digits.
fn digits(s: &str) -> Option<u32> {
    (!s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `一`, `十二`, `（一）`, `(1)`, `①`: the number a Chinese-style label carries.
fn numbered(s: &str) -> Option<u32> {
    for (open, close) in [('（', '）'), ('(', ')')] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            return digits(inner).or_else(|| chinese_number(inner));
        }
    }
    let mut chars = s.chars();
    if let (Some(c), None) = (chars.next(), chars.next())
        && ('①'..='⑳').contains(&c)
    {
        return Some(c as u32 - '①' as u32 + 1);
    }
    chinese_number(s)
}

fn chinese_digit(c: char) -> Option<u32> {
    Some(match c {
        '〇' | '零' => 0,
        '一' => 1,
        '二' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

pub(crate) fn is_chinese_numeral(c: char) -> bool {
    chinese_digit(c).is_some() || c == '十' || c == '百'
}

/// Chinese numerals up to 999: `一`, `十`, `十二`, `二十`, `一百零五`.
fn chinese_number(s: &str) -> Option<u32> {
    if s.is_empty() || s.chars().count() > 6 {
        return None;
    }
    let (mut total, mut digit): (u32, Option<u32>) = (0, None);
    for c in s.chars() {
        match c {
            '十' => {
                total += digit.take().unwrap_or(1) * 10;
            }
            '百' => {
                total += digit.take()? * 100;
            }
            '〇' | '零' => {}
            _ => {
                let d = chinese_digit(c)?;
                if digit.replace(d).is_some() {
                    return None;
                }
            }
        }
    }
    Some(total + digit.unwrap_or(0))
}

/// Splits a table cell such as `★1.3.1区（县、市）…`, `1.领导与管理（16分）`, `A1.2.1…`,
/// `一、领导与管理` or `（一）认知理念` into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellHead {
    pub key: bool,
    pub code: Option<ItemCode>,
    /// The code text as written when it could not be parsed.
    pub raw_code: String,
    /// The code is the label of its own level in the Chinese way (`一、`, `（一）`, `①`), not
    /// a path from the first level.
    pub label: bool,
    pub title: String,
    /// Points declared inside the cell, as in `（16分）`.
    pub points: Option<String>,
}

/// The code at the start of `rest`: its length in bytes, and whether it is a Chinese-style
/// label. A delimiter after it (`、`, `.`) is not part of it.
fn leading_code(rest: &str) -> (usize, bool) {
    // （一）, (1): brackets around a number.
    for (open, close) in [('（', '）'), ('(', ')')] {
        if rest.starts_with(open)
            && let Some(end) = rest.find(close)
            && numbered(&rest[..end + close.len_utf8()]).is_some()
        {
            return (end + close.len_utf8(), true);
        }
    }
    if let Some(c) = rest.chars().next()
        && ('①'..='⑳').contains(&c)
    {
        return (c.len_utf8(), true);
    }
    // 一、 二． 十二 : Chinese numerals, then a delimiter; a title may itself start with 一.
    let numerals: usize = rest
        .chars()
        .take_while(|&c| is_chinese_numeral(c))
        .map(char::len_utf8)
        .sum();
    if numerals > 0 {
        let after = rest[numerals..].chars().next();
        let delimited = matches!(after, Some('、' | '.' | '．' | ' ' | '\u{3000}'));
        if delimited && chinese_number(&rest[..numerals]).is_some() {
            return (numerals, true);
        }
        return (0, false);
    }
    // 3.2.1, A1.2.1: digits and dots, with letters only where a level starts and a digit follows
    // (so a title such as `QQ群` after the code stays in the title).
    let bytes = rest.as_bytes();
    let mut i = 0;
    let mut level_start = true;
    while i < rest.len() {
        if rest[i..].starts_with('．') {
            i += '．'.len_utf8();
            level_start = true;
            continue;
        }
        let b = bytes[i];
        if b == b'.' {
            i += 1;
            level_start = true;
        } else if b.is_ascii_digit() {
            i += 1;
            level_start = false;
        } else if level_start && b.is_ascii_alphabetic() {
            let run = bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
            if bytes.get(i + run).is_some_and(u8::is_ascii_digit) {
                i += run;
                level_start = false;
            } else {
                break;
            }
        } else {
            break;
        }
    }
    (i, false)
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
    let (code_len, label) = leading_code(rest);
    let raw_code = rest[..code_len].to_string();
    let code = (code_len > 0)
        .then(|| ItemCode::parse(&raw_code).ok())
        .flatten();
    let mut title = rest[code_len..].trim_start();
    // The delimiter after a code: 一、 1、 (the dot after a number is read with the number).
    if code.is_some() {
        title = title
            .strip_prefix(['、', '.', '．'])
            .unwrap_or(title)
            .trim_start();
    }
    let mut title = title.trim().to_string();
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
        label,
        title,
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> ItemCode {
        ItemCode::parse(s).unwrap()
    }

    #[test]
    fn parses_codes() {
        assert_eq!(c("3.2.1").to_string(), "3.2.1");
        assert_eq!(c("2．").to_string(), "2");
        assert!(ItemCode::parse("3..1").is_err());
        assert!(ItemCode::parse("3.0").is_err());
        assert!(ItemCode::parse("a.1").is_err());
        assert_eq!(c("3.2.1").parent().unwrap().to_string(), "3.2");
    }

    #[test]
    fn parses_lettered_and_chinese_codes_as_written() {
        assert_eq!(c("A1.2.1").to_string(), "A1.2.1");
        assert_eq!(c("A1.2.1").parent().unwrap().to_string(), "A1.2");
        assert_eq!(c("A1.2.1").area().to_string(), "A1");
        assert_eq!(c("B2").depth(), 1);
        assert_eq!(c("一.（一）.1").to_string(), "一.（一）.1");
        assert_eq!(c("一.（一）.1").parent().unwrap(), c("一.（一）"));
        assert_eq!(c("一.（一）.1").area(), c("一"));
        assert_eq!(c("一、").to_string(), "一");
        assert_eq!(c("十二.(3).①").depth(), 3);
        assert!(c("一.（一）").is_prefix_of(&c("一.（一）.1")));
        assert!(!c("一.（一）").is_prefix_of(&c("一.（一）")));
        assert!(!c("A1").is_prefix_of(&c("A12.1")));
        assert_eq!(c("一").child(&c("（二）")), c("一.（二）"));
        assert!(c("一.（一）.1").numbered_by_level() && !c("A1.2").numbered_by_level());
        assert_eq!(c("二").label_for_cell(), "二、");
        assert_eq!(c("一.（一）").label_for_cell(), "（一）");
        assert_eq!(c("一.（一）.3").label_for_cell(), "3.");
        for bad in [
            "A", "ABCD1", "A0", "（）", "(x)", "一二", "x.y", "3 .1", "〇",
        ] {
            let e = ItemCode::parse(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("A1.2.1"), "{bad}: {e}");
        }
    }

    #[test]
    fn codes_order_by_their_numbers() {
        let mut v: Vec<ItemCode> = ["1.10", "1.2", "1", "2"].map(c).to_vec();
        v.sort();
        assert_eq!(v, ["1", "1.2", "1.10", "2"].map(c));
        let mut v: Vec<ItemCode> = ["B1", "A10", "A2", "A2.1"].map(c).to_vec();
        v.sort();
        assert_eq!(v, ["A2", "A2.1", "A10", "B1"].map(c));
        let mut v: Vec<ItemCode> = ["十", "二", "一.（十一）", "一.（二）", "九", "一"]
            .map(c)
            .to_vec();
        v.sort();
        assert_eq!(
            v,
            ["一", "一.（二）", "一.（十一）", "二", "九", "十"].map(c)
        );
        assert_eq!(chinese_number("一百零五"), Some(105));
        assert_eq!(chinese_number("二十三"), Some(23));
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

    #[test]
    fn splits_lettered_and_chinese_cells() {
        let h = split_cell("★A1.2.1 建立联席会议制度");
        assert!(h.key && !h.label);
        assert_eq!(h.code.unwrap().to_string(), "A1.2.1");
        assert_eq!(h.title, "建立联席会议制度");
        let h = split_cell("1.1.1QQ群宣传");
        assert_eq!(h.code.unwrap().to_string(), "1.1.1");
        assert_eq!(h.title, "QQ群宣传");
        let h = split_cell("一、领导与管理（16分）");
        assert!(h.label);
        assert_eq!(h.code.unwrap().to_string(), "一");
        assert_eq!(h.title, "领导与管理");
        assert_eq!(h.points.as_deref(), Some("16分"));
        let h = split_cell("（一）认知理念（2分）");
        assert!(h.label);
        assert_eq!(h.code.unwrap().to_string(), "（一）");
        assert_eq!(h.title, "认知理念");
        let h = split_cell("1.领导认识到位");
        assert!(!h.label);
        assert_eq!(h.code.unwrap().to_string(), "1");
        assert_eq!(h.title, "领导认识到位");
        let h = split_cell("2、制定规划");
        assert_eq!(h.code.unwrap().to_string(), "2");
        assert_eq!(h.title, "制定规划");
        // A title that starts with a numeral but no delimiter has no code.
        let h = split_cell("一站式服务");
        assert_eq!(h.code, None);
        assert_eq!(h.title, "一站式服务");
    }
}
