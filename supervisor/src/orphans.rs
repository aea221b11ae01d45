//! What services leave behind.
//!
//! openintentd is a child subreaper: a process whose parents died (a
//! command that double-forked, or everything a killed service was running)
//! is reparented to openintentd rather than to init. Its only legitimate
//! children are the service processes it spawned, so any other child is
//! something a service left behind. [`sweep`] kills each of those by pid,
//! with everything below it, and reaps the ones that have died. It never
//! signals a process group: a hostile process may have joined any group.

use std::collections::{HashMap, HashSet};

use tracing::{debug, warn};

/// Makes this process a child subreaper (Linux). Elsewhere there is none,
/// and orphans go to launchd.
pub fn become_subreaper() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes a plain integer flag.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One process in the table.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub zombie: bool,
    pub comm: String,
}

/// Every process in /proc.
pub fn process_table() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let mut rest = stat[close + 1..].split_ascii_whitespace();
            let state = rest.next()?;
            let ppid = rest.next()?.parse().ok()?;
            Some(Proc {
                pid,
                ppid,
                zombie: state == "Z" || state == "X",
                comm: stat.get(open + 1..close).unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The processes to kill and the children to reap, given the table, our
/// pid and the pids of the services we spawned (pure, for tests).
pub fn plan(table: &[Proc], me: u32, services: &HashSet<u32>) -> (Vec<Proc>, Vec<u32>) {
    let mut children: HashMap<u32, Vec<&Proc>> = HashMap::new();
    for p in table {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut kill = Vec::new();
    let mut reap = Vec::new();
    let mut stack: Vec<&Proc> = Vec::new();
    for p in children.get(&me).into_iter().flatten() {
        if services.contains(&p.pid) {
            continue;
        }
        if p.zombie {
            reap.push(p.pid);
        }
        stack.push(p);
    }
    let mut seen = HashSet::new();
    while let Some(p) = stack.pop() {
        if !seen.insert(p.pid) {
            continue;
        }
        if !p.zombie {
            kill.push(p.clone());
        }
        stack.extend(children.get(&p.pid).into_iter().flatten().copied());
    }
    (kill, reap)
}

/// What one sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    pub killed: usize,
    pub reaped: usize,
}

/// Kills what services left behind and reaps the dead ones, in one pass.
/// `services` are the pids of the service processes still tracked (alive,
/// or exited and not yet reaped by their child actor: those are never
/// touched). A killed process's children are reparented to us as it dies,
/// so a sweep that killed something should be followed by another soon.
pub fn sweep(services: &HashSet<u32>) -> Swept {
    let (kill, reap) = plan(&process_table(), std::process::id(), services);
    let mut swept = Swept::default();
    for pid in reap {
        if reap_one(pid) {
            swept.reaped += 1;
        }
    }
    for p in &kill {
        let Ok(raw) = i32::try_from(p.pid) else {
            continue;
        };
        // SIGKILL by pid; ESRCH means it is already gone.
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), nix::sys::signal::SIGKILL)
            .is_ok()
        {
            warn!(
                service = "openintentd",
                pid = p.pid,
                ppid = p.ppid,
                command = %p.comm,
                "killed a process a service left behind"
            );
            swept.killed += 1;
        }
    }
    if swept.reaped > 0 {
        debug!(
            service = "openintentd",
            reaped = swept.reaped,
            "reaped orphans"
        );
    }
    swept
}

/// Reaps one dead child of ours; false if it is not ours or not dead yet.
fn reap_one(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    matches!(
        nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(raw),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG)
        ),
        Ok(s) if s != nix::sys::wait::WaitStatus::StillAlive
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, ppid: u32, zombie: bool) -> Proc {
        Proc {
            pid,
            ppid,
            zombie,
            comm: format!("p{pid}"),
        }
    }

    #[test]
    fn only_what_no_service_owns_is_killed() {
        // me = 10; services 11 and 12 (12 has exited, not yet reaped);
        // 13 is a command 11 runs; 20 is an orphan with a child 21 and a
        // dead child 22; 30 is a dead orphan; 99 belongs to someone else.
        let table = [
            p(10, 1, false),
            p(11, 10, false),
            p(12, 10, true),
            p(13, 11, false),
            p(20, 10, false),
            p(21, 20, false),
            p(22, 20, true),
            p(30, 10, true),
            p(99, 1, false),
        ];
        let services: HashSet<u32> = [11, 12].into();
        let (kill, reap) = plan(&table, 10, &services);
        let mut killed: Vec<u32> = kill.iter().map(|p| p.pid).collect();
        killed.sort();
        assert_eq!(killed, [20, 21]);
        assert_eq!(reap, [30]);
    }
}
