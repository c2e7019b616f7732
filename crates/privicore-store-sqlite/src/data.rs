//! Reads of devices, data tokens, versions, replicas, the spool and statistics.

use crate::{rows, unavailable};
use privicore_domain::data_token::{
    DataToken, Match, Page, Replica, ReplicaCounts, TokenFilter, TokenStatus, TokenVersion,
};
use privicore_domain::device::{Device, DeviceFilter};
use privicore_domain::ports::StoreError;
use privicore_domain::{ProfileId, Timestamp};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

fn push_match(q: &mut QueryBuilder<'_, Sqlite>, expr: &str, m: &Match) {
    match m {
        Match::Exact(v) => {
            q.push(format!(" AND {expr} = ")).push_bind(v.clone());
        }
        Match::ExactNoCase(v) => {
            q.push(format!(" AND lower({expr}) = lower("))
                .push_bind(v.clone())
                .push(")");
        }
        Match::Prefix(p) => {
            q.push(format!(" AND substr({expr}, 1, {}) = ", p.chars().count()))
                .push_bind(p.clone());
        }
    }
}

fn device_where(q: &mut QueryBuilder<'_, Sqlite>, profile: ProfileId, f: &DeviceFilter) {
    q.push(" WHERE profile_id = ")
        .push_bind(profile.to_string());
    if !f.statuses.is_empty() {
        q.push(" AND status IN (");
        let mut sep = q.separated(", ");
        for s in &f.statuses {
            sep.push_bind(s.as_str());
        }
        q.push(")");
    }
    match f.role.as_deref() {
        Some("none") => {
            q.push(" AND roles = ''");
        }
        Some(role) => {
            q.push(" AND (',' || roles || ',') LIKE ")
                .push_bind(format!("%,{role},%"));
        }
        None => {}
    }
    if let Some(name) = &f.name {
        let m = if f.name_prefix {
            Match::Prefix(name.clone())
        } else {
            Match::Exact(name.clone())
        };
        push_match(q, "name", &m);
    }
}

pub async fn list_devices(
    pool: &SqlitePool,
    profile: ProfileId,
    f: &DeviceFilter,
    page: Page,
) -> Result<(Vec<Device>, u64), StoreError> {
    let query = Paged {
        table: "devices",
        tie_break: "request_command_id",
        page,
    };
    query
        .run(pool, |q| device_where(q, profile, f), rows::device)
        .await
}

/// A filtered, newest-first page of a table, and the total across pages (README §9).
struct Paged {
    table: &'static str,
    /// Orders rows created in the same second: a UUID v7 column, so creation order.
    tie_break: &'static str,
    page: Page,
}

