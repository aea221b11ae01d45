//! The email adapter against a real Dovecot and an aiosmtpd submission
//! server that delivers into it (`.ci/run` installs both), driven with
//! `oictl tool` and, for the seed's example, through the agent with a
//! scripted model. OAuth2 tokens come from the tests' own provider, which
//! Dovecot's oauth2 passdb asks about every token.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mailserver::{MailServers, PASSWORD, USER, http};
use crate::support::*;

const LATIN1_SUBJECT: &[u8] = b"Subject: Caf\xe9 cr\xe8me\r\n";

pub(crate) fn fixtures(m: &MailServers) {
    m.deliver(
        USER,
        b"From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@partner.example>\r\nTo: alice@example.test\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=\r\nDate: Mon, 30 Nov 2026 09:00:00 +0100\r\nMessage-ID: <first@partner.example>\r\n\r\nHallo Alice, the contract is attached tomorrow.\r\n",
    );
    m.deliver(
        USER,
        b"From: Bob <bob@corp.example>\r\nTo: alice@example.test\r\nSubject: URGENT: server down\r\nDate: Tue, 01 Dec 2026 08:00:00 +0000\r\nMessage-ID: <urgent@corp.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"MIX\"\r\n\r\n--MIX\r\nContent-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe build server is down since 07:40. Please restart it.\r\n--ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>The <b>build server</b> is down</p>\r\n--ALT--\r\n--MIX\r\nContent-Type: text/plain; name=\"uptime.log\"\r\nContent-Disposition: attachment; filename=\"uptime.log\"\r\nContent-Transfer-Encoding: base64\r\n\r\nU0VDUkVUIExPRyBMSU5FUwo=\r\n--MIX--\r\n",
    );
    let mut latin1 = b"From: Chlo\xe9 <chloe@shop.example>\r\nTo: alice@example.test\r\n".to_vec();
    latin1.extend_from_slice(LATIN1_SUBJECT);
    latin1.extend_from_slice(b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <latin@shop.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nVotre commande est pr\xeate.\r\n");
    m.deliver(USER, &latin1);
}

fn start(m: &MailServers, email: &str) -> Daemon {
    let d = Daemon::start(&config_enabling(
        &["vault", "email"],
        "",
        &format!("[vault]\nkey_source = \"file\"\n\n{email}"),
    ));
    d.ready_pid("vault");
    d.ready_pid("email");
    let _ = m;
    d
}

pub(crate) fn password_account(m: &MailServers, extra: &str) -> String {
    format!(
        "[email]\nallowed_recipients = [\"corp.example\"]\n{extra}\n{}",
        m.account(
            "work",
            "auth = { method = \"password\", password_secret = \"email-work-password\" }"
        )
    )
}

fn ok(d: &Daemon, name: &str, args: Value) -> Value {
    tool(d, name, args).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn subjects(list: &Value) -> Vec<String> {
    list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect()
}

fn uid_of(list: &Value, subject: &str) -> u64 {
    list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains(subject))
        .unwrap_or_else(|| panic!("no {subject} in {list}"))["uid"]
        .as_u64()
        .unwrap()
}

#[test]
fn real_mail_is_listed_read_and_searched_with_its_charsets_decoded() {
    let m = MailServers::start();
    fixtures(&m);
    let d = start(&m, &password_account(&m, ""));
    set_secret(&d, "email-work-password", PASSWORD);

    let list = ok(&d, "email_list_inbox", json!({"unread": true}));
    assert_eq!(list["matching"], 3, "{list}");
    // Newest first; RFC 2047 and Latin-1 decoded.
    assert_eq!(
        subjects(&list),
        ["Café crème", "URGENT: server down", "Grüße aus München"]
    );
    let first = &list["messages"][2];
    assert_eq!(first["from"], "Jürgen Müller <juergen@partner.example>");
    assert!(
        first["snippet"]
            .as_str()
            .unwrap()
            .starts_with("Hallo Alice"),
        "{first}"
    );
    assert_eq!(first["unread"], true);
    let limited = ok(&d, "email_list_inbox", json!({"limit": 1}));
    assert_eq!(subjects(&limited), ["Café crème"]);

    let urgent = uid_of(&list, "URGENT");
    let r = ok(&d, "email_read", json!({"uid": urgent}));
    assert_eq!(
        r["body"],
        "The build server is down since 07:40. Please restart it."
    );
    assert_eq!(r["body_from_html"], false);
    assert_eq!(
        r["attachments"],
        json!([{"name": "uptime.log", "type": "text/plain", "bytes": 17}])
    );
    // Named, never dumped.
    assert!(!r.to_string().contains("SECRET LOG"), "{r}");
    assert!(r["content_trust"].as_str().unwrap().contains("untrusted"));
    let latin = ok(&d, "email_read", json!({"uid": uid_of(&list, "Café")}));
    assert_eq!(latin["body"], "Votre commande est prête.");
    assert_eq!(latin["from"], "Chloé <chloe@shop.example>");
    // Reading does not mark it read.
    let again = ok(&d, "email_list_inbox", json!({"unread": true}));
    assert_eq!(again["matching"], 3);

    let s = ok(&d, "email_search", json!({"from": "bob@corp"}));
    assert_eq!(subjects(&s), ["URGENT: server down"]);
    let s = ok(&d, "email_search", json!({"subject": "Grüße"}));
    assert_eq!(subjects(&s), ["Grüße aus München"], "{s}");
    let s = ok(
        &d,
        "email_search",
        json!({"text": "restart", "since": "2026-11-01"}),
    );
    assert_eq!(subjects(&s), ["URGENT: server down"]);
    // SINCE and BEFORE are the day each message arrived (today here).
    let s = ok(&d, "email_search", json!({"before": "2000-01-01"}));
    assert_eq!(s["matching"], 0);
    let e = tool(&d, "email_search", json!({"since": "yesterday"})).unwrap_err();
    assert!(
        e.contains("since 'yesterday' is not a date like 2026-12-01"),
        "{e}"
    );
    let e = tool(&d, "email_read", json!({"uid": 999})).unwrap_err();
    assert!(e.contains("no message with uid 999 in INBOX"), "{e}");
    let e = tool(&d, "email_list_inbox", json!({"folder": "Nowhere"})).unwrap_err();
    assert!(e.contains("no folder 'Nowhere' (folders: INBOX"), "{e}");

    let f = ok(&d, "email_folders", json!({}));
    let names: Vec<(&str, &Value)> = f["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["name"].as_str().unwrap(), &x["special_use"]))
        .collect();
    assert!(names.contains(&("Archive", &json!("Archive"))), "{f}");
    assert!(names.contains(&("Sent", &json!("Sent"))), "{f}");
    assert_eq!(f["folders"][0]["name"], "INBOX");
    assert_eq!(f["folders"][0]["unread"], 3);
    assert_eq!(f["accounts"], json!(["work"]));
}

#[test]
fn sending_files_a_copy_in_sent_threads_replies_and_refuses_strangers() {
    let m = MailServers::start();
    fixtures(&m);
    let d = start(&m, &password_account(&m, ""));
    set_secret(&d, "email-work-password", PASSWORD);

    let sent = ok(
        &d,
        "email_send",
        json!({"to": [USER], "subject": "Note to self ✓", "body": "Buy milk."}),
    );
    assert_eq!(sent["saved_to"], "Sent", "{sent}");
    let inbox = ok(&d, "email_search", json!({"subject": "Note to self"}));
    assert_eq!(subjects(&inbox), ["Note to self ✓"]);
    let copy = ok(&d, "email_list_inbox", json!({"folder": "Sent"}));
    assert_eq!(subjects(&copy), ["Note to self ✓"]);
    assert_eq!(copy["messages"][0]["unread"], false);

    // A reply: threading headers from the original, the subject with Re:,
    // the sender as recipient (corp.example is allowed), the original
    // marked answered.
    let list = ok(&d, "email_list_inbox", json!({}));
    let urgent = uid_of(&list, "URGENT");
    let r = ok(
        &d,
        "email_send",
        json!({"reply_to_uid": urgent, "body": "Restarted it."}),
    );
    assert_eq!(r["to"], json!(["bob@corp.example"]));
    assert_eq!(r["subject"], "Re: URGENT: server down");
    let mail = m.stats()["mail"].as_array().unwrap().clone();
    let reply = mail
        .iter()
        .find(|x| x["data"].as_str().unwrap().contains("Restarted it."))
        .unwrap();
    let data = reply["data"].as_str().unwrap();
    assert!(
        data.contains("In-Reply-To: <urgent@corp.example>"),
        "{data}"
    );
    assert!(data.contains("References: <urgent@corp.example>"), "{data}");
    assert_eq!(reply["to"], json!(["bob@corp.example"]));
    assert_eq!(reply["from"], USER);
    let read = ok(&d, "email_read", json!({"uid": urgent}));
    assert!(
        read["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("\\Answered")),
        "{read}"
    );

    // The recipient policy: a stranger is named and nothing is sent.
    let before = m.stats()["mail"].as_array().unwrap().len();
    let e = tool(
        &d,
        "email_send",
        json!({"to": ["bob@corp.example"], "cc": ["Eve <eve@evil.example>"], "subject": "x", "body": "y"}),
    )
    .unwrap_err();
    assert!(e.contains("not allowed to send to eve@evil.example"), "{e}");
    assert!(!e.contains("bob@corp.example,"), "{e}");
    assert_eq!(m.stats()["mail"].as_array().unwrap().len(), before);
    let e = tool(
        &d,
        "email_send",
        json!({"to": ["not an address"], "subject": "x", "body": "y"}),
    )
    .unwrap_err();
    assert!(e.contains("not an email address: 'not an address'"), "{e}");
}

#[test]
fn messages_move_to_archive_and_take_marks() {
    let m = MailServers::start();
    fixtures(&m);
    let d = start(&m, &password_account(&m, ""));
    set_secret(&d, "email-work-password", PASSWORD);
    let list = ok(&d, "email_list_inbox", json!({}));
    let (urgent, cafe) = (uid_of(&list, "URGENT"), uid_of(&list, "Café"));

    let r = ok(
        &d,
        "email_mark",
        json!({"uids": [urgent, cafe], "as": "read"}),
    );
    assert_eq!(r["marked"], json!([urgent.min(cafe), urgent.max(cafe)]));
    let unread = ok(&d, "email_list_inbox", json!({"unread": true}));
    assert_eq!(subjects(&unread), ["Grüße aus München"]);
    ok(&d, "email_mark", json!({"uids": [cafe], "as": "unread"}));
    ok(&d, "email_mark", json!({"uids": [urgent], "as": "flagged"}));
    let flags = ok(&d, "email_read", json!({"uid": urgent}))["flags"].clone();
    let mut flags: Vec<&str> = flags
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    flags.sort();
    assert_eq!(flags, ["\\Flagged", "\\Seen"]);
    assert_eq!(
        ok(&d, "email_list_inbox", json!({"unread": true}))["matching"],
        2
    );

    let mv = ok(&d, "email_move", json!({"uids": [urgent], "to": "archive"}));
    assert_eq!(
        (&mv["from"], &mv["to"]),
        (&json!("INBOX"), &json!("Archive"))
    );
    let archive = ok(&d, "email_list_inbox", json!({"folder": "Archive"}));
    assert_eq!(subjects(&archive), ["URGENT: server down"]);
    assert_eq!(ok(&d, "email_list_inbox", json!({}))["matching"], 2);
    let e = tool(&d, "email_move", json!({"uids": [urgent], "to": "Trash"})).unwrap_err();
    assert!(
        e.contains(&format!("no message with uid {urgent} in INBOX")),
        "{e}"
    );
    let e = tool(&d, "email_mark", json!({"uids": [cafe], "as": "important"})).unwrap_err();
    assert!(
        e.contains("as 'important' is not one of read, unread"),
        "{e}"
    );
}

#[test]
fn a_wrong_password_is_named_by_its_secret_never_shown() {
    let m = MailServers::start();
    let d = start(&m, &password_account(&m, ""));
    set_secret(&d, "email-work-password", "not-the-password-xyzzy");
    let e = tool(&d, "email_list_inbox", json!({})).unwrap_err();
    assert!(
        e.contains("the IMAP server refused the login of alice@example.test")
            && e.contains("vault secret email-work-password"),
        "{e}"
    );
    assert!(!e.contains("xyzzy"), "{e}");
    let e = tool(
        &d,
        "email_send",
        json!({"to": [USER], "subject": "s", "body": "b"}),
    )
    .unwrap_err();
    assert!(e.contains("the SMTP server refused the login"), "{e}");
    assert!(
        !e.contains("xyzzy") && !d.log_text().contains("xyzzy"),
        "{e}"
    );
    // The adapter keeps serving: the right password works at once.
    set_secret(&d, "email-work-password", PASSWORD);
    ok(&d, "email_list_inbox", json!({}));
    assert_eq!(d.state("email"), "READY");
}

#[test]
fn tls_from_the_first_byte_and_after_starttls_is_verified_against_the_accounts_ca() {
    let m = MailServers::start();
    fixtures(&m);
    let account = |name: &str, imap_port: u16, imap_tls: &str, ca: bool| {
        let ca = if ca {
            format!("ca_file = \"{}\"\n", m.ca_file.display())
        } else {
            String::new()
        };
        format!(
            "[email.accounts.{name}]\nusername = \"{USER}\"\nimap = {{ host = \"127.0.0.1\", port = {imap_port}, tls = \"{imap_tls}\" }}\nsmtp = {{ host = \"127.0.0.1\", port = {}, tls = \"starttls\" }}\nauth = {{ method = \"password\", password_secret = \"email-tls-password\" }}\n{ca}\n",
            m.smtp_port
        )
    };
    let d = start(
        &m,
        &[
            account("implicit", m.imaps_port, "implicit", true),
            account("starttls", m.real_imap_port, "starttls", true),
            account("untrusted", m.imaps_port, "implicit", false),
        ]
        .concat(),
    );
    set_secret(&d, "email-tls-password", PASSWORD);

    for name in ["implicit", "starttls"] {
        let list = ok(&d, "email_list_inbox", json!({"account": name}));
        assert_eq!(list["matching"], 3, "{name}: {list}");
    }
    // Dovecot logged both logins as made over TLS, not in the clear.
    let log = std::fs::read_to_string(m.dir.path().join("dovecot.log")).unwrap();
    let tls_logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("imap-login: Info: Login:") && l.contains(", TLS"))
        .collect();
    assert_eq!(tls_logins.len(), 2, "{log}");
    // SMTP after STARTTLS, and the copy filed in Sent over implicit TLS.
    let sent = ok(
        &d,
        "email_send",
        json!({"account": "implicit", "to": [USER], "subject": "over tls", "body": "b"}),
    );
    assert_eq!(sent["sent"], true, "{sent}");
    let mail = m.stats()["mail"].clone();
    let last = mail.as_array().unwrap().last().unwrap().clone();
    assert!(
        last["data"].as_str().unwrap().contains("over tls"),
        "{last}"
    );
    assert_eq!(last["tls"], true, "sent in the clear: {last}");
    let filed = ok(
        &d,
        "email_list_inbox",
        json!({"account": "implicit", "folder": "Sent"}),
    );
    assert_eq!(subjects(&filed), ["over tls"]);

    // A certificate from a CA the account does not trust is refused, for
    // IMAP and for SMTP, and nothing is sent.
    let e = tool(&d, "email_list_inbox", json!({"account": "untrusted"})).unwrap_err();
    assert!(
        e.contains("IMAP 127.0.0.1:")
            && e.contains("invalid peer certificate: UnknownIssuer (the server's certificate is not signed by a CA this machine trusts; for a private CA, set the account's ca_file)"),
        "{e}"
    );
    let before = m.stats()["mail"].as_array().unwrap().len();
    let e = tool(
        &d,
        "email_send",
        json!({"account": "untrusted", "to": [USER], "subject": "s", "body": "b"}),
    )
    .unwrap_err();
    assert!(
        e.contains("SMTP 127.0.0.1:")
            && e.contains("invalid peer certificate: UnknownIssuer (the server's certificate is not signed by a CA this machine trusts; for a private CA, set the account's ca_file)"),
        "{e}"
    );
    assert_eq!(m.stats()["mail"].as_array().unwrap().len(), before);
}

#[test]
fn the_server_killed_mid_call_is_an_error_and_the_next_call_connects_again() {
    let mut m = MailServers::start();
    fixtures(&m);
    let d = start(&m, &password_account(&m, "timeout_secs = 20\n"));
    set_secret(&d, "email-work-password", PASSWORD);
    ok(&d, "email_list_inbox", json!({}));
    let pid = d.ready_pid("email");

    // The answer is held back, Dovecot dies with the command in flight.
    m.proxy.stall(true);
    let call = spawn_oictl(&d, &["tool", "email_list_inbox", "{}"]);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    m.kill_dovecot();
    // What Dovecot had sent before it died never reaches the adapter.
    m.proxy.cut();
    m.proxy.stall(false);
    let o = call.wait_with_output().unwrap();
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("the connection to the IMAP server broke"),
        "{}",
        out(&o)
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // While it is down, calls fail fast and say where.
    let e = tool(&d, "email_list_inbox", json!({})).unwrap_err();
    assert!(
        e.contains(&format!("IMAP 127.0.0.1:{}", m.imap_port)),
        "{e}"
    );

    m.start_dovecot();
    let list = ok(&d, "email_list_inbox", json!({}));
    assert_eq!(list["matching"], 3);
    assert_eq!(d.ready_pid("email"), pid, "the adapter was restarted");
}

fn oauth_daemon(m: &MailServers) -> Daemon {
    let d = start(
        m,
        &format!(
            "[email]\nsend_to = \"any\"\n{}{}",
            m.account("gmail", ""),
            m.oauth("gmail")
        ),
    );
    set_secret(&d, "email-gmail-client-secret", "test-client-secret");
    set_secret(&d, "email-gmail-refresh-token", "rt-initial");
    d
}

#[test]
fn oauth2_tokens_are_renewed_when_refused_and_a_revoked_login_says_what_to_do() {
    let m = MailServers::start();
    fixtures(&m);
    let d = oauth_daemon(&m);
    ok(&d, "email_list_inbox", json!({}));
    assert_eq!(m.stats()["refresh_grants"], 1);
    assert!(m.stats()["introspections"].as_u64().unwrap() >= 1);
    // A cached token is used again while it is valid.
    ok(&d, "email_list_inbox", json!({}));
    assert_eq!(m.stats()["refresh_grants"], 1);

    // The provider expires every access token and the server drops the
    // session: the adapter logs in again, is refused, renews the token
    // and runs the call.
    m.control(json!({"expire_access": true}));
    m.proxy.cut();
    let list = ok(&d, "email_list_inbox", json!({}));
    assert_eq!(list["matching"], 3);
    assert_eq!(m.stats()["refresh_grants"], 2);

    // SMTP: a refused token (535) is renewed and the message sent once.
    m.control(json!({"expire_access": true}));
    let sent = ok(
        &d,
        "email_send",
        json!({"to": [USER], "subject": "via xoauth2", "body": "b"}),
    );
    assert_eq!(sent["sent"], true);
    let st = m.stats();
    assert_eq!(st["refresh_grants"], 3);
    assert_eq!(st["smtp_xoauth2"], 2, "{st}");
    let copies = st["mail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["data"].as_str().unwrap().contains("via xoauth2"))
        .count();
    assert_eq!(copies, 1);

    // A token about to expire is renewed before use.
    m.control(json!({"expires_in": 30}));
    m.control(json!({"expire_access": true}));
    m.proxy.cut();
    ok(&d, "email_list_inbox", json!({}));
    let n = m.stats()["refresh_grants"].as_u64().unwrap();
    m.proxy.cut();
    ok(&d, "email_list_inbox", json!({}));
    assert_eq!(
        m.stats()["refresh_grants"],
        n + 1,
        "a 30 s token is inside the 60 s skew"
    );

    // Revoked: the error names the account and the command.
    m.control(json!({"revoke_refresh": true, "expire_access": true, "expires_in": 3600}));
    m.proxy.cut();
    let e = tool(&d, "email_list_inbox", json!({})).unwrap_err();
    assert!(
        e.contains("account 'gmail'")
            && e.contains("invalid_grant")
            && e.contains("run `oictl email login gmail`"),
        "{e}"
    );
    assert!(!e.contains("rt-initial"), "{e}");

    // The login: oictl prints the provider's address, the "browser" goes
    // there, the provider sends it back to oictl's listener, and the new
    // refresh token lands in the vault.
    let mut login = spawn_oictl(&d, &["email", "login", "gmail", "--timeout", "30"]);
    let mut stdout = BufReader::new(login.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "oictl printed no address"
        );
        if line.starts_with("http://") {
            break line.trim().to_string();
        }
    };
    assert!(
        url.contains("code_challenge_method=S256")
            && url.contains("state=")
            && url.contains("access_type=offline")
            && url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
        "{url}"
    );
    let path = url.trim_start_matches(&format!("http://127.0.0.1:{}", m.http_port));
    let (code, head, _) = http(m.http_port, "GET", path, None);
    assert_eq!(code, 302, "{head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap()
        .to_string();
    let rest = location.trim_start_matches("http://127.0.0.1:");
    let (port, target) = rest.split_once('/').unwrap();
    let (code, _, _) = http(port.parse().unwrap(), "GET", &format!("/{target}"), None);
    assert_eq!(code, 200);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut said).unwrap();
    let o = login.wait_with_output().unwrap();
    said.push_str(&String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("in the vault as email-gmail-refresh-token"),
        "{said}"
    );
    assert!(
        !said.contains("rt-"),
        "the refresh token was printed: {said}"
    );
    assert_eq!(m.stats()["code_grants"], 1);
    ok(&d, "email_list_inbox", json!({}));
}

#[test]
fn through_the_agent_unread_mail_is_read_and_summarized_by_email() {
    let m = MailServers::start();
    fixtures(&m);
    let rt = fake_runtime();
    let llm = rt
        .block_on(oi_llm_router::fake::FakeProvider::start())
        .unwrap();
    let d = Daemon::start(&config_enabling(
        &["vault", "email", "agent", "llm-router", "memory"],
        "",
        &format!(
            "{}[cascade]\norder = [\"main\"]\n\n[vault]\nkey_source = \"file\"\n\n{}",
            model("main", "openai", &llm.url("/v1"), "no_key = true"),
            password_account(&m, "")
        ),
    ));
    for s in ["vault", "email", "agent", "llm-router"] {
        d.ready_pid(s);
    }
    set_secret(&d, "email-work-password", PASSWORD);
    // The uids Dovecot gave the fixtures: 1, 2, 3 in delivery order.
    let step = |id: &str, name: &str, args: Value| calls(&[(id, name, args)]);
    llm.push([
        step("c1", "email_list_inbox", json!({"unread": true})),
        step("c2", "email_read", json!({"uid": 2})),
        step("c3", "email_read", json!({"uid": 1})),
        step(
            "c4",
            "email_send",
            json!({"to": ["team@corp.example"], "subject": "Urgent mail summary",
                   "body": "1 urgent: the build server is down (Bob). 1 other: greetings from Jürgen."}),
        ),
        oi_llm_router::fake::openai::says("Summary sent to team@corp.example."),
    ]);
    let o = d.oictl(&[
        "ask",
        "--json",
        "check my unread emails, summarize anything urgent and send the summary to team@corp.example",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names = tool_names(&r);
    assert_eq!(
        names,
        ["email_list_inbox", "email_read", "email_read", "email_send"]
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
    assert!(shown[0].contains("URGENT: server down") && shown[0].contains("trust=\"untrusted\""));
    assert!(shown[1].contains("Please restart it."), "{}", shown[1]);
    assert!(shown[2].contains("Hallo Alice"), "{}", shown[2]);
    let mail = m.stats()["mail"].as_array().unwrap().clone();
    let summary = mail
        .iter()
        .find(|x| x["to"] == json!(["team@corp.example"]))
        .unwrap_or_else(|| panic!("no summary sent: {mail:?}"));
    assert!(
        summary["data"]
            .as_str()
            .unwrap()
            .contains("Subject: Urgent mail summary")
    );
}
