//! `oi-bench`: every OpenIntentOS benchmark. Run one with
//! `cargo run --release -p oi-bench -- <name>`; each prints one `key=value`
//! line per figure on stdout (progress goes to stderr).

mod agent;
mod browser;
mod calendar;
mod daemon;
mod email;
mod github;
mod ipc;
mod memory;
mod router;
mod scheduler;
mod stats;
mod supervisor;
mod telegram;
mod tools;

use std::process::ExitCode;

const USAGE: &str = "usage: oi-bench <ipc|coldstart|restart|idle-memory|size|vault|memory|router|tools|intent-router|agent|telegram|scheduler|browser|email|calendar|github> [--quick]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let result = match args.first().map(String::as_str) {
        Some("ipc") => ipc::run(quick),
        Some("coldstart") => supervisor::coldstart(quick),
        Some("restart") => supervisor::restart(quick),
        Some("idle-memory") => supervisor::idle_memory(quick),
        Some("size") => supervisor::size(),
        Some("vault") => supervisor::vault(quick),
        Some("memory") => memory::run(quick),
        Some("router") => router::run(quick),
        Some("tools") => tools::run(quick),
        Some("intent-router") => agent::intent_router(quick),
        Some("agent") => agent::agent(quick),
        Some("telegram") => telegram::run(quick),
        Some("scheduler") => scheduler::run(quick),
        Some("browser") => browser::run(quick),
        Some("email") => email::run(quick),
        Some("calendar") => calendar::run(quick),
        Some("github") => github::run(quick),
        // Helper processes the benchmarks start.
        Some("__raw-echo") => ipc::raw_echo(&args[1]),
        Some("__async-echo") => ipc::async_echo(&args[1]),
        Some("__broker") => ipc::broker_process(&args[1]),
        Some("__echo-service") => ipc::echo_service(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oi-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints one figure.
pub fn figure(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
}
