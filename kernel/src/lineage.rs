//! Where a bus peer comes from: its chain of parent processes.
//!
//! A same-uid process that says `Hello` without a service name gets the
//! user's rights on the bus. Anything a service starts (a shell command, a
//! browser, an MCP server) runs with the same uid, so the uid alone cannot
//! tell the user's `oictl` from a command the model ran. Its ancestry can:
//! every process a service starts descends from that service, and once its
//! parents die it is reparented to openintentd, which is a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), however often it forked. So a peer whose
//! parent chain reaches a service pid, or reaches openintentd without
//! passing a service pid, is refused user rights.

use std::collections::HashSet;

/// What a peer's ancestry says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lineage {
    /// Started outside openintentd (a shell, systemd, cron): may be the user.
    Outside,
    /// openintentd itself (its own control-plane clients).
    Broker,
    /// A service process the supervisor started.
    ServiceItself(u32),
    /// Descends from the service process `service_pid`.
    FromService { ancestor: u32 },
    /// Reparented to openintentd (the subreaper) after its parents died:
    /// something a service started that outlived its parent.
    Orphan,
    /// Its ancestry could not be read (it exited, or /proc is missing).
    Unknown(String),
}

impl Lineage {
    /// Whether this peer may act as the user.
    pub fn may_be_user(&self) -> bool {
        matches!(self, Lineage::Outside | Lineage::Broker)
    }

    /// Why a peer gets no user rights, for the refusal.
    pub fn refusal(&self, peer: u32) -> Option<String> {
        match self {
            Lineage::Outside | Lineage::Broker => None,
            Lineage::ServiceItself(_) => Some(format!(
                "pid {peer} is a service process; a service connects under its own name"
            )),
            Lineage::FromService { ancestor } => Some(format!(
                "pid {peer} was started by service pid {ancestor}; a process a service runs may not use the bus"
            )),
            Lineage::Orphan => Some(format!(
                "pid {peer} was left behind by a service (reparented to openintentd); a process a service runs may not use the bus"
            )),
            Lineage::Unknown(why) => Some(format!(
                "the ancestry of pid {peer} cannot be read ({why}); refused"
            )),
        }
    }
}

/// The parent of `pid`, from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
pub fn parent_of(pid: u32) -> Result<u32, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    parse_ppid(&stat).ok_or_else(|| format!("/proc/{pid}/stat has no parent field"))
}

/// The parent pid in a `/proc/<pid>/stat` line. The command name (field 2)
/// is in parentheses and may itself contain spaces and parentheses, so
/// the fields are counted after the last `)`.
pub fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Whether this process is a child subreaper.
pub fn is_subreaper() -> bool {
    #[cfg(target_os = "linux")]
    {
        let mut v: libc::c_int = 0;
        // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer.
        let r = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int) };
        r == 0 && v != 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Classifies `peer` given the broker's own pid, the pids of the running
/// services, and whether the broker's process is a subreaper (without
/// one, an orphan would go to init and look like the user's; openintentd
/// always is one).
pub fn classify(
    peer: u32,
    broker: u32,
    services: &HashSet<u32>,
    subreaper: bool,
    parent: impl Fn(u32) -> Result<u32, String>,
) -> Lineage {
    if peer == broker {
        return Lineage::Broker;
    }
    if services.contains(&peer) {
        return Lineage::ServiceItself(peer);
    }
    let mut cur = peer;
    // Bounded: pid chains are short, and a loop (impossible in the
    // kernel) must not hang the broker.
    for _ in 0..4096 {
        let p = match parent(cur) {
            Ok(p) => p,
            Err(why) => return Lineage::Unknown(why),
        };
        // The broker first: in tests, services run inside its process.
        if p == broker {
            return if subreaper {
                Lineage::Orphan
            } else {
                Lineage::Outside
            };
        }
        if services.contains(&p) {
            return Lineage::FromService { ancestor: p };
        }
        if p <= 1 {
            return Lineage::Outside;
        }
        cur = p;
    }
    Lineage::Unknown("the parent chain does not end".into())
}

/// [`classify`] against the live process table.
pub fn of_peer(peer: u32, broker: u32, services: &HashSet<u32>) -> Lineage {
    #[cfg(target_os = "linux")]
    {
        classify(peer, broker, services, is_subreaper(), parent_of)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // No /proc: only the direct claims can be checked.
        let _ = (broker, services);
        if services.contains(&peer) {
            Lineage::ServiceItself(peer)
        } else {
            Lineage::Outside
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tree(edges: &[(u32, u32)]) -> impl Fn(u32) -> Result<u32, String> {
        let m: HashMap<u32, u32> = edges.iter().copied().collect();
        move |p| m.get(&p).copied().ok_or_else(|| format!("no process {p}"))
    }

    #[test]
    fn ppid_is_read_after_the_last_parenthesis() {
        assert_eq!(parse_ppid("42 (sh) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("42 (a) b) (c) R 9 1 1"), Some(9));
        assert_eq!(parse_ppid("42 (x)"), None);
    }

    #[test]
    fn ancestry_decides_who_may_be_the_user() {
        // 1 -> 50 (login shell) -> 60 (oictl)
        // 1 -> 100 (openintentd) -> 200 (shell service) -> 300 (sh) -> 400
        // 100 -> 500 (an escapee reparented to openintentd) -> 600
        let parents = tree(&[
            (50, 1),
            (60, 50),
            (100, 1),
            (200, 100),
            (300, 200),
            (400, 300),
            (500, 100),
            (600, 500),
        ]);
        let services: HashSet<u32> = [200].into();
        let c = |peer| classify(peer, 100, &services, true, &parents);
        assert_eq!(c(60), Lineage::Outside);
        assert_eq!(c(100), Lineage::Broker);
        assert_eq!(c(200), Lineage::ServiceItself(200));
        assert_eq!(c(300), Lineage::FromService { ancestor: 200 });
        assert_eq!(c(400), Lineage::FromService { ancestor: 200 });
        assert_eq!(c(500), Lineage::Orphan);
        assert_eq!(c(600), Lineage::Orphan);
        assert!(matches!(c(999), Lineage::Unknown(_)));
        assert!(c(60).may_be_user() && c(100).may_be_user());
        for p in [200, 300, 400, 500, 600, 999] {
            assert!(!c(p).may_be_user(), "{p}");
            assert!(c(p).refusal(p).is_some());
        }
        // A broker that is no subreaper (a test harness) has children of
        // its own that are not orphans.
        assert_eq!(
            classify(500, 100, &services, false, &parents),
            Lineage::Outside
        );
    }

    #[test]
    fn the_live_process_table_is_read() {
        let me = std::process::id();
        let parent = parent_of(me).unwrap();
        assert_eq!(
            parent,
            std::os::unix::process::parent_id(),
            "/proc/self/stat's parent"
        );
        let services: HashSet<u32> = [parent].into();
        assert_eq!(
            of_peer(me, 0, &services),
            Lineage::FromService { ancestor: parent }
        );
    }
}
