//! The services compiled into this build, by kind. `openintentd service
//! <kind> --name <name>` runs one of them in the current process.

/// Kinds a config entry may name.
pub fn known_kinds() -> Vec<&'static str> {
    [
        "vault",
        "memory",
        "llm-router",
        "fs",
        "shell",
        "web",
        "http",
        #[cfg(feature = "chaos")]
        "chaos",
    ]
    .to_vec()
}

/// Runs the service and returns the process exit status.
pub fn run(kind: &str, name: &str) -> i32 {
    // The harness keeps the name for the life of the process.
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    match kind {
        "vault" => oi_vault::run(name),
        "memory" => oi_memory::run(name),
        "llm-router" => oi_llm_router::run(name),
        "fs" => oi_adapter_fs::run(name),
        "shell" => oi_adapter_shell::run(name),
        "web" => oi_adapter_web::run(name),
        "http" => oi_adapter_http::run(name),
        #[cfg(feature = "chaos")]
        "chaos" => crate::chaos::run(name),
        other => {
            let known = known_kinds();
            eprintln!(
                "openintentd: no service of kind '{other}' in this build (kinds: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
            oi_kernel::harness::EXIT_CONFIG
        }
    }
}
