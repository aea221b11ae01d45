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

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use oi_ipc_schema::control::methods;
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
}

struct Shared {
    cfg: BrokerConfig,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<BusEvent>,
    handler: Mutex<Option<Arc<dyn KernelHandler>>>,
    audit: OnceLock<AuditLog>,
    /// Set when the broker closes; every connection task stops reading.
    closing: tokio::sync::watch::Sender<bool>,
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

/// Takes the exclusive lock on the file beside the socket, or says that
/// another broker holds it.
fn lock_socket(socket: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, BrokerError> {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|source| BrokerError::Lock {
            path: lock_path.clone(),
            source,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        match e {
            nix::errno::Errno::EWOULDBLOCK => BrokerError::AlreadyRunning(socket.to_path_buf()),
            e => BrokerError::Lock {
                path: lock_path.clone(),
                source: io::Error::from(e),
            },
        }
    })
}

async fn remove_stale_socket(path: &Path) -> Result<(), BrokerError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BrokerError::RemoveStale {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(_) => {}
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(BrokerError::AlreadyRunning(path.to_path_buf()));
    }
    info!(socket = %path.display(), "removing stale bus socket left by an earlier run");
    std::fs::remove_file(path).map_err(|source| BrokerError::RemoveStale {
        path: path.to_path_buf(),
        source,
    })
}

async fn accept_loop(shared: Arc<Shared>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move { serve_connection(shared, stream).await });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept on bus socket failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.cfg.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tick.tick().await;
        seq += 1;
        // A burst of connections is over: give its memory back.
        if shared.admission.trim_after_burst(64) {
            debug!("gave memory back after a burst of connections");
        }
        let Ok(frame) = Frame::new(0, &Heartbeat { seq }) else {
            continue;
        };
        let st = shared.lock();
        for e in st.registry.iter() {
            if let Some(c) = st.conns.get(&e.conn_id) {
                let _ = c.tx.send(&frame);
            }
        }
    }
}

/// Fails requests whose deadline passed, both forwarded and waiting ones.
async fn deadline_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let mut st = shared.lock();
        let expired: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(g, _)| *g)
            .collect();
        for g in expired {
            if let Some(p) = st.pending.remove(&g) {
                st.by_origin.remove(&(p.origin_conn, p.origin_corr));
                st.in_flight.done(p.origin_conn);
                reply_error(
                    &st,
                    p.origin_conn,
                    p.origin_corr,
                    ErrorCode::Timeout,
                    format!("service '{}' did not answer before the deadline", p.target),
                );
                send_cancel(&st, p.target_conn, g, "deadline passed");
                shared.audit_end(p.audit, || "timeout: the deadline passed".into());
            }
        }
        let st = &mut *st;
        let mut timed_out = Vec::new();
        for (service, queue) in st.waiting.iter_mut() {
            let (expired, keep): (Vec<_>, Vec<_>) =
                queue.drain(..).partition(|w| w.deadline <= now);
            *queue = keep;
            for w in expired {
                st.in_flight.done(w.origin_conn);
                timed_out.push((w.origin_conn, w.frame.corr(), service.clone()));
            }
        }
        st.waiting.retain(|_, q| !q.is_empty());
        for (conn, corr, service) in timed_out {
            reply_error(
                st,
                conn,
                corr,
                ErrorCode::Timeout,
                format!("service '{service}' did not become available before the deadline"),
            );
        }
    }
}

impl Shared {
    /// Appends a finished tool call to the audit log.
    fn audit_end(&self, call: Option<Box<ToolCall>>, outcome: impl FnOnce() -> String) {
        if let (Some(log), Some(call)) = (self.audit.get(), call) {
            let mut entry = call.entry;
            entry.duration_ms = call.started.elapsed().as_millis() as u64;
            entry.outcome = outcome();
            log.record(entry);
        }
    }
}

/// How a reply frame ended a request, for the audit log.
fn reply_outcome(frame: &Frame) -> String {
    match frame.kind {
        Kind::Error => match frame.decode::<ErrorReply>() {
            Ok(e) => format!("{}: {}", e.code.as_str(), e.message),
            Err(e) => format!("invalid error reply: {e}"),
        },
        _ => "ok".into(),
    }
}

