//! When scores are recomputed and frozen before each checkpoint: plain planning over the
//! calendar, the lead times and the runs already done, so the scheduler's decisions can be
//! tested for any clock.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use crate::calendar::Calendar;

/// How runs are placed around checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulePolicy {
    /// Hours before the checkpoint, e.g. `[72, 24]`.
    pub lead_hours: Vec<u32>,
    /// Local time of day at which a checkpoint falls due.
    pub checkpoint_time: NaiveTime,
    /// The district's offset from UTC (Beijing time: +8 h).
    pub utc_offset: FixedOffset,
}

impl SchedulePolicy {
    /// Parses `"72,24"`, `"09:00"` and an offset in hours, naming what is wrong.
    pub fn parse(
        lead_hours: &str,
        checkpoint_time: &str,
        utc_offset_hours: i32,
    ) -> Result<SchedulePolicy, String> {
        Ok(SchedulePolicy {
            lead_hours: SchedulePolicy::lead_hours(lead_hours)?,
            checkpoint_time: SchedulePolicy::checkpoint_time(checkpoint_time)?,
            utc_offset: SchedulePolicy::utc_offset(utc_offset_hours)?,
        })
    }

    /// `"72,24"` (an `h` after a number is allowed): each between 1 h and 90 days, longest
    /// first, each once.
    pub fn lead_hours(text: &str) -> Result<Vec<u32>, String> {
        let mut leads = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let h: u32 = part
                .trim_end_matches('h')
                .parse()
                .map_err(|_| format!("'{part}' is not a number of hours"))?;
            if h == 0 || h > 24 * 90 {
                return Err(format!("{h} h is not between 1 h and 90 days"));
            }
            leads.push(h);
        }
        if leads.is_empty() {
            return Err("at least one lead time is needed, e.g. \"72,24\"".into());
        }
        leads.sort_unstable_by(|a, b| b.cmp(a));
        leads.dedup();
        Ok(leads)
    }

    /// `"09:00"`.
    pub fn checkpoint_time(text: &str) -> Result<NaiveTime, String> {
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map_err(|_| format!("'{text}' is not a time of day HH:MM"))
    }

    /// Between -14 and 14 hours.
    pub fn utc_offset(hours: i32) -> Result<FixedOffset, String> {
        (-14..=14)
            .contains(&hours)
            .then(|| FixedOffset::east_opt(hours * 3600))
            .flatten()
            .ok_or_else(|| format!("{hours} is not an offset between -14 and 14 hours"))
    }
}

/// One scheduled recompute-and-freeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRun {
    /// Stable across restarts and replicas: `<checkpoint>@T-<lead>h`.
    pub key: String,
    pub checkpoint: String,
    pub checkpoint_name: String,
    pub lead_hours: u32,
    pub due_at: DateTime<Utc>,
    pub checkpoint_at: DateTime<Utc>,
}

/// Every run the calendar and policy call for, earliest first.
pub fn plan(calendar: &Calendar, policy: &SchedulePolicy) -> Vec<PlannedRun> {
    let mut runs = Vec::new();
    for c in &calendar.checkpoints {
        let local = c.due.0.and_time(policy.checkpoint_time);
        let Some(at) = policy.utc_offset.from_local_datetime(&local).single() else {
            continue;
        };
        let checkpoint_at = at.with_timezone(&Utc);
        for &lead in &policy.lead_hours {
            runs.push(PlannedRun {
                key: run_key(&c.id, lead),
                checkpoint: c.id.clone(),
                checkpoint_name: c.name.clone(),
                lead_hours: lead,
                due_at: checkpoint_at - Duration::hours(i64::from(lead)),
                checkpoint_at,
            });
        }
    }
    runs.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.key.cmp(&b.key)));
    runs
}

pub fn run_key(checkpoint: &str, lead_hours: u32) -> String {
    format!("{checkpoint}@T-{lead_hours}h")
}

/// A run to do now, standing for every planned run of its checkpoint that fell due while
/// nothing ran (they are all marked done by it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueRun {
    pub run: PlannedRun,
    pub covers: Vec<String>,
}

/// What to run at `now`: for each checkpoint not yet reached, the latest run that has fallen
/// due and is not done, once, covering the earlier missed ones. A checkpoint already passed is
/// not frozen after the fact.
pub fn due(runs: &[PlannedRun], now: DateTime<Utc>, done: &BTreeSet<String>) -> Vec<DueRun> {
    let mut out: Vec<DueRun> = Vec::new();
    for r in runs
        .iter()
        .filter(|r| r.due_at <= now && now < r.checkpoint_at && !done.contains(&r.key))
    {
        match out.iter_mut().find(|d| d.run.checkpoint == r.checkpoint) {
            Some(d) => {
                d.covers.push(r.key.clone());
                if r.due_at > d.run.due_at {
                    d.run = r.clone();
                }
            }
            None => out.push(DueRun {
                run: r.clone(),
                covers: vec![r.key.clone()],
            }),
        }
    }
    out
}

