//! Payloads of the kernel's own methods (destination [`crate::KERNEL_DESTINATION`]):
//! the service registry and the supervisor's control plane used by `oictl`.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::{Call, Stream, Text};
use crate::messages::ToolSpec;

/// Method names the kernel answers.
pub mod methods {
    /// -> [`super::RegistrySnapshot`]
    pub const REGISTRY_SERVICES: &str = "registry.services";
    /// -> [`super::ToolList`]
    pub const REGISTRY_TOOLS: &str = "registry.tools";
    /// -> a stream of [`super::ToolList`]: the tools now, then again each
    /// time a service registers tools or goes away. The agent watches it
    /// instead of asking for the tools on every turn.
    pub const REGISTRY_WATCH: &str = "registry.watch";
    /// -> [`super::BusStats`]: what the broker has routed since it started.
    pub const BUS_STATS: &str = "bus.stats";
    /// -> [`super::StatusReport`]
    pub const STATUS: &str = "supervisor.status";
    /// [`super::ServiceName`] -> empty
    pub const RESTART: &str = "supervisor.restart";
    /// [`super::ServiceName`] -> empty
    pub const STOP: &str = "supervisor.stop";
    /// [`super::ServiceName`] -> empty, or (UTF-8 text) why it will not
    /// run yet (WAITING for what its `requires` name)
    pub const START: &str = "supervisor.start";
    /// [`super::LogsRequest`] -> [`super::LogLines`] (streamed when `follow`)
    pub const LOGS: &str = "supervisor.logs";
    /// empty -> empty: stops every service in order, then openintentd.
    pub const SHUTDOWN: &str = "supervisor.shutdown";
}

/// The kernel's destination (registry, supervisor control, audit log).
pub const SERVICE: &str = crate::KERNEL_DESTINATION;

pub const REGISTRY_SERVICES: Call<(), RegistrySnapshot> =
    Call::new(SERVICE, methods::REGISTRY_SERVICES);
pub const REGISTRY_TOOLS: Call<(), ToolList> = Call::new(SERVICE, methods::REGISTRY_TOOLS);
pub const REGISTRY_WATCH: Stream<(), ToolList> = Stream::new(SERVICE, methods::REGISTRY_WATCH);
pub const BUS_STATS: Call<(), BusStats> = Call::new(SERVICE, methods::BUS_STATS);
pub const STATUS: Call<(), StatusReport> = Call::new(SERVICE, methods::STATUS);
pub const RESTART: Call<ServiceName, ()> = Call::new(SERVICE, methods::RESTART);
pub const STOP: Call<ServiceName, ()> = Call::new(SERVICE, methods::STOP);
pub const START: Call<ServiceName, Text> = Call::new(SERVICE, methods::START);
pub const LOGS: Call<LogsRequest, LogLines> = Call::new(SERVICE, methods::LOGS);
pub const LOGS_FOLLOW: Stream<LogsRequest, LogLines> = Stream::new(SERVICE, methods::LOGS);
pub const SHUTDOWN: Call<(), ()> = Call::new(SERVICE, methods::SHUTDOWN);

/// Requests the broker has routed since it started, in all and per
/// method, counted when each request arrives (kernel methods included,
/// `bus.stats` itself excluded).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct BusStats {
    pub requests: u64,
    /// `(method, count)`, by method name.
    pub by_method: Vec<(String, u64)>,
}

/// One connected service as the broker's registry sees it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RegisteredService {
    pub name: String,
    pub pid: u32,
    pub ready: bool,
    pub connected_ms: u64,
    /// Milliseconds since the last heartbeat echo, if any arrived yet.
    pub heartbeat_age_ms: Option<u64>,
    pub tools: Vec<ToolSpec>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RegistrySnapshot {
    pub services: Vec<RegisteredService>,
}

