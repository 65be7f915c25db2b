//! Persisting the scores: `scoring_cells` (the current score of every cell) and the
//! `scores.changed` announcement, committed together with the position they stand for — a
//! checkpoint in the same transaction as the data it covers.
//!
//! Every replica persists what its scorer applied; the cells are compared with the stored ones,
//! not with the replica's own previous model, and the stored position decides who writes:
//! under one lock, a replica whose position the stored one already covers writes nothing, and
//! one that is ahead writes only the cells (and announces only the totals) that differ from
//! what is stored. So replicas that applied the same changes announce each change once, and a
//! replica that crashed between applying and persisting leaves the next one (or itself, after
//! its restart reloads) to write the difference. A failed persist is retried, with everything
//! applied meanwhile, until it commits.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cezone_domain::engine::Cell;
use cezone_platform::ApiError;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, TransactionTrait, Value};

use crate::changes::{Mark, Position};
use crate::facts_db::{stmt, tuples};
use crate::model::Scored;

/// The PostgreSQL advisory lock replicas persist under.
pub const PERSIST_LOCK: i64 = 0x00ce_0024;

/// What was applied since the last persist.
#[derive(Debug, Default)]
pub struct Pending {
    /// Compare every cell (after a reload).
    pub full: bool,
    /// Org units whose rows the applied changes touched.
    pub units: BTreeSet<String>,
    /// Events whose changes were applied, with where each change is, at most `MAX_CAUSES`.
    pub caused_by: BTreeMap<String, Mark>,
    /// Criterion cells recomputed.
    pub cells: usize,
}

const MAX_CAUSES: usize = 10_000;

impl Pending {
    pub fn is_empty(&self) -> bool {
        !self.full && self.units.is_empty()
    }

    /// Adds what `other` covers (a failed persist's, given back).
    pub fn merge(&mut self, other: Pending) {
        self.full |= other.full;
        self.units.extend(other.units);
        self.cells += other.cells;
        for (id, mark) in other.caused_by {
            if self.caused_by.len() >= MAX_CAUSES {
                break;
            }
            self.caused_by.entry(id).or_insert(mark);
        }
    }

    pub fn add_causes(&mut self, records: &[crate::changes::Record]) {
        for r in records {
            if self.caused_by.len() >= MAX_CAUSES {
                break;
            }
            self.caused_by.insert(r.event_id.clone(), r.mark);
        }
    }
}

/// What a persist did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Another replica (or an earlier run) already persisted this state or a newer one.
    Covered,
    /// Cells written and, when totals moved, announced.
    Written { cells: usize, units: usize },
}

/// Rows per multi-row statement.
const ROWS: usize = 2000;

