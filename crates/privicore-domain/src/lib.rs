//! The privicore domain: what profiles, tokens, keys, devices and commands are, the rules
//! they obey, and the ports (metadata store, buses) the engine needs from the outside
//! world. Nothing here knows about HTTP or SQL.

pub mod audit;
pub mod auth;
pub mod command;
pub mod counter;
pub mod data_token;
pub mod device;
pub mod directory;
pub mod effect;
pub mod envelope;
pub mod error;
pub mod event;
pub mod governance;
pub mod idempotency;
pub mod ids;
pub mod keys;
pub mod oauth;
pub mod password;
pub mod ports;
pub mod profile;
pub mod secret;
pub mod time;

pub use error::{Error, ErrorKind, Reason};
pub use ids::{BallotId, CommandId, PolicyId, PoolId, ProfileId, VotingConfigurationId};
pub use time::Timestamp;
