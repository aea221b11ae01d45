//! `oictl` against a real daemon: status matches reality, control commands,
//! logs, autostart, errors, and the rendered service units.

use std::process::Command;
use std::time::Duration;

use oi_llm_router::fake::{FakeProvider, Reply, openai};

use crate::support::*;

#[test]
fn status_json_matches_reality() {
    let d = Daemon::start(&config(
        &[chaos("alpha", "core", ""), chaos("beta", "adapters", "")].concat(),
    ));
    let pid = d.ready_pid("alpha");
    d.ready_pid("beta");
    let s = d.status();
    assert_eq!(s["supervisor"]["pid"], d.pid());
    let names: Vec<&str> = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    let alpha = d.service("alpha");
    // The pid is a live process running exactly this service.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(&args[1..], ["service", "chaos", "--name", "alpha"]);
    // Its parent is the supervisor.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, d.pid());
    assert!(alpha["rss_kb"].as_u64().unwrap() > 500, "{alpha}");
    assert!(
        alpha["heartbeat_age_ms"].as_u64().unwrap() < 1000,
        "{alpha}"
    );
    assert_eq!(alpha["restarts"], 0);
    assert!(alpha["last_exit"].is_null());
    for key in [
        "name",
        "state",
        "pid",
        "uptime_s",
        "restarts",
        "restarts_total",
        "last_exit",
        "heartbeat_age_ms",
        "rss_kb",
    ] {
        assert!(alpha.get(key).is_some(), "missing {key} in {alpha}");
    }
    let table = String::from_utf8(d.oictl(&["status"]).stdout).unwrap();
    let row = table.lines().find(|l| l.starts_with("alpha")).unwrap();
    assert!(
        row.contains("READY") && row.contains(&pid.to_string()),
        "{table}"
    );
}

#[test]
fn stop_start_restart_and_logs() {
    let d = Daemon::start(&config(
        &[chaos("alpha", "core", ""), chaos("beta", "adapters", "")].concat(),
    ));
    let a = d.ready_pid("alpha");
    let b = d.ready_pid("beta");

    let out = d.oictl(&["stop", "beta"]);
    assert!(out.status.success());
    wait_for(Duration::from_secs(5), "beta stopped", || {
        (d.state("beta") == "EXITED").then_some(())
    });
    assert!(!alive(b));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        d.state("beta"),
        "EXITED",
        "a stopped service must stay down"
    );

    assert!(d.oictl(&["start", "beta"]).status.success());
    let b2 = d.new_ready_pid("beta", b);

    assert!(d.oictl(&["restart", "alpha"]).status.success());
    d.new_ready_pid("alpha", a);
    assert_eq!(
        d.service("alpha")["restarts_total"],
        0,
        "a requested restart is not a failure"
    );
    assert_eq!(
        d.ready_pid("beta"),
        b2,
        "one_for_one across groups: beta untouched"
    );

    let out = d.oictl(&["logs", "alpha", "-n", "50"]);
    let logs = String::from_utf8(out.stdout).unwrap();
    assert!(logs.contains("service{service=\"alpha\"}: ready"), "{logs}");

    let out = d.oictl(&["restart", "ghost"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no service named 'ghost' (services: alpha, beta)"),
        "{err}"
    );
}