/// When the scheduler must look again: the next due time after `now` of a run not done.
pub fn next_due(
    runs: &[PlannedRun],
    now: DateTime<Utc>,
    done: &BTreeSet<String>,
) -> Option<DateTime<Utc>> {
    runs.iter()
        .filter(|r| r.due_at > now && !done.contains(&r.key))
        .map(|r| r.due_at)
        .min()
}

/// How a planned run stands, for `cezone schedule list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Done,
    /// Due now and not done: the scheduler runs it on its next look.
    Due,
    Upcoming,
    /// Its checkpoint passed without it.
    Missed,
}

pub fn state(run: &PlannedRun, now: DateTime<Utc>, done: &BTreeSet<String>) -> RunState {
    if done.contains(&run.key) {
        RunState::Done
    } else if now >= run.checkpoint_at {
        RunState::Missed
    } else if now >= run.due_at {
        RunState::Due
    } else {
        RunState::Upcoming
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{Checkpoint, Date};
    use proptest::prelude::*;

    fn calendar(dates: &[&str]) -> Calendar {
        Calendar {
            phases: vec![],
            checkpoints: dates
                .iter()
                .enumerate()
                .map(|(i, d)| Checkpoint {
                    id: format!("c{i}"),
                    phase: "p".into(),
                    name: format!("checkpoint {i}"),
                    original: (*d).into(),
                    due: Date::parse(d).unwrap(),
                    correction: None,
                    note: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn policy() -> SchedulePolicy {
        SchedulePolicy::parse("72,24", "09:00", 8).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn runs_fall_at_the_lead_times_before_nine_beijing_time() {
        let runs = plan(&calendar(&["2014-02-28"]), &policy());
        let keys: Vec<_> = runs.iter().map(|r| (r.key.as_str(), r.due_at)).collect();
        assert_eq!(
            keys,
            vec![
                ("c0@T-72h", at("2014-02-25T01:00:00Z")),
                ("c0@T-24h", at("2014-02-27T01:00:00Z"))
            ]
        );
    }

    #[test]
    fn missed_runs_of_one_checkpoint_run_once_as_the_latest() {
        let runs = plan(&calendar(&["2014-02-28"]), &policy());
        let d = due(&runs, at("2014-02-27T12:00:00Z"), &BTreeSet::new());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].run.key, "c0@T-24h");
        assert_eq!(
            d[0].covers,
            vec!["c0@T-72h".to_string(), "c0@T-24h".to_string()]
        );
    }

    #[test]
    fn a_passed_checkpoint_is_missed_not_frozen_late() {
        let runs = plan(&calendar(&["2014-02-28"]), &policy());
        let now = at("2014-03-01T00:00:00Z");
        assert!(due(&runs, now, &BTreeSet::new()).is_empty());
        assert_eq!(state(&runs[0], now, &BTreeSet::new()), RunState::Missed);
    }

    #[test]
    fn bad_policies_name_the_value() {
        assert!(
            SchedulePolicy::parse("72,x", "09:00", 8)
                .unwrap_err()
                .contains("'x'")
        );
        assert!(
            SchedulePolicy::parse("", "09:00", 8)
                .unwrap_err()
                .contains("at least one")
        );
        assert!(
            SchedulePolicy::parse("0", "09:00", 8)
                .unwrap_err()
                .contains("0 h")
        );
        assert!(
            SchedulePolicy::parse("24", "25:00", 8)
                .unwrap_err()
                .contains("'25:00'")
        );
        assert!(
            SchedulePolicy::parse("24", "09:00", 15)
                .unwrap_err()
                .contains("15")
        );
    }

    proptest! {
        /// Whatever the clock: nothing not yet due runs, at most one run per checkpoint, and
        /// once the runs done are recorded, looking again at the same time runs nothing.
        #[test]
        fn due_runs_are_due_unique_and_idempotent(
            days in proptest::collection::vec(0i64..400, 1..6),
            leads in proptest::collection::vec(1u32..400, 1..4),
            now_h in 0i64..(24 * 420),
        ) {
            let base = chrono::NaiveDate::from_ymd_opt(2014, 1, 1).unwrap();
            let dates: Vec<String> = days.iter().map(|d| (base + Duration::days(*d)).to_string()).collect();
            let refs: Vec<&str> = dates.iter().map(String::as_str).collect();
            let lead_text = leads.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let policy = SchedulePolicy::parse(&lead_text, "09:00", 8).unwrap();
            let runs = plan(&calendar(&refs), &policy);
            let now = at("2013-12-01T00:00:00Z") + Duration::hours(now_h);
            let mut done = BTreeSet::new();
            let first = due(&runs, now, &done);
            let mut checkpoints = BTreeSet::new();
            for d in &first {
                prop_assert!(d.run.due_at <= now && now < d.run.checkpoint_at);
                prop_assert!(checkpoints.insert(d.run.checkpoint.clone()));
                done.extend(d.covers.iter().cloned());
            }
            prop_assert!(due(&runs, now, &done).is_empty());
            if let Some(next) = next_due(&runs, now, &done) {
                prop_assert!(next > now);
            }
        }
    }
}
