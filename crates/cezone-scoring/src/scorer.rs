//! The scorer: one task per replica that owns the scored model. It reads the change records
//! committed since its position ([`crate::changes`]), applies them to the in-memory engine and
//! rescores only the cells they affect (a burst is one pass), tells watchers, and persists the
//! changed cells with a `scores.changed` announcement ([`crate::persist`]).
//!
//! A change that reshapes the model (an org unit, the framework, a rebuild) is applied by
//! loading the whole read model under a fresh snapshot, at once: facts behind it wait one
//! reload, never a quiet period. Several replicas sharing one database each apply every
//! change, so all of them answer alike; the persist step makes one of them announce it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cezone_domain::engine::{Affected, Cell, Scoreboard};
use cezone_platform::ApiError;
use cezone_platform::time::now_rfc3339;
use sea_orm::{ConnectionTrait, DatabaseBackend};
use tokio_util::sync::CancellationToken;

use crate::changes::{self, CHANNEL, Position, Record};
use crate::model::Inputs;
use crate::persist::{self, Outcome, Pending};
use crate::state::{State, Update};

/// Longest wait between two reads when no wake-up comes (a lost notification, a listener
/// reconnecting).
const POLL: Duration = Duration::from_secs(1);
/// Longest a change applied to the model waits before it is persisted and announced.
const PERSIST_EVERY: Duration = Duration::from_millis(100);

/// The scorer of one replica.
#[derive(Debug)]
pub struct Scorer {
    state: Arc<State>,
    /// Every change this position sees is in the model.
    pos: Position,
    /// Applied, not yet persisted.
    pending: Pending,
    /// The last load could not be scored: the next change reloads again.
    stale: bool,
}

impl Scorer {
    /// Loads the read model as stored (under one snapshot, which becomes the position).
    pub async fn start(state: Arc<State>) -> Result<Scorer, ApiError> {
        let pos = changes::position_now(&state.db).await?;
        let mut scorer = Scorer {
            state,
            pos,
            pending: Pending::default(),
            stale: false,
        };
        scorer.reload(&[]).await?;
        Ok(scorer)
    }

