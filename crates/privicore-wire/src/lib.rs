//! Wire formats that both the engine and its clients must agree on, byte for byte.

pub mod bus;
pub mod signed_key;
pub mod token;

pub use signed_key::{KeyPair, SignedKeyError, SignedPublicKey};
pub use token::{TokenKind, generate_secret, generate_token, is_well_formed_token};
