//! Device endpoints (docs/api/devices-and-storage.md §2): synchronous checks and acceptance; the
//! commands themselves run in `pipeline::devices`.

use crate::engine::{Core, Engine};
use privicore_domain::auth::Caller;
use privicore_domain::command::CommandPayload;
use privicore_domain::data_token::Page;
use privicore_domain::device::{
    Device, DeviceCredentials, DeviceFilter, DeviceId, DeviceStatus, valid_name,
};
use privicore_domain::effect::DataEffect;
use privicore_domain::secret::Secret;
use privicore_domain::{CommandId, Error, Reason, Timestamp};
use privicore_wire::{SignedPublicKey, TokenKind, generate_token};
use serde_json::{Map, Value, json};

/// A device record as listings show it (§1.6).
pub struct DeviceListItem(pub Value);

/// A freshly issued configuration bundle (a credential).
pub struct DeviceBundle {
    pub device_id: DeviceId,
    pub json: Value,
}

impl std::fmt::Debug for DeviceBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBundle({})", self.device_id)
    }
}

pub(crate) fn device_json(core: &Core, d: &Device) -> Value {
    let ts = |t: Option<Timestamp>| t.map(Timestamp::rfc3339);
    json!({
        "deviceIdentifier": d.id.to_string(),
        "profileId": d.profile_id.to_string(),
        "name": d.name,
        "description": d.description,
        "status": d.status.as_str(),
        "roles": d.roles,
        "publicKey": d.public_key,
        "online": core.online(d.id),
        "lastSeenAt": ts(core.presence.last_seen(d.id)),
        "createdAt": d.created_at.rfc3339(),
        "approvedAt": ts(d.approved_at),
        "removedAt": ts(d.removed_at),
        "configurationIssuedAt": ts(d.configuration_issued_at),
        "meta": Value::Object(d.meta.clone()),
    })
}

pub(crate) fn check_description(description: &str) -> Result<(), Error> {
    if description.chars().count() > 500 {
        return Err(Error::new(Reason::ValidationOutOfRange).with_field("description"));
    }
    Ok(())
}

/// Meta: at most 32 keys of 1..64 characters, string values of at most 256.
pub fn check_device_meta(meta: &Value) -> Result<Map<String, Value>, Error> {
    let invalid = || Error::new(Reason::DeviceInvalidMeta).with_field("meta");
    let Value::Object(map) = meta else {
        return Err(invalid());
    };
    if map.len() > 32 {
        return Err(invalid());
    }
    for (k, v) in map {
        let ok_key = (1..=64).contains(&k.chars().count());
        let ok_value = v.as_str().is_some_and(|s| s.chars().count() <= 256);
        if !ok_key || !ok_value {
            return Err(invalid());
        }
    }
    Ok(map.clone())
}

impl Engine {
    /// The device, if the caller owns it (§1.4) or holds directory authority over it
    /// (docs/api/directory.md §1.4).
    pub(crate) async fn owned_device(&self, caller: &Caller, text: &str) -> Result<Device, Error> {
        let id: DeviceId = text
            .parse()
            .map_err(|_| Error::invalid_format("deviceIdentifier"))?;
        let device = self.store.device(id).await?.ok_or(Reason::DeviceNotFound)?;
        if device.profile_id != caller.profile_id
            && !crate::directory::device_authority(self, caller.profile_id, device.profile_id)
                .await?
        {
            return Err(Reason::DeviceNotOwner.into());
        }
        Ok(device)
    }

    pub async fn request_device(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<&str>,
        public_key: Option<&str>,
    ) -> Result<CommandId, Error> {
        if !valid_name(name) {
            return Err(Error::new(Reason::DeviceInvalidName).with_field("deviceName"));
        }
        if let Some(d) = description {
            check_description(d)?;
        }
        let public_key = public_key
            .map(SignedPublicKey::parse)
            .transpose()?
            .map(|k| k.to_hex());
        let payload = CommandPayload::RequestDevice {
            device_id: DeviceId::new(),
            name: name.to_owned(),
            description: description.map(str::to_owned),
            public_key,
        };
        self.accept(self.command_for(caller, payload)).await
    }

