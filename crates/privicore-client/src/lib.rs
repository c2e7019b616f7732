//! A client for the privicore engine, as an application would use it: typed HTTP calls,
//! a WebSocket session that joins the profile's channel, and an awaiter that turns the
//! asynchronous command model into `await`.

mod api;
mod data;
mod directory;
mod error;
mod flows;
mod governance;
mod http;
mod oauth;
mod session;
mod stream;

pub use api::{
    Accepted, Authenticated, CabKey, GeneratedKeys, ProfileInfo, PublicKeyInfo, QrToken,
    RequestStatus, TokenExpiry, TokenGrant,
};
pub use data::DataRequest;
pub use error::ClientError;
pub use flows::ACK_WAIT;
pub use http::{Body, Client, RawResponse};
pub use privicore_wire::{KeyPair, SignedPublicKey};
pub use session::{CommandOutcome, Session};
pub use stream::UploadAccepted;