/// A tool and the service that serves it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RegisteredTool {
    pub service: String,
    pub spec: ToolSpec,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ToolList {
    pub tools: Vec<RegisteredTool>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ServiceName {
    pub name: String,
}

/// A child's state in the supervisor's state machine.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    Starting,
    Ready,
    /// Waiting before the next restart; see `backoff_remaining_ms`.
    Backoff,
    Stopping,
    /// Not running, not scheduled (stopped by hand, temporary, or done).
    Exited,
    /// Will not be restarted (configuration error, or given up).
    Fatal,
    /// Not started until one of its `requires` is present (a bot token,
    /// say); `last_exit` says what is missing.
    Waiting,
}

impl ChildState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChildState::Starting => "STARTING",
            ChildState::Ready => "READY",
            ChildState::Backoff => "BACKOFF",
            ChildState::Stopping => "STOPPING",
            ChildState::Exited => "EXITED",
            ChildState::Fatal => "FATAL",
            ChildState::Waiting => "WAITING",
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: String,
    pub state: ChildState,
    pub pid: Option<u32>,
    pub uptime_ms: Option<u64>,
    pub restarts_window: u32,
    pub restarts_total: u32,
    pub last_exit: Option<String>,
    pub heartbeat_age_ms: Option<u64>,
    pub rss_kb: Option<u64>,
    pub backoff_remaining_ms: Option<u64>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub supervisor_pid: u32,
    pub uptime_ms: u64,
    pub config_path: String,
    pub config_generation: u64,
    /// The error of the last rejected config reload, if the running config
    /// is older than the file on disk.
    pub config_error: Option<String>,
    pub services: Vec<ServiceStatus>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LogsRequest {
    pub name: String,
    pub lines: u32,
    pub follow: bool,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LogLines {
    pub lines: Vec<String>,
}

/// The audit log (kernel methods `audit.*`).
pub mod audit {
    use rkyv::{Archive, Deserialize, Serialize};

    pub mod methods {
        /// [`super::AuditQuery`] -> [`super::AuditRows`]
        pub const LIST: &str = "audit.list";
        /// empty -> [`super::AuditVerify`]
        pub const VERIFY: &str = "audit.verify";
    }

    use crate::contract::Call;

    pub const LIST: Call<AuditQuery, AuditRows> = Call::new(super::SERVICE, methods::LIST);
    pub const VERIFY: Call<(), AuditVerify> = Call::new(super::SERVICE, methods::VERIFY);

    /// One external action, as a service reports it: a one-way frame
    /// ([`crate::Kind::Audit`]) that the broker appends to the log with the
    /// service name its connection proved. It needs no answer, so it costs
    /// no round trip.
    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub struct AuditRecord {
        pub intent: String,
        /// `tool:<name>`, `provider:<alias>`.
        pub action: String,
        /// Arguments, secrets redacted.
        pub arguments: String,
        /// `ok`, or the error class and message.
        pub outcome: String,
        pub duration_ms: u64,
    }

    impl crate::frame::Message for AuditRecord {
        const KIND: crate::frame::Kind = crate::frame::Kind::Audit;
    }

    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub struct AuditRow {
        pub id: i64,
        pub ts_ms: i64,
        pub intent: String,
        /// The service that did it.
        pub service: String,
        /// Who asked for it (a service name, or empty for a user's client).
        pub caller: String,
        pub action: String,
        pub arguments: String,
        pub outcome: String,
        pub duration_ms: u64,
        /// Hex SHA-256 of the row, chained to the one before.
        pub hash: String,
    }

    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub struct AuditQuery {
        /// Only this intent; empty for all.
        pub intent: String,
        /// Newest rows first, at most this many.
        pub limit: u32,
    }

    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub struct AuditRows {
        pub rows: Vec<AuditRow>,
    }

    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub struct AuditVerify {
        pub rows: u64,
        /// Empty when the chain is intact; else what is wrong and where.
        pub problems: Vec<String>,
    }
}
