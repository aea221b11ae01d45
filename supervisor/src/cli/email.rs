//! `oictl email login <account>`: an OAuth2 login for an email account,
//! through the browser and a one-shot redirect listener on 127.0.0.1; the
//! refresh token goes into the vault, never onto the screen.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use oi_adapter_email::config::{Auth, EmailConfig};
use oi_ipc_schema::vault::{self, SecretName, SecretValue, SetSecret};
use oi_kernel::client::BusClient;
use oi_kernel::config::Config;
use oi_kernel::paths::Paths;

use super::vault::vault_call;

#[derive(Subcommand)]
pub enum EmailCmd {
    /// Log an OAuth2 account in: prints the provider's address to open,
    /// waits for it to send the browser back, and stores the refresh token
    /// in the account's vault secret.
    Login {
        account: String,
        /// Open the address in the desktop's browser (xdg-open, open).
        #[arg(long)]
        open: bool,
        /// Seconds to wait for the browser.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

pub async fn email(paths: &Paths, client: &BusClient, cmd: EmailCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EmailCmd::Login {
            account,
            open,
            timeout,
        } => {
            let config = Config::load_checked(&paths.config_file, Some(&crate::services::build()))?;
            let cfg: EmailConfig = config.section()?;
            let (name, acc) = cfg
                .account(Some(&account))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let Auth::Oauth2(o) = &acc.auth else {
                anyhow::bail!(
                    "account '{name}' logs in with a password (auth.method = \"password\"); set it with `oictl vault set <its password_secret>`"
                );
            };
            let client_secret = if o.client_secret_secret.is_empty() {
                zeroize::Zeroizing::new(String::new())
            } else {
                let v: SecretValue = vault_call(
                    client,
                    vault::GET,
                    &SecretName {
                        name: o.client_secret_secret.clone(),
                    },
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the client secret {} ({e}); store it with `oictl vault set {}`",
                        o.client_secret_secret,
                        o.client_secret_secret
                    )
                })?;
                zeroize::Zeroizing::new(String::from_utf8_lossy(&v.value).trim().to_string())
            };
            let pending = oi_adapter_email::login::begin(o)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("To log in to the email account '{name}', open this address in a browser:\n");
            println!("{}\n", pending.url);
            println!("Waiting for the answer at {} ...", pending.redirect_uri);
            std::io::stdout().flush()?;
            if open {
                let opener = if cfg!(target_os = "macos") {
                    "open"
                } else {
                    "xdg-open"
                };
                if let Err(e) = std::process::Command::new(opener).arg(&pending.url).spawn() {
                    eprintln!("could not start {opener} ({e}); open the address yourself");
                }
            }
            let refresh = pending
                .finish(o, &client_secret, Duration::from_secs(timeout))
                .await
                .map_err(|e| anyhow::anyhow!("login of '{name}' failed: {e}"))?;
            vault_call(
                client,
                vault::SET,
                &SetSecret {
                    name: o.refresh_token_secret.clone(),
                    value: refresh.as_bytes().to_vec(),
                    hosts: None,
                },
            )
            .await?;
            println!(
                "Logged in: the refresh token of '{name}' is in the vault as {}.",
                o.refresh_token_secret
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
