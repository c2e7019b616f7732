//! Reads of devices, data tokens, versions, replicas, the spool and statistics.

use crate::db::{self, Sql};
use crate::rows::{self, Col, DATA_TOKEN_COLUMNS};
use privicore_domain::data_token::{
    DataToken, Match, Page, Replica, ReplicaCounts, StoredHeader, TokenFilter, TokenStatus,
    TokenVersion,
};
use privicore_domain::device::{Device, DeviceFilter};
use privicore_domain::ports::StoreError;
use privicore_domain::{ProfileId, Timestamp};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

/// The `seq` of the token bound to `$n`.
pub fn token_seq(param: u8) -> String {
    format!("(SELECT seq FROM data_tokens WHERE token = ${param})")
}

pub fn push_match(q: &mut Sql, expr: &str, m: &Match) {
    match m {
        Match::Exact(v) => {
            q.push(&format!(" AND {expr} = ")).bind(v.clone());
        }
        Match::ExactNoCase(v) => {
            q.push(&format!(" AND lower({expr}) = lower("))
                .bind(v.clone())
                .push(")");
        }
        Match::Prefix(p) => {
            q.push(&format!(" AND substr({expr}, 1, {}) = ", p.chars().count()))
                .bind(p.clone());
        }
    }
}

fn device_where(q: &mut Sql, profile: ProfileId, f: &DeviceFilter) {
    q.push(" WHERE profile_id = ").bind(profile.to_string());
    if !f.statuses.is_empty() {
        q.push(" AND status IN ")
            .bind_list(f.statuses.iter().map(|s| s.as_str()));
    }
    match f.role.as_deref() {
        Some("none") => {
            q.push(" AND roles = ''");
        }
        Some(role) => {
            q.push(" AND (',' || roles || ',') LIKE ")
                .bind(format!("%,{role},%"));
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
    conn: &mut PgConnection,
    profile: ProfileId,
    f: &DeviceFilter,
    page: Page,
) -> Result<(Vec<Device>, u64), StoreError> {
    let query = Paged {
        table: "devices",
        columns: "*",
        tie_break: "request_command_id",
        page,
    };
    query
        .run(conn, |q| device_where(q, profile, f), rows::device)
        .await
}

/// A filtered, newest-first page of a table, and the total across pages (docs/api/README.md §9).
pub struct Paged {
    pub table: &'static str,
    pub columns: &'static str,
    /// Orders rows created in the same second: a UUID v7 column, so creation order.
    pub tie_break: &'static str,
    pub page: Page,
}

impl Paged {
    pub async fn run<T>(
        &self,
        conn: &mut PgConnection,
        filter: impl Fn(&mut Sql),
        convert: fn(&PgRow) -> Result<T, StoreError>,
    ) -> Result<(Vec<T>, u64), StoreError> {
        let mut count = Sql::new(format!("SELECT COUNT(*) FROM {}", self.table));
        filter(&mut count);
        let total = db::count(&mut *conn, count.query()).await?;
        let mut q = Sql::new(format!("SELECT {} FROM {}", self.columns, self.table));
        filter(&mut q);
        q.push(&format!(
            " ORDER BY created_at DESC, {} DESC LIMIT ",
            self.tie_break
        ))
        .bind(self.page.per_page as i64)
        .push(" OFFSET ")
        .bind(self.page.offset() as i64);
        let items = db::all(conn, q.query(), convert).await?;
        Ok((items, total))
    }
}

fn token_where(q: &mut Sql, profile: ProfileId, f: &TokenFilter) {
    q.push(" WHERE profile_id = ").bind(profile.to_string());
    let statuses = if f.statuses.is_empty() {
        vec![TokenStatus::Active]
    } else {
        f.statuses.clone()
    };
    q.push(" AND status IN ")
        .bind_list(statuses.iter().map(|s| s.as_str()));
    if let Some(t) = &f.token {
        q.push(" AND token = ").bind(t.clone());
    }
    if let Some(m) = &f.context {
        push_match(q, "context", m);
    }
    // Meta is stored as the engine wrote it; only filters read it as JSON.
    if let Some(m) = &f.file_name {
        push_match(q, "(meta_file::jsonb ->> 'fileName')", m);
    }
    if let Some(m) = &f.extension {
        push_match(q, "(meta_file::jsonb ->> 'extension')", m);
    }
    if let Some(m) = &f.data_type {
        push_match(q, "(meta_data::jsonb ->> 'type')", m);
    }
    if let Some(m) = &f.classification {
        push_match(q, "(meta_risk::jsonb ->> 'classification')", m);
    }
}

pub async fn list_tokens(
    conn: &mut PgConnection,
    profile: ProfileId,
    f: &TokenFilter,
    page: Page,
) -> Result<(Vec<DataToken>, u64), StoreError> {
    let query = Paged {
        table: "data_tokens",
        columns: DATA_TOKEN_COLUMNS,
        tie_break: "reserve_command_id",
        page,
    };
    query
        .run(conn, |q| token_where(q, profile, f), rows::data_token)
        .await
}

pub async fn token_version(
    conn: &mut PgConnection,
    token: &str,
    version: u32,
) -> Result<Option<TokenVersion>, StoreError> {
    let sql = format!(
        "SELECT $1::text AS token, * FROM token_versions WHERE token_seq = {} AND version = $2",
        token_seq(1)
    );
    db::one(
        conn,
        sqlx::query(&sql).bind(token).bind(i64::from(version)),
        rows::token_version,
    )
    .await
}

/// Headers after `after` in (token seq, version) order.
pub async fn version_headers(
    conn: &mut PgConnection,
    after: (i64, u32),
    limit: usize,
) -> Result<Vec<StoredHeader>, StoreError> {
    db::all(
        conn,
        sqlx::query(
            "SELECT v.token_seq, v.version, t.token, v.header FROM token_versions v \
             JOIN data_tokens t ON t.seq = v.token_seq \
             WHERE (v.token_seq, v.version) > ($1, $2) ORDER BY v.token_seq, v.version LIMIT $3",
        )
        .bind(after.0)
        .bind(i64::from(after.1))
        .bind(limit as i64),
        |r| {
            let version = r.col::<i64>("version")? as u32;
            Ok(StoredHeader {
                cursor: (r.col("token_seq")?, version),
                token: r.col("token")?,
                version,
                header: r.col("header")?,
            })
        },
    )
    .await
}

pub async fn replicas(
    conn: &mut PgConnection,
    token: &str,
    version: Option<u32>,
) -> Result<Vec<Replica>, StoreError> {
    let base = format!(
        "SELECT $1::text AS token, * FROM replicas WHERE token_seq = {}",
        token_seq(1)
    );
    match version {
        Some(v) => {
            let sql = format!("{base} AND version = $2");
            db::all(
                conn,
                sqlx::query(&sql).bind(token).bind(i64::from(v)),
                rows::replica,
            )
            .await
        }
        None => db::all(conn, sqlx::query(&base).bind(token), rows::replica).await,
    }
}

pub async fn device_replicas(
    conn: &mut PgConnection,
    device_id: &str,
) -> Result<Vec<Replica>, StoreError> {
    db::all(
        conn,
        sqlx::query(
            "SELECT t.token, r.* FROM replicas r JOIN data_tokens t ON t.seq = r.token_seq WHERE r.device_id = $1",
        )
        .bind(device_id),
        rows::replica,
    )
    .await
}

pub async fn replica_counts(
    conn: &mut PgConnection,
    token: &str,
    version: u32,
) -> Result<ReplicaCounts, StoreError> {
    let sql = format!(
        "SELECT state, COUNT(*) AS n FROM replicas WHERE token_seq = {} AND version = $2 GROUP BY state",
        token_seq(1)
    );
    let groups = db::all(
        conn,
        sqlx::query(&sql).bind(token).bind(i64::from(version)),
        |r| Ok((r.col::<String>("state")?, r.col::<i64>("n")? as u64)),
    )
    .await?;
    let mut counts = ReplicaCounts::default();
    for (state, n) in groups {
        match state.as_str() {
            "confirmed" => counts.confirmed = n,
            "pending" => counts.pending = n,
            "missing" => counts.missing = n,
            _ => {}
        }
    }
    Ok(counts)
}

pub async fn spool_chunk(
    conn: &mut PgConnection,
    token: &str,
    version: u32,
    index: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    let sql = format!(
        "SELECT sealed FROM spool WHERE token_seq = {} AND version = $2 AND chunk_index = $3",
        token_seq(1)
    );
    db::one(
        conn,
        sqlx::query(&sql)
            .bind(token)
            .bind(i64::from(version))
            .bind(i64::from(index)),
        |r| r.col::<Vec<u8>>("sealed"),
    )
    .await
}

pub async fn spool(
    conn: &mut PgConnection,
    token: &str,
    version: u32,
) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    let sql = format!(
        "SELECT sealed FROM spool WHERE token_seq = {} AND version = $2 ORDER BY chunk_index",
        token_seq(1)
    );
    let chunks = db::all(
        conn,
        sqlx::query(&sql).bind(token).bind(i64::from(version)),
        |r| r.col::<Vec<u8>>("sealed"),
    )
    .await?;
    Ok((!chunks.is_empty()).then_some(chunks))
}

/// Replica rows by state and the spool's objects and bytes, for `/metrics`.
pub async fn operational_counts(
    conn: &mut PgConnection,
) -> Result<privicore_domain::ports::OperationalCounts, StoreError> {
    let replicas_by_state = db::all(
        &mut *conn,
        sqlx::query("SELECT state, COUNT(*) AS n FROM replicas GROUP BY state ORDER BY state"),
        |r| Ok((r.col::<String>("state")?, r.col::<i64>("n")? as u64)),
    )
    .await?;
    let (spool_objects, spool_bytes) = db::one(
        &mut *conn,
        sqlx::query(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM spool GROUP BY token_seq, version) v) AS objects, \
                    COALESCE(SUM(octet_length(sealed)), 0)::bigint AS bytes FROM spool",
        ),
        |r| Ok((r.col::<i64>("objects")? as u64, r.col::<i64>("bytes")? as u64)),
    )
    .await?
    .unwrap_or((0, 0));
    Ok(privicore_domain::ports::OperationalCounts {
        replicas_by_state,
        spool_objects,
        spool_bytes,
    })
}

