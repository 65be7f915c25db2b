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

/// People's accounts. The password is kept only as an argon2id PHC string.
pub mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registry_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub login: String,
        pub display_name: String,
        pub role: String,
        pub unit: Option<String>,
        pub org_unit: Option<String>,
        pub active: bool,
        #[sea_orm(column_type = "Text")]
        pub password_hash: String,
        pub failed_attempts: i32,
        pub locked_until: Option<String>,
        pub created_at: String,
        pub updated_at: String,
        pub last_login_at: Option<String>,
        /// Where the unit's reminders reach this person.
        pub email: Option<String>,
    }

    /// Without the password hash: a model may end up in a log line.
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Account")
                .field("login", &self.login)
                .field("role", &self.role)
                .field("active", &self.active)
                .finish_non_exhaustive()
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Refresh tokens, by the SHA-256 of the token (the token itself is never stored).
pub mod refresh_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registry_refresh_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub login: String,
        pub created_at: String,
        pub expires_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
