//! The `privicore` binary's library half: settings, logging and the server wiring, so the
//! integration tests can start the very same server on ephemeral ports.

pub mod audit;
pub mod authenticator;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod config;
pub mod device_cmd;
pub mod hosting;
pub mod keys;
pub mod logging;
pub mod operator;
pub mod request_log;
pub mod server;
pub mod store;
