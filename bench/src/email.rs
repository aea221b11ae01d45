//! `oi-bench email`: the email adapter against a real Dovecot holding a
//! 10,000-message INBOX of which 50 are unread (Debian's dovecot-imapd,
//! the tests' config in `tests/email/dovecot.conf`).
//!
//! - `email_list_50_unread_p50_ms` / `_p99_ms`: `email_list_inbox` with
//!   `unread` and `limit = 50` through the bus, next to
//!   `baseline_imap_search_fetch_p50_ms`: the same UID SEARCH and UID FETCH
//!   on a plain IMAP connection in the same run (what Dovecot itself takes).
//! - `email_read_p50_ms` / `_p99_ms`: `email_read` of one message.
//! - `email_adapter_idle_pss_kb` before any call; `email_adapter_pss_kb`
//!   after the calls, with its session open.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use oi_kernel::client::CallOptions;
use serde_json::json;

use crate::daemon::{Daemon, Group, only, pid_of, pss_kb, release_bins, set_secret, wait_port};
use crate::figure;
use crate::stats::Samples;

const USER: &str = "alice@example.test";
const PASSWORD: &str = "bench-pw";
const MESSAGES: usize = 10_000;
const UNREAD: usize = 50;
const SUMMARY_ITEMS: &str = "(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID MIME-VERSION CONTENT-TYPE CONTENT-TRANSFER-ENCODING)] BODY.PEEK[TEXT]<0.8192>)";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A maildir INBOX of `MESSAGES`, the last `UNREAD` of them unread.
fn fill(maildir: &std::path::Path) -> anyhow::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub))?;
    }
    let body = "Hello,\r\n\r\nthis is a message of the benchmark's INBOX, with a few lines of text so that a snippet has something to show.\r\n\r\nRegards\r\n";
    for i in 0..MESSAGES {
        let flags = if i >= MESSAGES - UNREAD { "" } else { "S" };
        let msg = format!(
            "From: Sender {n} <sender{n}@example.com>\r\nTo: {USER}\r\nSubject: Message number {i}\r\nDate: Tue, 01 Dec 2026 10:{m:02}:00 +0000\r\nMessage-ID: <m{i}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
            n = i % 97,
            m = i % 60
        );
        std::fs::write(
            maildir
                .join("cur")
                .join(format!("{}.M{i}P1.bench:2,{flags}", 1_700_000_000 + i)),
            msg,
        )?;
    }
    Ok(())
}

