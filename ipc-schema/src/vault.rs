//! Payloads of the vault service's methods (destination `vault`).
//!
//! Secret values travel only in `SecretValue` (the answer to `vault.get`,
//! the argument of `vault.set`); nothing else ever carries one.

use rkyv::{Archive, Deserialize, Serialize};

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

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SecretName {
    pub name: String,
}

#[derive(Archive, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct SecretValue {
    pub value: Vec<u8>,
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
}

impl std::fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SetSecret {{ name: {:?}, value: [redacted] }}",
            self.name
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
