//! The bus client: one connection to the broker, shared by every task of a
//! process. Replies are matched to requests by correlation id; frames that
//! are not replies (requests to a service, `Cancel`, `Shutdown`,
//! `ConfigChanged`) are handed to whoever reads [`Inbound`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oi_ipc_schema::frame::{Frame, Kind};
use oi_ipc_schema::{Body, Call};
use oi_ipc_schema::{
    Cancel, ConfigChanged, ErrorCode, ErrorReply, Hello, PROTOCOL_VERSION, Ready, RegisterTools,
    Request, Response, Shutdown, StreamChunk, StreamEnd, ToolSpec, Welcome,
};
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use zeroize::Zeroizing;

use crate::framing::{FramingError, read_frame};
use crate::sink::FrameSink;

mod reader;
mod streams;

use reader::reader_loop;
pub use streams::{EventStream, ReplyStream};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error(
        "no OpenIntentOS daemon is listening on {path} ({reason}); start it with `openintentd`, or let oictl start it"
    )]
    NoDaemon { path: String, reason: String },
    #[error(
        "permission denied on bus socket {path}: it belongs to another user; run as that user or use --home"
    )]
    PermissionDenied { path: String },
    #[error("the broker refused this connection: {0}")]
    Refused(String),
    #[error("bus connection lost: {0}")]
    Disconnected(String),
    #[error("{code}: {message}")]
    Remote { code: ErrorCode, message: String },
    #[error("timeout: no answer from '{destination}' within {ms} ms")]
    Timeout { destination: String, ms: u64 },
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl BusError {
    /// The error code a caller can act on.
    pub fn code(&self) -> ErrorCode {
        match self {
            BusError::Remote { code, .. } => *code,
            BusError::Timeout { .. } => ErrorCode::Timeout,
            BusError::Refused(_) | BusError::PermissionDenied { .. } => ErrorCode::Denied,
            BusError::Protocol(_) => ErrorCode::BadRequest,
            BusError::NoDaemon { .. } | BusError::Disconnected(_) => ErrorCode::Unavailable,
        }
    }
}

impl From<FramingError> for BusError {
    fn from(e: FramingError) -> Self {
        BusError::Protocol(e.to_string())
    }
}

impl From<oi_ipc_schema::FrameError> for BusError {
    fn from(e: oi_ipc_schema::FrameError) -> Self {
        BusError::Protocol(e.to_string())
    }
}

/// One item of a streamed reply.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamItem {
    Chunk(Vec<u8>),
    End(Vec<u8>),
    Error(BusError),
}

/// A frame that is not a reply to one of our requests.
#[derive(Debug)]
pub enum Inbound {
    /// A request for the service on this connection.
    Request(IncomingRequest),
    Cancel {
        corr: u64,
    },
    Shutdown {
        reason: String,
        grace: Duration,
    },
    ConfigChanged {
        generation: u64,
        config_toml: String,
    },
}

/// A validated request frame, read in place.
#[derive(Debug)]
pub struct IncomingRequest {
    frame: Frame,
}

impl IncomingRequest {
    fn req(&self) -> &oi_ipc_schema::ArchivedRequest {
        // Validated when it was received; see `reader_loop`.
        match self.frame.access::<Request>() {
            Ok(r) => r,
            Err(_) => unreachable!("request frames are validated on receipt"),
        }
    }
    pub fn corr(&self) -> u64 {
        self.frame.corr()
    }
    pub fn method(&self) -> &str {
        self.req().method.as_str()
    }
    pub fn caller(&self) -> &str {
        self.req().caller.as_str()
    }
    pub fn payload(&self) -> &[u8] {
        self.req().payload.as_slice()
    }
    pub fn wants_stream(&self) -> bool {
        self.req().stream
    }
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(u64::from(self.req().deadline_ms.to_native()))
    }
    /// The intent this request serves; empty when none.
    pub fn intent(&self) -> &str {
        self.req().intent.as_str()
    }
    /// The conversation of that intent, as its sender says; trust it only
    /// from the agent (see [`oi_ipc_schema::Request::chat`]).
    pub fn chat(&self) -> &str {
        self.req().chat.as_str()
    }
}

/// How to send a request.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub deadline: Duration,
    /// Wait for a down or restarting destination instead of failing at once.
    pub wait_for_service: bool,
    /// The intent the request serves (for the audit log); may be empty.
    pub intent: String,
    /// The conversation of that intent; may be empty.
    pub chat: String,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            deadline: Duration::from_secs(30),
            wait_for_service: false,
            intent: String::new(),
            chat: String::new(),
        }
    }
}

