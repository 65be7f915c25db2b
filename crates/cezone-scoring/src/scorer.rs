//! The scorer: tails the fact log, applies what changed to the in-memory engine, rescores only
//! the affected cells (a burst of events is one pass), persists the changed scores with a
//! `scores.changed` event in one transaction, and tells watchers.
//!
//! Several scoring replicas may share one database and one queue: each replica's consumer writes
//! the facts it receives, every replica tails the whole log, so all of them converge.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cezone_domain::engine::Affected;
use cezone_domain::engine::{Cell, Scoreboard};
use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use sea_orm::TransactionTrait;

use crate::facts_db::{self, FactKey};
use crate::model::Scored;
use crate::state::{State, Update};
use crate::{events, store};

/// Log rows read per pass.
const BATCH: u64 = 10_000;
/// A hole in the log older than this is a rolled-back transaction, not a late commit.
const GAP_TIMEOUT: Duration = Duration::from_secs(10);
/// Structural changes (org units, framework) come in bursts and each costs a full rebuild:
/// wait for this much quiet before applying them.
const STRUCTURAL_QUIET: Duration = Duration::from_millis(300);

/// Where the scorer is in the fact log.
#[derive(Debug, Default)]
pub struct TailPos {
    /// Every id below this has been applied (or was never committed).
    pub next: i64,
    /// Ids at or above `next` already applied.
    pub done: BTreeSet<i64>,
    /// Missing ids below the highest applied one, with when they were first missed.
    pub gaps: BTreeMap<i64, Instant>,
    /// A pending structural change: when the log last grew while it waited.
    pub structural: Option<(Instant, i64)>,
}

impl TailPos {
    fn advance(&mut self, highest_seen: Option<i64>) {
        loop {
            if self.done.remove(&self.next) {
                self.gaps.remove(&self.next);
                self.next += 1;
                continue;
            }
            match highest_seen {
                Some(h) if self.next < h => {
                    let first = *self.gaps.entry(self.next).or_insert_with(Instant::now);
                    if first.elapsed() >= GAP_TIMEOUT {
                        self.gaps.remove(&self.next);
                        self.next += 1;
                        continue;
                    }
                    return;
                }
                _ => return,
            }
        }
    }
}

impl State {
    /// Brings the in-memory model up to the fact log. Returns how many log rows were applied.
    pub async fn catch_up(&self) -> Result<usize, ApiError> {
        let mut tail = self.tail.lock().await;
        let rows = facts_db::tail(&self.db, tail.next - 1, BATCH).await?;
        let highest = rows.last().map(|r| r.0);
        let fresh: Vec<(i64, FactKey, String)> = rows
            .into_iter()
            .filter(|r| !tail.done.contains(&r.0))
            .collect();
        if fresh.is_empty() {
            tail.advance(highest);
            return Ok(0);
        }
        let structural = fresh.iter().any(|r| r.1.structural());
        if structural {
            let newest = fresh.last().map_or(0, |r| r.0);
            match tail.structural {
                Some((since, seen)) if seen == newest && since.elapsed() >= STRUCTURAL_QUIET => {
                    tail.structural = None
                }
                Some((_, seen)) if seen == newest => return Ok(0),
                _ => {
                    tail.structural = Some((Instant::now(), newest));
                    return Ok(0);
                }
            }
        }
        let caused_by: Vec<String> = {
            let mut ids: Vec<String> = fresh.iter().map(|r| r.2.clone()).collect();
            ids.sort();
            ids.dedup();
            ids.truncate(10_000);
            ids
        };
        // Only the model's lineage is kept here, not a reference to it: a reference held
        // across the update would make `Arc::make_mut` copy the whole model every time.
        let lineage = self.current.read().await.as_ref().map(|s| s.lineage);
        match lineage {
            Some(lineage) if !structural => self.incremental(lineage, &fresh, caused_by).await?,
            _ => {
                let previous = self.current.read().await.clone();
                self.reload(previous, caused_by).await?
            }
        }
        for r in &fresh {
            tail.done.insert(r.0);
        }
        tail.advance(highest);
        Ok(fresh.len())
    }