/// Persists `scored` (at `pos`) for what `pending` names, under the persist lock.
pub async fn persist(
    db: &DatabaseConnection,
    outbox: &str,
    scored: &Scored,
    pos: &Position,
    pending: &Pending,
) -> Result<Outcome, ApiError> {
    let txn = db.begin().await?;
    let b = txn.get_database_backend();
    if b == DatabaseBackend::Postgres {
        txn.execute(stmt(
            b,
            "SELECT pg_advisory_xact_lock(?)",
            vec![PERSIST_LOCK.into()],
        ))
        .await?;
    }
    let stored_pos = txn
        .query_one(stmt(
            b,
            "SELECT mark FROM scoring_marks WHERE slot = 'published'",
            vec![],
        ))
        .await?
        .map(|r| r.try_get::<String>("", "mark"))
        .transpose()?
        .and_then(|t| Position::decode(&t));
    if let Some(stored) = &stored_pos
        && stored.covers(pos)
    {
        txn.commit().await?;
        return Ok(Outcome::Covered);
    }
    let fw = scored.framework();
    let tree = scored.tree();
    let nodes: Vec<usize> = if pending.full || stored_pos.is_none() {
        (0..tree.len()).collect()
    } else {
        pending
            .units
            .iter()
            .filter_map(|id| {
                cezone_domain::org::OrgUnitId::parse(id)
                    .ok()
                    .and_then(|id| tree.find(&id))
            })
            .collect()
    };
    let full = pending.full || stored_pos.is_none();
    let ids: Vec<String> = nodes.iter().map(|&n| tree.unit(n).id.to_string()).collect();
    // The stored cells of these units.
    let mut stored: HashMap<(String, String), (i64, i64)> = HashMap::new();
    let chunks: Vec<Vec<String>> = if full {
        vec![Vec::new()]
    } else {
        ids.chunks(ROWS).map(<[String]>::to_vec).collect()
    };
    for chunk in chunks {
        let (sql, values) = if full {
            (
                "SELECT org_unit, item, confirmed_milli, projected_milli FROM scoring_cells"
                    .to_string(),
                Vec::new(),
            )
        } else {
            (
                format!(
                    "SELECT org_unit, item, confirmed_milli, projected_milli FROM scoring_cells WHERE org_unit IN ({})",
                    vec!["?"; chunk.len()].join(", ")
                ),
                chunk.iter().map(|s| Value::from(s.clone())).collect(),
            )
        };
        for r in txn.query_all(stmt(b, &sql, values)).await? {
            stored.insert(
                (r.try_get("", "org_unit")?, r.try_get("", "item")?),
                (
                    r.try_get("", "confirmed_milli")?,
                    r.try_get("", "projected_milli")?,
                ),
            );
        }
    }
    let roots: HashSet<usize> = fw.roots().iter().copied().collect();
    let mut upserts: Vec<(String, String, i64, i64)> = Vec::new();
    let mut units_changed: Vec<(usize, Cell)> = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (&node, id) in nodes.iter().zip(&ids) {
        let mut old_total = (0i64, 0i64);
        for (i, cell) in scored.board.row(node).iter().enumerate() {
            let code = fw.item(i).code.to_string();
            let key = (id.clone(), code);
            let new = (cell.confirmed.milli(), cell.projected.milli());
            let old = stored.get(&key).copied();
            if roots.contains(&i) {
                let (c, p) = old.unwrap_or_default();
                old_total = (old_total.0 + c, old_total.1 + p);
            }
            if old != Some(new) {
                upserts.push((key.0.clone(), key.1.clone(), new.0, new.1));
            }
            if full {
                seen.insert(key);
            }
        }
        let total = scored.board.total(fw, node);
        if old_total != (total.confirmed.milli(), total.projected.milli())
            || !stored.contains_key(&(id.clone(), fw.item(fw.roots()[0]).code.to_string()))
        {
            units_changed.push((node, total));
        }
    }
    if full {
        // Cells of org units or items the model no longer has.
        let gone: Vec<(String, String)> =
            stored.into_keys().filter(|k| !seen.contains(k)).collect();
        for chunk in gone.chunks(ROWS) {
            let sql = format!(
                "DELETE FROM scoring_cells WHERE (org_unit, item) IN ({})",
                tuples(2, chunk.len())
            );
            let values: Vec<Value> = chunk
                .iter()
                .flat_map(|(o, i)| [Value::from(o.clone()), Value::from(i.clone())])
                .collect();
            txn.execute(stmt(b, &sql, values)).await?;
        }
    }
    for chunk in upserts.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO scoring_cells (org_unit, item, confirmed_milli, projected_milli) VALUES {} \
             ON CONFLICT (org_unit, item) DO UPDATE SET confirmed_milli = excluded.confirmed_milli, \
             projected_milli = excluded.projected_milli",
            tuples(4, chunk.len())
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
        for (o, i, c, p) in chunk {
            values.push(o.clone().into());
            values.push(i.clone().into());
            values.push((*c).into());
            values.push((*p).into());
        }
        txn.execute(stmt(b, &sql, values)).await?;
    }
    // Only the events whose changes the stored position had not seen: another replica may
    // have announced the rest already.
    let caused_by: Vec<String> = pending
        .caused_by
        .iter()
        .filter(|(_, mark)| stored_pos.as_ref().is_none_or(|p| !p.includes(**mark)))
        .map(|(id, _)| id.clone())
        .collect();
    if let Some(env) =
        crate::events::scores_changed(scored, &units_changed, pending.cells, &caused_by)
    {
        cezone_bus::outbox::enqueue(&txn, outbox, &env).await?;
    }
    txn.execute(stmt(
        b,
        "INSERT INTO scoring_marks (slot, mark) VALUES ('published', ?) \
         ON CONFLICT (slot) DO UPDATE SET mark = excluded.mark",
        vec![pos.encode().into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(Outcome::Written {
        cells: upserts.len(),
        units: units_changed.len(),
    })
}
