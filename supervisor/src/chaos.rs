//! The test-only `chaos` service (cargo feature `chaos`). Its behaviour is
//! set by environment variables, so supervisor tests can make real
//! processes misbehave in each way a service can:
//!
//! | variable                 | effect                                            |
//! |--------------------------|---------------------------------------------------|
//! | `CHAOS_EXIT_AT_START=N`  | exit with status N before connecting              |
//! | `CHAOS_READY_DELAY_MS=N` | take N ms to initialise                           |
//! | `CHAOS_NEVER_READY=1`    | connect but never send Ready                      |
//! | `CHAOS_CRASH_AFTER_MS=N` | exit with `CHAOS_CRASH_CODE` (default 1) N ms after Ready |
//! | `CHAOS_PANIC_AFTER_MS=N` | panic in a task N ms after Ready                  |
//! | `CHAOS_IGNORE_SIGTERM=1` | ignore SIGTERM (must be SIGKILLed)                |
//! | `CHAOS_GRANDCHILD=path`  | start `sleep 600` and write its pid to `path`     |
//! | `CHAOS_MARK=path`        | append `<pid> <unix ms>` to `path` at every start |
//! | `CHAOS_CRASH_UNTIL_STARTS=N` | with `CHAOS_MARK`: crash only during the first N starts |
//!
//! Method `ping` answers with the pid; `vault-get` asks the vault for the
//! secret named in the payload (as this service) and answers with the value.

use std::io::Write;
use std::time::Duration;

use oi_kernel::client::IncomingRequest;
use oi_kernel::harness::{self, Reply, Service, ServiceError};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

struct Chaos {
    client: oi_kernel::client::BusClient,
}

impl Service for Chaos {
    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        match req.method() {
            "ping" => Ok(Reply::Once(std::process::id().to_string().into_bytes())),
            "vault-get" => {
                use oi_ipc_schema::vault::{self, SecretName};
                let name = String::from_utf8_lossy(req.payload()).into_owned();
                let v = self
                    .client
                    .call(
                        vault::GET,
                        &SecretName { name },
                        oi_kernel::client::CallOptions::default(),
                    )
                    .await?;
                Ok(Reply::Once(v.value))
            }
            other => Err(ServiceError::bad_request(format!(
                "chaos has no method '{other}'"
            ))),
        }
    }
}

/// The chaos kind (tests only).
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "chaos",
    run,
    sections: &[],
    env: oi_kernel::kind::no_env,
};

pub fn run(name: &'static str) -> i32 {
    if let Some(code) = env_u64("CHAOS_EXIT_AT_START") {
        return i32::try_from(code).unwrap_or(1);
    }
    let mut starts = 0u64;
    if let Ok(path) = std::env::var("CHAOS_MARK") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let _ = writeln!(f, "{} {ms}", std::process::id());
        }
        starts = std::fs::read_to_string(&path)
            .map(|s| s.lines().count() as u64)
            .unwrap_or(0);
    }
    let crash_allowed = env_u64("CHAOS_CRASH_UNTIL_STARTS").is_none_or(|n| starts <= n);
    harness::run(name, |client| async move {
        if let Some(ms) = env_u64("CHAOS_READY_DELAY_MS") {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if env_flag("CHAOS_NEVER_READY") {
            std::future::pending::<()>().await;
        }
        if env_flag("CHAOS_IGNORE_SIGTERM") {
            // SAFETY: replacing a signal disposition with SIG_IGN.
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
            }
        }
        if let Ok(path) = std::env::var("CHAOS_GRANDCHILD") {
            let child = std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .map_err(|e| ServiceError::internal(format!("cannot start grandchild: {e}")))?;
            std::fs::write(&path, child.id().to_string())
                .map_err(|e| ServiceError::internal(e.to_string()))?;
        }
        if let Ok(path) = std::env::var("CHAOS_ESCAPEE") {
            // A grandchild in a session of its own, out of reach of the
            // service's process group.
            let child = std::process::Command::new("setsid")
                .args(["sleep", "600"])
                .spawn()
                .map_err(|e| ServiceError::internal(format!("cannot start the escapee: {e}")))?;
            std::fs::write(&path, child.id().to_string())
                .map_err(|e| ServiceError::internal(e.to_string()))?;
        }
        if let Some(ms) = env_u64("CHAOS_CRASH_AFTER_MS").filter(|_| crash_allowed) {
            let code = env_u64("CHAOS_CRASH_CODE").unwrap_or(1) as i32;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                std::process::exit(code);
            });
        }
        if let Some(ms) = env_u64("CHAOS_PANIC_AFTER_MS") {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                panic!("chaos: panic requested");
            });
        }
        Ok(Chaos { client })
    })
}
