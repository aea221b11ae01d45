//! The SSRF guard of the web tools.
//!
//! A tool that fetches URLs chosen by an LLM must not become a way into the
//! machine's own network: loopback services, the LAN, a cloud's metadata
//! endpoint. The guard refuses such addresses
//!
//! - after DNS resolution, in the HTTP client's resolver, so a name that
//!   resolves to 127.0.0.1 is caught and the address checked is the one
//!   connected to (no second lookup to rebind);
//! - for IP literals in the URL, before the request and on every redirect
//!   (the resolver is not asked for those);
//!
//! unless the address is inside one of the configured `allow` networks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use oi_ipc_schema::ErrorCode;
use oi_kernel::harness::ServiceError;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A refused destination.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Blocked {
    #[error(
        "{host} is {addr} ({why}); refused by the SSRF guard (allow it in [web] allow_addresses if you mean it)"
    )]
    Address {
        host: String,
        addr: IpAddr,
        why: &'static str,
    },
    #[error("{0}: only http and https URLs can be fetched")]
    Scheme(String),
    #[error("{0}: the URL has no host")]
    NoHost(String),
    #[error("{host} did not resolve: {error}")]
    Resolve { host: String, error: String },
}

/// Why an address is not public, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4 inside IPv6 reaches the same hosts.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4).or(Some("an IPv4-mapped address"));
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                // fd00:ec2::254 (AWS metadata over IPv6) is in here too.
                Some("private (unique local)")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (s[0] & 0xffc0) == 0xfec0 {
                Some("site-local")
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64: the embedded IPv4 address is what is reached.
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                non_public_v4(v4).map(|_| "NAT64 of a non-public IPv4 address")
            } else if s[0] == 0x2002 {
                let v4 =
                    Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
                non_public_v4(v4).map(|_| "6to4 of a non-public IPv4 address")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation")
            } else if s[..6] == [0, 0, 0, 0, 0, 0] {
                Some("IPv4-compatible (deprecated)")
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("a cloud metadata endpoint")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("\"this network\"")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared address space (carrier-grade NAT)")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if o[0] >= 240 {
        Some("reserved")
    } else if ip.is_documentation() {
        Some("documentation")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments")
    } else {
        None
    }
}

/// A network the guard lets through, on every port or on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub net: IpNet,
    pub port: Option<u16>,
}

impl From<IpNet> for Allowed {
    fn from(net: IpNet) -> Allowed {
        Allowed { net, port: None }
    }
}

/// The guard: refuses non-public addresses outside `allow`.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Vec<Allowed>,
}

impl Guard {
    pub fn new(allow: Vec<IpNet>) -> Guard {
        Guard::allowing(allow.into_iter().map(Allowed::from).collect())
    }

    /// A guard whose exceptions may name a port.
    pub fn allowing(allow: Vec<Allowed>) -> Guard {
        Guard { allow }
    }

    /// Checks one address a host resolved to (or a literal), on any port:
    /// an exception for one port does not count.
    pub fn check(&self, host: &str, addr: IpAddr) -> Result<(), Blocked> {
        self.check_on(host, addr, None)
    }

    /// Checks one address on `port` (when known).
    pub fn check_on(&self, host: &str, addr: IpAddr, port: Option<u16>) -> Result<(), Blocked> {
        let canonical = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        if self
            .allow
            .iter()
            .any(|a| a.net.contains(&canonical) && (a.port.is_none() || a.port == port))
        {
            return Ok(());
        }
        match non_public(addr) {
            Some(why) => Err(Blocked::Address {
                host: host.to_string(),
                addr,
                why,
            }),
            None => Ok(()),
        }
    }

    /// Checks a URL before a request or a redirect: the scheme, and the
    /// host when it is an IP literal (names are checked after resolution).
    pub fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Blocked::Scheme(url.to_string()));
        }
        let port = url.port_or_known_default();
        match url.host() {
            None => Err(Blocked::NoHost(url.to_string())),
            Some(url::Host::Ipv4(ip)) => self.check_on(&ip.to_string(), IpAddr::V4(ip), port),
            Some(url::Host::Ipv6(ip)) => self.check_on(&ip.to_string(), IpAddr::V6(ip), port),
            // Names are checked after resolution. (Numeric hosts such as
            // http://2130706433/ are parsed as IPv4 literals above.)
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    /// Resolves a name and keeps only the addresses the guard allows; if
    /// none is left, says why the first was refused.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Blocked> {
        self.resolve_on(host, None).await
    }

    /// [`Guard::resolve`] for a connection to `port`.
    pub async fn resolve_on(&self, host: &str, port: Option<u16>) -> Result<Vec<IpAddr>, Blocked> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| Blocked::Resolve {
                host: host.to_string(),
                error: e.to_string(),
            })?
            .collect();
        let mut first_refusal = None;
        let mut ok = Vec::new();
        for a in found {
            match self.check_on(host, a.ip(), port) {
                Ok(()) => ok.push(a.ip()),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        if ok.is_empty() {
            return Err(first_refusal.unwrap_or_else(|| Blocked::Resolve {
                host: host.to_string(),
                error: "no addresses".into(),
            }));
        }
        Ok(ok)
    }
}

