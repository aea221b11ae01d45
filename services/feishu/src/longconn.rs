//! The long connection: events pushed over a WebSocket of `pbbp2.Frame`s
//! ([`crate::frame`]), as the official SDKs receive them.
//!
//! - The endpoint comes from `POST {domain}/callback/ws/endpoint` with the
//!   app's id and secret, with the `ClientConfig` (ping interval,
//!   reconnect count, interval and nonce).
//! - A ping every `PingInterval`; each pong is the connection's proof of
//!   life (and may carry a new `ClientConfig`). No pong for two intervals
//!   is a dead connection: it is dropped and made again.
//! - Every data frame is acknowledged (the frame back with `{"code":200}`
//!   and `biz_rt`) as soon as its event is whole, before anything runs on
//!   it, since the platform sends unacknowledged events again.
//! - Split events are put back together by `message_id` and `seq`.
//! - Reconnecting waits a random part of `ReconnectNonce` first, then
//!   `ReconnectInterval` between tries, `ReconnectCount` times (-1: for
//!   ever). A refused handshake's `handshake-status`, `handshake-msg` and
//!   `handshake-autherrcode` headers are the error.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracing::{info, warn};

use crate::frame::{self, Frame, Reassembly};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientConfig {
    #[serde(default = "minus_one")]
    pub reconnect_count: i64,
    #[serde(default = "two_minutes")]
    pub reconnect_interval: u64,
    #[serde(default = "half_a_minute")]
    pub reconnect_nonce: u64,
    #[serde(default = "two_minutes")]
    pub ping_interval: u64,
}

fn minus_one() -> i64 {
    -1
}
fn two_minutes() -> u64 {
    120
}
fn half_a_minute() -> u64 {
    30
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            reconnect_count: -1,
            reconnect_interval: 120,
            reconnect_nonce: 30,
            ping_interval: 120,
        }
    }
}

#[derive(Debug)]
pub struct Endpoint {
    pub url: String,
    pub config: ClientConfig,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// No pong for two ping intervals.
    Silent,
    /// The server closed it, or the network dropped it.
    Dropped(String),
    /// The events' receiver is gone: the service is stopping.
    Stopping,
}

/// Asks for the connection's URL and its settings.
pub async fn endpoint(
    http: &reqwest::Client,
    domain: &str,
    app_id: &str,
    secret: &str,
) -> Result<Endpoint, String> {
    let url = format!("{}/callback/ws/endpoint", domain.trim_end_matches('/'));
    let r = http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(json!({"AppID": app_id, "AppSecret": secret}).to_string())
        .send()
        .await
        .map_err(|e| {
            format!(
                "asking for the long connection's endpoint: {}",
                oi_sandbox::netguard::error_chain(&e)
            )
        })?;
    let status = r.status().as_u16();
    let body = r
        .bytes()
        .await
        .map_err(|e| format!("the long connection's endpoint: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| format!("the long connection's endpoint answered HTTP {status}, not JSON"))?;
    if v["code"].as_i64() != Some(0) {
        return Err(format!(
            "the platform refused the long connection (code {}: {}); check [feishu] app_id and the app secret, and that the app receives events by long connection",
            v["code"],
            v["msg"].as_str().unwrap_or("")
        ));
    }
    let url = v["data"]["URL"]
        .as_str()
        .ok_or("the endpoint's answer has no URL")?
        .to_string();
    let config = serde_json::from_value(v["data"]["ClientConfig"].clone()).unwrap_or_default();
    Ok(Endpoint { url, config })
}

/// The `service_id` query parameter of the connection's URL.
fn service_id(url: &str) -> i32 {
    url.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("service_id="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens the WebSocket (TLS for `wss://`, verified as every client is).
async fn open(
    url: &str,
) -> Result<tokio_tungstenite::WebSocketStream<oi_sandbox::tls::Conn>, String> {
    let req = url
        .into_client_request()
        .map_err(|e| format!("the endpoint URL {url}: {e}"))?;
    let uri = req.uri().clone();
    let host = uri.host().unwrap_or("").to_string();
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let limit = Duration::from_secs(20);
    let tcp = oi_sandbox::tls::within(
        limit,
        &format!("connecting to {host}:{port}"),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|e| e.to_string())?;
    let conn = if tls {
        let c = oi_sandbox::tls::connector(Vec::new())?;
        oi_sandbox::tls::handshake(tcp, &host, &c, limit)
            .await
            .map_err(|e| {
                oi_sandbox::tls::explain(
                    e.to_string(),
                    "for a private deployment, add its CA to the system's roots",
                )
            })?
    } else {
        oi_sandbox::tls::Conn::Plain(tcp)
    };
    match tokio_tungstenite::client_async(req, conn).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let h = |k: &str| {
                resp.headers()
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            Err(format!(
                "the long connection was refused: HTTP {}, handshake-status {}, handshake-msg '{}', handshake-autherrcode {}",
                resp.status().as_u16(),
                h("handshake-status"),
                h("handshake-msg"),
                h("handshake-autherrcode")
            ))
        }
        Err(e) => Err(format!("the long connection's handshake: {e}")),
    }
}

/// One connection, until it ends: pings, pongs, acknowledgements, and
/// each whole event's payload sent to `events`. `config` follows what
/// the pongs say.
pub async fn session(
    url: &str,
    config: &mut ClientConfig,
    events: &mpsc::Sender<Vec<u8>>,
) -> Result<Ended, String> {
    let mut ws = open(url).await?;
    let service = service_id(url);
    info!("long connection open");
    let mut parts = Reassembly::default();
    let mut last_pong = Instant::now();
    let mut ping = tokio::time::interval(Duration::from_secs(config.ping_interval.max(1)));
    loop {
        tokio::select! {
            _ = ping.tick() => {
                let every = Duration::from_secs(config.ping_interval.max(1));
                if last_pong.elapsed() > every * 2 + Duration::from_secs(1) {
                    warn!(silent_s = last_pong.elapsed().as_secs(), "no pong from the long connection; making it again");
                    return Ok(Ended::Silent);
                }
                if let Err(e) = ws.send(Message::Binary(Frame::ping(service).encode().into())).await {
                    return Ok(Ended::Dropped(format!("sending a ping: {e}")));
                }
            }
            m = ws.next() => {
                let bytes = match m {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(c))) => return Ok(Ended::Dropped(format!("closed by the platform ({c:?})"))),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Ok(Ended::Dropped(e.to_string())),
                    None => return Ok(Ended::Dropped("the connection ended".into())),
                };
                let f = match Frame::decode_bytes(&bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        warn!("{e}; frame ignored");
                        continue;
                    }
                };
                if f.method == frame::CONTROL {
                    if f.header("type") == Some("pong") {
                        last_pong = Instant::now();
                        if let Some(c) = f.payload.as_deref().and_then(|p| serde_json::from_slice::<ClientConfig>(p).ok()) {
                            if c.ping_interval != config.ping_interval {
                                ping = tokio::time::interval(Duration::from_secs(c.ping_interval.max(1)));
                                ping.reset();
                            }
                            *config = c;
                        }
                    }
                    continue;
                }
                let started = Instant::now();
                let id = f.header("message_id").unwrap_or("").to_string();
                let num = |k: &str| f.header(k).and_then(|v| v.parse::<usize>().ok());
                let whole = parts.add(&id, num("sum").unwrap_or(1), num("seq").unwrap_or(0), f.payload.clone().unwrap_or_default());
                let Some(payload) = whole else { continue };
                // Acknowledged before anything runs on it.
                let ack = f.ack(started.elapsed().as_millis() as u64);
                if let Err(e) = ws.send(Message::Binary(ack.encode().into())).await {
                    return Ok(Ended::Dropped(format!("acknowledging an event: {e}")));
                }
                if f.header("type") == Some("event") && events.send(payload).await.is_err() {
                    return Ok(Ended::Stopping);
                }
            }
        }
    }
}