impl CallOptions {
    pub fn deadline(deadline: Duration) -> Self {
        CallOptions {
            deadline,
            ..Default::default()
        }
    }
    pub fn waiting(mut self) -> Self {
        self.wait_for_service = true;
        self
    }
    pub fn for_intent(mut self, intent: &str) -> Self {
        self.intent = intent.to_string();
        self
    }
    pub fn in_chat(mut self, chat: &str) -> Self {
        self.chat = chat.to_string();
        self
    }
}

/// Cancels a request whose caller stopped waiting (its future was dropped)
/// so the service stops working on it.
struct CancelOnDrop<'a> {
    client: &'a BusClient,
    corr: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed && self.client.inner.pending().remove(&self.corr).is_some() {
            self.client.cancel(self.corr, "the caller stopped waiting");
        }
    }
}

enum Waiter {
    Once(oneshot::Sender<Result<Vec<u8>, BusError>>),
    Stream(mpsc::UnboundedSender<StreamItem>),
}

struct Inner {
    tx: FrameSink,
    pending: Mutex<HashMap<u64, Waiter>>,
    next_corr: AtomicU64,
    identity: String,
    welcome: Welcome,
    closed: AtomicBool,
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Waiter>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection to the bus. Cloning is cheap; all clones share it.
#[derive(Clone)]
pub struct BusClient {
    inner: Arc<Inner>,
}

impl BusClient {
    /// Connects and says `Hello`, as the service `service` or as a plain
    /// client. Returns the client and the channel of frames that are not
    /// replies.
    pub async fn connect(
        path: &Path,
        service: Option<&str>,
        max_frame_bytes: u32,
    ) -> Result<(BusClient, mpsc::UnboundedReceiver<Inbound>), BusError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => BusError::PermissionDenied {
                    path: path.display().to_string(),
                },
                _ => BusError::NoDaemon {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                },
            })?;
        let (rd, wr) = stream.into_split();
        let mut rd = BufReader::with_capacity(64 * 1024, rd);
        let hello = Frame::new(
            0,
            &Hello {
                service: service.map(str::to_string),
                pid: std::process::id(),
                protocol_version: PROTOCOL_VERSION,
                build_id: crate::BUILD_ID.to_string(),
            },
        )?;
        let tx = FrameSink::new(wr);
        tx.send(&hello)
            .map_err(|e| BusError::Disconnected(e.to_string()))?;
        let first = read_frame(&mut rd, max_frame_bytes)
            .await?
            .ok_or_else(|| BusError::Refused("the broker closed the connection".into()))?;
        let welcome = match first.kind {
            Kind::Welcome => first.decode::<Welcome>()?,
            Kind::Error => {
                let e = first.decode::<ErrorReply>()?;
                return Err(BusError::Refused(e.message));
            }
            other => {
                return Err(BusError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                )));
            }
        };
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            tx,
            pending: Mutex::new(HashMap::new()),
            next_corr: AtomicU64::new(1),
            identity: service.unwrap_or("").to_string(),
            welcome,
            closed: AtomicBool::new(false),
        });
        tokio::spawn(reader_loop(inner.clone(), rd, inbound_tx, max_frame_bytes));
        Ok((BusClient { inner }, inbound_rx))
    }

    pub fn welcome(&self) -> &Welcome {
        &self.inner.welcome
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn send(&self, frame: Frame) -> Result<(), BusError> {
        if self.is_closed() {
            return Err(BusError::Disconnected(
                "the broker closed the connection".into(),
            ));
        }
        self.inner
            .tx
            .send(&frame)
            .map_err(|_| BusError::Disconnected("the connection is closed".into()))
    }

    fn request_frame(
        &self,
        corr: u64,
        destination: &str,
        method: &str,
        payload: &[u8],
        opts: &CallOptions,
        stream: bool,
    ) -> Result<Frame, BusError> {
        Ok(Frame::new(
            corr,
            &Request {
                destination: destination.to_string(),
                caller: self.inner.identity.clone(),
                method: method.to_string(),
                deadline_ms: u32::try_from(opts.deadline.as_millis()).unwrap_or(u32::MAX),
                wait_for_service: opts.wait_for_service,
                stream,
                intent: opts.intent.clone(),
                chat: opts.chat.clone(),
                payload: payload.to_vec(),
            },
        )?)
    }

    /// Calls `method` of `destination` and waits for its one response.
    pub async fn request(
        &self,
        destination: &str,
        method: &str,
        payload: &[u8],
        opts: CallOptions,
    ) -> Result<Vec<u8>, BusError> {
        let corr = self.inner.next_corr.fetch_add(1, Ordering::Relaxed);
        let frame = self.request_frame(corr, destination, method, payload, &opts, false)?;
        let (tx, rx) = oneshot::channel();
        self.inner.pending().insert(corr, Waiter::Once(tx));
        if let Err(e) = self.send(frame) {
            self.inner.pending().remove(&corr);
            return Err(e);
        }
        let mut guard = CancelOnDrop {
            client: self,
            corr,
            armed: true,
        };
        // The broker enforces the deadline too and explains which service
        // was late; the local timer is the backstop.
        let backstop = opts.deadline + Duration::from_millis(250);
        let outcome = tokio::time::timeout(backstop, rx).await;
        guard.armed = false;
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BusError::Disconnected("the connection closed".into())),
            Err(_) => {
                self.inner.pending().remove(&corr);
                self.cancel(corr, "deadline passed");
                Err(BusError::Timeout {
                    destination: destination.to_string(),
                    ms: u64::try_from(opts.deadline.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// Calls a method of the typed contract and decodes its reply.
    pub async fn call<Req: Body, Resp: Body>(
        &self,
        method: Call<Req, Resp>,
        payload: &Req,
        opts: CallOptions,
    ) -> Result<Resp, BusError> {
        // Both buffers are wiped when dropped: some carry secrets
        // (`vault.get`, `vault.set`).
        let bytes = Zeroizing::new(method.encode_request(payload)?);
        let reply = Zeroizing::new(
            self.request(method.service, method.method, &bytes, opts)
                .await?,
        );
        method
            .decode_reply(&reply)
            .map_err(|e| BusError::Protocol(format!("{method:?} reply: {e}")))
    }

    /// Opens a streamed method of the typed contract. Dropping the
    /// [`EventStream`] cancels the request.
    pub fn stream<Req: Body, Event: Body>(
        &self,
        method: oi_ipc_schema::Stream<Req, Event>,
        payload: &Req,
        opts: CallOptions,
    ) -> Result<EventStream<Event>, BusError> {
        let bytes = method.encode_request(payload)?;
        let inner = self.request_stream(method.service, method.method, &bytes, opts)?;
        Ok(EventStream {
            inner,
            decode: |b: &[u8]| Event::decode_body(b, Kind::StreamChunk, 0),
            what: method.method,
        })
    }

    /// Calls `method` of `destination` and returns its stream of chunks,
    /// as bytes (for names not in the contract, such as tools).
    /// Dropping the [`ReplyStream`] cancels the request.
    pub fn request_stream(
        &self,
        destination: &str,
        method: &str,
        payload: &[u8],
        opts: CallOptions,
    ) -> Result<ReplyStream, BusError> {
        let corr = self.inner.next_corr.fetch_add(1, Ordering::Relaxed);
        let frame = self.request_frame(corr, destination, method, payload, &opts, true)?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.pending().insert(corr, Waiter::Stream(tx));
        if let Err(e) = self.send(frame) {
            self.inner.pending().remove(&corr);
            return Err(e);
        }
        Ok(ReplyStream {
            client: self.clone(),
            corr,
            rx,
            done: false,
        })
    }

    fn cancel(&self, corr: u64, reason: &str) {
        if let Ok(f) = Frame::new(
            corr,
            &Cancel {
                reason: reason.to_string(),
            },
        ) {
            let _ = self.send(f);
        }
    }

    /// Service side: announces readiness.
    pub fn send_ready(&self, detail: &str) -> Result<(), BusError> {
        self.send(Frame::new(
            0,
            &Ready {
                detail: detail.to_string(),
            },
        )?)
    }

    /// Service side: registers (replaces) this service's tools.
    pub fn register_tools(&self, tools: Vec<ToolSpec>) -> Result<(), BusError> {
        self.send(Frame::new(0, &RegisterTools { tools })?)
    }

    /// Service side: one row for the audit log (one-way; the broker adds
    /// this service's name and the time).
    pub fn audit(
        &self,
        record: &oi_ipc_schema::control::audit::AuditRecord,
    ) -> Result<(), BusError> {
        self.send(Frame::new(0, record)?)
    }

    /// Service side: the one response to request `corr`.
    pub fn respond(&self, corr: u64, payload: Vec<u8>) -> Result<(), BusError> {
        self.send(Frame::new(corr, &Response { payload })?)
    }

    /// Service side: an error reply to request `corr`.
    pub fn respond_error(
        &self,
        corr: u64,
        code: ErrorCode,
        message: String,
    ) -> Result<(), BusError> {
        self.send(Frame::new(corr, &ErrorReply { code, message })?)
    }

    /// Service side: one chunk of a streamed reply.
    pub fn stream_chunk(&self, corr: u64, seq: u32, payload: Vec<u8>) -> Result<(), BusError> {
        self.send(Frame::new(corr, &StreamChunk { seq, payload })?)
    }

    /// Service side: the end of a streamed reply.
    pub fn stream_end(&self, corr: u64, payload: Vec<u8>) -> Result<(), BusError> {
        self.send(Frame::new(corr, &StreamEnd { payload })?)
    }
}
