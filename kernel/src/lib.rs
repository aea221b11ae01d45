//! The OpenIntentOS micro-kernel (layer 3).
//!
//! - [`audit`]: the hash-chained audit log of external actions.
//! - [`intent`]: the intent router's fast path (phrases to direct actions).
//! - [`framing`]: reading and writing frames on sockets, with the size cap
//!   checked before any allocation.
//! - [`broker`]: the bus broker on `bus.sock`, routing frames between
//!   services and clients by header and destination.
//! - [`registry`]: which services are connected, their state and tools.
//! - [`client`]: the bus client every process uses (`request`, `stream`).
//! - [`harness`]: what every service process runs on.
//! - [`sink`]: the one frame writer (direct write when idle, queued when
//!   the socket is full).
//! - [`paths`]: config, data and runtime directories.
//! - [`secrets`]: reading a vault secret as the calling service.
//! - [`tool`]: tools on the bus: specs, argument parsing, calling one by name.

pub mod accounts;
pub mod audit;
pub mod broker;
pub mod client;
pub mod clock;
pub mod config;
pub mod framing;
pub mod glob;
pub mod harness;
pub mod kind;
pub mod limits;
pub mod lineage;
pub mod paths;
pub mod registry;
pub mod secrets;
pub mod sink;
pub mod telemetry;
pub mod tool;

/// Identifies the build in `Hello` and `Welcome`.
pub const BUILD_ID: &str = concat!(env!("CARGO_PKG_NAME"), "-", env!("CARGO_PKG_VERSION"));

/// Environment variable through which the supervisor tells a service where
/// the bus socket is.
pub const ENV_BUS_SOCKET: &str = "OPENINTENT_BUS_SOCKET";
