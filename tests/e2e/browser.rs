//! The browser adapter against a real headless Chromium (`.ci/run`
//! installs Debian's `chromium`) and local pages on 127.0.0.1, driven with
//! `oictl tool` as a person would (calls outside an intent share a tab).

use std::time::Duration;

use serde_json::Value;

use crate::support::*;
use crate::webserver::WebServer;

fn require_chromium() {
    let found = oi_adapter_browser::chrome::find("");
    assert!(
        found.is_ok(),
        "these tests need a real Chromium: apt-get install chromium (.ci/run does)"
    );
}

/// A daemon with the browser adapter; pages may reach `allow` (an
/// address, or an address and port).
fn start(allow: &str) -> Daemon {
    start_with(allow, "")
}

fn start_with(allow: &str, browser: &str) -> Daemon {
    require_chromium();
    let d = Daemon::start(&config_enabling(
        &["browser", "web"],
        "",
        &format!(
            "[web]\nallow_addresses = [\"{allow}\"]\n\n[browser]\ntimeout_secs = 10\n{browser}"
        ),
    ));
    d.ready_pid("browser");
    d.ready_pid("web");
    d
}

/// The ref of the snapshot line that contains `has`.
fn ref_of(snapshot: &str, has: &str) -> u64 {
    let line = snapshot
        .lines()
        .find(|l| l.contains(has))
        .unwrap_or_else(|| panic!("no line with {has} in:\n{snapshot}"));
    line[1..line.find(']').unwrap()].parse().unwrap()
}

/// Pids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| oi_kernel::lineage::parent_of(*p).ok() == Some(pid))
        .collect()
}

/// Pids in process group `pgid`.
fn group_of(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(2)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(pgid)
        })
        .collect()
}

#[test]
fn a_script_written_page_a_form_by_ref_and_selector_a_stale_ref_and_a_screenshot() {
    let web = WebServer::start();
    let d = start("127.0.0.1");
    let page = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/js-text")}),
    )
    .unwrap();
    assert_eq!(page["title"], "Rendered");
    assert_eq!(page["status"], 200);
    assert!(
        page["text"]
            .as_str()
            .unwrap()
            .contains("written by JavaScript: 4217"),
        "{page}"
    );
    if nix_root() {
        assert!(
            page["note"]
                .as_str()
                .unwrap()
                .contains("without its own sandbox"),
            "{page}"
        );
    }

    tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/form")}),
    )
    .unwrap();
    let snap = tool(&d, "browser_snapshot", serde_json::json!({})).unwrap();
    let text = snap["snapshot"].as_str().unwrap().to_string();
    assert!(text.contains("# Order"), "{text}");
    let name = ref_of(&text, "name=\"name\"");
    let send = ref_of(&text, "button \"Send order\"");
    tool(
        &d,
        "browser_fill",
        serde_json::json!({"ref": name, "text": "Ana"}),
    )
    .unwrap();
    tool(
        &d,
        "browser_fill",
        serde_json::json!({"selector": "#e", "text": "ana@example.org"}),
    )
    .unwrap();
    tool(
        &d,
        "browser_fill",
        serde_json::json!({"selector": "select", "text": "large"}),
    )
    .unwrap();
    let after = tool(&d, "browser_click", serde_json::json!({"ref": send})).unwrap();
    assert_eq!(after["title"], "Thanks", "{after}");
    let conf = tool(&d, "browser_text", serde_json::json!({"selector": "#conf"})).unwrap();
    assert!(
        conf["text"]
            .as_str()
            .unwrap()
            .starts_with("Confirmation number: C-"),
        "{conf}"
    );
    assert!(
        web.seen("name=Ana&email=ana%40example.org&size=large"),
        "the server got the form's values: {:?}",
        web.requests.lock().unwrap().last()
    );
    // The form's refs are gone with its page.
    let stale = tool(&d, "browser_click", serde_json::json!({"ref": send})).unwrap_err();
    assert!(
        stale.contains("the page changed; take a new snapshot"),
        "{stale}"
    );
    let missing = tool(
        &d,
        "browser_click",
        serde_json::json!({"selector": "#nothing"}),
    )
    .unwrap_err();
    assert!(
        missing.contains("no element matches the selector #nothing"),
        "{missing}"
    );

    let shot = tool(
        &d,
        "browser_screenshot",
        serde_json::json!({"name": "thanks"}),
    )
    .unwrap();
    assert_eq!(shot["path"], "screenshots/thanks.png");
    let png = std::fs::read(d.path("data/workspace/screenshots/thanks.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!(
        (w, h),
        (
            shot["width"].as_u64().unwrap() as u32,
            shot["height"].as_u64().unwrap() as u32
        )
    );
    assert_eq!(w, 1280, "the configured window width");
    assert!(h > 100 && h <= 800, "{h}");
    let bad = tool(
        &d,
        "browser_screenshot",
        serde_json::json!({"name": "../x"}),
    )
    .unwrap_err();
    assert!(bad.contains("letters, digits"), "{bad}");

    let eval = tool(
        &d,
        "browser_eval",
        serde_json::json!({"expression": "1 + 1"}),
    )
    .unwrap_err();
    assert!(eval.contains("allow_eval"), "{eval}");

    // The profile is kept between calls, and `oictl browser reset` deletes it.
    assert!(d.path("data/browser/profile").is_dir());
    let o = d.oictl(&["browser", "reset"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("was deleted"), "{}", out(&o));
    assert!(!d.path("data/browser/profile").exists());
    let again = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/js-text")}),
    )
    .unwrap();
    assert_eq!(again["title"], "Rendered", "a new browser after the reset");
}