impl Paged {
    async fn run<T>(
        &self,
        pool: &SqlitePool,
        filter: impl Fn(&mut QueryBuilder<'_, Sqlite>),
        convert: fn(&sqlx::sqlite::SqliteRow) -> Result<T, StoreError>,
    ) -> Result<(Vec<T>, u64), StoreError> {
        let mut count = QueryBuilder::new(format!("SELECT COUNT(*) AS n FROM {}", self.table));
        filter(&mut count);
        let total: i64 = count
            .build()
            .fetch_one(pool)
            .await
            .map_err(unavailable)?
            .get("n");
        let mut q = QueryBuilder::new(format!("SELECT * FROM {}", self.table));
        filter(&mut q);
        q.push(format!(
            " ORDER BY created_at DESC, {} DESC LIMIT ",
            self.tie_break
        ))
        .push_bind(self.page.per_page as i64);
        q.push(" OFFSET ").push_bind(self.page.offset() as i64);
        let rows = q.build().fetch_all(pool).await.map_err(unavailable)?;
        let items = rows.iter().map(convert).collect::<Result<_, _>>()?;
        Ok((items, total as u64))
    }
}

fn token_where(q: &mut QueryBuilder<'_, Sqlite>, profile: ProfileId, f: &TokenFilter) {
    q.push(" WHERE profile_id = ")
        .push_bind(profile.to_string());
    let statuses = if f.statuses.is_empty() {
        vec![TokenStatus::Active]
    } else {
        f.statuses.clone()
    };
    q.push(" AND status IN (");
    let mut sep = q.separated(", ");
    for s in &statuses {
        sep.push_bind(s.as_str());
    }
    q.push(")");
    if let Some(t) = &f.token {
        q.push(" AND token = ").push_bind(t.clone());
    }
    if let Some(m) = &f.context {
        push_match(q, "context", m);
    }
    if let Some(m) = &f.file_name {
        push_match(q, "json_extract(meta_file, '$.fileName')", m);
    }
    if let Some(m) = &f.extension {
        push_match(q, "json_extract(meta_file, '$.extension')", m);
    }
    if let Some(m) = &f.data_type {
        push_match(q, "json_extract(meta_data, '$.type')", m);
    }
    if let Some(m) = &f.classification {
        push_match(q, "json_extract(meta_risk, '$.classification')", m);
    }
}

pub async fn list_tokens(
    pool: &SqlitePool,
    profile: ProfileId,
    f: &TokenFilter,
    page: Page,
) -> Result<(Vec<DataToken>, u64), StoreError> {
    let query = Paged {
        table: "data_tokens",
        tie_break: "reserve_command_id",
        page,
    };
    query
        .run(pool, |q| token_where(q, profile, f), rows::data_token)
        .await
}

pub async fn token_version(
    pool: &SqlitePool,
    token: &str,
    version: u32,
) -> Result<Option<TokenVersion>, StoreError> {
    Ok(
        sqlx::query("SELECT * FROM token_versions WHERE token = ? AND version = ?")
            .bind(token)
            .bind(i64::from(version))
            .fetch_optional(pool)
            .await
            .map_err(unavailable)?
            .map(|r| rows::token_version(&r)),
    )
}

pub async fn replicas(
    pool: &SqlitePool,
    token: &str,
    version: Option<u32>,
) -> Result<Vec<Replica>, StoreError> {
    let rows = match version {
        Some(v) => {
            sqlx::query("SELECT * FROM replicas WHERE token = ? AND version = ?")
                .bind(token)
                .bind(i64::from(v))
                .fetch_all(pool)
                .await
        }
        None => {
            sqlx::query("SELECT * FROM replicas WHERE token = ?")
                .bind(token)
                .fetch_all(pool)
                .await
        }
    }
    .map_err(unavailable)?;
    rows.iter().map(rows::replica).collect()
}

pub async fn replica_counts(
    pool: &SqlitePool,
    token: &str,
    version: u32,
) -> Result<ReplicaCounts, StoreError> {
    let rows = sqlx::query(
        "SELECT state, COUNT(*) AS n FROM replicas WHERE token = ? AND version = ? GROUP BY state",
    )
    .bind(token)
    .bind(i64::from(version))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let mut counts = ReplicaCounts::default();
    for r in rows {
        let n = r.get::<i64, _>("n") as u64;
        match r.get::<String, _>("state").as_str() {
            "confirmed" => counts.confirmed = n,
            "pending" => counts.pending = n,
            "missing" => counts.missing = n,
            _ => {}
        }
    }
    Ok(counts)
}

pub async fn spool(
    pool: &SqlitePool,
    token: &str,
    version: u32,
) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    let rows = sqlx::query(
        "SELECT sealed FROM spool WHERE token = ? AND version = ? ORDER BY chunk_index",
    )
    .bind(token)
    .bind(i64::from(version))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    Ok((!rows.is_empty()).then(|| rows.iter().map(|r| r.get::<Vec<u8>, _>("sealed")).collect()))
}

pub async fn events(
    pool: &SqlitePool,
    profile: ProfileId,
    from: Timestamp,
    to: Timestamp,
    context: Option<&Match>,
) -> Result<Vec<(String, Timestamp)>, StoreError> {
    let mut q = QueryBuilder::new("SELECT kind, at FROM token_events WHERE profile_id = ");
    q.push_bind(profile.to_string());
    q.push(" AND at >= ").push_bind(from.unix());
    q.push(" AND at < ").push_bind(to.unix());
    if let Some(m) = context {
        push_match(&mut q, "context", m);
    }
    let rows = q.build().fetch_all(pool).await.map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<String, _>("kind"), Timestamp(r.get("at"))))
        .collect())
}
