//! The vault service: the only process that holds decrypted secrets.
//!
//! Runs as `openintentd service vault`. Services ask it for a secret by
//! name over the bus; the broker has verified who is asking, `[vault.policy]`
//! says whether they may, and every read (allowed or denied) is audited
//! without its value. Values are wiped from memory after use; the process
//! cannot be dumped and its master key is locked in memory where allowed.

pub mod config;
pub mod crypto;
pub mod keys;
pub mod policy;
pub mod store;

use std::sync::{Arc, Mutex};

use oi_ipc_schema::encode_payload;
use oi_ipc_schema::vault::{SecretList, SecretName, SecretValue, SetSecret, methods};
use oi_kernel::client::IncomingRequest;
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Reply, Service, ServiceError, archived_reply, decode_request};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::config::VaultConfig;
use crate::policy::Policy;
use crate::store::{Vault, VaultError};

/// Makes the process undumpable and without core files, so a crash cannot
/// write secrets to disk.
fn harden() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl and setrlimit on this process only.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
    }
}

struct VaultService {
    vault: Arc<Mutex<Vault>>,
    policy: Mutex<Policy>,
}

fn vault_error(e: VaultError) -> ServiceError {
    match e {
        VaultError::NotFound(_) | VaultError::BadName(_) | VaultError::BadHost(_) => {
            ServiceError::bad_request(e.to_string())
        }
        other => ServiceError::internal(other.to_string()),
    }
}

impl VaultService {
    /// Runs `f` on the vault on a blocking thread (SQLite writes fsync).
    async fn with_vault<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vault) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let vault = self.vault.clone();
        tokio::task::spawn_blocking(move || {
            let mut v = vault.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut v)
        })
        .await
        .map_err(|e| ServiceError::internal(format!("vault task failed: {e}")))?
    }

    fn deny(&self, caller: &str, what: String) -> ServiceError {
        warn!(caller, "{what}");
        ServiceError::denied(format!("{what}; see [vault.policy] in the config"))
    }
}

impl Service for VaultService {
    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        let caller = req.caller().to_string();
        let policy = self
            .policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match req.method() {
            methods::GET => {
                let SecretName { name } = decode_request(&req)?;
                if !policy.may_read(&caller, &name) {
                    let n = name.clone();
                    let c = caller.clone();
                    self.with_vault(move |v| v.audit(&c, "get", &n, "denied").map_err(vault_error))
                        .await?;
                    return Err(self.deny(
                        &caller,
                        format!("service '{caller}' may not read secret '{name}'"),
                    ));
                }
                let value = self
                    .with_vault(move |v| {
                        let r = v.get_bound(&name);
                        let outcome = match &r {
                            Ok(_) => "ok",
                            Err(VaultError::NotFound(_)) => "missing",
                            Err(_) => "error",
                        };
                        v.audit(&caller, "get", &name, outcome)
                            .map_err(vault_error)?;
                        r.map_err(vault_error)
                    })
                    .await?;
                let (value, hosts) = value;
                let out = Zeroizing::new(
                    encode_payload(&SecretValue {
                        value: value.to_vec(),
                        hosts,
                    })
                    .map_err(|e| ServiceError::internal(e.to_string()))?,
                );
                Ok(Reply::Once(out.to_vec()))
            }
            methods::SET => {
                if !policy.may_manage(&caller) {
                    return Err(
                        self.deny(&caller, format!("service '{caller}' may not write secrets"))
                    );
                }
                let set: SetSecret = decode_request(&req)?;
                let value = Zeroizing::new(set.value);
                let name = set.name;
                let hosts = set.hosts;
                let meta = self
                    .with_vault(move |v| {
                        let meta = v
                            .set_bound(&name, &value, hosts.as_deref())
                            .map_err(vault_error)?;
                        v.audit(&caller, "set", &name, "ok").map_err(vault_error)?;
                        Ok(meta)
                    })
                    .await?;
                info!(secret = %meta.name, version = meta.version, "secret stored");
                archived_reply(&meta)
            }
            methods::LIST => {
                if !policy.may_manage(&caller) {
                    return Err(
                        self.deny(&caller, format!("service '{caller}' may not list secrets"))
                    );
                }
                let secrets = self.with_vault(|v| v.list().map_err(vault_error)).await?;
                archived_reply(&SecretList { secrets })
            }
            methods::REMOVE => {
                if !policy.may_manage(&caller) {
                    return Err(self.deny(
                        &caller,
                        format!("service '{caller}' may not remove secrets"),
                    ));
                }
                let SecretName { name } = decode_request(&req)?;
                self.with_vault(move |v| {
                    v.remove(&name).map_err(vault_error)?;
                    v.audit(&caller, "rm", &name, "ok").map_err(vault_error)
                })
                .await?;
                Ok(Reply::Once(Vec::new()))
            }
            methods::ROTATE => {
                if !policy.may_manage(&caller) {
                    return Err(self.deny(
                        &caller,
                        format!("service '{caller}' may not rotate the master key"),
                    ));
                }
                let status = self
                    .with_vault(move |v| {
                        v.rotate().map_err(vault_error)?;
                        v.audit(&caller, "rotate", "*", "ok").map_err(vault_error)?;
                        v.status().map_err(vault_error)
                    })
                    .await?;
                info!(epoch = status.key_epoch, "master key rotated");
                archived_reply(&status)
            }
            methods::STATUS => {
                archived_reply(&self.with_vault(|v| v.status().map_err(vault_error)).await?)
            }
            other => Err(ServiceError::bad_request(format!(
                "the vault has no method '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        if let Some(c) =
            harness::config_update(generation, config_toml, Config::section::<VaultConfig>)
        {
            *self.policy.lock().unwrap_or_else(|p| p.into_inner()) = Policy::new(c.policy)
        }
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "vault",
    run,
    sections: config::SECTIONS,
    env: keyring_env,
};

/// The session's keyring is reached through these (Secret Service on
/// D-Bus).
fn keyring_env(_config: &oi_kernel::config::Config) -> Vec<String> {
    ["DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"]
        .map(String::from)
        .to_vec()
}

/// Entry point of `openintentd service vault`.
pub fn run(name: &'static str) -> i32 {
    harden();
    harness::run(name, |_client| async move {
        let config: VaultConfig = harness::service_config()?.section()?;
        let data = harness::data_dir(name)?;
        let dir = data.join("vault");
        let setting = config.key_source;
        let (vault, passed_over) = tokio::task::spawn_blocking(move || Vault::open(&dir, setting))
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))?
            .map_err(|e| match e {
                VaultError::Key(_) | VaultError::WrongKey { .. } => {
                    ServiceError::config_error(e.to_string())
                }
                other => ServiceError::internal(other.to_string()),
            })?;
        if let Some(why) = passed_over {
            info!(reason = %why, "the OS keyring is not available; using the key file");
        }
        info!(key_source = %vault.source(), "vault open");
        Ok(VaultService {
            vault: Arc::new(Mutex::new(vault)),
            policy: Mutex::new(Policy::new(config.policy)),
        })
    })
}
