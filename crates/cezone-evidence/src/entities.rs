//! The evidence service's tables.

pub mod record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "evidence_records")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub framework_id: String,
        pub edition: String,
        pub criterion: String,
        pub org_unit: String,
        pub responsible_unit: String,
        pub period: i32,
        pub title: String,
        pub material_type: String,
        pub current_version: i32,
        /// State of the current version: "submitted", "accepted", "returned".
        pub state: String,
        pub grade: Option<i32>,
        pub revision: i64,
        pub first_submitted_at: String,
        pub updated_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "evidence_versions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub evidence_id: String,
        pub version: i32,
        pub sha256: String,
        pub size: i64,
        pub file_name: String,
        pub content_type: String,
        pub state: String,
        pub grade: Option<i32>,
        #[sea_orm(column_type = "Text")]
        pub comment: String,
        pub submitted_by: String,
        pub submitted_at: String,
        pub reviewed_by: Option<String>,
        pub reviewed_at: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod blob {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "evidence_blobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub sha256: String,
        pub size: i64,
        pub stored_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
