//! Storage device software. A device keeps layer-2 sealed chunks for its profile and seals
//! them again at rest (layer 3) with a key derived from its own master key, which never
//! leaves it. It speaks the device bus contract over any [`Link`]: in-process when the
//! engine hosts it, or the embedded WebSocket bus or an AMQP broker when it runs as its own process.

pub mod at_rest;
mod bundle;
mod device;
mod identity;
mod link;
mod link_amqp;
mod objects;

pub use bundle::Bundle;
pub use device::{Handled, Reading, SessionEnd, StorageDevice};
pub use identity::{DeviceIdentity, KeyWrap};
pub use link::{Link, LinkError, WebSocketLink, channel_pair, connect_websocket};
pub use link_amqp::{AmqpLink, connect_amqp};
pub use objects::{ObjectStore, Upload, UploadError};
