use privicore_domain::auth::DEFAULT_TOKEN_TTL_SECONDS;
use privicore_domain::password::HashCost;
use std::time::Duration;

/// Settings of the application layer (listeners and storage are configured by the binary).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub token_ttl_seconds: i64,
    pub hash_cost: HashCost,
    /// Public base URL of the API, used in QR payloads.
    pub api_public_url: String,
    pub generate_keys_enabled: bool,
    /// Parallel command lanes; commands of one profile always share a lane.
    pub command_lanes: usize,
    pub replay_window: Duration,
    pub replay_capacity: usize,
    pub limits: RateLimits,
}

/// README §3.5; `None` switches a limit off.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub failed_logins_per_15min: Option<u32>,
    pub registrations_per_hour: Option<u32>,
    pub generate_keys_per_minute: Option<u32>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            failed_logins_per_15min: Some(10),
            registrations_per_hour: Some(20),
            generate_keys_per_minute: Some(60),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            token_ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
            hash_cost: HashCost::default(),
            api_public_url: "http://127.0.0.1:8009".into(),
            generate_keys_enabled: true,
            command_lanes: 16,
            replay_window: Duration::from_secs(60),
            replay_capacity: 1000,
            limits: RateLimits::default(),
        }
    }
}