#[test]
fn logs_follow_streams_new_lines() {
    let d = Daemon::start(&config(&chaos("alpha", "core", "")));
    let a = d.ready_pid("alpha");
    let follow = Command::new(OICTL)
        .arg("--home")
        .arg(d.home.path())
        .arg("--no-autostart")
        .args(["logs", "alpha", "-f", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Time for the follower to connect, and after the restart for the
    // lines to reach it (generous: a loaded machine is slow to start one).
    std::thread::sleep(Duration::from_millis(1000));
    // A restart makes the service log again.
    assert!(d.oictl(&["restart", "alpha"]).status.success());
    d.new_ready_pid("alpha", a);
    std::thread::sleep(Duration::from_millis(1000));
    signal(follow.id(), libc::SIGTERM);
    let out = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("service stopped") && text.contains(": ready"),
        "{text}"
    );
}

#[test]
fn no_daemon_errors_and_autostart() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        config(&chaos("alpha", "core", "")),
    )
    .unwrap();
    let out = Command::new(OICTL)
        .arg("--home")
        .arg(home.path())
        .args(["--no-autostart", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no OpenIntentOS daemon is listening on") && err.contains("autostart is off"),
        "{err}"
    );

    let out = Command::new(OICTL)
        .arg("--home")
        .arg(home.path())
        .args(["status", "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("started it in the background"), "{err}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let daemon = s["supervisor"]["pid"].as_u64().unwrap() as u32;
    assert!(alive(daemon));
    // A second call finds the running daemon and starts nothing.
    let out = Command::new(OICTL)
        .arg("--home")
        .arg(home.path())
        .args(["status"])
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    signal(daemon, libc::SIGTERM);
    wait_for(
        Duration::from_secs(10),
        "autostarted daemon to stop",
        || (!alive(daemon)).then_some(()),
    );
}

#[test]
fn rendered_units_verify_and_parse() {
    let home = tempfile::tempdir().unwrap();
    let render = |args: &[&str]| {
        let out = Command::new(OICTL)
            .arg("--home")
            .arg(home.path())
            .args(["service", "install", "--dry-run"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let exe = std::fs::canonicalize(OPENINTENTD).unwrap();
    // systemd (user unit, since --home is in use there is no system default).
    let text = render(&["--platform", "systemd", "--user"]);
    let unit: String = text
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("$ "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        unit.contains(&format!(
            "ExecStart={} --home {}",
            exe.display(),
            home.path().display()
        )),
        "{unit}"
    );
    assert!(text.contains("$ systemctl --user enable --now openintentd.service"));
    // The comments read as prose once rendered: no path where a placeholder
    // stood ("which replaces /usr/bin/openintentd with the real binary").
    let comments: String = unit.lines().filter(|l| l.starts_with('#')).collect();
    assert!(!comments.contains(&exe.display().to_string()), "{comments}");
    assert!(
        comments.contains("filled in the binary's path"),
        "{comments}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openintentd.service");
    std::fs::write(&file, &unit).unwrap();
    let sa = which("systemd-analyze")
        .expect("systemd-analyze is needed to check the rendered unit (apt-get install systemd; bash .ci/run does)");
    let verify = |path: &std::path::Path| {
        Command::new(&sa)
            .args(["verify", "--man=no"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = verify(&file);
    assert!(
        out.status.success(),
        "systemd-analyze verify refused the rendered unit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a broken unit is refused.
    let broken = dir.path().join("broken.service");
    std::fs::write(
        &broken,
        unit.replace(
            &format!("ExecStart={}", exe.display()),
            "ExecStart=relative/openintentd",
        ),
    )
    .unwrap();
    let out = verify(&broken);
    assert!(
        !out.status.success(),
        "a unit with a relative ExecStart passed systemd-analyze"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("relative/openintentd"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The system unit runs as its own user, created when missing, and its
    // data directory is made theirs; a home under /tmp is warned about.
    let sys = Command::new(OICTL)
        .arg("--home")
        .arg(home.path())
        .args(["service", "install", "--dry-run", "--platform", "systemd"])
        .output()
        .unwrap();
    assert!(sys.status.success(), "{}", crate::support::out(&sys));
    let text = String::from_utf8_lossy(&sys.stdout).into_owned();
    assert!(text.lines().any(|l| l == "User=openintent"), "{text}");
    if nix::unistd::User::from_name("openintent")
        .unwrap()
        .is_none()
    {
        assert!(text.contains("$ useradd --system --user-group"), "{text}");
    }
    assert!(
        text.contains(&format!(
            "$ install -d -m 0700 -o openintent -g openintent {}",
            home.path().display()
        )),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&sys.stderr).contains("PrivateTmp=yes"),
        "{}",
        crate::support::out(&sys)
    );
    let sys_unit: String = text
        .lines()
        .skip_while(|l| !l.starts_with("# /etc/systemd/system/"))
        .skip(1)
        .take_while(|l| !l.starts_with("$ "))
        .map(|l| format!("{l}\n"))
        .collect();
    let sys_file = dir.path().join("system.service");
    std::fs::write(&sys_file, &sys_unit).unwrap();
    let out_sys = verify(&sys_file);
    assert!(
        out_sys.status.success(),
        "systemd-analyze verify refused the system unit: {}",
        String::from_utf8_lossy(&out_sys.stderr)
    );
    // A bad user name is refused, with what a good one looks like.
    let bad = Command::new(OICTL)
        .args([
            "service",
            "install",
            "--dry-run",
            "--platform",
            "systemd",
            "--user-name",
            "Root;x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        crate::support::out(&bad).contains("is not a user name useradd takes"),
        "{}",
        crate::support::out(&bad)
    );
    // launchd: a valid property list with the real paths.
    let text = render(&["--platform", "launchd", "--user"]);
    let plist: String = text
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("$ "))
        .map(|l| format!("{l}\n"))
        .collect();
    let check = "import plistlib,sys; d=plistlib.loads(sys.stdin.buffer.read()); print(d['ProgramArguments'][0]); print(d['KeepAlive']['SuccessfulExit'], d['ProcessType'], d['RunAtLoad'])";
    let mut py = Command::new("python3")
        .args(["-c", check])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), plist.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "plist does not parse:\n{plist}");
    let parsed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(parsed, format!("{}\nFalse Standard True\n", exe.display()));
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(cmd))
        .find(|p| p.exists())
}

#[test]
fn doctor_reports_a_broken_config_with_its_location() {
    let d = Daemon::start(&config(&chaos("alpha", "core", "")));
    d.ready_pid("alpha");
    let o = d.oictl(&["doctor"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let cfg = d.home.path().join("config.toml");
    std::fs::write(&cfg, "[bus]\nmax_frame_bytes = \"big\"\n").unwrap();
    let o = d.oictl(&["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("PROBLEM config: {}:2:19:", cfg.display())),
        "{out}"
    );
    assert!(out.contains("ok      service alpha: READY"), "{out}");
}

#[test]
fn a_single_unknown_word_is_a_typo_not_an_intent() {
    let d = Daemon::start(&config(""));
    for (typo, suggestion) in [
        ("staus", "oictl status"),
        ("stats", "oictl status"),
        ("rm", ""),
    ] {
        let o = d.oictl(&[typo]);
        assert_eq!(o.status.code(), Some(1), "{typo}");
        let text = out(&o);
        assert!(
            text.contains(&format!("'{typo}' is not a command")),
            "{text}"
        );
        if !suggestion.is_empty() {
            assert!(
                text.contains(&format!("did you mean `{suggestion}`")),
                "{text}"
            );
        }
        assert!(text.contains(&format!("`oictl ask {typo}`")), "{text}");
    }
    // Nothing was sent to the agent: it is not even running here, and the
    // audit log has no intent.
    let audit = String::from_utf8_lossy(&d.oictl(&["audit", "--json"]).stdout).into_owned();
    assert_eq!(audit.trim(), "[]", "{audit}");
}

#[test]
fn a_closed_stdout_ends_oictl_quietly() {
    let d = Daemon::start(&config(&chaos("alpha", "core", "")));
    d.ready_pid("alpha");
    for args in [
        &["status"][..],
        &["audit", "-n", "200"][..],
        &["--help"][..],
    ] {
        let mut child = Command::new(OICTL)
            .arg("--home")
            .arg(d.home.path())
            .arg("--no-autostart")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before oictl writes, as `| head -0` would.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        use std::os::unix::process::ExitStatusExt;
        assert!(
            o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}",
            o.status
        );
    }
}

#[test]
fn autostart_with_a_bad_config_says_why_at_once() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        "[bus]\nheartbeat_interval_ms = \"fast\"\n",
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let out = Command::new(OICTL)
        .arg("--home")
        .arg(home.path())
        .args(["status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("openintentd exited at once (exit status: 78)"),
        "{err}"
    );
    assert!(err.contains("config.toml:2:"), "{err}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "{:?}: {err}",
        t0.elapsed()
    );
}

#[test]
fn oictl_shutdown_stops_every_service_then_the_daemon() {
    let mut d = Daemon::start(&config(
        &[chaos("alpha", "core", ""), chaos("beta", "adapters", "")].concat(),
    ));
    let pids = [d.ready_pid("alpha"), d.ready_pid("beta")];
    let o = d.oictl(&["shutdown"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("openintentd stopped"), "{}", out(&o));
    let st = d.wait_exit(Duration::from_secs(10));
    assert_eq!(exit_code(st), Some(0));
    for p in pids {
        assert!(!alive(p), "service {p} outlived the shutdown");
    }
    assert!(d.log_text().contains("orderly shutdown") && d.log_text().contains("oictl shutdown"));
    // Said again, with nothing running: quietly nothing to do.
    let o = d.oictl(&["shutdown"]);
    assert!(
        o.status.success() && out(&o).contains("not running"),
        "{}",
        out(&o)
    );
}

#[test]
fn oictl_logs_openintentd_shows_the_daemons_own_log() {
    // Started by hand (as systemd would), the log is not oictl's to show.
    let d = Daemon::start(&config(""));
    let o = d.oictl(&["logs", "openintentd"]);
    assert!(!o.status.success());
    assert!(out(&o).contains("journalctl -u openintentd"), "{}", out(&o));
    drop(d);
    // Autostarted by oictl, it is in the runtime directory.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), config("")).unwrap();
    let run = |args: &[&str]| {
        Command::new(OICTL)
            .arg("--home")
            .arg(home.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["status"]).status.success());
    let o = run(&["logs", "openintentd", "-n", "50"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("bus broker listening"),
        "{}",
        out(&o)
    );
    assert!(run(&["shutdown"]).status.success());
}

#[test]
fn doctor_counts_a_bot_waiting_for_its_token_as_normal() {
    // A fresh install: the Telegram gateway waits for a token nobody gave.
    let d = Daemon::start(&config_enabling(&["telegram"], "", ""));
    wait_for(Duration::from_secs(10), "telegram WAITING", || {
        (d.state("telegram") == "WAITING").then_some(())
    });
    let o = d.oictl(&["doctor"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("ok      service telegram: WAITING, waiting for"),
        "{text}"
    );
    // Starting it by hand says why it still waits, instead of "starting".
    let o = d.oictl(&["start", "telegram"]);
    let said = out(&o);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains(
            "telegram stays WAITING, waiting for the environment variable TELEGRAM_BOT_TOKEN"
        ),
        "{said}"
    );
    assert!(!said.contains("starting telegram"), "{said}");
}

#[test]
fn doctor_asks_each_model_and_checks_the_disk_and_the_databases() {
    let rt = fake_runtime();
    let good = rt.block_on(FakeProvider::start()).unwrap();
    good.set_default(openai::says("OK"));
    let bad = rt.block_on(FakeProvider::start()).unwrap();
    bad.set_default(Reply::status(
        401,
        &[],
        r#"{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}"#,
    ));
    // A local server that is not running: nothing listens on its port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let local = format!(
        "http://127.0.0.1:{}/v1",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let models = |with_bad: bool| {
        let mut m = model("good", "openai", &good.url("/v1"), "no_key = true");
        m.push_str(&model("local", "openai", &local, "no_key = true"));
        let mut order = vec!["\"good\"", "\"local\""];
        if with_bad {
            m.push_str(&model("bad", "openai", &bad.url("/v1"), "no_key = true"));
            order.insert(1, "\"bad\"");
        }
        format!("{m}[cascade]\norder = [{}]\n", order.join(", "))
    };
    let d = Daemon::start(&config_enabling(
        &["llm-router", "memory"],
        "",
        &models(true),
    ));
    d.ready_pid("llm-router");
    d.ready_pid("memory");
    let o = d.oictl(&["doctor"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("ok      model good: answered in"), "{text}");
    assert!(
        text.contains("PROBLEM model bad: auth: Incorrect API key provided"),
        "{text}"
    );
    assert!(
        text.contains(&format!("ok      model local: nothing answers at {local}")),
        "{text}"
    );
    assert!(text.contains("ok      disk: "), "{text}");
    assert!(text.contains("ok      memory database: intact"), "{text}");
    assert!(text.contains("ok      audit log: chain intact"), "{text}");
    assert_eq!(text.matches("PROBLEM").count(), 1, "{text}");
    // The local alias that refused the connection is unreachable, not
    // available, in `oictl models`.
    let o = d.oictl(&["models"]);
    let table = out(&o);
    let row = table
        .lines()
        .find(|l| l.contains(" local "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("unreachable") && row.contains("connect_failed"),
        "{table}"
    );
    let o = d.oictl(&["models", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let local_json = j["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["alias"] == "local")
        .unwrap()
        .clone();
    assert_eq!(local_json["unreachable"], true, "{local_json}");
    assert_eq!(local_json["available"], false, "{local_json}");

    // Without the bad key nothing is wrong: exit 0.
    std::fs::write(
        d.path("config.toml"),
        config_enabling(&["llm-router", "memory"], "", &models(false)),
    )
    .unwrap();
    wait_for(Duration::from_secs(10), "the router to reload", || {
        d.log_text().contains("models reloaded").then_some(())
    });
    let o = d.oictl(&["doctor"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
}

#[test]
fn chat_on_a_terminal_edits_lines_and_keeps_a_private_history() {
    use std::io::{Read, Write};
    let d = Daemon::start(&config_enabling(&["llm-router", "agent"], "", ""));
    d.ready_pid("agent");
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = pty.slave;
    let mut child = Command::new(OICTL)
        .arg("--home")
        .arg(d.path(""))
        .args(["--no-autostart", "chat"])
        .env("TERM", "xterm")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    // What the terminal shows, read as it comes (EIO once oictl is gone).
    let shown = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let shown = shown.clone();
        let mut m = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = m.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    // Keys are typed only once the prompt after the `n`-th help text is
    // shown: typed earlier, the terminal is not in the editor's mode yet.
    let type_after = |helps: usize, keys: &[u8], master: &mut std::fs::File| {
        wait_for(Duration::from_secs(20), "the prompt", || {
            let t = shown.lock().unwrap().clone();
            let after = match t.rmatch_indices("Anything else").next() {
                Some((i, _)) if t.matches("Anything else").count() == helps => &t[i..],
                None if helps == 0 => &t[..],
                _ => return None,
            };
            after.contains("> ").then_some(())
        });
        master.write_all(keys).unwrap();
    };
    type_after(0, b"/help\r", &mut master);
    // Up arrow: the last line again, from the history.
    type_after(1, b"\x1b[A\r", &mut master);
    type_after(2, b"\x04", &mut master);
    let status = wait_for(Duration::from_secs(10), "oictl chat to end", || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "{}", shown.lock().unwrap());
    drop(master);
    let _ = reader.join();
    let text = shown.lock().unwrap().clone();
    // /help answered twice: the arrow key recalled the line instead of
    // typing "^[[A".
    assert_eq!(text.matches("Anything else").count(), 2, "{text}");
    assert!(!text.contains("^[[A"), "{text}");
    let history = d.path("data/chat_history");
    let kept = std::fs::read_to_string(&history).unwrap();
    assert!(kept.lines().any(|l| l == "/help"), "{kept}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&history).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "history mode {mode:o}");
}
