//! Governance rows: voting defaults, voting configurations, policies; and the effects
//! that write them.

use crate::data::{Paged, push_match};
use crate::db::{self, Sql, is_unique_violation, unavailable};
use crate::rows::{self, Col, corrupt};
use privicore_domain::data_token::{Match, Page};
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::effect::GovernanceEffect;
use privicore_domain::governance::{
    ConfigurationFilter, Policy, PolicyFilter, PolicyStatus, Strategy, VotingConfiguration,
    VotingDefaults, name_key,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{PolicyId, ProfileId, Reason, Timestamp, VotingConfigurationId};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

fn strategy(r: &PgRow) -> Result<Strategy, StoreError> {
    Strategy::parse(&r.col::<String>("strategy")?).ok_or_else(|| corrupt("strategy"))
}

fn small(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(what))
}

fn device_ids(text: &str) -> Result<Vec<DeviceId>, StoreError> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| rows::uuid(s).map(DeviceId))
        .collect()
}

pub async fn voting_defaults(
    conn: &mut PgConnection,
    profile: ProfileId,
) -> Result<VotingDefaults, StoreError> {
    let stored = db::one(
        conn,
        sqlx::query("SELECT * FROM voting_defaults WHERE profile_id = $1")
            .bind(profile.to_string()),
        |r| {
            Ok(VotingDefaults {
                strategy: strategy(r)?,
                strategy_params: u8::try_from(r.col::<i64>("strategy_params")?)
                    .map_err(|_| corrupt("strategy_params"))?,
                quorum_size: small(r.col("quorum_size")?, "quorum_size")?,
                time_limit: small(r.col("time_limit")?, "time_limit")?,
                number_of_attempts: small(r.col("number_of_attempts")?, "number_of_attempts")?,
                updated_at: Some(Timestamp(r.col("updated_at")?)),
            })
        },
    )
    .await?;
    Ok(stored.unwrap_or_default())
}

fn configuration(r: &PgRow) -> Result<VotingConfiguration, StoreError> {
    let optional = |col: &str| -> Result<Option<u32>, StoreError> {
        r.col::<Option<i64>>(col)?
            .map(|v| small(v, col))
            .transpose()
    };
    Ok(VotingConfiguration {
        id: VotingConfigurationId(rows::uuid(&r.col::<String>("id")?)?),
        profile_id: rows::profile_id(&r.col::<String>("profile_id")?)?,
        name: r.col("name")?,
        strategy: strategy(r)?,
        percentage_required: optional("percentage_required")?
            .map(|p| u8::try_from(p).map_err(|_| corrupt("percentage_required")))
            .transpose()?,
        time_limit: small(r.col("time_limit")?, "time_limit")?,
        quorum_size: optional("quorum_size")?,
        number_of_attempts: optional("number_of_attempts")?,
        device_ids: device_ids(&r.col::<String>("device_ids")?)?,
        created_at: Timestamp(r.col("created_at")?),
        updated_at: Timestamp(r.col("updated_at")?),
    })
}

fn policy(r: &PgRow) -> Result<Policy, StoreError> {
    let configuration = match serde_json::from_str(&r.col::<String>("configuration")?) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(corrupt("policy configuration")),
    };
    Ok(Policy {
        id: PolicyId(rows::uuid(&r.col::<String>("id")?)?),
        profile_id: rows::profile_id(&r.col::<String>("profile_id")?)?,
        name: r.col("name")?,
        description: r.col("description")?,
        template_id: r.col("template_id")?,
        event_ids: r
            .col::<String>("event_ids")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        configuration,
        voting_configuration_id: r
            .col::<Option<String>>("voting_configuration_id")?
            .map(|id| rows::uuid(&id).map(VotingConfigurationId))
            .transpose()?,
        status: PolicyStatus::parse(&r.col::<String>("status")?)
            .ok_or_else(|| corrupt("policy status"))?,
        created_at: Timestamp(r.col("created_at")?),
        updated_at: Timestamp(r.col("updated_at")?),
        activated_at: rows::ts(r, "activated_at")?,
        deactivated_at: rows::ts(r, "deactivated_at")?,
        deleted_at: rows::ts(r, "deleted_at")?,
    })
}

