//! What each service finds in its environment.
//!
//! A service starts with a clean environment: the few variables every
//! process needs (PATH, locale, logging), openintentd's own paths, and
//! only the secrets bound for it: the vault's passphrase for the vault
//! alone, the models' API-key variables for the llm-router alone, the
//! `env:` requirements and `env` table of its own `[services.<name>]`.
//! Nothing else of openintentd's environment reaches a child, so one
//! service's `/proc/<pid>/environ` holds no other service's secret.
//!
//! The passphrase is taken out of openintentd's own environment at start
//! ([`take_passphrase`]): held in memory for the vault's restarts, and
//! wiped from the process's environment block, so `/proc/<openintentd>/environ`
//! no longer shows it either.

use std::collections::BTreeMap;

use oi_kernel::config::{Config, Requirement, ServiceSpec};
use zeroize::Zeroizing;

/// The vault's passphrase variable.
pub const PASSPHRASE: &str = "OPENINTENT_VAULT_PASSPHRASE";

/// Variables any process needs, passed on when openintentd has them.
const COMMON: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "NO_COLOR",
    "OPENINTENT_LOG",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// The environment of the service `name` of kind `kind`.
/// `outside` is openintentd's own environment.
pub fn for_service(
    config: &Config,
    kind: &str,
    spec: &ServiceSpec,
    passphrase: Option<&str>,
    outside: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let pass = |var: &str, env: &mut BTreeMap<String, String>| {
        if let Some(v) = outside.get(var) {
            env.insert(var.to_string(), v.clone());
        }
    };
    for var in COMMON {
        pass(var, &mut env);
    }
    for k in outside.keys().filter(|k| k.starts_with("LC_")) {
        pass(k, &mut env);
    }
    if kind == "vault"
        && let Some(p) = passphrase
    {
        env.insert(PASSPHRASE.to_string(), p.to_string());
    }
    for var in crate::services::kind(kind)
        .map(|k| (k.env)(config))
        .unwrap_or_default()
    {
        pass(&var, &mut env);
    }
    for r in &spec.requires {
        if let Some(Requirement::Env(var)) = Requirement::parse(r) {
            pass(&var, &mut env);
        }
    }
    for (k, v) in &spec.env {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// Takes the vault's passphrase out of this process's environment: the
/// value is returned, the variable removed, and the bytes it occupied in
/// the environment block (what `/proc/self/environ` shows) overwritten.
///
/// # Safety
/// Must run before any other thread exists: it changes the environment.
pub unsafe fn take_passphrase() -> Option<Zeroizing<String>> {
    let value = std::env::var(PASSPHRASE).ok().map(Zeroizing::new);
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" {
            static mut environ: *mut *mut libc::c_char;
        }
        let prefix = format!("{PASSPHRASE}=");
        // SAFETY: single-threaded (the caller's promise); `environ` is a
        // NUL-terminated array of NUL-terminated strings, and the ones set
        // at exec live in writable memory on the initial stack.
        unsafe {
            let mut p = environ;
            while !p.is_null() && !(*p).is_null() {
                let entry = *p;
                let bytes = std::ffi::CStr::from_ptr(entry).to_bytes();
                if bytes.starts_with(prefix.as_bytes()) {
                    let value_at = entry.add(prefix.len());
                    std::ptr::write_bytes(value_at, 0, bytes.len() - prefix.len());
                }
                p = p.add(1);
            }
        }
    }
    // SAFETY: single-threaded, as above.
    unsafe { std::env::remove_var(PASSPHRASE) };
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_gets_only_its_own_secrets() {
        let mut config = Config::defaults();
        let mut models: oi_llm_router::config::Models = config.section().unwrap();
        models.0.get_mut("gpt4o").unwrap().api_key_env = "ANTHROPIC_API_KEY".into();
        config.set_section(&models);
        let mut shell: oi_adapter_shell::ShellConfig = config.section().unwrap();
        shell.env_passthrough = vec!["EDITOR".into()];
        config.set_section(&shell);
        let outside: BTreeMap<String, String> = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("ANTHROPIC_API_KEY", "sk-ant-1"),
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("EDITOR", "vi"),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/bus"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let env_of = |name: &str| {
            let spec = config.services[name].clone();
            let kind = spec.kind(name).to_string();
            for_service(&config, &kind, &spec, Some("hunter2"), &outside)
        };
        let vault = env_of("vault");
        assert_eq!(vault.get(PASSPHRASE).map(String::as_str), Some("hunter2"));
        assert!(vault.contains_key("DBUS_SESSION_BUS_ADDRESS"));
        assert!(!vault.contains_key("ANTHROPIC_API_KEY"));
        let router = env_of("llm-router");
        assert_eq!(router["ANTHROPIC_API_KEY"], "sk-ant-1");
        assert!(!router.contains_key(PASSPHRASE));
        let telegram = env_of("telegram");
        assert_eq!(telegram["TELEGRAM_BOT_TOKEN"], "123:abc");
        assert!(!telegram.contains_key("ANTHROPIC_API_KEY"));
        let shell = env_of("shell");
        assert_eq!(shell["EDITOR"], "vi");
        for (name, env) in [("shell", &shell), ("memory", &env_of("memory"))] {
            assert_eq!(env["PATH"], "/usr/bin", "{name}");
            for secret in [
                PASSPHRASE,
                "ANTHROPIC_API_KEY",
                "TELEGRAM_BOT_TOKEN",
                "AWS_SECRET_ACCESS_KEY",
            ] {
                assert!(!env.contains_key(secret), "{name} got {secret}");
            }
        }
    }
}
