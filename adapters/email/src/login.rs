//! `oictl email login <account>`: the OAuth2 authorization-code flow for
//! a native app (RFC 8252): the browser goes to the provider with a PKCE
//! challenge and a state value, the provider sends it back to a one-shot
//! listener on 127.0.0.1, and the code is exchanged for a refresh token,
//! which `oictl` stores in the vault.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

use crate::config::OAuth2;
use crate::oauth::{self, Pkce};

/// A login waiting for the browser to come back.
pub struct Pending {
    listener: TcpListener,
    pkce: Pkce,
    pub redirect_uri: String,
    /// Where to send the browser.
    pub url: String,
}

/// Starts a login: the listener, and the URL to open.
pub async fn begin(o: &OAuth2) -> Result<Pending, String> {
    if o.authorize_url.is_empty() {
        return Err(
            "the account has no auth.authorize_url: set the provider's authorization endpoint"
                .into(),
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1 for the redirect: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("the redirect listener has no address: {e}"))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let pkce = Pkce::new()?;
    let scope = o.scopes.join(" ");
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &o.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("state", &pkce.state)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    if !scope.is_empty() {
        q.append_pair("scope", &scope);
    }
    for (k, v) in &o.authorize_params {
        q.append_pair(k, v);
    }
    let sep = if o.authorize_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{}{sep}{}", o.authorize_url, q.finish());
    Ok(Pending {
        listener,
        pkce,
        redirect_uri,
        url,
    })
}

/// The redirect's query, from one HTTP request on the listener.
async fn request_target(s: &mut TcpStream) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the redirect: {e}"))?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Err("the redirect request was cut short or too long".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Ok(target.to_string()),
        _ => Err(format!("not a GET request: {line}")),
    }
}

async fn answer(s: &mut TcpStream, status: &str, text: &str) {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>OpenIntentOS</title><p>{}</p>",
        text.replace('&', "&amp;").replace('<', "&lt;")
    );
    let _ = s
        .write_all(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await;
    let _ = s.shutdown().await;
}

impl Pending {
    /// Waits up to `wait` for the browser's redirect, checks its state and
    /// exchanges the code for a refresh token.
    pub async fn finish(
        self,
        o: &OAuth2,
        client_secret: &str,
        wait: Duration,
    ) -> Result<Zeroizing<String>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        let (mut s, query) = loop {
            let (mut s, _) = tokio::time::timeout_at(deadline, self.listener.accept())
                .await
                .map_err(|_| {
                    format!(
                        "no answer from the browser within {} s; run the login again",
                        wait.as_secs()
                    )
                })?
                .map_err(|e| format!("the redirect listener failed: {e}"))?;
            let target =
                match tokio::time::timeout(Duration::from_secs(10), request_target(&mut s)).await {
                    Ok(Ok(t)) => t,
                    _ => continue,
                };
            match target.split_once('?') {
                Some(("/callback", q)) => break (s, q.to_string()),
                // A favicon or anything else: not the redirect.
                _ => answer(&mut s, "404 Not Found", "Not the login's address.").await,
            }
        };
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("state") != Some(self.pkce.state.as_str()) {
            answer(
                &mut s,
                "400 Bad Request",
                "This answer does not belong to the login that was started; nothing was stored.",
            )
            .await;
            return Err(
                "the redirect's state does not match this login (a forged or stale answer); nothing was stored"
                    .into(),
            );
        }
        if let Some(e) = get("error") {
            let detail = get("error_description").unwrap_or_default();
            answer(
                &mut s,
                "400 Bad Request",
                &format!("The login failed: {e} {detail}"),
            )
            .await;
            return Err(format!("the provider refused the login: {e} {detail}"));
        }
        let Some(code) = get("code").filter(|c| !c.is_empty()) else {
            answer(&mut s, "400 Bad Request", "The answer has no code.").await;
            return Err("the redirect carried no code".into());
        };
        let http = oauth::client(Duration::from_secs(30))?;
        match oauth::exchange(
            &http,
            &o.token_url,
            &o.client_id,
            client_secret,
            code,
            &self.redirect_uri,
            &self.pkce.verifier,
        )
        .await
        {
            Ok(refresh) => {
                answer(
                    &mut s,
                    "200 OK",
                    "Logged in. You can close this tab and go back to the terminal.",
                )
                .await;
                Ok(refresh)
            }
            Err(e) => {
                answer(
                    &mut s,
                    "502 Bad Gateway",
                    "The code could not be exchanged; see the terminal.",
                )
                .await;
                Err(format!("exchanging the code: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OAuth2 {
        OAuth2 {
            // Nothing listens on port 9: an exchange would fail differently.
            token_url: "http://127.0.0.1:9/token".into(),
            authorize_url: "https://provider.example/auth?hd=x".into(),
            client_id: "cid".into(),
            refresh_token_secret: "email-a-refresh-token".into(),
            scopes: vec!["mail".into(), "offline_access".into()],
            ..OAuth2::default()
        }
    }

    fn port(p: &Pending) -> u16 {
        let rest = p.redirect_uri.trim_start_matches("http://127.0.0.1:");
        rest.split('/').next().unwrap().parse().unwrap()
    }

    /// The browser coming back with `query`; the page it is shown.
    async fn redirect(port: u16, query: String) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET /callback?{query} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_forged_state_is_refused_and_nothing_is_exchanged() {
        let o = provider();
        let p = begin(&o).await.unwrap();
        assert!(
            p.url
                .starts_with("https://provider.example/auth?hd=x&response_type=code&client_id=cid"),
            "{}",
            p.url
        );
        assert!(p.url.contains("&scope=mail+offline_access"), "{}", p.url);
        assert!(
            p.url
                .contains(&format!("code_challenge={}", p.pkce.challenge))
        );
        let port = port(&p);
        let (page, r) = tokio::join!(
            redirect(port, "code=c1&state=forged".into()),
            p.finish(&o, "", Duration::from_secs(5))
        );
        assert!(page.starts_with("HTTP/1.1 400"), "{page}");
        let e = r.unwrap_err();
        assert!(e.contains("state does not match"), "{e}");
    }

    #[tokio::test]
    async fn a_refusal_by_the_provider_is_reported() {
        let o = provider();
        let p = begin(&o).await.unwrap();
        let q = format!(
            "state={}&error=access_denied&error_description=user+said+no",
            p.pkce.state
        );
        let port = port(&p);
        let (page, r) = tokio::join!(redirect(port, q), p.finish(&o, "", Duration::from_secs(5)));
        assert!(page.contains("access_denied"), "{page}");
        let e = r.unwrap_err();
        assert!(
            e.contains("refused the login: access_denied user said no"),
            "{e}"
        );
    }
}
