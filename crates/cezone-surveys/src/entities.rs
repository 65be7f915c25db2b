//! The survey service's tables.

pub mod survey {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "surveys_definitions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub title: String,
        pub period: i32,
        #[sea_orm(column_type = "Text")]
        pub questions_json: String,
        pub created_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod response {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "surveys_responses")]
    pub struct Model {
        /// With `respondent_id`, the key: one answer per respondent and survey, whichever call
        /// it comes in.
        #[sea_orm(primary_key, auto_increment = false)]
        pub survey_id: String,
        pub batch_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub respondent_id: String,
        pub org_unit: String,
        /// "awareness=1;satisfaction=4"
        pub answers: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod batch {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "surveys_batches")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub survey_id: String,
        pub responses: i64,
        pub received_at: String,
        /// `pending`, `accepted` or `returned`.
        pub state: String,
        pub filed_by: String,
        pub period: i32,
        pub reviewed_by: String,
        pub reviewed_at: String,
        pub review_comment: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod tally {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "surveys_tallies")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub survey_id: String,
        pub org_unit: String,
        pub question: String,
        pub period: i32,
        pub responses: i64,
        pub positive: i64,
        /// Increases with every batch that changes this tally.
        pub version: i64,
        /// Of `responses` and `positive`, the answers of batches still pending review.
        pub pending_responses: i64,
        pub pending_positive: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod statistic {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "surveys_statistics")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub org_unit: String,
        pub metric: String,
        pub period: i32,
        pub value: i64,
        pub version: i32,
        /// Whether this is the newest version of its (org unit, metric, period).
        pub latest: bool,
        pub filed_by: String,
        pub note: String,
        pub filed_at: String,
        /// `pending`, `accepted` or `returned` ([`cezone_domain::facts::StatState`]).
        pub state: String,
        pub reviewed_by: String,
        pub reviewed_at: String,
        pub review_comment: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
