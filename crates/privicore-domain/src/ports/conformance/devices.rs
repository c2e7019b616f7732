//! Device rows: credentials stay out of ordinary row updates.

use super::*;

fn device_of(profile: &Profile, name: &str) -> Device {
    Device {
        id: DeviceId::new(),
        profile_id: profile.id,
        request_command_id: CommandId::new(),
        name: name.into(),
        description: None,
        status: DeviceStatus::Approved,
        roles: vec!["storage".into()],
        public_key: None,
        meta: serde_json::Map::new(),
        credentials: None,
        created_at: Timestamp::now(),
        approved_at: Some(Timestamp::now()),
        removed_at: None,
        configuration_issued_at: None,
        storage_registered_at: Some(Timestamp::now()),
        authenticator_registered_at: None,
        last_sync: None,
    }
}

pub(super) async fn devices_keep_credentials_out_of_row_updates(store: &dyn MetadataStore) {
    let p = stored_profile(store, "device-owner").await;
    let mut d = device_of(&p, "nas-1");
    apply_data(store, DataEffect::SaveDevice(d.clone())).await;
    let creds = DeviceCredentials {
        client_id: "device-0123".into(),
        client_secret: TokenHash::of("secret"),
        bus_password: TokenHash::of("bus"),
    };
    apply_data(
        store,
        DataEffect::RotateDeviceCredentials {
            device_id: d.id,
            credentials: creds.clone(),
            at: Timestamp::now(),
        },
    )
    .await;
    apply_data(
        store,
        DataEffect::PinDeviceKey {
            device_id: d.id,
            public_key: "31420500aa".into(),
        },
    )
    .await;
    // A command's row update from before the rotation does not bring old values back.
    d.name = "renamed".into();
    apply_data(store, DataEffect::SaveDevice(d.clone())).await;
    let read = store.device(d.id).await.unwrap().unwrap();
    assert_eq!(read.name, "renamed");
    assert_eq!(read.credentials, Some(creds));
    assert_eq!(read.public_key.as_deref(), Some("31420500aa"));
    assert_eq!(
        store
            .device_by_client_id("device-0123")
            .await
            .unwrap()
            .unwrap()
            .id,
        d.id
    );
    assert_eq!(
        store
            .device_by_request(d.request_command_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        d.id
    );
    let storage = store.storage_devices(Some(p.id)).await.unwrap();
    assert_eq!(storage.len(), 1);
    let (page, total) = store
        .list_devices(
            p.id,
            &DeviceFilter {
                name: Some("ren".into()),
                name_prefix: true,
                ..DeviceFilter::default()
            },
            Page {
                page: 1,
                per_page: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((page.len(), total), (1, 1));
    apply_data(
        store,
        DataEffect::ClearDeviceCredentials { device_id: d.id },
    )
    .await;
    assert!(
        store
            .device(d.id)
            .await
            .unwrap()
            .unwrap()
            .credentials
            .is_none()
    );
    assert_eq!(store.count_live_devices(p.id).await.unwrap(), 1);
}
