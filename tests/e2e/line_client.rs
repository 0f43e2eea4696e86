//! The one line client under every protocol the tests speak: plain TCP or
//! rustls TLS, reads bounded by a timeout, lines taken out of its own
//! buffer (so a test sees exactly what arrived, and when), and the switch
//! to TLS after STLS or STARTTLS, which checks that nothing was answered
//! behind the command. The POP3 [`Client`](crate::harness::Client) and the
//! SMTP [`Smtp`](crate::smtp_harness::Smtp) are thin layers on it, and the
//! hostile-input catalogue reads its exact bytes through it
//! ([`LineClient::wait_for`], [`LineClient::half_close`]).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

/// A client connection, plain or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// A TLS client handshake over `tcp`, for the name `localhost`.
pub fn tls_over(
    config: Arc<rustls::ClientConfig>,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

/// What one wait for the server brought ([`LineClient::wait_for`]).
#[derive(Debug)]
pub enum Arrival {
    /// More bytes, now buffered.
    Bytes,
    /// The end of the stream: FIN, or close_notify under TLS.
    Closed,
    /// Nothing within the wait.
    Nothing,
    /// The connection failed: a reset, or TCP closed under TLS without
    /// close_notify.
    Failed(std::io::Error),
}

/// How a [`LineClient::trickle`] went.
#[derive(Debug)]
pub struct Trickled {
    /// Everything the server sent while the client trickled.
    pub answer: String,
    /// When the server closed, from the first byte; `None`: still open.
    pub closed_after: Option<Duration>,
}

/// A line-oriented connection to the server under test.
pub struct LineClient {
    conn: Conn,
    buffer: Vec<u8>,
    timeout: Duration,
}

impl LineClient {
    /// Takes over a connected socket, TLS first when `tls` is given; each
    /// read waits at most `timeout`.
    pub fn over(
        tcp: TcpStream,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> LineClient {
        tcp.set_read_timeout(Some(timeout)).unwrap();
        let conn = match tls {
            None => Conn::Plain(tcp),
            Some(config) => Conn::Tls(Box::new(tls_over(config, tcp))),
        };
        LineClient {
            conn,
            buffer: Vec::new(),
            timeout,
        }
    }

    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        self.conn.tcp()
    }

    /// True once the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.conn, Conn::Tls(_))
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).unwrap();
    }

    /// Sends raw bytes as they are; the error, when the server is gone.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.conn.write_all(bytes)?;
        self.conn.flush()
    }

    /// Sends `bytes` and closes the sending half in the same write (under
    /// TLS: their records, then close_notify), so a server that closes
    /// after reading them has read everything.
    pub fn half_close(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.conn {
            Conn::Plain(tcp) => tcp.write_all(bytes)?,
            Conn::Tls(tls) => {
                tls.conn.writer().write_all(bytes)?;
                tls.conn.send_close_notify();
                tls.flush()?;
            }
        }
        self.tcp().shutdown(std::net::Shutdown::Write)
    }

    /// Sends one line, CRLF added.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one line, without CRLF, or `None` once the server closed the
    /// connection (or sent nothing within the timeout).
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                return Some(line);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// What has arrived and is not taken out yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }

    /// Takes the first `n` buffered bytes out.
    pub fn consume(&mut self, n: usize) {
        self.buffer.drain(..n);
    }

    /// Takes everything buffered out.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer)
    }

    /// Reads what the server sent next into the buffer; `false` at the end
    /// of the stream, on an error, or when nothing came within the timeout.
    pub fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.conn.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The TLS handshake on this connection, after the test read the
    /// server's answer to STLS or STARTTLS: anything buffered from the
    /// server meanwhile would be an answer to bytes pipelined behind the
    /// command, which RFC 2595 §4 and RFC 3207 §4.2 forbid.
    pub fn into_tls(self, config: Arc<rustls::ClientConfig>) -> LineClient {
        assert!(
            self.buffer.is_empty(),
            "server answered bytes pipelined behind the TLS command: {:?}",
            String::from_utf8_lossy(&self.buffer)
        );
        let Conn::Plain(tcp) = self.conn else {
            panic!("already TLS")
        };
        LineClient {
            conn: Conn::Tls(Box::new(tls_over(config, tcp))),
            buffer: Vec::new(),
            timeout: self.timeout,
        }
    }

    /// Reads once, waiting at most `within` (at least a millisecond);
    /// what came, if anything, is buffered.
    pub fn wait_for(&mut self, within: Duration) -> Arrival {
        let within = within.max(Duration::from_millis(1));
        self.tcp().set_read_timeout(Some(within)).unwrap();
        let mut chunk = [0u8; 65536];
        let read = self.conn.read(&mut chunk);
        self.tcp().set_read_timeout(Some(self.timeout)).unwrap();
        match read {
            Ok(0) => Arrival::Closed,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Arrival::Bytes
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Arrival::Nothing
            }
            Err(e) => Arrival::Failed(e),
        }
    }

    /// True once the server has closed the connection (waits up to
    /// `within`).
    pub fn is_closed_within(&mut self, within: Duration) -> bool {
        matches!(self.wait_for(within), Arrival::Closed)
    }

    /// True when nothing more arrived within `within` (a failed connection
    /// says nothing either).
    pub fn is_silent_for(&mut self, within: Duration) -> bool {
        self.buffer.is_empty()
            && matches!(self.wait_for(within), Arrival::Nothing | Arrival::Failed(_))
    }

    /// Sends `bytes` one at a time, the first at once and then one every
    /// `every` (round again when they run out), until the server closes
    /// or `give_up` has passed since the first; returns what the server
    /// sent meanwhile and when it closed, counted from the first byte.
    /// Writes that fail (the server has closed) are ignored: the reads say
    /// when.
    pub fn trickle(&mut self, bytes: &[u8], every: Duration, give_up: Duration) -> Trickled {
        let started = std::time::Instant::now();
        let mut next = started;
        let mut sent = 0usize;
        let closed = loop {
            let now = std::time::Instant::now();
            if now >= started + give_up {
                break None;
            }
            if now >= next {
                let _ = self.conn.write_all(&[bytes[sent % bytes.len()]]);
                let _ = self.conn.flush();
                sent += 1;
                next += every;
            }
            let wait = next
                .min(started + give_up)
                .saturating_duration_since(std::time::Instant::now())
                .max(Duration::from_millis(1));
            self.tcp().set_read_timeout(Some(wait)).unwrap();
            let mut chunk = [0u8; 16384];
            match self.conn.read(&mut chunk) {
                Ok(0) => break Some(started.elapsed()),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                // A reset: the server closed and a byte sent after it was refused.
                Err(_) => break Some(started.elapsed()),
            }
        };
        self.tcp().set_read_timeout(Some(self.timeout)).unwrap();
        Trickled {
            answer: String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned(),
            closed_after: closed,
        }
    }

    /// Reads until the server closes; returns everything it sent meanwhile.
    pub fn read_to_close(&mut self) -> String {
        while self.fill() {}
        String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned()
    }

    /// Closes the TCP connection without a goodbye.
    pub fn drop_connection(self) {
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }

    /// Ends the connection with a TCP reset (`SO_LINGER` 0), as a client
    /// that crashed does: whatever the server writes next fails.
    pub fn reset(self) {
        let tcp = self.tcp().try_clone().unwrap();
        drop(self);
        tcp.set_nonblocking(true).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
            tcp.set_zero_linger().unwrap();
        });
    }
}
