//! `oictl vault`: secrets in and out of the vault, never on the command line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use oi_kernel::client::{BusClient, CallOptions};

use oi_ipc_schema::{Body, Call};

#[derive(Subcommand)]
pub(super) enum VaultCmd {
    /// Store a secret. The value is read from standard input (or a hidden
    /// prompt on a terminal), never from the command line.
    Set {
        name: String,
        /// The hosts the secret may be sent to by http_request
        /// (comma-separated: api.github.com,*.example.com). Without it, a
        /// new secret is bound to none and an updated one keeps its hosts.
        #[arg(long, value_delimiter = ',')]
        hosts: Option<Vec<String>>,
    },
    /// Print a secret's value.
    Get { name: String },
    /// List secrets: names and metadata, never values.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret.
    Rm { name: String },
    /// Re-encrypt every secret under a new master key.
    Rotate,
    /// Move the known provider keys from the environment into the vault.
    ImportEnv,
    /// Where the master key lives, and how many secrets there are.
    Status,
}

/// Environment variables `oictl vault import-env` knows, and the secret
/// each becomes.
pub const KNOWN_ENV_SECRETS: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "openai-api-key"),
    ("ANTHROPIC_API_KEY", "anthropic-api-key"),
    ("GEMINI_API_KEY", "gemini-api-key"),
    ("GOOGLE_API_KEY", "google-api-key"),
    ("DEEPSEEK_API_KEY", "deepseek-api-key"),
    ("GROQ_API_KEY", "groq-api-key"),
    ("NVIDIA_API_KEY", "nvidia-api-key"),
    ("OPENROUTER_API_KEY", "openrouter-api-key"),
    ("XAI_API_KEY", "xai-api-key"),
    ("MISTRAL_API_KEY", "mistral-api-key"),
    ("TELEGRAM_BOT_TOKEN", "telegram-bot-token"),
    ("GITHUB_TOKEN", "github-token"),
];

/// Calls a vault method; waits for a restarting vault.
pub(super) async fn vault_call<Req: Body, Resp: Body>(
    client: &BusClient,
    method: Call<Req, Resp>,
    payload: &Req,
) -> anyhow::Result<Resp> {
    let opts = CallOptions::deadline(Duration::from_secs(30)).waiting();
    Ok(client.call(method, payload, opts).await?)
}

/// Reads a secret value: all of standard input, or a hidden prompt on a
/// terminal. A single trailing newline is dropped.
pub(super) fn read_secret(name: &str) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    use std::io::{IsTerminal, Read};
    let mut value = zeroize::Zeroizing::new(Vec::new());
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("value for {name} (not shown): ");
        let _echo = EchoOff::new();
        let mut line = zeroize::Zeroizing::new(String::new());
        stdin.read_line(&mut line)?;
        eprintln!();
        value.extend_from_slice(line.trim_end_matches(['\r', '\n']).as_bytes());
    } else {
        stdin.lock().read_to_end(&mut value)?;
        if value.last() == Some(&b'\n') {
            value.pop();
            if value.last() == Some(&b'\r') {
                value.pop();
            }
        }
    }
    if value.is_empty() {
        bail!("no value given for {name} on standard input");
    }
    Ok(value)
}

/// Turns terminal echo off until dropped.
pub(super) struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on standard input with a local struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return EchoOff(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            EchoOff(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restoring the settings read in new().
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

pub(super) async fn vault_cmd(client: &BusClient, action: VaultCmd) -> anyhow::Result<ExitCode> {
    use oi_ipc_schema::vault as v;
    match action {
        VaultCmd::Set { name, hosts } => {
            let value = read_secret(&name)?;
            let meta = vault_set(client, &name, &value, hosts).await?;
            let bound = if meta.hosts.is_empty() {
                "bound to no host".to_string()
            } else {
                format!("may be sent to {}", meta.hosts.join(", "))
            };
            eprintln!(
                "oictl: stored {} (version {}, {} bytes; {bound})",
                meta.name, meta.version, meta.len
            );
        }
        VaultCmd::Get { name } => {
            let secret = vault_call(client, v::GET, &v::SecretName { name }).await?;
            let value = zeroize::Zeroizing::new(secret.value);
            let mut out = std::io::stdout().lock();
            out.write_all(&value)?;
            out.write_all(b"\n")?;
        }
        VaultCmd::List { json } => {
            let list: v::SecretList = vault_call(client, v::LIST, &()).await?;
            if json {
                let items: Vec<_> = list.secrets.iter().map(|m| serde_json::json!({"name": m.name, "version": m.version, "len": m.len, "created_unix": m.created_unix, "updated_unix": m.updated_unix, "hosts": m.hosts})).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"secrets": items}))?
                );
            } else if list.secrets.is_empty() {
                println!("no secrets stored");
            } else {
                let w = list
                    .secrets
                    .iter()
                    .map(|m| m.name.len())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                println!("{:<w$}  VERSION  BYTES  HOSTS", "NAME");
                for m in &list.secrets {
                    let hosts = if m.hosts.is_empty() {
                        "-".to_string()
                    } else {
                        m.hosts.join(",")
                    };
                    println!("{:<w$}  {:<7}  {:<5}  {hosts}", m.name, m.version, m.len);
                }
            }
        }
        VaultCmd::Rm { name } => {
            vault_call(client, v::REMOVE, &v::SecretName { name: name.clone() }).await?;
            eprintln!("oictl: removed {name}");
        }
        VaultCmd::Rotate => {
            let st: v::VaultStatus = vault_call(client, v::ROTATE, &()).await?;
            eprintln!(
                "oictl: re-encrypted {} secrets under a new master key (epoch {})",
                st.secrets, st.key_epoch
            );
        }
        VaultCmd::ImportEnv => {
            let mut moved = 0;
            for (var, name) in KNOWN_ENV_SECRETS {
                let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let value = zeroize::Zeroizing::new(value.into_encoded_bytes());
                vault_set(client, name, &value, None).await?;
                eprintln!("oictl: {var} -> vault secret {name}");
                moved += 1;
            }
            if moved == 0 {
                eprintln!(
                    "oictl: none of the known variables is set ({})",
                    KNOWN_ENV_SECRETS
                        .iter()
                        .map(|(v, _)| *v)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            } else {
                eprintln!(
                    "oictl: moved {moved} keys; remove them from your shell profile and environment now"
                );
            }
        }
        VaultCmd::Status => {
            let st: v::VaultStatus = vault_call(client, v::STATUS, &()).await?;
            println!(
                "key source: {}\nsecrets: {}\nkey epoch: {}",
                st.key_source, st.secrets, st.key_epoch
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn vault_set(
    client: &BusClient,
    name: &str,
    value: &[u8],
    hosts: Option<Vec<String>>,
) -> anyhow::Result<oi_ipc_schema::vault::SecretMeta> {
    use oi_ipc_schema::vault::{self, SetSecret};
    // The request's own copy of the value is wiped when dropped, as the
    // client wipes its encoded buffers.
    let mut set = SetSecret {
        name: name.to_string(),
        value: value.to_vec(),
        hosts,
    };
    let meta = vault_call(client, vault::SET, &set).await;
    zeroize::Zeroize::zeroize(&mut set.value);
    meta
}

/// The vault's status, when the vault is up (for `oictl status`).
pub(super) async fn vault_status(client: &BusClient) -> Option<oi_ipc_schema::vault::VaultStatus> {
    client
        .call(
            oi_ipc_schema::vault::STATUS,
            &(),
            CallOptions::deadline(Duration::from_secs(2)),
        )
        .await
        .ok()
}
