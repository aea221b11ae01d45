//! The vault as a supervised service: oictl vault commands, the policy for
//! services, durability under kill -9, key file checks, key source
//! reporting, and that a known secret leaks nowhere.

use std::time::Duration;

use oi_ipc_schema::vault::{SecretName, SecretValue, SetSecret, methods};
use oi_ipc_schema::{ErrorCode, encode_payload};
use oi_kernel::client::CallOptions;

use crate::support::*;

const SECRET: &str = "sk-e2e-7f3a91c2-DO-NOT-LEAK";

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn oictl_vault_commands_key_source_and_no_secret_leaks() {
    // No D-Bus session: the keyring cannot answer, so the key file is used.
    let cfg = vault_config("").replace("key_source = \"file\"", "key_source = \"auto\"");
    let d = Daemon::start_with(
        &cfg,
        &[("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")],
    );
    d.ready_pid("vault");
    let mut outputs = Vec::new();

    let o = oictl_input(
        &d,
        &["vault", "set", "openai-api-key"],
        format!("{SECRET}\n").as_bytes(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("stored openai-api-key (version 1, 27 bytes; bound to no host)"),
        "{}",
        text(&o)
    );
    outputs.push(text(&o));

    let o = d.oictl(&["vault", "get", "openai-api-key"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{SECRET}\n"));

    let o = d.oictl(&["vault", "list"]);
    assert!(
        text(&o).contains("openai-api-key") && text(&o).contains("27"),
        "{}",
        text(&o)
    );
    outputs.push(text(&o));

    let key_file = d.home.path().join("data/vault/master.key");
    let o = d.oictl(&["vault", "status"]);
    assert!(
        text(&o).contains(&format!("key source: file {}", key_file.display())),
        "{}",
        text(&o)
    );
    outputs.push(text(&o));
    let s = d.status();
    assert_eq!(
        s["vault"]["key_source"],
        format!("file {}", key_file.display())
    );
    outputs.push(s.to_string());
    outputs.push(text(&d.oictl(&["status"])));
    let o = d.oictl(&["doctor"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "ok      vault: key source file {}, 1 secrets",
            key_file.display()
        )),
        "{}",
        text(&o)
    );
    outputs.push(text(&o));

    let o = d.oictl(&["vault", "rotate"]);
    assert!(
        o.status.success() && text(&o).contains("epoch 2"),
        "{}",
        text(&o)
    );
    outputs.push(text(&o));
    assert_eq!(
        String::from_utf8_lossy(&d.oictl(&["vault", "get", "openai-api-key"]).stdout),
        format!("{SECRET}\n")
    );

    // There is no way to give a value on the command line.
    assert!(!d.oictl(&["vault", "set", "x", "value"]).status.success());

    let o = d.oictl(&["vault", "rm", "nope"]);
    assert!(text(&o).contains("no secret named 'nope'"), "{}", text(&o));
    outputs.push(text(&o));
    outputs.push(text(&d.oictl(&["logs", "vault", "-n", "1000"])));

    // The audit log names who read what, never the value.
    let db = d.home.path().join("data/vault/vault.db");
    let audit = sqlite_rows(
        &db,
        "SELECT caller, action, secret, outcome FROM audit ORDER BY id",
    );
    assert!(
        audit.contains("oictl|set|openai-api-key|ok")
            && audit.contains("oictl|get|openai-api-key|ok")
            && audit.contains("oictl|rotate|*|ok"),
        "{audit}"
    );
    outputs.push(audit);

    // The database and its WAL while the vault runs (the WAL holds the
    // recent writes), then the checkpointed database after a clean stop.
    let home = d.home.path().to_path_buf();
    let no_plaintext = |f: &std::path::Path| {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "plaintext secret in {}",
            f.display()
        );
    };
    no_plaintext(&home.join("data/vault/vault.db"));
    no_plaintext(&home.join("data/vault/vault.db-wal"));
    assert!(d.oictl(&["stop", "vault"]).status.success());
    wait_for(Duration::from_secs(10), "vault stopped", || {
        (d.state("vault") == "EXITED").then_some(())
    });
    no_plaintext(&home.join("data/vault/vault.db"));
    let log = d.log_text();
    assert!(!log.contains(SECRET), "secret in the daemon log");
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(SECRET), "secret in output {i}: {o}");
    }
}

