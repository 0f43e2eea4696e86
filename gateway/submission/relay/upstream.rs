//! Connections to the SMTP relay: made with Nagle's algorithm off and kept
//! for reuse.
//!
//! lettre speaks SMTP on them ([`AsyncSmtpConnection`]), but its transport
//! opens its sockets with Nagle's algorithm on and offers no way to turn it
//! off. lettre writes a message's body and the final `.` line as two writes;
//! with Nagle on, the second waits until the relay acknowledges the first,
//! and a relay delays that acknowledgement (40 ms on Linux) because it has
//! nothing to answer yet. Every message then costs 40 ms of waiting. So the
//! sockets are opened here, with `TCP_NODELAY`, and handed to lettre.
//!
//! The pool is what lettre's own pool does: at most [`MAX_IDLE`] idle
//! connections, each reused only after a `NOOP` proves it alive and only
//! within [`IDLE_TIMEOUT`]; a connection that failed is never reused.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead as FuturesRead, AsyncWrite as FuturesWrite};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The most idle connections kept (lettre's default pool size).
pub const MAX_IDLE: usize = 10;
/// How long an idle connection may be reused (lettre's default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the connection to the relay is secured.
pub enum UpstreamTls {
    /// Plain SMTP.
    None,
    /// STARTTLS, required.
    Starttls(TlsParameters),
    /// TLS from the first byte (smtps).
    Implicit(TlsParameters),
}

/// Why a message could not be handed to the relay.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made (connect, TLS, greeting, EHLO, AUTH).
    #[error("cannot connect to the relay: {0}")]
    Connect(String),
    /// The relay answered with an error, or the connection broke.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Shows how the connection is secured, not the TLS parameters.
impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamTls::None => "None",
            UpstreamTls::Starttls(_) => "Starttls",
            UpstreamTls::Implicit(_) => "Implicit",
        })
    }
}

/// The relay's address, how to reach it, and the idle connections to it.
pub struct Upstream {
    host: String,
    port: u16,
    tls: UpstreamTls,
    hello: ClientId,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// Shows where the relay is and how it is reached; never the credentials.
impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// An upstream at `host:port`; nothing is connected until the first send.
    pub fn new(
        host: &str,
        port: u16,
        tls: UpstreamTls,
        hello: ClientId,
        credentials: Option<Credentials>,
        connect_timeout: Duration,
    ) -> Self {
        Upstream {
            host: host.to_owned(),
            port,
            tls,
            hello,
            credentials,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `data` (without the final `.` line; lettre adds it and the
    /// dot-stuffing) on an idle or new connection.
    pub async fn send(&self, envelope: &Envelope, data: &[u8]) -> Result<(), UpstreamError> {
        let mut conn = self.checkout().await?;
        let sent = conn.send(envelope, data).await;
        self.checkin(conn);
        sent.map(drop).map_err(UpstreamError::from)
    }

    /// An idle connection that answers `NOOP`, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, UpstreamError> {
        loop {
            let parked = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((mut conn, since)) = parked else {
                return self.connect().await;
            };
            if since.elapsed() < IDLE_TIMEOUT && conn.test_connected().await {
                return Ok(conn);
            }
            conn.abort().await;
        }
    }

    /// Keeps `conn` for reuse unless it broke or the pool is full; the
    /// connections not kept, and idle ones past their time, are closed
    /// with `QUIT` in the background, so the client's reply does not wait.
    fn checkin(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut closing = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let (fresh, expired) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
            *idle = fresh;
            closing.extend(expired.into_iter().map(|(conn, _)| conn));
            if idle.len() < MAX_IDLE {
                idle.push((conn, Instant::now()));
            } else {
                closing.push(conn);
            }
        }
        if !closing.is_empty() {
            tokio::spawn(async move {
                for mut conn in closing {
                    conn.abort().await;
                }
            });
        }
    }

    /// The TCP connection to the relay, with Nagle's algorithm off.
    async fn connect_tcp(&self) -> Result<TcpStream, UpstreamError> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(UpstreamError::Connect(e.to_string())),
            Err(_) => return Err(UpstreamError::Connect("connect timed out".into())),
        };
        tcp.set_nodelay(true)
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        Ok(tcp)
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, UpstreamError> {
        let tcp = self.connect_tcp().await?;
        let stream: Box<dyn AsyncTokioStream> = match &self.tls {
            UpstreamTls::Implicit(parameters) => Box::new(Implicit::wrap(tcp, parameters).await?),
            UpstreamTls::None | UpstreamTls::Starttls(_) => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
        if let UpstreamTls::Starttls(parameters) = &self.tls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(UpstreamError::Connect(
                    "the relay does not offer STARTTLS".into(),
                ));
            }
            conn.starttls(parameters.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(conn)
    }
}

/// A TLS connection made by lettre's own TLS code (so the relay's
/// certificate is checked exactly as for STARTTLS), adapted back to the
/// tokio I/O traits that [`AsyncSmtpConnection::connect_with_transport`]
/// takes. lettre marks its stream type deprecated as a public name; it
/// remains the only way to reuse its TLS set-up on a socket of our own.
#[allow(deprecated)]
#[derive(Debug)]
struct Implicit(lettre::transport::smtp::client::AsyncNetworkStream);

#[allow(deprecated)]
impl Implicit {
    async fn wrap(tcp: TcpStream, parameters: &TlsParameters) -> Result<Self, UpstreamError> {
        let mut stream =
            lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        stream.upgrade_tls(parameters.clone()).await?;
        Ok(Implicit(stream))
    }
}

impl AsyncTokioStream for Implicit {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

impl AsyncRead for Implicit {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = std::task::ready!(Pin::new(&mut self.0).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Implicit {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// A scripted relay: counts connections, collects message bodies, and
    /// refuses any recipient whose address starts with `reject`.
    async fn relay() -> (u16, Arc<AtomicUsize>, Arc<Mutex<Vec<Vec<u8>>>>) {
        let (port, connections, bodies, _) = relay_counting_quits().await;
        (port, connections, bodies)
    }

    /// [`relay`], also counting the `QUIT`s it received.
    async fn relay_counting_quits() -> (
        u16,
        Arc<AtomicUsize>,
        Arc<Mutex<Vec<Vec<u8>>>>,
        Arc<AtomicUsize>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let quits = Arc::new(AtomicUsize::new(0));
        let (count, store, quit_count) = (connections.clone(), bodies.clone(), quits.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let store = store.clone();
                let quit_count = quit_count.clone();
                tokio::spawn(async move {
                    let (read, mut write) = tcp.into_split();
                    let mut read = BufReader::new(read);
                    write.write_all(b"220 relay\r\n").await.unwrap();
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        if read.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with(b"EHLO") {
                            b"250-relay\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with(b"RCPT TO:<REJECT") {
                            b"550 5.1.1 no such user\r\n"
                        } else if upper.starts_with(b"DATA") {
                            write.write_all(b"354 go on\r\n").await.unwrap();
                            let mut body = Vec::new();
                            while !body.ends_with(b"\r\n.\r\n") {
                                if read.read_until(b'\n', &mut body).await.unwrap() == 0 {
                                    return;
                                }
                            }
                            store.lock().unwrap().push(body);
                            b"250 queued\r\n"
                        } else if upper.starts_with(b"QUIT") {
                            quit_count.fetch_add(1, Ordering::SeqCst);
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        write.write_all(reply).await.unwrap();
                    }
                });
            }
        });
        (port, connections, bodies, quits)
    }

