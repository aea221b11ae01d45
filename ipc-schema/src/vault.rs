//! Payloads of the vault service's methods (destination `vault`).
//!
//! Secret values travel only in `SecretValue` (the answer to `vault.get`,
//! the argument of `vault.set`); nothing else ever carries one.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::Call;

/// Method names the vault answers.
pub mod methods {
    /// [`super::SecretName`] -> [`super::SecretValue`]
    pub const GET: &str = "vault.get";
    /// [`super::SetSecret`] -> [`super::SecretMeta`]
    pub const SET: &str = "vault.set";
    /// empty -> [`super::SecretList`]
    pub const LIST: &str = "vault.list";
    /// [`super::SecretName`] -> empty
    pub const REMOVE: &str = "vault.rm";
    /// empty -> [`super::VaultStatus`] (after re-encrypting everything)
    pub const ROTATE: &str = "vault.rotate";
    /// empty -> [`super::VaultStatus`]
    pub const STATUS: &str = "vault.status";
}

/// The vault's destination.
pub const SERVICE: &str = "vault";

pub const GET: Call<SecretName, SecretValue> = Call::new(SERVICE, methods::GET);
pub const SET: Call<SetSecret, SecretMeta> = Call::new(SERVICE, methods::SET);
pub const LIST: Call<(), SecretList> = Call::new(SERVICE, methods::LIST);
pub const REMOVE: Call<SecretName, ()> = Call::new(SERVICE, methods::REMOVE);
pub const ROTATE: Call<(), VaultStatus> = Call::new(SERVICE, methods::ROTATE);
pub const STATUS: Call<(), VaultStatus> = Call::new(SERVICE, methods::STATUS);

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SecretName {
    pub name: String,
}

#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct SecretValue {
    pub value: Vec<u8>,
    /// The hosts the secret may be sent to (`api.github.com`,
    /// `*.example.com`); empty: bound to none, so never injected into a
    /// request.
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue([redacted; {} bytes])", self.value.len())
    }
}

#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct SetSecret {
    pub name: String,
    pub value: Vec<u8>,
    /// The hosts it may be sent to; `None` keeps those of the secret it
    /// replaces (none for a new one).
    pub hosts: Option<Vec<String>>,
}

impl std::fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SetSecret {{ name: {:?}, value: [redacted], hosts: {:?} }}",
            self.name, self.hosts
        )
    }
}

/// What may be said about a secret without revealing it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    pub name: String,
    pub version: u64,
    pub created_unix: i64,
    pub updated_unix: i64,
    pub len: u32,
    pub hosts: Vec<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SecretList {
    pub secrets: Vec<SecretMeta>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VaultStatus {
    /// `keyring`, `file <path>` or `passphrase`.
    pub key_source: String,
    pub secrets: u32,
    pub key_epoch: u64,
}

/// Whether `host` is a valid entry of a secret's hosts: a DNS name or an
/// IP address, optionally `*.` before a name for its subdomains.
pub fn valid_host_pattern(p: &str) -> bool {
    let name = p.strip_prefix("*.").unwrap_or(p);
    !name.is_empty()
        && name.len() <= 253
        && (name.parse::<std::net::IpAddr>().is_ok() && !p.starts_with("*.")
            || name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            }))
}

/// Whether a secret bound to `hosts` may be sent to `host` (a URL's host,
/// any case; IPv6 literals with or without brackets).
pub fn host_allowed(hosts: &[String], host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    hosts.iter().any(|p| match p.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1
                && host.ends_with(domain)
                && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        }
        None => p == host,
    })
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let hosts = vec![
            "api.github.com".to_string(),
            "*.example.com".to_string(),
            "::1".to_string(),
        ];
        assert!(host_allowed(&hosts, "api.github.com"));
        assert!(host_allowed(&hosts, "API.GitHub.com."));
        assert!(!host_allowed(&hosts, "github.com"));
        assert!(!host_allowed(&hosts, "api.github.com.evil.net"));
        assert!(!host_allowed(&hosts, "evilapi.github.com"));
        assert!(host_allowed(&hosts, "a.b.example.com"));
        assert!(!host_allowed(&hosts, "example.com"));
        assert!(!host_allowed(&hosts, "badexample.com"));
        assert!(host_allowed(&hosts, "[::1]"));
        assert!(!host_allowed(&[], "api.github.com"));
        for ok in [
            "api.github.com",
            "*.example.com",
            "127.0.0.1",
            "::1",
            "localhost",
        ] {
            assert!(valid_host_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "*.",
            "API.github.com",
            "a..b",
            "exa mple.com",
            "*.::1",
            "https://x",
        ] {
            assert!(!valid_host_pattern(bad), "{bad}");
        }
    }
}
