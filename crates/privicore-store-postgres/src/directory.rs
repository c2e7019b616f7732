//! Directory rows: directories, memberships and invitations; and the effects that write
//! them.

use crate::data::push_match;
use crate::db::{self, Sql, is_unique_violation, unavailable};
use crate::rows::{self, Col, corrupt};
use privicore_domain::data_token::{Match, Page};
use privicore_domain::directory::{
    Directory, DirectoryCounts, DirectoryEffect, Invitation, InvitationScope, InvitationStatus,
    Kind, MemberFilter, MemberStatus, Membership, ProfileActivity, Role, name_key,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{ProfileId, Reason, Timestamp};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

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

fn directory(r: &PgRow) -> Result<Directory, StoreError> {
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

fn member(r: &PgRow) -> Result<Membership, StoreError> {
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

fn invitation(r: &PgRow) -> Result<Invitation, StoreError> {
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
        processed_at: rows::ts(r, "processed_at")?,
    })
}

const MEMBER_COLUMNS: &str = "m.directory_id, m.profile_id, m.role, m.kind, m.status, \
     m.display_name, m.email, m.attributes, m.joined_at, m.updated_at AS m_updated_at";

pub async fn by_id(c: &mut PgConnection, id: Uuid) -> Result<Option<Directory>, StoreError> {
    db::one(
        c,
        sqlx::query("SELECT * FROM directories WHERE id = $1").bind(id.to_string()),
        directory,
    )
    .await
}

async fn run<T>(
    c: &mut PgConnection,
    select: &str,
    from_where: &Sql,
    order: &str,
    page: Page,
    convert: fn(&PgRow) -> Result<T, StoreError>,
) -> Result<(Vec<T>, u64), StoreError> {
    let mut count = from_where.clone();
    count.text = format!("SELECT COUNT(*) {}", from_where.text);
    let total = db::count(&mut *c, count.query()).await?;
    let mut q = from_where.clone();
    q.text = format!("SELECT {select} {}", from_where.text);
    q.push(order);
    q.push(" LIMIT ")
        .bind(page.per_page as i64)
        .push(" OFFSET ")
        .bind(page.offset() as i64);
    let items = db::all(c, q.query(), convert).await?;
    Ok((items, total))
}

pub async fn owned(
    c: &mut PgConnection,
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
    .await
}

fn directory_and_member(r: &PgRow) -> Result<(Directory, Membership), StoreError> {
    Ok((directory(r)?, member(r)?))
}

pub async fn assigned(
    c: &mut PgConnection,
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
    w.push(" AND m.status = ").bind(status.as_str());
    if let Some(r) = role {
        w.push(" AND m.role = ").bind(r.as_str());
    }
    run(
        c,
        &format!("d.*, {MEMBER_COLUMNS}"),
        &w,
        " ORDER BY d.created_at DESC, d.id DESC",
        page,
        directory_and_member,
    )
    .await
}

pub async fn membership(
    c: &mut PgConnection,
    dir: Uuid,
    who: ProfileId,
) -> Result<Option<Membership>, StoreError> {
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM directory_members m \
         WHERE m.directory_id = $1 AND m.profile_id = $2"
    );
    db::one(
        c,
        sqlx::query(&sql)
            .bind(dir.to_string())
            .bind(who.to_string()),
        member,
    )
    .await
}

pub async fn managed_membership(
    c: &mut PgConnection,
    who: ProfileId,
) -> Result<Option<Membership>, StoreError> {
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM directory_members m \
         WHERE m.profile_id = $1 AND m.kind = 'managed'"
    );
    db::one(c, sqlx::query(&sql).bind(who.to_string()), member).await
}