fn send_cancel(st: &State, conn: u64, corr: u64, reason: &str) {
    if let (Some(c), Ok(f)) = (
        st.conns.get(&conn),
        Frame::new(
            corr,
            &Cancel {
                reason: reason.to_string(),
            },
        ),
    ) {
        let _ = c.tx.send(&f);
    }
}

fn reply_error(st: &State, conn: u64, corr: u64, code: ErrorCode, message: String) {
    if let (Some(c), Some(f)) = (st.conns.get(&conn), error_frame(corr, code, message)) {
        let _ = c.tx.send(&f);
    }
}

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Framing(#[from] FramingError),
    #[error("{0}")]
    Protocol(String),
}

async fn refuse(half: OwnedWriteHalf, code: ErrorCode, message: String) {
    let sink = FrameSink::new(half);
    match error_frame(0, code, message) {
        Some(f) => sink.send_and_close(&f),
        None => sink.close(),
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: UnixStream) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot read peer credentials; closing connection");
            return;
        }
    };
    let peer_pid = cred.pid().map(|p| p as u32).unwrap_or(0);
    let (rd, wr) = stream.into_split();
    // Counted from accept, before Hello: idle sockets hold memory too.
    let is_service = shared.lock().expected.values().any(|p| *p == peer_pid);
    let _slot = match shared
        .admission
        .admit(peer_pid, is_service, &shared.cfg.limits)
    {
        Ok(slot) => slot,
        Err(why) => {
            warn!(peer_pid, "refusing bus connection: {why}");
            return refuse(wr, ErrorCode::Unavailable, why).await;
        }
    };
    if cred.uid() != shared.uid {
        warn!(
            peer_uid = cred.uid(),
            peer_pid, "refusing bus connection from another user"
        );
        refuse(
            wr,
            ErrorCode::Denied,
            format!(
                "the bus only accepts connections from uid {}, not uid {}",
                shared.uid,
                cred.uid()
            ),
        )
        .await;
        return;
    }
    // Small: most frames are small, and a large payload is read past the
    // buffer straight into its own allocation.
    let mut rd = BufReader::with_capacity(8 * 1024, rd);
    let hello = match tokio::time::timeout(
        shared.cfg.hello_timeout,
        read_frame(&mut rd, shared.cfg.max_frame_bytes),
    )
    .await
    {
        Err(_) => {
            warn!(peer_pid, "no Hello within the timeout; closing connection");
            return refuse(
                wr,
                ErrorCode::BadRequest,
                "no Hello received in time".into(),
            )
            .await;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            warn!(peer_pid, error = %e, "bad first frame; closing connection");
            return refuse(wr, ErrorCode::BadRequest, e.to_string()).await;
        }
        Ok(Ok(Some(f))) => f,
    };
    let identity = match check_hello(&shared, &hello, peer_pid) {
        Ok(identity) => identity,
        Err((code, message)) => {
            warn!(peer_pid, reason = %message, "refusing bus connection");
            return refuse(wr, code, message).await;
        }
    };
    // Clients' queues share the bus's budget; a service's is protected
    // instead by refusing requests while it is behind (`route_request`).
    let budget = identity.is_none().then(|| shared.budget.clone());
    let tx = FrameSink::with_budget(wr, budget);
    let registered = {
        let mut st = shared.lock();
        st.next_conn += 1;
        let conn_id = st.next_conn;
        let mut duplicate = false;
        if let Some(name) = &identity {
            let existing = st.registry.get(name).map(|e| (e.conn_id, e.pid));
            match existing {
                Some((_, old_pid)) if old_pid == peer_pid => duplicate = true,
                Some((old_conn, _)) => {
                    // The supervisor already started a replacement (it
                    // checked the pid); the old connection's EOF has not
                    // arrived yet.
                    st.registry.remove_conn(name, old_conn);
                }
                None => {}
            }
            if !duplicate {
                st.registry.insert(ServiceEntry {
                    name: name.clone(),
                    pid: peer_pid,
                    conn_id,
                    ready: false,
                    connected_at: Instant::now(),
                    last_heartbeat: None,
                    tools: Vec::new(),
                });
            }
        }
        if !duplicate {
            st.conns.insert(
                conn_id,
                Conn {
                    tx: tx.clone(),
                    service: identity.clone(),
                    pid: peer_pid,
                },
            );
        }
        (!duplicate).then_some(conn_id)
    };
    let Some(conn_id) = registered else {
        let msg = format!(
            "service '{}' is already connected to the bus",
            identity.as_deref().unwrap_or("")
        );
        warn!(peer_pid, "{msg}");
        match error_frame(0, ErrorCode::Denied, msg) {
            Some(f) => tx.send_and_close(&f),
            None => tx.close(),
        }
        return;
    };
    let span = info_span!(
        "bus_conn",
        service = "kernel",
        conn = conn_id,
        peer = identity.as_deref().unwrap_or("client"),
        pid = peer_pid
    );
    async {
        if let Some(name) = &identity {
            let _ = shared.events.send(BusEvent::Connected {
                name: name.clone(),
                pid: peer_pid,
            });
        }
        if let Ok(f) = Frame::new(
            hello.corr(),
            &Welcome {
                connection_id: conn_id,
                broker_pid: shared.pid,
                protocol_version: PROTOCOL_VERSION,
                build_id: crate::BUILD_ID.to_string(),
                heartbeat_interval_ms: u32::try_from(shared.cfg.heartbeat_interval.as_millis())
                    .unwrap_or(u32::MAX),
            },
        ) {
            let _ = tx.send(&f);
        }
        debug!("connected");
        let caller = Caller {
            conn_id,
            service: identity.clone(),
            pid: peer_pid,
            uid: cred.uid(),
        };
        let mut closing = shared.closing.subscribe();
        let reason = loop {
            let next = tokio::select! {
                r = read_frame(&mut rd, shared.cfg.max_frame_bytes) => r,
                _ = closing.wait_for(|c| *c) => break None,
            };
            match next {
                Ok(None) => break None,
                Ok(Some(frame)) => {
                    if let Err(e) = frame.validate() {
                        break Some(Refusal::Framing(e.into()));
                    }
                    if let Err(r) = dispatch(&shared, &caller, frame) {
                        break Some(r);
                    }
                }
                Err(e) => break Some(Refusal::Framing(e)),
            }
        };
        match &reason {
            None => debug!("peer closed the connection"),
            Some(r) => {
                warn!(reason = %r, "closing bus connection after a bad frame");
                if let Some(f) = error_frame(0, ErrorCode::BadRequest, r.to_string()) {
                    let _ = tx.send(&f);
                }
            }
        }
        disconnect(&shared, conn_id);
        tx.close();
    }
    .instrument(span)
    .await
}

