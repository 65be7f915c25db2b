//! Points as exact thousandths, so sums never drift and "2分", "0.5" and "1.25" all parse.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, Sub};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of points, stored as an exact count of thousandths of a point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Points(i64);

impl Points {
    pub const ZERO: Points = Points(0);

    pub const fn from_milli(milli: i64) -> Self {
        Points(milli)
    }

    pub const fn whole(points: i64) -> Self {
        Points(points * 1000)
    }

    pub const fn milli(self) -> i64 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// `self × fraction`, rounded to the nearest thousandth; the fraction is clamped to [0, 1].
    pub fn scaled(self, fraction: f64) -> Points {
        let f = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        Points((self.0 as f64 * f).round() as i64)
    }

    /// Parses "2", "2分", "0.5", "1.25 分", "（ 24分）"-style inner text. At most three decimals.
    pub fn parse(text: &str) -> Result<Points, String> {
        let t = text
            .trim()
            .trim_end_matches('分')
            .trim_end_matches("points")
            .trim();
        if t.is_empty() {
            return Err(format!("'{text}' holds no number of points"));
        }
        let (int_part, frac_part) = match t.split_once('.') {
            Some((i, f)) => (i, f),
            None => (t, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        if !digits(int_part) || (!frac_part.is_empty() && !digits(frac_part)) {
            return Err(format!(
                "'{text}' is not a number of points (expected e.g. 2, 2分, 0.5)"
            ));
        }
        if frac_part.len() > 3 {
            return Err(format!("'{text}' has more than three decimals"));
        }
        let whole: i64 = int_part
            .parse()
            .map_err(|_| format!("'{text}' is too large to be a number of points"))?;
        let mut frac = frac_part.to_string();
        while frac.len() < 3 {
            frac.push('0');
        }
        let frac: i64 = frac.parse().unwrap_or(0);
        whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(frac))
            .map(Points)
            .ok_or_else(|| format!("'{text}' is too large to be a number of points"))
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, frac) = (abs / 1000, abs % 1000);
        if frac == 0 {
            return write!(f, "{sign}{whole}");
        }
        // Thousandths without their trailing zeros: 0.250 is "0.25".
        let (mut frac, mut width) = (frac, 3);
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, "{sign}{whole}.{frac:0width$}")
    }
}

impl Add for Points {
    type Output = Points;
    fn add(self, rhs: Points) -> Points {
        Points(self.0 + rhs.0)
    }
}

impl Sub for Points {
    type Output = Points;
    fn sub(self, rhs: Points) -> Points {
        Points(self.0 - rhs.0)
    }
}

impl Sum for Points {
    fn sum<I: Iterator<Item = Points>>(iter: I) -> Points {
        iter.fold(Points::ZERO, Add::add)
    }
}

impl Serialize for Points {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => Points::parse(&t).map_err(serde::de::Error::custom),
            Raw::Int(i) => Ok(Points::whole(i)),
            Raw::Float(f) => Points::parse(&f.to_string()).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_table_spellings() {
        assert_eq!(Points::parse("2分").unwrap(), Points::whole(2));
        assert_eq!(Points::parse(" 24分").unwrap(), Points::whole(24));
        assert_eq!(Points::parse("0.5").unwrap(), Points::from_milli(500));
        assert_eq!(Points::parse("1.25 分").unwrap(), Points::from_milli(1250));
        assert!(Points::parse("两分").is_err());
        assert!(Points::parse("").is_err());
        assert!(Points::parse("1.2345").is_err());
        assert!(Points::parse("-1").is_err());
    }

    #[test]
    fn displays_without_trailing_zeros() {
        assert_eq!(Points::from_milli(2500).to_string(), "2.5");
        assert_eq!(Points::whole(16).to_string(), "16");
        assert_eq!(Points::from_milli(1).to_string(), "0.001");
        assert_eq!(Points::from_milli(50).to_string(), "0.05");
        assert_eq!(Points::from_milli(1020).to_string(), "1.02");
        assert_eq!(Points::from_milli(-2500).to_string(), "-2.5");
        assert_eq!(Points::ZERO.to_string(), "0");
    }

    proptest::proptest! {
        #[test]
        fn display_parses_back(milli in 0i64..10_000_000) {
            let p = Points::from_milli(milli);
            let shown = p.to_string();
            proptest::prop_assert!(!shown.ends_with('0') || !shown.contains('.'), "{}", shown);
            proptest::prop_assert_eq!(Points::parse(&shown).unwrap(), p);
        }
    }

    #[test]
    fn scaling_clamps_and_rounds() {
        assert_eq!(Points::whole(3).scaled(2.0 / 3.0), Points::from_milli(2000));
        assert_eq!(Points::whole(3).scaled(1.5), Points::whole(3));
        assert_eq!(Points::whole(3).scaled(-1.0), Points::ZERO);
        assert_eq!(Points::whole(3).scaled(f64::NAN), Points::ZERO);
    }
}
