//! The Feishu service's tools against the fake open platform
//! (`oi_feishu::fake`), which the official client (PyPI `lark-oapi`) is
//! run against too; and the seed's second example through the agent, with
//! the email adapter's real test servers.

use serde_json::{Value, json};

use oi_feishu::fake::FakeFeishu;

use crate::email::{fixtures, password_account};
use crate::mailserver::{MailServers, PASSWORD};
use crate::support::*;

const APP_ID: &str = "cli_a1b2c3d4e5f60001";
const SECRET: &str = "fake-app-secret-0123456789";

fn section(fs: &FakeFeishu) -> String {
    format!(
        "[feishu]\ndomain = \"{}\"\napp_id = \"{APP_ID}\"\n\n",
        fs.url()
    )
}

fn ok(d: &Daemon, name: &str, args: Value) -> Value {
    tool(d, name, args).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn messages_go_to_groups_by_name_and_to_people_and_the_token_is_renewed() {
    let rt = fake_runtime();
    let fs = rt.block_on(FakeFeishu::start(APP_ID, SECRET)).unwrap();
    let team = fs.add_chat("Product Team", true);
    fs.add_chat("Ops", true);
    fs.add_chat("Ops", true);
    let outside = fs.add_chat("Board", false);
    // More groups than one page holds.
    for i in 0..120 {
        fs.add_chat(&format!("Project {i}"), true);
    }
    let ann = fs.add_user("ann@corp.example");
    let d = Daemon::start(&config_enabling(
        &["vault", "feishu"],
        "",
        &format!("[vault]\nkey_source = \"file\"\n\n{}", section(&fs)),
    ));
    d.ready_pid("vault");
    assert_eq!(
        d.state("feishu"),
        "WAITING",
        "until the app secret is stored"
    );
    set_secret(&d, "feishu-app-secret", SECRET);
    d.ready_pid("feishu");

    let chats = ok(&d, "feishu_list_chats", json!({}));
    assert_eq!(
        chats["count"], 123,
        "both pages, the groups the bot is not in left out"
    );
    let sent = ok(
        &d,
        "feishu_send_message",
        json!({"group": "product team", "msg_type": "post", "title": "Status", "text": "Build is green.\nRelease on Friday."}),
    );
    assert_eq!(sent["to"], "Product Team");
    let m = fs.sent().last().cloned().unwrap();
    assert_eq!(m.chat_id, team);
    assert_eq!(m.msg_type, "post");
    assert_eq!(m.text(), "Build is green.\nRelease on Friday.");
    ok(
        &d,
        "feishu_send_message",
        json!({"email": "ann@corp.example", "text": "hi Ann"}),
    );
    assert_eq!(fs.sent().last().unwrap().chat_id, format!("oc_p2p_{ann}"));
    let r = ok(
        &d,
        "feishu_reply",
        json!({"message_id": sent["message_id"], "text": "Thanks"}),
    );
    assert_eq!(r["chat_id"], team.as_str());
    assert_eq!(
        fs.sent().last().unwrap().reply_to.as_deref(),
        sent["message_id"].as_str()
    );

    // Refusals, each named.
    let e = tool(
        &d,
        "feishu_send_message",
        json!({"group": "Ops", "text": "x"}),
    )
    .unwrap_err();
    assert!(e.contains("2 groups are called 'Ops'"), "{e}");
    let e = tool(
        &d,
        "feishu_send_message",
        json!({"group": "Sales", "text": "x"}),
    )
    .unwrap_err();
    assert!(e.contains("no group called 'Sales'"), "{e}");
    let e = tool(
        &d,
        "feishu_send_message",
        json!({"chat_id": outside, "text": "x"}),
    )
    .unwrap_err();
    assert!(
        e.contains("code 230002") && e.contains("add the bot to the chat first"),
        "{e}"
    );
    let e = tool(
        &d,
        "feishu_send_message",
        json!({"chat_id": team, "msg_type": "interactive"}),
    )
    .unwrap_err();
    assert!(e.contains("needs 'card'"), "{e}");

    // The tenant token expires: the call is renewed once and goes through.
    let before = fs.token_requests();
    fs.expire_tokens();
    ok(
        &d,
        "feishu_send_message",
        json!({"chat_id": team, "text": "after expiry"}),
    );
    assert_eq!(fs.token_requests(), before + 1);
    assert!(fs.refused().contains(&99991663));
    assert_eq!(fs.sent().last().unwrap().text(), "after expiry");

    // A wrong app secret: named, never shown.
    set_secret(&d, "feishu-app-secret", "wrong-secret-value");
    fs.expire_tokens();
    let e = tool(&d, "feishu_list_chats", json!({})).unwrap_err();
    assert!(
        e.contains("Feishu refused the app's credentials (code 10014"),
        "{e}"
    );
    assert!(!e.contains("wrong-secret-value") && !d.log_text().contains(SECRET));
}

#[test]
fn the_official_client_talks_to_the_fake() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import lark_oapi"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the Feishu tests need lark-oapi: python3 -m pip install lark-oapi==1.7.5 (.ci/run installs it)"
    );
    let rt = fake_runtime();
    let fs = rt.block_on(FakeFeishu::start(APP_ID, SECRET)).unwrap();
    let team = fs.add_chat("Product Team", true);
    let o = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/feishu/lark_rest_check.py"
        ))
        .args([&fs.url(), APP_ID, SECRET, "Product Team"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["chat"], team.as_str());
    assert_eq!(v["text_chat"], team.as_str());
    assert_eq!(v["text_content"], json!({"text": "from lark-oapi"}));
    assert_eq!(v["reply_parent"], v["text"]);
    let sent = fs.sent();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1].text(), "a post");
    assert_eq!(
        fs.token_requests(),
        1,
        "the SDK fetched one tenant token and kept it"
    );
}

