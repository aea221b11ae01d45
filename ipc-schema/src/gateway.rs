//! What every chat gateway answers besides its own methods.

use rkyv::{Archive, Deserialize, Serialize};

/// A gateway's connection to its chat service.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LinkHealth {
    /// False once several attempts in a row have failed.
    pub healthy: bool,
    /// "polling, last success 3 s ago", or what keeps failing.
    pub summary: String,
}
