//! Query and mutation functions over a `DatabaseConnection`.

pub mod bus_mode;
pub mod dead_letters;
pub mod delivery_log;
pub mod ledger;
pub mod stats;
pub mod subscriptions;
pub mod users;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Connect (creating the SQLite file if asked) and apply pending migrations.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection, DbErr> {
    Ok(connect_and_count_migrations(url).await?.0)
}

/// As [`connect_and_migrate`], also telling how many migrations it applied.
pub async fn connect_and_count_migrations(url: &str) -> Result<(DatabaseConnection, usize), DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        // One writer at a time is SQLite's rule; a small pool avoids lock churn.
        opts.max_connections(4);
        // Write-ahead logging: a commit appends to one log file and syncs it, where
        // the default rollback journal creates, syncs and deletes a file per commit;
        // readers (the API) no longer wait for the worker's writes. Synchronous stays
        // FULL: a committed dead letter survives a power cut.
        // Each connection's page cache is capped at 512 KiB (SQLite's default is 2 MiB):
        // the log's pages are written once and rarely read back, the system's file
        // cache serves the console's reads, and four connections' caches filled by a
        // burst would otherwise stay resident after it.
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                .pragma("cache_size", "-512")
        });
    } else {
        opts.max_connections(16);
    }
    let db = Database::connect(opts).await?;
    let pending = Migrator::get_pending_migrations(&db).await?.len();
    Migrator::up(&db, None).await?;
    Ok((db, pending))
}

/// Truncate to at most `max` characters (not bytes), on a char boundary.
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((idx, _)) => s[..idx].to_owned(),
        None => s.to_owned(),
    }
}
