//! Real mail servers for the email tests, each on free 127.0.0.1 ports
//! with its own directory: Dovecot (Debian's dovecot-imapd and
//! dovecot-lmtpd; XOAUTH2 checked by its oauth2 passdb) and
//! `tests/email/mailfake.py` (aiosmtpd submission delivering into Dovecot
//! over LMTP, and the OAuth2 provider Dovecot asks). The adapter reaches
//! IMAP through [`Proxy`], which a test can stall or cut.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{free_port, kill_group, wait_for};

pub const USER: &str = "alice@example.test";
pub const PASSWORD: &str = "alice-secret-pw";

fn require(cmd: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
        || std::path::Path::new("/usr/sbin").join(cmd).is_file();
    assert!(
        found,
        "the email tests need {cmd}: {install} (.ci/run installs it)"
    );
}

/// A TCP relay to the real IMAP port that a test can stall (nothing more
/// reaches the client) or cut (every connection closed).
pub struct Proxy {
    pub port: u16,
    stalled: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (st, cs) = (stalled.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                cs.lock().unwrap().push(client.try_clone().unwrap());
                cs.lock().unwrap().push(server.try_clone().unwrap());
                let pipe =
                    |mut from: TcpStream, mut to: TcpStream, gate: Option<Arc<AtomicBool>>| {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16384];
                            loop {
                                let n = match from.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                while gate.as_ref().is_some_and(|g| g.load(Ordering::SeqCst)) {
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    None,
                );
                pipe(server, client, Some(st.clone()));
            }
        });
        Proxy {
            port,
            stalled,
            conns,
        }
    }

    pub fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }

    /// Closes every relayed connection, as a server dropping idle clients.
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// A test CA and a certificate for 127.0.0.1 signed by it (openssl), in
/// `<dir>/tls`: `ca.pem`, `server.pem`, `server.key`.
fn make_certs(dir: &std::path::Path) -> std::path::PathBuf {
    let t = dir.join("tls");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        t.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(&t)
            .output()
            .expect("the email TLS tests need openssl (apt-get install openssl)");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=oi test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    t
}

pub struct MailServers {
    pub dir: tempfile::TempDir,
    /// Dovecot's implicit-TLS IMAP port (STARTTLS is on `real_imap_port`).
    pub imaps_port: u16,
    /// The CA that signed both servers' certificate.
    pub ca_file: std::path::PathBuf,
    /// Where the adapter connects for IMAP (the proxy).
    pub imap_port: u16,
    pub real_imap_port: u16,
    pub smtp_port: u16,
    pub http_port: u16,
    pub proxy: Proxy,
    dovecot: Option<Child>,
    fake: Child,
}

impl MailServers {
    pub fn start() -> MailServers {
        require("dovecot", "apt-get install dovecot-imapd dovecot-lmtpd");
        let ok = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the email tests need aiosmtpd: python3 -m pip install aiosmtpd==1.4.6 (.ci/run installs it)"
        );
        let dir = tempfile::Builder::new()
            .prefix("oi-mail")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        // Dovecot's processes run as its own users and must reach the
        // mail directory.
        Command::new("chmod").arg("755").arg(d).status().unwrap();
        Command::new("chown")
            .args(["dovecot:dovecot"])
            .arg(d.join("mail"))
            .status()
            .unwrap();
        let (real_imap_port, lmtp_port, smtp_port, http_port, imaps_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let tls = make_certs(d);
        std::fs::write(d.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        std::fs::write(
            d.join("oauth2.conf"),
            format!(
                "introspection_mode = post\nintrospection_url = http://127.0.0.1:{http_port}/introspect\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n"
            ),
        )
        .unwrap();
        let conf = include_str!("../email/dovecot.conf")
            .replace("@DIR@", &d.display().to_string())
            .replace("@IMAP_PORT@", &real_imap_port.to_string())
            .replace("@LMTP_PORT@", &lmtp_port.to_string())
            .replace("@SSL@", "yes")
            .replace(
                "@SSL_FILES@",
                &format!(
                    "ssl_cert = <{0}/server.pem\nssl_key = <{0}/server.key",
                    tls.display()
                ),
            )
            .replace("@IMAPS_PORT@", &imaps_port.to_string());
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let mut fake = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/email/mailfake.py"
            ))
            .args([
                smtp_port.to_string(),
                http_port.to_string(),
                lmtp_port.to_string(),
                USER.to_string(),
                PASSWORD.to_string(),
                tls.join("server.pem").display().to_string(),
                tls.join("server.key").display().to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(fake.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "mailfake.py did not start");
        let mut m = MailServers {
            imaps_port,
            ca_file: tls.join("ca.pem"),
            dir,
            imap_port: 0,
            real_imap_port,
            smtp_port,
            http_port,
            proxy: Proxy::start(real_imap_port),
            dovecot: None,
            fake,
        };
        m.imap_port = m.proxy.port;
        m.start_dovecot();
        m
    }

    pub fn start_dovecot(&mut self) {
        let conf = self.dir.path().join("dovecot.conf");
        let c = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("dovecot did not start");
        self.dovecot = Some(c);
        let port = self.real_imap_port;
        wait_for(Duration::from_secs(15), "Dovecot's IMAP port", || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut b = [0u8; 64];
            let n = s.read(&mut b).ok()?;
            b[..n].starts_with(b"* OK").then_some(())
        });
    }

    /// Kills Dovecot and every process of it.
    pub fn kill_dovecot(&mut self) {
        if let Some(mut c) = self.dovecot.take() {
            kill_group(&mut c);
        }
    }

    /// The `[email.accounts.<name>]` table of an account on these servers.
    pub fn account(&self, name: &str, auth: &str) -> String {
        format!(
            "[email.accounts.{name}]\nusername = \"{USER}\"\nimap = {{ host = \"127.0.0.1\", port = {}, tls = \"none\" }}\nsmtp = {{ host = \"127.0.0.1\", port = {}, tls = \"none\" }}\n{auth}\n",
            self.imap_port, self.smtp_port
        )
    }

    /// OAuth2 settings against the fake provider.
    pub fn oauth(&self, name: &str) -> String {
        let h = self.http_port;
        format!(
            "[email.accounts.{name}.auth]\nmethod = \"oauth2\"\ntoken_url = \"http://127.0.0.1:{h}/token\"\nauthorize_url = \"http://127.0.0.1:{h}/authorize\"\nclient_id = \"test-client\"\nclient_secret_secret = \"email-{name}-client-secret\"\nrefresh_token_secret = \"email-{name}-refresh-token\"\nscopes = [\"mail\"]\nauthorize_params = {{ access_type = \"offline\" }}\n"
        )
    }

    /// A request to the fake (its JSON answer, its status and headers).
    pub fn http(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String, Value) {
        http(self.http_port, method, path, body)
    }

    pub fn control(&self, what: Value) {
        assert_eq!(self.http("POST", "/control", Some(what)).0, 200);
    }

    pub fn stats(&self) -> Value {
        self.http("GET", "/stats", None).2
    }

    /// Delivers a raw message to `to` over LMTP.
    pub fn deliver(&self, to: &str, raw: &[u8]) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let (code, _, v) = self.http(
            "POST",
            "/deliver",
            Some(json!({"to": [to], "data_b64": b64})),
        );
        assert_eq!(code, 200, "{v}");
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        self.kill_dovecot();
        kill_group(&mut self.fake);
    }
}

/// A tiny HTTP/1.0 client: status, head and JSON body.
pub fn http(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, String, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        code,
        head.to_string(),
        serde_json::from_str(rest).unwrap_or(Value::Null),
    )
}
