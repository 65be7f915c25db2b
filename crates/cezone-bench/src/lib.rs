//! Benchmarks: each workload runs beside its baseline in the same run, on the same data, and
//! reports ours, the baseline and their ratio. Figures, never assertions: targets are checked
//! by reading the table (and recorded in BENCHMARKS.md).

pub mod end_to_end;
pub mod ingest;
pub mod pipeline;
pub mod queries;
pub mod recompute;
pub mod report;
pub mod sample;
pub mod stack;
pub mod stat_import;
pub mod throwaway;
pub mod upload;

pub use report::{Goal, Report, Row, Verdict};

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Within a minute on 2 cores.
    Quick,
    Full,
}
