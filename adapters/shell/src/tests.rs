//! The shell adapter's tests: commands run for real, under the real sandbox.

use super::*;
use oi_ipc_schema::ErrorCode;
use std::time::Instant;

fn config(f: impl FnOnce(&mut ShellConfig)) -> ShellConfig {
    let mut c = oi_kernel::config::Config::defaults()
        .section::<ShellConfig>()
        .unwrap();
    f(&mut c);
    c
}

fn adapter(c: ShellConfig) -> (tempfile::TempDir, ShellAdapter) {
    let dir = tempfile::tempdir().unwrap();
    let a = ShellAdapter::new(dir.path().to_path_buf(), Vec::new(), c).unwrap();
    (dir, a)
}

async fn exec(
    a: &ShellAdapter,
    intent: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, ServiceError> {
    a.execute(intent, args.to_string().as_bytes()).await
}

fn gone(pid: i32) -> bool {
    // Gone, or a zombie waiting for init to reap it.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
            .unwrap_or(true)
}

/// The processes below this test process whose command line has the
/// argument `marker` (pids inside a command's PID namespace mean
/// nothing out here, so commands are found from outside).
fn running(marker: &str) -> Vec<i32> {
    let me = std::process::id();
    let ppid = |pid: u32| oi_kernel::lineage::parent_of(pid).ok();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .any(|a| a == marker.as_bytes())
        })
        .filter(|pid| {
            let mut cur = *pid;
            (0..16).any(|_| match ppid(cur) {
                Some(p) if p == me => true,
                Some(p) if p > 1 => {
                    cur = p;
                    false
                }
                _ => {
                    cur = 0;
                    false
                }
            }) && cur != 0
        })
        .map(|p| p as i32)
        .filter(|p| !gone(*p))
        .collect()
}

async fn wait_gone(pid: i32) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn runs_a_command_and_reports_the_sandbox() {
    let (dir, a) = adapter(config(|_| {}));
    let v = exec(&a, "agent", json!({"command": "echo 'hello world'"}))
        .await
        .unwrap();
    assert_eq!(v["stdout"], "hello world\n");
    assert_eq!(v["exit_code"], 0);
    let ws = dir.path().join("workspace").canonicalize().unwrap();
    assert_eq!(v["cwd"], ws.display().to_string());
    let sandbox = v["sandbox"].as_str().unwrap();
    match oi_sandbox::landlock::kernel_abi() {
        Ok(abi) if abi >= 6 => assert!(
            sandbox.starts_with(&format!(
                "landlock (ABI {abi}: files, tcp, abstract sockets and signals); "
            )),
            "{sandbox}"
        ),
        Ok(abi) => assert!(
            sandbox.contains("this kernel cannot confine"),
            "{abi}: {sandbox}"
        ),
        Err(why) => assert!(
            sandbox.starts_with(&format!("no landlock: {why}")),
            "{sandbox}"
        ),
    }
    // No runtime directory in this process's environment: nothing to
    // hide, and the result says so.
    assert!(
        sandbox.contains("; no mount namespace: no runtime directory to hide; "),
        "{sandbox}"
    );
    assert!(
        sandbox.ends_with("; pid namespace: nothing it starts outlives it"),
        "{sandbox}"
    );
    let v = exec(&a, "agent", json!({"command": "ls /nonexistent-dir"}))
        .await
        .unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(
        v["stderr"].as_str().unwrap().contains("No such file"),
        "{v}"
    );
}