    /// Applies changes as they commit and persists them, until shutdown. Watchers and queries
    /// see a change as soon as it is applied; persisting (cells, the announcement) happens at
    /// most every [`PERSIST_EVERY`], covering everything applied meanwhile, so a burst costs a
    /// few commits, not one per batch. A persist runs beside the applying, one at a time, on
    /// the model as it stood at its position (the slot's copy; the next apply changes a copy
    /// of its own), so changes keep reaching watchers while cells are written. Failures are
    /// logged and retried with backoff; what a failed persist covered is persisted again with
    /// what was applied meanwhile, so nothing applied is dropped before it is persisted.
    pub async fn run(mut self, shutdown: CancellationToken) {
        if self.state.db.get_database_backend() == DatabaseBackend::Postgres {
            tokio::spawn(listen(self.state.clone(), shutdown.clone()));
        }
        let mut backoff = Duration::from_millis(100);
        let mut persisted = Instant::now();
        // The persist in flight: what it covers comes back when it fails.
        let mut in_flight: Option<tokio::sync::oneshot::Receiver<Result<(), Pending>>> = None;
        loop {
            let mut failed = false;
            loop {
                match self.step().await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "scorer failed; retrying");
                        failed = true;
                        break;
                    }
                }
            }
            let due = persisted + PERSIST_EVERY;
            if in_flight.is_none() && !self.pending.is_empty() && Instant::now() >= due {
                in_flight = self.spawn_persist().await;
                persisted = Instant::now();
            }
            let wait = if failed {
                let d = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                d
            } else {
                backoff = Duration::from_millis(100);
                // With a persist in flight its end wakes the loop (the branch below).
                if self.pending.is_empty() || in_flight.is_some() {
                    POLL
                } else {
                    due.saturating_duration_since(Instant::now())
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.state.wake.notified(), if !failed => {}
                () = tokio::time::sleep(wait) => {}
                done = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                    in_flight = None;
                    match done {
                        Ok(Ok(())) => {}
                        Ok(Err(back)) => {
                            // Covered again by the next persist, with what came since.
                            self.pending.merge(back);
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            tokio::time::sleep(backoff).await;
                        }
                        Err(_) => {
                            // The task ended without a word (a panic): compare every cell.
                            tracing::error!("the persist task ended without an outcome; comparing every cell next");
                            self.pending.full = true;
                        }
                    }
                }
            }
        }
    }

    /// One read and what it brings. Returns whether anything was applied.
    async fn step(&mut self) -> Result<bool, ApiError> {
        let read = changes::since(&self.state.db, &self.pos).await?;
        if read.behind_horizon {
            tracing::warn!(
                "change records this scorer had not read were purged (it was behind the retention); reloading"
            );
            self.reload(&[]).await?;
            return Ok(true);
        }
        if read.records.is_empty() {
            self.advance(read.position);
            return Ok(false);
        }
        let reshapes = read
            .records
            .iter()
            .any(|r| r.change.as_ref().is_none_or(|c| c.fact().is_none()));
        let has_model = self.state.current.read().await.is_some();
        if reshapes || self.stale || !has_model {
            // Loaded under a newer snapshot than the read: it holds these records and more.
            self.reload(&read.records).await?;
        } else {
            self.apply(&read.records).await;
            self.advance(read.position);
        }
        Ok(true)
    }

    fn advance(&mut self, pos: Position) {
        self.pos = pos.clone();
        self.state.position.send_replace(Some(pos));
    }

    /// Applies fact changes to the model and rescores what they affect.
    async fn apply(&mut self, records: &[Record]) {
        let started = std::time::Instant::now();
        let caused_by = causes(records);
        let (next, changed, recomputed, nodes) = {
            let mut guard = self.state.current.write().await;
            let Some(arc) = guard.as_mut() else { return };
            // The only reference this task holds is the one in the slot: the model is changed
            // in place unless a reader holds it at this moment.
            let scored = Arc::make_mut(arc);
            let mut affected = Affected::default();
            for r in records {
                if let Some(c) = r.change.as_ref().and_then(changes::Change::fact) {
                    scored.engine.apply(&c, &mut affected);
                }
            }
            if affected.is_empty() {
                return;
            }
            // The rows an affected cell belongs to, as they were: only these can change.
            let mut nodes = BTreeSet::new();
            for set in affected.cells.values() {
                nodes.extend(set.iter());
            }
            let old: Vec<(usize, Cell)> = nodes
                .iter()
                .map(|&node| {
                    (
                        node,
                        Scoreboard::row_total(scored.framework(), scored.board.row(node)),
                    )
                })
                .collect();
            let recomputed = scored.engine.rescore(&mut scored.board, &affected);
            scored.computed_at = now_rfc3339();
            scored.scores_changed();
            let fw = scored.framework();
            let changed: Vec<usize> = old
                .into_iter()
                .filter(|(node, before)| *before != scored.board.total(fw, *node))
                .map(|(node, _)| node)
                .collect();
            let ids: Vec<String> = nodes
                .iter()
                .map(|&n| scored.tree().unit(n).id.to_string())
                .collect();
            (Arc::clone(arc), changed, recomputed, ids)
        };
        tracing::debug!(
            changes = records.len(),
            cells = recomputed,
            units_changed = changed.len(),
            micros = started.elapsed().as_micros() as u64,
            "scores updated incrementally"
        );
        self.pending.units.extend(nodes);
        self.pending.cells += recomputed;
        self.pending.add_causes(records);
        let _ = self.state.updates.send(Arc::new(Update {
            computed_at: next.computed_at.clone(),
            model: next,
            changed,
            cells_recomputed: recomputed as u32,
            caused_by,
        }));
    }

    /// Loads the whole read model under one snapshot and scores it; that snapshot becomes the
    /// position. `records` are the changes that asked for it (their events are its causes).
    async fn reload(&mut self, records: &[Record]) -> Result<(), ApiError> {
        let state = self.state.clone();
        let (inputs, pos) = changes::load(&state.db, state.period).await?;
        let caused_by = causes(records);
        let Some(inputs) = inputs.filter(|i| !i.org_units.is_empty()) else {
            // Nothing to score yet (no framework or no org units): the facts wait in the
            // tables for the change that completes the model.
            self.stale = false;
            self.advance(pos);
            return Ok(());
        };
        let period = inputs.period;
        let scored = match State::score(Inputs { period, ..inputs }).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(error = %e, "the read model cannot be scored yet; keeping the previous scores");
                self.stale = true;
                self.advance(pos);
                return Ok(());
            }
        };
        let previous = state.current.read().await.clone();
        let totals = scored.unit_totals();
        let before = previous.as_ref().map(|p| (p.tree().len(), p.unit_totals()));
        drop(previous);
        let changed: Vec<usize> = totals
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                before
                    .as_ref()
                    .is_none_or(|(n, b)| *n != totals.len() || b.get(*i) != Some(t))
            })
            .map(|(i, _)| i)
            .collect();
        let cells = scored.tree().len() * scored.framework().len();
        *state.current.write().await = Some(scored.clone());
        self.stale = false;
        self.pending.full = true;
        self.pending.cells += cells;
        self.pending.add_causes(records);
        tracing::debug!(
            org_units = scored.tree().len(),
            changes = records.len(),
            "read model reloaded"
        );
        let _ = state.updates.send(Arc::new(Update {
            computed_at: scored.computed_at.clone(),
            model: scored,
            changed,
            cells_recomputed: cells as u32,
            caused_by,
        }));
        self.advance(pos);
        Ok(())
    }

    /// Persists what was applied; kept for the next try when it fails.
    /// Starts persisting what is pending against the model as it stands at this position;
    /// the receiver says when it is done, and gives back what it covered if it failed.
    async fn spawn_persist(
        &mut self,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<(), Pending>>> {
        let Some(scored) = self.state.current.read().await.clone() else {
            self.pending = Pending::default();
            return None;
        };
        let pending = std::mem::take(&mut self.pending);
        let (state, pos) = (self.state.clone(), self.pos.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = persist::persist(&state.db, crate::OUTBOX, &scored, &pos, &pending).await;
            drop(scored);
            let reply = match result {
                Ok(outcome) => {
                    if let Outcome::Written { cells, units } = outcome {
                        tracing::debug!(cells, units, "scores persisted");
                        if units > 0
                            && let Some(relay) = &state.relay
                        {
                            relay.notify();
                        }
                    }
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scores not persisted yet; retrying");
                    Err(pending)
                }
            };
            let _ = tx.send(reply);
        });
        Some(rx)
    }
}

/// The distinct events of these records, in order.
fn causes(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.event_id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Wakes the scorer when another process commits changes (PostgreSQL LISTEN); reconnects
/// after a lost connection. The scorer also reads every [`POLL`], so a notification lost while
/// reconnecting delays a change by at most that.
async fn listen(state: Arc<State>, shutdown: CancellationToken) {
    let pool = state.db.get_postgres_connection_pool().clone();
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            e = listen_once(&pool, &state) => {
                tracing::debug!(error = %e, "change listener lost its connection; reconnecting");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
        state.wake.notify_one();
    }
}

/// Listens until the connection fails; returns the failure.
async fn listen_once(pool: &sqlx::PgPool, state: &State) -> sqlx::Error {
    let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => return e,
    };
    if let Err(e) = listener.listen(CHANNEL).await {
        return e;
    }
    loop {
        if let Err(e) = listener.recv().await {
            return e;
        }
        state.wake.notify_one();
    }
}
