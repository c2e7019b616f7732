//! Behaviour every [`MetadataStore`] adapter must show. Adapters call [`run_all`] from
//! their tests with a fresh, empty store.

use super::{MetadataStore, StoreError};
use crate::auth::{AuthToken, QrToken, TokenOwner};
use crate::command::{CommandPayload, CommandRecord, CommandState, Completion, Outcome};
use crate::data_token::{
    DataToken, EVENT_DELETED, EVENT_EXCHANGED, EVENT_REQUESTED, Match, Page, Replica, ReplicaState,
    TokenFilter, TokenStatus, TokenVersion, new_token,
};
use crate::device::{Device, DeviceCredentials, DeviceFilter, DeviceId, DeviceStatus};
use crate::effect::{DataEffect, Effect};
use crate::keys::EngineKeyRecord;
use crate::password::PasswordHash;
use crate::profile::{Profile, ProfileKind, ProfileStatus};
use crate::secret::TokenHash;
use crate::{CommandId, ProfileId, Timestamp};
use serde_json::json;

mod accounts;
mod audit;
mod counters;
mod data_tokens;
mod devices;
mod directories;
mod governance;
mod idempotency;
mod oauth;
mod replicas;
mod voting;

use accounts::*;
pub use audit::run_audit;
use counters::*;
pub use data_tokens::token_of;
use data_tokens::*;
use devices::*;
use directories::*;
use governance::*;
use idempotency::*;
use oauth::*;
use replicas::*;
use voting::*;

pub async fn run_all(store: &dyn MetadataStore) {
    store.ping().await.expect("ping");
    commands_finish_exactly_once(store).await;
    commands_can_be_inserted_finished(store).await;
    usernames_are_unique_case_insensitively(store).await;
    tokens_revoke_and_purge(store).await;
    qr_tokens_are_single_use(store).await;
    engine_key_is_created_once(store).await;
    devices_keep_credentials_out_of_row_updates(store).await;
    data_tokens_move_through_their_states(store).await;
    a_data_token_reads_back_field_for_field(store).await;
    a_reservation_activates_in_one_step(store).await;
    replicas_spool_and_events(store).await;
    the_spool_of_a_committed_version_expires(store).await;
    idempotency_slots_are_claimed_once(store).await;
    counters_count_within_their_window(store).await;
    voting_defaults_read_back(store).await;
    voting_configurations_are_named_per_profile(store).await;
    policies_are_listed_by_status_and_free_their_name_on_delete(store).await;
    authenticators_are_approved_devices_with_the_role(store).await;
    pools_attempts_ballots_and_holds_are_durable(store).await;
    oauth_steps_are_single_use(store).await;
    directories_memberships_and_invitations(store).await;
    directory_history_is_purged_after_its_retention(store).await;
}

/// A profile (not stored).
pub fn profile(name: &str) -> Profile {
    Profile {
        id: ProfileId(CommandId::new().0),
        username: name.to_owned(),
        kind: ProfileKind::User,
        status: ProfileStatus::Active,
        password_hash: Some(PasswordHash::from_phc("$argon2id$fake".into())),
        public_key: None,
        created_at: Timestamp::now(),
    }
}

/// A profile, stored.
pub async fn stored_profile(store: &dyn MetadataStore, name: &str) -> Profile {
    let p = profile(name);
    store
        .apply(&[Effect::CreateProfile(p.clone())], None)
        .await
        .unwrap();
    p
}

fn data(effect: DataEffect) -> Effect {
    effect.into()
}

/// Applies one data effect, with no command completion, and expects it to succeed.
async fn apply_data(store: &dyn MetadataStore, effect: DataEffect) -> Vec<u64> {
    store.apply(&[data(effect)], None).await.unwrap()
}
