//! The connection to a mail server: TCP, then TLS from the first byte or
//! after STARTTLS, verified like every other client of the project
//! (rustls with the ring provider and the platform's roots, plus an
//! account's own CA file).

use std::io;
use std::time::Duration;

pub use oi_sandbox::tls::{Conn, connector, explain, extra_roots};
use oi_sandbox::tls::{TlsConnector, handshake, within};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::Tls;

/// An IMAP connection with its greeting read: after STARTTLS, the
/// greeting was read before the handshake, so `true` says it is done.
pub async fn imap(
    host: &str,
    port: u16,
    mode: Tls,
    tls: &TlsConnector,
    limit: Duration,
) -> io::Result<(Conn, bool)> {
    let tcp = within(
        limit,
        &format!("connecting to {host}:{port}"),
        TcpStream::connect((host.trim_matches(['[', ']']), port)),
    )
    .await?;
    let _ = tcp.set_nodelay(true);
    match mode {
        Tls::None => Ok((Conn::Plain(tcp), false)),
        Tls::Implicit => Ok((handshake(tcp, host, tls, limit).await?, false)),
        Tls::Starttls => {
            let mut r = BufReader::new(tcp);
            let mut line = String::new();
            within(limit, "the greeting", r.read_line(&mut line)).await?;
            if !line.starts_with("* OK") {
                return Err(io::Error::other(format!(
                    "{host}:{port} did not greet: {}",
                    line.trim()
                )));
            }
            r.get_mut().write_all(b"s1 STARTTLS\r\n").await?;
            loop {
                line.clear();
                if within(limit, "STARTTLS", r.read_line(&mut line)).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                if line.starts_with("s1 ") {
                    break;
                }
            }
            if !line.starts_with("s1 OK") {
                return Err(io::Error::other(format!(
                    "{host}:{port} refused STARTTLS: {}",
                    line.trim()
                )));
            }
            if !r.buffer().is_empty() {
                // Bytes before the handshake would be injected plain text.
                return Err(io::Error::other(format!(
                    "{host}:{port} sent data after STARTTLS before the handshake"
                )));
            }
            Ok((handshake(r.into_inner(), host, tls, limit).await?, true))
        }
    }
}
