//! Directories, memberships and invitations: names unique per owner, members read back
//! field for field and in join order, one pending invitation per profile and directory,
//! single processing, expiry by time, and the profile status a directory sets.

use super::*;
use crate::Reason;
use crate::data_token::Page;
use crate::directory::{
    Directory, DirectoryEffect, Invitation, InvitationScope, InvitationStatus, Kind, MemberFilter,
    MemberStatus, Membership, Role,
};
use crate::ports::StoreError;
use serde_json::Map;
use uuid::Uuid;

fn dir(effect: DirectoryEffect) -> Effect {
    Effect::Directory(Box::new(effect))
}

fn conflict(result: Result<Vec<u64>, StoreError>) -> Reason {
    match result {
        Err(StoreError::Conflict(reason)) => reason,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

const ALL: Page = Page {
    page: 1,
    per_page: 100,
};

fn member(directory: Uuid, profile: &Profile, role: Role, kind: Kind, at: Timestamp) -> Membership {
    Membership {
        directory_id: directory,
        profile_id: profile.id,
        role,
        kind,
        status: MemberStatus::Active,
        display_name: None,
        email: None,
        attributes: Map::new(),
        joined_at: at,
        updated_at: at,
    }
}

fn directory(owner: &Profile, name: &str, at: Timestamp) -> (Directory, Membership) {
    let id = Uuid::now_v7();
    let d = Directory {
        id,
        name: name.to_owned(),
        description: Some("d".into()),
        owner: owner.id,
        meta: json!({ "a": 1 }).as_object().cloned().unwrap(),
        created_at: at,
        updated_at: at,
    };
    let m = member(id, owner, Role::Owner, Kind::Owner, at);
    (d, m)
}

pub(super) async fn directories_memberships_and_invitations(store: &dyn MetadataStore) {
    let now = Timestamp::now();
    let owner = stored_profile(store, "dir-owner@example.com").await;
    let bob = stored_profile(store, "dir-bob@example.com").await;
    let carol = stored_profile(store, "dir-carol@example.com").await;

    let (d, owner_m) = directory(&owner, "Acme Finance", now);
    store
        .apply(
            &[dir(DirectoryEffect::Create(d.clone(), owner_m.clone()))],
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.directory(d.id).await.unwrap(), Some(d.clone()));
    // Names are unique per owner, ignoring case; another owner may reuse one.
    let (clash, clash_m) = directory(&owner, "ACME finance", now);
    assert_eq!(
        conflict(
            store
                .apply(&[dir(DirectoryEffect::Create(clash, clash_m))], None)
                .await
        ),
        Reason::DirectoryNameTaken
    );
    let (other, other_m) = directory(&bob, "Acme Finance", now);
    store
        .apply(
            &[dir(DirectoryEffect::Create(other.clone(), other_m))],
            None,
        )
        .await
        .unwrap();
    let (owned, total) = store.owned_directories(owner.id, None, ALL).await.unwrap();
    assert_eq!((owned, total), (vec![d.clone()], 1));

    // Meta replaces the stored object.
    let meta = json!({ "b": 2 }).as_object().cloned().unwrap();
    store
        .apply(
            &[dir(DirectoryEffect::SetMeta {
                directory_id: d.id,
                meta: meta.clone(),
                at: now,
            })],
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.directory(d.id).await.unwrap().unwrap().meta, meta);

    // Members read back field for field, in join order; assigned lists leave owners out.
    let mut bob_m = member(d.id, &bob, Role::Admin, Kind::Invited, now.plus_seconds(1));
    bob_m.display_name = Some("Bob".into());
    bob_m.email = Some("bob@example.com".into());
    bob_m.attributes = json!({ "team": "x" }).as_object().cloned().unwrap();
    store
        .apply(&[dir(DirectoryEffect::PutMember(bob_m.clone()))], None)
        .await
        .unwrap();
    assert_eq!(
        store.membership(d.id, bob.id).await.unwrap(),
        Some(bob_m.clone())
    );
    let (members, total) = store
        .members(d.id, &MemberFilter::default(), ALL)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(members, vec![owner_m.clone(), bob_m.clone()]);
    let admins = MemberFilter {
        role: Some(Role::Admin),
        ..MemberFilter::default()
    };
    assert_eq!(store.members(d.id, &admins, ALL).await.unwrap().1, 1);
    let (assigned, _) = store
        .assigned_directories(bob.id, None, MemberStatus::Active, ALL)
        .await
        .unwrap();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].0.id, d.id);
    assert_eq!(assigned[0].1, bob_m);
    assert!(
        store
            .assigned_directories(owner.id, None, MemberStatus::Active, ALL)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    // A put replaces the membership.
    let mut suspended = bob_m.clone();
    suspended.status = MemberStatus::Suspended;
    store
        .apply(&[dir(DirectoryEffect::PutMember(suspended.clone()))], None)
        .await
        .unwrap();
    assert_eq!(
        store.membership(d.id, bob.id).await.unwrap(),
        Some(suspended)
    );
    assert_eq!(store.directory_counts(d.id, now).await.unwrap().users, 1);

    // One pending invitation per profile and directory; processed once; expiry by time.
    let invitation = Invitation {
        id: Uuid::now_v7(),
        directory_id: d.id,
        invited: carol.id,
        invited_by: owner.id,
        role: Role::Member,
        message: Some("hi".into()),
        status: InvitationStatus::Pending,
        created_at: now,
        expires_at: now.plus_seconds(60),
        processed_at: None,
    };
    store
        .apply(&[dir(DirectoryEffect::Invite(invitation.clone()))], None)
        .await
        .unwrap();
    assert_eq!(
        store.invitation(invitation.id).await.unwrap(),
        Some(invitation.clone())
    );
    let twice = Invitation {
        id: Uuid::now_v7(),
        ..invitation.clone()
    };
    assert_eq!(
        conflict(
            store
                .apply(&[dir(DirectoryEffect::Invite(twice))], None)
                .await
        ),
        Reason::DirectoryInvitationPending
    );
    let pending = Some(InvitationStatus::Pending);
    let mine = InvitationScope::Invitee(carol.id);
    assert_eq!(
        store.invitations(mine, pending, now, ALL).await.unwrap().1,
        1
    );
    let later = now.plus_seconds(61);
    assert_eq!(
        store
            .invitations(mine, pending, later, ALL)
            .await
            .unwrap()
            .1,
        0
    );
    assert_eq!(
        store
            .invitations(mine, Some(InvitationStatus::Expired), later, ALL)
            .await
            .unwrap()
            .1,
        1
    );
    assert_eq!(
        store
            .directory_counts(d.id, now)
            .await
            .unwrap()
            .pending_invitations,
        1
    );
    let process = dir(DirectoryEffect::Process {
        invitation_id: invitation.id,
        status: InvitationStatus::Accepted,
        at: now,
    });
    store
        .apply(std::slice::from_ref(&process), None)
        .await
        .unwrap();
    assert_eq!(
        conflict(store.apply(&[process], None).await),
        Reason::DirectoryInvitationNotPending
    );
    let read = store.invitation(invitation.id).await.unwrap().unwrap();
    assert_eq!(read.status, InvitationStatus::Accepted);
    assert_eq!(read.processed_at, Some(now));
    assert_eq!(
        store
            .invitations(InvitationScope::Directory(d.id), None, now, ALL)
            .await
            .unwrap()
            .1,
        1
    );

    // A managed user's directory is found from the profile.
    let managed = member(d.id, &carol, Role::Member, Kind::Managed, now);
    assert_eq!(store.managed_membership(carol.id).await.unwrap(), None);
    store
        .apply(&[dir(DirectoryEffect::PutMember(managed.clone()))], None)
        .await
        .unwrap();
    assert_eq!(
        store.managed_membership(carol.id).await.unwrap(),
        Some(managed)
    );
    assert_eq!(store.managed_membership(bob.id).await.unwrap(), None);

    // The profile status a directory sets for its managed users.
    store
        .apply(
            &[dir(DirectoryEffect::SetProfileStatus {
                profile_id: carol.id,
                status: ProfileStatus::Suspended,
            })],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store.profile(carol.id).await.unwrap().unwrap().status,
        ProfileStatus::Suspended
    );
    assert_eq!(
        store.profile_activity(carol.id).await.unwrap(),
        crate::directory::ProfileActivity::default()
    );
}

/// The purge of §1.2: memberships removed before the cut and invitations that ended before
/// it go; active members, recent removals, pending and recently ended invitations stay.
pub(super) async fn directory_history_is_purged_after_its_retention(store: &dyn MetadataStore) {
    let t0 = Timestamp(1_800_000_000);
    let owner = stored_profile(store, "purge-owner@example.com").await;
    let old = stored_profile(store, "purge-old@example.com").await;
    let recent = stored_profile(store, "purge-recent@example.com").await;
    let (d, owner_m) = directory(&owner, "Purged", t0);
    let mut gone = member(d.id, &old, Role::Member, Kind::Invited, t0);
    gone.status = MemberStatus::Removed;
    let mut kept = member(d.id, &recent, Role::Member, Kind::Invited, t0);
    kept.status = MemberStatus::Removed;
    kept.updated_at = t0.plus_seconds(100);
    let invite = |who: &Profile, expires: i64| Invitation {
        id: Uuid::now_v7(),
        directory_id: d.id,
        invited: who.id,
        invited_by: owner.id,
        role: Role::Member,
        message: None,
        status: InvitationStatus::Pending,
        created_at: t0,
        expires_at: t0.plus_seconds(expires),
        processed_at: None,
    };
    let declined = invite(&old, 10);
    let expired = invite(&recent, 10);
    store
        .apply(
            &[
                dir(DirectoryEffect::Create(d.clone(), owner_m)),
                dir(DirectoryEffect::PutMember(gone)),
                dir(DirectoryEffect::PutMember(kept)),
                dir(DirectoryEffect::Invite(declined.clone())),
                dir(DirectoryEffect::Process {
                    invitation_id: declined.id,
                    status: InvitationStatus::Declined,
                    at: t0.plus_seconds(5),
                }),
                dir(DirectoryEffect::Invite(expired.clone())),
            ],
            None,
        )
        .await
        .unwrap();
    let members = |status| MemberFilter {
        statuses: vec![status],
        ..MemberFilter::default()
    };
    let count = |scope| store.invitations(scope, None, t0, ALL);
    // Before t0 + 5 only the old removal ended (the count also holds older checks' rows).
    assert!(
        store
            .purge_directory_history(t0.plus_seconds(5))
            .await
            .unwrap()
            >= 1
    );
    assert_eq!(
        store
            .members(d.id, &members(MemberStatus::Removed), ALL)
            .await
            .unwrap()
            .1,
        1
    );
    assert_eq!(count(InvitationScope::Directory(d.id)).await.unwrap().1, 2);
    // Past t0 + 10 the declined and the expired invitation go; the recent removal stays.
    store
        .purge_directory_history(t0.plus_seconds(11))
        .await
        .unwrap();
    assert_eq!(count(InvitationScope::Directory(d.id)).await.unwrap().1, 0);
    let left = store
        .members(d.id, &members(MemberStatus::Removed), ALL)
        .await
        .unwrap()
        .0;
    assert_eq!(
        left.iter().map(|m| m.profile_id).collect::<Vec<_>>(),
        vec![recent.id]
    );
    assert_eq!(
        store
            .members(d.id, &members(MemberStatus::Active), ALL)
            .await
            .unwrap()
            .1,
        1
    );
}
