//! The tool adapters as supervised processes, called through the bus with
//! `oictl tool`: filesystem, shell, web and HTTP, against local servers.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;
use crate::webserver::WebServer;

fn adapters(on: &[&str], extra: &str) -> Daemon {
    let d = Daemon::start(&config_enabling(on, "", extra));
    for s in on {
        d.ready_pid(s);
    }
    d
}

#[test]
fn filesystem_tools_stay_inside_the_workspace() {
    let d = adapters(&["fs"], "");
    let o = d.oictl(&["tools", "--json"]);
    let tools: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["fs_list_dir", "fs_read_file", "fs_search", "fs_write_file"]
    );
    assert_eq!(tools[1]["service"], "fs");
    assert_eq!(tools[1]["parameters"]["required"], json!(["path"]));
    let e = tool(&d, "no_such_tool", json!({})).unwrap_err();
    assert!(
        e.contains("no ready service offers a tool named 'no_such_tool'"),
        "{e}"
    );
    let ws = d.path("data/workspace");
    let w = tool(
        &d,
        "fs_write_file",
        json!({"path": "reports/today.md", "content": "# Report\nall good\n"}),
    )
    .unwrap();
    assert_eq!(w["bytes"], 18);
    assert_eq!(w["created"], true);
    assert_eq!(
        std::fs::read_to_string(ws.join("reports/today.md")).unwrap(),
        "# Report\nall good\n"
    );
    let r = tool(&d, "fs_read_file", json!({"path": "reports/today.md"})).unwrap();
    assert_eq!(r["content"], "# Report\nall good\n");
    let l = tool(&d, "fs_list_dir", json!({})).unwrap();
    assert_eq!(l["entries"][0]["name"], "reports");
    assert_eq!(l["entries"][0]["type"], "dir");
    let s = tool(&d, "fs_search", json!({"content": "ALL GOOD"})).unwrap();
    assert_eq!(s["results"][0]["path"], "reports/today.md");
    assert_eq!(s["results"][0]["line"], 2);
    let s = tool(&d, "fs_search", json!({"name": "*.MD"})).unwrap();
    assert_eq!(s["results"].as_array().unwrap().len(), 1);

    // Escapes, each refused with what was wrong.
    std::fs::write(d.path("outside.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(d.path("outside.txt"), ws.join("link")).unwrap();
    for (args, why) in [
        (
            json!({"path": "../outside.txt"}),
            "leads outside the allowed roots",
        ),
        (
            json!({"path": "/etc/passwd"}),
            "is outside the allowed roots",
        ),
        (json!({"path": "link"}), "leads outside the allowed roots"),
        (
            json!({"path": "reports/../../outside.txt"}),
            "leads outside the allowed roots",
        ),
    ] {
        let e = tool(&d, "fs_read_file", args.clone()).unwrap_err();
        assert!(e.contains(why) && e.contains("denied"), "{args}: {e}");
        assert!(!e.contains("secret"));
    }
    // Writing through the symlink replaces the link, never the file outside.
    tool(
        &d,
        "fs_write_file",
        json!({"path": "link", "content": "new"}),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(d.path("outside.txt")).unwrap(),
        "secret"
    );
    assert!(
        !std::fs::symlink_metadata(ws.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let e = tool(
        &d,
        "fs_write_file",
        json!({"path": "../evil.txt", "content": "x"}),
    )
    .unwrap_err();
    assert!(e.contains("leads outside"), "{e}");
    assert!(!d.path("evil.txt").exists());
    let e = tool(&d, "fs_read_file", json!({"path": 7})).unwrap_err();
    assert!(
        e.contains(
            "fs_read_file failed (bad_request): invalid arguments: invalid type: integer `7`"
        ),
        "{e}"
    );
}

#[test]
fn large_reads_are_cut_on_a_character_and_continue_at_next_offset() {
    let d = adapters(&["fs"], "");
    // 16383 ASCII bytes, then a 3-byte CJK character across the 16 KiB line,
    // then an emoji and more text.
    let text = format!("{}日本😀{}", "a".repeat(16_383), "z".repeat(20_000));
    std::fs::write(d.path("data/workspace/big.txt"), &text).unwrap();
    std::fs::write(
        d.path("data/workspace/pic.png"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
    )
    .unwrap();
    let r = tool(&d, "fs_read_file", json!({"path": "big.txt"})).unwrap();
    let first = r["content"].as_str().unwrap();
    assert_eq!(
        first.len(),
        16_383,
        "the cut character is left for the next read"
    );
    assert_eq!(r["truncated"], true);
    assert_eq!(r["next_offset"], 16_383);
    assert!(
        r["note"]
            .as_str()
            .unwrap()
            .contains("read further with offset=16383"),
        "{r}"
    );
    let mut all = first.to_string();
    let mut next = r["next_offset"].as_u64();
    while let Some(off) = next {
        let r = tool(
            &d,
            "fs_read_file",
            json!({"path": "big.txt", "offset": off}),
        )
        .unwrap();
        all.push_str(r["content"].as_str().unwrap());
        next = r["next_offset"].as_u64();
    }
    assert_eq!(all, text);
    // An offset inside a character starts at the next one.
    let r = tool(
        &d,
        "fs_read_file",
        json!({"path": "big.txt", "offset": 16_384}),
    )
    .unwrap();
    assert!(
        r["content"].as_str().unwrap().starts_with("本😀"),
        "{}",
        &r["content"].as_str().unwrap()[..8]
    );
    let r = tool(&d, "fs_read_file", json!({"path": "pic.png"})).unwrap();
    assert!(r.get("content").is_none());
    assert!(r["note"].as_str().unwrap().contains("is PNG image"), "{r}");
}

#[test]
fn shell_commands_run_confined_and_refusals_say_why() {
    let d = adapters(&["shell"], "");
    let r = tool(&d, "shell_execute", json!({"command": "echo 'hi there'"})).unwrap();
    assert_eq!(r["stdout"], "hi there\n");
    assert_eq!(r["exit_code"], 0);
    assert!(
        r["sandbox"].as_str().unwrap().starts_with("landlock (ABI"),
        "CI kernels have Landlock: {r}"
    );
    for (cmd, why) in [
        ("ls; rm -rf /", "the command separator ; at column 3"),
        ("ls $(rm -rf x)", "command substitution"),
        ("env X=1 rm x", "'rm' is on the deny list"),
        ("/bin/rm x", "'rm' is on the deny list"),
    ] {
        let e = tool(&d, "shell_execute", json!({"command": cmd})).unwrap_err();
        assert!(e.contains(why) && e.contains("denied"), "{cmd}: {e}");
    }
    let t = Instant::now();
    let r = tool(
        &d,
        "shell_execute",
        json!({"command": "sleep 20", "timeout_secs": 1}),
    )
    .unwrap();
    assert_eq!(r["timed_out"], true);
    assert!(t.elapsed() < Duration::from_secs(10));
}

fn web_config(port_extra: &str) -> String {
    format!(
        "[web]\nallow_addresses = [\"127.0.0.1\"]\ntimeout_secs = 2\nmax_redirects = 3\nmax_response_bytes = 1048576\n{port_extra}"
    )
}

#[test]
fn web_search_and_fetch_against_local_servers() {
    let web = WebServer::start();
    let d = adapters(
        &["web"],
        &web_config(&format!("search_url = \"{}\"\n", web.url("/html/"))),
    );
    let r = tool(&d, "web_search", json!({"query": "rust async runtime"})).unwrap();
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{r}");
    assert_eq!(results[0]["url"], "https://tokio.rs/");
    assert_eq!(results[0]["title"], "Tokio - An asynchronous Rust runtime");
    assert!(web.seen("GET /html/?q=rust+async+runtime"));
    let again = tool(&d, "web_search", json!({"query": "rust async runtime"})).unwrap();
    assert_eq!(again["cached"], true);

    let r = tool(&d, "web_fetch", json!({"url": web.url("/latin1")})).unwrap();
    assert_eq!(r["title"], "Café");
    assert!(
        r["text"]
            .as_str()
            .unwrap()
            .contains("Crème brûlée à la carte"),
        "{r}"
    );
    let r = tool(&d, "web_fetch", json!({"url": web.url("/sjis")})).unwrap();
    assert_eq!(
        (r["title"].as_str(), r["charset"].as_str()),
        (Some("日本"), Some("Shift_JIS"))
    );
    assert!(
        r["text"].as_str().unwrap().contains("日本語のページ"),
        "{r}"
    );
    let r = tool(&d, "web_fetch", json!({"url": web.url("/chain/3")})).unwrap();
    assert_eq!(r["final_url"], web.url("/chain/0"));
    assert_eq!(r["title"], "End of chain");
    let e = tool(&d, "web_fetch", json!({"url": web.url("/chain/4")})).unwrap_err();
    assert!(e.contains("more than 3 redirects"), "{e}");
    let r = tool(&d, "web_fetch", json!({"url": web.url("/huge")})).unwrap();
    assert_eq!(r["truncated"], true);
    assert!(
        r["note"].as_str().unwrap().contains("max_response_bytes"),
        "{r}"
    );
    let t = Instant::now();
    let e = tool(&d, "web_fetch", json!({"url": web.url("/slow")})).unwrap_err();
    assert!(e.contains("timeout"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_ssrf_guard_refuses_private_targets_directly_and_on_redirect() {
    let web = WebServer::start();
    let d = adapters(&["web", "http"], &web_config(""));
    for target in [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2/",
        "http://[::1]/",
        "http://167772161/",
    ] {
        for t in ["web_fetch", "http_request"] {
            let e = tool(&d, t, json!({"url": target})).unwrap_err();
            assert!(
                e.contains("refused by the SSRF guard") && e.contains("denied"),
                "{t} {target}: {e}"
            );
        }
        let e = tool(
            &d,
            "web_fetch",
            json!({"url": web.url(&format!("/to?u={target}"))}),
        )
        .unwrap_err();
        assert!(e.contains("redirect refused"), "redirect to {target}: {e}");
    }
    let e = tool(&d, "web_fetch", json!({"url": "file:///etc/passwd"})).unwrap_err();
    assert!(e.contains("only http and https"), "{e}");
    // A name is checked on the address it resolves to: localhost is
    // 127.0.0.1 (allowed here) and ::1 (not), so only 127.0.0.1 is used.
    let r = tool(&d, "web_fetch", json!({"url": web.url("/to-localhost")})).unwrap();
    assert_eq!(r["title"], "End of chain");
}

#[test]
fn http_request_injects_a_vault_secret_by_name_and_never_shows_it() {
    const TOKEN: &str = "ghp_e2eSecretValue123456";
    let web = WebServer::start();
    let d = adapters(
        &["vault", "http"],
        &format!("[vault]\nkey_source = \"file\"\n{}", web_config("")),
    );
    let o = oictl_input(
        &d,
        &["vault", "set", "http-echo-token", "--hosts", "127.0.0.1"],
        TOKEN.as_bytes(),
    );
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("may be sent to 127.0.0.1"), "{}", out(&o));
    // A server that does not echo it: the body comes back whole.
    let r = tool(
        &d,
        "http_request",
        json!({"method": "POST", "url": web.url("/article/tokio"), "headers": {"X-Trace": "1"},
               "body": {"hello": "world"}, "auth": {"secret": "http-echo-token"}}),
    )
    .unwrap();
    assert_eq!(r["status"], 200);
    assert!(r["body"].as_str().unwrap().contains("1.2 million"), "{r}");
    assert!(r["withheld"].is_null(), "{r}");
    assert!(
        web.seen(&format!("Bearer {TOKEN}")),
        "the server got the real token"
    );
    let head = web.requests.lock().unwrap().last().cloned().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    // One that echoes it, as is, JSON-escaped or in base64: withheld.
    for (path, how) in [
        ("/echo", "as is"),
        ("/echo-escaped", "as is"),
        ("/echo-base64", "base64"),
    ] {
        let r = tool(
            &d,
            "http_request",
            json!({"url": web.url(path), "auth": {"secret": "http-echo-token"}}),
        )
        .unwrap();
        assert_eq!(r["status"], 200, "{path}");
        assert!(r["body"].is_null(), "{path}: {r}");
        assert_eq!(
            r["withheld"],
            format!(
                "the response echoed the injected credential 'http-echo-token' ({how}); its body is withheld"
            ),
            "{path}"
        );
        assert!(!r.to_string().contains(TOKEN));
    }
    // A Basic credential echoed in its header form.
    let o = oictl_input(
        &d,
        &["vault", "set", "http-basic", "--hosts", "127.0.0.1"],
        b"alice:s3cret-pass-77",
    );
    assert!(o.status.success(), "{}", out(&o));
    let r = tool(
        &d,
        "http_request",
        json!({"url": web.url("/echo"), "auth": {"secret": "http-basic", "scheme": "basic"}}),
    )
    .unwrap();
    assert!(
        r["body"].is_null() && r["withheld"].as_str().unwrap().contains("(base64)"),
        "{r}"
    );
    assert!(!r.to_string().contains("s3cret-pass-77"));

    // The host binding: the same server by another name is another host.
    let before = web.requests.lock().unwrap().len();
    let other = web.url("/echo").replace("127.0.0.1", "localhost");
    let e = tool(
        &d,
        "http_request",
        json!({"url": other, "auth": {"secret": "http-echo-token"}}),
    )
    .unwrap_err();
    assert!(
        e.contains(
            "vault secret 'http-echo-token' may be sent only to 127.0.0.1, not to 'localhost'"
        ) && e.contains("denied"),
        "{e}"
    );
    assert_eq!(
        web.requests.lock().unwrap().len(),
        before,
        "nothing was sent"
    );
    // A secret bound to no host is injected nowhere.
    let o = oictl_input(&d, &["vault", "set", "http-unbound"], b"unbound-value-123");
    assert!(out(&o).contains("bound to no host"), "{}", out(&o));
    let e = tool(
        &d,
        "http_request",
        json!({"url": web.url("/echo"), "auth": {"secret": "http-unbound"}}),
    )
    .unwrap_err();
    assert!(e.contains("is bound to no host"), "{e}");

    // A custom credential header and a redirect to another origin: not
    // followed, so the other origin never gets the key.
    let to_other = web.url(&format!("/to?u={other}"));
    let r = tool(
        &d,
        "http_request",
        json!({"url": to_other, "auth": {"secret": "http-echo-token", "scheme": "header", "header": "X-Api-Key"}}),
    )
    .unwrap();
    assert_eq!(r["status"], 302, "{r}");
    assert!(r["note"].as_str().unwrap().contains("not followed"), "{r}");
    let with_key = web
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.contains(TOKEN) && h.to_ascii_lowercase().contains("x-api-key"))
        .count();
    assert_eq!(with_key, 1, "only the first origin got the key");
    // Within the same origin the redirect is followed.
    let r = tool(
        &d,
        "http_request",
        json!({"url": web.url("/to?u=/article/tokio"), "auth": {"secret": "http-echo-token"}}),
    )
    .unwrap();
    assert_eq!(r["status"], 200, "{r}");
    let e = tool(
        &d,
        "http_request",
        json!({"url": web.url("/echo"), "headers": {"Authorization": "Bearer x"}}),
    )
    .unwrap_err();
    assert!(e.contains("carries a credential"), "{e}");
    // The vault's policy decides which secrets the http adapter may read.
    let o = oictl_input(&d, &["vault", "set", "openai-api-key"], b"sk-not-for-http");
    assert!(o.status.success());
    let e = tool(
        &d,
        "http_request",
        json!({"url": web.url("/echo"), "auth": {"secret": "openai-api-key"}}),
    )
    .unwrap_err();
    assert!(e.contains("may not read secret 'openai-api-key'"), "{e}");
    assert!(!d.log_text().contains(TOKEN), "token in the daemon's log");
}

/// Starts a call that will hang, kills the adapter under it, and checks the
/// caller gets an error and the restarted adapter serves the next call.
fn kill_mid_call(d: &Daemon, service: &str, name: &str, hanging: Value, after: Value) {
    kill_in_flight(d, service, name, hanging, after, false)
}

/// [`kill_mid_call`]; with `freeze`, the adapter is stopped (SIGSTOP)
/// before the call, so a call that would not hang by itself is in flight
/// (forwarded, unanswered) when the SIGKILL comes.
fn kill_in_flight(
    d: &Daemon,
    service: &str,
    name: &str,
    hanging: Value,
    after: Value,
    freeze: bool,
) {
    let pid = d.ready_pid(service);
    let rt = fake_runtime();
    // Requests of `name` the broker has routed.
    let routed = || {
        rt.block_on(async {
            let c = d.bus_client().await;
            let opts = oi_kernel::client::CallOptions::deadline(Duration::from_secs(5));
            let stats = c
                .call(oi_ipc_schema::control::BUS_STATS, &(), opts)
                .await
                .unwrap();
            stats
                .by_method
                .iter()
                .find(|(m, _)| m == name)
                .map_or(0, |(_, n)| *n)
        })
    };
    let before = routed();
    if freeze {
        signal(pid, libc::SIGSTOP);
    }
    let mut call = std::process::Command::new(env!("CARGO_BIN_EXE_oictl"))
        .arg("--home")
        .arg(d.path(""))
        .args(["--no-autostart", "tool", name, &hanging.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The call is in flight once the broker has routed it. A frozen
    // adapter misses heartbeats (the watchdog would kill it after a few),
    // so it is killed as soon as its call has reached it.
    wait_for(
        Duration::from_secs(10),
        "the call to reach the adapter",
        || (routed() > before).then_some(()),
    );
    if !freeze {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(call.try_wait().unwrap().is_none(), "{name} did not hang");
    signal(pid, libc::SIGKILL);
    let t = Instant::now();
    wait_for(Duration::from_secs(10), "the caller's error", || {
        call.try_wait().unwrap().map(|_| ())
    });
    let o = call.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the caller waited {:?}",
        t.elapsed()
    );
    let e = out(&o);
    assert!(
        e.contains("unavailable") || e.contains("lost"),
        "{service}: {e}"
    );
    let new = d.new_ready_pid(service, pid);
    assert_ne!(new, pid);
    tool(d, name, after).unwrap_or_else(|e| panic!("restarted {service}: {e}"));
}

#[test]
fn adapters_killed_mid_call_are_restarted_and_serve_again() {
    let web = WebServer::start();
    let d = adapters(&["fs", "shell", "web", "http"], &web_config(""));
    kill_mid_call(
        &d,
        "shell",
        "shell_execute",
        json!({"command": "sleep 30"}),
        json!({"command": "true"}),
    );
    kill_mid_call(
        &d,
        "web",
        "web_fetch",
        json!({"url": web.url("/hang")}),
        json!({"url": web.url("/chain/0")}),
    );
    kill_mid_call(
        &d,
        "http",
        "http_request",
        json!({"url": web.url("/hang")}),
        json!({"url": web.url("/echo")}),
    );
    // fs calls do not hang by themselves: the adapter is frozen first, so
    // its call is in flight when it is killed.
    kill_in_flight(&d, "fs", "fs_list_dir", json!({}), json!({}), true);
    // The other adapters were not touched by one of them dying
    // (one_for_one): each restarted once.
    for s in ["shell", "web", "http", "fs"] {
        assert_eq!(d.service(s)["restarts_total"], 1, "{s}");
    }
}
