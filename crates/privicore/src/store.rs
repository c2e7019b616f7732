//! The metadata store `serve` opens: the embedded SQLite file in the data directory, or a
//! PostgreSQL database several engines share. Everything above it sees the ports only.

use crate::config::{MetadataBackend, Settings};
use anyhow::Context;
use privicore_domain::ports::{AuditLog, MetadataStore};
use privicore_store_postgres::PostgresStore;
use privicore_store_sqlite::SqliteStore;
use std::sync::Arc;

#[derive(Clone)]
pub enum Store {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PostgresStore>),
}

impl Store {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        Ok(match settings.metadata_store()? {
            MetadataBackend::Embedded(path) => Self::Sqlite(Arc::new(
                SqliteStore::open(&path)
                    .await
                    .context("opening the metadata store")?,
            )),
            MetadataBackend::Postgres(url) => {
                let store = PostgresStore::connect(&url)
                    .await
                    .context("opening the PostgreSQL metadata store")?;
                // The URL may carry a password: only its host part is logged.
                tracing::info!(database = %redacted(&url), "metadata store: PostgreSQL");
                Self::Postgres(Arc::new(store))
            }
        })
    }

    pub fn metadata(&self) -> Arc<dyn MetadataStore> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    pub fn audit(&self) -> Arc<dyn AuditLog> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    /// The embedded database file, which `operator backup` copies; `None` for PostgreSQL
    /// (backed up with the database's own tools).
    pub fn embedded_file(&self, settings: &Settings) -> Option<std::path::PathBuf> {
        match self {
            Self::Sqlite(_) => Some(settings.database_path()),
            Self::Postgres(_) => None,
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// `postgres://host:port/db`, without user, password or parameters.
fn redacted(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split('?').next().unwrap_or(host);
    format!("postgres://{host}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_never_reach_the_log() {
        assert_eq!(
            super::redacted("postgres://app:s3cret@db.internal:5432/vault?sslmode=require"),
            "postgres://db.internal:5432/vault"
        );
        assert_eq!(
            super::redacted("postgresql://db/vault"),
            "postgres://db/vault"
        );
    }
}
