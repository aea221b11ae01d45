//! The fake's long connection: `POST /callback/ws/endpoint` gives a
//! `ws://` URL and a `ClientConfig`; on the socket, pings get pongs
//! (carrying the config) unless the fake is told to go silent, events go
//! out as data frames (split on cue), and each acknowledgement is
//! recorded. An event not acknowledged is sent again on the next
//! connection, as the platform does.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::frame::{self, Frame};

#[derive(Default)]
pub struct Ws {
    pub ping_interval: u64,
    pub silent: bool,
    /// Events sent and not acknowledged: (message_id, payload).
    pub pending: Vec<(String, Vec<u8>)>,
    /// Acknowledgements received: (message_id, payload).
    pub acks: Vec<(String, String)>,
    pub pings: u32,
    pub accepted: u32,
    /// Each open connection's way out.
    pub conns: Vec<mpsc::UnboundedSender<Option<Vec<u8>>>>,
    /// Split the next event into this many frames.
    pub split: usize,
    pub next: u64,
}

pub fn lock(s: &Mutex<Ws>) -> std::sync::MutexGuard<'_, Ws> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The data frames of one event.
fn frames(message_id: &str, payload: &[u8], parts: usize) -> Vec<Vec<u8>> {
    let parts = parts.max(1);
    let size = payload.len().div_ceil(parts).max(1);
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let sum = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(seq, c)| {
            let mut f = Frame {
                seq_id: seq as u64,
                log_id: 1,
                service: 77,
                method: frame::DATA,
                payload: Some(c.to_vec()),
                ..Frame::default()
            };
            for (k, v) in [
                ("type", "event"),
                ("message_id", message_id),
                ("trace_id", "fake-trace"),
            ] {
                f.set_header(k, v);
            }
            f.set_header("sum", &sum.to_string());
            f.set_header("seq", &seq.to_string());
            f.encode()
        })
        .collect()
}

/// Sends an event's frames to every open connection; kept until acked.
pub fn push(ws: &Mutex<Ws>, payload: Vec<u8>) -> String {
    let mut s = lock(ws);
    s.next += 1;
    let id = format!("fake-msg-{}", s.next);
    let split = std::mem::take(&mut s.split);
    for f in frames(&id, &payload, split) {
        s.conns.retain(|c| c.send(Some(f.clone())).is_ok());
    }
    s.pending.push((id.clone(), payload));
    id
}

/// Ends every open connection.
pub fn drop_all(ws: &Mutex<Ws>) {
    let mut s = lock(ws);
    for c in s.conns.drain(..) {
        let _ = c.send(None);
    }
}

pub async fn serve(listener: TcpListener, ws: Arc<Mutex<Ws>>) {
    while let Ok((sock, _)) = listener.accept().await {
        let ws = ws.clone();
        tokio::spawn(async move {
            let Ok(mut conn) = tokio_tungstenite::accept_async(sock).await else {
                return;
            };
            let (tx, mut rx) = mpsc::unbounded_channel();
            let resend: Vec<Vec<u8>> = {
                let mut s = lock(&ws);
                s.accepted += 1;
                s.conns.push(tx);
                s.pending
                    .iter()
                    .flat_map(|(id, p)| frames(id, p, 1))
                    .collect()
            };
            for f in resend {
                if conn.send(Message::Binary(f.into())).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(Some(f)) => {
                            if conn.send(Message::Binary(f.into())).await.is_err() {
                                return;
                            }
                        }
                        _ => {
                            let _ = conn.close(None).await;
                            return;
                        }
                    },
                    m = conn.next() => {
                        let Some(Ok(Message::Binary(b))) = m else {
                            match m {
                                Some(Ok(_)) => continue,
                                _ => return,
                            }
                        };
                        let Ok(f) = Frame::decode_bytes(&b) else { continue };
                        if f.method == frame::CONTROL && f.header("type") == Some("ping") {
                            let (silent, every) = {
                                let mut s = lock(&ws);
                                s.pings += 1;
                                (s.silent, s.ping_interval)
                            };
                            if silent {
                                continue;
                            }
                            let mut pong = Frame::ping(f.service);
                            pong.set_header("type", "pong");
                            pong.payload = Some(json!({"PingInterval": every, "ReconnectCount": 5, "ReconnectInterval": 1, "ReconnectNonce": 0}).to_string().into_bytes());
                            if conn.send(Message::Binary(pong.encode().into())).await.is_err() {
                                return;
                            }
                        } else if f.method == frame::DATA {
                            let id = f.header("message_id").unwrap_or("").to_string();
                            let payload = String::from_utf8_lossy(f.payload.as_deref().unwrap_or_default()).into_owned();
                            let ok = serde_json::from_str::<Value>(&payload).is_ok_and(|v| v["code"] == 200)
                                && f.header("biz_rt").is_some();
                            let mut s = lock(&ws);
                            if ok {
                                s.pending.retain(|(p, _)| *p != id);
                            }
                            s.acks.push((id, payload));
                        }
                    }
                }
            }
        });
    }
}
