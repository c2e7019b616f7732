//! Reads of devices, data tokens, versions, replicas, the spool and statistics.

use crate::db;
use crate::rows::{self, Col};
use privicore_domain::data_token::{
    DataToken, Match, Page, Replica, ReplicaCounts, StoredHeader, TokenFilter, TokenStatus,
    TokenVersion,
};
use privicore_domain::device::{Device, DeviceFilter};
use privicore_domain::ports::StoreError;
use privicore_domain::{ProfileId, Timestamp};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

/// SQL text with its bound values, built piece by piece for filtered lists.
#[derive(Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.text.push('?');
        self.values.push(value.into());
        self
    }

    pub(crate) fn bind_list<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) -> &mut Self {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v.to_owned());
        }
        self.push(")")
    }
}

pub(crate) fn push_match(q: &mut Sql, expr: &str, m: &Match) {
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

pub fn list_devices(
    conn: &Connection,
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
    query.run(conn, |q| device_where(q, profile, f), rows::device)
}

/// A filtered, newest-first page of a table, and the total across pages (docs/api/README.md §9).
pub(crate) struct Paged {
    pub(crate) table: &'static str,
    pub(crate) columns: &'static str,
    /// Orders rows created in the same second: a UUID v7 column, so creation order.
    pub(crate) tie_break: &'static str,
    pub(crate) page: Page,
}

impl Paged {
    pub(crate) fn run<T>(
        &self,
        conn: &Connection,
        filter: impl Fn(&mut Sql),
        convert: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<(Vec<T>, u64), StoreError> {
        let mut count = Sql::new(format!("SELECT COUNT(*) FROM {}", self.table));
        filter(&mut count);
        let total = db::count(conn, &count.text, params_from_iter(count.values))?;
        let mut q = Sql::new(format!("SELECT {} FROM {}", self.columns, self.table));
        filter(&mut q);
        q.push(&format!(
            " ORDER BY created_at DESC, {} DESC LIMIT ",
            self.tie_break
        ))
        .bind(self.page.per_page as i64)
        .push(" OFFSET ")
        .bind(self.page.offset() as i64);
        let items = db::all(conn, &q.text, params_from_iter(q.values), convert)?;
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

pub fn list_tokens(
    conn: &Connection,
    profile: ProfileId,
    f: &TokenFilter,
    page: Page,
) -> Result<(Vec<DataToken>, u64), StoreError> {
    let query = Paged {
        table: "data_tokens",
        columns: data_token_columns!(),
        tie_break: "reserve_command_id",
        page,
    };
    query.run(conn, |q| token_where(q, profile, f), rows::data_token)
}

pub fn token_version(
    conn: &Connection,
    token: &str,
    version: u32,
) -> Result<Option<TokenVersion>, StoreError> {
    db::one(
        conn,
        concat!(
            "SELECT ?1 AS token, * FROM token_versions WHERE token_seq = ",
            token_seq!("?1"),
            " AND version = ?2"
        ),
        params![token, i64::from(version)],
        rows::token_version,
    )
}

/// Headers after `after` in (token seq, version) order.
pub fn version_headers(
    conn: &Connection,
    after: (i64, u32),
    limit: usize,
) -> Result<Vec<StoredHeader>, StoreError> {
    db::all(
        conn,
        "SELECT v.token_seq, v.version, t.token, v.header FROM token_versions v \
         JOIN data_tokens t ON t.seq = v.token_seq \
         WHERE (v.token_seq, v.version) > (?1, ?2) ORDER BY v.token_seq, v.version LIMIT ?3",
        params![after.0, i64::from(after.1), limit as i64],
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
}

pub fn replicas(
    conn: &Connection,
    token: &str,
    version: Option<u32>,
) -> Result<Vec<Replica>, StoreError> {
    match version {
        Some(v) => db::all(
            conn,
            concat!(
                "SELECT ?1 AS token, * FROM replicas WHERE token_seq = ",
                token_seq!("?1"),
                " AND version = ?2"
            ),
            params![token, i64::from(v)],
            rows::replica,
        ),
        None => db::all(
            conn,
            concat!(
                "SELECT ?1 AS token, * FROM replicas WHERE token_seq = ",
                token_seq!("?1")
            ),
            [token],
            rows::replica,
        ),
    }
}

pub fn replica_counts(
    conn: &Connection,
    token: &str,
    version: u32,
) -> Result<ReplicaCounts, StoreError> {
    let groups = db::all(
        conn,
        concat!(
            "SELECT state, COUNT(*) AS n FROM replicas WHERE token_seq = ",
            token_seq!(),
            " AND version = ? GROUP BY state"
        ),
        params![token, i64::from(version)],
        |r| Ok((r.col::<String>("state")?, r.col::<i64>("n")? as u64)),
    )?;
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

pub fn spool_chunk(
    conn: &Connection,
    token: &str,
    version: u32,
    index: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    db::one(
        conn,
        concat!(
            "SELECT sealed FROM spool WHERE token_seq = ",
            token_seq!(),
            " AND version = ? AND chunk_index = ?"
        ),
        params![token, i64::from(version), i64::from(index)],
        |r| r.col::<Vec<u8>>("sealed"),
    )
}

pub fn spool(
    conn: &Connection,
    token: &str,
    version: u32,
) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    let chunks = db::all(
        conn,
        concat!(
            "SELECT sealed FROM spool WHERE token_seq = ",
            token_seq!(),
            " AND version = ? ORDER BY chunk_index"
        ),
        params![token, i64::from(version)],
        |r| r.col::<Vec<u8>>("sealed"),
    )?;
    Ok((!chunks.is_empty()).then_some(chunks))
}

pub fn events(
    conn: &Connection,
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
    db::all(conn, &q.text, params_from_iter(q.values), |r| {
        Ok((r.col::<String>("kind")?, Timestamp(r.col("at")?)))
    })
}

/// Storage-capable approved devices, of one profile or all.
pub fn storage_devices(
    conn: &Connection,
    profile_id: Option<ProfileId>,
) -> Result<Vec<Device>, StoreError> {
    let base = "SELECT * FROM devices WHERE status = 'approved' AND (',' || roles || ',') LIKE '%,storage,%'";
    match profile_id {
        Some(p) => db::all(
            conn,
            &format!("{base} AND profile_id = ? ORDER BY created_at"),
            [p.to_string()],
            rows::device,
        ),
        None => db::all(
            conn,
            &format!("{base} ORDER BY created_at"),
            [],
            rows::device,
        ),
    }
}
