//! SSRF policy applied where it counts: the rules of `model::address` run on the addresses that
//! DNS actually returned, inside the HTTP client's resolver, so the address connected to is always
//! one that passed — a hostname cannot smuggle a private address past a check made at creation.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::model::address::{is_localhost_name, literal_ip, Blocked, Policy, LOOPBACK};

/// How long an endpoint's creation waits for DNS before it warns and goes on.
pub const CREATION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// A warning for an endpoint URL whose host deliveries could not reach today: a name that does
/// not resolve (a typo, or DNS not set up yet) or resolves only to refused addresses. Only a
/// warning: DNS can be down for a moment, and every delivery resolves and checks again. `None`
/// for IP literals and `localhost`, which creation has judged already.
pub fn reachability_warning(url: &str, policy: &Policy) -> Option<String> {
    let timeout = CREATION_LOOKUP_TIMEOUT;
    let parsed = url::Url::parse(url).ok()?;
    if literal_ip(&parsed).is_some() {
        return None;
    }
    let host = parsed.host_str()?.to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.clone();
    // getaddrinfo has no timeout of its own: a lookup that hangs is left behind.
    std::thread::spawn(move || {
        use std::net::ToSocketAddrs;
        let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Iterator::collect::<Vec<SocketAddr>>));
    });
    let looked_up = match rx.recv_timeout(timeout) {
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        Ok(result) => result.map_err(|e| e.to_string()),
    };
    judge_lookup(&host, looked_up, policy)
}

/// The warning for what a name's lookup gave, if any.
fn judge_lookup(host: &str, looked_up: Result<Vec<SocketAddr>, String>, policy: &Policy) -> Option<String> {
    let addrs = match looked_up {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return judge_lookup(host, Err("no addresses".into()), policy),
        Err(why) => {
            return Some(format!(
                "{host} does not resolve ({why}): deliveries will fail with E_DNS until it does; check the spelling"
            ))
        }
    };
    policy.filter(addrs).err().map(|blocked| {
        let list: Vec<String> = blocked.0.iter().map(IpAddr::to_string).collect();
        format!(
            "{host} resolves only to addresses deliveries may not reach ({}): they will fail with \
             E_BLOCKED_ADDRESS (the operator can allow them with WEBHOOKS_ALLOWED_NETWORKS)",
            list.join(", ")
        )
    })
}

/// The resolver error when the name did not resolve.
#[derive(Debug)]
pub struct DnsFailure(pub String);

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DNS lookup failed: {}", self.0)
    }
}
impl std::error::Error for DnsFailure {}

/// How long a resolved (and permitted) name is reused within one process.
const RESOLVE_CACHE_FOR: Duration = Duration::from_secs(30);

/// ureq resolver that keeps only permitted addresses.
///
/// ureq resolves before every request, even one that reuses a pooled connection, and with a
/// timeout set it does so on a new thread; for a dispatcher sending thousands of requests that
/// was a thread per request. So IP literals are taken as they are, and a name's permitted
/// addresses are reused for 30 seconds — they were checked when resolved, and only they are
/// ever connected to.
#[derive(Debug)]
pub struct GuardedResolver {
    pub policy: Arc<Policy>,
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, Vec<SocketAddr>)>>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<Policy>) -> Self {
        GuardedResolver { policy, inner: DefaultResolver::default(), cache: Mutex::new(HashMap::new()) }
    }

    fn answer(&self, addrs: &[SocketAddr]) -> ResolvedSocketAddrs {
        let mut out = self.empty();
        for a in addrs.iter().take(16) {
            // ResolvedSocketAddrs holds 16
            out.push(*a);
        }
        out
    }
}

