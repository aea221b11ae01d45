//! The supervisor with real processes: restart types, strategies, intensity,
//! backoff, readiness, watchdog, shutdown, parent death, systemd notify,
//! config errors and hot reload.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn restart_types_times_exit_causes() {
    let cfg = config(&[
        "[groups.adapters]\nintensity = 100\n".to_string(),
        chaos("perm", "adapters", "env = { CHAOS_CRASH_AFTER_MS = \"300\", CHAOS_CRASH_CODE = \"3\" }"),
        chaos("trans_ok", "adapters", "restart = \"transient\"\nenv = { CHAOS_CRASH_AFTER_MS = \"300\", CHAOS_CRASH_CODE = \"0\" }"),
        chaos("trans_bad", "adapters", "restart = \"transient\"\nenv = { CHAOS_CRASH_AFTER_MS = \"300\", CHAOS_CRASH_CODE = \"3\" }"),
        chaos("temp", "adapters", "restart = \"temporary\"\nenv = { CHAOS_CRASH_AFTER_MS = \"300\", CHAOS_CRASH_CODE = \"3\" }"),
        chaos("cfg", "adapters", "env = { CHAOS_EXIT_AT_START = \"78\" }"),
        chaos("panicky", "adapters", "env = { CHAOS_PANIC_AFTER_MS = \"300\" }"),
        chaos("victim", "adapters", ""),
    ]
    .concat());
    let d = Daemon::start(&cfg);
    let restarted = |name: &str| {
        wait_for(
            Duration::from_secs(10),
            &format!("{name} restarted"),
            || {
                let s = d.service(name);
                (s["restarts_total"].as_u64() >= Some(1)).then_some(s)
            },
        )
    };
    let settled = |name: &str, state: &str| {
        wait_for(Duration::from_secs(10), &format!("{name} {state}"), || {
            let s = d.service(name);
            (s["state"] == state).then_some(s)
        })
    };
    assert_eq!(restarted("perm")["last_exit"], "exit 3");
    assert_eq!(restarted("trans_bad")["last_exit"], "exit 3");
    assert_eq!(restarted("panicky")["last_exit"], "exit 70");
    let s = settled("trans_ok", "EXITED");
    assert_eq!(
        (s["last_exit"].as_str(), s["restarts_total"].as_u64()),
        (Some("exit 0"), Some(0))
    );
    let s = settled("temp", "EXITED");
    assert_eq!(
        (s["last_exit"].as_str(), s["restarts_total"].as_u64()),
        (Some("exit 3"), Some(0))
    );
    let s = settled("cfg", "FATAL");
    assert_eq!(
        (s["last_exit"].as_str(), s["restarts_total"].as_u64()),
        (Some("exit 78 (configuration error)"), Some(0))
    );
    // Killed by a signal nobody in the supervisor sent: restarted.
    let pid = d.ready_pid("victim");
    signal(pid, libc::SIGKILL);
    d.new_ready_pid("victim", pid);
    assert_eq!(d.service("victim")["last_exit"], "signal 9 (SIGKILL)");
    // The FATAL one stays down, even a while later.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.state("cfg"), "FATAL");
    assert_eq!(d.state("temp"), "EXITED");
}

#[test]
fn strategies_restart_exactly_the_right_pids() {
    let cfg = config(&[
        "[groups.trio]\nstrategy = \"one_for_all\"\norder = 30\nintensity = 10\nperiod_secs = 30\n".to_string(),
        chaos("a", "core", "order = 1"),
        chaos("b", "core", "order = 2"),
        chaos("c", "core", "order = 3"),
        chaos("x", "adapters", "order = 1"),
        chaos("y", "adapters", "order = 2"),
        chaos("p", "trio", "order = 1"),
        chaos("q", "trio", "order = 2"),
    ]
    .concat());
    let d = Daemon::start(&cfg);
    let names = ["a", "b", "c", "x", "y", "p", "q"];
    let pids = |d: &Daemon| -> Vec<u32> { names.iter().map(|n| d.ready_pid(n)).collect() };
    let before = pids(&d);

    // rest_for_one (core): b and everything after it.
    signal(before[1], libc::SIGKILL);
    d.new_ready_pid("b", before[1]);
    d.new_ready_pid("c", before[2]);
    let after = pids(&d);
    assert_eq!(after[0], before[0], "a must keep its pid");
    assert_ne!(after[1], before[1]);
    assert_ne!(after[2], before[2]);
    assert_eq!(&after[3..], &before[3..], "other groups untouched");

    // one_for_one (adapters): only x.
    let before = after;
    signal(before[3], libc::SIGKILL);
    d.new_ready_pid("x", before[3]);
    let after = pids(&d);
    assert_ne!(after[3], before[3]);
    for i in [0, 1, 2, 4, 5, 6] {
        assert_eq!(after[i], before[i], "{} must keep its pid", names[i]);
    }

    // one_for_all (trio): q dies, p restarts too.
    let before = after;
    signal(before[6], libc::SIGKILL);
    d.new_ready_pid("q", before[6]);
    d.new_ready_pid("p", before[5]);
    let after = pids(&d);
    assert_eq!(&after[..5], &before[..5]);
    // Siblings stopped on purpose are not counted as their own failures.
    assert_eq!(d.service("p")["restarts_total"], 0);
    assert_eq!(d.service("q")["restarts_total"], 1);
}

