//! Shared by the adapter tests: the broker from PRIVICORE_TEST_AMQP_URL (tests skip,
//! and say so, without it), a unique name prefix per test, and a plain client connection.
#![allow(dead_code)]

use lapin::{Connection, ConnectionProperties};
use privicore_bus_amqp::{Broker, Names};
use std::sync::Arc;
use std::time::Duration;

pub fn url(test: &str) -> Option<String> {
    match std::env::var("PRIVICORE_TEST_AMQP_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("{test}: skipped, PRIVICORE_TEST_AMQP_URL is not set");
            None
        }
    }
}

pub fn names() -> Names {
    Names::new(&format!("privicore-test-{}", uuid::Uuid::new_v4().simple()))
}

pub async fn broker(url: &str, names: &Names) -> Arc<Broker> {
    Broker::connect(url, names.clone(), Duration::from_secs(10))
        .await
        .expect("the test broker is reachable")
}

/// A client connection of its own, like a device's.
pub async fn client(url: &str) -> Connection {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(url, props)
        .await
        .expect("client connection")
}

/// Polls `check` until it holds (at most 10 s).
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}
