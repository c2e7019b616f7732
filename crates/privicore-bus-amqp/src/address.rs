//! The parts of an `amqp://` / `amqps://` URL a device bundle carries.

use lapin::uri::{AMQPScheme, AMQPUri};

#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub vhost: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("vhost", &self.vhost)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl BrokerAddress {
    /// Parses an AMQP URL (`amqp://user:pass@host:port/vhost`, `%2f` for the vhost `/`).
    /// The error never repeats the URL, which holds a password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: AMQPUri = url.parse().map_err(|e: String| {
            format!("not an AMQP URL ({})", e.split(':').next().unwrap_or(""))
        })?;
        Ok(Self {
            host: uri.authority.host,
            port: uri.authority.port,
            tls: uri.scheme == AMQPScheme::AMQPS,
            vhost: uri.vhost,
            user: uri.authority.userinfo.username,
            password: uri.authority.userinfo.password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_the_bundle_coordinates() {
        let a = BrokerAddress::parse("amqp://dev:s3cret@bus.example.com:5672/%2f").unwrap();
        assert_eq!(
            (
                a.host.as_str(),
                a.port,
                a.tls,
                a.vhost.as_str(),
                a.user.as_str()
            ),
            ("bus.example.com", 5672, false, "/", "dev")
        );
        assert_eq!(a.password, "s3cret");
        let b = BrokerAddress::parse("amqps://u:p@h/privicore").unwrap();
        assert_eq!((b.port, b.tls, b.vhost.as_str()), (5671, true, "privicore"));
        assert!(!format!("{a:?}").contains("s3cret"));
        let err = BrokerAddress::parse("http://u:hidden@h").unwrap_err();
        assert!(!err.contains("hidden"), "{err}");
    }
}
