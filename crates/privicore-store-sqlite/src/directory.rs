//! Directory rows (migration 0015): directories, memberships and invitations; and the
//! effects that write them.

use crate::data::{Sql, push_match};
use crate::db::{self, is_unique_violation, unavailable};
use crate::rows::{self, Col};
use privicore_domain::data_token::{Match, Page};
use privicore_domain::directory::{
    Directory, DirectoryCounts, DirectoryEffect, Invitation, InvitationScope, InvitationStatus,
    Kind, MemberFilter, MemberStatus, Membership, ProfileActivity, Role, name_key,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{ProfileId, Reason, Timestamp};
use rusqlite::{Connection, Row, params, params_from_iter};
use serde_json::{Map, Value};
use uuid::Uuid;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what}"))
}

fn object(text: &str, what: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(corrupt(what)),
    }
}

fn text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

fn profile(text: &str) -> Result<ProfileId, StoreError> {
    Ok(ProfileId(rows::uuid(text)?))
}

fn directory(r: &Row<'_>) -> Result<Directory, StoreError> {
    Ok(Directory {
        id: rows::uuid(&r.col::<String>("id")?)?,
        name: r.col("name")?,
        description: r.col("description")?,
        owner: profile(&r.col::<String>("owner_id")?)?,
        meta: object(&r.col::<String>("meta")?, "directory meta")?,
        created_at: Timestamp(r.col("created_at")?),
        updated_at: Timestamp(r.col("updated_at")?),
    })
}

fn member(r: &Row<'_>) -> Result<Membership, StoreError> {
    Ok(Membership {
        directory_id: rows::uuid(&r.col::<String>("directory_id")?)?,
        profile_id: profile(&r.col::<String>("profile_id")?)?,
        role: Role::parse(&r.col::<String>("role")?).ok_or_else(|| corrupt("member role"))?,
        kind: Kind::parse(&r.col::<String>("kind")?).ok_or_else(|| corrupt("member kind"))?,
        status: MemberStatus::parse(&r.col::<String>("status")?)
            .ok_or_else(|| corrupt("member status"))?,
        display_name: r.col("display_name")?,
        email: r.col("email")?,
        attributes: object(&r.col::<String>("attributes")?, "member attributes")?,
        joined_at: Timestamp(r.col("joined_at")?),
        updated_at: Timestamp(r.col("m_updated_at")?),
    })
}

fn invitation(r: &Row<'_>) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: rows::uuid(&r.col::<String>("id")?)?,
        directory_id: rows::uuid(&r.col::<String>("directory_id")?)?,
        invited: profile(&r.col::<String>("invited_id")?)?,
        invited_by: profile(&r.col::<String>("invited_by")?)?,
        role: Role::parse(&r.col::<String>("role")?).ok_or_else(|| corrupt("invitation role"))?,
        message: r.col("message")?,
        status: InvitationStatus::parse(&r.col::<String>("status")?)
            .ok_or_else(|| corrupt("invitation status"))?,
        created_at: Timestamp(r.col("created_at")?),
        expires_at: Timestamp(r.col("expires_at")?),
        processed_at: r.col::<Option<i64>>("processed_at")?.map(Timestamp),
    })
}

const MEMBER_COLUMNS: &str = "m.directory_id, m.profile_id, m.role, m.kind, m.status, \
     m.display_name, m.email, m.attributes, m.joined_at, m.updated_at AS m_updated_at";

pub fn by_id(c: &Connection, id: Uuid) -> Result<Option<Directory>, StoreError> {
    db::one(
        c,
        "SELECT * FROM directories WHERE id = ?",
        [id.to_string()],
        directory,
    )
}

fn limit(q: &mut Sql, page: Page) {
    q.push(" LIMIT ")
        .bind(page.per_page as i64)
        .push(" OFFSET ")
        .bind(page.offset() as i64);
}

