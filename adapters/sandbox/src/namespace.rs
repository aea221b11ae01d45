//! A mount namespace in which some directories are empty.
//!
//! Landlock confines files, TCP and abstract sockets, but not `connect` on
//! a unix socket with a path: a command could still reach `bus.sock`. In
//! its own mount namespace the runtime directory is covered by an empty,
//! read-only tmpfs, so the socket does not exist for it at all. As root
//! this needs only `CLONE_NEWNS`; otherwise a user namespace that maps the
//! caller's own uid and gid comes with it. Everything is prepared in the
//! parent, and the child only makes system calls between fork and exec.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// How the namespace is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `CLONE_NEWNS` alone (root, or CAP_SYS_ADMIN).
    MountNs,
    /// `CLONE_NEWUSER | CLONE_NEWNS`, mapping our uid and gid to themselves.
    UserNs,
}

/// Directories to cover, ready for a child.
pub struct Prepared {
    hide: Vec<CString>,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    via: Via,
}

/// Whether this process can make the namespace, and how; tried once in a
/// throwaway child so the answer is the kernel's, not a guess.
pub fn probe() -> Result<Via, String> {
    #[cfg(target_os = "linux")]
    {
        let mut last = String::new();
        for via in [Via::MountNs, Via::UserNs] {
            let mut p = Prepared::new(&[], via).map_err(|e| e.to_string())?;
            let mut cmd = std::process::Command::new("/bin/true");
            cmd.stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            // SAFETY: `apply` makes system calls only.
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(move || p.apply());
            }
            match cmd.status() {
                Ok(s) if s.success() => return Ok(via),
                Ok(s) => last = format!("{via:?}: the probe exited with {s}"),
                Err(e) => last = format!("{via:?}: {e}"),
            }
        }
        Err(format!("no mount namespace can be made ({last})"))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("mount namespaces exist only on Linux".into())
    }
}

impl Prepared {
    /// Prepares to cover `hide` (directories that exist).
    pub fn new(hide: &[PathBuf], via: Via) -> Result<Prepared, std::ffi::NulError> {
        let hide = hide
            .iter()
            .map(|p| CString::new(p.as_os_str().as_bytes()))
            .collect::<Result<_, _>>()?;
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        Ok(Prepared {
            hide,
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            via,
        })
    }

    pub fn via(&self) -> Via {
        self.via
    }

    /// Enters a new mount namespace and covers the directories. For the
    /// child between fork and exec: system calls only, no allocation.
    #[cfg(target_os = "linux")]
    pub fn apply(&mut self) -> std::io::Result<()> {
        use std::io::Error;
        // SAFETY: plain system calls on pointers to NUL-terminated strings
        // and buffers owned by `self`, which outlives them.
        unsafe {
            match self.via {
                Via::MountNs => {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(Error::last_os_error());
                    }
                }
                Via::UserNs => {
                    if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                        return Err(Error::last_os_error());
                    }
                    write_file(c"/proc/self/setgroups", b"deny")?;
                    write_file(c"/proc/self/uid_map", &self.uid_map)?;
                    write_file(c"/proc/self/gid_map", &self.gid_map)?;
                }
            }
            // Our mounts must not propagate back to the host.
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(Error::last_os_error());
            }
            for dir in &self.hide {
                if libc::mount(
                    c"none".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    c"size=4k,mode=0555".as_ptr().cast(),
                ) != 0
                {
                    return Err(Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// Writes all of `data` to `path` (for the child: system calls only).
#[cfg(target_os = "linux")]
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: the caller's promise; open/write/close on our own buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn ls_in_namespace(hide: &std::path::Path, via: Via) -> std::process::Output {
        let mut p = Prepared::new(&[hide.to_path_buf()], via).unwrap();
        let mut cmd = std::process::Command::new("/bin/ls");
        cmd.arg("-A").arg(hide);
        // SAFETY: `apply` makes system calls only.
        unsafe { cmd.pre_exec(move || p.apply()) };
        cmd.output().unwrap()
    }

    #[test]
    fn a_covered_directory_is_empty_inside_and_untouched_outside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bus.sock"), "x").unwrap();
        let via = probe().expect("mount namespaces are available on CI (root)");
        let mut tried = vec![via];
        // As root both ways work; test the user-namespace way too.
        if via == Via::MountNs {
            tried.push(Via::UserNs);
        }
        for via in tried {
            let o = ls_in_namespace(dir.path(), via);
            assert!(o.status.success(), "{via:?}: {o:?}");
            assert_eq!(String::from_utf8_lossy(&o.stdout), "", "{via:?}");
        }
        // The host's view is unchanged.
        assert!(dir.path().join("bus.sock").exists());
    }
}