#[test]
fn the_seeds_example_unread_mail_summarized_to_the_team_group() {
    let m = MailServers::start();
    fixtures(&m);
    let rt = fake_runtime();
    let fs = rt.block_on(FakeFeishu::start(APP_ID, SECRET)).unwrap();
    let team = fs.add_chat("Product Team", true);
    let llm = rt
        .block_on(oi_llm_router::fake::FakeProvider::start())
        .unwrap();
    let d = Daemon::start(&config_enabling(
        &["vault", "email", "feishu", "agent", "llm-router", "memory"],
        "",
        &format!(
            "{}[cascade]\norder = [\"main\"]\n\n[vault]\nkey_source = \"file\"\n\n{}{}",
            model("main", "openai", &llm.url("/v1"), "no_key = true"),
            section(&fs),
            password_account(&m, "")
        ),
    ));
    for s in ["vault", "email", "agent", "llm-router"] {
        d.ready_pid(s);
    }
    set_secret(&d, "email-work-password", PASSWORD);
    set_secret(&d, "feishu-app-secret", SECRET);
    d.ready_pid("feishu");
    let step = |id: &str, name: &str, args: Value| calls(&[(id, name, args)]);
    llm.push([
        step("c1", "email_list_inbox", json!({"unread": true})),
        step("c2", "email_read", json!({"uid": 2})),
        step(
            "c3",
            "feishu_send_message",
            json!({"group": "Product Team", "msg_type": "post", "title": "Urgent mail",
                   "text": "The build server is down since 07:40 (Bob asks for a restart)."}),
        ),
        oi_llm_router::fake::openai::says("Posted the urgent item to Product Team."),
    ]);
    let o = d.oictl(&[
        "ask",
        "--json",
        "check my unread emails, summarize anything urgent, post to the team Feishu group",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        tool_names(&r),
        ["email_list_inbox", "email_read", "feishu_send_message"]
    );
    assert!(
        r["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["error"].is_null()),
        "{r}"
    );
    let shown = tool_messages(&llm.requests().last().unwrap().body);
    assert!(
        shown[1].contains("The build server is down since 07:40"),
        "{}",
        shown[1]
    );
    let posted: Vec<_> = fs
        .sent()
        .into_iter()
        .filter(|s| s.chat_id == team)
        .collect();
    assert_eq!(posted.len(), 1);
    assert_eq!(
        posted[0].text(),
        "The build server is down since 07:40 (Bob asks for a restart)."
    );
    assert_eq!(posted[0].content["zh_cn"]["title"], "Urgent mail");
}

/// An `im.message.receive_v1` event: `text` from `open_id` in `chat`.
fn message_event(chat: &str, open_id: &str, message_id: &str, text: &str) -> Value {
    json!({
        "sender": {"sender_id": {"open_id": open_id, "union_id": "on_fake", "user_id": "u_fake"},
                   "sender_type": "user", "tenant_key": "tk_fake"},
        "message": {"message_id": message_id, "root_id": "", "parent_id": "", "create_time": "1764633600000",
                    "chat_id": chat, "chat_type": "group", "message_type": "text",
                    "content": json!({"text": text}).to_string(), "mentions": []}
    })
}

#[test]
fn the_official_clients_long_connection_takes_the_fakes_events() {
    let rt = fake_runtime();
    let fs = rt.block_on(FakeFeishu::start(APP_ID, SECRET)).unwrap();
    /// The SDK's process, killed and reaped whatever happens.
    struct Sdk(std::process::Child);
    impl Drop for Sdk {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut py = Sdk(std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/feishu/lark_ws_check.py"
        ))
        .args([&fs.url(), APP_ID, SECRET])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap());
    wait_for(
        std::time::Duration::from_secs(20),
        "the SDK to connect",
        || (fs.connections() >= 1).then_some(()),
    );
    let frame_id = fs.push_event(
        "im.message.receive_v1",
        message_event("oc_team", "ou_ann", "om_1", "hello from the fake"),
    );
    let status = py.0.wait().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut py.0.stdout.take().unwrap(), &mut said).unwrap();
    assert!(status.success(), "the SDK exited with {status}: {said}");
    let v: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(
        v,
        json!({"message_id": "om_1", "chat_id": "oc_team", "text": "hello from the fake", "sender": "ou_ann"})
    );
    let acks = fs.acks();
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0].0, frame_id);
    let ack: Value = serde_json::from_str(&acks[0].1).unwrap();
    assert_eq!(ack["code"], 200, "the SDK's own acknowledgement: {ack}");
    assert_eq!(fs.connections(), 1);
}

