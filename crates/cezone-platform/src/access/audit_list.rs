//! Reading a service's audit log as people ask for it: newest first, filtered by actor, action,
//! target and time, in pages. Every service answers `ListAudit` with [`list`] over its own log.

use cezone_domain::access::{Action, Principal};
use cezone_proto::common::v1::{AuditEntry, ListAuditRequest, ListAuditResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};

use crate::access::audit::table;
use crate::access::auth::permit;
use crate::error::ApiError;
use crate::paging::Page;

/// What a request asks for, parsed: the filters and the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub actor: Option<String>,
    /// Exactly this action, or every action it starts (`evidence.`).
    pub action: Option<ActionFilter>,
    pub target: Option<String>,
    /// Stored times are RFC 3339 in UTC with milliseconds, so they compare as text.
    pub since: Option<String>,
    pub until: Option<String>,
    pub size: u64,
    /// Entries older than this seq (the last of the previous page).
    pub before_seq: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionFilter {
    Exactly(String),
    Prefix(String),
}

impl Query {
    /// Every field checked; a bad one is named with its value.
    pub fn parse(req: &ListAuditRequest) -> Result<Query, ApiError> {
        let text = |field: &str, v: &str| -> Result<Option<String>, ApiError> {
            let v = v.trim();
            if v.chars().any(char::is_control) {
                return Err(ApiError::invalid(
                    field,
                    format!("{v:?} contains control characters"),
                ));
            }
            if v.chars().count() > 200 {
                return Err(ApiError::invalid(field, "is longer than 200 characters"));
            }
            Ok((!v.is_empty()).then(|| v.to_string()))
        };
        let time = |field: &str, v: &str| -> Result<Option<String>, ApiError> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            DateTime::parse_from_rfc3339(v)
                .map(|t| Some(crate::time::rfc3339(t.with_timezone(&Utc))))
                .map_err(|e| {
                    ApiError::invalid(
                        field,
                        format!("'{v}' is not an RFC 3339 time (2026-12-01T09:00:00+08:00): {e}"),
                    )
                })
        };
        let since = time("since", &req.since)?;
        let until = time("until", &req.until)?;
        if let (Some(s), Some(u)) = (&since, &until)
            && s >= u
        {
            return Err(ApiError::invalid(
                "until",
                format!("'{}' is not after since '{}'", req.until, req.since),
            ));
        }
        let page = Page::parse(req.page.as_ref())?;
        let before_seq = match &page.after {
            None => None,
            Some(k) => Some(k.parse::<i64>().map_err(|_| {
                ApiError::invalid(
                    "page.page_token",
                    "is not a page token of this audit log".to_string(),
                )
            })?),
        };
        if page.offset != 0 {
            return Err(ApiError::invalid(
                "page.page_token",
                "is not a page token of this audit log",
            ));
        }
        Ok(Query {
            actor: text("actor", &req.actor)?,
            action: text("action", &req.action)?.map(|a| {
                if a.ends_with('.') {
                    ActionFilter::Prefix(a)
                } else {
                    ActionFilter::Exactly(a)
                }
            }),
            target: text("target", &req.target)?,
            since,
            until,
            size: page.size,
            before_seq,
        })
    }
}

/// `ListAudit` of `service`: allowed to the evaluation office, inspectors and district IT.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    service: &str,
    who: &Principal,
    req: &ListAuditRequest,
) -> Result<ListAuditResponse, ApiError> {
    permit(who, &Action::ReadAudit, None)?;
    let q = Query::parse(req)?;
    let (entries, more) = select(conn, service, &q).await?;
    let last = more
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    let page = Page {
        offset: 0,
        size: q.size,
        after: None,
    };
    Ok(ListAuditResponse {
        entries,
        page: page.info_after(last),
    })
}

/// The entries `q` asks for, and whether more follow.
pub async fn select<C: ConnectionTrait>(
    conn: &C,
    service: &str,
    q: &Query,
) -> Result<(Vec<AuditEntry>, bool), sea_orm::DbErr> {
    let backend = conn.get_database_backend();
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let param = |v: Value, values: &mut Vec<Value>| -> String {
        values.push(v);
        match backend {
            DatabaseBackend::Postgres => format!("${}", values.len()),
            _ => "?".to_string(),
        }
    };
    // LIKE with the pattern's own wildcards escaped: the text is looked for as written, and
    // (lower on both sides) without regard to case, alike on both backends.
    let contains = |s: &str| {
        format!(
            "%{}%",
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    };
    if let Some(a) = &q.actor {
        let p = param(contains(a).into(), &mut values);
        clauses.push(format!("lower(actor) LIKE lower({p}) ESCAPE '\\'"));
    }
    if let Some(t) = &q.target {
        let p = param(contains(t).into(), &mut values);
        clauses.push(format!("lower(target) LIKE lower({p}) ESCAPE '\\'"));
    }
    match &q.action {
        Some(ActionFilter::Exactly(a)) => {
            let p = param(a.clone().into(), &mut values);
            clauses.push(format!("action = {p}"));
        }
        Some(ActionFilter::Prefix(a)) => {
            let p = param(a.clone().into(), &mut values);
            clauses.push(format!("substr(action, 1, {}) = {p}", a.chars().count()));
        }
        None => {}
    }
    if let Some(s) = &q.since {
        let p = param(s.clone().into(), &mut values);
        clauses.push(format!("at >= {p}"));
    }
    if let Some(u) = &q.until {
        let p = param(u.clone().into(), &mut values);
        clauses.push(format!("at < {p}"));
    }
    if let Some(b) = q.before_seq {
        let p = param(b.into(), &mut values);
        clauses.push(format!("seq < {p}"));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT seq, at, actor, action, target, details, hash FROM {}{filter} \
         ORDER BY seq DESC LIMIT {}",
        table(service),
        q.size + 1
    );
    let rows = conn
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let more = rows.len() as u64 > q.size;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows.into_iter().take(q.size as usize) {
        entries.push(AuditEntry {
            seq: row.try_get("", "seq")?,
            at: row.try_get("", "at")?,
            actor: row.try_get("", "actor")?,
            action: row.try_get("", "action")?,
            target: row.try_get("", "target")?,
            details_json: row.try_get("", "details")?,
            hash: row.try_get("", "hash")?,
        });
    }
    Ok((entries, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(f: impl FnOnce(&mut ListAuditRequest)) -> ListAuditRequest {
        let mut r = ListAuditRequest::default();
        f(&mut r);
        r
    }

    #[test]
    fn filters_are_parsed_once_and_bad_ones_named() {
        let q = Query::parse(&req(|r| {
            r.action = "evidence.".into();
            r.since = "2026-12-01T08:00:00+08:00".into();
        }))
        .unwrap();
        assert_eq!(q.action, Some(ActionFilter::Prefix("evidence.".into())));
        assert_eq!(q.since.as_deref(), Some("2026-12-01T00:00:00.000Z"));
        assert_eq!(q.size, 100);

        let e = Query::parse(&req(|r| r.since = "yesterday".into())).unwrap_err();
        assert!(e.message.starts_with("since: 'yesterday'"), "{}", e.message);
        let e = Query::parse(&req(|r| {
            r.since = "2026-12-02T00:00:00Z".into();
            r.until = "2026-12-01T00:00:00Z".into();
        }))
        .unwrap_err();
        assert!(e.message.starts_with("until:"), "{}", e.message);
        let e = Query::parse(&req(|r| r.actor = "a\u{0}b".into())).unwrap_err();
        assert!(e.message.starts_with("actor:"), "{}", e.message);
    }
}