    /// Applies the changed facts and rescores what they affect.
    async fn incremental(
        &self,
        lineage: u64,
        rows: &[(i64, FactKey, String)],
        caused_by: Vec<String>,
    ) -> Result<(), ApiError> {
        let keys: BTreeSet<&FactKey> = rows.iter().map(|r| &r.1).collect();
        let keys: Vec<&FactKey> = keys.into_iter().collect();
        let changes = facts_db::read_many(&self.db, &keys).await?;
        let started = Instant::now();
        let (next, cells) = {
            let mut guard = self.current.write().await;
            let Some(arc) = guard.as_mut() else {
                return Ok(());
            };
            if arc.lineage != lineage {
                // Replaced meanwhile by a rebuild; the rows are in its inputs.
                return Ok(());
            }
            let scored = Arc::make_mut(arc);
            let mut affected = Affected::default();
            for c in &changes {
                scored.engine.apply(c, &mut affected);
            }
            if affected.is_empty() {
                return Ok(());
            }
            // The rows (org units) an affected cell belongs to, as they were: only these can
            // change, and copying the whole board was 27 MB per update at province scale.
            let mut nodes = BTreeSet::new();
            for set in affected.cells.values() {
                nodes.extend(set.iter());
            }
            let old: Vec<(usize, Vec<Cell>)> = nodes
                .into_iter()
                .map(|node| (node, scored.board.row(node).to_vec()))
                .collect();
            let cells = scored.engine.rescore(&mut scored.board, &affected);
            scored.computed_at = now_rfc3339();
            scored.scores_changed();
            (Arc::clone(arc), (old, cells))
        };
        let (old, recomputed) = cells;
        let fw = next.framework();
        let mut changed_cells = Vec::new();
        let mut changed_units = Vec::new();
        for (node, old_row) in &old {
            let node = *node;
            let id = next.tree().unit(node).id.to_string();
            for (i, (a, b)) in old_row.iter().zip(next.board.row(node)).enumerate() {
                if a != b {
                    changed_cells.push((
                        id.clone(),
                        fw.item(i).code.to_string(),
                        b.confirmed.milli(),
                        b.projected.milli(),
                    ));
                }
            }
            let (before, after) = (
                Scoreboard::row_total(fw, old_row),
                next.board.total(fw, node),
            );
            if before != after {
                changed_units.push((node, after));
            }
        }
        tracing::debug!(
            facts = changes.len(),
            cells = recomputed,
            changed = changed_cells.len(),
            micros = started.elapsed().as_micros() as u64,
            "scores updated incrementally"
        );
        self.publish(&next, changed_cells, changed_units, recomputed, caused_by)
            .await
    }

    /// Rebuilds the model from the stored read model (after a structural change, or the first
    /// time the read model is complete enough to score).
    pub async fn reload(
        &self,
        previous: Option<Arc<Scored>>,
        caused_by: Vec<String>,
    ) -> Result<(), ApiError> {
        let Some(inputs) = store::load(&self.db, self.period).await? else {
            return Ok(());
        };
        if inputs.org_units.is_empty() {
            return Ok(());
        }
        let scored = match State::score(with_period(inputs, self.period)).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(error = %e, "the read model cannot be scored yet");
                return Ok(());
            }
        };
        store::save_scores(&self.db, &scored).await?;
        let totals = scored.unit_totals();
        let before = previous.as_ref().map(|p| (p.tree().len(), p.unit_totals()));
        let changed_units: Vec<(usize, Cell)> = totals
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                before
                    .as_ref()
                    .is_none_or(|(n, b)| *n != totals.len() || b.get(*i) != Some(t))
            })
            .map(|(i, t)| (i, *t))
            .collect();
        *self.current.write().await = Some(scored.clone());
        let cells = scored.tree().len() * scored.framework().len();
        self.publish(&scored, Vec::new(), changed_units, cells, caused_by)
            .await
    }

    /// Persists changed cells with the `scores.changed` event, then tells watchers.
    async fn publish(
        &self,
        scored: &Arc<Scored>,
        cells: Vec<(String, String, i64, i64)>,
        units: Vec<(usize, Cell)>,
        recomputed: usize,
        caused_by: Vec<String>,
    ) -> Result<(), ApiError> {
        let event = events::scores_changed(scored, &units, recomputed, &caused_by);
        let txn = self.db.begin().await?;
        store::save_cells(&txn, &cells).await?;
        if let Some(env) = &event {
            cezone_bus::outbox::enqueue(&txn, crate::OUTBOX, env).await?;
        }
        txn.commit().await?;
        if let Some(relay) = &self.relay {
            relay.notify();
        }
        let update = Update {
            computed_at: scored.computed_at.clone(),
            model: scored.clone(),
            changed: units.iter().map(|(i, _)| *i).collect(),
            cells_recomputed: recomputed as u32,
            caused_by,
        };
        let _ = self.updates.send(Arc::new(update));
        Ok(())
    }

    /// Runs `catch_up` whenever woken (after a consumer commit) and twice a second, until
    /// shutdown. Errors are logged and retried with backoff.
    pub async fn run_scorer(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let waiting = self.tail.lock().await.structural.is_some();
            let tick = if waiting {
                STRUCTURAL_QUIET / 3
            } else {
                Duration::from_millis(500)
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
            }
            loop {
                match self.catch_up().await {
                    Ok(0) => {
                        backoff = Duration::from_millis(100);
                        break;
                    }
                    Ok(_) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(error = %e, "scorer failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        break;
                    }
                }
            }
        }
    }
}

fn with_period(inputs: crate::model::Inputs, period: i32) -> crate::model::Inputs {
    crate::model::Inputs { period, ..inputs }
}