fn run<T>(
    c: &Connection,
    select: &str,
    from_where: &Sql,
    order: &str,
    page: Page,
    convert: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<(Vec<T>, u64), StoreError> {
    let total = db::count(
        c,
        &format!("SELECT COUNT(*) {}", from_where.text),
        params_from_iter(from_where.values.clone()),
    )?;
    let mut q = Sql::new(format!("SELECT {select} {}", from_where.text));
    q.values = from_where.values.clone();
    q.push(order);
    limit(&mut q, page);
    let items = db::all(c, &q.text, params_from_iter(q.values), convert)?;
    Ok((items, total))
}

pub fn owned(
    c: &Connection,
    owner: ProfileId,
    name: Option<&Match>,
    page: Page,
) -> Result<(Vec<Directory>, u64), StoreError> {
    let mut w = Sql::new("FROM directories WHERE owner_id = ");
    w.bind(owner.to_string());
    if let Some(m) = name {
        push_match(&mut w, "name", m);
    }
    run(
        c,
        "*",
        &w,
        " ORDER BY created_at DESC, id DESC",
        page,
        directory,
    )
}

fn directory_and_member(r: &Row<'_>) -> Result<(Directory, Membership), StoreError> {
    Ok((directory(r)?, member(r)?))
}

pub fn assigned(
    c: &Connection,
    who: ProfileId,
    role: Option<Role>,
    status: MemberStatus,
    page: Page,
) -> Result<(Vec<(Directory, Membership)>, u64), StoreError> {
    let mut w = Sql::new(
        "FROM directory_members m JOIN directories d ON d.id = m.directory_id \
         WHERE m.role != 'owner' AND m.profile_id = ",
    );
    w.bind(who.to_string());
    w.push(" AND m.status = ").bind(status.as_str().to_owned());
    if let Some(r) = role {
        w.push(" AND m.role = ").bind(r.as_str().to_owned());
    }
    run(
        c,
        &format!("d.*, {MEMBER_COLUMNS}"),
        &w,
        " ORDER BY d.created_at DESC, d.id DESC",
        page,
        directory_and_member,
    )
}

pub fn membership(
    c: &Connection,
    dir: Uuid,
    who: ProfileId,
) -> Result<Option<Membership>, StoreError> {
    db::one(
        c,
        &format!(
            "SELECT {MEMBER_COLUMNS} FROM directory_members m \
             WHERE m.directory_id = ? AND m.profile_id = ?"
        ),
        [dir.to_string(), who.to_string()],
        member,
    )
}

pub fn managed_membership(
    c: &Connection,
    who: ProfileId,
) -> Result<Option<Membership>, StoreError> {
    db::one(
        c,
        &format!(
            "SELECT {MEMBER_COLUMNS} FROM directory_members m \
             WHERE m.profile_id = ? AND m.kind = 'managed'"
        ),
        [who.to_string()],
        member,
    )
}

pub fn members(
    c: &Connection,
    dir: Uuid,
    f: &MemberFilter,
    page: Page,
) -> Result<(Vec<Membership>, u64), StoreError> {
    let mut w = Sql::new(
        "FROM directory_members m JOIN profiles p ON p.id = m.profile_id WHERE m.directory_id = ",
    );
    w.bind(dir.to_string());
    if let Some(r) = f.role {
        w.push(" AND m.role = ").bind(r.as_str().to_owned());
    }
    if let Some(k) = f.kind {
        w.push(" AND m.kind = ").bind(k.as_str().to_owned());
    }
    if !f.statuses.is_empty() {
        w.push(" AND m.status IN ")
            .bind_list(f.statuses.iter().map(|s| s.as_str()));
    }
    if let Some(m) = &f.username {
        push_match(&mut w, "p.username", m);
    }
    run(
        c,
        MEMBER_COLUMNS,
        &w,
        " ORDER BY m.joined_at ASC, m.profile_id ASC",
        page,
        member,
    )
}

pub fn counts(c: &Connection, dir: Uuid, now: Timestamp) -> Result<DirectoryCounts, StoreError> {
    let d = dir.to_string();
    let active = |extra: &str| {
        db::count(
            c,
            &format!(
                "SELECT COUNT(*) FROM directory_members WHERE directory_id = ? AND status = 'active'{extra}"
            ),
            [d.clone()],
        )
    };
    Ok(DirectoryCounts {
        users: active("")?,
        managed_users: active(" AND kind = 'managed'")?,
        invited_users: active(" AND kind = 'invited'")?,
        pending_invitations: db::count(
            c,
            "SELECT COUNT(*) FROM directory_invitations
             WHERE directory_id = ? AND status = 'pending' AND expires_at > ?",
            params![d, now.unix()],
        )?,
        devices: db::count(
            c,
            "SELECT COUNT(*) FROM devices dv JOIN directory_members m ON m.profile_id = dv.profile_id
             WHERE m.directory_id = ? AND m.kind = 'managed' AND m.status != 'removed'
               AND dv.status != 'removed'",
            [d.clone()],
        )?,
    })
}

pub fn activity(c: &Connection, who: ProfileId) -> Result<ProfileActivity, StoreError> {
    let p = who.to_string();
    let devices = |extra: &str| {
        db::count(
            c,
            &format!(
                "SELECT COUNT(*) FROM devices WHERE profile_id = ? AND status != 'removed'{extra}"
            ),
            [p.clone()],
        )
    };
    let last: Option<i64> = db::one(
        c,
        "SELECT MAX(issued_at) AS last FROM auth_tokens WHERE profile_id = ? AND application_id IS NULL",
        [p.clone()],
        |r| r.col::<Option<i64>>("last"),
    )?
    .flatten();
    Ok(ProfileActivity {
        devices: devices("")?,
        storage: devices(" AND (',' || roles || ',') LIKE '%,storage,%'")?,
        authenticators: devices(" AND (',' || roles || ',') LIKE '%,authenticator,%'")?,
        last_authenticated_at: last.map(Timestamp),
    })
}

pub fn invitation_by_id(c: &Connection, id: Uuid) -> Result<Option<Invitation>, StoreError> {
    db::one(
        c,
        "SELECT * FROM directory_invitations WHERE id = ?",
        [id.to_string()],
        invitation,
    )
}

pub fn invitations(
    c: &Connection,
    scope: InvitationScope,
    status: Option<InvitationStatus>,
    now: Timestamp,
    page: Page,
) -> Result<(Vec<Invitation>, u64), StoreError> {
    let mut w = match scope {
        InvitationScope::Directory(d) => {
            let mut w = Sql::new("FROM directory_invitations WHERE directory_id = ");
            w.bind(d.to_string());
            w
        }
        InvitationScope::Invitee(p) => {
            let mut w = Sql::new("FROM directory_invitations WHERE invited_id = ");
            w.bind(p.to_string());
            w
        }
    };
    match status {
        None => {}
        Some(InvitationStatus::Pending) => {
            w.push(" AND status = 'pending' AND expires_at > ")
                .bind(now.unix());
        }
        Some(InvitationStatus::Expired) => {
            w.push(" AND (status = 'expired' OR (status = 'pending' AND expires_at <= ")
                .bind(now.unix())
                .push("))");
        }
        Some(s) => {
            w.push(" AND status = ").bind(s.as_str().to_owned());
        }
    }
    run(
        c,
        "*",
        &w,
        " ORDER BY created_at DESC, id DESC",
        page,
        invitation,
    )
}

/// Drops memberships removed before `before` and invitations that ended before it
/// (declined, accepted, or expired unanswered); the number of rows dropped.
pub fn purge(c: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    let at = before.unix();
    let members = db::exec(
        c,
        "DELETE FROM directory_members WHERE status = 'removed' AND updated_at < ?",
        params![at],
    )?;
    let processed = db::exec(
        c,
        "DELETE FROM directory_invitations WHERE status <> 'pending' AND processed_at < ?",
        params![at],
    )?;
    let expired = db::exec(
        c,
        "DELETE FROM directory_invitations WHERE status = 'pending' AND expires_at < ?",
        params![at],
    )?;
    Ok(members + processed + expired)
}

fn conflict_if_none(n: u64, reason: Reason) -> Result<u64, StoreError> {
    if n == 0 {
        Err(StoreError::Conflict(reason))
    } else {
        Ok(n)
    }
}

fn put_member(c: &Connection, m: &Membership) -> Result<u64, StoreError> {
    db::exec(
        c,
        "INSERT INTO directory_members (directory_id, profile_id, role, kind, status, display_name,
           email, attributes, joined_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (directory_id, profile_id) DO UPDATE SET role = excluded.role,
           kind = excluded.kind, status = excluded.status, display_name = excluded.display_name,
           email = excluded.email, attributes = excluded.attributes, joined_at = excluded.joined_at,
           updated_at = excluded.updated_at",
        params![
            m.directory_id.to_string(),
            m.profile_id.to_string(),
            m.role.as_str(),
            m.kind.as_str(),
            m.status.as_str(),
            m.display_name,
            m.email,
            text(&m.attributes),
            m.joined_at.unix(),
            m.updated_at.unix(),
        ],
    )
}

pub fn apply(c: &Connection, effect: &DirectoryEffect) -> Result<u64, StoreError> {
    match effect {
        DirectoryEffect::Create(d, owner) => {
            let n = c
                .prepare_cached(
                    "INSERT INTO directories (id, name, name_key, description, owner_id, meta,
                       created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        d.id.to_string(),
                        d.name,
                        name_key(&d.name),
                        d.description,
                        d.owner.to_string(),
                        text(&d.meta),
                        d.created_at.unix(),
                        d.updated_at.unix(),
                    ])
                })
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict(Reason::DirectoryNameTaken)
                    } else {
                        unavailable(e)
                    }
                })?;
            put_member(c, owner)?;
            Ok(n as u64)
        }
        DirectoryEffect::SetMeta {
            directory_id,
            meta,
            at,
        } => db::exec(
            c,
            "UPDATE directories SET meta = ?, updated_at = ? WHERE id = ?",
            params![text(meta), at.unix(), directory_id.to_string()],
        ),
        DirectoryEffect::PutMember(m) => put_member(c, m),
        DirectoryEffect::Invite(i) => {
            let pending = db::count(
                c,
                "SELECT COUNT(*) FROM directory_invitations
                 WHERE directory_id = ? AND invited_id = ? AND status = 'pending' AND expires_at > ?",
                params![
                    i.directory_id.to_string(),
                    i.invited.to_string(),
                    i.created_at.unix()
                ],
            )?;
            if pending > 0 {
                return Err(StoreError::Conflict(Reason::DirectoryInvitationPending));
            }
            db::exec(
                c,
                "INSERT INTO directory_invitations (id, directory_id, invited_id, invited_by, role,
                   message, status, created_at, expires_at, processed_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    i.id.to_string(),
                    i.directory_id.to_string(),
                    i.invited.to_string(),
                    i.invited_by.to_string(),
                    i.role.as_str(),
                    i.message,
                    i.status.as_str(),
                    i.created_at.unix(),
                    i.expires_at.unix(),
                    i.processed_at.map(|t| t.unix()),
                ],
            )
        }
        DirectoryEffect::Process {
            invitation_id,
            status,
            at,
        } => conflict_if_none(
            db::exec(
                c,
                "UPDATE directory_invitations SET status = ?, processed_at = ?
                 WHERE id = ? AND status = 'pending'",
                params![status.as_str(), at.unix(), invitation_id.to_string()],
            )?,
            Reason::DirectoryInvitationNotPending,
        ),
        DirectoryEffect::SetProfileStatus { profile_id, status } => db::exec(
            c,
            "UPDATE profiles SET status = ? WHERE id = ?",
            params![status.as_str(), profile_id.to_string()],
        ),
    }
}
