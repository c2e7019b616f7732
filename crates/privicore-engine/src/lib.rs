//! The engine's application layer: it accepts commands, runs them through supervised
//! workers, answers synchronous calls, and routes events to joined channels. It talks to
//! the world only through the ports of `privicore-domain`.

mod access;
mod audit;
mod claims;
mod config;
mod devices;
mod directory;
mod engine;
mod governance;
pub mod holds;
mod hot;
pub mod hub;
mod idempotency;
mod inbox;
mod keys;
pub mod limits;
mod oauth;
mod pipeline;
mod profiles;
mod replication;
mod secrets;
mod status;
mod storage;
mod streams;
mod tokens;
mod voting;
pub mod workers;

pub use config::{DeviceBroker, EngineConfig, RateLimits, StorageConfig, StreamConfig};
pub use devices::{DeviceBundle, DeviceListItem};
pub use directory::{DirectoryPoolInput, DirectoryUserInput, InviteInput, MemberUpdate};
pub use engine::{Adapters, DeviceHost, Engine, Health};
pub use governance::{ConfigurationInput, ConfigurationUpdate, PolicyInput};
pub use keys::{CabKey, GeneratedKeys};
pub use oauth::{ApplicationInput, IssuedTokens};
pub use privicore_domain::directory::DirectoryLimits;
pub use profiles::{Authenticated, Credentials, QrIssued, TokenExpiry};
pub use secrets::EngineSecrets;
pub use status::CommandStatus;
pub use storage::StorageDeviceItem;
pub use streams::{Download, DownloadBroken, Upload, UploadReceipt};
pub use tokens::{FileMeta, Statistics, TemporaryToken, TokenListItem};
pub use voting::VoteRecorded;
