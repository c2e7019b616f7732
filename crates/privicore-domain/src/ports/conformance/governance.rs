//! Voting defaults, voting configurations, policies and the authenticators they count.

use super::*;
use crate::device::{ROLE_AUTHENTICATOR, ROLE_STORAGE};
use crate::effect::GovernanceEffect;
use crate::governance::{
    ConfigurationFilter, Policy, PolicyFilter, PolicyStatus, Strategy, VotingConfiguration,
    VotingDefaults,
};
use crate::{PolicyId, Reason, VotingConfigurationId};

fn page(per_page: u64) -> Page {
    Page { page: 1, per_page }
}

fn governance(effect: GovernanceEffect) -> Effect {
    effect.into()
}

fn configuration_of(profile: &Profile, name: &str) -> VotingConfiguration {
    let now = Timestamp::now();
    VotingConfiguration {
        id: VotingConfigurationId(CommandId::new().0),
        profile_id: profile.id,
        name: name.into(),
        strategy: Strategy::MinimumPercentage,
        percentage_required: Some(67),
        time_limit: 300,
        quorum_size: None,
        number_of_attempts: Some(2),
        device_ids: vec![DeviceId::new(), DeviceId::new()],
        created_at: now,
        updated_at: now,
    }
}

fn policy_of(profile: &Profile, name: &str, template: &str, events: &[&str]) -> Policy {
    let now = Timestamp::now();
    Policy {
        id: PolicyId(CommandId::new().0),
        profile_id: profile.id,
        name: name.into(),
        description: Some("held".into()),
        template_id: template.into(),
        event_ids: events.iter().map(|e| e.to_string()).collect(),
        configuration: json!({ "scope": "profile", "context": "/finance/*" })
            .as_object()
            .unwrap()
            .clone(),
        voting_configuration_id: None,
        status: PolicyStatus::Inactive,
        created_at: now,
        updated_at: now,
        activated_at: None,
        deactivated_at: None,
        deleted_at: None,
    }
}

fn device_with(profile: &Profile, status: DeviceStatus, roles: &[&str]) -> Device {
    Device {
        id: DeviceId::new(),
        profile_id: profile.id,
        request_command_id: CommandId::new(),
        name: "phone".into(),
        description: None,
        status,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        public_key: None,
        meta: serde_json::Map::new(),
        credentials: None,
        created_at: Timestamp::now(),
        approved_at: None,
        removed_at: None,
        configuration_issued_at: None,
        storage_registered_at: None,
        authenticator_registered_at: Some(Timestamp(1_700_000_000)),
        last_sync: None,
    }
}

pub(super) async fn voting_defaults_read_back(store: &dyn MetadataStore) {
    let p = stored_profile(store, "defaults-owner").await;
    assert_eq!(
        store.voting_defaults(p.id).await.unwrap(),
        VotingDefaults::default()
    );
    let set = VotingDefaults {
        strategy: Strategy::MinimumPercentage,
        strategy_params: 67,
        quorum_size: 3,
        time_limit: 600,
        number_of_attempts: 2,
        updated_at: Some(Timestamp(1_700_000_000)),
    };
    for defaults in [set.clone(), set.clone()] {
        store
            .apply(
                &[governance(GovernanceEffect::PutVotingDefaults {
                    profile_id: p.id,
                    defaults,
                })],
                None,
            )
            .await
            .unwrap();
    }
    assert_eq!(store.voting_defaults(p.id).await.unwrap(), set);
    let other = stored_profile(store, "defaults-other").await;
    assert_eq!(
        store.voting_defaults(other.id).await.unwrap(),
        VotingDefaults::default()
    );
}

