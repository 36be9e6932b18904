//! Fresh, isolated databases for tests and for server processes started by tests (doc-hidden).
//!
//! Every store test runs on SQLite and, when `TRUNKLINE_TEST_PG` holds a PostgreSQL URL, on
//! PostgreSQL too. With `CI=true` and no `TRUNKLINE_TEST_PG`, [`test_databases`] panics, so CI
//! can never pass by silently skipping PostgreSQL.

use super::{Pool, Store, StoreError};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use uuid::Uuid;

/// Environment variable with the base PostgreSQL URL for tests.
pub const PG_ENV: &str = "TRUNKLINE_TEST_PG";

/// The base PostgreSQL URL from [`PG_ENV`]; `None` when unset or empty. Panics when unset and
/// `CI=true`.
pub fn pg_base_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "{PG_ENV} is not set and CI=true: PostgreSQL tests must not be skipped"
            );
            None
        }
    }
}

/// A URL of a new SQLite file in `dir` (created on first connect).
pub fn fresh_sqlite_url(dir: &Path) -> String {
    let file = dir.join(format!("trunkline-test-{}.db", Uuid::new_v4().simple()));
    format!("sqlite://{}", file.display())
}

/// Creates a uniquely named database on the server of `base_url` and returns its URL.
pub async fn fresh_postgres_url(base_url: &str) -> Result<String, StoreError> {
    let name = format!("trunkline_test_{}", Uuid::new_v4().simple());
    let opts = PgConnectOptions::from_str(base_url)?;
    let mut conn = PgConnection::connect_with(&opts).await?;
    // The name is ours (hex digits), so formatting it into the statement is safe.
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(with_database(base_url, &name))
}

/// Drops a database made by [`fresh_postgres_url`] (connections to it are terminated).
pub async fn drop_postgres_database(base_url: &str, url: &str) -> Result<(), StoreError> {
    let opts = PgConnectOptions::from_str(url)?;
    let Some(name) = opts.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if !name.starts_with("trunkline_test_")
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Ok(());
    }
    let mut conn = PgConnection::connect_with(&PgConnectOptions::from_str(base_url)?).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// `base_url` with its database (path) replaced by `name`, query string kept.
fn with_database(base_url: &str, name: &str) -> String {
    let (main, query) = match base_url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (base_url, None),
    };
    // After "scheme://", the path starts at the first '/'.
    let after_scheme = main.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = main[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(main.len());
    let mut url = format!("{}/{name}", &main[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// One isolated test database, removed by [`TestDb::remove`] or, if a test panicked first, when
/// dropped.
#[derive(Debug)]
pub struct TestDb {
    /// `"sqlite"` or `"postgres"`, for assertion messages.
    pub label: &'static str,
    /// Its URL.
    pub url: String,
    cleanup: Option<Cleanup>,
}

#[derive(Debug)]
enum Cleanup {
    SqliteDir(PathBuf),
    Postgres { base: String },
}

impl TestDb {
    /// Connects and migrates (call again after dropping a store to simulate a restart).
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.label));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate {}: {e}", self.label));
        store
    }

    /// Connects and applies only the migrations up to `version` (e.g. `1` for the database an
    /// older release left), to test upgrading it with [`Store::migrate`].
    pub async fn store_at_version(&self, version: i64) -> Store {
        let store = Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.label));
        let upto = |mut m: sqlx::migrate::Migrator| {
            m.migrations = m
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            m
        };
        let done = match &store.pool {
            Pool::Sqlite(p) => upto(sqlx::migrate!("migrations/sqlite")).run(p).await,
            Pool::Postgres(p) => upto(sqlx::migrate!("migrations/postgres")).run(p).await,
        };
        done.unwrap_or_else(|e| panic!("migrate {} to {version}: {e}", self.label));
        store
    }

    /// Removes the database (the SQLite folder, or DROP DATABASE on PostgreSQL).
    pub async fn remove(mut self) {
        match self.cleanup.take() {
            Some(Cleanup::SqliteDir(dir)) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Some(Cleanup::Postgres { base }) => {
                if let Err(e) = drop_postgres_database(&base, &self.url).await {
                    eprintln!("dropping test database: {e}");
                }
            }
            None => {}
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.cleanup.take() {
            Some(Cleanup::SqliteDir(dir)) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Some(Cleanup::Postgres { base }) => {
                // Not removed (a test failed): drop it from a thread with its own runtime, as
                // this may run inside an async test's runtime.
                let url = self.url.clone();
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(rt) = rt {
                        let _ = rt.block_on(drop_postgres_database(&base, &url));
                    }
                })
                .join();
            }
            None => {}
        }
    }
}

/// A fresh SQLite database, plus a fresh PostgreSQL database when [`PG_ENV`] is set.
pub async fn test_databases() -> Vec<TestDb> {
    let dir = std::env::temp_dir().join(format!("trunkline-test-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a temporary folder");
    let mut dbs = vec![TestDb {
        label: "sqlite",
        url: fresh_sqlite_url(&dir),
        cleanup: Some(Cleanup::SqliteDir(dir)),
    }];
    if let Some(base) = pg_base_url() {
        let url = fresh_postgres_url(&base)
            .await
            .unwrap_or_else(|e| panic!("create a PostgreSQL test database via {PG_ENV}: {e}"));
        dbs.push(TestDb {
            label: "postgres",
            url,
            cleanup: Some(Cleanup::Postgres { base }),
        });
    }
    dbs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_and_query_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
