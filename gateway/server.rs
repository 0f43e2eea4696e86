//! The server: binds the listeners, accepts connections, enforces the
//! connection limits, and shuts down gracefully.
//!
//! Each connection is read in this order: the PROXY header when the peer is
//! a trusted proxy (see [`crate::proxy_protocol`]), then admission by the
//! client's address (the header's, else the peer's), then TLS on the
//! implicit-TLS listeners; then the stream becomes a
//! [`Connection`] handed to the service's
//! driver ([`Protocol::serve`]), whose greeting comes first. The
//! connection's [login deadline](crate::login_deadline) starts at accept, so
//! the header and the handshake count against it.
//!
//! Binding ([`Gateway::bind`]) is separate from serving ([`Gateway::run`]) so
//! that privileged ports can be bound before anything else happens, and so
//! that callers (and tests) learn the real addresses of `:0` listeners.
//!
//! While a certificate is configured, [`Gateway::run`] also watches its
//! expiry ([`crate::expiry_watch`]): a warning at start and daily while it is
//! near its end; [`Reloader::reload`] checks a reloaded one at once.
//!
//! Every listener's backlog is sized for a burst of `max_connections`; the
//! accept loop backs off while descriptors are short and logs each shortage
//! once (see [`crate::descriptors`]).
//!
//! Each accepted connection takes the [configuration snapshot](crate::runtime)
//! in force at that moment, and its service and trusted proxies come from
//! it: a reload ([`Gateway::reloader`]) changes what the next connection
//! gets, never what one in progress has.
//!
//! With `[metrics]` configured, [`Gateway::bind`] also binds its HTTP port
//! ([`crate::http_listener`]) and makes the one [`Metrics`] handle (kept
//! across reloads, in [`Shared`]): the
//! accept loops count connections, each [`Connection`] gets its
//! [`SessionMetrics`](crate::metrics::SessionMetrics), the login gate times
//! checks, and the [`Reloader`] counts reloads. Without it every one of
//! those is `None`.
//!
//! Shutdown follows mini-redis: every session task holds a clone of an mpsc
//! sender; when shutdown is signalled the accept loops stop, idle sessions are
//! told through a watch channel and close without applying anything, and
//! `run` waits — up to a grace period — until the last sender is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::{SettingError, Settings};
use crate::connection::{stopped, Connection, Protocol};
use crate::control::{Control, Reload};
use crate::descriptors::{self, Backoff, Shortage};
use crate::expiry_watch;
use crate::http_listener::HttpListener;
use crate::limits::{ConnectionMaxima, Limits, Refusal};
use crate::log_text::LogText;
use crate::login_deadline::LoginDeadline;
use crate::mailbox_settings::table::MailboxFileError;
use crate::metrics::{Metrics, Service as CountedService};
use crate::proxy_protocol::{HeaderError, ProxyProtocol};
use crate::reload::Reloader;
use crate::runtime::{Current, Runtime, Shared};
use crate::sessions::Sessions;
use crate::shards::Shards;
use crate::stream::Stream;
use crate::tls::{TlsError, TlsProvider};

/// How long sessions may go on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The authentication backend cannot be used.
    #[error("authentication: {0}")]
    Auth(#[from] popgate_auth::AuthError),
    /// A setting cannot work.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The mailbox-settings file cannot be used.
    #[error("key `auth.mailbox_settings`: {0}")]
    MailboxSettings(#[from] MailboxFileError),
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// POP3, plaintext with STLS.
    Pop3,
    /// POP3 over implicit TLS.
    Pop3Tls,
    /// Submission, plaintext with STARTTLS (port 587).
    Submission,
    /// Submission over implicit TLS (port 465).
    SubmissionTls,
}

impl ListenerKind {
    fn name(self) -> &'static str {
        match self {
            ListenerKind::Pop3 => "pop3",
            ListenerKind::Pop3Tls => "pop3s",
            ListenerKind::Submission => "submission",
            ListenerKind::SubmissionTls => "submissions",
        }
    }

    fn implicit_tls(self) -> bool {
        matches!(self, ListenerKind::Pop3Tls | ListenerKind::SubmissionTls)
    }

    /// The service its connections are counted under.
    fn counted_as(self) -> CountedService {
        match self {
            ListenerKind::Pop3 | ListenerKind::Pop3Tls => CountedService::Pop3,
            ListenerKind::Submission | ListenerKind::SubmissionTls => CountedService::Submission,
        }
    }
}

