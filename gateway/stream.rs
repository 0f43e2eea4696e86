//! A client connection that is either plain TCP or TLS, behind one type, so
//! the session code is the same before and after STLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::tls::TlsProvider;

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
    /// cannot hold a session forever.
    pub async fn write_within(
        &mut self,
        output: &mut Vec<u8>,
        timeout: Duration,
    ) -> io::Result<()> {
        if !output.is_empty() {
            tokio::time::timeout(timeout, self.write_all(output))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
            output.clear();
        }
        self.flush().await
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