fn crash_until(d: &str, n: u32) -> String {
    format!(
        "env = {{ CHAOS_CRASH_AFTER_MS = \"50\", CHAOS_CRASH_UNTIL_STARTS = \"{n}\", CHAOS_MARK = \"{d}/marks\" }}"
    )
}

#[test]
fn intensity_r_restarts_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let dp = dir.path().display().to_string();
    let cfg = config_with(
        "intensity = 0\n",
        &[
            "[groups.adapters]\nintensity = 3\nperiod_secs = 30\n".to_string(),
            chaos("flaky", "adapters", &crash_until(&dp, 3)),
        ]
        .concat(),
    );
    let d = Daemon::start(&cfg);
    // Three crashes, three restarts: within the limit, the fourth start stays up.
    wait_for(Duration::from_secs(10), "4 starts", || {
        (marks(&dir.path().join("marks")).len() == 4).then_some(())
    });
    let pid = d.ready_pid("flaky");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.ready_pid("flaky"), pid);
    assert_eq!(d.service("flaky")["restarts"], 3);
    assert!(alive(d.pid()));
}

#[test]
fn intensity_r_plus_one_escalates_and_the_supervisor_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let dp = dir.path().display().to_string();
    let cfg = config_with(
        "intensity = 0\n",
        &[
            "[groups.adapters]\nintensity = 3\nperiod_secs = 30\n".to_string(),
            chaos("steady", "core", ""),
            chaos("flaky", "adapters", &crash_until(&dp, 4)),
        ]
        .concat(),
    );
    let mut d = Daemon::start(&cfg);
    let steady = d.ready_pid("steady");
    let st = d.wait_exit(Duration::from_secs(15));
    assert_eq!(exit_code(st), Some(1), "{}", d.log_text());
    // 1 start + 3 restarts; the 4th crash was one too many.
    assert_eq!(marks(&dir.path().join("marks")).len(), 4);
    assert!(d.log_text().contains("restart intensity exceeded"));
    wait_for(Duration::from_secs(5), "children gone", || {
        (!alive(steady)).then_some(())
    });
}

#[test]
fn escalation_restarts_the_group_when_the_top_level_allows() {
    let dir = tempfile::tempdir().unwrap();
    let dp = dir.path().display().to_string();
    let cfg = config(
        &[
            "[groups.adapters]\nintensity = 1\nperiod_secs = 30\n".to_string(),
            chaos("steady", "core", ""),
            chaos("flaky", "adapters", &crash_until(&dp, 2)),
            chaos("sibling", "adapters", "order = 200"),
        ]
        .concat(),
    );
    let d = Daemon::start(&cfg);
    let steady = d.ready_pid("steady");
    let sibling = d.ready_pid("sibling");
    // Two crashes exceed intensity 1: the group is stopped and restarted
    // whole by the top level; the core is untouched.
    wait_for(Duration::from_secs(10), "3 starts", || {
        (marks(&dir.path().join("marks")).len() == 3).then_some(())
    });
    d.new_ready_pid("sibling", sibling);
    d.ready_pid("flaky");
    assert_eq!(d.ready_pid("steady"), steady);
    assert!(d.log_text().contains("restarting group after escalation"));
}