/// The HTTP client's resolver: every connection (the first request and
/// each redirect) goes through [`Guard::resolve`].
struct GuardedResolver(Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let ips = guard.resolve(name.as_str()).await?;
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Settings of a guarded client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub timeout: Duration,
    pub max_redirects: u32,
    pub user_agent: String,
    /// Follow redirects only within the first URL's origin (scheme, host
    /// and port); a redirect elsewhere is returned, not followed. For
    /// requests that carry a credential: reqwest strips only a few known
    /// headers on a cross-origin redirect, not a custom `X-Api-Key`.
    pub same_origin_only: bool,
}

/// An HTTP client whose every connection and redirect passes the guard,
/// with no proxy from the environment (a proxy would connect for us,
/// unchecked), no client-level retries, and a bounded number of redirects.
pub fn client(guard: Arc<Guard>, s: &ClientSettings) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto();
    let max = s.max_redirects as usize;
    let redirect_guard = guard.clone();
    let same_origin_only = s.same_origin_only;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if same_origin_only
            && attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() != attempt.url().origin())
        {
            return attempt.stop();
        }
        if attempt.previous().len() > max {
            let msg = format!(
                "more than {max} redirects (last to {}); stopped",
                attempt.url()
            );
            return attempt.error(msg);
        }
        match redirect_guard.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(e) => {
                let msg = format!("redirect refused: {e}");
                attempt.error(msg)
            }
        }
    });
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver(guard)))
        .no_proxy()
        .redirect(policy)
        .retry(reqwest::retry::never())
        .timeout(s.timeout)
        .connect_timeout(s.timeout.min(Duration::from_secs(10)))
        .user_agent(s.user_agent.clone())
        .build()
}

/// A guard and the HTTP clients behind it, built once per config: the URL
/// checks before a request use the same guard as the clients' resolver and
/// redirect policy. The web and http adapters each hold one.
pub struct Guarded {
    pub guard: Arc<Guard>,
    pub client: reqwest::Client,
    /// For requests that carry a credential: redirects are followed only
    /// within the first URL's origin.
    pub credentialed: reqwest::Client,
}

impl Guarded {
    pub fn new(guard: Guard, settings: &ClientSettings) -> Result<Guarded, ServiceError> {
        let guard = Arc::new(guard);
        let built = |same_origin_only: bool| {
            let s = ClientSettings {
                same_origin_only,
                ..settings.clone()
            };
            client(guard.clone(), &s).map_err(|e| {
                ServiceError::config_error(format!("cannot build the HTTP client: {e}"))
            })
        };
        Ok(Guarded {
            client: built(false)?,
            credentialed: built(true)?,
            guard,
        })
    }
}

/// What a failed fetch means for the caller: the guard's refusals are
/// `denied`, timeouts `timeout`, the rest `unavailable`.
pub fn fetch_error(tool: &str, url: &str, e: &reqwest::Error) -> ServiceError {
    let chain = error_chain(e);
    let code = if chain.contains("SSRF guard") || chain.contains("redirect refused") {
        ErrorCode::Denied
    } else if e.is_timeout() {
        ErrorCode::Timeout
    } else if e.is_redirect() {
        ErrorCode::BadRequest
    } else {
        ErrorCode::Unavailable
    };
    ServiceError::new(code, format!("{tool}: {url}: {chain}"))
}