/// Validates `Hello` and the peer's claim; returns the service name the
/// connection may act as (None for a plain client).
fn check_hello(
    shared: &Shared,
    frame: &Frame,
    peer_pid: u32,
) -> Result<Option<String>, (ErrorCode, String)> {
    let hello = frame.access::<Hello>().map_err(|e| {
        (
            ErrorCode::BadRequest,
            format!("the first frame must be a valid Hello: {e}"),
        )
    })?;
    let version = hello.protocol_version.to_native();
    if version != PROTOCOL_VERSION {
        return Err((
            ErrorCode::BadRequest,
            format!(
                "protocol version mismatch: the peer speaks bus protocol version {version}, the broker speaks version {PROTOCOL_VERSION}; run the same release of openintentd and oictl"
            ),
        ));
    }
    if hello.pid.to_native() != peer_pid {
        return Err((
            ErrorCode::Denied,
            format!(
                "Hello claims pid {} but the socket peer is pid {peer_pid}",
                hello.pid.to_native()
            ),
        ));
    }
    let Some(name) = hello.service.as_ref() else {
        // A client gets the user's rights, so it must not be anything a
        // service started (see `lineage`).
        let services: HashSet<u32> = shared.lock().expected.values().copied().collect();
        let lineage = lineage::of_peer(peer_pid, shared.pid, &services);
        if let Some(why) = lineage.refusal(peer_pid) {
            return Err((ErrorCode::Denied, why));
        }
        return Ok(None);
    };
    let name = name.as_str();
    if name.is_empty() || name == KERNEL_DESTINATION {
        return Err((
            ErrorCode::Denied,
            format!("'{name}' is not a valid service name"),
        ));
    }
    match shared.lock().expected.get(name) {
        Some(&pid) if pid == peer_pid => Ok(Some(name.to_string())),
        Some(&pid) => Err((
            ErrorCode::Denied,
            format!(
                "pid {peer_pid} claims to be service '{name}', but the supervisor started that service as pid {pid}"
            ),
        )),
        None => Err((
            ErrorCode::Denied,
            format!(
                "pid {peer_pid} claims to be service '{name}', which the supervisor did not start"
            ),
        )),
    }
}

