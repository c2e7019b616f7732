//! A storage device played by the test itself on the embedded bus, to send what a real
//! device would not.

use super::{External, WAIT};
use privicore_client::KeyPair;
use privicore_storage_device::{Bundle, Link, WebSocketLink, connect_websocket};
use privicore_wire::bus::{self, Envelope, kind};

pub struct RawDevice {
    pub id: String,
    key: String,
    link: WebSocketLink,
}

impl RawDevice {
    /// Connects with the device's bundle and says hello with a fresh key; the engine must
    /// welcome it.
    pub async fn connect(device: &External) -> Self {
        let bundle = Bundle::from_json(&std::fs::read_to_string(&device.bundle).unwrap()).unwrap();
        let link = connect_websocket(
            &bundle.embedded_bus_url(),
            &bundle.rabbit_user,
            &bundle.rabbit_pass,
        )
        .await
        .unwrap();
        let mut raw = Self {
            id: device.id.clone(),
            key: KeyPair::generate().public().to_hex(),
            link,
        };
        raw.fence().await;
        raw
    }

    pub async fn send(&mut self, kind: &str, body: impl serde::Serialize + Send + Sync + 'static) {
        let env = Envelope::new(kind, &self.id, None, body);
        self.link.send(env).await.unwrap();
    }

    /// The next message from the engine other than a bus acknowledgement.
    pub async fn next(&mut self) -> Envelope {
        loop {
            let env = tokio::time::timeout(WAIT, self.link.recv())
                .await
                .expect("the engine sends")
                .expect("the link stays open");
            if env.kind != kind::ACK {
                return env;
            }
        }
    }

    /// A hello and its welcome: the engine's inbox took every message sent before.
    pub async fn fence(&mut self) {
        let hello = bus::Hello {
            public_key: self.key.clone(),
            software: bus::Software {
                name: "raw-test-device".into(),
                version: "1".into(),
            },
            roles: vec!["storage".into()],
            capacity: bus::Capacity {
                bytes_used: 0,
                bytes_free: 1 << 30,
            },
            object_count: 0,
        };
        self.send(kind::HELLO, hello).await;
        loop {
            let env = self.next().await;
            if env.kind == kind::WELCOME {
                return;
            }
            assert_ne!(env.kind, kind::REJECTED, "{}", env.to_text());
        }
    }

    /// Claims to have stored `chunk`'s object.
    pub async fn claim_stored(&mut self, chunk: &bus::StoreChunk) {
        let stored = bus::Stored {
            transfer_id: chunk.transfer_id.clone(),
            token: chunk.token.clone(),
            version: chunk.version,
            sha256: chunk.sha256.clone(),
            bytes_stored: 100,
        };
        self.send(kind::STORED, stored).await;
    }
}
