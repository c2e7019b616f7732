//! The client address every per-address limit uses. The peer of the connection, unless the
//! peer is a trusted proxy (`--trusted-proxies`): then the nearest address the proxies
//! recorded in `Forwarded` (RFC 7239) or, without it, `X-Forwarded-For` that is not itself
//! a trusted proxy. Without trusted proxies both headers are ignored, so a client cannot
//! pick its own address.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The resolved client address, a request extension set before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trust(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| canonical(p.ip()));
        if !self.trust(peer) {
            return peer;
        }
        let mut nearest = peer;
        for hop in forwarded_chain(headers).into_iter().rev() {
            match hop {
                // An obfuscated or garbled hop hides who is behind it: stay with the proxy.
                None => return nearest,
                Some(ip) if self.trust(ip) => nearest = ip,
                Some(ip) => return ip,
            }
        }
        nearest
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Hops as recorded, farthest first; `None` for one that names no address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<_> = headers.get_all("forwarded").iter().collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node(v.trim().trim_matches('"')))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(|hop| node(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok().map(canonical);
    }
    text.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    const PEER: &str = "10.0.0.5:4000";

    fn peer() -> Option<SocketAddr> {
        Some(PEER.parse().unwrap())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn headers_are_ignored_without_trusted_proxies() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        assert_eq!(proxies(&[]).client(peer(), &h), ip("10.0.0.5"));
        assert_eq!(
            proxies(&["192.168.0.0/16"]).client(peer(), &h),
            ip("10.0.0.5"),
            "the peer is not a trusted proxy"
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(trusted.client(peer(), &h), ip("203.0.113.9"));
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9:5555"),
        ]);
        assert_eq!(trusted.client(peer(), &h), ip("203.0.113.9"));
        assert_eq!(trusted.client(peer(), &HeaderMap::new()), ip("10.0.0.5"));
        let h = headers(&[("x-forwarded-for", "10.1.1.1")]);
        assert_eq!(trusted.client(peer(), &h), ip("10.1.1.1"), "all trusted");
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            (
                "forwarded",
                "for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
            ),
        ]);
        assert_eq!(trusted.client(peer(), &h), ip("2001:db8:cafe::17"));
    }

    #[test]
    fn an_obfuscated_hop_leaves_the_proxy_as_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("forwarded", "for=192.0.2.1, for=_hidden, for=10.0.0.9")]);
        assert_eq!(trusted.client(peer(), &h), ip("10.0.0.9"));
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(trusted.client(peer(), &h), ip("10.0.0.5"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let trusted = proxies(&["127.0.0.0/8"]);
        let peer = Some("[::ffff:127.0.0.1]:80".parse().unwrap());
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(trusted.client(peer, &h), ip("203.0.113.9"));
    }
}
