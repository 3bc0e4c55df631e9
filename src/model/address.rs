//! Which addresses deliveries may reach: public unicast addresses, and the networks the
//! operator allows (`WEBHOOKS_ALLOWED_NETWORKS`). Pure rules; the HTTP client's resolver
//! (`outbound::network`) applies them to the addresses DNS actually returns.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// True for globally routable unicast addresses. Everything else — loopback, private, link-local,
/// CGNAT, documentation, benchmarking, multicast, reserved, unspecified, ULA, 6to4, Teredo — is
/// not public.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network"
        || a == 10                             // private
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || a == 127                            // loopback
        || (a == 169 && b == 254)              // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay anycast
        || (a == 192 && b == 168)              // private
        || (a == 198 && (b == 18 || b == 19))  // benchmarking
        || (a == 198 && b == 51 && c == 100)   // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)    // TEST-NET-3
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Global unicast is 2000::/3; inside it, documentation, the IETF block (Teredo included) and
    // 6to4 (which embeds an IPv4 address) are refused.
    (s[0] & 0xe000) == 0x2000
        && !(s[0] == 0x2001 && s[1] == 0x0db8)
        && !(s[0] == 0x2001 && s[1] < 0x0200)
        && s[0] != 0x2002
}

/// The delivery address policy of one installation.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allowed: Vec<Cidr>,
}

impl Policy {
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        is_public(ip) || self.allowed.iter().any(|c| c.contains(ip))
    }

    /// The permitted addresses among those a name resolved to, in their order; the connection
    /// is only ever made to one of these. Refused when none is permitted (or there were none).
    pub fn filter(&self, resolved: impl IntoIterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, Blocked> {
        let (permitted, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
            resolved.into_iter().partition(|a| self.permits(a.ip()));
        if permitted.is_empty() {
            return Err(Blocked(refused.iter().map(SocketAddr::ip).collect()));
        }
        Ok(permitted)
    }
}

pub const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

/// `localhost` and `*.localhost`, which RFC 6761 reserves for loopback whatever DNS says.
pub fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// The address a URL's host spells out, if it does: an IP literal (which the URL parser has
/// already normalised from decimal, octal or hex IPv4 forms), or loopback for `localhost` and
/// `*.localhost` (RFC 6761). `None` for any other name: it must be resolved to be judged.
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Domain(d) => is_localhost_name(d).then(|| IpAddr::from(LOOPBACK)),
        url::Host::Ipv4(v4) => Some(v4.into()),
        url::Host::Ipv6(v6) => Some(v6.into()),
    }
}

/// The resolver error when every address a name resolved to was refused.
#[derive(Debug)]
pub struct Blocked(pub Vec<IpAddr>);

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(|ip| ip.to_string()).collect();
        write!(
            f,
            "refused to connect to {}: not a public address (allow it with WEBHOOKS_ALLOWED_NETWORKS)",
            list.join(", ")
        )
    }
}
impl std::error::Error for Blocked {}

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address means a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Every IPv4 address (0.0.0.0/0).
    pub fn everything_v4() -> Cidr {
        Cidr { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), prefix: 0 }
    }

    /// Every IPv6 address (::/0).
    pub fn everything_v6() -> Cidr {
        Cidr { addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED), prefix: 0 }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| "bad prefix length".to_string())?
            }
            Some(_) => return Err("bad prefix length".into()),
            None => max,
        };
        if prefix > max {
            return Err(format!("prefix length over {max}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused() {
        for s in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2001::1",
            "64:ff9b::7f00:1",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert!(!is_public(ip), "{s} must not be public");
            assert!(!Policy::default().permits(ip), "{s}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for s in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(s.parse().unwrap()), "{s} is public");
        }
    }

    #[test]
    fn cidr_matching() {
        let v6: Cidr = "fc00::/7".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
    }
    #[test]
    fn allowed_networks_open_exactly_their_range() {
        let p = Policy { allowed: vec!["127.0.0.1/32".parse().unwrap()] };
        assert!(p.permits("127.0.0.1".parse().unwrap()));
        assert!(p.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!p.permits("127.0.0.2".parse().unwrap()));
        assert!(!p.permits("::1".parse().unwrap()));
    }
}
