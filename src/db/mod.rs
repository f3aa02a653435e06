//! Query and mutation functions over a `DatabaseConnection`.

pub mod attempt_minutes;
pub mod bus_mode;
pub mod dead_letters;
pub mod delivery_log;
pub mod ledger;
pub mod stats;
pub mod subscriptions;
pub mod users;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};

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

/// `rows` cut into slices whose lengths are powers of two, none over `largest`: each
/// connection prepares and caches a statement per distinct text, and a batch of any
/// size then reuses one per power of two instead of caching one more per batch size.
pub(crate) fn power_of_two_chunks<T>(rows: &[T], largest: usize) -> Vec<&[T]> {
    let largest = prev_power_of_two(largest.max(1));
    let mut chunks = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = prev_power_of_two(rest.len()).min(largest);
        let (chunk, after) = rest.split_at(size);
        chunks.push(chunk);
        rest = after;
    }
    chunks
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// Append `(?,…),(?,…)` (PostgreSQL: `($1,…),($k,…)`): `rows` tuples of `arity`
/// placeholders, numbered from 1.
pub(crate) fn push_value_tuples(sql: &mut String, backend: DbBackend, rows: usize, arity: usize) {
    use std::fmt::Write as _;
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        for k in 0..arity {
            if k > 0 {
                sql.push(',');
            }
            match backend {
                DbBackend::Postgres => {
                    let _ = write!(sql, "${}", i * arity + k + 1);
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statement_sizes_are_powers_of_two() {
        assert_eq!(super::prev_power_of_two(1), 1);
        assert_eq!(super::prev_power_of_two(137), 128);
        assert_eq!(super::prev_power_of_two(512), 512);
        assert_eq!(super::prev_power_of_two(1000), 512);
        let rows: Vec<u8> = vec![0; 300];
        let sizes: Vec<usize> = super::power_of_two_chunks(&rows, 128)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [128, 128, 32, 8, 4]);
    }

    #[test]
    fn value_tuples_are_numbered_for_postgres() {
        let mut sql = String::new();
        super::push_value_tuples(&mut sql, sea_orm::DbBackend::Postgres, 2, 3);
        assert_eq!(sql, "($1,$2,$3),($4,$5,$6)");
        let mut sql = String::new();
        super::push_value_tuples(&mut sql, sea_orm::DbBackend::Sqlite, 2, 2);
        assert_eq!(sql, "(?,?),(?,?)");
    }
}