fn nix_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn web_fetch_renders_a_page_whose_text_a_script_writes() {
    let web = WebServer::start();
    let d = start("127.0.0.1");
    let plain = tool(
        &d,
        "web_fetch",
        serde_json::json!({"url": web.url("/js-text"), "render": false}),
    )
    .unwrap();
    assert!(!plain["text"].as_str().unwrap().contains("4217"), "{plain}");
    assert_eq!(plain.get("rendered"), None);
    // Scripts and almost no text: rendered without being asked.
    let auto = tool(
        &d,
        "web_fetch",
        serde_json::json!({"url": web.url("/js-text")}),
    )
    .unwrap();
    assert_eq!(auto["rendered"], true, "{auto}");
    assert!(
        auto["text"]
            .as_str()
            .unwrap()
            .contains("written by JavaScript: 4217"),
        "{auto}"
    );
    assert_eq!(
        (auto["title"].as_str(), auto["status"].as_u64()),
        (Some("Rendered"), Some(200))
    );
    let asked = tool(
        &d,
        "web_fetch",
        serde_json::json!({"url": web.url("/form"), "render": true}),
    )
    .unwrap();
    assert_eq!(asked["rendered"], true);
    assert!(asked["text"].as_str().unwrap().contains("Order"), "{asked}");
    // The browser's guard holds for rendering too.
    let e = tool(
        &d,
        "web_fetch",
        serde_json::json!({"url": "http://10.0.0.1/", "render": true}),
    )
    .unwrap_err();
    assert!(e.contains("10.0.0.1") && e.contains("SSRF guard"), "{e}");
}

