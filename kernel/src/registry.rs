//! The service registry: which services are connected to the bus, whether
//! they are ready, when they last answered a heartbeat, and their tools.

use std::collections::BTreeMap;
use std::time::Instant;

use oi_ipc_schema::ToolSpec;
use oi_ipc_schema::control::{RegisteredService, RegisteredTool, RegistrySnapshot, ToolList};

#[derive(Debug, Clone)]
pub struct ServiceEntry {
    pub name: String,
    pub pid: u32,
    pub conn_id: u64,
    pub ready: bool,
    pub connected_at: Instant,
    pub last_heartbeat: Option<Instant>,
    pub tools: Vec<ToolSpec>,
}

impl ServiceEntry {
    /// Time since the last sign of life (heartbeat echo, or the connection
    /// itself when no echo arrived yet).
    pub fn heartbeat_age(&self, now: Instant) -> std::time::Duration {
        now.saturating_duration_since(self.last_heartbeat.unwrap_or(self.connected_at))
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    services: BTreeMap<String, ServiceEntry>,
}

impl Registry {
    pub fn insert(&mut self, entry: ServiceEntry) {
        self.services.insert(entry.name.clone(), entry);
    }

    /// Removes the entry only if it still belongs to `conn_id` (a replacement
    /// process may already have connected under the same name).
    pub fn remove_conn(&mut self, name: &str, conn_id: u64) -> Option<ServiceEntry> {
        if self
            .services
            .get(name)
            .is_some_and(|e| e.conn_id == conn_id)
        {
            self.services.remove(name)
        } else {
            None
        }
    }

    pub fn get(&self, name: &str) -> Option<&ServiceEntry> {
        self.services.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut ServiceEntry> {
        self.services.get_mut(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ServiceEntry> {
        self.services.values()
    }

    pub fn snapshot(&self, now: Instant) -> RegistrySnapshot {
        RegistrySnapshot {
            services: self
                .services
                .values()
                .map(|e| RegisteredService {
                    name: e.name.clone(),
                    pid: e.pid,
                    ready: e.ready,
                    connected_ms: millis(now.saturating_duration_since(e.connected_at)),
                    heartbeat_age_ms: e
                        .last_heartbeat
                        .map(|t| millis(now.saturating_duration_since(t))),
                    tools: e.tools.clone(),
                })
                .collect(),
        }
    }

    /// Tools of every ready service, sorted by service then tool name.
    pub fn tools(&self) -> ToolList {
        let mut tools: Vec<RegisteredTool> = self
            .services
            .values()
            .filter(|e| e.ready)
            .flat_map(|e| {
                e.tools.iter().map(|t| RegisteredTool {
                    service: e.name.clone(),
                    spec: t.clone(),
                })
            })
            .collect();
        tools.sort_by(|a, b| (&a.service, &a.spec.name).cmp(&(&b.service, &b.spec.name)));
        ToolList { tools }
    }
}

pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, conn_id: u64, ready: bool, tools: &[&str]) -> ServiceEntry {
        ServiceEntry {
            name: name.into(),
            pid: 1,
            conn_id,
            ready,
            connected_at: Instant::now(),
            last_heartbeat: None,
            tools: tools
                .iter()
                .map(|t| ToolSpec {
                    name: (*t).into(),
                    description: String::new(),
                    args_schema_json: "{}".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn tools_lists_only_ready_services_sorted() {
        let mut r = Registry::default();
        r.insert(entry("shell", 1, true, &["shell_execute"]));
        r.insert(entry("fs", 2, true, &["fs_write_file", "fs_read_file"]));
        r.insert(entry("web", 3, false, &["web_fetch"]));
        let names: Vec<_> = r.tools().tools.into_iter().map(|t| t.spec.name).collect();
        assert_eq!(names, ["fs_read_file", "fs_write_file", "shell_execute"]);
    }

    #[test]
    fn remove_ignores_a_replaced_connection() {
        let mut r = Registry::default();
        r.insert(entry("vault", 1, true, &[]));
        r.insert(entry("vault", 2, false, &[]));
        assert!(r.remove_conn("vault", 1).is_none());
        assert_eq!(r.get("vault").map(|e| e.conn_id), Some(2));
        assert!(r.remove_conn("vault", 2).is_some());
    }
}