/// The service behind a listener: what the accept loop hands connections
/// to. Adding a line protocol is adding its listeners' kinds above and, in
/// [`service_for`], which service they map to.
type Service = Arc<dyn Protocol>;

/// The service `kind`'s listeners serve in `runtime`.
fn service_for(kind: ListenerKind, runtime: &Runtime) -> Option<Service> {
    match kind {
        ListenerKind::Pop3 | ListenerKind::Pop3Tls => Some(runtime.pop3().clone()),
        ListenerKind::Submission | ListenerKind::SubmissionTls => {
            let submission: Service = runtime.submission()?.clone();
            Some(submission)
        }
    }
}

/// What a connection meets before its service, whatever it serves: the
/// trusted proxies and the connection maxima of the configuration it was
/// accepted under, the counters, the certificate, the session registry
/// and the metrics of the server.
#[derive(Debug)]
struct Door {
    proxies: Arc<ProxyProtocol>,
    maxima: ConnectionMaxima,
    limits: Arc<Limits>,
    tls: Option<Arc<TlsProvider>>,
    metrics: Option<Arc<Metrics>>,
    sessions: Arc<Sessions>,
}

/// A bound, not yet serving, popgate.
#[derive(Debug)]
pub struct Gateway {
    /// Bound and listening; each shard registers a duplicate of each.
    listeners: Vec<(ListenerKind, std::net::TcpListener)>,
    shards: Shards,
    shared: Arc<Shared>,
    current: Arc<Current>,
    http: Option<HttpListener>,
}

impl Gateway {
    /// Loads certificates, users and mailbox settings, and binds every
    /// listener.
    pub async fn bind(settings: &Settings) -> Result<Gateway, StartError> {
        let shared = Shared::new(settings)?;
        let runtime = Runtime::start(settings.clone(), &shared)?;
        let mut listeners = Vec::new();
        let mut wanted: Vec<(ListenerKind, SocketAddr)> = Vec::new();
        let mut add = |kind, addrs: &[SocketAddr]| wanted.extend(addrs.iter().map(|a| (kind, *a)));
        add(ListenerKind::Pop3, &settings.pop3.listen);
        add(ListenerKind::Pop3Tls, &settings.pop3.listen_tls);
        if let Some(submission) = &settings.submission {
            add(ListenerKind::Submission, &submission.listen);
            add(ListenerKind::SubmissionTls, &submission.listen_tls);
        }
        let somaxconn = descriptors::somaxconn();
        let backlog = descriptors::listen_backlog(settings.pop3.max_connections, somaxconn);
        for (kind, addr) in wanted {
            let listener = listen(addr, backlog)
                .and_then(TcpListener::into_std)
                .map_err(|source| StartError::Bind { addr, source })?;
            listeners.push((kind, listener));
        }
        match somaxconn {
            Some(ceiling) if (ceiling as usize) < settings.pop3.max_connections => info!(
                "listen backlog: {backlog} per listener (max_connections = {}, capped by \
                 net.core.somaxconn = {ceiling}; raise that sysctl for bigger bursts)",
                settings.pop3.max_connections
            ),
            _ => info!(
                "listen backlog: {backlog} per listener (max_connections = {})",
                settings.pop3.max_connections
            ),
        }
        let http = match (&settings.metrics, &shared.metrics) {
            (Some(wanted), Some(metrics)) => {
                let addr = wanted.listen;
                let bound = HttpListener::bind(addr, metrics.clone(), settings).await;
                Some(bound.map_err(|source| StartError::Bind { addr, source })?)
            }
            _ => None,
        };
        Ok(Gateway {
            listeners,
            shards: Shards::for_this_host(),
            shared: Arc::new(shared),
            current: Arc::new(Current::new(runtime)),
            http,
        })
    }