    /// Lookup by the request command id; other profiles' ids are not found (§2.2).
    pub async fn retrieve_device_identifier(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Device, Error> {
        let command: CommandId = id.parse().map_err(|_| Error::invalid_format("id"))?;
        self.store
            .device_by_request(command)
            .await?
            .filter(|d| d.profile_id == caller.profile_id)
            .ok_or_else(|| Reason::DeviceRequestNotFound.into())
    }

    pub async fn list_devices(
        &self,
        caller: &Caller,
        filter: DeviceFilter,
        page: Page,
    ) -> Result<(Vec<DeviceListItem>, u64), Error> {
        let (devices, total) = self
            .store
            .list_devices(caller.profile_id, &filter, page)
            .await?;
        Ok((
            devices
                .iter()
                .map(|d| DeviceListItem(device_json(self, d)))
                .collect(),
            total,
        ))
    }

    pub async fn configure_device(
        &self,
        caller: &Caller,
        device: &str,
        name: Option<&str>,
        description: Option<Option<&str>>,
        meta: Option<&Value>,
    ) -> Result<CommandId, Error> {
        if name.is_none() && description.is_none() && meta.is_none() {
            return Err(Reason::ValidationNoChanges.into());
        }
        if let Some(n) = name
            && !valid_name(n)
        {
            return Err(Error::new(Reason::DeviceInvalidName).with_field("name"));
        }
        if let Some(Some(d)) = description {
            check_description(d)?;
        }
        let meta = meta.map(check_device_meta).transpose()?;
        let device = self.owned_device(caller, device).await?;
        let payload = CommandPayload::ConfigureDevice {
            device_id: device.id,
            name: name.map(str::to_owned),
            description: description.map(|d| d.map(str::to_owned)),
            meta,
        };
        self.accept(self.command_for(caller, payload)).await
    }

    pub async fn approve_device(&self, caller: &Caller, device: &str) -> Result<CommandId, Error> {
        let device = self.owned_device(caller, device).await?;
        self.accept_committed(self.command_for(
            caller,
            CommandPayload::ApproveDevice {
                device_id: device.id,
            },
        ))
        .await
    }

    pub async fn reject_device(&self, caller: &Caller, device: &str) -> Result<CommandId, Error> {
        let device = self.owned_device(caller, device).await?;
        self.accept(self.command_for(
            caller,
            CommandPayload::RejectDevice {
                device_id: device.id,
            },
        ))
        .await
    }

    pub async fn remove_device(
        &self,
        caller: &Caller,
        device: &str,
        force: bool,
    ) -> Result<CommandId, Error> {
        let device = self.owned_device(caller, device).await?;
        self.accept(self.command_for(
            caller,
            CommandPayload::RemoveDevice {
                device_id: device.id,
                force,
            },
        ))
        .await
    }

    /// Issues a new bundle: fresh secrets, the old ones dead at once, the key unpinned
    /// and the running device disconnected (§2.7).
    pub async fn issue_device_bundle(
        &self,
        caller: &Caller,
        device: &str,
    ) -> Result<DeviceBundle, Error> {
        let device = self.owned_device(caller, device).await?;
        match device.status {
            DeviceStatus::Approved => {}
            DeviceStatus::Removed => return Err(Reason::DeviceInactive.into()),
            _ => return Err(Reason::DeviceNotApproved.into()),
        }
        let client_secret = Secret::new(generate_token(TokenKind::Profile)[2..].to_owned());
        let bus_password = Secret::new(generate_token(TokenKind::Profile)[2..].to_owned());
        let mut raw = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let client_id = format!("device-{}", hex::encode(raw));
        let now = Timestamp::now();
        let credentials = DeviceCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.hash(),
            bus_password: bus_password.hash(),
        };
        self.apply(vec![DataEffect::RotateDeviceCredentials {
            device_id: device.id,
            credentials,
            at: now,
        }])
        .await?;
        self.revoke_device(device.id, "credentials_rotated").await;
        // A hosted device refused for its key is let in by the cleared pin.
        if let Some(host) = &self.host {
            host.retry_now(device.id);
        }

        let id = device.id.to_string();
        let bus = match &self.config.device_broker {
            Some(broker) => json!({
                "bus": "amqp",
                "rabbit-host": broker.host,
                "rabbit-port": broker.port,
                "rabbit-tls": broker.tls,
                "rabbit-vhost": broker.vhost,
                // One broker account for every device (docs/deployment.md, RabbitMQ).
                "rabbit-user": broker.user,
                "rabbit-pass": broker.password,
                "queue": format!("{}.device.{id}", broker.prefix),
                "exchange": format!("{}.engine", broker.prefix),
            }),
            None => {
                let (host, port, tls) = split_url(&self.config.api_public_url);
                json!({
                    "bus": "embedded",
                    "rabbit-host": host,
                    "rabbit-port": port,
                    "rabbit-tls": tls,
                    "rabbit-vhost": "/privicore",
                    "rabbit-user": device.bus_user(),
                    "rabbit-pass": bus_password.expose(),
                    "queue": format!("privicore.device.{id}"),
                    "exchange": "privicore.engine",
                })
            }
        };
        let mut json = json!({
            "bundle-version": 1,
            "device-identifier": id,
            "device-name": device.name,
            "profile-id": device.profile_id.to_string(),
            "roles": device.roles,
            "client-id": client_id,
            "client-secret": client_secret.expose(),
            "routing-key": format!("device.{id}"),
            "engine-public-key": self.cab.public_key,
            "engine-key-id": self.cab.key_id,
            "api-url": self.config.api_public_url,
            "chunk-size": self.config.storage.chunk_size,
            "issued-at": now.rfc3339(),
        });
        if let (Some(all), Some(bus)) = (json.as_object_mut(), bus.as_object()) {
            all.extend(bus.clone());
        }
        Ok(DeviceBundle {
            device_id: device.id,
            json,
        })
    }

