//! OAuth2 for XOAUTH2: access tokens from the account's token endpoint,
//! renewed shortly before they expire and again when a server refuses
//! one; the authorization-code exchange with PKCE for `oictl email login`.
//! One form POST each, on the project's one HTTP client stack.

use std::time::{Duration, Instant};

use serde::Deserialize;
use zeroize::Zeroizing;

/// A token endpoint's refusal or failure.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant was refused (`invalid_grant`, a revoked or expired
    /// refresh token): only a new login helps.
    #[error("the token endpoint refused the grant ({code}{})", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Refused { code: String, detail: String },
    #[error("the token endpoint failed: {0}")]
    Failed(String),
}

/// An access token and when to renew it.
pub struct Token {
    pub access: Zeroizing<String>,
    /// After this, the token is renewed before use.
    pub renew_at: Instant,
    /// A new refresh token, when the endpoint rotated it.
    pub rotated: Option<Zeroizing<String>>,
}

#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The form body of a token request.
fn form(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    Zeroizing::new(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
            .finish(),
    )
}

/// The shared HTTP client for token endpoints (configured by the user, so
/// not behind the tools' SSRF guard).
pub fn client(limit: Duration) -> Result<reqwest::Client, String> {
    oi_sandbox::netguard::install_crypto();
    reqwest::Client::builder()
        .timeout(limit)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Zeroizing<String>,
    skew: Duration,
) -> Result<(Token, Option<Zeroizing<String>>), TokenError> {
    let r = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| {
            TokenError::Failed(format!(
                "{url}: {}",
                oi_sandbox::netguard::error_chain(&e.without_url())
            ))
        })?;
    let status = r.status();
    let text = Zeroizing::new(
        r.text()
            .await
            .map_err(|e| TokenError::Failed(format!("{url}: {e}")))?,
    );
    let a: Answer = serde_json::from_str(&text).map_err(|_| {
        TokenError::Failed(format!(
            "{url} answered {status} without a JSON token response"
        ))
    })?;
    if let Some(code) = a.error {
        let detail = a.error_description.unwrap_or_default();
        return Err(
            if matches!(code.as_str(), "invalid_grant" | "unauthorized_client") {
                TokenError::Refused { code, detail }
            } else {
                TokenError::Failed(format!("{url} answered {status}: {code} {detail}"))
            },
        );
    }
    let Some(access) = a.access_token.filter(|t| !t.is_empty()) else {
        return Err(TokenError::Failed(format!(
            "{url} answered {status} with no access_token"
        )));
    };
    // No expiry given: renew after an hour, the common lifetime.
    let life = Duration::from_secs(a.expires_in.unwrap_or(3600));
    let renew_at = Instant::now() + life.saturating_sub(skew);
    let refresh = a
        .refresh_token
        .filter(|t| !t.is_empty())
        .map(Zeroizing::new);
    Ok((
        Token {
            access: Zeroizing::new(access),
            renew_at,
            rotated: None,
        },
        refresh,
    ))
}

/// A new access token from `refresh_token`.
pub async fn refresh(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    client_secret: &str,
    refresh_token: &str,
    skew: Duration,
) -> Result<Token, TokenError> {
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
        ("client_secret", client_secret),
    ]);
    let (mut t, rotated) = post(http, url, body, skew).await?;
    t.rotated = rotated.filter(|r| r.as_str() != refresh_token);
    Ok(t)
}

/// The refresh token for an authorization code (PKCE's verifier proves
/// it is the same client that asked).
pub async fn exchange(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Zeroizing<String>, TokenError> {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("code_verifier", verifier),
    ]);
    let (_, refresh) = post(http, url, body, Duration::ZERO).await?;
    refresh.ok_or_else(|| {
        TokenError::Failed(format!(
            "{url} gave no refresh_token (Google gives one only with access_type=offline and prompt=consent in authorize_params)"
        ))
    })
}

/// The SASL XOAUTH2 initial response (RFC 7628's predecessor, as Google
/// and Microsoft define it).
pub fn xoauth2(user: &str, access: &str) -> Zeroizing<String> {
    Zeroizing::new(format!("user={user}\x01auth=Bearer {access}\x01\x01"))
}

/// A PKCE verifier and its S256 challenge, and a state value.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
    pub state: String,
}

fn random_url_safe(bytes: usize) -> Result<String, String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "no randomness from the system".to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

impl Pkce {
    pub fn new() -> Result<Pkce, String> {
        use base64::Engine;
        let verifier = random_url_safe(32)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        Ok(Pkce {
            challenge: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
            verifier,
            state: random_url_safe(16)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_follows_rfc_7636() {
        use base64::Engine;
        let p = Pkce::new().unwrap();
        // 32 random bytes: 43 characters of the unreserved alphabet.
        assert_eq!(p.verifier.len(), 43);
        assert!(
            p.verifier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let d = ring::digest::digest(&ring::digest::SHA256, p.verifier.as_bytes());
        assert_eq!(
            p.challenge,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
        );
        assert_ne!(Pkce::new().unwrap().state, p.state);
    }

    #[test]
    fn the_form_leaves_out_empty_values_and_escapes() {
        let f = form(&[("a", "x y&z"), ("client_secret", ""), ("b", "=")]);
        assert_eq!(f.as_str(), "a=x+y%26z&b=%3D");
        assert_eq!(
            xoauth2("me@x.example", "tok").as_str(),
            "user=me@x.example\u{1}auth=Bearer tok\u{1}\u{1}"
        );
    }
}