fn forward(st: &State, conn: u64, mut frame: Frame, corr: u64) -> bool {
    frame.header.corr = corr;
    st.conns
        .get(&conn)
        .is_some_and(|c| c.tx.send(&frame).is_ok())
}

/// Handles one validated frame from `caller`. An error closes the
/// connection.
fn dispatch(shared: &Arc<Shared>, caller: &Caller, frame: Frame) -> Result<(), Refusal> {
    let service = caller.service.as_deref();
    match (frame.kind, service) {
        (Kind::Ready, Some(name)) => {
            let queued = {
                let mut st = shared.lock();
                if let Some(e) = st.registry.get_mut(name) {
                    e.ready = true;
                    e.last_heartbeat = Some(Instant::now());
                }
                let queued = st.waiting.remove(name).unwrap_or_default();
                for w in &queued {
                    // route_request counts each again.
                    st.in_flight.done(w.origin_conn);
                }
                queued
            };
            info!("service ready");
            let _ = shared.events.send(BusEvent::Ready {
                name: name.to_string(),
                pid: caller.pid,
            });
            for w in queued {
                route_request(shared, w.origin_conn, w.frame, Some(w.deadline));
            }
            Ok(())
        }
        (Kind::Heartbeat, Some(name)) => {
            if let Some(e) = shared.lock().registry.get_mut(name) {
                e.last_heartbeat = Some(Instant::now());
            }
            Ok(())
        }
        (Kind::RegisterTools, Some(name)) => {
            let tools = frame
                .decode::<RegisterTools>()
                .map_err(|e| Refusal::Framing(e.into()))?;
            let tools: Vec<ToolSpec> = tools.tools;
            info!(count = tools.len(), "tools registered");
            if let Some(e) = shared.lock().registry.get_mut(name) {
                e.tools = tools;
            }
            Ok(())
        }
        (Kind::Request, _) => {
            let req = frame
                .access::<Request>()
                .map_err(|e| Refusal::Framing(e.into()))?;
            if req.caller.as_str() != service.unwrap_or("") {
                reply_error(
                    &shared.lock(),
                    caller.conn_id,
                    frame.corr(),
                    ErrorCode::Denied,
                    format!(
                        "request claims caller '{}' but this connection is '{}'",
                        req.caller,
                        service.unwrap_or("")
                    ),
                );
                return Ok(());
            }
            if req.destination.as_str() == KERNEL_DESTINATION {
                kernel_request(shared, caller, &frame);
                return Ok(());
            }
            route_request(shared, caller.conn_id, frame, None);
            Ok(())
        }
        (Kind::Response | Kind::StreamEnd | Kind::Error, _) => {
            let corr = frame.corr();
            let mut st = shared.lock();
            match st.pending.get(&corr) {
                Some(p) if p.target_conn == caller.conn_id => {
                    let Some(p) = st.pending.remove(&corr) else {
                        return Ok(());
                    };
                    st.by_origin.remove(&(p.origin_conn, p.origin_corr));
                    st.in_flight.done(p.origin_conn);
                    let outcome = p.audit.is_some().then(|| reply_outcome(&frame));
                    forward(&st, p.origin_conn, frame, p.origin_corr);
                    shared.audit_end(p.audit, || outcome.unwrap_or_default());
                }
                _ => {
                    debug!(corr, kind = ?frame.kind, "reply for an unknown or finished request dropped")
                }
            }
            Ok(())
        }
        (Kind::StreamChunk, _) => {
            let st = shared.lock();
            if let Some(p) = st.pending.get(&frame.corr())
                && p.target_conn == caller.conn_id
            {
                let (origin, corr) = (p.origin_conn, p.origin_corr);
                forward(&st, origin, frame, corr);
            }
            Ok(())
        }
        (Kind::Cancel, _) => {
            let mut st = shared.lock();
            let key = (caller.conn_id, frame.corr());
            if let Some(g) = st.by_origin.remove(&key) {
                if let Some(p) = st.pending.remove(&g) {
                    st.in_flight.done(p.origin_conn);
                    forward(&st, p.target_conn, frame, g);
                    shared.audit_end(p.audit, || "cancelled by the caller".into());
                }
            } else {
                let st = &mut *st;
                for queue in st.waiting.values_mut() {
                    let before = queue.len();
                    queue.retain(|w| !(w.origin_conn == caller.conn_id && w.frame.corr() == key.1));
                    for _ in queue.len()..before {
                        st.in_flight.done(caller.conn_id);
                    }
                }
            }
            Ok(())
        }
        (kind, _) => Err(Refusal::Protocol(format!(
            "a {} may not send a {kind:?} frame",
            if service.is_some() {
                "service"
            } else {
                "client"
            }
        ))),
    }
}