pub async fn events(
    conn: &mut PgConnection,
    profile: ProfileId,
    from: Timestamp,
    to: Timestamp,
    context: Option<&Match>,
    application: Option<uuid::Uuid>,
) -> Result<Vec<(String, Timestamp)>, StoreError> {
    let mut q = Sql::new("SELECT kind, at FROM token_events WHERE profile_id = ");
    q.bind(profile.to_string());
    q.push(" AND at >= ").bind(from.unix());
    q.push(" AND at < ").bind(to.unix());
    if let Some(app) = application {
        q.push(" AND application_id = ").bind(app.to_string());
    }
    if let Some(m) = context {
        push_match(&mut q, "context", m);
    }
    db::all(conn, q.query(), |r| {
        Ok((r.col::<String>("kind")?, Timestamp(r.col("at")?)))
    })
    .await
}

/// Storage-capable approved devices, of one profile or all.
pub async fn storage_devices(
    conn: &mut PgConnection,
    profile_id: Option<ProfileId>,
) -> Result<Vec<Device>, StoreError> {
    let base = "SELECT * FROM devices WHERE status = 'approved' AND (',' || roles || ',') LIKE '%,storage,%'";
    match profile_id {
        Some(p) => {
            let sql = format!("{base} AND profile_id = $1 ORDER BY created_at");
            db::all(conn, sqlx::query(&sql).bind(p.to_string()), rows::device).await
        }
        None => {
            let sql = format!("{base} ORDER BY created_at");
            db::all(conn, sqlx::query(&sql), rows::device).await
        }
    }
}
