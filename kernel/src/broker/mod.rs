//! The bus broker.
//!
//! Listens on `bus.sock` (socket 0600 inside the 0700 runtime directory).
//! Every connection starts with `Hello`; the broker checks the peer's
//! credentials (same uid, and for a connection that claims a service name,
//! the pid the supervisor spawned for it; for a plain client, that it is
//! nothing a service started: [`crate::lineage`]). After that it routes frames by
//! header and destination: a request's payload is validated once and then
//! forwarded as the same bytes, with only the correlation id in the header
//! rewritten. Replies travel back the same way.
//!
//! A request for a tool a service registered is an external action: when
//! it ends (answered, failed, timed out, cancelled, or its service died)
//! the broker appends it to the audit log, if one is set.
//!
//! Here: the settings, the shared state and the handle. Beside it: each
//! connection (`connection.rs`: `Hello`, the read loop, its end), routing
//! (`routing.rs`), the methods the kernel answers itself
//! (`kernel_methods.rs`), the broker's tasks (`loops.rs`) and the socket
//! file (`socket.rs`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use oi_ipc_schema::control::{BusStats, methods};
use oi_ipc_schema::frame::{Frame, Kind};
use oi_ipc_schema::{
    Cancel, ErrorCode, ErrorReply, Heartbeat, Hello, KERNEL_DESTINATION, Message, PROTOCOL_VERSION,
    RegisterTools, Request, StreamChunk, StreamEnd, ToolSpec, Welcome,
};
use tokio::io::BufReader;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::audit::{self, AuditLog};
use crate::framing::{FramingError, read_frame};
use crate::limits::{Admission, InFlight, Limits};
use crate::lineage;
use crate::registry::{Registry, ServiceEntry};
use crate::sink::{Budget, FrameSink};

mod connection;
mod kernel_methods;
mod loops;
mod routing;
mod socket;

use connection::*;
use kernel_methods::*;
use loops::*;
use routing::*;
use socket::*;

/// Broker settings (from `[bus]` in the config).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub socket_path: PathBuf,
    pub max_frame_bytes: u32,
    pub heartbeat_interval: Duration,
    /// Deadline for requests that carry none.
    pub default_deadline: Duration,
    /// How long a new connection may take to send `Hello`.
    pub hello_timeout: Duration,
    /// Connections, requests in flight and queued bytes.
    pub limits: Limits,
}

impl BrokerConfig {
    pub fn new(socket_path: PathBuf) -> Self {
        BrokerConfig {
            socket_path,
            max_frame_bytes: oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES,
            heartbeat_interval: Duration::from_secs(1),
            default_deadline: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(5),
            limits: Limits::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("another broker is already listening on {0}; is openintentd already running?")]
    AlreadyRunning(PathBuf),
    #[error("cannot remove stale bus socket {path}: {source}")]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot listen on bus socket {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
}

/// What the broker tells the supervisor about services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    Connected { name: String, pid: u32 },
    Ready { name: String, pid: u32 },
    Disconnected { name: String, pid: u32 },
}

/// Who sent a request to the kernel.
#[derive(Debug, Clone)]
pub struct Caller {
    pub conn_id: u64,
    pub service: Option<String>,
    pub pid: u32,
    pub uid: u32,
}

/// A reply from a kernel method: one payload, or a stream of chunks.
pub enum KernelReply {
    Once(Vec<u8>),
    Stream(mpsc::Receiver<Vec<u8>>),
}

pub type KernelResult = Result<KernelReply, (ErrorCode, String)>;
pub type KernelFuture = Pin<Box<dyn std::future::Future<Output = KernelResult> + Send>>;

/// Answers kernel methods the broker does not answer itself (the
/// supervisor's control plane).
pub trait KernelHandler: Send + Sync + 'static {
    fn handle(&self, caller: Caller, method: String, payload: Vec<u8>) -> KernelFuture;
}

struct Conn {
    tx: FrameSink,
    service: Option<String>,
    pid: u32,
}

/// A request forwarded to a service and not yet answered.
struct Pending {
    origin_conn: u64,
    origin_corr: u64,
    target_conn: u64,
    target: String,
    deadline: Instant,
    /// Set when the request is a tool call (audited when it ends).
    audit: Option<Box<ToolCall>>,
}

