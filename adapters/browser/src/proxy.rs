//! The browser's only way out: an HTTP proxy on 127.0.0.1 (a random port,
//! for this Chromium alone) that connects to an address only after the
//! SSRF guard allowed it, and to exactly that address. Chromium is started
//! with `--proxy-server` and no bypass (not even loopback), so every
//! connection a page opens, WebSockets included, comes here: `CONNECT
//! host:port` for https and wss, absolute-form requests for http and ws.
//! A name is resolved once, here, and the connection goes to the address
//! checked, so a name that rebinds between check and use reaches nothing.
//!
//! CDP `Fetch` interception stays in front of this for its clearer errors
//! and for schemes; this is the boundary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use oi_sandbox::netguard::Guard;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

/// Longest request head read.
const MAX_HEAD: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A proxy listening for one browser; dropping it stops accepting.
pub struct Proxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(guard: Arc<Guard>) -> std::io::Result<Proxy> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let g = guard.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(s, &g).await {
                        debug!("proxy connection: {e}");
                    }
                });
            }
        });
        Ok(Proxy { addr, task })
    }
}

/// The target of a request head: (host, port, the head to send on, or
/// `None` for a CONNECT tunnel).
fn target(head: &str) -> Result<(String, u16, Option<String>), String> {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (method, uri, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    if method == "CONNECT" {
        let (host, port) = uri
            .rsplit_once(':')
            .ok_or_else(|| format!("CONNECT {uri}: no port"))?;
        let port = port
            .parse()
            .map_err(|_| format!("CONNECT {uri}: bad port"))?;
        return Ok((host.trim_matches(['[', ']']).to_string(), port, None));
    }
    let url = url::Url::parse(uri).map_err(|e| format!("{uri}: {e}"))?;
    if !matches!(url.scheme(), "http" | "ws") {
        return Err(format!(
            "{uri}: only http and ws go through the proxy in the clear"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{uri}: no host"))?
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    // Origin form to the server; hop-by-hop proxy headers dropped. An
    // upgrade (a WebSocket) keeps its Connection header; anything else is
    // one request per connection.
    let upgrade = head.to_ascii_lowercase().contains("\r\nupgrade:");
    let mut out = format!("{method} {path} {version}\r\n");
    for l in lines.filter(|l| !l.is_empty()) {
        let name = l
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if name.starts_with("proxy-")
            || (!upgrade && (name == "connection" || name == "keep-alive"))
        {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    if !upgrade {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    Ok((host, port, Some(out)))
}

async fn serve(s: TcpStream, guard: &Guard) -> std::io::Result<()> {
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let n = r.read_line(&mut head).await?;
        if n == 0 || head.len() > MAX_HEAD {
            return Ok(());
        }
        if head.ends_with("\r\n\r\n") {
            break;
        }
    }
    let (host, port, forward) = match target(&head) {
        Ok(t) => t,
        Err(why) => return refuse(r.get_mut(), &why).await,
    };
    let addrs = match guard.resolve_on(&host, Some(port)).await {
        Ok(a) => a,
        Err(e) => {
            info!(host, port, "connection refused: {e}");
            return refuse(r.get_mut(), &e.to_string()).await;
        }
    };
    let mut up = None;
    for ip in addrs {
        if let Ok(Ok(c)) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect(SocketAddr::new(ip, port)),
        )
        .await
        {
            up = Some(c);
            break;
        }
    }
    let Some(mut up) = up else {
        let _ = r
            .get_mut()
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return Ok(());
    };
    match forward {
        None => {
            r.get_mut()
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await?
        }
        Some(h) => up.write_all(h.as_bytes()).await?,
    }
    // Bytes the reader already holds past the head go on first.
    let buffered = r.buffer().to_vec();
    if !buffered.is_empty() {
        up.write_all(&buffered).await?;
    }
    let mut down = r.into_inner();
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
    Ok(())
}

async fn refuse(s: &mut TcpStream, why: &str) -> std::io::Result<()> {
    let body = format!("refused by the SSRF guard: {why}\n");
    s.write_all(
        format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    // Drain a little so the client reads the answer before the close.
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_millis(50), s.read(&mut sink)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_as_a_tunnel_or_a_request_in_origin_form() {
        let (h, p, f) =
            target("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n").unwrap();
        assert_eq!((h.as_str(), p, f), ("example.org", 443, None));
        let (h, p, f) = target("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((h.as_str(), p, f.is_none()), ("::1", 8443, true));
        let (h, p, f) = target(
            "GET http://127.0.0.1:8080/a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        assert_eq!((h.as_str(), p), ("127.0.0.1", 8080));
        assert_eq!(
            f.unwrap(),
            "GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let (_, p, f) = target("GET ws://h/chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").unwrap();
        let f = f.unwrap();
        assert_eq!(p, 80);
        assert!(
            f.contains("Connection: Upgrade") && !f.contains("close"),
            "{f}"
        );
        assert!(target("GET ftp://h/ HTTP/1.1\r\n\r\n").is_err());
        assert!(target("CONNECT nohost HTTP/1.1\r\n\r\n").is_err());
    }
}