fn start_dovecot(dir: &std::path::Path, port: u16) -> anyhow::Result<Group> {
    let conf = include_str!("../../tests/email/dovecot.conf")
        .replace("@DIR@", &dir.display().to_string())
        .replace("@IMAP_PORT@", &port.to_string())
        .replace("@SSL@", "no")
        .replace("@SSL_FILES@", "")
        .replace("@IMAPS_PORT@", "0")
        .replace("@LMTP_PORT@", &free_port()?.to_string());
    std::fs::write(dir.join("dovecot.conf"), conf)?;
    std::fs::write(dir.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n"))?;
    std::fs::write(
        dir.join("oauth2.conf"),
        "introspection_mode = post\nintrospection_url = http://127.0.0.1:9/introspect\n",
    )?;
    for sub in ["run", "state"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    Command::new("chmod").arg("755").arg(dir).status()?;
    Command::new("chown")
        .args(["-R", "dovecot:dovecot"])
        .arg(dir.join("mail"))
        .status()?;
    let child = Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(dir.join("dovecot.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("dovecot did not start: apt-get install dovecot-imapd dovecot-lmtpd")?;
    let g = Group(child);
    wait_port(port, "Dovecot", Duration::from_secs(15))?;
    Ok(g)
}

/// The end of Dovecot's log, for an error that happened on its side.
fn dovecot_log(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(8).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "the plain IMAP baseline failed; Dovecot's log ends:\n{}",
        tail.join("\n")
    )
}

/// A plain IMAP connection: commands and their answers up to the tag.
struct Raw {
    s: TcpStream,
    n: u32,
}

impl Raw {
    fn cmd(&mut self, c: &str) -> anyhow::Result<String> {
        self.n += 1;
        let tag = format!("bq{}", self.n);
        write!(self.s, "{tag} {c}\r\n")?;
        let done = format!("\r\n{tag} ");
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = self
                .s
                .read(&mut buf)
                .with_context(|| format!("waiting for Dovecot's answer to {c}"))?;
            anyhow::ensure!(n > 0, "Dovecot closed the connection");
            out.extend_from_slice(&buf[..n]);
            // The tagged answer may be the first line: look for it after a
            // line break put in front.
            let text = format!("\r\n{}", String::from_utf8_lossy(&out));
            if let Some(i) = text.find(&done)
                && text[i + 2..].contains("\r\n")
            {
                anyhow::ensure!(
                    text[i + done.len()..].starts_with("OK"),
                    "{c}: {}",
                    &text[i..]
                );
                return Ok(text);
            }
        }
    }
}

fn baseline(port: u16, n: usize) -> anyhow::Result<Samples> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut r = Raw { s, n: 0 };
    let mut greeting = Vec::new();
    let mut byte = [0u8; 1];
    while !greeting.ends_with(b"\r\n") {
        anyhow::ensure!(
            r.s.read(&mut byte)? == 1,
            "Dovecot closed before its greeting"
        );
        greeting.push(byte[0]);
    }
    r.cmd(&format!("LOGIN {USER} {PASSWORD}"))?;
    r.cmd("SELECT INBOX")?;
    let mut v = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let found = r.cmd("UID SEARCH UNSEEN")?;
        let uids: Vec<&str> = found
            .lines()
            .find(|l| l.starts_with("* SEARCH"))
            .unwrap_or_default()
            .split_whitespace()
            .skip(2)
            .collect();
        anyhow::ensure!(uids.len() == UNREAD, "{} unread", uids.len());
        r.cmd(&format!("UID FETCH {} {SUMMARY_ITEMS}", uids.join(",")))?;
        v.push(t0.elapsed());
    }
    Ok(Samples::new(v))
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("oi-bench-mail").tempdir()?;
    fill(&dir.path().join("mail").join(USER))?;
    let port = free_port()?;
    let _dovecot = start_dovecot(dir.path(), port)?;
    let n = if quick { 20 } else { 200 };
    // Dovecot indexes the INBOX on its first SELECT.
    let base = baseline(port, 1)
        .and_then(|_| baseline(port, n))
        .with_context(|| dovecot_log(dir.path()))?;
    let off = only(&["vault", "email"]);
    let config = format!(
        "{off}[vault]\nkey_source = \"file\"\n\n[email.accounts.bench]\nusername = \"{USER}\"\nimap = {{ host = \"127.0.0.1\", port = {port}, tls = \"none\" }}\nsmtp = {{ host = \"127.0.0.1\", port = 9, tls = \"none\" }}\nauth = {{ method = \"password\", password_secret = \"email-bench-password\" }}\n"
    );
    let daemon = Daemon::start(&release_bins()?.join("openintentd"), &config)?;
    daemon.wait_ready()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = daemon.client().await?;
        set_secret(&client, "email-bench-password", PASSWORD).await?;
        let adapter = pid_of(&client, "email").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        figure("email_adapter_idle_pss_kb", pss_kb(adapter).unwrap_or(0));
        let call = |name: &'static str, args: serde_json::Value| {
            let client = client.clone();
            async move {
                oi_kernel::tool::call_on(
                    &client,
                    "email",
                    name,
                    &args.to_string(),
                    CallOptions::deadline(Duration::from_secs(60)),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))
            }
        };
        let args = json!({"unread": true, "limit": UNREAD});
        let first = call("email_list_inbox", args.clone()).await?;
        anyhow::ensure!(first["matching"] == UNREAD, "{first}");
        let uid = first["messages"][0]["uid"].clone();
        let (mut list, mut read) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let t0 = Instant::now();
            let v = call("email_list_inbox", args.clone()).await?;
            anyhow::ensure!(v["shown"] == UNREAD, "{v}");
            list.push(t0.elapsed());
            let t0 = Instant::now();
            let m = call("email_read", json!({"uid": uid})).await?;
            anyhow::ensure!(
                m["body"].as_str().unwrap_or_default().contains("benchmark"),
                "{m}"
            );
            read.push(t0.elapsed());
        }
        let l = Samples::new(list);
        figure("email_list_50_unread_p50_ms", l.ms(50.0));
        figure("email_list_50_unread_p99_ms", l.ms(99.0));
        figure("baseline_imap_search_fetch_p50_ms", base.ms(50.0));
        let r = Samples::new(read);
        figure("email_read_p50_ms", r.ms(50.0));
        figure("email_read_p99_ms", r.ms(99.0));
        figure("email_adapter_pss_kb", pss_kb(adapter).unwrap_or(0));
        anyhow::Ok(())
    })
}