#[test]
fn backoff_spacing_doubles_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("marks");
    let cfg = config(
        &[
            "[groups.adapters]\nintensity = 100\n".to_string(),
            chaos(
                "bouncy",
                "adapters",
                &format!(
                    "env = {{ CHAOS_CRASH_AFTER_MS = \"0\", CHAOS_MARK = \"{}\" }}",
                    mark.display()
                ),
            ),
        ]
        .concat(),
    )
    .replace("backoff_initial_ms = 100", "backoff_initial_ms = 200")
    .replace("backoff_max_ms = 400", "backoff_max_ms = 800")
    .replace("min_unready_backoff_ms = 100", "min_unready_backoff_ms = 0");
    let _d = Daemon::start(&cfg);
    let m = wait_for(Duration::from_secs(15), "6 starts", || {
        let m = marks(&mark);
        (m.len() >= 6).then_some(m)
    });
    let gaps: Vec<u128> = m.windows(2).map(|w| w[1].1 - w[0].1).collect();
    // Each gap is the process's own lifetime (start + crash, a few ms) plus
    // the backoff: 0, 200, 400, 800, 800 (capped).
    let expected = [0u128, 200, 400, 800, 800];
    for (i, (gap, want)) in gaps.iter().zip(expected).enumerate() {
        assert!(
            // The lower bound is exact; the upper leaves a loaded machine
            // room to spawn.
            *gap >= want && *gap < want + 600,
            "gap {i} was {gap} ms, expected about {want} ms (all gaps: {gaps:?})"
        );
    }
}

#[test]
fn readiness_timeout_kills_and_counts_a_failure() {
    let cfg = config(
        &[
            "[groups.adapters]\nintensity = 100\n".to_string(),
            chaos(
                "mute",
                "adapters",
                "start_timeout_secs = 1\nenv = { CHAOS_NEVER_READY = \"1\" }",
            ),
        ]
        .concat(),
    );
    let d = Daemon::start(&cfg);
    let s = wait_for(Duration::from_secs(10), "ready timeout", || {
        let s = d.service("mute");
        (s["restarts_total"].as_u64() >= Some(1)).then_some(s)
    });
    assert!(
        s["last_exit"]
            .as_str()
            .unwrap()
            .starts_with("ready timeout"),
        "{s}"
    );
    assert_ne!(s["state"], "READY");
}

#[test]
fn dependents_start_only_after_their_dependencies_are_ready() {
    let dir = tempfile::tempdir().unwrap();
    let dp = dir.path().display();
    let cfg = config(&[
        chaos("slow", "core", &format!("order = 2\nenv = {{ CHAOS_READY_DELAY_MS = \"600\", CHAOS_MARK = \"{dp}/slow\" }}")),
        chaos("quick", "core", &format!("order = 1\nenv = {{ CHAOS_MARK = \"{dp}/quick\" }}")),
        chaos("user", "adapters", &format!("depends_on = [\"slow\"]\nenv = {{ CHAOS_MARK = \"{dp}/user\" }}")),
    ]
    .concat());
    let d = Daemon::start(&cfg);
    d.ready_pid("user");
    let t = |n: &str| marks(&dir.path().join(n))[0].1;
    // quick (order 1) first, slow after it was ready, user after slow was ready.
    assert!(t("slow") >= t("quick"));
    assert!(
        t("user") >= t("slow") + 600,
        "user started {} ms after slow",
        t("user") - t("slow")
    );
}

#[test]
fn watchdog_catches_a_sigstopped_child_within_three_beats() {
    let cfg = config(
        &[
            "[groups.adapters]\nintensity = 100\n".to_string(),
            chaos("sleepy", "adapters", ""),
        ]
        .concat(),
    );
    let d = Daemon::start(&cfg);
    let pid = d.ready_pid("sleepy");
    let t0 = Instant::now();
    signal(pid, libc::SIGSTOP);
    wait_for(Duration::from_secs(5), "watchdog kill", || {
        (!alive(pid)).then_some(())
    });
    let took = t0.elapsed();
    // Three beats of 200 ms, plus the 50 ms supervisor tick and a beat of
    // slack for the last echo that arrived before the stop; doubled for a
    // loaded machine (still far from the 5 s of the wait).
    assert!(
        took < Duration::from_millis(2000),
        "detected after {took:?}"
    );
    d.new_ready_pid("sleepy", pid);
    assert_eq!(
        d.service("sleepy")["last_exit"],
        "watchdog (signal 9 (SIGKILL))"
    );
}

