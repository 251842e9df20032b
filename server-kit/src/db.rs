//! Database plumbing both services share: one sqlx `Any` pool over SQLite (embedded default) or
//! PostgreSQL, with the same dialect-neutral SQL (`$n` placeholders, `ON CONFLICT` upserts).

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// The schema migration failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The data directory of an SQLite file could not be created.
    #[error("cannot create the directory of the SQLite database")]
    Dir(#[source] std::io::Error),
}

fn sqlite_parent(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite://")?.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(std::path::Path::to_path_buf)
}

/// Connects to `url` (`sqlite://…` or `postgres://…`) and runs `migrator`. For SQLite the file's
/// directory is created, WAL is on, and writers wait for each other instead of failing.
///
/// SQLite runs with `synchronous = NORMAL`: a commit is in the WAL in the operating system's
/// hands when it returns, so it survives the process being killed (`kill -9`, a crash), and the
/// WAL is synced at checkpoints rather than on every commit. A power loss or kernel crash may
/// lose the last commits (never corrupt the database); where that matters, use PostgreSQL.
/// With `FULL`, every commit waits for an fsync (about 4 ms on a virtual disk), which caps one
/// client at some 230 writes/s.
pub async fn connect(url: &str, migrator: &Migrator) -> Result<AnyPool, DbError> {
    install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    if let Some(dir) = sqlite_parent(url) {
        std::fs::create_dir_all(dir).map_err(DbError::Dir)?;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite { 4 } else { 8 })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(DbError::Connect)?;
    if sqlite {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .map_err(DbError::Connect)?;
    }
    migrator.run(&pool).await.map_err(DbError::Migrate)?;
    Ok(pool)
}
