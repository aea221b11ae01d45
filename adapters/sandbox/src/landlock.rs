//! Landlock for commands the shell adapter runs.
//!
//! The ruleset is built in the adapter (opening the allowed paths), and
//! the child applies it to itself between `fork` and `exec`; the program it
//! then runs, and everything that program starts:
//! - may write only beneath the roots and read only the roots and the
//!   read-only paths (the system's programs and libraries);
//! - may neither bind nor connect a TCP socket, but to the ports allowed
//!   (ABI 4, Linux 6.7);
//! - may neither connect to an abstract unix socket nor signal a process
//!   outside the sandbox (ABI 6, Linux 6.12).
//!
//! The adapter itself stays unrestricted. What the kernel enforced is
//! reported by [`Coverage`].

use std::path::PathBuf;

/// The Landlock ABI the running kernel offers, or why there is none.
pub fn kernel_abi() -> Result<i32, String> {
    #[cfg(target_os = "linux")]
    {
        const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
        // SAFETY: the documented way to ask for the ABI version: no
        // attributes, size 0, the VERSION flag; it returns a number.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if v > 0 {
            Ok(v as i32)
        } else {
            let e = std::io::Error::last_os_error();
            Err(match e.raw_os_error() {
                Some(libc::ENOSYS) => {
                    "the kernel has no Landlock (Linux 5.13 or later needed)".into()
                }
                Some(libc::EOPNOTSUPP) => {
                    "Landlock is built in but disabled (add it to the lsm= boot parameter)".into()
                }
                _ => format!("Landlock is not available: {e}"),
            })
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("Landlock exists only on Linux".into())
    }
}

/// The system's program and library trees: world-readable by design, and
/// too large to walk at every start, so taken as they are.
pub const PROGRAM_TREES: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"];

/// Entries walked in one read-only directory before giving up on it.
const WALK_BUDGET: usize = 50_000;

/// The read-only paths as a process without root's privileges would see
/// them, for a sandbox that runs as root: every directory outside
/// [`PROGRAM_TREES`] is walked, and a subtree that holds anything other
/// users may not read (`/etc/shadow`, `/etc/ssl/private`) is replaced by
/// its readable parts. Root can read every file, so the rules must leave
/// such files out. Returns the paths and what could not be checked.
pub fn readable_by_others(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    use std::os::unix::fs::MetadataExt;
    /// `Some(parts)`: the readable parts of `p` (`[p]` when all of it is).
    fn walk(p: &std::path::Path, budget: &mut usize) -> Option<Vec<PathBuf>> {
        let m = std::fs::symlink_metadata(p).ok()?;
        if m.file_type().is_symlink() {
            // Landlock checks the target where it lies.
            return Some(Vec::new());
        }
        let readable = m.mode() & 0o004 != 0 && (!m.is_dir() || m.mode() & 0o001 != 0);
        if !readable {
            return Some(Vec::new());
        }
        if !m.is_dir() {
            return Some(vec![p.to_path_buf()]);
        }
        let mut parts = Vec::new();
        let mut whole = true;
        for e in std::fs::read_dir(p).ok()?.flatten() {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let child = e.path();
            let sub = walk(&child, budget)?;
            let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
            if !is_link && sub != [child.clone()] {
                whole = false;
            }
            parts.extend(sub);
        }
        Some(if whole { vec![p.to_path_buf()] } else { parts })
    }
    let mut out = Vec::new();
    let mut unchecked = Vec::new();
    for p in paths {
        if PROGRAM_TREES.iter().any(|t| p.starts_with(t)) {
            out.push(p.clone());
            continue;
        }
        let mut budget = WALK_BUDGET;
        match walk(p, &mut budget) {
            Some(parts) => out.extend(parts),
            None if budget == 0 => {
                unchecked.push(format!(
                    "{} has more than {WALK_BUDGET} entries to check for root-only files; left out",
                    p.display()
                ));
            }
            // Missing: Landlock skips it anyway.
            None => {}
        }
    }
    (out, unchecked)
}

/// What a sandboxed command may touch.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub read_write: Vec<PathBuf>,
    pub read_only: Vec<PathBuf>,
    /// TCP ports it may connect to (any address).
    pub connect_tcp: Vec<u16>,
    /// TCP ports it may bind.
    pub bind_tcp: Vec<u16>,
}

/// What Landlock enforces on a kernel of a given ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    pub abi: i32,
}

