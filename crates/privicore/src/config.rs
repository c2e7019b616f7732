//! Settings from, in rising priority: embedded defaults, an optional TOML file, `PRIVICORE_*`
//! environment variables and command-line flags (clap reads the last two together).

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The metadata store `serve` opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataBackend {
    /// SQLite in the data directory.
    Embedded(PathBuf),
    /// A PostgreSQL database, possibly shared with other engines.
    Postgres(String),
}

/// Effective settings of `privicore serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The engine clock (tests set a manual one to move vote deadlines without sleeping);
    /// `None` = the system clock. Never read from a configuration file.
    #[serde(skip)]
    pub clock: Option<std::sync::Arc<dyn privicore_domain::time::Clock>>,
    pub data_dir: PathBuf,
    /// The metadata store: `postgres://…` for a PostgreSQL database shared by several
    /// engines; `sqlite://` or none for the embedded store in `data_dir`.
    #[serde(alias = "database-url")]
    pub database_url: Option<String>,
    /// Address every listener binds to. Loopback by default: expose the engine through a
    /// TLS-terminating proxy, or bind wider on purpose.
    pub bind: IpAddr,
    pub api: Listener,
    pub ws: Listener,
    /// The upload listener (docs/api/data-tokens.md §3.4); its public URL goes into `streamUrl`.
    pub upstream: Listener,
    /// The download listener (docs/api/data-tokens.md §3.6); its public URL goes into
    /// download URLs.
    pub downstream: Listener,
    /// Upload and download limits (docs/api/data-tokens.md §1.5).
    pub streams: Streams,
    pub storage: Storage,
    pub devices: Devices,
    pub directories: Directories,
    pub log: Log,
    pub auth: Auth,
    pub keys: Keys,
    pub rate_limits: RateLimits,
    pub connections: Connections,
    pub commands: Commands,
    pub metrics: Metrics,
    /// Events queued for one client WebSocket before it counts as lagging: it is told
    /// (`channel.lagged`) and closed, and its client joins again.
    pub socket_queue: usize,
    /// Proxies (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` name the client
    /// for every per-address limit; without any, those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// RabbitMQ for several engine replicas (`amqp://user:pass@host:5672/vhost`); none:
    /// the in-process bus, one engine (docs/deployment.md, RabbitMQ).
    #[serde(alias = "bus-url")]
    pub bus_url: Option<crate::bus::BusUrl>,
    /// The broker URL device bundles carry (another account, another host name); by
    /// default `bus_url`.
    #[serde(alias = "bus-device-url")]
    pub bus_device_url: Option<crate::bus::BusUrl>,
    /// Prefix of the broker's exchange and queue names.
    #[serde(alias = "bus-prefix")]
    pub bus_prefix: String,
}

/// What clients may hold open on each listener (the API and the WebSocket listener).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Connections {
    /// Open connections in total, WebSockets included; keep it below the file limit.
    pub max: usize,
    /// Open connections per client address.
    pub per_address: usize,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body.
    pub body_timeout_seconds: u64,
}

impl Default for Connections {
    fn default() -> Self {
        let d = privicore_http::ConnectionLimits::default();
        Self {
            max: d.max_connections,
            per_address: d.max_per_address,
            header_timeout_seconds: d.header_read_timeout.as_secs(),
            body_timeout_seconds: d.body_read_timeout.as_secs(),
        }
    }
}

impl Connections {
    pub fn limits(&self) -> privicore_http::ConnectionLimits {
        privicore_http::ConnectionLimits {
            max_connections: self.max,
            max_per_address: self.per_address,
            header_read_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
            body_read_timeout: std::time::Duration::from_secs(self.body_timeout_seconds),
        }
    }
}

/// Who may read `/metrics` (docs/metrics.md): loopback clients always; others with the
/// bearer token kept in `token_file` (never in the settings themselves, which are logged).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    pub token_file: Option<PathBuf>,
}

impl Metrics {
    /// The token, read and trimmed; an empty file is refused rather than opening
    /// `/metrics` to an empty bearer.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading metrics.token_file {}", path.display()))?;
        let token = text.trim();
        anyhow::ensure!(
            !token.is_empty(),
            "metrics.token_file {} is empty",
            path.display()
        );
        Ok(Some(token.to_owned()))
    }
}

/// The command pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Commands {
    /// Commands queued per lane; beyond it a command is refused with 503 and `Retry-After`.
    pub queued_per_lane: usize,
}

