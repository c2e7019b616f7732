use privicore_domain::auth::DEFAULT_TOKEN_TTL_SECONDS;
use privicore_domain::data_token::INLINE_DELIVERY_MAX;
use privicore_domain::device::DEVICE_LIMIT;
use privicore_domain::envelope::DEFAULT_CHUNK_SIZE;
use privicore_domain::password::HashCost;
use privicore_domain::time::{Clock, SystemClock};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the application layer (listeners and storage are configured by the binary).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub token_ttl_seconds: i64,
    pub hash_cost: HashCost,
    /// Public base URL of the API, used in QR payloads and device bundles.
    pub api_public_url: String,
    /// Public base URL of the upstream (upload) listener, used in `streamUrl`.
    pub upstream_public_url: String,
    /// Streaming transfers: the downstream listener's public URL and the upload and
    /// download limits (docs/api/data-tokens.md §1.5, §4).
    pub streams: StreamConfig,
    pub generate_keys_enabled: bool,
    /// Parallel command lanes; commands on one resource always share a lane. Many, so
    /// that unrelated tokens rarely share one: a request data or exchange whose lane is
    /// busy cannot run at acceptance (with 64 lanes and 96 concurrent fetches a large share
    /// of them queued behind other tokens' commands; 1,024 lanes cut engine CPU per fetch
    /// by about a quarter).
    pub command_lanes: usize,
    /// Commands queued per lane; a command whose lane is full is refused with
    /// `service.unavailable` and `Retry-After` instead of growing memory.
    pub commands_per_lane: usize,
    pub replay_window: Duration,
    pub replay_capacity: usize,
    /// Events queued for one client socket before it counts as lagging and is closed.
    pub socket_queue: usize,
    pub limits: RateLimits,
    pub storage: StorageConfig,
    /// Non-removed devices per profile (docs/api/devices-and-storage.md §2.1).
    pub devices_per_profile: u64,
    /// Directory limits (docs/api/directory.md §1.1).
    pub directories: privicore_domain::directory::DirectoryLimits,
    /// The time of audit records (the system clock; tests may set another).
    pub clock: Arc<dyn Clock>,
    /// Where device bundles send devices: `None`, the embedded bus on the API listener.
    pub device_broker: Option<DeviceBroker>,
}

/// The AMQP broker coordinates a device bundle carries (docs/api/devices-and-storage.md
/// §2.7, §6.1). One broker account serves every device.
#[derive(Clone)]
pub struct DeviceBroker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub vhost: String,
    pub user: String,
    pub password: String,
    /// Prefix of the exchange and queue names (`privicore`).
    pub prefix: String,
}

impl std::fmt::Debug for DeviceBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBroker")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("vhost", &self.vhost)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Replication settings (docs/api/devices-and-storage.md §5).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub write_quorum: usize,
    pub chunk_size: u32,
    pub fetch_window: u32,
    pub inline_delivery_max: u64,
    pub first_chunk_timeout: Duration,
    pub chunk_gap_timeout: Duration,
    /// Fixed part of `storage.commit_timeout`; one more second per MiB of payload.
    pub commit_timeout_base: Duration,
    /// Wait for each inventory page of a synchronization; three misses interrupt it.
    pub inventory_page_timeout: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            write_quorum: 1,
            chunk_size: DEFAULT_CHUNK_SIZE,
            fetch_window: 8,
            inline_delivery_max: INLINE_DELIVERY_MAX,
            first_chunk_timeout: Duration::from_secs(10),
            chunk_gap_timeout: Duration::from_secs(30),
            commit_timeout_base: Duration::from_secs(60),
            inventory_page_timeout: Duration::from_secs(60),
        }
    }
}

impl StorageConfig {
    /// 60 s (by default) + 1 s per MiB of payload.
    pub fn commit_timeout(&self, bytes: u64) -> Duration {
        self.commit_timeout_base + Duration::from_secs(bytes / (1024 * 1024))
    }
}

/// Streaming settings (docs/api/data-tokens.md §1.5, §3.4, §3.6).
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Public base URL of the downstream (download) listener, used in download URLs.
    pub downstream_public_url: String,
    /// Largest upload in bytes (`stream.too_large` above).
    pub upload_max_bytes: u64,
    /// An upload without a byte for this long fails with `stream.idle_timeout` (enforced
    /// by the upstream listener, which reads the body).
    pub upload_idle: Duration,
    /// An upload still running after this long fails with `stream.idle_timeout`.
    pub upload_max_duration: Duration,
    /// Lifetime of a download value, in seconds of the engine clock.
    pub download_auth_seconds: i64,
    /// How long an early download waits for readiness before `stream.not_ready`.
    pub not_ready_wait: Duration,
    /// Sealed chunks queued per storage device during an upload's fan-out: a device that
    /// takes them more slowly slows the upload down instead of filling memory.
    pub fanout_in_flight: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            downstream_public_url: "http://127.0.0.1:8011".into(),
            upload_max_bytes: 10 << 30,
            upload_idle: Duration::from_secs(60),
            upload_max_duration: Duration::from_secs(6 * 3600),
            download_auth_seconds: 300,
            not_ready_wait: Duration::from_secs(30),
            fanout_in_flight: 8,
        }
    }
}

/// docs/api/README.md §3.5; `None` (or 0) switches a limit off. Failed logins count per username and
/// client address (see `limits::logins`).
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub failed_logins_per_15min: Option<u32>,
    pub registrations_per_hour: Option<u32>,
    pub generate_keys_per_minute: Option<u32>,
    pub requests_per_token_per_minute: Option<u32>,
    pub unauthenticated_per_minute: Option<u32>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            failed_logins_per_15min: Some(10),
            registrations_per_hour: Some(20),
            generate_keys_per_minute: Some(60),
            requests_per_token_per_minute: Some(600),
            unauthenticated_per_minute: Some(120),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            token_ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
            hash_cost: HashCost::default(),
            api_public_url: "http://127.0.0.1:8009".into(),
            upstream_public_url: "http://127.0.0.1:8010".into(),
            streams: StreamConfig::default(),
            generate_keys_enabled: true,
            command_lanes: 1024,
            commands_per_lane: 256,
            replay_window: Duration::from_secs(60),
            replay_capacity: 1000,
            socket_queue: crate::hub::SOCKET_QUEUE,
            limits: RateLimits::default(),
            storage: StorageConfig::default(),
            devices_per_profile: DEVICE_LIMIT,
            directories: Default::default(),
            clock: Arc::new(SystemClock),
            device_broker: None,
        }
    }
}