impl Coverage {
    /// Files are confined from ABI 1.
    pub fn files(&self) -> bool {
        self.abi >= 1
    }
    /// TCP bind and connect from ABI 4.
    pub fn tcp(&self) -> bool {
        self.abi >= 4
    }
    /// Abstract unix sockets and signals from ABI 6.
    pub fn scopes(&self) -> bool {
        self.abi >= 6
    }
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec!["files"];
        if self.tcp() {
            parts.push("tcp");
        }
        if self.scopes() {
            parts.push("abstract sockets and signals");
        }
        write!(f, "landlock (ABI {}: {})", self.abi, parts.join(", "))?;
        if !self.scopes() {
            write!(f, "; this kernel cannot confine ")?;
            let missing: Vec<&str> = [
                (!self.tcp()).then_some("tcp"),
                Some("abstract sockets and signals"),
            ]
            .into_iter()
            .flatten()
            .collect();
            write!(f, "{}", missing.join(" or "))?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::Rules;
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
        RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
    };

    /// A ruleset ready to be applied in a child.
    pub struct Prepared(Option<RulesetCreated>);

    impl Rules {
        /// Builds the ruleset (in the parent: this opens the paths).
        pub fn prepare(&self) -> Result<Prepared, String> {
            let abi = ABI::V6;
            let ports = self
                .connect_tcp
                .iter()
                .map(|p| (*p, AccessNet::ConnectTcp))
                .chain(self.bind_tcp.iter().map(|p| (*p, AccessNet::BindTcp)));
            let created = Ruleset::default()
                .set_compatibility(CompatLevel::BestEffort)
                .handle_access(AccessFs::from_all(abi))
                .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
                .and_then(|r| r.scope(Scope::from_all(abi)))
                .and_then(|r| r.create())
                .and_then(|r| {
                    r.add_rules(ports.map(|(port, access)| {
                        Ok::<_, landlock::RulesetError>(NetPort::new(port, access))
                    }))
                })
                .and_then(|r| {
                    r.add_rules(path_beneath_rules(
                        &self.read_only,
                        AccessFs::from_read(abi),
                    ))
                })
                .and_then(|r| {
                    r.add_rules(path_beneath_rules(
                        &self.read_write,
                        AccessFs::from_all(abi),
                    ))
                })
                .map_err(|e| format!("cannot build the Landlock ruleset: {e}"))?;
            Ok(Prepared(Some(created)))
        }
    }

    impl Prepared {
        /// Applies the ruleset to the calling process. Meant for the child
        /// between fork and exec: it only makes system calls.
        pub fn apply(&mut self) -> std::io::Result<()> {
            // No allocation here: after fork only the calling thread
            // exists, and another may have held the allocator's lock.
            let Some(r) = self.0.take() else {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            };
            match r.restrict_self() {
                Ok(s) if s.ruleset != RulesetStatus::NotEnforced => Ok(()),
                Ok(_) => Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
                Err(_) => Err(std::io::Error::from_raw_os_error(libc::EPERM)),
            }
        }
    }
}

#[cfg(target_os = "linux")]
pub use imp::Prepared;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn root_only_files_are_left_out_of_a_read_only_tree() {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        std::fs::create_dir_all(etc.join("ssl/private")).unwrap();
        std::fs::create_dir_all(etc.join("ssl/certs")).unwrap();
        std::fs::create_dir_all(etc.join("apt")).unwrap();
        for (f, mode) in [
            ("passwd", 0o644),
            ("shadow", 0o640),
            ("ssl/certs/ca.pem", 0o644),
            ("ssl/private/key.pem", 0o600),
            ("apt/sources.list", 0o644),
        ] {
            std::fs::write(etc.join(f), "x").unwrap();
            std::fs::set_permissions(etc.join(f), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(
            etc.join("ssl/private"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/shadow", etc.join("link-to-shadow")).unwrap();
        let (mut got, unchecked) = readable_by_others(&[etc.clone(), "/usr".into()]);
        got.sort();
        let mut want = vec![
            etc.join("apt"),
            etc.join("passwd"),
            etc.join("ssl/certs"),
            "/usr".into(),
        ];
        want.sort();
        assert_eq!(got, want);
        assert!(unchecked.is_empty());
        // A tree with nothing to hide stays one rule.
        let (got, _) = readable_by_others(&[etc.join("apt")]);
        assert_eq!(got, [etc.join("apt")]);
    }
}
