//! The scored read model: the inputs (framework, org units, facts) and what the engine makes of
//! them. Pure translation between the domain and the API; no I/O here.

use std::sync::Arc;

use cezone_domain::engine::{Cell, Engine, Scoreboard};
use cezone_domain::facts::Facts;
use cezone_domain::framework::{Framework, FrameworkDocument};
use cezone_domain::org::{OrgIdx, OrgTree, OrgUnit, OrgUnitId};
use cezone_domain::points::Points;
use cezone_platform::ApiError;
use cezone_platform::glue::convert::score;
use cezone_proto::Encoded;
use cezone_proto::common::v1 as pc;
use cezone_proto::scoring::v1 as ps;
use serde::{Deserialize, Serialize};

/// Everything scores are computed from. Frozen with every snapshot, so a snapshot's
/// explanations can be recomputed exactly, point by point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub framework_id: String,
    pub edition: String,
    pub period: i32,
    /// The framework document ("cezone.framework.v1").
    pub framework_json: String,
    pub org_units: Vec<(OrgUnit, u64)>,
    pub facts: Facts,
}

#[derive(Debug, Clone)]
pub struct Scored {
    pub inputs: Arc<Inputs>,
    pub engine: Engine,
    pub board: Scoreboard,
    pub computed_at: String,
    /// Which computation from scratch this model descends from (incremental updates keep it):
    /// an update prepared against one lineage is dropped when a rebuild replaced it meanwhile.
    pub lineage: u64,
    /// Each item's unchanging fields (code, title, points, …), made once per framework so an
    /// answer only formats its scores.
    templates: Arc<Vec<ps::ItemScore>>,
    /// Answers to the plain `GetScores` already encoded from this model.
    answers: Answers,
}

/// Encoded answers to the plain `GetScores` question (every item, no explanation) per org unit,
/// made on first ask: most queries ask it, and building and encoding 61 items was a third of
/// the server's work per query. A change to the scores makes every answer stale at once (one
/// counter, so the update stays O(1)); a copy of the model starts with none. At most
/// `Answers::MAX` are kept (about 8 KB each).
#[derive(Debug, Default)]
struct Answers {
    /// Bumped by every change to the model; an answer made under another value is stale.
    generation: u64,
    by_node: std::sync::RwLock<std::collections::HashMap<OrgIdx, (u64, prost::bytes::Bytes)>>,
}

impl Clone for Answers {
    fn clone(&self) -> Answers {
        Answers::default()
    }
}

impl Answers {
    const MAX: usize = 4096;

    fn get(&self, node: OrgIdx) -> Option<Encoded> {
        let by_node = self
            .by_node
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_node
            .get(&node)
            .filter(|(generation, _)| *generation == self.generation)
            .map(|(_, bytes)| Encoded(bytes.clone()))
    }

    fn keep(&self, node: OrgIdx, answer: &Encoded) {
        let mut by_node = self
            .by_node
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if by_node.len() >= Self::MAX && !by_node.contains_key(&node) {
            by_node.retain(|_, (generation, _)| *generation == self.generation);
            if by_node.len() >= Self::MAX {
                return;
            }
        }
        by_node.insert(node, (self.generation, answer.0.clone()));
    }
}