/// The host and port of a URI, with the scheme's default port.
fn host_port(uri: &Uri) -> Option<(String, u16)> {
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })?;
    Some((host, port))
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        // Loopback names are refused before any lookup: some resolvers answer them, some do not.
        let loopback = IpAddr::from(LOOPBACK);
        if uri.host().is_some_and(is_localhost_name) && !self.policy.permits(loopback) {
            return Err(ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, Blocked(vec![loopback]))));
        }
        let key = host_port(uri);
        if let Some((host, port)) = &key {
            if let Ok(ip) = host.parse::<IpAddr>() {
                let permitted = self
                    .policy
                    .filter([SocketAddr::new(ip, *port)])
                    .map_err(|b| ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, b)))?;
                return Ok(self.answer(&permitted));
            }
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, addrs)) = cache.get(&format!("{host}:{port}")) {
                if at.elapsed() < RESOLVE_CACHE_FOR {
                    return Ok(self.answer(addrs));
                }
            }
        }
        let resolved = match self.inner.resolve(uri, config, timeout) {
            Ok(r) => r,
            Err(ureq::Error::Timeout(t)) => return Err(ureq::Error::Timeout(t)),
            Err(e) => return Err(ureq::Error::Io(io::Error::new(io::ErrorKind::NotFound, DnsFailure(e.to_string())))),
        };
        let permitted = self
            .policy
            .filter(resolved.iter().copied())
            .map_err(|b| ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, b)))?;
        if let Some((host, port)) = key {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert(format!("{host}:{port}"), (Instant::now(), permitted.clone()));
        }
        Ok(self.answer(&permitted))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_are_judged_without_a_lookup_and_names_are_remembered() {
        use ureq::unversioned::resolver::Resolver as _;
        let allowed = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let r = GuardedResolver::new(Arc::new(Policy { allowed }));
        let cfg = ureq::Agent::config_builder().build();
        let resolve = |u: &str| r.resolve(&u.parse::<Uri>().unwrap(), &cfg, NextTimeout::default());
        let got: Vec<SocketAddr> = resolve("http://127.0.0.1:9/x").unwrap().iter().copied().collect();
        assert_eq!(got, vec!["127.0.0.1:9".parse::<SocketAddr>().unwrap()]);
        assert!(resolve("http://10.0.0.1/").is_err(), "a refused literal is refused without a lookup");
        assert!(resolve("http://[::ffff:10.0.0.1]/").is_err());
        assert!(r.cache.lock().unwrap().is_empty(), "literals need no cache entry");
        let first: Vec<SocketAddr> = resolve("http://localhost:9/").unwrap().iter().copied().collect();
        assert!(r.cache.lock().unwrap().contains_key("localhost:9"), "a name's checked addresses are kept");
        let second: Vec<SocketAddr> = resolve("http://localhost:9/").unwrap().iter().copied().collect();
        assert_eq!(first, second);
        assert!(first.iter().all(|a| r.policy.permits(a.ip())));
    }

    use super::*;

    #[test]
    fn creation_warns_about_names_deliveries_cannot_reach() {
        let none = Policy::default();
        let w = reachability_warning("https://exmaple.invalid/hook", &none).expect("RFC 6761: .invalid never resolves");
        assert!(w.starts_with("exmaple.invalid does not resolve") && w.contains("E_DNS"), "{w}");
        // localhost and literals were judged at creation, without a lookup.
        assert_eq!(reachability_warning("http://localhost:9/", &none), None);
        assert_eq!(reachability_warning("http://127.0.0.1:9/", &none), None);
        // What a lookup gave: nothing, only refused addresses, or something reachable.
        assert!(judge_lookup("h.example", Ok(vec![]), &none).unwrap().contains("does not resolve (no addresses)"));
        let private: Vec<SocketAddr> = vec!["10.0.0.7:443".parse().unwrap(), "[fd00::1]:443".parse().unwrap()];
        let w = judge_lookup("h.example", Ok(private.clone()), &none).unwrap();
        assert!(
            w.contains("(10.0.0.7, fd00::1)")
                && w.contains("E_BLOCKED_ADDRESS")
                && w.contains("WEBHOOKS_ALLOWED_NETWORKS"),
            "{w}"
        );
        let open = Policy { allowed: vec!["10.0.0.0/8".parse().unwrap()] };
        assert_eq!(judge_lookup("h.example", Ok(private), &open), None);
        assert_eq!(judge_lookup("h.example", Ok(vec!["93.184.215.14:443".parse().unwrap()]), &none), None);
    }
}