pub(super) async fn voting_configurations_are_named_per_profile(store: &dyn MetadataStore) {
    let p = stored_profile(store, "configurations-owner").await;
    let q = stored_profile(store, "configurations-other").await;
    let mut c = configuration_of(&p, "Exchange-Approvers");
    let save =
        |c: &VotingConfiguration| governance(GovernanceEffect::SaveVotingConfiguration(c.clone()));
    store.apply(&[save(&c)], None).await.unwrap();
    assert_eq!(
        store.voting_configuration(c.id).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(
        store
            .voting_configuration_by_name(p.id, "exchange-APPROVERS")
            .await
            .unwrap()
            .map(|c| c.id),
        Some(c.id)
    );
    assert!(
        store
            .voting_configuration_by_name(q.id, "exchange-approvers")
            .await
            .unwrap()
            .is_none()
    );
    // The same name, another case: taken within the profile, free in another.
    let twin = configuration_of(&p, "EXCHANGE-approvers");
    let err = store.apply(&[save(&twin)], None).await.unwrap_err();
    assert_eq!(
        err.business_reason(),
        Some(Reason::VotingConfigurationNameTaken)
    );
    assert!(store.voting_configuration(twin.id).await.unwrap().is_none());
    store
        .apply(&[save(&configuration_of(&q, "exchange-approvers"))], None)
        .await
        .unwrap();

    // An update replaces every field but the creation time.
    c.name = "renamed".into();
    c.strategy = Strategy::Unanimous;
    c.percentage_required = None;
    c.quorum_size = Some(2);
    c.number_of_attempts = None;
    c.device_ids = Vec::new();
    c.updated_at = c.updated_at.plus_seconds(5);
    store.apply(&[save(&c)], None).await.unwrap();
    assert_eq!(
        store.voting_configuration(c.id).await.unwrap(),
        Some(c.clone())
    );
    // The old name is free again.
    store
        .apply(&[save(&configuration_of(&p, "exchange-approvers"))], None)
        .await
        .unwrap();

    let all = ConfigurationFilter::default();
    let (items, total) = store
        .list_voting_configurations(p.id, &all, page(10))
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(items[0].name, "exchange-approvers", "newest first");
    let (one, total) = store
        .list_voting_configurations(p.id, &all, page(1))
        .await
        .unwrap();
    assert_eq!((one.len(), total), (1, 2));
    let prefix = ConfigurationFilter {
        name: Some("ren".into()),
        name_prefix: true,
        ..ConfigurationFilter::default()
    };
    let (found, _) = store
        .list_voting_configurations(p.id, &prefix, page(10))
        .await
        .unwrap();
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), vec![c.id]);
    let by_strategy = ConfigurationFilter {
        strategy: Some(Strategy::MinimumPercentage),
        ..ConfigurationFilter::default()
    };
    let (found, total) = store
        .list_voting_configurations(p.id, &by_strategy, page(10))
        .await
        .unwrap();
    assert_eq!((found.len(), total), (1, 1));
    assert_eq!(found[0].name, "exchange-approvers");
}

