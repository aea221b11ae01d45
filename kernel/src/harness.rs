//! The harness every service process runs on.
//!
//! A service implements [`Service`]; [`run`] does the rest: connect to the
//! bus and say `Hello`, initialise, register tools, send `Ready`, serve
//! requests concurrently (each cancellable), answer heartbeats, pass on
//! `ConfigChanged`, and exit cleanly on `Shutdown`, SIGTERM, or EOF on the
//! bus (the supervisor is gone). A panic anywhere ends the process with exit
//! status 70, so the supervisor sees a crash instead of a hung half-process.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oi_ipc_schema::{ErrorCode, ToolSpec};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{Instrument, error, info, info_span, warn};

use crate::client::{BusClient, BusError, Inbound, IncomingRequest};

/// Exit status of a service that panicked (EX_SOFTWARE).
pub const EXIT_PANIC: i32 = 70;
/// Exit status for a configuration error (EX_CONFIG); never restarted.
pub const EXIT_CONFIG: i32 = 78;

/// A failed request, as the caller will see it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    /// Set when initialisation failed in a way a restart cannot fix: the
    /// process exits with this status (78) and is not restarted.
    pub exit_code: Option<i32>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
            exit_code: None,
        }
    }
    /// A configuration or environment problem found while starting.
    pub fn config_error(message: impl Into<String>) -> Self {
        ServiceError {
            exit_code: Some(EXIT_CONFIG),
            ..Self::new(ErrorCode::BadRequest, message)
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
    /// The caller may not do this.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Denied, message)
    }
}

impl From<BusError> for ServiceError {
    fn from(e: BusError) -> Self {
        match e {
            // The code is kept as the code; the message is not prefixed
            // with it again ("bad_request: bad_request: ...").
            BusError::Remote { code, message } => ServiceError::new(code, message),
            BusError::Timeout { destination, ms } => ServiceError::new(
                ErrorCode::Timeout,
                format!("no answer from '{destination}' within {ms} ms"),
            ),
            e => ServiceError::new(e.code(), e.to_string()),
        }
    }
}

/// What a handler returns: one payload, or a stream of chunks.
pub enum Reply {
    Once(Vec<u8>),
    Stream(mpsc::Receiver<Result<Vec<u8>, ServiceError>>),
}

/// Decodes a request's archived payload, or says which method got a bad one.
pub fn decode_request<T>(req: &IncomingRequest) -> Result<T, ServiceError>
where
    T: oi_ipc_schema::Decode,
{
    oi_ipc_schema::decode_payload(req.payload(), oi_ipc_schema::Kind::Request, req.corr())
        .map_err(|e| ServiceError::bad_request(format!("{}: {e}", req.method())))
}

/// Archives a value as a one-payload reply.
pub fn archived_reply<T>(value: &T) -> Result<Reply, ServiceError>
where
    T: oi_ipc_schema::Encode,
{
    oi_ipc_schema::encode_payload(value)
        .map(Reply::Once)
        .map_err(|e| ServiceError::internal(e.to_string()))
}

/// The config the supervisor passed down (`OPENINTENT_CONFIG`), or the
/// shipped defaults when run without one.
pub fn service_config() -> Result<crate::config::Config, ServiceError> {
    match std::env::var_os("OPENINTENT_CONFIG").map(PathBuf::from) {
        Some(p) => {
            crate::config::Config::load(&p).map_err(|e| ServiceError::config_error(e.to_string()))
        }
        None => Ok(crate::config::Config::defaults()),
    }
}

/// What a service reads from the configuration a `ConfigChanged` carries
/// (the supervisor's merged, already validated config as TOML text), by
/// `read` (usually `Config::section::<S>`). `None`, logged, if unreadable.
pub fn config_update<T>(
    generation: u64,
    text: &str,
    read: impl FnOnce(&crate::config::Config) -> Result<T, crate::config::ConfigError>,
) -> Option<T> {
    let parsed =
        crate::config::Config::parse_layers(Some(text), std::path::Path::new("<ConfigChanged>"));
    match parsed.and_then(|c| read(&c)) {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(generation, "config change ignored: {e}");
            None
        }
    }
}