    /// Bus credentials of the embedded `/device-bus` (HTTP Basic on the upgrade).
    pub async fn authenticate_bus(&self, user: &str, password: &str) -> Result<DeviceId, Error> {
        let id: DeviceId = user
            .strip_prefix("device-")
            .and_then(|id| id.parse().ok())
            .ok_or(Reason::DeviceInvalidCredentials)?;
        let device = self
            .store
            .device(id)
            .await?
            .ok_or(Reason::DeviceInvalidCredentials)?;
        let ok = device
            .credentials
            .as_ref()
            .is_some_and(|c| c.bus_password == Secret::new(password).hash());
        if !ok || device.status != DeviceStatus::Approved {
            return Err(Reason::DeviceInvalidCredentials.into());
        }
        Ok(id)
    }
}

/// `(host, port, tls)` of a base URL such as `https://api.example.com:8009`.
fn split_url(url: &str) -> (String, u16, bool) {
    let tls = url.starts_with("https://");
    let rest = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) => (
            host.to_owned(),
            port.parse().unwrap_or(if tls { 443 } else { 80 }),
            tls,
        ),
        None => (authority.to_owned(), if tls { 443 } else { 80 }, tls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_port() {
        assert_eq!(
            split_url("https://api.example.com:8009"),
            ("api.example.com".into(), 8009, true)
        );
        assert_eq!(
            split_url("http://127.0.0.1:18009/"),
            ("127.0.0.1".into(), 18009, false)
        );
        assert_eq!(
            split_url("https://vault.example.com"),
            ("vault.example.com".into(), 443, true)
        );
    }

    #[test]
    fn device_meta_rules() {
        assert!(check_device_meta(&json!({"rack": "b2"})).is_ok());
        assert!(check_device_meta(&json!({"rack": 2})).is_err());
        assert!(check_device_meta(&json!({"": "x"})).is_err());
        assert!(check_device_meta(&json!(["x"])).is_err());
        let many: Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(check_device_meta(&Value::Object(many)).is_err());
    }
}
