//! `[web]`: the search engine, fetch limits and the SSRF guard's
//! exceptions. The http adapter's requests go through the same section.

use std::time::Duration;

use oi_kernel::config::{Config, Invalid, Section, SectionRule, at_least_one, http_url};
use oi_sandbox::netguard::{ClientSettings, Guard};
use serde::{Deserialize, Serialize};

oi_kernel::vocabulary! {
    /// Where `web_search` asks.
    SearchEngine default Duckduckgo {
        Duckduckgo = "duckduckgo",
        /// A SearXNG instance's JSON API at `search_url`.
        Searxng = "searxng",
    }
}

/// The web adapters (`web_search`, `web_fetch`, `http_request`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub search_engine: SearchEngine,
    pub search_url: String,
    pub max_results: u32,
    /// Seconds a search result stays cached.
    pub cache_secs: u64,
    pub user_agent: String,
    pub timeout_secs: u64,
    pub max_response_bytes: u64,
    pub max_redirects: u32,
    /// Characters of page text one `web_fetch` returns at most.
    pub max_text_chars: u64,
    /// Addresses or networks (`127.0.0.1`, `10.1.0.0/16`) that the SSRF
    /// guard lets through although they are private, loopback or link-local.
    pub allow_addresses: Vec<String>,
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<WebConfig>()];

impl Section for WebConfig {
    const NAME: &'static str = "web";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        if !http_url(&self.search_url) {
            return Err(Invalid::new(
                "web.search_url",
                format!(
                    "web.search_url '{}' must start with http:// or https://",
                    self.search_url
                ),
            ));
        }
        for a in &self.allow_addresses {
            if parse_allowed(a).is_none() {
                return Err(Invalid::new(
                    "web.allow_addresses",
                    format!(
                        "web.allow_addresses: '{a}' is not an IP address, network or address with a port (like 127.0.0.1, 10.1.0.0/16 or 127.0.0.1:8080)"
                    ),
                ));
            }
        }
        at_least_one(&[("web.timeout_secs", self.timeout_secs)])
    }
}

impl WebConfig {
    /// The SSRF guard with `allow_addresses` let through.
    pub fn guard(&self) -> Guard {
        Guard::allowing(
            self.allow_addresses
                .iter()
                .filter_map(|a| parse_allowed(a))
                .collect(),
        )
    }

    /// The settings of the guarded clients.
    pub fn client_settings(&self) -> ClientSettings {
        ClientSettings {
            timeout: Duration::from_secs(self.timeout_secs),
            max_redirects: self.max_redirects,
            user_agent: self.user_agent.clone(),
            same_origin_only: false,
        }
    }
}

/// An entry of `allow_addresses`: a network, or an address with a port
/// (`127.0.0.1:8080`, `[::1]:8080`) that lets only that port through.
pub fn parse_allowed(s: &str) -> Option<oi_sandbox::netguard::Allowed> {
    if let Ok(sa) = s.trim().parse::<std::net::SocketAddr>() {
        return Some(oi_sandbox::netguard::Allowed {
            net: ipnet::IpNet::from(sa.ip()),
            port: Some(sa.port()),
        });
    }
    parse_net(s).map(oi_sandbox::netguard::Allowed::from)
}

/// An address (`127.0.0.1`, `::1`) or network (`10.0.0.0/8`) of
/// `allow_addresses`.
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, oi_kernel::config::ConfigError> {
        Config::parse_checked(Some(text), Path::new("c.toml"), Some(SECTIONS))
    }

    #[test]
    fn web_settings_are_checked_with_their_location() {
        let e = parse("[web]\n\nallow_addresses = [\"127.0.0.1\", \"10.0.0.0/33\"]\n").unwrap_err();
        assert_eq!(e.location, Some((3, 1)), "{e}");
        assert!(
            e.message
                .contains("'10.0.0.0/33' is not an IP address, network or address with a port"),
            "{e}"
        );
        let e = parse("[web]\nsearch_engine = \"bing\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 17)), "{e}");
        assert!(
            e.message.contains("expected `duckduckgo` or `searxng`"),
            "{e}"
        );
        let e = parse("[web]\nsearch_url = \"ftp://x\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)), "{e}");
        let c = parse("[web]\nallow_addresses = [\"127.0.0.1\", \"fd00::/8\"]\n").unwrap();
        assert_eq!(c.section::<WebConfig>().unwrap().allow_addresses.len(), 2);
        let d: WebConfig = Config::defaults().section().unwrap();
        assert_eq!(d.search_engine.as_str(), "duckduckgo");
    }
}