#[test]
fn services_outside_the_policy_are_denied_and_audited() {
    // A chaos process under the llm-router's name stands in for it.
    let cfg = config_enabling(
        &["vault", "llm-router", "shell"],
        "",
        &[
            "[vault]\nkey_source = \"file\"\n",
            &chaos("llm-router", "adapters", ""),
            &chaos("shell", "adapters", ""),
        ]
        .concat(),
    );
    let d = Daemon::start(&cfg);
    d.ready_pid("vault");
    d.ready_pid("llm-router");
    d.ready_pid("shell");
    assert!(
        oictl_input(&d, &["vault", "set", "openai-api-key"], SECRET.as_bytes())
            .status
            .success()
    );
    let rt = bus_runtime();
    rt.block_on(async {
        let c = d.bus_client().await;
        // The default policy lets llm-router read *-api-key.
        let v = c
            .request(
                oi_ipc_schema::llm::SERVICE,
                "vault-get",
                b"openai-api-key",
                CallOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(v, SECRET.as_bytes());
        // The shell adapter may read nothing.
        let e = c
            .request(
                oi_ipc_schema::shell::SERVICE,
                "vault-get",
                b"openai-api-key",
                CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Denied, "{e}");
        assert!(
            e.to_string()
                .contains("service 'shell' may not read secret 'openai-api-key'"),
            "{e}"
        );
        assert!(!e.to_string().contains(SECRET));
        // A client cannot pretend to be a service: the broker fixes the caller.
        let payload = encode_payload(&SecretName {
            name: "openai-api-key".into(),
        })
        .unwrap();
        let v: SecretValue = typed(&c, "vault", methods::GET, &payload).await.unwrap();
        assert_eq!(v.value, SECRET.as_bytes(), "the user (oictl) may read");
    });
    let audit = sqlite_rows(
        &d.home.path().join("data/vault/vault.db"),
        "SELECT caller, action, secret, outcome FROM audit ORDER BY id",
    );
    assert!(
        audit.contains("llm-router|get|openai-api-key|ok"),
        "{audit}"
    );
    assert!(audit.contains("shell|get|openai-api-key|denied"), "{audit}");
    assert!(!audit.contains(SECRET));
}

#[test]
fn kill_9_of_the_vault_during_a_write_loop_loses_no_acknowledged_write() {
    let d = Daemon::start(&vault_config(""));
    let pid = d.ready_pid("vault");
    let rt = bus_runtime();
    let acked = rt.block_on(async {
        let c = d.bus_client().await;
        let mut acked = Vec::new();
        let mut failed = 0;
        for i in 0..400u32 {
            if i == 150 {
                signal(pid, libc::SIGKILL);
            }
            let p = encode_payload(&SetSecret {
                name: format!("k{i}"),
                value: format!("v{i}").into_bytes(),
                hosts: None,
            })
            .unwrap();
            match c
                .request(
                    oi_ipc_schema::vault::SERVICE,
                    methods::SET,
                    &p,
                    CallOptions::deadline(Duration::from_secs(10)).waiting(),
                )
                .await
            {
                Ok(_) => acked.push(i),
                Err(_) => failed += 1,
            }
        }
        // Only the write in flight at the kill may fail.
        assert!(failed <= 1, "{failed} writes failed");
        acked
    });
    let new_pid = d.ready_pid("vault");
    assert_ne!(new_pid, pid, "the vault was not restarted");
    rt.block_on(async {
        let c = d.bus_client().await;
        for i in &acked {
            let p = encode_payload(&SecretName {
                name: format!("k{i}"),
            })
            .unwrap();
            let v: SecretValue = typed(&c, "vault", methods::GET, &p)
                .await
                .unwrap_or_else(|e| panic!("acknowledged k{i} lost: {e}"));
            assert_eq!(v.value, format!("v{i}").into_bytes());
        }
    });
    assert!(acked.len() >= 399);
}

#[test]
fn a_key_file_with_wrong_permissions_is_fatal_and_says_how_to_fix_it() {
    use std::os::unix::fs::PermissionsExt;
    let mut d = Daemon::start(&vault_config(""));
    d.ready_pid("vault");
    signal(d.pid(), libc::SIGTERM);
    d.wait_exit(Duration::from_secs(10));
    let key = d.home.path().join("data/vault/master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Start the same home again.
    let out = std::fs::File::create(&d.log).unwrap();
    let child = std::process::Command::new(OPENINTENTD)
        .arg("--home")
        .arg(d.home.path())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    d.child = Some(child);
    wait_for(Duration::from_secs(10), "the bus socket", || {
        d.home.path().join("run/bus.sock").exists().then_some(())
    });
    let s = wait_for(Duration::from_secs(10), "vault FATAL", || {
        let s = d.try_service("vault")?;
        (s["state"] == "FATAL").then_some(s)
    });
    assert_eq!(s["last_exit"], "exit 78 (configuration error)");
    let logs = String::from_utf8_lossy(&d.oictl(&["logs", "vault"]).stdout).into_owned();
    assert!(
        logs.contains(&format!("chmod 600 {}", key.display())),
        "{logs}"
    );
}

#[test]
fn reads_during_rotation_never_fail() {
    let d = Daemon::start(&vault_config(""));
    d.ready_pid("vault");
    let rt = bus_runtime();
    rt.block_on(async {
        let c = d.bus_client().await;
        for i in 0..50u32 {
            let p = encode_payload(&SetSecret {
                name: format!("s{i}"),
                value: format!("value-{i}").into_bytes(),
                hosts: None,
            })
            .unwrap();
            c.request(
                oi_ipc_schema::vault::SERVICE,
                methods::SET,
                &p,
                CallOptions::default(),
            )
            .await
            .unwrap();
        }
        let reader = {
            let c = c.clone();
            tokio::spawn(async move {
                let mut reads = 0u32;
                let t0 = std::time::Instant::now();
                while t0.elapsed() < Duration::from_millis(1500) {
                    let i = reads % 50;
                    let p = encode_payload(&SecretName {
                        name: format!("s{i}"),
                    })
                    .unwrap();
                    let v: SecretValue = typed(&c, "vault", methods::GET, &p)
                        .await
                        .unwrap_or_else(|e| panic!("read of s{i} failed during rotation: {e}"));
                    assert_eq!(v.value, format!("value-{i}").into_bytes());
                    reads += 1;
                }
                reads
            })
        };
        let mut epochs = Vec::new();
        for _ in 0..5 {
            let st: oi_ipc_schema::vault::VaultStatus =
                typed(&c, "vault", methods::ROTATE, b"").await.unwrap();
            epochs.push(st.key_epoch);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(epochs, [2, 3, 4, 5, 6]);
        let reads = reader.await.unwrap();
        assert!(reads > 50, "only {reads} reads ran alongside the rotations");
    });
}