#[test]
fn our_long_connection_acks_reassembles_reconnects_and_notices_silence() {
    use oi_feishu::longconn;
    let rt = fake_runtime();
    let fs = rt.block_on(FakeFeishu::start(APP_ID, SECRET)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let task = rt.spawn(longconn::run(
        fs.url(),
        APP_ID.into(),
        || async { Ok(zeroize::Zeroizing::new(SECRET.to_string())) },
        tx,
        |_| {},
    ));
    let secs = std::time::Duration::from_secs;
    wait_for(secs(10), "a connection", || {
        (fs.connections() == 1).then_some(())
    });
    let next = |rx: &mut tokio::sync::mpsc::Receiver<Vec<u8>>| -> Value {
        let got = rt
            .block_on(async { tokio::time::timeout(secs(10), rx.recv()).await })
            .expect("an event within 10 s")
            .expect("the channel is open");
        serde_json::from_slice(&got).unwrap()
    };

    let id = fs.push_event(
        "im.message.receive_v1",
        message_event("oc_t", "ou_a", "om_1", "one"),
    );
    let ev = next(&mut rx);
    assert_eq!(ev["header"]["event_type"], "im.message.receive_v1");
    assert_eq!(ev["event"]["message"]["message_id"], "om_1");
    wait_for(secs(5), "the acknowledgement", || {
        fs.acks()
            .iter()
            .any(|(a, p)| *a == id && p.contains("\"code\":200"))
            .then_some(())
    });

    // A big event in three frames arrives whole, once.
    fs.split_next(3);
    let long = "x".repeat(3000);
    let split = fs.push_event(
        "im.message.receive_v1",
        message_event("oc_t", "ou_a", "om_2", &long),
    );
    let ev = next(&mut rx);
    let content: Value =
        serde_json::from_str(ev["event"]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["text"].as_str().unwrap().len(), 3000);
    // One acknowledgement for the three frames. (An event whose
    // acknowledgement had not arrived when the socket dropped would come
    // again on the next connection, as the platform sends it: the
    // gateway's store is what answers it once.)
    wait_for(secs(5), "the split event's acknowledgement", || {
        (fs.acks().iter().filter(|(a, _)| *a == split).count() == 1).then_some(())
    });

    // The platform drops the socket; an event sent meanwhile is not lost.
    fs.drop_connections();
    let down = fs.push_event(
        "im.message.receive_v1",
        message_event("oc_t", "ou_a", "om_3", "while down"),
    );
    let ev = next(&mut rx);
    assert_eq!(ev["event"]["message"]["message_id"], "om_3");
    assert_eq!(fs.connections(), 2);
    wait_for(secs(5), "its acknowledgement", || {
        fs.acks().iter().any(|(a, _)| *a == down).then_some(())
    });

    // Pings without pongs: a dead connection, made again.
    fs.silent(true);
    wait_for(secs(15), "a new connection after the silence", || {
        (fs.connections() == 3).then_some(())
    });
    fs.silent(false);
    fs.push_event(
        "im.message.receive_v1",
        message_event("oc_t", "ou_a", "om_4", "after"),
    );
    assert_eq!(next(&mut rx)["event"]["message"]["message_id"], "om_4");
    task.abort();
}