pub async fn members(
    c: &mut PgConnection,
    dir: Uuid,
    f: &MemberFilter,
    page: Page,
) -> Result<(Vec<Membership>, u64), StoreError> {
    let mut w = Sql::new(
        "FROM directory_members m JOIN profiles p ON p.id = m.profile_id WHERE m.directory_id = ",
    );
    w.bind(dir.to_string());
    if let Some(r) = f.role {
        w.push(" AND m.role = ").bind(r.as_str());
    }
    if let Some(k) = f.kind {
        w.push(" AND m.kind = ").bind(k.as_str());
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
    .await
}

pub async fn counts(
    c: &mut PgConnection,
    dir: Uuid,
    now: Timestamp,
) -> Result<DirectoryCounts, StoreError> {
    let d = dir.to_string();
    let active = |extra: &str| {
        format!(
            "SELECT COUNT(*) FROM directory_members WHERE directory_id = $1 AND status = 'active'{extra}"
        )
    };
    let (all, managed, invited) = (
        active(""),
        active(" AND kind = 'managed'"),
        active(" AND kind = 'invited'"),
    );
    Ok(DirectoryCounts {
        users: db::count(&mut *c, sqlx::query(&all).bind(&d)).await?,
        managed_users: db::count(&mut *c, sqlx::query(&managed).bind(&d)).await?,
        invited_users: db::count(&mut *c, sqlx::query(&invited).bind(&d)).await?,
        pending_invitations: db::count(
            &mut *c,
            sqlx::query(
                "SELECT COUNT(*) FROM directory_invitations
                 WHERE directory_id = $1 AND status = 'pending' AND expires_at > $2",
            )
            .bind(&d)
            .bind(now.unix()),
        )
        .await?,
        devices: db::count(
            c,
            sqlx::query(
                "SELECT COUNT(*) FROM devices dv JOIN directory_members m ON m.profile_id = dv.profile_id
                 WHERE m.directory_id = $1 AND m.kind = 'managed' AND m.status != 'removed'
                   AND dv.status != 'removed'",
            )
            .bind(&d),
        )
        .await?,
    })
}

pub async fn activity(c: &mut PgConnection, who: ProfileId) -> Result<ProfileActivity, StoreError> {
    let p = who.to_string();
    let devices = |extra: &str| {
        format!("SELECT COUNT(*) FROM devices WHERE profile_id = $1 AND status != 'removed'{extra}")
    };
    let (all, storage, authenticators) = (
        devices(""),
        devices(" AND (',' || roles || ',') LIKE '%,storage,%'"),
        devices(" AND (',' || roles || ',') LIKE '%,authenticator,%'"),
    );
    let last: Option<i64> = db::one(
        &mut *c,
        sqlx::query(
            "SELECT MAX(issued_at) AS last FROM auth_tokens WHERE profile_id = $1 AND application_id IS NULL",
        )
        .bind(&p),
        |r| r.col::<Option<i64>>("last"),
    )
    .await?
    .flatten();
    Ok(ProfileActivity {
        devices: db::count(&mut *c, sqlx::query(&all).bind(&p)).await?,
        storage: db::count(&mut *c, sqlx::query(&storage).bind(&p)).await?,
        authenticators: db::count(c, sqlx::query(&authenticators).bind(&p)).await?,
        last_authenticated_at: last.map(Timestamp),
    })
}

pub async fn invitation_by_id(
    c: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Invitation>, StoreError> {
    db::one(
        c,
        sqlx::query("SELECT * FROM directory_invitations WHERE id = $1").bind(id.to_string()),
        invitation,
    )
    .await
}

pub async fn invitations(
    c: &mut PgConnection,
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
            w.push(" AND status = ").bind(s.as_str());
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
    .await
}

/// Drops memberships removed before `before` and invitations that ended before it
/// (declined, accepted, or expired unanswered); the number of rows dropped. Each
/// statement stands alone: a row another engine changes meanwhile is judged as it is then.
pub async fn purge(c: &mut PgConnection, before: Timestamp) -> Result<u64, StoreError> {
    let at = before.unix();
    let mut total = 0;
    for sql in [
        "DELETE FROM directory_members WHERE status = 'removed' AND updated_at < $1",
        "DELETE FROM directory_invitations WHERE status <> 'pending' AND processed_at < $1",
        "DELETE FROM directory_invitations WHERE status = 'pending' AND expires_at < $1",
    ] {
        total += db::exec(&mut *c, sqlx::query(sql).bind(at)).await?;
    }
    Ok(total)
}

fn conflict_if_none(n: u64, reason: Reason) -> Result<u64, StoreError> {
    if n == 0 {
        Err(StoreError::Conflict(reason))
    } else {
        Ok(n)
    }
}

async fn put_member(c: &mut PgConnection, m: &Membership) -> Result<u64, StoreError> {
    db::exec(
        c,
        sqlx::query(
            "INSERT INTO directory_members (directory_id, profile_id, role, kind, status, display_name,
               email, attributes, joined_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (directory_id, profile_id) DO UPDATE SET role = excluded.role,
               kind = excluded.kind, status = excluded.status, display_name = excluded.display_name,
               email = excluded.email, attributes = excluded.attributes, joined_at = excluded.joined_at,
               updated_at = excluded.updated_at",
        )
        .bind(m.directory_id.to_string())
        .bind(m.profile_id.to_string())
        .bind(m.role.as_str())
        .bind(m.kind.as_str())
        .bind(m.status.as_str())
        .bind(&m.display_name)
        .bind(&m.email)
        .bind(text(&m.attributes))
        .bind(m.joined_at.unix())
        .bind(m.updated_at.unix()),
    )
    .await
}

pub async fn apply(c: &mut PgConnection, effect: &DirectoryEffect) -> Result<u64, StoreError> {
    match effect {
        DirectoryEffect::Create(d, owner) => {
            let n = sqlx::query(
                "INSERT INTO directories (id, name, name_key, description, owner_id, meta,
                   created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(d.id.to_string())
            .bind(&d.name)
            .bind(name_key(&d.name))
            .bind(&d.description)
            .bind(d.owner.to_string())
            .bind(text(&d.meta))
            .bind(d.created_at.unix())
            .bind(d.updated_at.unix())
            .execute(&mut *c)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Reason::DirectoryNameTaken)
                } else {
                    unavailable(e)
                }
            })?
            .rows_affected();
            put_member(c, owner).await?;
            Ok(n)
        }
        DirectoryEffect::SetMeta {
            directory_id,
            meta,
            at,
        } => {
            db::exec(
                c,
                sqlx::query("UPDATE directories SET meta = $1, updated_at = $2 WHERE id = $3")
                    .bind(text(meta))
                    .bind(at.unix())
                    .bind(directory_id.to_string()),
            )
            .await
        }
        DirectoryEffect::PutMember(m) => put_member(c, m).await,
        DirectoryEffect::Invite(i) => {
            // Two engines inviting the same profile at once would both find no pending
            // invitation; the directory's row lock puts the second after the first.
            db::exec(
                &mut *c,
                sqlx::query("SELECT 1 FROM directories WHERE id = $1 FOR UPDATE")
                    .bind(i.directory_id.to_string()),
            )
            .await?;
            let pending = db::count(
                &mut *c,
                sqlx::query(
                    "SELECT COUNT(*) FROM directory_invitations
                     WHERE directory_id = $1 AND invited_id = $2 AND status = 'pending' AND expires_at > $3",
                )
                .bind(i.directory_id.to_string())
                .bind(i.invited.to_string())
                .bind(i.created_at.unix()),
            )
            .await?;
            if pending > 0 {
                return Err(StoreError::Conflict(Reason::DirectoryInvitationPending));
            }
            db::exec(
                c,
                sqlx::query(
                    "INSERT INTO directory_invitations (id, directory_id, invited_id, invited_by, role,
                       message, status, created_at, expires_at, processed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(i.id.to_string())
                .bind(i.directory_id.to_string())
                .bind(i.invited.to_string())
                .bind(i.invited_by.to_string())
                .bind(i.role.as_str())
                .bind(&i.message)
                .bind(i.status.as_str())
                .bind(i.created_at.unix())
                .bind(i.expires_at.unix())
                .bind(i.processed_at.map(|t| t.unix())),
            )
            .await
        }
        DirectoryEffect::Process {
            invitation_id,
            status,
            at,
        } => conflict_if_none(
            db::exec(
                c,
                sqlx::query(
                    "UPDATE directory_invitations SET status = $1, processed_at = $2
                     WHERE id = $3 AND status = 'pending'",
                )
                .bind(status.as_str())
                .bind(at.unix())
                .bind(invitation_id.to_string()),
            )
            .await?,
            Reason::DirectoryInvitationNotPending,
        ),
        DirectoryEffect::SetProfileStatus { profile_id, status } => {
            db::exec(
                c,
                sqlx::query("UPDATE profiles SET status = $1 WHERE id = $2")
                    .bind(status.as_str())
                    .bind(profile_id.to_string()),
            )
            .await
        }
    }
}
