//! Offset pagination behind opaque tokens, with a capped page size.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cezone_proto::common::v1::{PageInfo, PageRequest};

use crate::error::ApiError;

pub const DEFAULT_PAGE_SIZE: u64 = 100;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// A page: an offset (for small, in-memory lists) or, for large tables, the key of the last
/// row of the previous page (`after`), so deep pages cost no more than the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub size: u64,
    pub after: Option<String>,
}

impl Page {
    pub fn parse(req: Option<&PageRequest>) -> Result<Page, ApiError> {
        let Some(req) = req else {
            return Ok(Page {
                offset: 0,
                size: DEFAULT_PAGE_SIZE,
                after: None,
            });
        };
        if req.page_size < 0 {
            return Err(ApiError::invalid(
                "page.page_size",
                format!("{} is negative", req.page_size),
            ));
        }
        let size = match req.page_size as u64 {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let bad = || {
            ApiError::invalid(
                "page.page_token",
                format!("'{}' is not a page token from this service", req.page_token),
            )
        };
        let (offset, after) = if req.page_token.is_empty() {
            (0, None)
        } else {
            match decode(&req.page_token).ok_or_else(bad)? {
                Token::Offset(o) => (o, None),
                Token::After(k) => (0, Some(k)),
            }
        };
        Ok(Page {
            offset,
            size,
            after,
        })
    }

    /// The page info after a keyset page: `last` is the key of its last row, if more follow.
    pub fn info_after(&self, last: Option<String>) -> Option<PageInfo> {
        Some(PageInfo {
            next_page_token: last
                .map(|k| URL_SAFE_NO_PAD.encode(format!("k:{k}")))
                .unwrap_or_default(),
        })
    }

    /// The page info for a page that returned `returned` items (one more was fetched to know
    /// whether another page exists).
    pub fn info(&self, has_more: bool) -> Option<PageInfo> {
        Some(PageInfo {
            next_page_token: if has_more {
                encode(self.offset + self.size)
            } else {
                String::new()
            },
        })
    }

    /// Slices an in-memory list.
    pub fn slice<T: Clone>(&self, all: &[T]) -> (Vec<T>, Option<PageInfo>) {
        let start = (self.offset as usize).min(all.len());
        let end = (start + self.size as usize).min(all.len());
        (all[start..end].to_vec(), self.info(end < all.len()))
    }
}

fn encode(offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

enum Token {
    Offset(u64),
    After(String),
}

fn decode(token: &str) -> Option<Token> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    if let Some(k) = text.strip_prefix("k:") {
        return Some(Token::After(k.to_string()));
    }
    text.strip_prefix("o:")?.parse().ok().map(Token::Offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_sizes_are_capped() {
        let p = Page::parse(Some(&PageRequest {
            page_size: 5000,
            page_token: String::new(),
        }))
        .unwrap();
        assert_eq!(p.size, MAX_PAGE_SIZE);
        let next = p.info(true).unwrap().next_page_token;
        let q = Page::parse(Some(&PageRequest {
            page_size: 10,
            page_token: next,
        }))
        .unwrap();
        assert_eq!(q.offset, MAX_PAGE_SIZE);
        assert!(
            Page::parse(Some(&PageRequest {
                page_size: 10,
                page_token: "nope".into()
            }))
            .is_err()
        );
        assert!(
            Page::parse(Some(&PageRequest {
                page_size: -1,
                page_token: String::new()
            }))
            .is_err()
        );
    }

    #[test]
    fn keyset_tokens_carry_the_last_key() {
        let p = Page::parse(None).unwrap();
        let k = p.info_after(Some("42".into())).unwrap().next_page_token;
        let r = Page::parse(Some(&PageRequest {
            page_size: 10,
            page_token: k,
        }))
        .unwrap();
        assert_eq!(r.after.as_deref(), Some("42"));
        assert!(p.info_after(None).unwrap().next_page_token.is_empty());
    }
}
