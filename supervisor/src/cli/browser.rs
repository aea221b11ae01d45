//! `oictl browser reset`: the browser adapter's profile.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use oi_ipc_schema::Text;
use oi_kernel::client::{BusClient, CallOptions};

#[derive(Subcommand)]
pub enum BrowserCmd {
    /// Stop the browser and delete its profile: cookies, logins, cache.
    Reset,
}

pub async fn browser(client: &BusClient, cmd: BrowserCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        BrowserCmd::Reset => {
            let Text(said) = client
                .call(
                    oi_ipc_schema::browser::RESET,
                    &(),
                    CallOptions::deadline(Duration::from_secs(20)),
                )
                .await?;
            println!("{said}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
