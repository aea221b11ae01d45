//! A small HTTP/1.1 server on 127.0.0.1 for the web adapters' tests: a
//! DuckDuckGo result page, pages in odd charsets, redirect chains,
//! redirects to private addresses, slow, huge and hanging responses, and an
//! echo of the request. One thread per connection, `Connection: close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DDG_PAGE: &str = include_str!("../../adapters/web/tests/fixtures/ddg-rust-async.html");

/// Text written by a script: a static fetch does not see it.
const JS_TEXT: &str = "<html><head><title>Rendered</title></head><body><main><div id=out></div></main><script>document.getElementById('out').textContent = 'The answer, written by JavaScript: 4217';</script></body></html>";

/// A form posted to /submitted.
const FORM: &str = "<html><head><title>Order</title></head><body><h1>Order</h1><form action=/submitted method=post><label for=n>Name</label><input id=n name=name><label for=e>Email</label><input id=e name=email type=email><select name=size><option>small</option><option>large</option></select><button type=submit>Send order</button></form></body></html>";

pub struct WebServer {
    pub port: u16,
    /// Request heads received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl WebServer {
    pub fn start() -> WebServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let r = requests.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let r = r.clone();
                std::thread::spawn(move || serve(s, port, &r));
            }
        });
        WebServer { port, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self, needle: &str) -> bool {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.contains(needle))
    }
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

fn serve(mut s: TcpStream, port: u16, requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut head = String::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; content_length];
    let _ = reader.read_exact(&mut body);
    requests
        .lock()
        .unwrap()
        .push(format!("{head}\r\n{}", String::from_utf8_lossy(&body)));
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let html = |ct: &str| vec![("Content-Type", ct.to_string())];
    match path.split('?').next().unwrap_or("") {
        "/html/" => respond(&mut s, "200 OK", &html("text/html; charset=UTF-8"), DDG_PAGE.as_bytes()),
        "/latin1" => respond(
            &mut s,
            "200 OK",
            &html("text/html; charset=ISO-8859-1"),
            b"<html><head><title>Caf\xe9</title></head><body><p>Cr\xe8me br\xfbl\xe9e \xe0 la carte</p></body></html>",
        ),
        "/sjis" => respond(
            &mut s,
            "200 OK",
            &html("text/html"),
            b"<html><head><meta charset=\"Shift_JIS\"><title>\x93\xfa\x96\x7b</title></head><body><main><p>\x93\xfa\x96\x7b\x8c\xea\x82\xcc\x83\x79\x81\x5b\x83\x57</p></main></body></html>",
        ),
        "/article/tokio" => respond(
            &mut s,
            "200 OK",
            &html("text/html; charset=utf-8"),
            b"<html><head><title>Tokio in 2026</title></head><body><nav>menu</nav><main><p>Tokio served 1.2 million requests per second in the hyper benchmark.</p></main></body></html>",
        ),
        "/article/smol" => respond(
            &mut s,
            "200 OK",
            &html("text/html; charset=utf-8"),
            b"<html><head><title>smol notes</title></head><body><article><p>smol starts in 40 microseconds and fits in 1,500 lines.</p></article></body></html>",
        ),
        p if p.starts_with("/chain/") => {
            let n: u32 = p.trim_start_matches("/chain/").parse().unwrap_or(0);
            if n == 0 {
                respond(&mut s, "200 OK", &html("text/html"), b"<html><head><title>End of chain</title></head><body>arrived</body></html>");
            } else {
                respond(&mut s, "302 Found", &[("Location", format!("/chain/{}", n - 1))], b"");
            }
        }
        "/to" => {
            let target = path.split_once("?u=").map(|x| x.1).unwrap_or("/");
            respond(&mut s, "302 Found", &[("Location", target.to_string())], b"");
        }
        "/to-localhost" => respond(&mut s, "302 Found", &[("Location", format!("http://localhost:{port}/chain/0"))], b""),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            respond(&mut s, "200 OK", &html("text/plain"), b"late");
        }
        "/hang" => std::thread::sleep(Duration::from_secs(60)),
        "/huge" => {
            let chunk = vec![b'a'; 64 * 1024];
            let total = 20 * 1024 * 1024;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n");
            let _ = s.write_all(head.as_bytes());
            for _ in 0..total / chunk.len() {
                if s.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        // The credential echoed back in a form a model can decode: every
        // character of the Authorization (or X-Api-Key) value as a JSON
        // \u escape, or the value in base64.
        "/echo-escaped" | "/echo-base64" => {
            let cred = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    ["authorization", "x-api-key"]
                        .contains(&k.trim().to_ascii_lowercase().as_str())
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            let body = if path.starts_with("/echo-escaped") {
                let esc: String = cred.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
                format!("{{\"seen\": \"{esc}\"}}")
            } else {
                use base64::Engine;
                let token = cred.rsplit(' ').next().unwrap_or("");
                format!(
                    "{{\"seen\": \"{}\"}}",
                    base64::engine::general_purpose::STANDARD.encode(token)
                )
            };
            respond(&mut s, "200 OK", &html("application/json"), body.as_bytes());
        }
        "/js-text" => respond(&mut s, "200 OK", &html("text/html"), JS_TEXT.as_bytes()),
        "/form" => respond(&mut s, "200 OK", &html("text/html"), FORM.as_bytes()),
        "/submitted" => {
            let page = format!(
                "<html><head><title>Thanks</title></head><body><p id=conf>Confirmation number: C-{}</p><pre>{}</pre></body></html>",
                1000 + body.len(),
                String::from_utf8_lossy(&body).replace('<', "&lt;")
            );
            respond(&mut s, "200 OK", &html("text/html"), page.as_bytes())
        }
        "/never" => {
            // Headers and the start of a page, then nothing: the load event
            // never fires.
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html><body><p>still loading");
            std::thread::sleep(Duration::from_secs(60));
        }
        p if p.starts_with("/reach") => {
            // Loads from places a page must not reach: the query says
            // which (a metadata address, a private one, another port).
            let targets: Vec<String> = path
                .split_once('?')
                .map(|(_, q)| q.split('&').map(|t| t.replace("%3A", ":")).collect())
                .unwrap_or_default();
            let mut page = String::from("<html><body><p>reaching out</p>");
            for t in &targets {
                page.push_str(&format!(
                    "<img src=\"http://{t}/img.png\"><script src=\"http://{t}/evil.js\"></script><script>fetch('http://{t}/xhr').catch(() => {{}}); try {{ new WebSocket('ws://{t}/ws'); }} catch (e) {{}}</script>"
                ));
            }
            page.push_str("</body></html>");
            respond(&mut s, "200 OK", &html("text/html"), page.as_bytes())
        }
        "/echo" => {
            let v = serde_json::json!({"head": head, "body": String::from_utf8_lossy(&body)});
            respond(&mut s, "200 OK", &html("application/json"), v.to_string().as_bytes());
        }
        _ => respond(&mut s, "404 Not Found", &html("text/plain"), b"no such page"),
    }
}