/// Installs rustls's ring provider (ring is already in the build for the
/// vault) as the process's one crypto provider; later calls do nothing.
/// Every outbound HTTPS client in the project (the adapters', the LLM
/// router's, the Telegram gateway's) calls this one.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An error and its causes in one line (reqwest wraps the guard's refusal
/// a few levels deep).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    // Where the last link's text starts: a source that repeats it and
    // says more ("Connection error" then "Connection error: bad
    // certificate") takes its place instead of following it.
    let mut last = 0;
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if text.starts_with(&out[last..]) {
            out.truncate(last);
            out.push_str(&text);
        } else if !out.contains(&text) {
            out.push_str(": ");
            last = out.len();
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An error with a message and a source, for the chain.
    #[derive(Debug)]
    struct Link(&'static str, Option<Box<Link>>);

    impl std::fmt::Display for Link {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Link {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn an_error_chain_says_each_thing_once() {
        let chain = |links: &[&'static str]| {
            let e = links
                .iter()
                .rev()
                .fold(None, |inner, t| Some(Box::new(Link(t, inner))))
                .unwrap();
            error_chain(&*e)
        };
        assert_eq!(chain(&["connect", "refused"]), "connect: refused");
        // A source its outer error already quotes adds nothing.
        assert_eq!(chain(&["connect: refused", "refused"]), "connect: refused");
        // A source that repeats its outer error and says more replaces it.
        assert_eq!(
            chain(&[
                "SMTP",
                "Connection error",
                "Connection error: bad certificate"
            ]),
            "SMTP: Connection error: bad certificate"
        );
        assert_eq!(
            chain(&[
                "Connection error",
                "Connection error: bad certificate",
                "bad certificate"
            ]),
            "Connection error: bad certificate"
        );
    }

    #[test]
    fn non_public_ranges_are_named() {
        for (a, why) in [
            ("127.0.0.1", "loopback"),
            ("127.5.5.5", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "a cloud metadata endpoint"),
            ("100.100.100.200", "a cloud metadata endpoint"),
            ("169.254.1.1", "link-local"),
            ("0.0.0.0", "\"this network\""),
            ("100.64.0.1", "shared address space (carrier-grade NAT)"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("::1", "loopback"),
            ("fd00:ec2::254", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a00:1", "NAT64 of a non-public IPv4 address"),
            ("2002:7f00:1::", "6to4 of a non-public IPv4 address"),
        ] {
            assert_eq!(non_public(ip(a)), Some(why), "{a}");
        }
        for a in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert_eq!(non_public(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn allow_lets_a_listed_network_through_and_nothing_else() {
        let g = Guard::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(g.check("x", ip("127.0.0.1")).is_ok());
        assert!(g.check("x", ip("::ffff:127.0.0.1")).is_ok());
        let e = g.check("x", ip("127.0.0.2")).unwrap_err();
        assert!(e.to_string().contains("127.0.0.2 (loopback)"), "{e}");
        assert!(g.check("x", ip("10.0.0.1")).is_err());
    }

    #[test]
    fn an_exception_with_a_port_lets_only_that_port_through() {
        let local: IpNet = "127.0.0.1/32".parse().unwrap();
        let g = Guard::allowing(vec![Allowed {
            net: local,
            port: Some(8080),
        }]);
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(g.check_on("x", lo, Some(8080)).is_ok());
        assert!(g.check_on("x", lo, Some(8081)).is_err());
        assert!(
            g.check("x", lo).is_err(),
            "an unknown port is not that port"
        );
        assert!(
            g.check_url(&Url::parse("http://127.0.0.1:8080/a").unwrap())
                .is_ok()
        );
        assert!(
            g.check_url(&Url::parse("http://127.0.0.1:9/a").unwrap())
                .is_err()
        );
        assert!(
            g.check_url(&Url::parse("http://127.0.0.1/a").unwrap())
                .is_err(),
            "port 80"
        );
    }

    #[test]
    fn urls_are_checked_by_scheme_and_literal_host() {
        let g = Guard::default();
        let check = |u: &str| g.check_url(&Url::parse(u).unwrap());
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(Blocked::Scheme(_))
        ));
        assert!(matches!(
            check("http://10.0.0.1/"),
            Err(Blocked::Address { .. })
        ));
        assert!(matches!(
            check("http://[::1]:80/"),
            Err(Blocked::Address { .. })
        ));
        assert!(matches!(
            check("http://169.254.169.254/latest/meta-data/"),
            Err(Blocked::Address {
                why: "a cloud metadata endpoint",
                ..
            })
        ));
        assert!(matches!(
            check("http://2130706433/"),
            Err(Blocked::Address {
                why: "loopback",
                ..
            })
        ));
        assert!(matches!(
            check("http://0x7f.1/"),
            Err(Blocked::Address {
                why: "loopback",
                ..
            })
        ));
        assert!(check("https://example.com/").is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused() {
        let g = Guard::default();
        let e = g.resolve("localhost").await.unwrap_err();
        assert!(
            matches!(
                e,
                Blocked::Address {
                    why: "loopback",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("localhost is "), "{e}");
        let g = Guard::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert_eq!(g.resolve("localhost").await.unwrap(), vec![ip("127.0.0.1")]);
    }
}
