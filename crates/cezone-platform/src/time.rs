//! Timestamps as the API shows them (RFC 3339 in UTC) and as people read them (the district's
//! zone, with the offset).

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now_rfc3339() -> String {
    rfc3339(now())
}

/// An RFC 3339 time as people read it: in the district's zone, with the offset shown
/// (`2026-12-01 18:30:05 +08:00`). Text that is not a time is shown as it is.
pub fn local(rfc3339: &str, utc_offset_hours: i32) -> String {
    let Some(zone) = chrono::FixedOffset::east_opt(utc_offset_hours * 3600) else {
        return rfc3339.to_string();
    };
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_shown_in_the_districts_zone_with_the_offset() {
        assert_eq!(
            super::local("2026-12-01T10:30:05Z", 8),
            "2026-12-01 18:30:05 +08:00"
        );
        assert_eq!(
            super::local("2026-12-01T20:00:00.123+00:00", 8),
            "2026-12-02 04:00:00 +08:00"
        );
        assert_eq!(super::local("", 8), "");
    }
}