/// A tool call in flight, as the audit log will record it.
struct ToolCall {
    entry: audit::Entry,
    started: Instant,
}

/// A request waiting for its destination to become ready.
struct Waiting {
    origin_conn: u64,
    frame: Frame,
    deadline: Instant,
}

#[derive(Default)]
struct State {
    conns: HashMap<u64, Conn>,
    registry: Registry,
    /// Pids the supervisor spawned, by service name.
    expected: HashMap<String, u32>,
    /// The services the supervisor means to run (running, starting or in
    /// backoff); `None` until it says. A request that would wait for any
    /// other destination fails at once.
    wanted: Option<HashSet<String>>,
    pending: HashMap<u64, Pending>,
    /// (origin connection, origin correlation) -> broker correlation.
    by_origin: HashMap<(u64, u64), u64>,
    waiting: HashMap<String, Vec<Waiting>>,
    /// Requests each connection has forwarded or waiting.
    in_flight: InFlight,
    next_conn: u64,
    next_corr: u64,
    /// Requests routed since the start (`bus.stats`).
    stats: RequestCounts,
}

/// Requests counted as they arrive, in all and per method.
#[derive(Default)]
struct RequestCounts {
    total: u64,
    by_method: std::collections::BTreeMap<String, u64>,
}

impl RequestCounts {
    fn count(&mut self, method: &str) {
        self.total += 1;
        if let Some(n) = self.by_method.get_mut(method) {
            *n += 1;
        } else if self.by_method.len() < 4096 {
            self.by_method.insert(method.to_string(), 1);
        } else {
            // Method names come from peers: the map stays bounded.
            *self.by_method.entry("(other)".into()).or_default() += 1;
        }
    }
}

struct Shared {
    cfg: BrokerConfig,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<BusEvent>,
    handler: Mutex<Option<Arc<dyn KernelHandler>>>,
    audit: OnceLock<AuditLog>,
    /// Set when the broker closes; every connection task stops reading.
    closing: tokio::sync::watch::Sender<bool>,
    /// Bumped whenever the tools the registry lists may have changed
    /// (`registry.watch` follows it).
    tools_changed: tokio::sync::watch::Sender<u64>,
    uid: u32,
    pid: u32,
    /// `flock` on `<socket>.lock`, held while the broker lives.
    _lock: nix::fcntl::Flock<std::fs::File>,
    /// Open connections, in all and per process.
    admission: Admission,
    /// Bytes queued for slow readers, across every connection.
    budget: Arc<Budget>,
}

