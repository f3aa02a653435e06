//! A fresh database per test: a temporary SQLite file, or a new PostgreSQL database
//! when `TEST_DATABASE_URL` is set.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => {
                let name = format!("decnet_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&base)
                    .await
                    .expect("TEST_DATABASE_URL reachable");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let url = replace_db_name(&base, &name);
                Self {
                    url,
                    _dir: None,
                    pg: Some((base, name)),
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Connect and migrate, as every command does.
    pub async fn connect(&self) -> DatabaseConnection {
        decnet_webhook::db::connect_and_migrate(&self.url)
            .await
            .expect("test database connects and migrates")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg.take() {
            // Dropping needs a runtime of its own; best effort.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async move {
                        if let Ok(admin) = Database::connect(&base).await {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                ))
                                .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}
