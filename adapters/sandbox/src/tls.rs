//! TLS for the clients that open their own connections (IMAP, the Feishu
//! and Discord WebSockets): rustls with the ring provider and the
//! platform's roots, plus a CA file of the user's, as reqwest verifies
//! every other client of the project.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
pub use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connection, encrypted or (to this machine only) not.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The CA certificates of `ca_file` ("" for none).
pub fn extra_roots(ca_file: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    if ca_file.is_empty() {
        return Ok(Vec::new());
    }
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("cannot read the CA file {ca_file}: {e}"))?
        .collect();
    let certs = certs.map_err(|e| format!("the CA file {ca_file} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("the CA file {ca_file} holds no certificate"));
    }
    Ok(certs)
}

/// `error` with what to do when it is a certificate the client did not
/// accept; `private_ca` says what to do about a CA this machine does not
/// trust ("set the account's ca_file").
pub fn explain(error: String, private_ca: &str) -> String {
    let unknown;
    let hint = if error.contains("UnknownIssuer") {
        unknown = format!(
            "the server's certificate is not signed by a CA this machine trusts; {private_ca}"
        );
        unknown.as_str()
    } else if error.contains("NotValidForName") {
        "the server's certificate is for another name; check the host"
    } else if error.contains("Expired") && error.contains("certificate") {
        "the server's certificate has expired"
    } else {
        return error;
    };
    format!("{error} ({hint})")
}

/// The TLS client: the platform's roots and `extra`.
pub fn connector(extra: Vec<CertificateDer<'static>>) -> Result<TlsConnector, String> {
    crate::netguard::install_crypto();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| format!("cannot set up TLS verification: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `f`, or a timeout error naming `what`.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(limit, f).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: no answer within {} s", limit.as_secs()),
        )
    })?
}

/// TLS over `tcp` to `host`, within `limit`.
pub async fn handshake(
    tcp: TcpStream,
    host: &str,
    tls: &TlsConnector,
    limit: Duration,
) -> io::Result<Conn> {
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let s = within(limit, "the TLS handshake", tls.connect(name, tcp)).await?;
    Ok(Conn::Tls(Box::new(s)))
}
