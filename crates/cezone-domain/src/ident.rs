//! Identifiers: checked once when parsed at the edge, carried as their own type after that,
//! and checked again whenever one is read back (serde goes through `parse`).

/// Declares the identifier newtype `$name(String)`: `parse` (accepting what `$valid` accepts,
/// and otherwise saying "'x' is not `$what` id (`$grammar`)"), `as_str`, `Display`, and serde
/// as a plain string through `parse`.
macro_rules! ident_newtype {
    ($(#[$meta:meta])* $name:ident, $what:literal, $grammar:literal, $valid:expr) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                let valid: fn(&str) -> bool = $valid;
                if valid(text) {
                    Ok($name(text.to_string()))
                } else {
                    Err(format!(
                        concat!("'{}' is not ", $what, " id (", $grammar, ")"),
                        text
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use ident_newtype;

/// Lowercase letters, digits and '-', not starting with '-', at most 64 (framework and unit ids).
pub(crate) fn kebab_case(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
}

/// A lowercase letter, then lowercase letters, digits and '_', at most 64 (metric and question
/// ids, as rule files write them).
pub(crate) fn snake_case(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
