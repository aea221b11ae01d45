//! Each command as the first process of a PID namespace of its own.
//!
//! A command can fork away from its process group and session, and its
//! parents can die; what it then leaves running would outlive the adapter,
//! and even openintentd. In a PID namespace it cannot: when the namespace's
//! first process exits, the kernel kills every other process in it. So a
//! command runs under a small shim: the shim enters a new PID namespace,
//! forks the command as that namespace's first process (which dies with
//! the shim, `PR_SET_PDEATHSIG`), waits for it, and exits as it did.
//!
//! The shim is the adapter's own executable, started with [`MAGIC`] as
//! its first argument. It is caught before `main` by a constructor every
//! binary that links this crate carries (`.init_array`, which glibc calls
//! with argc, argv and envp), and makes only system calls: nothing of the
//! Rust runtime runs in it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The shim's first argument.
pub const MAGIC: &str = "\u{1}oi-sandbox-pid1";

/// How a command is started under the shim: the program to spawn and its
/// arguments (the adapter's executable, [`MAGIC`], the program, then the
/// command's own argv with its argv[0]).
pub fn wrap(program: &Path, argv: &[String]) -> (PathBuf, Vec<OsString>) {
    // Keeps the constructor's object file in every binary that can wrap.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::hint::black_box(&shim::SHIM);
    let mut args: Vec<OsString> = vec![MAGIC.into(), program.as_os_str().to_owned()];
    args.extend(argv.iter().map(OsString::from));
    (PathBuf::from("/proc/self/exe"), args)
}

/// Whether commands can be run under the shim here, tried once in a
/// throwaway child (it needs CAP_SYS_ADMIN: root, or a user namespace).
pub fn probe(
    pre: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Result<(), String> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return Err("PID namespaces are used only on Linux with glibc".into());
    }
    let (exe, args) = wrap(Path::new("/bin/true"), &["true".to_string()]);
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: `pre` makes system calls only (the namespace's apply).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(pre);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "no PID namespace: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("no PID namespace: {e}")),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod shim {
    use libc::{c_char, c_int};

    #[used]
    #[unsafe(link_section = ".init_array")]
    pub(super) static SHIM: extern "C" fn(c_int, *const *const c_char, *const *const c_char) =
        entry;

    extern "C" fn entry(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) {
        // SAFETY: glibc passes the process's argc, argv and envp, valid
        // NUL-terminated arrays of NUL-terminated strings.
        unsafe {
            if argc < 4 || argv.is_null() {
                return;
            }
            let first = *argv.add(1);
            if first.is_null()
                || std::ffi::CStr::from_ptr(first).to_bytes() != super::MAGIC.as_bytes()
            {
                return;
            }
            run(argv, envp)
        }
    }

    fn say(msg: &[u8]) {
        // SAFETY: writing a buffer we own to stderr.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
        }
    }

    /// argv: [exe, MAGIC, program, argv0, args...].
    unsafe fn run(argv: *const *const c_char, envp: *const *const c_char) -> ! {
        // SAFETY: system calls on the arrays glibc gave us.
        unsafe {
            if libc::unshare(libc::CLONE_NEWPID) != 0 {
                say(b"oi-sandbox: cannot make a PID namespace\n");
                libc::_exit(126);
            }
            let pid = libc::fork();
            if pid < 0 {
                say(b"oi-sandbox: cannot fork\n");
                libc::_exit(126);
            }
            if pid == 0 {
                // The namespace's first process: it dies with the shim, and
                // everything in the namespace dies with it.
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                libc::execve(*argv.add(2), argv.add(3), envp);
                say(b"oi-sandbox: cannot run the command\n");
                libc::_exit(127);
            }
            let mut status: c_int = 0;
            loop {
                let r = libc::waitpid(pid, &mut status, 0);
                if r == pid {
                    break;
                }
                if r < 0 && *libc::__errno_location() != libc::EINTR {
                    libc::_exit(126);
                }
            }
            if libc::WIFEXITED(status) {
                libc::_exit(libc::WEXITSTATUS(status));
            }
            let sig = libc::WTERMSIG(status);
            // End the same way, so the adapter sees the command's signal.
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
    }
}
