//! The services compiled into this build, by kind. `openintentd service
//! <kind> --name <name>` runs one of them in the current process.

/// A service's entry point: runs it under `name` and returns the exit status.
type Run = fn(&'static str) -> i32;

/// Every kind with its entry point, in the order `known_kinds` lists them.
const KINDS: &[(&str, Run)] = &[
    ("vault", oi_vault::run),
    ("memory", oi_memory::run),
    ("llm-router", oi_llm_router::run),
    ("fs", oi_adapter_fs::run),
    ("shell", oi_adapter_shell::run),
    ("web", oi_adapter_web::run),
    ("http", oi_adapter_http::run),
    ("agent", oi_agent::run),
    ("telegram", oi_telegram::run),
    #[cfg(feature = "chaos")]
    ("chaos", crate::chaos::run),
];

/// Kinds a config entry may name.
pub fn known_kinds() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).collect()
}

/// Runs the service and returns the process exit status.
pub fn run(kind: &str, name: &str) -> i32 {
    // The harness keeps the name for the life of the process.
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    match KINDS.iter().find(|(k, _)| *k == kind) {
        Some((_, run)) => run(name),
        None => {
            eprintln!(
                "openintentd: no service of kind '{kind}' in this build (kinds: {})",
                known_kinds().join(", ")
            );
            oi_kernel::harness::EXIT_CONFIG
        }
    }
}
