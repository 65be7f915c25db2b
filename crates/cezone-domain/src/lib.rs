//! cezone's domain core: indicator frameworks (model, import, validation, export), the org
//! hierarchy, facts, scoring rules and the scoring engine, survey statistics, readiness and a
//! deterministic demo district. Plain data and plain functions; no I/O, no async.

pub mod access;
pub mod calendar;
pub mod checks;
pub mod code;
pub mod demo;
pub mod engine;
pub mod export;
pub mod facts;
pub mod files;
pub mod findings;
pub mod framework;
pub mod guangdong;
mod ident;
pub mod import;
pub mod interpret;
pub mod obligations;
pub mod org;
pub mod package;
pub mod points;
pub mod readiness;
pub mod rules;
pub mod schedule;
pub mod stats;
pub mod summary;
pub mod units;

pub use code::ItemCode;
pub use engine::{Cell, Engine, Scoreboard};
pub use facts::Facts;
pub use findings::{Finding, FindingKind, Findings, Severity};
pub use framework::{Framework, FrameworkId};
pub use org::{OrgTree, OrgUnit, OrgUnitId};
pub use points::Points;
