//! Database connections (SQLite embedded, PostgreSQL in production) and migrations run at start,
//! serialized across replicas on PostgreSQL by an advisory lock.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::settings::DatabaseSettings;

/// Connects one service. PostgreSQL is shared (each service owns its own tables in it). With
/// SQLite, each service keeps its own file beside the configured one (`cezone.db` →
/// `cezone-registry.db`) and writes through a single connection: SQLite has one writer at a
/// time, and this way it never has to refuse one.
pub async fn connect(
    settings: &DatabaseSettings,
    service: &str,
) -> Result<DatabaseConnection, DbErr> {
    let url = service_url(&settings.url, service);
    let url = url.as_str();
    let sqlite = sqlite_path(url).is_some();
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = std::path::Path::new(&path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("cannot create the directory of {path}: {e}")))?;
    }
    if let Some(path) = sqlite_path(url) {
        owner_only_file(std::path::Path::new(&path))
            .map_err(|e| DbErr::Custom(format!("cannot create {path}: {e}")))?;
    }
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(if sqlite { 1 } else { settings.max_connections })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    let db = Database::connect(opts).await?;
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        // Readers do not block the writer; several services may share one file.
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
        db.execute_unprepared("PRAGMA synchronous=NORMAL").await?;
        db.execute_unprepared("PRAGMA foreign_keys=ON").await?;
    }
    Ok(db)
}

/// Creates the database file readable by its owner only (0600) before SQLite opens it, so the
/// data never sits readable by other local users; SQLite gives its -wal and -shm files the same
/// mode. An existing file is left as it is.
fn owner_only_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The URL a service uses: the configured one, or for SQLite a file of the service's own.
pub fn service_url(url: &str, service: &str) -> String {
    let Some(path) = sqlite_path(url) else {
        return url.to_string();
    };
    let p = std::path::Path::new(&path);
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("cezone");
    let file = match p.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{service}.{ext}"),
        None => format!("{stem}-{service}"),
    };
    let new_path = p.with_file_name(file);
    url.replacen(&path, &new_path.to_string_lossy(), 1)
}

/// The file behind a `sqlite:` URL, if it names one.
pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// A statement written with `?` placeholders, rewritten to `$1, $2 …` for PostgreSQL.
pub fn stmt(backend: DatabaseBackend, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    if backend == DatabaseBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(ch);
            }
        }
        Statement::from_sql_and_values(backend, out, values)
    } else {
        Statement::from_sql_and_values(backend, sql, values)
    }
}

/// `n` rows of `width` placeholders for a multi-row statement: "(?, ?), (?, ?)".
pub fn tuples(width: usize, n: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; n].join(", ")
}

/// Runs a service's pending migrations. On PostgreSQL, replicas starting together wait for
/// each other on an advisory lock keyed by the migrations table name.
pub async fn migrate<M: MigratorTrait>(
    db: &DatabaseConnection,
    lock_key: i64,
) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [lock_key.into()],
            ))
            .await?;
            M::up(&txn, None).await?;
            txn.commit().await
        }
        _ => M::up(db, None).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_gets_its_own_sqlite_file() {
        assert_eq!(
            service_url("sqlite://var/cezone.db?mode=rwc", "registry"),
            "sqlite://var/cezone-registry.db?mode=rwc"
        );
        assert_eq!(
            service_url("postgres://u@h/db", "registry"),
            "postgres://u@h/db"
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sqlite_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::settings::DatabaseSettings {
            url: format!("sqlite://{}/data/cezone.db?mode=rwc", dir.path().display()),
            ..crate::settings::Settings::defaults().database
        };
        let db = connect(&settings, "registry").await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            files.iter().any(|f| f.ends_with("cezone-registry.db")),
            "{files:?}"
        );
        for f in &files {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        drop(db);
    }
}
