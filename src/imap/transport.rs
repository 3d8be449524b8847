//! The byte stream under an IMAP session: TCP, implicit TLS or STARTTLS-upgraded TLS, with
//! rustls (ring) verifying against the webpki roots plus an optional extra CA file. `insecure`
//! swaps in a verifier that accepts any certificate, and says so loudly in the log.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A plain or TLS TCP stream. Both variants are `Unpin`, so delegation needs no pinning tricks.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `localhost` or a loopback address: the only place plaintext IMAP is allowed by default.
pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Builds the TLS connector. Errors are human-readable reasons (the caller adds context).
pub(crate) fn tls_connector(
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<TlsConnector, String> {
    let verify = if insecure {
        tracing::warn!(
            "TLS certificate verification is DISABLED for this endpoint (insecure = true): \
             anyone on the path can read the mail and the password"
        );
        crate::tls::Verify::Nothing
    } else {
        crate::tls::Verify::Roots {
            extra: ca_file,
            label: "CA file",
        }
    };
    Ok(TlsConnector::from(crate::tls::client_config(verify)?))
}

/// Runs the TLS handshake over `tcp` for `host`.
pub(crate) async fn handshake(
    connector: &TlsConnector,
    host: &str,
    tcp: TcpStream,
) -> Result<Stream, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned())
        .map_err(|e| format!("invalid server name {host:?}: {e}"))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Stream::Tls(Box::new(tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("imap.example.org"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn missing_or_empty_ca_file_is_a_clear_error() {
        let err = tls_connector(Some(Path::new("/nonexistent/ca.pem")), false)
            .err()
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").expect("write");
        let err = tls_connector(Some(&empty), false).err().unwrap_or_default();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