impl Default for Commands {
    fn default() -> Self {
        Self {
            queued_per_lane: privicore_engine::EngineConfig::default().commands_per_lane,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Listener {
    pub port: u16,
    /// Base URL clients use to reach this listener (never taken from `Host`).
    pub public_url: Option<String>,
    /// API listener only: origins allowed cross-origin access (docs/api/README.md §4.6); none by
    /// default, `*` for any.
    pub cors_origins: Vec<String>,
}

/// Streaming limits; the defaults are the contract's (docs/api/data-tokens.md §1.5).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Streams {
    /// Largest upload in bytes (`stream.too_large` above).
    pub upload_max_bytes: u64,
    /// Seconds without a byte before an upload fails with `stream.idle_timeout`.
    pub upload_idle_seconds: u64,
    /// Seconds an upload may take in total.
    pub upload_max_duration_seconds: u64,
    /// Lifetime of a download value.
    pub download_auth_seconds: u64,
    /// Seconds an early download waits for readiness before `stream.not_ready`.
    pub not_ready_wait_seconds: u64,
    /// Sealed chunks queued per storage device while a large version fans out.
    pub fanout_in_flight: usize,
    /// Bytes the spool's disk keeps free beside uploads: an upload that would eat into
    /// them is refused with `stream.spool_full`.
    pub spool_reserve_bytes: u64,
}

impl Default for Streams {
    fn default() -> Self {
        let d = privicore_engine::StreamConfig::default();
        Self {
            upload_max_bytes: d.upload_max_bytes,
            upload_idle_seconds: d.upload_idle.as_secs(),
            upload_max_duration_seconds: d.upload_max_duration.as_secs(),
            download_auth_seconds: d.download_auth_seconds as u64,
            not_ready_wait_seconds: d.not_ready_wait.as_secs(),
            fanout_in_flight: d.fanout_in_flight,
            spool_reserve_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Run every registered storage device inside the engine (embedded default). Turn off
    /// when devices run as their own processes (`privicore storage-device`).
    pub host_devices: bool,
    pub write_quorum: usize,
    /// Fixed part of the commit timeout; one more second per MiB of payload.
    pub commit_timeout_seconds: u64,
    /// Wait for each inventory page of a synchronization; three misses interrupt it.
    pub inventory_page_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Devices {
    /// Non-removed devices a profile may have.
    pub per_profile: u64,
}

/// Directory limits (docs/api/directory.md §1.1, §1.6).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Directories {
    /// Directories one profile may own.
    pub owned_per_profile: u64,
    /// Active members of one directory, the owner included.
    pub members_per_directory: u64,
    /// Seconds an invitation stays open.
    pub invitation_ttl_seconds: i64,
    /// Milliseconds between two looks for removed memberships and ended invitations older
    /// than 90 days (purged).
    pub purge_interval_ms: u64,
}

impl Default for Directories {
    fn default() -> Self {
        let d = privicore_domain::directory::DirectoryLimits::default();
        Self {
            owned_per_profile: d.owned_per_profile,
            members_per_directory: d.members_per_directory,
            invitation_ttl_seconds: d.invitation_ttl_seconds,
            purge_interval_ms: d.purge_interval_ms,
        }
    }
}

impl Default for Devices {
    fn default() -> Self {
        Self {
            per_profile: privicore_domain::device::DEVICE_LIMIT,
        }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            host_devices: true,
            write_quorum: 1,
            commit_timeout_seconds: 60,
            inventory_page_timeout_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub token_ttl_seconds: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Keys {
    pub generate_endpoint_enabled: bool,
    /// The root key (64 hex characters or base64 of 32 bytes), kept outside the data
    /// directory. `PRIVICORE_ROOT_KEY` holding the key itself wins over it.
    pub root_key_file: Option<PathBuf>,
    /// Start sealed: serve 503 until `privicore operator unseal` gives the passphrase or
    /// enough Shamir shares.
    pub sealed: bool,
}

/// 0 switches a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub failed_logins_per_15min: u32,
    pub registrations_per_hour: u32,
    pub generate_keys_per_minute: u32,
    pub requests_per_token_per_minute: u32,
    pub unauthenticated_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            clock: None,
            data_dir: PathBuf::from("./privicore-data"),
            database_url: None,
            bind: IpAddr::from([127, 0, 0, 1]),
            api: Listener {
                port: 8009,
                ..Listener::default()
            },
            ws: Listener {
                port: 8083,
                ..Listener::default()
            },
            upstream: Listener {
                port: 8010,
                ..Listener::default()
            },
            downstream: Listener {
                port: 8011,
                ..Listener::default()
            },
            streams: Streams::default(),
            storage: Storage::default(),
            devices: Devices::default(),
            directories: Directories::default(),
            log: Log::default(),
            auth: Auth::default(),
            keys: Keys::default(),
            rate_limits: RateLimits::default(),
            connections: Connections::default(),
            commands: Commands::default(),
            metrics: Metrics::default(),
            socket_queue: privicore_engine::hub::SOCKET_QUEUE,
            trusted_proxies: Vec::new(),
            bus_url: None,
            bus_device_url: None,
            bus_prefix: "privicore".into(),
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            token_ttl_seconds: privicore_domain::auth::DEFAULT_TOKEN_TTL_SECONDS,
        }
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            generate_endpoint_enabled: true,
            root_key_file: None,
            sealed: false,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            failed_logins_per_15min: 10,
            registrations_per_hour: 20,
            generate_keys_per_minute: 60,
            requests_per_token_per_minute: 600,
            unauthenticated_per_minute: 120,
        }
    }
}

/// Flags of `privicore serve`; each also reads a `PRIVICORE_*` variable.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML settings file.
    #[arg(long, env = "PRIVICORE_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "PRIVICORE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The metadata store: postgres://user@host:5432/db (shared by several engines), or
    /// sqlite:// (the embedded default, in the data directory).
    #[arg(long, env = "PRIVICORE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[arg(long, env = "PRIVICORE_BIND")]
    pub bind: Option<IpAddr>,
    #[arg(long, env = "PRIVICORE_API_PORT")]
    pub api_port: Option<u16>,
    #[arg(long, env = "PRIVICORE_WS_PORT")]
    pub ws_port: Option<u16>,
    #[arg(long, env = "PRIVICORE_API_PUBLIC_URL")]
    pub api_public_url: Option<String>,
    #[arg(long, env = "PRIVICORE_WS_PUBLIC_URL")]
    pub ws_public_url: Option<String>,
    #[arg(long, env = "PRIVICORE_UPSTREAM_PUBLIC_URL")]
    pub upstream_public_url: Option<String>,
    /// Port of the upload listener (0: any free port).
    #[arg(long, env = "PRIVICORE_UPSTREAM_PORT")]
    pub upstream_port: Option<u16>,
    /// Port of the download listener (0: any free port).
    #[arg(long, env = "PRIVICORE_DOWNSTREAM_PORT")]
    pub downstream_port: Option<u16>,
    #[arg(long, env = "PRIVICORE_DOWNSTREAM_PUBLIC_URL")]
    pub downstream_public_url: Option<String>,
    /// Largest upload in bytes.
    #[arg(long, env = "PRIVICORE_UPLOAD_MAX_BYTES")]
    pub upload_max_bytes: Option<u64>,
    /// Host registered storage devices in-process (true) or expect separate processes.
    #[arg(long, env = "PRIVICORE_HOST_DEVICES")]
    pub host_devices: Option<bool>,
    #[arg(long, env = "PRIVICORE_WRITE_QUORUM")]
    pub write_quorum: Option<usize>,
    /// Seconds a write waits for its quorum, plus one per MiB of payload.
    #[arg(long, env = "PRIVICORE_COMMIT_TIMEOUT_SECONDS")]
    pub commit_timeout_seconds: Option<u64>,
    #[arg(long, env = "PRIVICORE_INVENTORY_PAGE_TIMEOUT_SECONDS")]
    pub inventory_page_timeout_seconds: Option<u64>,
    #[arg(long, env = "PRIVICORE_DEVICES_PER_PROFILE")]
    pub devices_per_profile: Option<u64>,
    #[arg(long, value_enum, env = "PRIVICORE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    #[arg(long, env = "PRIVICORE_LOG_LEVEL")]
    pub log_level: Option<String>,
    #[arg(long, env = "PRIVICORE_TOKEN_TTL_SECONDS")]
    pub token_ttl_seconds: Option<i64>,
    #[arg(long, env = "PRIVICORE_GENERATE_KEYS_ENDPOINT_ENABLED")]
    pub generate_keys_endpoint_enabled: Option<bool>,
    #[arg(long, env = "PRIVICORE_FAILED_LOGINS_PER_15MIN")]
    pub failed_logins_per_15min: Option<u32>,
    #[arg(long, env = "PRIVICORE_REGISTRATIONS_PER_HOUR")]
    pub registrations_per_hour: Option<u32>,
    #[arg(long, env = "PRIVICORE_GENERATE_KEYS_PER_MINUTE")]
    pub generate_keys_per_minute: Option<u32>,
    /// Open connections per listener, WebSockets included.
    #[arg(long, env = "PRIVICORE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections per client address and listener.
    #[arg(long, env = "PRIVICORE_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    #[arg(long, env = "PRIVICORE_HEADER_TIMEOUT_SECONDS")]
    pub header_timeout_seconds: Option<u64>,
    #[arg(long, env = "PRIVICORE_BODY_TIMEOUT_SECONDS")]
    pub body_timeout_seconds: Option<u64>,
    /// Commands queued per pipeline lane before new ones are refused with 503.
    #[arg(long, env = "PRIVICORE_COMMANDS_PER_LANE")]
    pub commands_per_lane: Option<usize>,
    /// File holding the root key (64 hex characters or base64 of 32 bytes); keep it off
    /// the data directory's disk. The variable PRIVICORE_ROOT_KEY may hold the key itself.
    #[arg(long, env = "PRIVICORE_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,
    /// Start sealed and wait for `privicore operator unseal`.
    #[arg(long, env = "PRIVICORE_SEALED", num_args = 0..=1, default_missing_value = "true")]
    pub sealed: Option<bool>,
    /// Restore a `privicore operator backup` file into the (empty) data directory first.
    #[arg(long)]
    pub restore: Option<PathBuf>,
    #[arg(long, env = "PRIVICORE_REQUESTS_PER_TOKEN_PER_MINUTE")]
    pub requests_per_token_per_minute: Option<u32>,
    #[arg(long, env = "PRIVICORE_UNAUTHENTICATED_PER_MINUTE")]
    pub unauthenticated_per_minute: Option<u32>,
    /// Comma-separated CIDRs (or addresses) of proxies trusted to name the client.
    #[arg(long, env = "PRIVICORE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Comma-separated origins allowed cross-origin access to the API.
    #[arg(long, env = "PRIVICORE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// RabbitMQ URL (amqp://user:pass@host:5672/vhost): the bus of several engine replicas.
    #[arg(long, env = "PRIVICORE_BUS_URL", hide_env_values = true)]
    pub bus_url: Option<String>,
    /// The broker URL device bundles carry (default: --bus-url).
    #[arg(long, env = "PRIVICORE_BUS_DEVICE_URL", hide_env_values = true)]
    pub bus_device_url: Option<String>,
    /// Prefix of the broker's exchange and queue names (default privicore).
    #[arg(long, env = "PRIVICORE_BUS_PREFIX")]
    pub bus_prefix: Option<String>,
    /// File holding a bearer token that lets clients off loopback read /metrics.
    #[arg(long, env = "PRIVICORE_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
}

impl Settings {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading settings file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing settings file {}", path.display()))
    }