#[test]
fn orderly_shutdown_in_reverse_order_kills_stubborn_children_and_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let gc = dir.path().join("grandchild.pid");
    let cfg = config(
        &[
            chaos("first", "core", "order = 1"),
            chaos(
                "stubborn",
                "core",
                "order = 2\nshutdown_timeout_secs = 1\nenv = { CHAOS_IGNORE_SIGTERM = \"1\" }",
            ),
            chaos(
                "parent",
                "adapters",
                &format!("env = {{ CHAOS_GRANDCHILD = \"{}\" }}", gc.display()),
            ),
        ]
        .concat(),
    );
    let mut d = Daemon::start(&cfg);
    let pids: Vec<u32> = ["first", "stubborn", "parent"]
        .iter()
        .map(|n| d.ready_pid(n))
        .collect();
    let grandchild: u32 = wait_for(Duration::from_secs(5), "grandchild pid", || {
        std::fs::read_to_string(&gc).ok()?.trim().parse().ok()
    });
    assert!(alive(grandchild));
    let t0 = Instant::now();
    signal(d.pid(), libc::SIGTERM);
    let st = d.wait_exit(Duration::from_secs(15));
    assert_eq!(exit_code(st), Some(0));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "the stubborn child's 1 s timeout was not waited for ({took:?})"
    );
    for p in pids.iter().chain([&grandchild]) {
        wait_for(Duration::from_secs(2), "process gone", || {
            (!alive(*p)).then_some(())
        });
    }
    let log = d.log_text();
    let pos = |n: &str| {
        log.find(&format!("service exited service={n} "))
            .unwrap_or_else(|| panic!("no exit of {n} in log:\n{log}"))
    };
    assert!(
        pos("parent") < pos("stubborn") && pos("stubborn") < pos("first"),
        "not reverse start order:\n{log}"
    );
    assert!(log.contains("did not stop in time; sending SIGKILL"));
}

#[test]
fn sigkill_of_openintentd_leaves_no_child_alive_after_one_second() {
    let cfg = config(
        &[
            chaos("a", "core", ""),
            chaos("b", "core", ""),
            chaos("c", "adapters", "env = { CHAOS_IGNORE_SIGTERM = \"1\" }"),
        ]
        .concat(),
    );
    let mut d = Daemon::start(&cfg);
    let pids: Vec<u32> = ["a", "b", "c"].iter().map(|n| d.ready_pid(n)).collect();
    signal(d.pid(), libc::SIGKILL);
    d.wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    for p in pids {
        assert!(!alive(p), "child {p} survived the supervisor");
    }
}

#[test]
fn ready_reaches_notify_socket_only_after_all_permanent_children() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cfg = config(
        &[
            chaos("quick", "core", ""),
            chaos(
                "slow",
                "adapters",
                "env = { CHAOS_READY_DELAY_MS = \"800\" }",
            ),
            chaos(
                "optional",
                "adapters",
                "restart = \"temporary\"\nenv = { CHAOS_NEVER_READY = \"1\" }",
            ),
        ]
        .concat(),
    );
    let t0 = Instant::now();
    let d = Daemon::start_with(&cfg, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("READY=1 never arrived");
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        seen.push(msg.clone());
        if msg.lines().any(|l| l == "READY=1") {
            break;
        }
    }
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_millis(800),
        "READY=1 after {at:?}, before the slow child could be ready"
    );
    assert_eq!(d.state("quick"), "READY");
    assert_eq!(d.state("slow"), "READY");
    // The temporary child never became ready and did not hold READY back.
    assert_eq!(d.state("optional"), "STARTING");
    assert!(seen.iter().any(|m| m.starts_with("STATUS=")), "{seen:?}");
    drop(d);
    // STOPPING=1 on the way out.
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1")
        {
            stopping = true;
            break;
        }
    }
    assert!(stopping);
}