/// Requests queued for a service past this are refused as busy.
const SERVICE_BUSY_BYTES: usize = 16 * 1024 * 1024;

/// Forwards a request to its destination, queues it until the destination is
/// ready (when the caller asked to wait), or fails it with `unavailable`.
fn route_request(shared: &Arc<Shared>, origin_conn: u64, frame: Frame, deadline: Option<Instant>) {
    let Ok(req) = frame.access::<Request>() else {
        return;
    };
    let destination = req.destination.as_str().to_string();
    let wait = req.wait_for_service;
    let deadline = deadline.unwrap_or_else(|| {
        let ms = req.deadline_ms.to_native();
        Instant::now()
            + if ms == 0 {
                shared.cfg.default_deadline
            } else {
                Duration::from_millis(u64::from(ms))
            }
    });
    let origin_corr = frame.corr();
    let mut st = shared.lock();
    let max = shared.cfg.limits.max_requests_per_connection;
    let in_flight = st.in_flight.count(origin_conn);
    if in_flight >= max {
        reply_error(
            &st,
            origin_conn,
            origin_corr,
            ErrorCode::Unavailable,
            format!(
                "this connection has {in_flight} requests in flight, its limit ([bus] max_requests_per_connection = {max}); wait for some to finish"
            ),
        );
        return;
    }
    let entry = st.registry.get(&destination);
    let target = entry.filter(|e| e.ready).map(|e| e.conn_id);
    // A tool call: the method is a tool the destination registered.
    let tool_call = shared.audit.get().is_some()
        && entry.is_some_and(|e| e.tools.iter().any(|t| t.name == req.method.as_str()));
    let audit = tool_call.then(|| {
        Box::new(ToolCall {
            entry: audit::Entry {
                ts_ms: audit::now_ms(),
                intent: req.intent.as_str().to_string(),
                service: destination.clone(),
                caller: req.caller.as_str().to_string(),
                action: format!("tool:{}", req.method.as_str()),
                arguments: String::from_utf8_lossy(req.payload.as_slice()).into_owned(),
                outcome: String::new(),
                duration_ms: 0,
            },
            started: Instant::now(),
        })
    });
    // A service that is not reading its requests is not sent more: the
    // caller is told it is busy, and the service is not cut off.
    let behind = target
        .and_then(|t| st.conns.get(&t))
        .map_or(0, |c| c.tx.queued());
    let busy = (behind > SERVICE_BUSY_BYTES).then(|| {
        format!(
            "service '{destination}' is busy ({behind} bytes of requests not yet read); try again"
        )
    });
    match (target, busy) {
        (Some(target_conn), None) => {
            st.next_corr += 1;
            let g = st.next_corr;
            st.pending.insert(
                g,
                Pending {
                    origin_conn,
                    origin_corr,
                    target_conn,
                    target: destination,
                    deadline,
                    audit,
                },
            );
            st.by_origin.insert((origin_conn, origin_corr), g);
            st.in_flight.add(origin_conn);
            forward(&st, target_conn, frame, g);
        }
        (None, None)
            if wait
                && (entry.is_some()
                    || st.wanted.as_ref().is_none_or(|w| w.contains(&destination))) =>
        {
            st.in_flight.add(origin_conn);
            st.waiting.entry(destination).or_default().push(Waiting {
                origin_conn,
                frame,
                deadline,
            });
        }
        (_, busy) => {
            let why = busy.unwrap_or_else(|| {
                let why = if st.registry.get(&destination).is_some() {
                    "is starting and not ready yet"
                } else if st.expected.contains_key(&destination) {
                    "is restarting"
                } else if wait {
                    "is not running, and nothing is starting it"
                } else {
                    "is not running"
                };
                format!("service '{destination}' {why}")
            });
            reply_error(
                &st,
                origin_conn,
                origin_corr,
                ErrorCode::Unavailable,
                why.clone(),
            );
            drop(st);
            shared.audit_end(audit, || format!("unavailable: {why}"));
        }
    }
}