impl Shared {
    /// Tells the registry's watchers to look again.
    fn tools_changed(&self) {
        self.tools_changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic while routing; the state itself is
        // plain data, so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle to a running broker. Cloning is cheap.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
    tasks: Arc<Vec<tokio::task::AbortHandle>>,
}

fn error_frame(corr: u64, code: ErrorCode, message: impl Into<String>) -> Option<Frame> {
    Frame::new(
        corr,
        &ErrorReply {
            code,
            message: message.into(),
        },
    )
    .ok()
}

impl Broker {
    /// Removes a stale socket left by a crash (refusing if a live broker
    /// answers on it), binds, restricts the socket to its owner, and starts
    /// accepting. Must be called inside a tokio runtime.
    pub async fn bind(
        cfg: BrokerConfig,
    ) -> Result<(Broker, mpsc::UnboundedReceiver<BusEvent>), BrokerError> {
        let path = cfg.socket_path.clone();
        // The lock beside the socket is held for the broker's life: while
        // it is held no other broker touches the socket, so a stale one can
        // be removed without racing a broker that is just starting.
        let lock = lock_socket(&path)?;
        remove_stale_socket(&path).await?;
        let listener = UnixListener::bind(&path).map_err(|source| BrokerError::Bind {
            path: path.clone(),
            source,
        })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| BrokerError::Bind {
                path: path.clone(),
                source,
            },
        )?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let cfg_limits = cfg.limits;
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(State::default()),
            events,
            handler: Mutex::new(None),
            audit: OnceLock::new(),
            closing: tokio::sync::watch::channel(false).0,
            tools_changed: tokio::sync::watch::channel(0).0,
            uid: nix::unistd::geteuid().as_raw(),
            pid: std::process::id(),
            _lock: lock,
            admission: Admission::default(),
            budget: Budget::new(cfg_limits.max_queued_bytes),
        });
        let accept = tokio::spawn(
            accept_loop(shared.clone(), listener).instrument(info_span!("bus", service = "kernel")),
        );
        let beat = tokio::spawn(heartbeat_loop(shared.clone()));
        let sweep = tokio::spawn(deadline_loop(shared.clone()));
        info!(socket = %path.display(), "bus broker listening");
        Ok((
            Broker {
                shared,
                tasks: Arc::new(vec![
                    accept.abort_handle(),
                    beat.abort_handle(),
                    sweep.abort_handle(),
                ]),
            },
            events_rx,
        ))
    }

    pub fn socket_path(&self) -> &Path {
        &self.shared.cfg.socket_path
    }

    pub fn set_kernel_handler(&self, handler: Arc<dyn KernelHandler>) {
        *self
            .shared
            .handler
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    /// Records tool calls in `log` and answers the `audit.*` methods from it.
    pub fn set_audit(&self, log: AuditLog) {
        let _ = self.shared.audit.set(log);
    }

    /// The supervisor spawned `pid` for `service`: only that process may
    /// connect under that name.
    pub fn expect_service(&self, service: &str, pid: u32) {
        self.shared.lock().expected.insert(service.to_string(), pid);
    }

    /// The services the supervisor means to run; requests may wait for
    /// these only.
    pub fn set_wanted(&self, names: HashSet<String>) {
        self.shared.lock().wanted = Some(names);
    }

    pub fn forget_service(&self, service: &str) {
        self.shared.lock().expected.remove(service);
    }

    pub fn registry(&self) -> oi_ipc_schema::control::RegistrySnapshot {
        self.shared.lock().registry.snapshot(Instant::now())
    }

    pub fn tools(&self) -> oi_ipc_schema::control::ToolList {
        self.shared.lock().registry.tools()
    }

    /// Time since `service` last answered a heartbeat, if it is connected.
    pub fn heartbeat_age(&self, service: &str) -> Option<Duration> {
        let now = Instant::now();
        self.shared
            .lock()
            .registry
            .get(service)
            .map(|e| e.heartbeat_age(now))
    }

    /// Sends a message to a connected service; false if it is not connected.
    pub fn send_to_service<M>(&self, service: &str, msg: &M) -> bool
    where
        M: Message,
    {
        let Ok(frame) = Frame::new(0, msg) else {
            return false;
        };
        let st = self.shared.lock();
        let Some(entry) = st.registry.get(service) else {
            return false;
        };
        st.conns
            .get(&entry.conn_id)
            .is_some_and(|c| c.tx.send(&frame).is_ok())
    }

    /// Sends a message to every connected service.
    pub fn broadcast<M>(&self, msg: &M) -> usize
    where
        M: Message,
    {
        let Ok(frame) = Frame::new(0, msg) else {
            return 0;
        };
        let st = self.shared.lock();
        st.registry
            .iter()
            .filter_map(|e| st.conns.get(&e.conn_id))
            .filter(|c| c.tx.send(&frame).is_ok())
            .count()
    }

    /// Number of open connections (services and clients).
    pub fn connection_count(&self) -> usize {
        self.shared.lock().conns.len()
    }

    /// Bytes queued for peers that are not reading, across every
    /// connection.
    pub fn queued_bytes(&self) -> usize {
        self.shared.budget.used()
    }

    /// The most bytes ever queued at once for peers that were not reading.
    pub fn queued_bytes_peak(&self) -> usize {
        self.shared.budget.peak()
    }

    /// Requests forwarded or waiting, on all connections.
    pub fn requests_in_flight(&self) -> usize {
        self.shared.lock().in_flight.total()
    }

    /// Sockets open, counted from accept (before Hello too).
    pub fn open_sockets(&self) -> usize {
        self.shared.admission.open()
    }

    /// Stops accepting, closes every connection and removes the socket file.
    pub fn close(&self) {
        for t in self.tasks.iter() {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.shared.cfg.socket_path);
        self.shared.closing.send_replace(true);
        let mut st = self.shared.lock();
        for (_, conn) in st.conns.drain() {
            match error_frame(0, ErrorCode::Unavailable, "the broker is shutting down") {
                Some(f) => conn.tx.send_and_close(&f),
                None => conn.tx.close(),
            }
        }
    }
}
