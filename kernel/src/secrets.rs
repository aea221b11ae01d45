//! Reading a secret from the vault service, as the calling service (the
//! vault's `[vault.policy]` decides what that service may read).

use std::time::Duration;

use oi_ipc_schema::vault::{self, SecretName, SecretValue};
use zeroize::Zeroizing;

use crate::client::{BusClient, BusError, CallOptions};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The vault refused (policy, no such secret) or did not answer.
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("the vault's answer is unreadable: {0}")]
    Unreadable(String),
    #[error("vault secret '{0}' is not UTF-8 text")]
    NotText(String),
}

/// The secret `name` as text, without surrounding whitespace; the copy is
/// wiped when dropped.
pub async fn read_text(
    client: &BusClient,
    name: &str,
    deadline: Duration,
) -> Result<Zeroizing<String>, SecretError> {
    read_bound(client, name, deadline).await.map(|(v, _)| v)
}

/// Like [`read_text`], with the hosts the secret may be sent to.
pub async fn read_bound(
    client: &BusClient,
    name: &str,
    deadline: Duration,
) -> Result<(Zeroizing<String>, Vec<String>), SecretError> {
    let v: SecretValue = client
        .call(
            vault::GET,
            &SecretName { name: name.into() },
            CallOptions::deadline(deadline),
        )
        .await
        .map_err(|e| match e {
            BusError::Protocol(e) => SecretError::Unreadable(e),
            e => SecretError::from(e),
        })?;
    let value = Zeroizing::new(v.value);
    let text = std::str::from_utf8(&value).map_err(|_| SecretError::NotText(name.into()))?;
    Ok((Zeroizing::new(text.trim().to_string()), v.hosts))
}