impl From<crate::config::ConfigError> for ServiceError {
    fn from(e: crate::config::ConfigError) -> Self {
        ServiceError::config_error(e.to_string())
    }
}

/// A value a service swaps whole when its config changes, while requests
/// in flight keep the one they started with.
#[derive(Debug)]
pub struct Live<T>(std::sync::RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Live(std::sync::RwLock::new(Arc::new(value)))
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        match self.0.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the value; readers see the new one from their next `get`.
    pub fn set(&self, value: T) {
        match self.0.write() {
            Ok(mut v) => *v = Arc::new(value),
            Err(p) => *p.into_inner() = Arc::new(value),
        }
    }

    /// Rebuilds the value for a changed `[section]`; if that fails, the old
    /// value stays and the reason is logged.
    pub fn rebuild(&self, section: &str, build: impl FnOnce() -> Result<T, ServiceError>) {
        match build() {
            Ok(v) => {
                self.set(v);
                info!("[{section}] settings applied");
            }
            Err(e) => warn!(
                "new [{section}] settings refused, keeping the old ones: {}",
                e.message
            ),
        }
    }
}

/// The data directory the supervisor passed down (`OPENINTENT_DATA_DIR`).
pub fn data_dir(service: &str) -> Result<PathBuf, ServiceError> {
    std::env::var_os("OPENINTENT_DATA_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            ServiceError::config_error(format!(
                "OPENINTENT_DATA_DIR is not set; the {service} service is started by openintentd"
            ))
        })
}

/// A service process's behaviour.
pub trait Service: Send + Sync + 'static {
    /// Tools this service offers to the agent.
    fn tools(&self) -> Vec<ToolSpec> {
        Vec::new()
    }

    /// Handles one request. Runs concurrently with other requests; dropped
    /// (cancelled) when the caller cancels or its deadline passes.
    fn handle(
        &self,
        req: IncomingRequest,
    ) -> impl Future<Output = Result<Reply, ServiceError>> + Send;

    /// A new configuration took effect.
    fn config_changed(
        &self,
        _generation: u64,
        _config_toml: &str,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Why the service stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum StopReason {
    BusClosed,
    Shutdown,
    Signal,
}

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "{} is not set: services are started by openintentd (`openintentd service <name>`)",
        crate::ENV_BUS_SOCKET
    )]
    NoBusSocket,
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("initialisation failed: {message}")]
    Init {
        message: String,
        exit_code: Option<i32>,
    },
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
}

impl HarnessError {
    /// The exit status the process should end with.
    pub fn exit_code(&self) -> i32 {
        match self {
            HarnessError::NoBusSocket => EXIT_CONFIG,
            HarnessError::Init {
                exit_code: Some(c), ..
            } => *c,
            _ => 1,
        }
    }
}

/// Makes every panic end the process, after logging it.
pub fn install_panic_exit(service: &'static str) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        error!(service, panic = %info, "service panicked; exiting");
        std::process::exit(EXIT_PANIC);
    }));
}

/// The bus socket path the supervisor passed down.
pub fn bus_socket_from_env() -> Result<PathBuf, HarnessError> {
    std::env::var_os(crate::ENV_BUS_SOCKET)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or(HarnessError::NoBusSocket)
}

/// Runs a service to completion on a fresh runtime and returns the process
/// exit status. `init` gets the bus client (to call other services while
/// starting) and builds the service.
pub fn run<S, F, Fut>(name: &'static str, init: F) -> i32
where
    S: Service,
    F: FnOnce(BusClient) -> Fut,
    Fut: Future<Output = Result<S, ServiceError>>,
{
    crate::telemetry::init();
    install_panic_exit(name);
    // One thread: a service's work is mostly waiting on sockets, and on this
    // kind of machine a current-thread runtime answers the bus faster than
    // a multi-thread one (`oi-bench ipc`). CPU-heavy work belongs in
    // `spawn_blocking`.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(service = name, error = %e, "cannot start the async runtime");
            return 1;
        }
    };
    let result = rt.block_on(
        async move {
            let path = bus_socket_from_env()?;
            serve(name, &path, init).await
        }
        .instrument(info_span!("service", service = name)),
    );
    // In-flight blocking work must not hold the process open.
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(reason) => {
            info!(service = name, ?reason, "service stopped");
            0
        }
        Err(e) => {
            error!(service = name, error = %e, "service failed");
            e.exit_code()
        }
    }
}

