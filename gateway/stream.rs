//! A client connection that is either plain TCP or TLS, behind one type, so
//! the session code is the same before and after STLS.
//!
//! Every write, flush included, and the close at the end are bounded in
//! time, so a client that stops reading cannot hold its session (and its
//! mailbox lock) open: TLS keeps what the socket will not take in a buffer
//! of its own, which only a flush, and then close_notify, push out.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::tls::TlsProvider;

/// How long [`Stream::close`] waits for the client to take the end of the
/// connection: close_notify is a few dozen octets, which a client still
/// reading takes at once.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// A TCP connection, with or without TLS on it.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP (port 110 or 587 before STLS/STARTTLS).
    Plain(TcpStream),
    /// TLS over TCP (implicit TLS, or after the upgrade).
    Tls(Box<TlsStream<TcpStream>>),
    /// The TCP stream has been handed to a TLS handshake (STLS, STARTTLS);
    /// reads and writes fail until the TLS stream is put back.
    Upgrading,
}

impl Stream {
    /// True for a TLS connection.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Accepts a TLS connection (ports 995, 465): the handshake must finish
    /// within `timeout`.
    pub async fn accept_tls(
        tcp: TcpStream,
        tls: &TlsProvider,
        timeout: Duration,
    ) -> Option<Stream> {
        match tokio::time::timeout(timeout, tls.acceptor().accept(tcp)).await {
            Ok(Ok(stream)) => Some(Stream::Tls(Box::new(stream))),
            _ => None,
        }
    }

    /// Upgrades a plain connection to TLS in place (STLS, STARTTLS). On
    /// `false` the handshake failed or timed out and the stream is unusable.
    pub async fn start_tls(&mut self, tls: &TlsProvider, timeout: Duration) -> bool {
        let Some(tcp) = self.take_plain() else {
            return false;
        };
        match Stream::accept_tls(tcp, tls, timeout).await {
            Some(upgraded) => {
                *self = upgraded;
                true
            }
            None => false,
        }
    }

    /// Writes all of `output` and clears it. A client that does not take the
    /// bytes within `timeout` is an error, so a peer that stops reading
    /// cannot hold a session forever. The flush counts too: TLS takes
    /// bytes into its own buffer and writes them to the socket only then.
    pub async fn write_within(
        &mut self,
        output: &mut Vec<u8>,
        timeout: Duration,
    ) -> io::Result<()> {
        let written = async {
            self.write_all(output).await?;
            self.flush().await
        };
        tokio::time::timeout(timeout, written)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
        output.clear();
        Ok(())
    }

    /// Ends the connection: TLS sends close_notify, then TCP its FIN. A
    /// client that stopped reading cannot take even that once its socket
    /// buffers are full, so the wait is bounded by [`CLOSE_WITHIN`]; the
    /// kernel is left with the socket and the session ends all the same.
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_WITHIN, self.shutdown()).await;
    }

    /// Takes the plain TCP stream out for a TLS handshake, leaving
    /// [`Stream::Upgrading`]; `None` (and nothing changed) if not plain.
    pub fn take_plain(&mut self) -> Option<TcpStream> {
        match std::mem::replace(self, Stream::Upgrading) {
            Stream::Plain(tcp) => Some(tcp),
            other => {
                *self = other;
                None
            }
        }
    }

    /// The negotiated TLS version, e.g. `TLSv1_3`, for logs and headers.
    pub fn tls_version(&self) -> Option<&'static str> {
        match self {
            Stream::Plain(_) | Stream::Upgrading => None,
            Stream::Tls(tls) => tls.get_ref().1.protocol_version().and_then(|v| v.as_str()),
        }
    }
}

fn upgrading() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection is being upgraded to TLS",
    )
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
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
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
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use tokio::net::TcpListener;

    use super::*;

    /// A TLS connection on loopback: the server's side as a [`Stream`],
    /// and the client's, which the caller keeps open and never reads.
    async fn tls_pair() -> (Stream, tokio_rustls::client::TlsStream<TcpStream>) {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let tls = TlsProvider::load(&cert, &key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = async {
            let (tcp, _) = listener.accept().await.unwrap();
            Stream::accept_tls(tcp, &tls, Duration::from_secs(10))
                .await
                .unwrap()
        };
        let client = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await.unwrap()
        };
        tokio::join!(server, client)
    }

    /// Writes 64 KiB at a time to a client that never reads, until a
    /// write fails; returns that error.
    async fn write_until_refused(stream: &mut Stream) -> io::Error {
        loop {
            let mut output = vec![b'x'; 64 * 1024];
            if let Err(error) = stream
                .write_within(&mut output, Duration::from_millis(200))
                .await
            {
                return error;
            }
        }
    }

    /// Before: the flush after the write was not under the timeout, and
    /// TLS keeps what the socket cannot take in its own buffer, so the
    /// write that filled it "succeeded" and the flush waited for ever: a
    /// TLS client that stopped reading in the middle of a RETR held its
    /// session, and its mailbox lock, as long as it kept the connection.
    #[tokio::test]
    async fn a_tls_client_that_stops_reading_is_given_up_at_the_timeout() {
        let (mut stream, _client) = tls_pair().await;
        let refused =
            tokio::time::timeout(Duration::from_secs(30), write_until_refused(&mut stream))
                .await
                .expect("the writes were never given up");
        assert_eq!(refused.kind(), io::ErrorKind::TimedOut);
    }

    /// Before: close_notify waited behind the bytes the client never
    /// took, for ever.
    #[tokio::test]
    async fn closing_a_connection_whose_client_stopped_reading_ends() {
        let (mut stream, _client) = tls_pair().await;
        tokio::time::timeout(Duration::from_secs(30), write_until_refused(&mut stream))
            .await
            .expect("the writes were never given up");
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(30), stream.close())
            .await
            .expect("close waited for a client that does not read");
        assert!(started.elapsed() < CLOSE_WITHIN + Duration::from_secs(2));
    }
}
