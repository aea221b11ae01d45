//! A kind of service compiled into `openintentd`, as its crate describes
//! it: the entry point, the config sections the crate owns, and the
//! variables of `openintentd`'s environment it is handed. The service
//! table is a list of these, one line per crate.

use crate::config::{Config, SectionRule};

#[derive(Clone, Copy)]
pub struct ServiceKind {
    /// `openintentd service <name>`; also the default service name.
    pub name: &'static str,
    /// Runs the service under a name and returns the exit status.
    pub run: fn(&'static str) -> i32,
    /// The sections its crate owns, checked at start and on every reload.
    pub sections: &'static [SectionRule],
    /// Variables of `openintentd`'s environment it gets besides the common
    /// ones and its `requires` (an API key's variable, say).
    pub env: fn(&Config) -> Vec<String>,
}

impl std::fmt::Debug for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKind")
            .field("name", &self.name)
            .field("sections", &self.sections)
            .finish()
    }
}

/// For kinds that are handed no variables of their own.
pub fn no_env(_config: &Config) -> Vec<String> {
    Vec::new()
}