#[test]
fn eval_when_allowed_and_a_script_of_megabytes_goes_in_pieces() {
    let web = WebServer::start();
    let d = start_with("127.0.0.1", "allow_eval = true\n");
    tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/js-text")}),
    )
    .unwrap();
    let v = tool(
        &d,
        "browser_eval",
        serde_json::json!({"expression": "document.title + ' ' + (6 * 7)"}),
    )
    .unwrap();
    assert_eq!(v["value"], "Rendered 42");
    // 1.2 MB of script (with multi-byte characters across the cuts of its
    // pieces), over the bus (too long for a command line). (Chromium 156
    // takes even 3 MB in one message on its pipe; the pieces are for the
    // versions that dropped messages over 1 MB.)
    let big = format!("'{}'.length", "é".repeat(600_000));
    let args = serde_json::json!({"expression": big}).to_string();
    let rt = bus_runtime();
    let v = rt
        .block_on(async {
            let c = d.bus_client().await;
            oi_kernel::tool::call_on(
                &c,
                oi_ipc_schema::browser::SERVICE,
                "browser_eval",
                &args,
                oi_kernel::client::CallOptions::deadline(Duration::from_secs(30)),
            )
            .await
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    assert_eq!(v["value"], 600_000);
    let e = tool(
        &d,
        "browser_eval",
        serde_json::json!({"expression": "throw new Error('boom')"}),
    )
    .unwrap_err();
    assert!(e.contains("the page's script failed: Error: boom"), "{e}");
}

#[test]
fn a_page_that_never_finishes_times_out_and_the_next_call_works() {
    let web = WebServer::start();
    let d = start("127.0.0.1");
    let e = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/never"), "timeout_secs": 2}),
    )
    .unwrap_err();
    assert!(
        e.contains(&format!(
            "{} did not finish loading within 2 s (waited for the load event)",
            web.url("/never")
        )),
        "{e}"
    );
    let ok = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/js-text")}),
    )
    .unwrap();
    assert_eq!(ok["title"], "Rendered");
    let e = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/js-text"), "wait": "#never-there", "timeout_secs": 1}),
    )
    .unwrap_err();
    assert!(
        e.contains("waited for an element matching #never-there"),
        "{e}"
    );
}

#[test]
fn pages_cannot_reach_metadata_private_addresses_other_ports_or_files() {
    let web = WebServer::start();
    // Listening on 127.0.0.1 too, on a port that is not allowed.
    let other = WebServer::start();
    let d = start(&format!("127.0.0.1:{}", web.port));
    let reach = format!("/reach?169.254.169.254&10.0.0.1&127.0.0.1%3A{}", other.port);
    let page = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url(&reach), "wait": "networkidle"}),
    )
    .unwrap();
    assert!(page["text"].as_str().unwrap().contains("reaching out"));
    let log = d.log_text();
    let other_host = format!("127.0.0.1:{}", other.port);
    for host in ["169.254.169.254", "10.0.0.1", other_host.as_str()] {
        for what in ["img.png", "evil.js", "xhr"] {
            assert!(
                log.lines().any(|l| l.contains("request refused")
                    && l.contains(&format!("url=\"http://{host}/{what}\""))),
                "{host}/{what} was not refused:\n{log}"
            );
        }
    }
    // WebSockets are not seen by interception; the proxy refuses them.
    for host in ["169.254.169.254", "10.0.0.1", other_host.as_str()] {
        let port = host.split_once(':').map(|(_, p)| p).unwrap_or("80");
        let h = host.split(':').next().unwrap();
        assert!(
            log.lines().any(|l| l.contains("connection refused")
                && l.contains(&format!("host=\"{h}\""))
                && l.contains(&format!("port={port}"))),
            "the WebSocket to {host} was not refused by the proxy:\n{log}"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        other.requests.lock().unwrap().is_empty(),
        "the server on the other port got nothing, not even a WebSocket handshake"
    );
    let e = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": other.url("/js-text")}),
    )
    .unwrap_err();
    assert!(e.contains("loopback") && e.contains("SSRF guard"), "{e}");
    let e = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": "http://169.254.169.254/latest/meta-data/"}),
    )
    .unwrap_err();
    assert!(
        e.contains("a cloud metadata endpoint") && e.contains("SSRF guard"),
        "{e}"
    );
    let e = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": "file:///etc/passwd"}),
    )
    .unwrap_err();
    assert!(e.contains("file: URLs are refused"), "{e}");
    let e = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": "chrome://version"}),
    )
    .unwrap_err();
    assert!(e.contains("chrome: URLs are refused"), "{e}");
}

