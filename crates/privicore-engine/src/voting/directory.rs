//! Directory pools (docs/api/directory.md §3.17): the voters are member profiles, each
//! counted once; every approved authenticator of a voter profile gets a ballot, and the
//! first vote from any of them is the profile's.

use super::*;
use privicore_domain::data_token::Page;
use privicore_domain::directory::{Action, MemberFilter, MemberStatus, Standing};

/// The voters of a directory pool's next attempt: the listed profiles (or every active
/// member) with their approved authenticators. `strict` (the first attempt): a listed
/// profile that is not an active member fails the pool with `directory.user_not_found`;
/// later attempts skip it, as configurations skip devices that lost the role.
pub(super) async fn voters(
    core: &Core,
    pool: &Pool,
    strict: bool,
) -> Result<Result<Vec<(ProfileId, DeviceId)>, Reason>, StoreError> {
    let Some(directory) = pool.directory_id else {
        return Ok(Err(Reason::VotingNoEligibleAuthenticators));
    };
    let profiles: Vec<ProfileId> = if pool.voter_profiles.is_empty() {
        let active = MemberFilter {
            statuses: vec![MemberStatus::Active],
            ..MemberFilter::default()
        };
        let per_page = core.config.directories.members_per_directory.max(1);
        core.store
            .members(directory, &active, Page { page: 1, per_page })
            .await?
            .0
            .into_iter()
            .map(|m| m.profile_id)
            .collect()
    } else {
        let mut listed = Vec::with_capacity(pool.voter_profiles.len());
        for p in &pool.voter_profiles {
            let active = core
                .store
                .membership(directory, *p)
                .await?
                .is_some_and(|m| m.status == MemberStatus::Active);
            if active {
                listed.push(*p);
            } else if strict {
                return Ok(Err(Reason::DirectoryUserNotFound));
            }
        }
        listed
    };
    let mut candidates = Vec::with_capacity(profiles.len());
    for p in profiles {
        candidates.push((p, core.store.authenticators(p).await?));
    }
    Ok(pool.directory_voters(&candidates))
}

/// Create directory voting pool, when its command runs: the creator must still be the
/// directory's owner or admin; then the pool opens like a manual one.
pub(super) async fn open(core: &Core, command: &CommandRecord) -> Result<Gate, StoreError> {
    let CommandPayload::CreateDirectoryVoting {
        directory_id,
        title,
        question,
        voters: listed,
        rules,
        nonce,
    } = &command.payload
    else {
        return Ok(Gate::Run(None));
    };
    let guard = core.voting.lock(command.id.0).await;
    // Its pool opened before (a retry, or a release handed over twice): never reopen it.
    if !core.store.command_pools(command.id).await?.is_empty() {
        if finished_already(core, command).await? {
            return Ok(Gate::Finished);
        }
        core.voting.hold(command);
        drop(guard);
        return resolved_hold(core, command).await;
    }
    let at = now(core);
    let standing =
        crate::directory::standing(core.store.as_ref(), *directory_id, command.profile_id, at)
            .await?;
    match standing {
        Err(reason) => return Ok(Gate::Fail(reason, None)),
        Ok((_, s, _)) if !privicore_domain::directory::allowed(Action::CreateVotingPool, s) => {
            return Ok(Gate::Fail(Reason::DirectoryForbidden, None));
        }
        Ok(_) => {}
    }
    let pool = Pool {
        id: PoolId(command.id.0),
        profile_id: command.profile_id,
        origin: PoolOrigin::Directory,
        command_id: Some(command.id),
        policy_id: None,
        policy_name: None,
        event: None,
        title: title.clone(),
        question: question.clone(),
        nonce: nonce.clone(),
        attributes: json!({ "directoryId": directory_id.to_string() }),
        requested_by: requested_by(core, command).await?,
        voting_configuration_id: None,
        rules: rules.clone(),
        skip: Vec::new(),
        status: PoolStatus::Open,
        current_attempt: 1,
        created_at: at,
        resolved_at: None,
        failure_key: None,
        directory_id: Some(*directory_id),
        voter_profiles: listed.clone(),
    };
    let voters = match voters(core, &pool, true).await? {
        Ok(v) => v,
        Err(reason) => return Ok(Gate::Fail(reason, None)),
    };
    let details =
        json!({ "origin": "directory", "directory": directory_id.to_string(), "nonce": nonce });
    start_pool(core, command, pool, voters, details).await
}

/// Who besides its creator may read a directory pool (voting-and-policy.md §6.1.2): the
/// directory's active owner and admins, and the voter profiles (those it sent a ballot).
pub(super) async fn may_read(
    core: &Core,
    pool: &Pool,
    ballots: &[Ballot],
    profile: ProfileId,
) -> Result<bool, StoreError> {
    let Some(directory) = pool.directory_id else {
        return Ok(false);
    };
    if ballots.iter().any(|b| b.profile_id == profile) {
        return Ok(true);
    }
    let mine = core.store.membership(directory, profile).await?;
    Ok(matches!(
        Standing::of(mine.as_ref(), false),
        Standing::Owner | Standing::Admin
    ))
}
