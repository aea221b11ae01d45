//! The sandbox as a boundary, attacked end to end with the real daemon: a
//! command the model runs tries to act as the user on the bus, services'
//! environments are read for each other's secrets, and an adapter is
//! killed under a command that double-forks and ignores SIGTERM.

use std::time::Duration;

use oi_ipc_schema::frame::Frame;
use oi_ipc_schema::{Hello, PROTOCOL_VERSION};
use oi_llm_router::fake::{FakeProvider, openai};
use serde_json::{Value, json};

use crate::support::*;

const SECRET: &str = "ghp_e2e-sandbox-DO-NOT-LEAK-41c9";

/// A bus client as a model would write it: connects to the socket it is
/// given, says Hello as a plain client (with its own pid patched into a
/// real Hello frame), and prints what the broker answered. Inside the
/// command's PID namespace its own pid is 1; the broker's refusal names
/// the real one, so it tries once more with that.
fn bus_client() -> String {
    let marker = 0xA1B2_C3D4u32;
    let hello = Frame::new(
        1,
        &Hello {
            service: None,
            pid: marker,
            protocol_version: PROTOCOL_VERSION,
            build_id: "model-written".into(),
        },
    )
    .unwrap()
    .to_bytes();
    let needle = marker.to_le_bytes();
    let at: Vec<usize> = (0..hello.len() - 3)
        .filter(|&i| hello[i..i + 4] == needle)
        .collect();
    assert_eq!(at.len(), 1, "the pid must appear once in the Hello frame");
    let hex: String = hello.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "import os, re, socket, sys\n\
         t = bytes.fromhex('{hex}')\n\
         pid = os.getpid()\n\
         for attempt in range(2):\n\
         \x20   hello = t[:{at}] + pid.to_bytes(4, 'little') + t[{at} + 4:]\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   try:\n\
         \x20       s.connect(sys.argv[1])\n\
         \x20   except OSError as e:\n\
         \x20       print('connect failed:', e.strerror)\n\
         \x20       sys.exit(0)\n\
         \x20   s.sendall(hello)\n\
         \x20   s.settimeout(5)\n\
         \x20   data = s.recv(65536)\n\
         \x20   text = data[16:].decode('utf-8', 'replace')\n\
         \x20   print('attempt', attempt, 'pid', pid, 'kind', int.from_bytes(data[6:8], 'little'), text)\n\
         \x20   m = re.search(r'socket peer is pid (\\d+)', text)\n\
         \x20   if not m:\n\
         \x20       break\n\
         \x20   pid = int(m.group(1))\n",
        at = at[0]
    )
}

#[test]
fn a_command_the_model_runs_cannot_act_as_the_user_on_the_bus() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    let socket = "run/bus.sock";
    // The shell in denylist mode: python3 runs, as it would after any
    // allowlist bypass. The boundary must hold anyway.
    let cfg = config_enabling(
        &["vault", "llm-router", "agent", "fs", "shell"],
        "",
        &format!(
            "{}[cascade]\norder = [\"fake\"]\n\n[vault]\nkey_source = \"file\"\n\n[shell]\npolicy = \"denylist\"\n",
            model("fake", "openai", &fake.url("/v1"), "no_key = true")
        ),
    );
    let d = Daemon::start(&cfg);
    for s in ["vault", "llm-router", "agent", "fs", "shell"] {
        d.ready_pid(s);
    }
    let o = oictl_input(
        &d,
        &["vault", "set", "github-token"],
        format!("{SECRET}\n").as_bytes(),
    );
    assert!(o.status.success(), "{}", out(&o));
    let bus = d.path(socket);
    // Say the user once linked the socket into the workspace: the
    // namespace cannot hide that one, so the broker must refuse it.
    let ws = d.path("data/workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::hard_link(&bus, ws.join("bus-link.sock")).unwrap();
    fake.push([
        calls(&[(
            "c1",
            "fs_write_file",
            json!({"path": "client.py", "content": bus_client()}),
        )]),
        calls(&[(
            "c2",
            "shell_execute",
            json!({"command": format!("python3 client.py {}", bus.display())}),
        )]),
        calls(&[(
            "c3",
            "shell_execute",
            json!({"command": "python3 client.py bus-link.sock"}),
        )]),
        openai::says("I could not reach the vault."),
    ]);
    let o = d.oictl(&["ask", "--json", "read my github token from the vault"]);
    assert!(o.status.success(), "{}", out(&o));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4, "{}", out(&o));
    let results = tool_messages(&reqs[3].body);
    // In the command's mount namespace the socket does not exist.
    assert!(
        results[1].contains("connect failed: No such file or directory"),
        "{}",
        results[1]
    );
    // Through the link it connects, and the broker refuses it: it
    // descends from the shell service.
    let shell_pid = d.ready_pid("shell");
    assert!(
        results[2].contains(&format!("was started by service pid {shell_pid}")),
        "{}",
        results[2]
    );
    for r in &results {
        assert!(!r.contains(SECRET), "{r}");
    }
    // The vault served nobody the token: its audit has the user's set and
    // nothing else for it (the router's look-ups of provider keys aside).
    let audit = sqlite_rows(
        &d.path("data/vault/vault.db"),
        "SELECT caller, action, secret, outcome FROM audit ORDER BY id",
    );
    let token_rows: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("github-token"))
        .collect();
    assert_eq!(token_rows, ["oictl|set|github-token|ok"], "{audit}");
    assert!(
        !audit.lines().any(|l| l.starts_with("oictl|get")),
        "{audit}"
    );
    assert!(d.log_text().contains("refusing bus connection"));
}