/// Connections for ever: made again after each end, with the platform's
/// reconnect settings and jitter; an error once `ReconnectCount` tries in
/// a row failed. `secret` is read afresh for each endpoint request.
pub async fn run<F, Fut>(
    domain: String,
    app_id: String,
    secret: F,
    events: mpsc::Sender<Vec<u8>>,
    mut on_state: impl FnMut(Result<(), String>),
) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<zeroize::Zeroizing<String>, String>>,
{
    oi_sandbox::netguard::install_crypto();
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(h) => h,
        Err(e) => return format!("cannot build the HTTP client: {e}"),
    };
    let mut config = ClientConfig::default();
    let mut failures: i64 = 0;
    loop {
        let attempt = async {
            let s = secret().await?;
            let ep = endpoint(&http, &domain, &app_id, &s).await?;
            config = ep.config;
            Ok::<String, String>(ep.url)
        }
        .await;
        let ended = match attempt {
            Ok(url) => {
                on_state(Ok(()));
                session(&url, &mut config, &events).await
            }
            Err(e) => Err(e),
        };
        match ended {
            Ok(Ended::Stopping) => return "the service is stopping".into(),
            Ok(why) => {
                failures = 0;
                on_state(Err(format!("{why:?}")));
                let nonce = jitter(config.reconnect_nonce);
                tokio::time::sleep(nonce).await;
            }
            Err(e) => {
                failures += 1;
                warn!(failures, "{e}");
                on_state(Err(e.clone()));
                if config.reconnect_count >= 0 && failures > config.reconnect_count {
                    return format!(
                        "the long connection failed {failures} times in a row; the last: {e}"
                    );
                }
                tokio::time::sleep(
                    Duration::from_secs(config.reconnect_interval) + jitter(config.reconnect_nonce),
                )
                .await;
            }
        }
    }
}

/// A random wait below `nonce` seconds.
fn jitter(nonce: u64) -> Duration {
    if nonce == 0 {
        return Duration::ZERO;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_millis(seed % (nonce * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_id_and_the_settings_are_read() {
        assert_eq!(service_id("wss://x/ws?device_id=7&service_id=123"), 123);
        assert_eq!(service_id("wss://x/ws"), 0);
        let c: ClientConfig =
            serde_json::from_str(r#"{"PingInterval":5,"ReconnectCount":3}"#).unwrap();
        assert_eq!(
            (c.ping_interval, c.reconnect_count, c.reconnect_interval),
            (5, 3, 120)
        );
        assert!(jitter(2) < Duration::from_secs(2));
        assert_eq!(jitter(0), Duration::ZERO);
    }
}