/// Connects, initialises and serves until a stop reason arrives.
pub async fn serve<S, F, Fut>(
    name: &str,
    socket: &std::path::Path,
    init: F,
) -> Result<StopReason, HarnessError>
where
    S: Service,
    F: FnOnce(BusClient) -> Fut,
    Fut: Future<Output = Result<S, ServiceError>>,
{
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(HarnessError::Signal)?;
    let (client, mut inbound) =
        BusClient::connect(socket, Some(name), oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES).await?;
    let service = Arc::new(init(client.clone()).await.map_err(|e| HarnessError::Init {
        message: e.message,
        exit_code: e.exit_code,
    })?);
    client.register_tools(service.tools())?;
    client.send_ready("")?;
    info!("ready");

    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: HashMap<u64, tokio::task::AbortHandle> = HashMap::new();
    let mut grace = Duration::from_secs(5);
    let reason = loop {
        tokio::select! {
            msg = inbound.recv() => match msg {
                None => break StopReason::BusClosed,
                Some(Inbound::Request(req)) => {
                    let corr = req.corr();
                    let handle = tasks.spawn(handle_one(service.clone(), client.clone(), req));
                    running.insert(corr, handle);
                }
                Some(Inbound::Cancel { corr }) => {
                    if let Some(h) = running.remove(&corr) {
                        h.abort();
                    }
                }
                Some(Inbound::Shutdown { reason, grace: g }) => {
                    info!(%reason, "shutdown requested");
                    if !g.is_zero() {
                        grace = g;
                    }
                    break StopReason::Shutdown;
                }
                Some(Inbound::ConfigChanged { generation, config_toml }) => {
                    service.config_changed(generation, &config_toml).await;
                }
            },
            _ = sigterm.recv() => break StopReason::Signal,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                running.retain(|_, h| !h.is_finished());
            }
        }
    };
    if reason == StopReason::BusClosed {
        warn!("bus closed: the supervisor is gone");
    }
    // Let in-flight requests finish within the grace period.
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            remaining = tasks.len(),
            "in-flight requests cut off at shutdown"
        );
        tasks.abort_all();
    }
    Ok(reason)
}

async fn handle_one<S: Service>(service: Arc<S>, client: BusClient, req: IncomingRequest) {
    let corr = req.corr();
    let method = req.method().to_string();
    let span = info_span!("request", corr, method = %method);
    async {
        match service.handle(req).await {
            Ok(Reply::Once(payload)) => {
                let _ = client.respond(corr, payload);
            }
            Ok(Reply::Stream(mut rx)) => {
                let mut seq = 0u32;
                loop {
                    match rx.recv().await {
                        Some(Ok(chunk)) => {
                            if client.stream_chunk(corr, seq, chunk).is_err() {
                                return;
                            }
                            seq = seq.wrapping_add(1);
                        }
                        Some(Err(e)) => {
                            let _ = client.respond_error(corr, e.code, e.message);
                            return;
                        }
                        None => {
                            let _ = client.stream_end(corr, Vec::new());
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                let _ = client.respond_error(corr, e.code, e.message);
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_error_names_its_code_once() {
        let e = ServiceError::from(BusError::Remote {
            code: ErrorCode::BadRequest,
            message: "argument 'path' is missing".into(),
        });
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.to_string(), "bad_request: argument 'path' is missing");
        let e = ServiceError::from(BusError::Timeout {
            destination: "fs".into(),
            ms: 5,
        });
        assert_eq!(e.code, ErrorCode::Timeout);
        assert_eq!(e.to_string(), "timeout: no answer from 'fs' within 5 ms");
    }
}