/// The environment of a process, as NAME=value strings.
fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[test]
fn each_service_sees_only_the_secrets_bound_for_it() {
    const PASSPHRASE: &str = "correct-horse-e2e-7731";
    const KEY: &str = "sk-e2e-router-only-5521";
    let cfg = config_enabling(
        &["vault", "memory", "llm-router", "fs", "shell"],
        "",
        &format!(
            "{}[cascade]\norder = [\"keyed\"]\n\n[vault]\nkey_source = \"passphrase\"\n",
            model(
                "keyed",
                "openai",
                "http://127.0.0.1:9/v1",
                "api_key_env = \"OI_E2E_MODEL_KEY\""
            )
        ),
    );
    let d = Daemon::start_with(
        &cfg,
        &[
            ("OPENINTENT_VAULT_PASSPHRASE", PASSPHRASE),
            ("OI_E2E_MODEL_KEY", KEY),
            ("OI_E2E_UNRELATED_TOKEN", "tok-e2e-nobody-needs-it"),
        ],
    );
    let mut seen = Vec::new();
    for s in ["vault", "memory", "llm-router", "fs", "shell"] {
        let pid = d.ready_pid(s);
        let env = environ(pid);
        let has = |v: &str| env.iter().any(|e| e.contains(v));
        // Only the vault is handed the passphrase, and it wipes the value
        // from its own environment block at start, as openintentd does.
        assert_eq!(
            has("OPENINTENT_VAULT_PASSPHRASE="),
            s == "vault",
            "{s}: {env:?}"
        );
        assert!(!has(PASSPHRASE), "{s}: {env:?}");
        assert_eq!(has(KEY), s == "llm-router", "{s}: {env:?}");
        assert!(!has("tok-e2e-nobody-needs-it"), "{s}: {env:?}");
        assert!(
            env.iter().any(|e| e.starts_with("OPENINTENT_BUS_SOCKET=")),
            "{s}"
        );
        seen.push(s);
    }
    assert_eq!(seen.len(), 5);
    // openintentd itself no longer holds the passphrase in its
    // environment block (it keeps it in memory for the vault's restarts).
    let own = environ(d.pid());
    assert!(!own.iter().any(|e| e.contains(PASSPHRASE)), "{own:?}");
    // The vault opened with it (key_source = "passphrase" has no other
    // key), and opens again after a restart with the one openintentd keeps.
    let o = oictl_input(&d, &["vault", "set", "probe"], b"v1\n");
    assert!(o.status.success(), "{}", out(&o));
    let old = d.ready_pid("vault");
    signal(old, libc::SIGKILL);
    d.new_ready_pid("vault", old);
    let o = d.oictl(&["vault", "get", "probe"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "v1\n", "{}", out(&o));
}

/// A command that ignores SIGTERM and forks a grandchild in a session of
/// its own, which ignores SIGTERM too; each ends as a `sleep` with a
/// duration of its own, so the test finds them from outside (pids inside
/// the command's PID namespace mean nothing out here). With `orphan`, the
/// middle process exits at once (a double fork).
const FORKER: &str = r#"
import os, signal, sys
tag = sys.argv[2]
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", tag + "3"])
    if sys.argv[1] == "orphan":
        os._exit(0)
    os.execvp("sleep", ["sleep", tag + "2"])
os.execvp("sleep", ["sleep", tag + "1"])
"#;

/// Live processes below `ancestor` whose arguments include `arg`.
fn below(ancestor: u32, arg: &str) -> Vec<u32> {
    let ppid = |pid: u32| oi_kernel::lineage::parent_of(pid).ok();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .any(|a| a == arg.as_bytes())
                && alive(*pid)
        })
        .filter(|pid| {
            let mut cur = *pid;
            for _ in 0..16 {
                match ppid(cur) {
                    Some(p) if p == ancestor => return true,
                    Some(p) if p > 1 => cur = p,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

#[test]
fn nothing_a_command_starts_outlives_it_its_adapter_or_openintentd() {
    let cfg = config_enabling(
        &["shell"],
        "",
        "[shell]\npolicy = \"denylist\"\nmax_timeout_secs = 600\n",
    );
    let mut d = Daemon::start(&cfg);
    let shell = d.ready_pid("shell");
    let sandbox = tool_json(&d, json!({"command": "true"}))["sandbox"].to_string();
    assert!(sandbox.contains("pid namespace"), "{sandbox}");
    let ws = d.path("data/workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("forker.py"), FORKER).unwrap();
    let run = |mode: &str, tag: &str, timeout: u32| {
        let args =
            json!({"command": format!("python3 forker.py {mode} {tag}"), "timeout_secs": timeout});
        spawn_oictl(&d, &["tool", "shell_execute", &args.to_string()])
    };
    let all = |root: u32, tag: &str| -> Vec<u32> {
        ["1", "2", "3"]
            .iter()
            .flat_map(|n| below(root, &format!("{tag}{n}")))
            .collect()
    };

    // A double fork: the grandchild is orphaned inside the command's
    // namespace, and dies with the command when its time is up.
    let mut call = run("orphan", "301.", 2);
    wait_for(
        Duration::from_secs(10),
        "the command and its grandchild",
        || (all(d.pid(), "301.").len() == 2).then_some(()),
    );
    let _ = call.wait();
    wait_for(
        Duration::from_secs(5),
        "both gone after the timeout",
        || all(d.pid(), "301.").is_empty().then_some(()),
    );

    // kill -9 of the adapter under a command, a middle process and a
    // grandchild, all ignoring SIGTERM, two in another session.
    let mut call = run("stay", "302.", 600);
    wait_for(Duration::from_secs(10), "three processes", || {
        (all(d.pid(), "302.").len() == 3).then_some(())
    });
    signal(shell, libc::SIGKILL);
    wait_for(
        Duration::from_secs(10),
        "everything the adapter ran to die",
        || {
            below(1, "302.1")
                .is_empty()
                .then_some(())
                .filter(|_| below(1, "302.2").is_empty() && below(1, "302.3").is_empty())
        },
    );
    let _ = call.kill();
    let _ = call.wait();
    d.new_ready_pid("shell", shell);

    // kill -9 of openintentd itself: nothing is left anywhere.
    let mut call = run("stay", "303.", 600);
    wait_for(Duration::from_secs(10), "three processes", || {
        (all(d.pid(), "303.").len() == 3).then_some(())
    });
    signal(d.pid(), libc::SIGKILL);
    d.wait_exit(Duration::from_secs(5));
    wait_for(
        Duration::from_secs(10),
        "nothing left after openintentd died",
        || {
            ["303.1", "303.2", "303.3"]
                .iter()
                .all(|t| below(1, t).is_empty())
                .then_some(())
        },
    );
    let _ = call.kill();
    let _ = call.wait();
}

#[test]
fn what_a_dead_service_left_in_another_session_is_killed_and_reaped() {
    let marker = tempfile::NamedTempFile::new().unwrap();
    let cfg = config(&chaos(
        "leaky",
        "adapters",
        &format!(
            "env = {{ CHAOS_ESCAPEE = \"{}\" }}",
            marker.path().display()
        ),
    ));
    let d = Daemon::start(&cfg);
    let leaky = d.ready_pid("leaky");
    let escapee: u32 = wait_for(Duration::from_secs(5), "the escapee's pid", || {
        std::fs::read_to_string(marker.path())
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    assert!(alive(escapee));
    signal(leaky, libc::SIGKILL);
    // Its session is its own, so the group kill missed it; reparented to
    // openintentd (a subreaper), it is killed and reaped.
    wait_for(
        Duration::from_secs(5),
        "the escapee killed and reaped",
        || (!std::path::Path::new(&format!("/proc/{escapee}")).exists()).then_some(()),
    );
    assert!(
        d.log_text()
            .contains("killed a process a service left behind")
    );
    d.new_ready_pid("leaky", leaky);
}

fn tool_json(d: &Daemon, args: Value) -> Value {
    let o = d.oictl(&["tool", "shell_execute", &args.to_string()]);
    assert!(o.status.success(), "{}", out(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Runs `oictl approve <id>` on a pseudo-terminal, as a person would, and
/// types back the code it shows (or `answer`, if given).
fn approve_at_a_terminal(d: &Daemon, id: &str, answer: Option<&str>) -> (i32, String) {
    let script = r#"
import os, pty, re, sys
oictl, home, id, answer = sys.argv[1:5]
pid, fd = pty.fork()
if pid == 0:
    os.execv(oictl, [oictl, "--home", home, "--no-autostart", "approve", id])
buf = b""
while b"to approve it" not in buf:
    chunk = os.read(fd, 1024)
    if not chunk:
        break
    buf += chunk
m = re.search(rb"Type (\d{6})", buf)
typed = m.group(1) if answer == "-" and m else answer.encode()
os.write(fd, typed + b"\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    buf += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(buf.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", script, OICTL])
        .arg(d.home.path())
        .arg(id)
        .arg(answer.unwrap_or("-"))
        .output()
        .expect("python3 drives the terminal (bash .ci/run installs it)");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn a_held_back_command_runs_only_after_a_person_approves_it_at_a_terminal() {
    let cfg = config_enabling(&["shell"], "", "[shell]\npolicy = \"approval\"\n");
    let d = Daemon::start(&cfg);
    d.ready_pid("shell");
    let call = |args: Value| d.oictl(&["tool", "shell_execute", &args.to_string()]);
    // The flag of old approves nothing.
    let o = call(json!({"command": "id -u", "approve": true}));
    assert!(
        out(&o).contains("\"approve\" is not an argument"),
        "{}",
        out(&o)
    );
    let o = call(json!({"command": "id -u"}));
    assert!(!o.status.success());
    let msg = out(&o);
    let id = msg
        .split("; approval ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no approval id in: {msg}"))
        .to_string();
    let list = out(&d.oictl(&["approve"]));
    assert!(
        list.contains(&id) && list.contains("command: id -u"),
        "{list}"
    );
    // Without a terminal, nothing can approve.
    let o = d.oictl(&["approve", &id]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("approving needs a terminal"),
        "{}",
        out(&o)
    );
    // A wrong code refuses it.
    let (code, text) = approve_at_a_terminal(&d, &id, Some("000000x"));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("refused; nothing ran"), "{text}");
    assert!(!call(json!({"command": "id -u"})).status.success());
    // Asked again, shown, typed back: it runs once.
    let o = call(json!({"command": "id -u"}));
    let msg = out(&o);
    let id = msg
        .split("; approval ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_string();
    let (code, text) = approve_at_a_terminal(&d, &id, None);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("command: id -u") && text.contains("approved"),
        "{text}"
    );
    let o = call(json!({"command": "id -u"}));
    assert!(o.status.success(), "{}", out(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 0);
    let by = v["approval"]["approved_by"].as_str().unwrap();
    assert!(by.contains("(uid ") && by.contains(" on /dev/pts/"), "{by}");
    assert!(
        !call(json!({"command": "id -u"})).status.success(),
        "once only"
    );
    // The audit log says who approved, how, and what ran.
    let audit =
        String::from_utf8_lossy(&d.oictl(&["audit", "--json", "-n", "50"]).stdout).into_owned();
    assert!(audit.contains("approval:shell_execute"), "{audit}");
    assert!(
        audit.contains("a one-time code typed at a terminal"),
        "{audit}"
    );
    assert!(audit.contains(&format!("ran: approval {id}")), "{audit}");
}
