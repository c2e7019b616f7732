//! Directory endpoints (docs/api/directory.md §3).

use super::query::{filter, filters, items_page, page, query};
use super::{AppState, caller, fields};
use crate::body::Fields;
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use privicore_domain::data_token::Match;
use privicore_domain::device::{DeviceFilter, DeviceStatus};
use privicore_domain::directory::{
    self as dir, InvitationStatus, Kind, MemberFilter, MemberStatus, Role,
};
use privicore_domain::{Error, ProfileId, Reason};
use privicore_engine::{DirectoryPoolInput, DirectoryUserInput, InviteInput, MemberUpdate};
use serde_json::{Map, Value};
use uuid::Uuid;

fn uuid_of(field: &str, text: &str) -> Result<Uuid, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::invalid_format(field))
}

fn body_uuid(f: &Fields, field: &str) -> Result<Uuid, Error> {
    uuid_of(field, f.str(field)?)
}

/// An object field: JSON, bracket notation, or a JSON string (§3.18); `None` when absent.
fn object(f: &Fields, field: &str, invalid: Reason) -> Result<Option<Value>, Error> {
    let bad = || Error::new(invalid).with_field(field);
    match f.opt_value(field) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            _ => Err(bad()),
        },
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(bad()),
    }
}

fn given_role(f: &Fields) -> Result<Role, Error> {
    match f.opt_str("role")? {
        None => Ok(Role::Member),
        Some(r) => dir::parse_given_role("role", r),
    }
}

fn bounded(f: &Fields, field: &str, max: usize) -> Result<Option<String>, Error> {
    let value = f.opt_str(field)?.map(str::to_owned);
    if value.as_ref().is_some_and(|v| v.chars().count() > max) {
        return Err(Error::out_of_range(field, format!("0..{max} characters")));
    }
    Ok(value)
}

/// §3.1.
pub async fn register(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let name = f.str("name")?.to_owned();
    let description = bounded(&f, "description", 500)?;
    let meta = object(&f, "meta", Reason::DirectoryInvalidMeta)?;
    let id = state
        .engine
        .register_directory(&caller, &name, description, meta)
        .await?;
    Ok(reply::accepted(id))
}