    fn envelope(to: &str) -> Envelope {
        Envelope::new(
            Some("alice@example.com".parse().unwrap()),
            vec![to.parse().unwrap()],
        )
        .unwrap()
    }

    /// An upstream without TLS or credentials on the test relay's `port`.
    fn plain_upstream(port: u16) -> Upstream {
        Upstream::new(
            "127.0.0.1",
            port,
            UpstreamTls::None,
            ClientId::Domain("popgate.test".into()),
            None,
            Duration::from_secs(30),
        )
    }

    #[tokio::test]
    async fn one_connection_carries_many_messages_and_a_failed_one_is_dropped() {
        let (port, connections, bodies) = relay().await;
        let upstream = plain_upstream(port);
        for n in 0..3 {
            let text = format!("Subject: {n}\r\n\r\n.dot line\r\nbody");
            upstream
                .send(&envelope("bob@example.com"), text.as_bytes())
                .await
                .unwrap();
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert_eq!(
            bodies.lock().unwrap()[2],
            b"Subject: 2\r\n\r\n..dot line\r\nbody\r\n.\r\n"
        );
        let refused = upstream
            .send(&envelope("reject@example.com"), b"x")
            .await
            .unwrap_err();
        match refused {
            UpstreamError::Smtp(e) => assert!(e.is_permanent(), "{e}"),
            other => panic!("expected the relay's refusal, got {other}"),
        }
        upstream
            .send(&envelope("bob@example.com"), b"after")
            .await
            .unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), 2);
        assert_eq!(bodies.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn connections_beyond_the_idle_limit_are_closed_with_quit() {
        let (port, connections, bodies, quits) = relay_counting_quits().await;
        let upstream = Arc::new(plain_upstream(port));
        let sends: Vec<_> = (0..3 * MAX_IDLE)
            .map(|_| {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    upstream
                        .send(&envelope("bob@example.com"), b"parallel")
                        .await
                        .unwrap()
                })
            })
            .collect();
        for send in sends {
            send.await.unwrap();
        }
        assert_eq!(bodies.lock().unwrap().len(), 3 * MAX_IDLE);
        let made = connections.load(Ordering::SeqCst);
        assert!(made > MAX_IDLE, "only {made} connections were needed");
        let want = made.saturating_sub(MAX_IDLE);
        let deadline = Instant::now() + Duration::from_secs(30);
        while quits.load(Ordering::SeqCst) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(quits.load(Ordering::SeqCst), want, "{made} connections");
        assert!(upstream.idle.lock().unwrap().len() <= MAX_IDLE);
    }

    #[tokio::test]
    async fn relay_sockets_have_nagle_off() {
        let (port, _, _) = relay().await;
        let upstream = plain_upstream(port);
        assert!(upstream.connect_tcp().await.unwrap().nodelay().unwrap());
    }

    #[tokio::test]
    async fn an_unreachable_relay_is_a_connect_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let upstream = plain_upstream(port);
        let error = upstream.send(&envelope("bob@example.com"), b"x").await;
        assert!(matches!(error, Err(UpstreamError::Connect(_))), "{error:?}");
    }
}
