//! Real CalDAV servers for the calendar tests, each on a free 127.0.0.1
//! port with its own directory: Radicale (PyPI `radicale`, htpasswd
//! auth) and Xandikos (PyPI `xandikos`, no auth), killed with their
//! process group.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, kill_group, wait_for};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-cal-pw";

fn require(module: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the calendar tests need {module}: python3 -m pip install radicale==3.9.0 xandikos==0.4.10 (.ci/run installs them)"
    );
}

/// A raw HTTP/1.1 request: status and body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    auth: bool,
    body: &str,
    extra: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = if auth {
        use base64::Engine;
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        )
    } else {
        String::new()
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).to_string();
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

pub struct Radicale {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Radicale {
    pub fn start() -> Radicale {
        require("radicale");
        let dir = tempfile::Builder::new()
            .prefix("oi-radicale")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("users"), format!("{USER}:{PASSWORD}\n")).unwrap();
        let port = free_port();
        std::fs::write(
            d.join("config"),
            format!(
                "[server]\nhosts = 127.0.0.1:{}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {}\nhtpasswd_encryption = plain\ndelay = 0\n[rights]\ntype = owner_only\n[storage]\nfilesystem_folder = {}\n[logging]\nlevel = warning\n",
                port,
                d.join("users").display(),
                d.join("collections").display()
            ),
        )
        .unwrap();
        let mut r = Radicale {
            port,
            dir,
            child: None,
        };
        r.run();
        r
    }

    /// Starts the server (again) on its port and data.
    pub fn run(&mut self) {
        let c = Command::new("python3")
            .args(["-m", "radicale", "--config"])
            .arg(self.dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("radicale did not start");
        self.child = Some(c);
        let port = self.port;
        wait_for(Duration::from_secs(20), "Radicale's port", || {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
        }
    }

    /// Makes the calendar `/alice/<slug>/` named `name`.
    pub fn mkcalendar(&self, slug: &str, name: &str) {
        let body = format!(
            "<?xml version=\"1.0\"?><C:mkcalendar xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><D:set><D:prop><D:displayname>{name}</D:displayname></D:prop></D:set></C:mkcalendar>"
        );
        let (code, b) = request(
            self.port,
            "MKCALENDAR",
            &format!("/{USER}/{slug}/"),
            true,
            &body,
            "Content-Type: application/xml\r\n",
        );
        assert_eq!(code, 201, "MKCALENDAR {slug}: {b}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Xandikos {
    /// Its data, removed when it is dropped.
    _dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Xandikos {
    pub fn start() -> Xandikos {
        require("xandikos");
        let dir = tempfile::Builder::new()
            .prefix("oi-xandikos")
            .tempdir()
            .unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "xandikos",
                "serve",
                "--defaults",
                "-l",
                "127.0.0.1",
                "-p",
            ])
            .arg(port.to_string())
            .arg("-d")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("xandikos did not start");
        wait_for(Duration::from_secs(20), "Xandikos's port", || {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        Xandikos {
            _dir: dir,
            port,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Xandikos {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
