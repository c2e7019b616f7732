//! The edge: axum routers for the API and WebSocket listeners. Handlers parse the wire,
//! call the engine and turn its errors into the contract's JSON envelope.

mod body;
mod client_ip;
mod console;
mod cors;
mod device_bus;
mod error;
mod flush;
mod guard;
mod idempotency;
mod metrics;
pub mod openapi;
mod reply;
mod routes;
mod serve;
mod streams;
mod throttle;
mod ws;
mod ws_close;

/// Every route of the API and what it asks of the caller.
pub use routes::table;

pub use body::{Fields, parse_body};
pub use client_ip::ClientIp;
pub use error::ApiError;
pub use routes::{AppState, Edge, SpoolFree, SpoolProbe, SpoolStatus, api_router, ws_router};
pub use serve::{ConnectionLimits, serve};
pub use streams::{downstream_router, upstream_router};