pub async fn voting_configuration(
    conn: &mut PgConnection,
    id: VotingConfigurationId,
) -> Result<Option<VotingConfiguration>, StoreError> {
    db::one(
        conn,
        sqlx::query("SELECT * FROM voting_configurations WHERE id = $1").bind(id.to_string()),
        configuration,
    )
    .await
}

pub async fn voting_configuration_by_name(
    conn: &mut PgConnection,
    profile: ProfileId,
    name: &str,
) -> Result<Option<VotingConfiguration>, StoreError> {
    db::one(
        conn,
        sqlx::query("SELECT * FROM voting_configurations WHERE profile_id = $1 AND name_key = $2")
            .bind(profile.to_string())
            .bind(name_key(name)),
        configuration,
    )
    .await
}

pub async fn list_voting_configurations(
    conn: &mut PgConnection,
    profile: ProfileId,
    f: &ConfigurationFilter,
    page: Page,
) -> Result<(Vec<VotingConfiguration>, u64), StoreError> {
    let query = Paged {
        table: "voting_configurations",
        columns: "*",
        tie_break: "id",
        page,
    };
    query
        .run(
            conn,
            |q: &mut Sql| {
                q.push(" WHERE profile_id = ").bind(profile.to_string());
                if let Some(name) = &f.name {
                    let m = if f.name_prefix {
                        Match::Prefix(name.clone())
                    } else {
                        Match::Exact(name.clone())
                    };
                    push_match(q, "name", &m);
                }
                if let Some(s) = f.strategy {
                    q.push(" AND strategy = ").bind(s.as_str());
                }
            },
            configuration,
        )
        .await
}

pub async fn policy_by_id(
    conn: &mut PgConnection,
    id: PolicyId,
) -> Result<Option<Policy>, StoreError> {
    db::one(
        conn,
        sqlx::query("SELECT * FROM policies WHERE id = $1").bind(id.to_string()),
        policy,
    )
    .await
}

pub async fn policy_by_name(
    conn: &mut PgConnection,
    profile: ProfileId,
    name: &str,
) -> Result<Option<Policy>, StoreError> {
    db::one(
        conn,
        sqlx::query("SELECT * FROM policies WHERE profile_id = $1 AND name_key = $2")
            .bind(profile.to_string())
            .bind(name_key(name)),
        policy,
    )
    .await
}

pub async fn list_policies(
    conn: &mut PgConnection,
    profile: ProfileId,
    f: &PolicyFilter,
    page: Page,
) -> Result<(Vec<Policy>, u64), StoreError> {
    let query = Paged {
        table: "policies",
        columns: "*",
        tie_break: "id",
        page,
    };
    let statuses: Vec<&str> = if f.statuses.is_empty() {
        vec!["active", "inactive"]
    } else {
        f.statuses
            .iter()
            .filter(|s| **s != PolicyStatus::Deleted)
            .map(|s| s.as_str())
            .collect()
    };
    query
        .run(
            conn,
            |q: &mut Sql| {
                q.push(" WHERE profile_id = ").bind(profile.to_string());
                if statuses.is_empty() {
                    q.push(" AND FALSE");
                } else {
                    q.push(" AND status IN ")
                        .bind_list(statuses.iter().copied());
                }
                if let Some(t) = &f.template_id {
                    q.push(" AND template_id = ").bind(t.clone());
                }
                if let Some(e) = &f.event_id {
                    q.push(" AND (',' || event_ids || ',') LIKE ")
                        .bind(format!("%,{e},%"));
                }
                if let Some(c) = f.voting_configuration_id {
                    q.push(" AND voting_configuration_id = ")
                        .bind(c.to_string());
                }
            },
            policy,
        )
        .await
}

pub async fn active_policies(
    conn: &mut PgConnection,
    profile: ProfileId,
) -> Result<Vec<Policy>, StoreError> {
    db::all(
        conn,
        sqlx::query(
            "SELECT * FROM policies WHERE profile_id = $1 AND status = 'active' ORDER BY created_at, id",
        )
        .bind(profile.to_string()),
        policy,
    )
    .await
}

pub async fn authenticators(
    conn: &mut PgConnection,
    profile: ProfileId,
) -> Result<Vec<Device>, StoreError> {
    db::all(
        conn,
        sqlx::query(
            "SELECT * FROM devices WHERE profile_id = $1 AND status = 'approved'
             AND (',' || roles || ',') LIKE '%,authenticator,%' ORDER BY created_at, request_command_id",
        )
        .bind(profile.to_string()),
        rows::device,
    )
    .await
}

