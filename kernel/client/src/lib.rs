//! The one client library of OpenIntentOS.
//!
//! Every interface (oictl, the chat gateways, the scheduler, the web
//! console, the TUI and the desktop app) reaches the system through this
//! crate: reaching the daemon, starting it if need be ([`connect`]), typed
//! calls on the bus ([`BusClient::call`] and
//! [`BusClient::stream`] with the constants of `oi_ipc_schema`), an
//! intent's events as they happen ([`intent`]), how they read for a
//! person ([`display`]), and the chat commands and settings ([`chat`]).
//! No interface depends on the agent's crate.

pub mod chat;
pub mod connect;
pub mod display;
pub mod gateway;
pub mod intent;

pub use oi_kernel::client::{BusClient, BusError, CallOptions, EventStream};