#[test]
fn a_killed_chromium_is_started_again_and_a_killed_adapter_leaves_nothing_behind() {
    let web = WebServer::start();
    let d = start("127.0.0.1");
    tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/js-text")}),
    )
    .unwrap();
    let adapter = d.ready_pid("browser");
    let chromium = children_of(adapter);
    assert_eq!(
        chromium.len(),
        1,
        "one browser, a child of the adapter: {chromium:?}"
    );
    // Killed mid-call: the call fails, the next one works.
    let call = spawn_oictl(
        &d,
        &[
            "tool",
            "browser_navigate",
            &serde_json::json!({"url": web.url("/never"), "timeout_secs": 8}).to_string(),
        ],
    );
    std::thread::sleep(Duration::from_millis(700));
    signal(chromium[0], libc::SIGKILL);
    let o = call.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(
        out(&o).contains("the browser stopped during the call"),
        "{}",
        out(&o)
    );
    let again = tool(
        &d,
        "browser_navigate",
        serde_json::json!({"url": web.url("/js-text")}),
    )
    .unwrap();
    assert_eq!(again["title"], "Rendered");
    let second = children_of(adapter);
    assert_eq!(second.len(), 1);
    assert_ne!(second, chromium);
    // The adapter killed: its browser and every helper go, and are reaped.
    let group = group_of(adapter);
    assert!(
        group.len() > 2,
        "chromium's helpers share the adapter's group: {group:?}"
    );
    signal(adapter, libc::SIGKILL);
    d.new_ready_pid("browser", adapter);
    wait_for(
        Duration::from_secs(10),
        "the old browser's processes gone and reaped",
        || {
            group
                .iter()
                .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
                .then_some(())
        },
    );
}

#[test]
fn through_the_agent_open_the_page_fill_the_form_and_read_the_confirmation() {
    require_chromium();
    let web = WebServer::start();
    let rt = fake_runtime();
    let llm = rt
        .block_on(oi_llm_router::fake::FakeProvider::start())
        .unwrap();
    let step = |id: &str, name: &str, args: Value| calls(&[(id, name, args)]);
    llm.push([
        step(
            "c1",
            "browser_navigate",
            serde_json::json!({"url": web.url("/form")}),
        ),
        step("c2", "browser_snapshot", serde_json::json!({})),
        step(
            "c3",
            "browser_fill",
            serde_json::json!({"selector": "#n", "text": "Ana"}),
        ),
        step(
            "c4",
            "browser_click",
            serde_json::json!({"selector": "button"}),
        ),
        step(
            "c5",
            "browser_text",
            serde_json::json!({"selector": "#conf"}),
        ),
        oi_llm_router::fake::openai::says("Your order went through."),
    ]);
    let d = Daemon::start(&config_enabling(
        &["browser", "agent", "llm-router", "memory"],
        "",
        &format!(
            "{}[cascade]\norder = [\"main\"]\n\n[web]\nallow_addresses = [\"127.0.0.1\"]\n",
            model("main", "openai", &llm.url("/v1"), "no_key = true")
        ),
    ));
    for s in ["browser", "agent", "llm-router"] {
        d.ready_pid(s);
    }
    let o = d.oictl(&[
        "ask",
        "--json",
        "open the order page, fill in the form and tell me the confirmation number",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names = tool_names(&r);
    assert_eq!(
        names,
        [
            "browser_navigate",
            "browser_snapshot",
            "browser_fill",
            "browser_click",
            "browser_text"
        ]
    );
    assert!(
        r["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["error"].is_null()),
        "{r}"
    );
    // What the model was shown: the snapshot with refs, then the
    // confirmation, both marked untrusted.
    let reqs = llm.requests();
    let shown = tool_messages(&reqs.last().unwrap().body);
    assert!(
        shown[1].contains("button \\\"Send order\\\"") && shown[1].contains("trust=\"untrusted\""),
        "{}",
        shown[1]
    );
    assert!(shown[4].contains("Confirmation number: C-"), "{}", shown[4]);
    assert!(
        web.seen("name=Ana&email=&size=small"),
        "{:?}",
        web.requests.lock().unwrap().last()
    );
}