impl Scored {
    pub fn compute(inputs: Arc<Inputs>, computed_at: String) -> Result<Scored, ApiError> {
        let doc: FrameworkDocument = serde_json::from_str(&inputs.framework_json).map_err(|e| {
            ApiError::internal_msg(format!("the stored framework is unreadable: {e}"))
        })?;
        let (fw, findings) = Framework::from_document(doc);
        if findings.has_errors() {
            return Err(ApiError::precondition("the framework to score has errors"));
        }
        let tree = OrgTree::build(inputs.org_units.iter().map(|(u, _)| u.clone()).collect())
            .map_err(|e| ApiError::precondition(format!("the org tree cannot be scored: {e}")))?;
        let engine = Engine::new(Arc::new(fw), Arc::new(tree), &inputs.facts, inputs.period);
        let board = engine.scoreboard();
        let templates = Arc::new(templates(&engine.fw));
        // Unique within the process, which is as far as a model lives.
        static LINEAGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Scored {
            inputs,
            engine,
            board,
            computed_at,
            lineage: LINEAGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            templates,
            answers: Answers::default(),
        })
    }

    pub fn framework(&self) -> &Framework {
        &self.engine.fw
    }

    pub fn tree(&self) -> &OrgTree {
        &self.engine.org
    }

    /// The org unit named (the root when empty).
    pub fn node(&self, id: &str) -> Result<OrgIdx, ApiError> {
        if id.is_empty() {
            return Ok(self.tree().root());
        }
        let oid = OrgUnitId::parse(id).map_err(|e| ApiError::invalid("org_unit", e))?;
        self.tree().find(&oid).ok_or_else(|| {
            ApiError::invalid(
                "org_unit",
                format!("'{id}' is not an org unit of the scored tree"),
            )
        })
    }

    pub fn total(&self) -> Cell {
        self.board.total(self.framework(), self.tree().root())
    }

    /// Every org unit's total.
    pub fn unit_totals(&self) -> Vec<Cell> {
        (0..self.tree().len())
            .map(|i| self.board.total(self.framework(), i))
            .collect()
    }

    /// Marks every answer kept so far stale: called by whatever changes the scores.
    pub fn scores_changed(&mut self) {
        self.answers.generation += 1;
    }

    /// `scores`, encoded; the plain question (every item, no explanation) is answered from the
    /// answers kept for this model.
    pub fn encoded_scores(
        &self,
        node: OrgIdx,
        items: &[String],
        explain: bool,
    ) -> Result<Encoded, ApiError> {
        let plain = items.is_empty() && !explain;
        if plain && let Some(answer) = self.answers.get(node) {
            return Ok(answer);
        }
        let answer = Encoded::of(&self.scores(node, items, explain)?);
        if plain {
            self.answers.keep(node, &answer);
        }
        Ok(answer)
    }

    pub fn scores(
        &self,
        node: OrgIdx,
        items: &[String],
        explain: bool,
    ) -> Result<ps::OrgUnitScores, ApiError> {
        let fw = self.framework();
        let mut wanted = Vec::new();
        for code in items {
            let c =
                cezone_domain::ItemCode::parse(code).map_err(|e| ApiError::invalid("items", e))?;
            wanted.push(fw.find(&c).ok_or_else(|| {
                ApiError::invalid("items", format!("'{code}' is not an item of the framework"))
            })?);
        }
        if wanted.is_empty() {
            wanted = (0..fw.len()).collect();
        }
        let unit = self.tree().unit(node);
        let items = wanted
            .into_iter()
            .map(|i| {
                let cell = self.board.cell(node, i);
                let explanation_json = if explain {
                    serde_json::to_string(&self.engine.explain(&self.board, node, i))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                let template = &self.templates[i];
                let confirmed = cell.confirmed.to_string();
                let projected = if cell.projected == cell.confirmed {
                    confirmed.clone()
                } else {
                    cell.projected.to_string()
                };
                let points = fw.item(i).points;
                let lost = if cell.confirmed == Points::ZERO {
                    template.points.clone()
                } else {
                    (points - cell.confirmed).to_string()
                };
                ps::ItemScore {
                    score: Some(pc::Score {
                        confirmed,
                        projected,
                    }),
                    lost,
                    explanation_json,
                    ..template.clone()
                }
            })
            .collect();
        Ok(ps::OrgUnitScores {
            org_unit: unit.id.to_string(),
            name: unit.name.clone(),
            framework_id: fw.meta.id.to_string(),
            edition: fw.meta.edition.clone(),
            period: self.inputs.period,
            max_points: fw.max_points().to_string(),
            total: Some(score(self.board.total(fw, node))),
            items,
            computed_at: self.computed_at.clone(),
        })
    }

    /// (org unit, item code, confirmed, projected) of every cell, for storage.
    pub fn cells(&self) -> Vec<(String, String, Points, Points)> {
        let fw = self.framework();
        let tree = self.tree();
        let mut out = Vec::with_capacity(tree.len() * fw.len());
        for node in 0..tree.len() {
            let id = tree.unit(node).id.to_string();
            for (i, cell) in self.board.row(node).iter().enumerate() {
                out.push((
                    id.clone(),
                    fw.item(i).code.to_string(),
                    cell.confirmed,
                    cell.projected,
                ));
            }
        }
        out
    }
}

/// The fields of every item's answer that depend on the framework alone.
fn templates(fw: &Framework) -> Vec<ps::ItemScore> {
    (0..fw.len())
        .map(|i| {
            let it = fw.item(i);
            ps::ItemScore {
                code: it.code.to_string(),
                title: it.title.clone(),
                key: it.key,
                leaf: fw.is_leaf(i),
                points: it.points.to_string(),
                ..Default::default()
            }
        })
        .collect()
}