/// A unique-index violation of a name is the business conflict `taken`.
fn named(
    result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
    taken: Reason,
) -> Result<u64, StoreError> {
    result.map(|r| r.rows_affected()).map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(taken)
        } else {
            unavailable(e)
        }
    })
}

pub async fn apply(conn: &mut PgConnection, effect: &GovernanceEffect) -> Result<u64, StoreError> {
    match effect {
        GovernanceEffect::PutVotingDefaults {
            profile_id,
            defaults: d,
        } => {
            db::exec(
                conn,
                sqlx::query(
                    "INSERT INTO voting_defaults (profile_id, strategy, strategy_params, quorum_size, time_limit, number_of_attempts, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (profile_id) DO UPDATE SET strategy = excluded.strategy, strategy_params = excluded.strategy_params,
                     quorum_size = excluded.quorum_size, time_limit = excluded.time_limit,
                     number_of_attempts = excluded.number_of_attempts, updated_at = excluded.updated_at",
                )
                .bind(profile_id.to_string())
                .bind(d.strategy.as_str())
                .bind(i64::from(d.strategy_params))
                .bind(i64::from(d.quorum_size))
                .bind(i64::from(d.time_limit))
                .bind(i64::from(d.number_of_attempts))
                .bind(d.updated_at.unwrap_or_else(Timestamp::now).unix()),
            )
            .await
        }
        GovernanceEffect::SaveVotingConfiguration(c) => {
            let ids: Vec<String> = c.device_ids.iter().map(DeviceId::to_string).collect();
            named(
                sqlx::query(
                    "INSERT INTO voting_configurations (id, profile_id, name, name_key, strategy, percentage_required,
                     time_limit, quorum_size, number_of_attempts, device_ids, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_key = excluded.name_key,
                     strategy = excluded.strategy, percentage_required = excluded.percentage_required,
                     time_limit = excluded.time_limit, quorum_size = excluded.quorum_size,
                     number_of_attempts = excluded.number_of_attempts, device_ids = excluded.device_ids,
                     updated_at = excluded.updated_at",
                )
                .bind(c.id.to_string())
                .bind(c.profile_id.to_string())
                .bind(&c.name)
                .bind(c.name_key())
                .bind(c.strategy.as_str())
                .bind(c.percentage_required.map(i64::from))
                .bind(i64::from(c.time_limit))
                .bind(c.quorum_size.map(i64::from))
                .bind(c.number_of_attempts.map(i64::from))
                .bind(ids.join(","))
                .bind(c.created_at.unix())
                .bind(c.updated_at.unix())
                .execute(conn)
                .await,
                Reason::VotingConfigurationNameTaken,
            )
        }
        GovernanceEffect::SavePolicy(p) => named(
            sqlx::query(
                "INSERT INTO policies (id, profile_id, name, name_key, description, template_id, event_ids, configuration,
                 voting_configuration_id, status, created_at, updated_at, activated_at, deactivated_at, deleted_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_key = excluded.name_key,
                 description = excluded.description, event_ids = excluded.event_ids,
                 configuration = excluded.configuration, voting_configuration_id = excluded.voting_configuration_id,
                 status = excluded.status, updated_at = excluded.updated_at, activated_at = excluded.activated_at,
                 deactivated_at = excluded.deactivated_at, deleted_at = excluded.deleted_at",
            )
            .bind(p.id.to_string())
            .bind(p.profile_id.to_string())
            .bind(&p.name)
            .bind(p.name_key())
            .bind(&p.description)
            .bind(&p.template_id)
            .bind(p.event_ids.join(","))
            .bind(serde_json::Value::Object(p.configuration.clone()).to_string())
            .bind(p.voting_configuration_id.map(|c| c.to_string()))
            .bind(p.status.as_str())
            .bind(p.created_at.unix())
            .bind(p.updated_at.unix())
            .bind(p.activated_at.map(Timestamp::unix))
            .bind(p.deactivated_at.map(Timestamp::unix))
            .bind(p.deleted_at.map(Timestamp::unix))
            .execute(conn)
            .await,
            Reason::PolicyNameTaken,
        ),
    }
}