/// §3.2.
pub async fn owned(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let f = filters(&q, &["name"])?;
    let name = filter(&f, "name").map(Match::exact_or_prefix);
    let (items, total) = state.engine.owned_directories(&caller, name, page).await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

fn parsed<T>(
    value: Option<&str>,
    field: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, Error> {
    value
        .map(|v| parse(v.trim()).ok_or_else(|| Error::invalid_format(field)))
        .transpose()
}

/// §3.3.
pub async fn assigned(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let f = filters(&q, &["role", "status"])?;
    let role = parsed(filter(&f, "role"), "filters[role]", |r| {
        Role::parse(r).filter(|r| *r != Role::Owner)
    })?;
    let status = parsed(filter(&f, "status"), "filters[status]", MemberStatus::parse)?
        .unwrap_or(MemberStatus::Active);
    let (items, total) = state
        .engine
        .assigned_directories(&caller, role, status, page)
        .await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

/// §3.4.
pub async fn retrieve(
    State(state): State<AppState>,
    Path(directory): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let id = uuid_of("directoryId", &directory)?;
    Ok(reply::ok(
        &state.engine.retrieve_directory(&caller, id).await?,
    ))
}

/// §3.18.
pub async fn store_meta(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let id = body_uuid(&f, "directoryId")?;
    let meta =
        object(&f, "meta", Reason::DirectoryInvalidMeta)?.ok_or_else(|| Error::missing("meta"))?;
    let replace = f.opt_bool("replace")?.unwrap_or(false);
    let command = state
        .engine
        .store_directory_meta(&caller, id, meta, replace)
        .await?;
    Ok(reply::accepted(command))
}

fn attributes(f: &Fields) -> Result<Option<Map<String, Value>>, Error> {
    object(f, "attributes", Reason::DirectoryInvalidMemberFields)?
        .map(|v| dir::check_attributes(&v))
        .transpose()
}

/// §3.5.
pub async fn create_user(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let input = DirectoryUserInput {
        directory_id: body_uuid(&f, "directoryId")?,
        username: f.str("username")?.trim().to_owned(),
        password: f.opt_str("password")?.map(str::to_owned),
        display_name: f
            .opt_str("displayName")?
            .map(dir::check_display_name)
            .transpose()?
            .flatten(),
        email: f
            .opt_str("email")?
            .map(dir::check_email)
            .transpose()?
            .flatten(),
        role: given_role(&f)?,
        attributes: attributes(&f)?.unwrap_or_default(),
        public_key: f.opt_str("publicKey")?.map(str::to_owned),
    };
    let id = state.engine.create_directory_user(&caller, input).await?;
    Ok(reply::accepted(id))
}

/// §3.8.
pub async fn set_password(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let directory = body_uuid(&f, "directoryId")?;
    let profile = ProfileId(body_uuid(&f, "profileId")?);
    let password = f.str("password")?;
    let revoke = f.opt_bool("revokeTokens")?.unwrap_or(true);
    let id = state
        .engine
        .set_directory_user_password(&caller, directory, profile, password, revoke)
        .await?;
    Ok(reply::accepted(id))
}

/// A cleared (`""`) or set text field of an update; `None` when not sent.
fn change(
    f: &Fields,
    field: &str,
    check: fn(&str) -> Result<Option<String>, Error>,
) -> Result<Option<Option<String>>, Error> {
    if !f.sent(field) {
        return Ok(None);
    }
    if f.reset(field) {
        return Ok(Some(None));
    }
    check(f.str(field)?).map(Some)
}

/// §3.6.
pub async fn update_user(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let directory = body_uuid(&f, "directoryId")?;
    let profile = ProfileId(body_uuid(&f, "profileId")?);
    let update = MemberUpdate {
        display_name: change(&f, "displayName", dir::check_display_name)?,
        email: change(&f, "email", dir::check_email)?,
        role: f
            .opt_str("role")?
            .map(|r| dir::parse_given_role("role", r))
            .transpose()?,
        status: f
            .opt_str("status")?
            .map(|s| {
                MemberStatus::parse(s.trim()).ok_or_else(|| {
                    Error::new(Reason::DirectoryInvalidMemberFields)
                        .with_field("status")
                        .with_message("status is active, suspended or removed.")
                })
            })
            .transpose()?,
        attributes: if f.reset("attributes") {
            Some(Map::new())
        } else {
            attributes(&f)?
        },
    };
    let id = state
        .engine
        .update_directory_user(&caller, directory, profile, update)
        .await?;
    Ok(reply::accepted(id))
}

/// §3.7.
pub async fn invite(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let directory_id = body_uuid(&f, "directoryId")?;
    let username = f.opt_str("username")?.map(|u| u.trim().to_owned());
    let profile_id = f
        .opt_str("profileId")?
        .map(|p| uuid_of("profileId", p).map(ProfileId))
        .transpose()?;
    if username.is_some() == profile_id.is_some() {
        return Err(Error::new(Reason::ValidationAmbiguousShape)
            .with_message("Give exactly one of username and profileId.")
            .into());
    }
    let input = InviteInput {
        directory_id,
        username,
        profile_id,
        role: given_role(&f)?,
        message: bounded(&f, "message", 500)?,
    };
    let id = state.engine.invite_profile(&caller, input).await?;
    Ok(reply::accepted(id))
}

/// §3.9.
pub async fn invites(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let directory = q
        .opt_str("directoryId")?
        .map(|d| uuid_of("directoryId", d))
        .transpose()?;
    let f = filters(&q, &["status"])?;
    let status = match filter(&f, "status").map(str::trim) {
        None => Some(InvitationStatus::Pending),
        Some("all") => None,
        Some(s) => Some(
            InvitationStatus::parse(s).ok_or_else(|| Error::invalid_format("filters[status]"))?,
        ),
    };
    let (items, total) = state
        .engine
        .directory_invitations(&caller, directory, status, page)
        .await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

/// §3.10.
pub async fn process(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let id = body_uuid(&f, "invitationId")?;
    let accept = match f.str("decision")?.trim() {
        "accept" => true,
        "decline" => false,
        _ => {
            return Err(Error::new(Reason::DirectoryInvalidDecision)
                .with_field("decision")
                .into());
        }
    };
    let command = state.engine.process_invitation(&caller, id, accept).await?;
    Ok(reply::accepted(command))
}

/// §3.11.
pub async fn profile(
    State(state): State<AppState>,
    Path((directory, profile)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let directory = uuid_of("directoryId", &directory)?;
    let profile = ProfileId(uuid_of("profileId", &profile)?);
    Ok(reply::ok(
        &state
            .engine
            .directory_profile(&caller, directory, profile)
            .await?,
    ))
}

/// §3.12.
pub async fn users(
    State(state): State<AppState>,
    Path(directory): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let directory = uuid_of("directoryId", &directory)?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let f = filters(&q, &["role", "kind", "status", "username"])?;
    let statuses = match filter(&f, "status").map(str::trim) {
        None => vec![MemberStatus::Active],
        Some("all") => Vec::new(),
        Some(s) => {
            vec![MemberStatus::parse(s).ok_or_else(|| Error::invalid_format("filters[status]"))?]
        }
    };
    let member_filter = MemberFilter {
        role: parsed(filter(&f, "role"), "filters[role]", Role::parse)?,
        kind: parsed(filter(&f, "kind"), "filters[kind]", Kind::parse)?,
        statuses,
        username: filter(&f, "username").map(Match::exact_or_prefix),
    };
    let (items, total) = state
        .engine
        .directory_users(&caller, directory, member_filter, page)
        .await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

/// §3.13.
pub async fn profiles_info(
    State(state): State<AppState>,
    Path(directory): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let directory = uuid_of("directoryId", &directory)?;
    let q = query(&uri)?;
    let page = page(&q)?;
    Ok(reply::ok(
        &state
            .engine
            .directory_profiles_info(&caller, directory, page)
            .await?,
    ))
}

/// §3.14.
pub async fn create_device(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let directory = body_uuid(&f, "directoryId")?;
    let profile = ProfileId(body_uuid(&f, "profileId")?);
    let name = f.str("deviceName")?;
    let approve = f.opt_bool("approve")?.unwrap_or(true);
    let id = state
        .engine
        .create_profile_device(
            &caller,
            directory,
            profile,
            name,
            f.opt_str("description")?,
            f.opt_str("publicKey")?,
            approve,
        )
        .await?;
    Ok(reply::accepted(id))
}

/// §3.15.
pub async fn add_storage(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let directory = body_uuid(&f, "directoryId")?;
    let profile = ProfileId(body_uuid(&f, "profileId")?);
    let device = f.str("deviceIdentifier")?;
    let id = state
        .engine
        .add_directory_storage(&caller, directory, profile, device)
        .await?;
    Ok(reply::accepted(id))
}

/// §3.16.
pub async fn devices(
    State(state): State<AppState>,
    Path(directory): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let directory = uuid_of("directoryId", &directory)?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let f = filters(&q, &["profileId", "role", "status"])?;
    let profile = filter(&f, "profileId")
        .map(|p| uuid_of("filters[profileId]", p).map(ProfileId))
        .transpose()?;
    let statuses = match filter(&f, "status") {
        None => vec![DeviceStatus::Pending, DeviceStatus::Approved],
        Some("all") => DeviceStatus::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| DeviceStatus::parse(s).ok_or_else(|| Error::invalid_format("filters[status]")))
            .collect::<Result<_, _>>()?,
    };
    let role = filter(&f, "role").map(str::to_owned);
    if role
        .as_deref()
        .is_some_and(|r| !matches!(r, "storage" | "authenticator" | "none"))
    {
        return Err(Error::invalid_format("filters[role]").into());
    }
    let device_filter = DeviceFilter {
        statuses,
        role,
        ..DeviceFilter::default()
    };
    let (items, total) = state
        .engine
        .directory_devices(&caller, directory, profile, device_filter, page)
        .await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

/// §3.17.
pub async fn voting_pool(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let voters = match f.opt_str_list("voterProfileIds")? {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .map(|s| uuid_of("voterProfileIds", s).map(ProfileId))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let input = DirectoryPoolInput {
        directory_id: body_uuid(&f, "directoryId")?,
        title: f.str("title")?.to_owned(),
        question: f.str("question")?.to_owned(),
        voters,
        strategy: f.opt_str("strategy")?.map(str::to_owned),
        percentage: f.opt_int("percentageRequired")?,
        quorum_size: f.opt_int("quorumSize")?,
        time_limit: f.opt_int("timeLimit")?,
        attempts: f.opt_int("numberOfAttempts")?,
        nonce: f.opt_str("nonce")?.map(str::to_owned),
    };
    let id = state.engine.create_directory_voting(&caller, input).await?;
    Ok(super::pools::pool_accepted(id))
}
