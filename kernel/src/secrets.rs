//! Reading a secret from the vault service, as the calling service (the
//! vault's `[vault.policy]` decides what that service may read).

use std::time::Duration;

use oi_ipc_schema::vault::{SecretName, SecretValue, methods};
use oi_ipc_schema::{Kind, decode_payload, encode_payload};
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
    let payload = encode_payload(&SecretName { name: name.into() })
        .map_err(|e| SecretError::Unreadable(e.to_string()))?;
    let bytes = client
        .request(
            "vault",
            methods::GET,
            &payload,
            CallOptions::deadline(deadline),
        )
        .await?;
    let v: SecretValue = decode_payload(&bytes, Kind::Response, 0)
        .map_err(|e| SecretError::Unreadable(e.to_string()))?;
    let value = Zeroizing::new(v.value);
    let text = std::str::from_utf8(&value).map_err(|_| SecretError::NotText(name.into()))?;
    Ok((Zeroizing::new(text.trim().to_string()), v.hosts))
}
