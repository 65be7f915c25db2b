//! The scoring service's tables: its own copy of the facts (the read model), the current
//! scores, and frozen snapshots.

macro_rules! entity {
    ($module:ident, $table:literal, { $($(#[$meta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                $($(#[$meta])* pub $field: $ty,)*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(framework, "scoring_frameworks", {
    #[sea_orm(primary_key, auto_increment = false)]
    slot: String,
    framework_id: String,
    edition: String,
    #[sea_orm(column_type = "Text")]
    document_json: String,
});

entity!(org_unit, "scoring_org_units", {
    #[sea_orm(primary_key, auto_increment = false)]
    id: String,
    #[sea_orm(column_type = "Text")]
    unit_json: String,
    revision: i64,
});

entity!(stat_fact, "scoring_stat_facts", {
    #[sea_orm(primary_key)]
    id: i64,
    org_unit: String,
    metric: String,
    period: i32,
    value: i64,
    version: i64,
    /// The review's rank ([`cezone_domain::facts::StatState::rank`]): 0 pending, 1 returned,
    /// 2 accepted.
    state: i32,
});

entity!(tally_fact, "scoring_tally_facts", {
    #[sea_orm(primary_key)]
    id: i64,
    survey_id: String,
    org_unit: String,
    question: String,
    period: i32,
    responses: i64,
    positive: i64,
    version: i64,
    /// Of these, the answers of batches still pending review.
    pending_responses: i64,
    pending_positive: i64,
});

entity!(evidence_fact, "scoring_evidence_facts", {
    #[sea_orm(primary_key, auto_increment = false)]
    id: String,
    criterion: String,
    unit: String,
    org_unit: String,
    material: Option<String>,
    state: String,
    grade: i32,
    version: i64,
    /// Orders same-version duplicates: returned < submitted < accepted.
    rank: i32,
});

entity!(cell, "scoring_cells", {
    #[sea_orm(primary_key)]
    id: i64,
    org_unit: String,
    item: String,
    confirmed_milli: i64,
    projected_milli: i64,
});

entity!(run, "scoring_runs", {
    #[sea_orm(primary_key)]
    id: i64,
    framework_id: String,
    edition: String,
    period: i32,
    computed_at: String,
    total_confirmed_milli: i64,
    total_projected_milli: i64,
});

entity!(snapshot, "scoring_snapshots", {
    #[sea_orm(primary_key, auto_increment = false)]
    id: String,
    checkpoint: String,
    label: String,
    framework_id: String,
    edition: String,
    period: i32,
    frozen_at: String,
    frozen_by: String,
    total_confirmed_milli: i64,
    total_projected_milli: i64,
    content_hash: String,
    #[sea_orm(column_type = "Text")]
    inputs_json: String,
    #[sea_orm(column_type = "Text")]
    readiness_json: String,
});

entity!(snapshot_cell, "scoring_snapshot_cells", {
    #[sea_orm(primary_key)]
    id: i64,
    snapshot_id: String,
    org_unit: String,
    item: String,
    confirmed_milli: i64,
    projected_milli: i64,
});

entity!(processed_event, "scoring_processed_events", {
    #[sea_orm(primary_key, auto_increment = false)]
    event_id: String,
    event_type: String,
    processed_at: String,
});
