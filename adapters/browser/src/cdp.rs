//! A small client of the Chrome DevTools Protocol over the browser's pipe
//! (`--remote-debugging-pipe`: NUL-terminated JSON, commands on the
//! browser's fd 3, replies and events on its fd 4).
//!
//! Each command has an id and a deadline; replies find their caller by id.
//! Events (with the flattened session id of the page they come from) are
//! fanned out to every subscriber. A message of any size is read; one
//! over [`MAX_MESSAGE`] is refused rather than held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, mpsc, oneshot};

/// The largest message read (screenshots of long pages are tens of MB).
pub const MAX_MESSAGE: usize = 256 << 20;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CdpError {
    #[error("{method}: no answer from the browser within {} s", .after.as_secs_f32())]
    Timeout { method: String, after: Duration },
    #[error("{method}: {message}")]
    Remote { method: String, message: String },
    #[error("the browser is gone ({0})")]
    Closed(String),
}

/// The event every subscriber gets when the connection ends.
pub const CLOSED: &str = "oi.closed";

/// An event of the browser or of one page (`session`).
#[derive(Debug, Clone)]
pub struct Event {
    pub method: String,
    pub session: Option<String>,
    pub params: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// The connection; cheap to clone.
#[derive(Clone)]
pub struct Cdp {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    events: broadcast::Sender<Event>,
    next: Arc<AtomicU64>,
    closed: Arc<Mutex<Option<String>>>,
}

impl Cdp {
    /// Speaks CDP over `to_browser` (its fd 3) and `from_browser` (its fd 4).
    pub fn new(to_browser: pipe::Sender, from_browser: pipe::Receiver) -> Cdp {
        let (out, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let cdp = Cdp {
            out,
            pending: Arc::default(),
            events,
            next: Arc::new(AtomicU64::new(1)),
            closed: Arc::default(),
        };
        tokio::spawn(write_loop(to_browser, rx));
        tokio::spawn(read_loop(from_browser, cdp.clone()));
        cdp
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Why the connection ended, once it has.
    pub fn closed(&self) -> Option<String> {
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends `method` (to a page when `session` is set) and waits for its
    /// result within `deadline`.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        session: Option<&str>,
        deadline: Duration,
    ) -> Result<Value, CdpError> {
        if let Some(why) = self.closed() {
            return Err(CdpError::Closed(why));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        if self.out.send(bytes).is_err() {
            self.pending().remove(&id);
            return Err(CdpError::Closed("its pipe is closed".into()));
        }
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(message))) => Err(CdpError::Remote {
                method: method.into(),
                message,
            }),
            Ok(Err(_)) => Err(CdpError::Closed(
                self.closed()
                    .unwrap_or_else(|| "it stopped answering".into()),
            )),
            Err(_) => {
                self.pending().remove(&id);
                Err(CdpError::Timeout {
                    method: method.into(),
                    after: deadline,
                })
            }
        }
    }

    fn pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Value, String>>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the connection: callers waiting and to come get `Closed`.
    pub fn close(&self, why: String) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        // Every caller waiting learns at once: for a reply, its channel
        // drops; for an event, this one comes.
        self.pending().clear();
        let _ = self.events.send(Event {
            method: CLOSED.into(),
            session: None,
            params: json!({"why": why}),
        });
    }

    fn dispatch(&self, msg: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(msg) else {
            tracing::warn!(
                "the browser sent a message that is not JSON ({} bytes)",
                msg.len()
            );
            return;
        };
        if let Some(id) = v.get("id").and_then(Value::as_u64) {
            let Some(tx) = self.pending().remove(&id) else {
                return; // its caller gave up
            };
            let r = match v.get("error") {
                Some(e) => Err(e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string()
                    + &e.get("data")
                        .and_then(Value::as_str)
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()),
                None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = tx.send(r);
        } else if let Some(method) = v.get("method").and_then(Value::as_str) {
            let _ = self.events.send(Event {
                method: method.to_string(),
                session: v.get("sessionId").and_then(Value::as_str).map(String::from),
                params: v.get("params").cloned().unwrap_or(Value::Null),
            });
        }
    }
}

async fn write_loop(mut to: pipe::Sender, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if to.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

async fn read_loop(mut from: pipe::Receiver, cdp: Cdp) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let why = loop {
        match from.read(&mut chunk).await {
            Ok(0) => break "its pipe closed".to_string(),
            Ok(n) => {
                let start = buf.len();
                buf.extend_from_slice(&chunk[..n]);
                // Only the new bytes can hold a terminator.
                let mut from_at = 0;
                let mut scan = start;
                while let Some(p) = buf[scan..].iter().position(|b| *b == 0) {
                    let end = scan + p;
                    cdp.dispatch(&buf[from_at..end]);
                    from_at = end + 1;
                    scan = from_at;
                }
                buf.drain(..from_at);
                if buf.len() > MAX_MESSAGE {
                    break format!("it sent a message over {} MB", MAX_MESSAGE >> 20);
                }
            }
            Err(e) => break format!("reading its pipe failed: {e}"),
        }
    };
    cdp.close(why);
}