    /// The bound addresses, e.g. to learn the port of a `:0` listener.
    pub fn local_addrs(&self) -> Vec<(ListenerKind, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(kind, l)| Some((*kind, l.local_addr().ok()?)))
            .collect()
    }

    /// What the control socket answers from: this gateway's sessions and
    /// login-name rule, and `reload` for `popgate reload`.
    pub fn control(&self, reload: Reload) -> Control {
        Control::new(
            self.shared.sessions.clone(),
            self.shared.auth.clone(),
            reload,
        )
    }

    /// A handle that reloads `config`, the file the gateway was started
    /// with, while it serves (see [`crate::reload`]).
    pub fn reloader(&self, config: &Path) -> Reloader {
        Reloader::new(
            config.to_path_buf(),
            self.current.clone(),
            self.shared.clone(),
        )
    }

    /// Serves until `shutdown` becomes true, then waits for sessions to
    /// end. Connections are accepted and served on the
    /// [shards](crate::shards); the certificate watch and the metrics
    /// listener run on the caller's runtime. An error when no shard could
    /// be started.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let addrs = self.local_addrs();
        let accepted = Arc::new(Accepted {
            current: self.current.clone(),
            shared: self.shared.clone(),
            shortage: Arc::new(Shortage::default()),
        });
        // Each shard accepts on its own duplicates of the listening
        // sockets; the originals close here, the duplicates when their
        // accept loops end.
        let mut per_shard = Vec::with_capacity(self.shards.count());
        for _ in 0..self.shards.count() {
            let copies = self
                .listeners
                .iter()
                .map(|(kind, listener)| Ok((*kind, listener.try_clone()?)))
                .collect::<std::io::Result<Vec<_>>>()?;
            per_shard.push(copies);
        }
        drop(self.listeners);
        let mut per_shard = per_shard.into_iter();
        let prepare = |shard: usize| {
            let listeners = per_shard.next().unwrap_or_default();
            let accepted = accepted.clone();
            let shutdown = shutdown.clone();
            let done = done_tx.clone();
            move || {
                for (kind, listener) in listeners {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            tokio::spawn(accept_loop(
                                kind,
                                listener,
                                accepted.clone(),
                                shutdown.clone(),
                                done.clone(),
                            ));
                        }
                        Err(error) => {
                            warn!("shard {shard} cannot accept on {}: {error}", kind.name());
                        }
                    }
                }
            }
        };
        let (finished_tx, finished_rx) = watch::channel(false);
        let running = self.shards.start(prepare, &finished_rx).await?;
        drop(done_tx);
        // Told once the shards accept, so whoever waits for these lines
        // (tests, scripts) finds the server whole.
        for (kind, addr) in addrs {
            info!("listening: service={} addr={addr}", kind.name());
        }
        if let Some(tls) = &self.shared.tls {
            let report = |warning: Option<String>| {
                if let Some(warning) = warning {
                    warn!("{warning}");
                }
            };
            let watch =
                expiry_watch::watch(tls.clone(), expiry_watch::PERIOD, shutdown.clone(), report);
            tokio::spawn(watch);
        }
        if let Some(http) = self.http {
            if let Ok(addr) = http.local_addr() {
                info!("listening: service=metrics addr={addr}");
            }
            tokio::spawn(http.serve(shutdown.clone()));
        }
        stopped(&mut shutdown).await;
        info!(
            "shutting down: no new connections; waiting up to {}s for sessions",
            SHUTDOWN_GRACE.as_secs()
        );
        if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
            .await
            .is_err()
        {
            warn!("sessions still open after the grace period are closed without UPDATE");
        }
        let _ = finished_tx.send(true);
        running.join().await;
        Ok(())
    }
}

/// A listening socket on `addr` with room for `backlog` connections waiting
/// to be accepted (tokio's `TcpListener::bind` always asks for 128, as std does).
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// What the accept loop gives each connection: the snapshot in force, and
/// what outlives it.
#[derive(Debug)]
struct Accepted {
    current: Arc<Current>,
    shared: Arc<Shared>,
    /// The record of accepts failing for want of descriptors, one for all
    /// listeners.
    shortage: Arc<Shortage>,
}

impl Accepted {
    /// The service and the door of a connection to `kind` accepted now;
    /// `None` when the snapshot serves no such service.
    fn now(&self, kind: ListenerKind) -> Option<(Service, Door)> {
        let runtime = self.current.load();
        let service = service_for(kind, &runtime)?;
        let door = Door {
            proxies: runtime.proxies().clone(),
            maxima: runtime.maxima(),
            limits: self.shared.limits.clone(),
            tls: self.shared.tls.clone(),
            metrics: self.shared.metrics.clone(),
            sessions: self.shared.sessions.clone(),
        };
        Some((service, door))
    }
}

