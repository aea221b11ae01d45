//! openintentd and oictl.
//!
//! - [`daemon`]: the `openintentd` entry point (supervisor or one service).
//! - [`supervisor`]: the supervision tree's logic ([`tree`] holds its data),
//!   driven by a ractor actor ([`actor`]) with one child actor per service
//!   process ([`child_actor`]).
//! - [`restart`]: restart types, strategies, backoff, intensity.
//! - [`process`]: spawning and signalling child processes.
//! - [`control`]: the control plane `oictl` talks to.
//! - [`notify`]: systemd notifications.
//! - [`install`]: systemd and launchd units.
//! - [`cli`]: the `oictl` command line; [`cli_models`] its LLM commands,
//!   [`cli_tools`] the tool commands, [`cli_agent`] intents and the audit log,
//!   [`cli_telegram`] the Telegram gateway's chats.
//! - [`requirements`]: services that wait for a token before they start.

pub mod actor;
pub mod child_actor;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod environment;
pub mod install;
pub mod logs;
pub mod notify;
pub mod orphans;
pub mod process;
pub mod requirements;
pub mod restart;
pub mod services;
pub mod supervisor;
pub mod transition;
pub mod tree;

#[cfg(feature = "chaos")]
pub mod chaos;