pub(super) async fn policies_are_listed_by_status_and_free_their_name_on_delete(
    store: &dyn MetadataStore,
) {
    let p = stored_profile(store, "policies-owner").await;
    let q = stored_profile(store, "policies-other").await;
    let c = configuration_of(&p, "approvers");
    store
        .apply(
            &[governance(GovernanceEffect::SaveVotingConfiguration(
                c.clone(),
            ))],
            None,
        )
        .await
        .unwrap();
    let save = |p: &Policy| governance(GovernanceEffect::SavePolicy(p.clone()));
    let mut exchange = policy_of(&p, "Exchange-Approval", "1", &["101", "102"]);
    exchange.voting_configuration_id = Some(c.id);
    let retrieval = policy_of(&p, "retrieval", "2", &["201"]);
    store
        .apply(&[save(&exchange), save(&retrieval)], None)
        .await
        .unwrap();
    assert_eq!(
        store.policy(exchange.id).await.unwrap(),
        Some(exchange.clone())
    );
    assert_eq!(
        store
            .policy_by_name(p.id, "exchange-approval")
            .await
            .unwrap()
            .map(|p| p.id),
        Some(exchange.id)
    );
    assert!(
        store
            .policy_by_name(q.id, "exchange-approval")
            .await
            .unwrap()
            .is_none()
    );
    let twin = policy_of(&p, "EXCHANGE-APPROVAL", "1", &["101"]);
    let err = store.apply(&[save(&twin)], None).await.unwrap_err();
    assert_eq!(err.business_reason(), Some(Reason::PolicyNameTaken));
    store
        .apply(
            &[save(&policy_of(&q, "exchange-approval", "1", &["101"]))],
            None,
        )
        .await
        .unwrap();

    exchange.status = PolicyStatus::Active;
    exchange.activated_at = Some(Timestamp::now());
    store.apply(&[save(&exchange)], None).await.unwrap();
    let active = store.active_policies(p.id).await.unwrap();
    assert_eq!(
        active.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![exchange.id]
    );

    let list = |filter: PolicyFilter| async move {
        let (items, total) = store.list_policies(p.id, &filter, page(10)).await.unwrap();
        assert_eq!(items.len() as u64, total);
        items.into_iter().map(|p| p.id).collect::<Vec<_>>()
    };
    assert_eq!(
        list(PolicyFilter::default()).await,
        vec![retrieval.id, exchange.id],
        "newest first"
    );
    let only = |status| PolicyFilter {
        statuses: vec![status],
        ..PolicyFilter::default()
    };
    assert_eq!(list(only(PolicyStatus::Active)).await, vec![exchange.id]);
    assert_eq!(list(only(PolicyStatus::Inactive)).await, vec![retrieval.id]);
    let event = PolicyFilter {
        event_id: Some("102".into()),
        ..PolicyFilter::default()
    };
    assert_eq!(list(event).await, vec![exchange.id]);
    let not_a_whole_event = PolicyFilter {
        event_id: Some("10".into()),
        ..PolicyFilter::default()
    };
    assert!(list(not_a_whole_event).await.is_empty());
    let template = PolicyFilter {
        template_id: Some("2".into()),
        ..PolicyFilter::default()
    };
    assert_eq!(list(template).await, vec![retrieval.id]);
    let using = PolicyFilter {
        voting_configuration_id: Some(c.id),
        ..PolicyFilter::default()
    };
    assert_eq!(list(using).await, vec![exchange.id]);

    // Deleted: kept by id, gone from lists and names.
    let mut deleted = retrieval.clone();
    deleted.status = PolicyStatus::Deleted;
    deleted.deleted_at = Some(Timestamp::now());
    store.apply(&[save(&deleted)], None).await.unwrap();
    assert_eq!(
        store.policy(retrieval.id).await.unwrap().map(|p| p.status),
        Some(PolicyStatus::Deleted)
    );
    assert!(
        store
            .policy_by_name(p.id, "retrieval")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(list(PolicyFilter::default()).await, vec![exchange.id]);
    assert!(list(only(PolicyStatus::Deleted)).await.is_empty());
    store
        .apply(&[save(&policy_of(&p, "Retrieval", "2", &["201"]))], None)
        .await
        .unwrap();
}

pub(super) async fn authenticators_are_approved_devices_with_the_role(store: &dyn MetadataStore) {
    let p = stored_profile(store, "authenticators-owner").await;
    let q = stored_profile(store, "authenticators-other").await;
    let phone = device_with(&p, DeviceStatus::Approved, &[ROLE_AUTHENTICATOR]);
    let both = device_with(
        &p,
        DeviceStatus::Approved,
        &[ROLE_STORAGE, ROLE_AUTHENTICATOR],
    );
    let storage = device_with(&p, DeviceStatus::Approved, &[ROLE_STORAGE]);
    let removed = device_with(&p, DeviceStatus::Removed, &[ROLE_AUTHENTICATOR]);
    let foreign = device_with(&q, DeviceStatus::Approved, &[ROLE_AUTHENTICATOR]);
    for d in [&phone, &both, &storage, &removed, &foreign] {
        apply_data(store, DataEffect::SaveDevice(d.clone())).await;
    }
    let ids: Vec<DeviceId> = store
        .authenticators(p.id)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&phone.id) && ids.contains(&both.id));
    let read = store.device(phone.id).await.unwrap().unwrap();
    assert_eq!(
        read.authenticator_registered_at,
        Some(Timestamp(1_700_000_000))
    );
    // Losing the role (a row update) takes the device out at once.
    let mut lost = both.clone();
    lost.roles = vec![ROLE_STORAGE.into()];
    apply_data(store, DataEffect::SaveDevice(lost)).await;
    assert_eq!(store.authenticators(p.id).await.unwrap().len(), 1);
}
