//! The engine's application layer: it accepts commands, runs them through supervised
//! workers, answers synchronous calls, and routes events to joined channels. It talks to
//! the world only through the ports of `privicore-domain`.

mod access;
mod config;
mod engine;
pub mod hub;
mod keys;
mod limits;
mod pipeline;
mod profiles;
mod status;
pub mod workers;

pub use config::{EngineConfig, RateLimits};
pub use engine::{Engine, Health};
pub use keys::{CabKey, GeneratedKeys};
pub use profiles::{Authenticated, Credentials, QrIssued, TokenExpiry};
pub use status::CommandStatus;