    /// Defaults, then the file named by `--config`, then env and flags.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let mut s = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        macro_rules! take {
            ($($arg:ident => $($field:ident).+;)*) => {
                $(if let Some(v) = &args.$arg { s.$($field).+ = v.clone().into(); })*
            };
        }
        take! {
            data_dir => data_dir;
            bind => bind;
            api_port => api.port;
            ws_port => ws.port;
            upstream_port => upstream.port;
            downstream_port => downstream.port;
            upload_max_bytes => streams.upload_max_bytes;
            log_format => log.format;
            log_level => log.level;
            token_ttl_seconds => auth.token_ttl_seconds;
            generate_keys_endpoint_enabled => keys.generate_endpoint_enabled;
            failed_logins_per_15min => rate_limits.failed_logins_per_15min;
            registrations_per_hour => rate_limits.registrations_per_hour;
            generate_keys_per_minute => rate_limits.generate_keys_per_minute;
            requests_per_token_per_minute => rate_limits.requests_per_token_per_minute;
            unauthenticated_per_minute => rate_limits.unauthenticated_per_minute;
            trusted_proxies => trusted_proxies;
            cors_origins => api.cors_origins;
            host_devices => storage.host_devices;
            write_quorum => storage.write_quorum;
            commit_timeout_seconds => storage.commit_timeout_seconds;
            inventory_page_timeout_seconds => storage.inventory_page_timeout_seconds;
            devices_per_profile => devices.per_profile;
            max_connections => connections.max;
            max_connections_per_address => connections.per_address;
            header_timeout_seconds => connections.header_timeout_seconds;
            body_timeout_seconds => connections.body_timeout_seconds;
            commands_per_lane => commands.queued_per_lane;
            sealed => keys.sealed;
        }
        if let Some(path) = &args.root_key_file {
            s.keys.root_key_file = Some(path.clone());
        }
        if let Some(path) = &args.metrics_token_file {
            s.metrics.token_file = Some(path.clone());
        }
        if let Some(url) = &args.database_url {
            s.database_url = Some(url.clone());
        }
        if let Some(url) = &args.upstream_public_url {
            s.upstream.public_url = Some(url.clone());
        }
        if let Some(url) = &args.downstream_public_url {
            s.downstream.public_url = Some(url.clone());
        }
        if let Some(url) = &args.api_public_url {
            s.api.public_url = Some(url.clone());
        }
        if let Some(url) = &args.ws_public_url {
            s.ws.public_url = Some(url.clone());
        }
        if let Some(url) = &args.bus_url {
            s.bus_url = Some(crate::bus::BusUrl(url.clone()));
        }
        if let Some(url) = &args.bus_device_url {
            s.bus_device_url = Some(crate::bus::BusUrl(url.clone()));
        }
        if let Some(prefix) = &args.bus_prefix {
            s.bus_prefix = prefix.clone();
        }
        if !(1..=privicore_domain::auth::MAX_TOKEN_TTL_SECONDS).contains(&s.auth.token_ttl_seconds)
        {
            anyhow::bail!("auth.token_ttl_seconds must be between 1 and 2592000");
        }
        let st = &s.streams;
        if st.upload_idle_seconds == 0
            || st.upload_max_duration_seconds == 0
            || st.download_auth_seconds == 0
            || st.upload_max_bytes < privicore_domain::data_token::MIN_PAYLOAD as u64
            || st.fanout_in_flight == 0
        {
            anyhow::bail!(
                "stream limits must be at least 1 (uploads at least 28 bytes, timeouts 1 second)"
            );
        }
        if s.storage.commit_timeout_seconds == 0 || s.storage.inventory_page_timeout_seconds == 0 {
            anyhow::bail!("storage timeouts must be at least 1 second");
        }
        let c = &s.connections;
        if c.max == 0 || c.per_address == 0 || s.commands.queued_per_lane == 0 {
            anyhow::bail!("connection and queue limits must be at least 1");
        }
        if c.header_timeout_seconds == 0 || c.body_timeout_seconds == 0 {
            anyhow::bail!("connection timeouts must be at least 1 second");
        }
        s.edge()?;
        s.metadata_store()?;
        crate::bus::check(&s)?;
        Ok(s)
    }

    /// Where the metadata lives, as `database_url` says.
    pub fn metadata_store(&self) -> anyhow::Result<MetadataBackend> {
        match self.database_url.as_deref().map(str::trim) {
            None | Some("") | Some("sqlite://") | Some("sqlite:") => {
                Ok(MetadataBackend::Embedded(self.database_path()))
            }
            Some(url) if privicore_store_postgres::is_postgres_url(url) => {
                Ok(MetadataBackend::Postgres(url.to_owned()))
            }
            Some(url) if url.starts_with("sqlite:") => anyhow::bail!(
                "database_url: the embedded store always lives in the data directory \
                 ({}); give sqlite:// or no URL",
                self.database_path().display()
            ),
            Some(_) => anyhow::bail!("database_url: expected postgres://… or sqlite://"),
        }
    }

    /// `trusted_proxies`, parsed: a CIDR, or a single address.
    pub fn trusted_proxy_networks(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| anyhow::anyhow!("trusted_proxies: not a CIDR or address: {text}"))
            })
            .collect()
    }

    /// The HTTP edge's settings, checked.
    pub fn edge(&self) -> anyhow::Result<privicore_http::Edge> {
        Ok(
            privicore_http::Edge::new(self.trusted_proxy_networks()?, &self.api.cors_origins)
                .map_err(|e| anyhow::anyhow!("api.cors_origins: {e}"))?
                .with_metrics_token(self.metrics.token()?),
        )
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("privicore.db")
    }

    pub fn devices_dir(&self) -> PathBuf {
        self.data_dir.join("devices")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::default();
        assert_eq!((s.api.port, s.ws.port), (8009, 8083));
        assert_eq!(s.data_dir, PathBuf::from("./privicore-data"));
        assert_eq!(s.auth.token_ttl_seconds, 8 * 3600);
        assert_eq!(s.storage.commit_timeout_seconds, 60);
        assert_eq!(s.devices.per_profile, 100);
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privicore.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/privicore\"\n[api]\nport = 9000\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            api_port: Some(9100),
            ..Default::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/srv/privicore"));
        assert_eq!(s.api.port, 9100, "flags win over the file");
        assert_eq!(s.ws.port, 8083, "unset values keep their defaults");
        assert_eq!(s.log.format, LogFormat::Json);
    }

    #[test]
    fn the_database_url_selects_the_metadata_store() {
        let embedded = Settings::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(
            embedded.metadata_store().unwrap(),
            MetadataBackend::Embedded(PathBuf::from("./privicore-data/privicore.db"))
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privicore.toml");
        std::fs::write(&path, "database-url = \"postgres://pc@db:5432/vault\"\n").unwrap();
        let from_file = Settings::resolve(&ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            from_file.metadata_store().unwrap(),
            MetadataBackend::Postgres("postgres://pc@db:5432/vault".into())
        );
        let flag_wins = Settings::resolve(&ServeArgs {
            config: Some(path),
            database_url: Some("sqlite://".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(matches!(
            flag_wins.metadata_store().unwrap(),
            MetadataBackend::Embedded(_)
        ));
        for refused in ["sqlite:///tmp/elsewhere.db", "mysql://db/vault"] {
            assert!(
                Settings::resolve(&ServeArgs {
                    database_url: Some(refused.into()),
                    ..Default::default()
                })
                .is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn root_key_file_and_sealed_come_from_file_or_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privicore.toml");
        std::fs::write(&path, "[keys]\nroot_key_file = \"/etc/pc/root.key\"\n").unwrap();
        let from_file = Settings::resolve(&ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            from_file.keys.root_key_file,
            Some(PathBuf::from("/etc/pc/root.key"))
        );
        assert!(!from_file.keys.sealed);
        let flags = Settings::resolve(&ServeArgs {
            config: Some(path),
            root_key_file: Some(PathBuf::from("/run/secrets/root")),
            sealed: Some(true),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            flags.keys.root_key_file,
            Some(PathBuf::from("/run/secrets/root"))
        );
        assert!(flags.keys.sealed);
    }

    #[test]
    fn proxies_and_origins_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privicore.toml");
        std::fs::write(
            &path,
            "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\n\
             [api]\ncors_origins = [\"https://app.example.com\"]\n\
             [rate_limits]\nrequests_per_token_per_minute = 0\n",
        )
        .unwrap();
        let s = Settings::resolve(&ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.trusted_proxy_networks().unwrap().len(), 2);
        assert_eq!(s.api.cors_origins, ["https://app.example.com"]);
        assert_eq!(s.rate_limits.requests_per_token_per_minute, 0);
        assert_eq!(s.rate_limits.unauthenticated_per_minute, 120);
        let bad = ServeArgs {
            config: Some(path),
            trusted_proxies: Some(vec!["10.0.0.0/33".into()]),
            ..Default::default()
        };
        assert!(Settings::resolve(&bad).is_err());
        let bad = ServeArgs {
            cors_origins: Some(vec!["app.example.com".into()]),
            ..Default::default()
        };
        assert!(Settings::resolve(&bad).is_err());
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privicore.toml");
        std::fs::write(&path, "api_prot = 1\n").unwrap();
        assert!(Settings::from_file(&path).is_err());
    }

    #[test]
    fn a_broker_url_is_read_from_the_file_or_a_flag_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privicore.toml");
        std::fs::write(
            &path,
            "bus-url = \"amqp://engine:s3cret@127.0.0.1:5672/%2f\"\nbus_prefix = \"pc\"\n",
        )
        .unwrap();
        let s = Settings::resolve(&ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.bus_url.as_ref().unwrap().0,
            "amqp://engine:s3cret@127.0.0.1:5672/%2f"
        );
        assert_eq!(s.bus_prefix, "pc");
        assert!(!format!("{s:?}").contains("s3cret"));
        let flag = Settings::resolve(&ServeArgs {
            config: Some(path),
            bus_device_url: Some("amqps://devices:pw@bus.example.com/privicore".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(flag.bus_device_url.is_some());
        assert_eq!(Settings::default().bus_prefix, "privicore");
        let bad = ServeArgs {
            bus_url: Some("http://engine:hidden@host".into()),
            ..Default::default()
        };
        let error = format!("{:#}", Settings::resolve(&bad).unwrap_err());
        assert!(
            error.contains("bus_url") && !error.contains("hidden"),
            "{error}"
        );
    }
}