#[tokio::test]
async fn landlock_keeps_commands_inside_the_roots() {
    if let Err(why) = oi_sandbox::landlock::kernel_abi() {
        // Without Landlock the adapter must say so, which the test
        // above checks; here there is nothing to enforce.
        let (_d, a) = adapter(config(|c| {
            c.landlock = crate::config::LandlockMode::Required
        }));
        let _ = a;
        panic!("this test needs Landlock, which the CI kernel has: {why}");
    }
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cret").unwrap();
    let (dir, a) = adapter(config(|_| {}));
    let target = outside.path().join("new.txt");
    let v = exec(
        &a,
        "agent",
        json!({"command": format!("touch {}", target.display())}),
    )
    .await
    .unwrap();
    assert_ne!(v["exit_code"], 0, "{v}");
    assert!(!target.exists());
    let v = exec(
        &a,
        "agent",
        json!({"command": format!("cat {}", outside.path().join("secret.txt").display())}),
    )
    .await
    .unwrap();
    assert_ne!(v["exit_code"], 0, "{v}");
    assert!(!v["stdout"].as_str().unwrap().contains("s3cret"));
    // Inside the workspace both work.
    let v = exec(&a, "agent", json!({"command": "touch made-here.txt"}))
        .await
        .unwrap();
    assert_eq!(v["exit_code"], 0, "{v}");
    assert!(dir.path().join("workspace/made-here.txt").exists());
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let (dir, a) = adapter(config(|c| {
        c.allow_shell_syntax = true;
        c.allow.push("sh".into());
    }));
    let t = Instant::now();
    let v = exec(
        &a,
        "agent",
        json!({"command": "sleep 30.101 & echo started > bg.txt; sleep 30.102", "timeout_secs": 1}),
    )
    .await
    .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(v["timed_out"], true, "{v}");
    assert_eq!(v["signal"], 9);
    assert!(v["note"].as_str().unwrap().contains("timed out after 1 s"));
    assert!(dir.path().join("workspace/bg.txt").exists());
    let t = Instant::now();
    while !running("30.101").is_empty() || !running("30.102").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "a sleep survived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancelling_the_call_kills_the_command() {
    let (dir, a) = adapter(config(|c| c.allow_shell_syntax = true));
    let a = Arc::new(a);
    let task = {
        let a = a.clone();
        tokio::spawn(async move { exec(&a, "agent", json!({"command": "sleep 30.201"})).await })
    };
    let _ = &dir;
    let t = Instant::now();
    let pid = loop {
        if let Some(p) = running("30.201").first() {
            break *p;
        }
        assert!(!task.is_finished(), "the command ended early");
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    task.abort();
    assert!(wait_gone(pid).await, "command {pid} survived cancellation");
}

#[tokio::test]
async fn environment_is_scrubbed_of_secrets() {
    // SAFETY: this test's own process (nextest runs each test alone).
    unsafe {
        std::env::set_var("OI_TEST_API_KEY", "sk-live-123");
        std::env::set_var("OI_TEST_COLOR", "blue");
    }
    let (_d, a) = adapter(config(|c| {
        c.env_passthrough = vec!["OI_TEST_API_KEY".into(), "OI_TEST_COLOR".into()];
    }));
    let v = exec(&a, "agent", json!({"command": "env"})).await.unwrap();
    let out = v["stdout"].as_str().unwrap();
    assert!(out.contains("OI_TEST_COLOR=blue"), "{out}");
    assert!(out.contains("PATH=/usr/local/bin:/usr/bin:/bin"), "{out}");
    assert!(!out.contains("sk-live-123"), "{out}");
    assert!(!out.contains("OI_TEST_API_KEY"), "{out}");
}

#[tokio::test]
async fn output_is_capped_and_counted() {
    let (_d, a) = adapter(config(|c| c.max_output_bytes = 1000));
    let v = exec(&a, "agent", json!({"command": "seq 1 100000"}))
        .await
        .unwrap();
    let out = v["stdout"].as_str().unwrap();
    assert_eq!(out.len(), 1000);
    assert!(out.starts_with("1\n2\n3\n"));
    // seq 1 100000 prints 588,895 bytes.
    assert_eq!(v["stdout_dropped"], 588_895 - 1000);
}

#[tokio::test]
async fn refusals_are_denied_errors_that_say_why() {
    let (_d, a) = adapter(config(|_| {}));
    for (cmd, why) in [
        ("ls; rm -rf /", "shell syntax is not allowed"),
        ("echo $(cat /etc/passwd)", "command substitution"),
        ("env X=1 rm -rf x", "'rm' is on the deny list"),
        ("/usr/bin/rm x", "'rm' is on the deny list"),
        (
            "python3 -c 'import os'",
            "'python3' is not on the allow list",
        ),
    ] {
        let e = exec(&a, "agent", json!({"command": cmd}))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Denied, "{cmd}");
        assert!(e.message.contains(why), "{cmd}: {}", e.message);
    }
    let e = exec(&a, "agent", json!({"command": "ls", "cwd": "/etc"}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("outside the allowed roots"),
        "{}",
        e.message
    );
    let e = exec(&a, "agent", json!({"command": "ls", "cwd": "../.."}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("leads outside the allowed roots"),
        "{}",
        e.message
    );
    let e = exec(&a, "agent", json!({"cmd": "ls"})).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
}

#[tokio::test]
async fn approval_is_a_grant_the_user_gives_for_that_exact_command_once() {
    let (_d, a) = adapter(config(|c| c.policy = crate::config::ShellPolicy::Approval));
    // No argument approves anything, whoever calls.
    let e = exec(&a, "i-1", json!({"command": "id -u", "approve": true}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("\"approve\" is not an argument"),
        "{}",
        e.message
    );
    let e = exec(&a, "i-1", json!({"command": "id -u"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Denied);
    let id = e
        .message
        .split("; approval ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_string();
    assert!(
        e.message.contains(&format!("oictl approve {id}")),
        "{}",
        e.message
    );
    // An agent (any service) can neither see nor grant approvals.
    let denied = a
        .approvals
        .handle(
            "agent",
            approvals::methods::CHALLENGE,
            json!({"id": id}).to_string().as_bytes(),
        )
        .unwrap_err();
    assert_eq!(denied.code, ErrorCode::Denied);
    // The user's client: a code, typed back.
    let c = a
        .approvals
        .handle(
            "",
            approvals::methods::CHALLENGE,
            json!({"id": id}).to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!(c["approval"]["command"], "id -u");
    let code = c["code"].as_str().unwrap().to_string();
    a.approvals
        .handle(
            "",
            approvals::methods::GRANT,
            json!({"id": id, "code": code, "who": "alice on /dev/pts/1"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    // Another command, or the same one for another intent, still waits.
    assert!(exec(&a, "i-1", json!({"command": "id -g"})).await.is_err());
    assert!(exec(&a, "i-2", json!({"command": "id -u"})).await.is_err());
    let v = exec(&a, "i-1", json!({"command": "id -u"})).await.unwrap();
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["approval"]["approved_by"], "alice on /dev/pts/1");
    // Once.
    assert!(exec(&a, "i-1", json!({"command": "id -u"})).await.is_err());
    // The allow list still runs without any approval.
    assert!(exec(&a, "i-1", json!({"command": "ls"})).await.is_ok());
}

/// What an escaped command tried, as the Python probe below reports it.
const PROBE: &str = r#"
import json, os, socket, sys
runtime, port, abstract, pid, outside = sys.argv[1:6]
out = {}
def attempt(name, f):
    try:
        f()
        out[name] = "ok"
    except OSError as e:
        out[name] = e.strerror or str(e)
def bus():
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(runtime, "bus.sock"))
def tcp():
    s = socket.socket()
    s.settimeout(2)
    s.connect(("127.0.0.1", int(port)))
def bind():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
def abstract_socket():
    s = socket.socket(socket.AF_UNIX)
    s.connect("\0" + abstract)
attempt("bus", bus)
attempt("tcp", tcp)
attempt("bind", bind)
attempt("abstract", abstract_socket)
attempt("signal", lambda: os.kill(int(pid), 0))
attempt("read_outside", lambda: open(outside).read())
print(json.dumps(out))
"#;

/// Runs the probe as a command that got past the policy (denylist mode
/// lets python3 run: the same as any allowlist bypass) and returns what
/// it could do.
async fn probe_escaped(hide: bool, c: impl FnOnce(&mut ShellConfig, u16)) -> serde_json::Value {
    let runtime = tempfile::tempdir().unwrap();
    let bus = std::os::unix::net::UnixListener::bind(runtime.path().join("bus.sock")).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let name = format!("oi-test-{}", std::process::id());
    let abstract_addr = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let abstract_listener = std::os::unix::net::UnixListener::bind_addr(&abstract_addr).unwrap();
    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cret").unwrap();
    if hide {
        // SAFETY: this test's own process (nextest runs each test alone).
        unsafe { std::env::set_var("OPENINTENT_RUNTIME_DIR", runtime.path()) };
    }
    let (dir, a) = adapter(config(|cfg| {
        cfg.policy = crate::config::ShellPolicy::Denylist;
        c(cfg, port);
    }));
    std::fs::write(dir.path().join("workspace/probe.py"), PROBE).unwrap();
    let v = exec(
        &a,
        "agent",
        json!({"command": format!(
            "python3 probe.py {} {port} {name} {} {}",
            runtime.path().display(),
            victim.id(),
            outside.path().join("secret.txt").display()
        )}),
    )
    .await
    .unwrap();
    let _ = victim.kill();
    let _ = victim.wait();
    drop((bus, tcp, abstract_listener));
    assert_eq!(v["exit_code"], 0, "{v}");
    let mut r: serde_json::Value = serde_json::from_str(v["stdout"].as_str().unwrap()).unwrap();
    r["sandbox"] = v["sandbox"].clone();
    r
}

#[tokio::test]
async fn an_escaped_command_reaches_no_socket_process_or_file() {
    let abi = oi_sandbox::landlock::kernel_abi()
        .expect("this test needs Landlock, which the CI kernel has");
    assert!(
        abi >= 6,
        "this test needs Landlock ABI 6 (Linux 6.12), not {abi}"
    );
    let r = probe_escaped(true, |_, _| {}).await;
    let sandbox = r["sandbox"].as_str().unwrap();
    assert!(sandbox.contains("hidden"), "{sandbox}");
    // The bus socket is not there at all in the command's namespace.
    assert_eq!(r["bus"], "No such file or directory", "{r}");
    assert_eq!(r["tcp"], "Permission denied", "{r}");
    assert_eq!(r["bind"], "Permission denied", "{r}");
    assert_eq!(r["abstract"], "Operation not permitted", "{r}");
    // Other processes do not even exist in the command's PID namespace
    // (and Landlock's scope would refuse the signal besides).
    assert_eq!(r["signal"], "No such process", "{r}");
    assert_eq!(r["read_outside"], "Permission denied", "{r}");
}

#[tokio::test]
async fn allowed_ports_are_rules_not_a_blanket_refusal() {
    let r = probe_escaped(true, |c, port| c.allow_connect_ports = vec![port]).await;
    assert_eq!(r["tcp"], "ok", "{r}");
    assert_eq!(r["bind"], "Permission denied", "{r}");
    assert_eq!(r["bus"], "No such file or directory", "{r}");
}

#[tokio::test]
async fn without_the_namespace_landlock_alone_lets_the_bus_socket_through() {
    // Why the namespace exists (and why the broker checks ancestry as
    // well): Landlock does not cover connecting to a socket by path.
    let r = probe_escaped(false, |_, _| {}).await;
    assert!(
        r["sandbox"]
            .as_str()
            .unwrap()
            .contains("no mount namespace"),
        "{r}"
    );
    assert_eq!(r["bus"], "ok", "{r}");
    assert_eq!(r["tcp"], "Permission denied", "{r}");
}

#[tokio::test]
async fn a_relative_program_is_judged_where_it_runs() {
    // The daemon's cwd is / under systemd and launchd: there,
    // usr/bin/ls is the real ls, but the command runs in the workspace.
    std::env::set_current_dir("/").unwrap();
    let (dir, a) = adapter(config(|_| {}));
    let ws = dir.path().join("workspace");
    std::fs::create_dir_all(ws.join("usr/bin")).unwrap();
    std::fs::copy("/bin/sleep", ws.join("usr/bin/ls")).unwrap();
    let e = exec(&a, "agent", json!({"command": "usr/bin/ls 30"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Denied);
    assert!(
        e.message.contains("is not the 'ls' found on PATH"),
        "{}",
        e.message
    );
    // A link in the workspace to the real ls runs the real ls.
    std::fs::create_dir_all(ws.join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/ls", ws.join("bin/ls")).unwrap();
    std::fs::write(ws.join("here.txt"), "").unwrap();
    let v = exec(&a, "agent", json!({"command": "bin/ls here.txt"}))
        .await
        .unwrap();
    assert_eq!(v["stdout"], "here.txt\n", "{v}");
}

#[tokio::test]
async fn root_only_files_stay_unreadable_even_under_a_listed_etc() {
    // As root every file is readable, so the rules themselves must
    // leave out what other users may not read. (CI runs as root.)
    let (_d, a) = adapter(config(|c| {
        c.policy = crate::config::ShellPolicy::Denylist;
        c.read_only_paths.push("/etc".into());
    }));
    let v = exec(&a, "i", json!({"command": "cat /etc/shadow"}))
        .await
        .unwrap();
    assert_ne!(v["exit_code"], 0, "{v}");
    assert!(
        v["stderr"].as_str().unwrap().contains("Permission denied"),
        "{v}"
    );
    let v = exec(&a, "i", json!({"command": "head -c 5 /etc/passwd"}))
        .await
        .unwrap();
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(v["stdout"], "root:", "{v}");
}

#[tokio::test]
async fn every_program_on_the_shipped_list_works_under_the_shipped_sandbox() {
    let (dir, a) = adapter(config(|_| {}));
    let ws = dir.path().join("workspace");
    std::fs::write(ws.join("a.txt"), "b\na\nb\n").unwrap();
    std::fs::write(ws.join("c.txt"), "b\na\n").unwrap();
    // One ordinary use of each, with what it must print.
    let uses: &[(&str, &str)] = &[
        ("ls a.txt", "a.txt"),
        ("cat a.txt", "b\na\nb"),
        ("head -n 1 a.txt", "b"),
        ("tail -n 1 a.txt", "b"),
        ("wc -l a.txt", "3 a.txt"),
        ("grep -c b a.txt", "2"),
        ("find . -name a.txt", "./a.txt"),
        ("sort a.txt", "a\nb\nb"),
        ("uniq c.txt", "b\na"),
        ("cut -c1 a.txt", "b\na\nb"),
        ("tr ab xy", ""),
        ("diff a.txt a.txt", ""),
        ("stat -c %s a.txt", "6"),
        ("file a.txt", "a.txt: ASCII text"),
        ("du -b a.txt", "6\ta.txt"),
        ("date -u -d @0 +%Y", "1970"),
        ("echo hi", "hi"),
        ("printf %s hi", "hi"),
        ("pwd", ""),
        ("uname -s", "Linux"),
        ("whoami", ""),
        ("mkdir -p d/e", ""),
        ("touch t.txt", ""),
        ("cp a.txt a2.txt", ""),
        ("mv a2.txt a3.txt", ""),
        ("basename /x/y.txt", "y.txt"),
        ("dirname /x/y.txt", "/x"),
        ("realpath a.txt", ""),
        ("sleep 0", ""),
        ("true", ""),
        ("env -i LC_ALL=C true", ""),
        ("timeout 5 true", ""),
        ("tee out.txt", ""),
        ("seq 3", "1\n2\n3"),
        ("md5sum a.txt", "a.txt"),
        ("sha256sum a.txt", "a.txt"),
        ("base64 a.txt", "YgphCmIK"),
    ];
    let shipped = oi_kernel::config::Config::defaults()
        .section::<ShellConfig>()
        .unwrap()
        .allow;
    for program in &shipped {
        // `false` fails by design. (df is not shipped: it reads /proc,
        // which the sandbox hides.)
        if program == "false" {
            continue;
        }
        let (line, want) = uses
            .iter()
            .find(|(l, _)| l.split(' ').next() == Some(program.as_str()))
            .unwrap_or_else(|| panic!("no test use for shipped program '{program}'"));
        let v = exec(&a, "i", json!({"command": line})).await.unwrap();
        assert_eq!(v["exit_code"], 0, "{line}: {v}");
        assert!(
            v["stdout"].as_str().unwrap().trim_end().contains(want),
            "{line}: {v}"
        );
    }
    let v = exec(&a, "i", json!({"command": "false"})).await.unwrap();
    assert_eq!(v["exit_code"], 1);
}