fn kernel_request(shared: &Arc<Shared>, caller: &Caller, frame: &Frame) {
    let Ok(req) = frame.access::<Request>() else {
        return;
    };
    let corr = frame.corr();
    let method = req.method.as_str().to_string();
    let conn = caller.conn_id;
    // Sends a reply frame; false once the caller's connection is gone.
    let send = {
        let shared = shared.clone();
        move |f: Option<Frame>| -> bool {
            let st = shared.lock();
            match (st.conns.get(&conn), f) {
                (Some(c), Some(f)) => c.tx.send(&f).is_ok(),
                (Some(_), None) => true,
                (None, _) => false,
            }
        }
    };
    let builtin = match method.as_str() {
        methods::REGISTRY_SERVICES => Some(oi_ipc_schema::encode_payload(
            &shared.lock().registry.snapshot(Instant::now()),
        )),
        methods::REGISTRY_TOOLS => Some(oi_ipc_schema::encode_payload(
            &shared.lock().registry.tools(),
        )),
        _ => None,
    };
    if let Some(res) = builtin {
        let _ = send(match res {
            Ok(payload) => Frame::new(corr, &oi_ipc_schema::Response { payload }).ok(),
            Err(e) => error_frame(corr, ErrorCode::Internal, e.to_string()),
        });
        return;
    }
    if let Some(log) = shared.audit.get()
        && method.starts_with("audit.")
    {
        let log = log.clone();
        let service = caller.service.clone();
        let payload = req.payload.as_slice().to_vec();
        tokio::spawn(async move {
            let frame = match audit_method(&log, service, &method, &payload).await {
                Ok(payload) => Frame::new(corr, &oi_ipc_schema::Response { payload }).ok(),
                Err((code, message)) => error_frame(corr, code, message),
            };
            send(frame);
        });
        return;
    }
    let handler = shared
        .handler
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some(handler) = handler else {
        let _ = send(error_frame(
            corr,
            ErrorCode::BadRequest,
            format!("the kernel has no method '{method}'"),
        ));
        return;
    };
    let fut = handler.handle(caller.clone(), method, req.payload.as_slice().to_vec());
    tokio::spawn(async move {
        match fut.await {
            Ok(KernelReply::Once(payload)) => {
                let _ = send(Frame::new(corr, &oi_ipc_schema::Response { payload }).ok());
            }
            Ok(KernelReply::Stream(mut rx)) => {
                let mut seq = 0u32;
                while let Some(payload) = rx.recv().await {
                    if !send(Frame::new(corr, &StreamChunk { seq, payload }).ok()) {
                        return;
                    }
                    seq = seq.wrapping_add(1);
                }
                send(
                    Frame::new(
                        corr,
                        &StreamEnd {
                            payload: Vec::new(),
                        },
                    )
                    .ok(),
                );
            }
            Err((code, message)) => {
                let _ = send(error_frame(corr, code, message));
            }
        }
    });
}

