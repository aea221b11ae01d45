//! The broker's global limits: how many connections it holds (in all, and
//! per process), how many requests one connection may have in flight, and
//! giving memory back after a burst.
//!
//! Every same-uid process may connect, so none of these may depend on the
//! peer behaving: a flood of idle connections, slow readers or waiting
//! requests must find a wall, get a clear refusal, and leave the broker
//! serving everyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Connections kept for services beyond the clients' share: a flood of
/// clients can never keep a restarting service off the bus.
pub const SERVICE_RESERVE: usize = 64;

/// The limits, from `[bus]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections in all, services included.
    pub max_connections: usize,
    /// Connections from one process.
    pub max_connections_per_process: usize,
    /// Requests one connection may have forwarded or waiting at once.
    pub max_requests_per_connection: usize,
    /// Bytes queued for slow readers across every connection.
    pub max_queued_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_connections_per_process: 32,
            max_requests_per_connection: 256,
            max_queued_bytes: 128 * 1024 * 1024,
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_pid: HashMap<u32, usize>,
    /// The most connections held since memory was last given back.
    peak: usize,
}

/// Counts open connections; [`Admission::admit`] hands out a guard that
/// gives the slot back when the connection ends.
#[derive(Clone, Default)]
pub struct Admission(Arc<Mutex<Counts>>);

/// One admitted connection.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    pid: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_pid.get_mut(&self.pid) {
            *n -= 1;
            if *n == 0 {
                c.by_pid.remove(&self.pid);
            }
        }
    }
}

impl Admission {
    /// Admits a connection from `pid`, or says why not. `service` is
    /// whether the pid is one the supervisor started (it may use the
    /// reserve, and is not held to the per-process limit).
    pub fn admit(&self, pid: u32, service: bool, l: &Limits) -> Result<Slot, String> {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let cap = if service {
            l.max_connections
        } else {
            l.max_connections.saturating_sub(SERVICE_RESERVE)
        };
        if c.total >= cap {
            return Err(format!(
                "the bus holds {} connections, its limit ([bus] max_connections = {}, {} of them kept for services); try again later",
                c.total, l.max_connections, SERVICE_RESERVE
            ));
        }
        let mine = c.by_pid.get(&pid).copied().unwrap_or(0);
        if !service && mine >= l.max_connections_per_process {
            return Err(format!(
                "pid {pid} already holds {mine} bus connections ([bus] max_connections_per_process = {})",
                l.max_connections_per_process
            ));
        }
        c.total += 1;
        c.peak = c.peak.max(c.total);
        *c.by_pid.entry(pid).or_default() += 1;
        Ok(Slot {
            counts: self.0.clone(),
            pid,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Gives freed memory back to the system once a burst of connections
    /// is over (at least `burst` more were open than are now). glibc keeps
    /// freed heap pages otherwise, so a burst would set the broker's size
    /// for good.
    pub fn trim_after_burst(&self, burst: usize) -> bool {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if c.peak < c.total + burst {
            return false;
        }
        c.peak = c.total;
        drop(c);
        give_back_memory();
        true
    }
}

/// Returns free heap memory to the system (glibc's `malloc_trim`).
pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Requests in flight per connection (forwarded and waiting).
#[derive(Debug, Default)]
pub struct InFlight(HashMap<u64, usize>);

impl InFlight {
    pub fn count(&self, conn: u64) -> usize {
        self.0.get(&conn).copied().unwrap_or(0)
    }

    pub fn add(&mut self, conn: u64) {
        *self.0.entry(conn).or_default() += 1;
    }

    pub fn done(&mut self, conn: u64) {
        if let Some(n) = self.0.get_mut(&conn) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&conn);
            }
        }
    }

    pub fn forget(&mut self, conn: u64) {
        self.0.remove(&conn);
    }

    /// Requests in flight on all connections.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_in_all_and_per_process_with_a_reserve() {
        let l = Limits {
            max_connections: 70,
            max_connections_per_process: 3,
            ..Limits::default()
        };
        let a = Admission::default();
        let mine: Vec<Slot> = (0..3).map(|_| a.admit(7, false, &l).unwrap()).collect();
        let e = a.admit(7, false, &l).err().unwrap();
        assert!(e.contains("pid 7 already holds 3"), "{e}");
        // Clients fill what is left of the clients' share (70 - 64 = 6).
        let others: Vec<Slot> = (0..3)
            .map(|i| a.admit(100 + i, false, &l).unwrap())
            .collect();
        let e = a.admit(200, false, &l).err().unwrap();
        assert!(e.contains("holds 6 connections"), "{e}");
        // A service still gets in.
        let svc = a.admit(300, true, &l).unwrap();
        assert_eq!(a.open(), 7);
        drop((mine, others, svc));
        assert_eq!(a.open(), 0);
        assert!(a.admit(7, false, &l).is_ok());
        assert!(a.trim_after_burst(5));
        assert!(!a.trim_after_burst(5), "once per burst");
    }

    #[test]
    fn in_flight_counts_per_connection() {
        let mut f = InFlight::default();
        f.add(1);
        f.add(1);
        f.add(2);
        assert_eq!((f.count(1), f.count(2), f.count(3)), (2, 1, 0));
        f.done(1);
        f.forget(2);
        assert_eq!((f.count(1), f.count(2)), (1, 0));
    }
}