#[test]
fn invalid_config_exits_78_with_file_line_and_column() {
    let home = tempfile::tempdir().unwrap();
    let cfgs = [
        (
            "[supervisor]\nintensity = 3\nbackoff_jitter = \"lots\"\n",
            ":3:18:",
        ),
        (
            "[services.x]\nkind = \"chaos\"\nrestart = \"sometimes\"\n",
            ":3:11:",
        ),
        ("\n\n[services.x]\nkind = \"teleporter\"\n", ":3:1:"),
        ("[bus\n", ":1:5:"),
    ];
    for (text, loc) in cfgs {
        std::fs::write(home.path().join("config.toml"), text).unwrap();
        let out = std::process::Command::new(OPENINTENTD)
            .arg("--home")
            .arg(home.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{text:?}: {err}");
        let want = format!(
            "invalid configuration: {}{loc}",
            home.path().join("config.toml").display()
        );
        assert!(err.contains(&want), "{text:?}: wanted {want:?} in {err}");
    }
}

#[test]
fn hot_reload_applies_changes_and_survives_a_broken_file() {
    let base = config(&chaos("a", "core", ""));
    let d = Daemon::start(&base);
    let a = d.ready_pid("a");
    let cfg = d.path("config.toml");
    // Add a service: it starts, a keeps running.
    std::fs::write(&cfg, format!("{base}{}", chaos("b", "adapters", ""))).unwrap();
    let b = d.ready_pid("b");
    assert_eq!(d.ready_pid("a"), a);
    assert_eq!(d.status()["supervisor"]["config_generation"], 2);
    // Break the file: refused, shown in status, nothing restarts.
    let broken = format!("{base}{}\n[services.c\n", chaos("b", "adapters", ""));
    std::fs::write(&cfg, &broken).unwrap();
    let line = broken.lines().position(|l| l == "[services.c").unwrap() + 1;
    let err = wait_for(Duration::from_secs(5), "config error in status", || {
        d.status()["supervisor"]["config_error"]
            .as_str()
            .map(str::to_string)
    });
    assert!(
        err.contains(&format!("config.toml:{line}:12: unclosed table")),
        "{err}"
    );
    let human = String::from_utf8(d.oictl(&["status"]).stdout).unwrap();
    assert!(human.contains("config reload failed"), "{human}");
    assert_eq!((d.ready_pid("a"), d.ready_pid("b")), (a, b));
    // A kind this build does not have is refused on reload as at start.
    std::fs::write(
        &cfg,
        format!(
            "{base}{}\n[services.mail]\nkind = \"imap\"\n",
            chaos("b", "adapters", "")
        ),
    )
    .unwrap();
    let err = wait_for(Duration::from_secs(5), "the unknown kind refused", || {
        d.status()["supervisor"]["config_error"]
            .as_str()
            .filter(|e| e.contains("imap"))
            .map(str::to_string)
    });
    assert!(
        err.contains("service 'mail' is of kind 'imap', which this build does not have"),
        "{err}"
    );
    // And a heartbeat that would make the watchdog kill healthy services.
    std::fs::write(
        &cfg,
        format!(
            "{}{}",
            base.replace("heartbeat_interval_ms = 200", "heartbeat_interval_ms = 1"),
            chaos("b", "adapters", "")
        ),
    )
    .unwrap();
    let err = wait_for(Duration::from_secs(5), "the 1 ms heartbeat refused", || {
        d.status()["supervisor"]["config_error"]
            .as_str()
            .filter(|e| e.contains("heartbeat"))
            .map(str::to_string)
    });
    assert!(
        err.contains("bus.heartbeat_interval_ms is 1; it must be between 50 and 60000"),
        "{err}"
    );
    assert_eq!((d.ready_pid("a"), d.ready_pid("b")), (a, b));
    // Change b's environment: b restarts, a does not; the error clears.
    std::fs::write(
        &cfg,
        format!("{base}{}", chaos("b", "adapters", "env = { X = \"1\" }")),
    )
    .unwrap();
    d.new_ready_pid("b", b);
    assert_eq!(d.ready_pid("a"), a);
    assert!(d.status()["supervisor"]["config_error"].is_null());
    // Remove b: it is stopped and leaves the table.
    std::fs::write(&cfg, &base).unwrap();
    wait_for(Duration::from_secs(5), "b removed", || {
        d.status()["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "b")
            .then_some(())
    });
    assert!(!alive(b));
}

#[test]
fn a_notify_socket_nobody_reads_never_stalls_the_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let _sock = UnixDatagram::bind(&sock_path).unwrap(); // never read
    // A service that crashes every 50 ms changes the STATUS= line many
    // times a second: the receive queue fills within a second.
    let cfg = config(
        &[
            "[groups.adapters]\nintensity = 1000\n".to_string(),
            chaos(
                "bouncy",
                "adapters",
                "env = { CHAOS_CRASH_AFTER_MS = \"20\" }",
            ),
            chaos("calm", "core", ""),
        ]
        .concat(),
    )
    .replace("backoff_initial_ms = 100", "backoff_initial_ms = 1")
    .replace("backoff_max_ms = 400", "backoff_max_ms = 1")
    .replace("min_unready_backoff_ms = 100", "min_unready_backoff_ms = 0");
    let d = Daemon::start_with(&cfg, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    wait_for(Duration::from_secs(60), "many restarts", || {
        (d.service("bouncy")["restarts_total"].as_u64() >= Some(200)).then_some(())
    });
    // Still answering, still supervising.
    let calm = d.ready_pid("calm");
    signal(calm, libc::SIGKILL);
    d.new_ready_pid("calm", calm);
}

#[test]
fn a_broken_file_and_a_crash_do_not_take_services_down() {
    // V6: services read the configuration the supervisor runs, never the
    // user's file, so a broken edit plus a kill -9 is no outage.
    let base = memory_config("");
    let d = Daemon::start(&base);
    let memory = d.ready_pid("memory");
    let cfg = d.path("config.toml");
    std::fs::write(&cfg, format!("{base}\n[agent\n")).unwrap();
    wait_for(Duration::from_secs(5), "the broken file refused", || {
        d.status()["supervisor"]["config_error"]
            .as_str()
            .map(|_| ())
    });
    signal(memory, libc::SIGKILL);
    let again = d.new_ready_pid("memory", memory);
    assert_ne!(again, memory);
    assert_eq!(d.state("memory"), "READY");
    // Services never saw the user's file: the copy they read is the
    // running (valid) configuration.
    let effective = std::fs::read_to_string(d.path("run/config.effective.toml")).unwrap();
    assert!(!effective.contains("[agent\n"));
    assert!(
        oi_kernel::config::Config::parse_layers(Some(&effective), std::path::Path::new("x"))
            .is_ok()
    );
}

#[test]
fn a_service_stopped_by_a_config_error_starts_again_once_the_config_is_fixed() {
    // The vault with key_source = "passphrase" and no passphrase exits 78.
    let broken = vault_config("").replace("key_source = \"file\"", "key_source = \"passphrase\"");
    let d = Daemon::start(&broken);
    wait_for(Duration::from_secs(10), "vault FATAL", || {
        (d.try_service("vault")?["state"] == "FATAL").then_some(())
    });
    // Only the [vault] section changes, not the service's own spec.
    std::fs::write(d.path("config.toml"), vault_config("")).unwrap();
    let pid = d.ready_pid("vault");
    assert!(alive(pid));
    assert!(
        d.log_text()
            .contains("starting the service again after its configuration error")
    );
}

/// Lines and audit rows of an idle minute of the shipped config.
#[test]
fn the_shipped_config_idles_a_minute_without_flooding_the_log_or_the_audit() {
    // Nothing but the home: every service the defaults start, with no key
    // and no model (a fresh install).
    let d = Daemon::start("");
    // Every optional service but those waiting for what a user gives: the
    // bot for its token, the mail and calendar adapters for an account.
    const WAITING: [&str; 5] = ["telegram", "email", "calendar", "github", "feishu"];
    for s in OPTIONAL.iter().filter(|s| !WAITING.contains(s)) {
        d.ready_pid(s);
    }
    let audit_rows = || {
        let o = d.oictl(&["audit", "--verify", "--json"]);
        let j: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
        j["rows"].as_u64().unwrap()
    };
    // Settled: what start-up writes is written.
    std::thread::sleep(Duration::from_secs(3));
    let lines0 = d.log_text().lines().count();
    let rows0 = audit_rows();
    std::thread::sleep(Duration::from_secs(60));
    let log = d.log_text();
    let new: Vec<&str> = log.lines().skip(lines0).collect();
    let rows = audit_rows() - rows0;
    eprintln!("an idle minute: {} log lines, {rows} audit rows", new.len());
    // A retention pass and the like, not a failure every few seconds.
    assert!(
        new.len() <= 20,
        "{} lines in an idle minute:\n{}",
        new.len(),
        new.join("\n")
    );
    assert!(rows <= 5, "{rows} audit rows in an idle minute");
    for s in WAITING {
        assert_eq!(d.state(s), "WAITING", "{s}");
    }
}