/// `audit.append` (services only), `audit.list` and `audit.verify`.
async fn audit_method(
    log: &AuditLog,
    service: Option<String>,
    method: &str,
    payload: &[u8],
) -> Result<Vec<u8>, (ErrorCode, String)> {
    use oi_ipc_schema::control::audit::{AuditQuery, AuditRecord, methods as audit_methods};
    let bad = |e: oi_ipc_schema::FrameError| (ErrorCode::BadRequest, format!("{method}: {e}"));
    let failed = |e: audit::AuditError| (ErrorCode::Internal, e.to_string());
    let encoded = |r: Result<Vec<u8>, oi_ipc_schema::FrameError>| {
        r.map_err(|e| (ErrorCode::Internal, e.to_string()))
    };
    match method {
        audit_methods::APPEND => {
            let Some(service) = service else {
                return Err((
                    ErrorCode::Denied,
                    "audit.append: only services append to the audit log".into(),
                ));
            };
            let r: AuditRecord =
                oi_ipc_schema::decode_payload(payload, Kind::Request, 0).map_err(bad)?;
            log.record(audit::Entry {
                ts_ms: audit::now_ms(),
                intent: r.intent,
                service: service.clone(),
                caller: service,
                action: r.action,
                arguments: r.arguments,
                outcome: r.outcome,
                duration_ms: r.duration_ms,
            });
            Ok(Vec::new())
        }
        audit_methods::LIST => {
            let q: AuditQuery =
                oi_ipc_schema::decode_payload(payload, Kind::Request, 0).map_err(bad)?;
            encoded(oi_ipc_schema::encode_payload(
                &log.list(q).await.map_err(failed)?,
            ))
        }
        audit_methods::VERIFY => encoded(oi_ipc_schema::encode_payload(
            &log.verify().await.map_err(failed)?,
        )),
        other => Err((
            ErrorCode::BadRequest,
            format!("the kernel has no method '{other}'"),
        )),
    }
}

/// Forgets a closed connection: its registry entry, the requests it was
/// serving (their callers get `unavailable`), and the requests it made (their
/// services get `Cancel`).
fn disconnect(shared: &Arc<Shared>, conn_id: u64) {
    let mut st = shared.lock();
    let Some(conn) = st.conns.remove(&conn_id) else {
        return;
    };
    let served: Vec<u64> = st
        .pending
        .iter()
        .filter(|(_, p)| p.target_conn == conn_id || p.origin_conn == conn_id)
        .map(|(g, _)| *g)
        .collect();
    st.in_flight.forget(conn_id);
    for g in served {
        let Some(p) = st.pending.remove(&g) else {
            continue;
        };
        st.by_origin.remove(&(p.origin_conn, p.origin_corr));
        if p.origin_conn != conn_id {
            st.in_flight.done(p.origin_conn);
        }
        if p.target_conn == conn_id {
            let why = format!("service '{}' exited while handling the request", p.target);
            reply_error(
                &st,
                p.origin_conn,
                p.origin_corr,
                ErrorCode::Unavailable,
                why.clone(),
            );
            shared.audit_end(p.audit, || format!("unavailable: {why}"));
        } else {
            send_cancel(&st, p.target_conn, g, "caller disconnected");
            shared.audit_end(p.audit, || "cancelled: the caller disconnected".into());
        }
    }
    for queue in st.waiting.values_mut() {
        queue.retain(|w| w.origin_conn != conn_id);
    }
    if let Some(name) = conn.service
        && st.registry.remove_conn(&name, conn_id).is_some()
    {
        info!(service = %name, pid = conn.pid, "service left the bus");
        let _ = shared.events.send(BusEvent::Disconnected {
            name,
            pid: conn.pid,
        });
    }
}
