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
