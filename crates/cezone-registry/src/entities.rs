//! The registry's tables; no other service reads them.

pub mod framework_version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registry_framework_versions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub framework_id: String,
        pub edition: String,
        pub title: String,
        /// "draft" or "published".
        pub state: String,
        #[sea_orm(column_type = "Text")]
        pub document_json: String,
        pub content_hash: String,
        pub total_points: String,
        pub criteria: i32,
        #[sea_orm(column_type = "Text")]
        pub findings_json: String,
        pub imported_at: String,
        pub published_at: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod org_unit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registry_org_units")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub level: String,
        pub parent_id: Option<String>,
        pub community_type: Option<String>,
        pub region: Option<String>,
        /// {"2013": 8123, …}
        #[sea_orm(column_type = "Text")]
        pub populations_json: String,
        pub revision: i64,
        pub updated_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