async fn accept_loop(
    kind: ListenerKind,
    listener: TcpListener,
    accepted: Arc<Accepted>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let mut backoff = Backoff::new();
    loop {
        let next = tokio::select! {
            next = listener.accept() => next,
            _ = stopped(&mut shutdown) => return,
        };
        let (tcp, peer) = match next {
            Ok(pair) => pair,
            Err(e) if descriptors::is_per_connection(&e) => {
                debug!("accept failed on {}: {e}", kind.name());
                continue;
            }
            Err(e) => {
                // Out of descriptors or kernel memory: the connection stays
                // in the listen queue; wait, without spinning, for sessions
                // to end and give some back.
                if accepted.shortage.failed() {
                    warn_accept_failing(kind, &e);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_wait()) => continue,
                    _ = stopped(&mut shutdown) => return,
                }
            }
        };
        backoff.reset();
        if let Some(ended) = accepted.shortage.accepted() {
            info!(
                "accepting again on {} after {:.1}s; {} accept attempts failed meanwhile",
                kind.name(),
                ended.lasted.as_secs_f64(),
                ended.failures
            );
        }
        let _ = tcp.set_nodelay(true);
        // The configuration in force now is the one this connection keeps.
        let Some((service, door)) = accepted.now(kind) else {
            continue;
        };
        if let Some(metrics) = &door.metrics {
            metrics.connection_accepted(kind.counted_as());
        }
        let connection = connection(kind, tcp, peer, service, door, shutdown.clone());
        let done = done.clone();
        tokio::spawn(async move {
            let _done = done;
            connection.await;
        });
    }
}

/// The one warning of a shortage: what failed, and what happens meanwhile.
fn warn_accept_failing(kind: ListenerKind, error: &std::io::Error) {
    let limit = match descriptors::soft_limit() {
        Some(limit) if descriptors::is_at_own_limit(error) => {
            format!(" (descriptor limit {limit})")
        }
        _ => String::new(),
    };
    warn!(
        "accept failed on {}: {error}{limit}; new connections wait in the listen queue \
         until descriptors free up, open sessions carry on",
        kind.name()
    );
}

/// One accepted connection, from the PROXY header to the end of the session.
///
/// A trusted proxy's connection holds no slot while its header is read
/// (within `[proxy_protocol] timeout`): the per-address limit is only
/// meaningful for the client the header names, so admission waits for it.
async fn connection(
    kind: ListenerKind,
    mut tcp: TcpStream,
    peer: SocketAddr,
    service: Service,
    door: Door,
    shutdown: watch::Receiver<bool>,
) {
    let login = LoginDeadline::new(Instant::now(), service.connection_settings().login_deadline);
    let client = match door.proxies.client_address(&mut tcp, peer).await {
        Ok(client) => client,
        Err(HeaderError::Closed) => return,
        Err(error) => {
            warn!(
                "connection from a trusted proxy closed: service={} proxy={} reason={}",
                kind.name(),
                peer.ip(),
                LogText(&error)
            );
            return;
        }
    };
    let _slot = match door.limits.admit(client.ip(), door.maxima) {
        Ok(slot) => slot,
        Err(refusal) => {
            refuse(kind, tcp, client, refusal, service.busy()).await;
            return;
        }
    };
    let handshake = login.read_timeout(service.connection_settings().preauth_timeout);
    if let Some(stream) = open_stream(kind, tcp, door.tls.as_deref(), handshake).await {
        let settings = service.connection_settings();
        let metrics = door.metrics.as_ref().map(|m| m.session(kind.counted_as()));
        let connection = Connection::new(settings, stream, client, login, shutdown, &door.sessions)
            .with_metrics(metrics);
        service.serve(connection).await;
    }
}

/// Wraps an accepted connection: TLS first, within `handshake`, on the
/// implicit-TLS listener.
async fn open_stream(
    kind: ListenerKind,
    tcp: TcpStream,
    tls: Option<&TlsProvider>,
    handshake: Duration,
) -> Option<Stream> {
    if !kind.implicit_tls() {
        return Some(Stream::Plain(tcp));
    }
    Stream::accept_tls(tcp, tls?, handshake).await
}

/// Tells a plaintext client why it is turned away; a TLS client is just closed.
async fn refuse(
    kind: ListenerKind,
    mut tcp: TcpStream,
    peer: SocketAddr,
    refusal: Refusal,
    message: &'static [u8],
) {
    warn!(
        "connection refused: service={} rip={} limit={refusal:?}",
        kind.name(),
        peer.ip()
    );
    if !kind.implicit_tls() {
        let _ = tcp.write_all(message).await;
    }
}
