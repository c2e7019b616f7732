//! Which bus the engine uses: the in-process one (one engine) or RabbitMQ (`bus_url`,
//! several engine replicas; docs/deployment.md, RabbitMQ).

use crate::config::Settings;
use anyhow::Context;
use privicore_bus_amqp::{AmqpBus, AmqpDeviceBus, Broker, BrokerAddress, DeviceUsers, Names};
use privicore_bus_local::{LocalBus, LocalDeviceBus};
use privicore_domain::ports::{Bus, DeviceBus};
use privicore_engine::DeviceBroker;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// How long a start waits for the broker before it gives up.
const FIRST_CONNECT: Duration = Duration::from_secs(15);

/// A broker URL: it holds a password, so `Debug` shows none of it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct BusUrl(pub String);

impl std::fmt::Debug for BusUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusUrl(..)")
    }
}

/// Refuses broker URLs that do not parse (the message never repeats them), and a device
/// URL without an engine URL.
pub fn check(settings: &Settings) -> anyhow::Result<()> {
    if let Some(url) = &settings.bus_url {
        BrokerAddress::parse(&url.0).map_err(|e| anyhow::anyhow!("bus_url: {e}"))?;
    }
    if let Some(url) = &settings.bus_device_url {
        if settings.bus_url.is_none() {
            anyhow::bail!("bus_device_url needs bus_url");
        }
        BrokerAddress::parse(&url.0).map_err(|e| anyhow::anyhow!("bus_device_url: {e}"))?;
    }
    if settings.bus_prefix.is_empty() || settings.bus_prefix.contains(['#', '*']) {
        anyhow::bail!("bus_prefix must be a non-empty name without # or *");
    }
    Ok(())
}

/// The adapters of both bus ports, and what the rest of the wiring needs to know of them.
pub struct Buses {
    pub bus: Arc<dyn Bus>,
    pub devices: Arc<dyn DeviceBus>,
    /// The embedded device bus (hosted devices, `/device-bus`); none with a broker.
    pub local: Option<Arc<LocalDeviceBus>>,
    pub broker: Option<Arc<Broker>>,
    /// What device bundles carry in AMQP mode.
    pub device_broker: Option<DeviceBroker>,
}

impl Buses {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let Some(url) = &settings.bus_url else {
            let local = Arc::new(LocalDeviceBus::default());
            return Ok(Self {
                bus: Arc::new(LocalBus::default()),
                devices: local.clone(),
                local: Some(local),
                broker: None,
                device_broker: None,
            });
        };
        let engine_side =
            BrokerAddress::parse(&url.0).map_err(|e| anyhow::anyhow!("bus_url: {e}"))?;
        let devices_url = settings.bus_device_url.as_ref().unwrap_or(url);
        let device_side = BrokerAddress::parse(&devices_url.0)
            .map_err(|e| anyhow::anyhow!("bus_device_url: {e}"))?;
        let names = Names::new(&settings.bus_prefix);
        let broker = Broker::connect(&url.0, names, FIRST_CONNECT)
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| {
                format!(
                    "connecting to the broker at {}:{}",
                    engine_side.host, engine_side.port
                )
            })?;
        let users = DeviceUsers::Shared(device_side.user.clone());
        Ok(Self {
            bus: Arc::new(AmqpBus::new(broker.clone())),
            devices: Arc::new(AmqpDeviceBus::new(broker.clone(), users)),
            local: None,
            broker: Some(broker),
            device_broker: Some(DeviceBroker {
                host: device_side.host,
                port: device_side.port,
                tls: device_side.tls,
                vhost: device_side.vhost,
                user: device_side.user,
                password: device_side.password,
                prefix: settings.bus_prefix.clone(),
            }),
        })
    }
}
