//! The server: binds the listeners, accepts connections, enforces the
//! connection limits, and shuts down gracefully.
//!
//! Each connection is read in this order: the PROXY header when the peer is
//! a trusted proxy (see [`crate::proxy_protocol`]), then admission by the
//! client's address (the header's, else the peer's), then TLS on the
//! implicit-TLS listeners, then the service's greeting. The connection's
//! [login deadline](crate::login_deadline) starts at accept, so the header
//! and the handshake count against it.
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
//! Shutdown follows mini-redis: every session task holds a clone of an mpsc
//! sender; when shutdown is signalled the accept loops stop, idle sessions are
//! told through a watch channel and close without applying anything, and
//! `run` waits — up to a grace period — until the last sender is dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use popgate_auth::{AuthConfig, Authenticator, BackendConfig, Throttle, ThrottleConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::config::{BackendKind, Settings};
use crate::descriptors::{self, Backoff, Shortage};
use crate::expiry_watch;
use crate::limits::{Limits, Refusal};
use crate::log_text::LogText;
use crate::login::LoginGate;
use crate::login_deadline::LoginDeadline;
use crate::pop3::{self, Pop3Service};
use crate::proxy_protocol::{HeaderError, ProxyProtocol};
use crate::stream::Stream;
use crate::submission::{self, SubmissionService};
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
    #[error("key `{0}`: {1}")]
    Setting(&'static str, String),
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
}

/// The service behind a listener: what the accept loop hands connections to.
#[derive(Debug, Clone)]
enum Service {
    Pop3(Arc<Pop3Service>),
    Submission(Arc<SubmissionService>),
}

/// What every listener shares, whatever it serves: the trusted proxies,
/// the connection limits, the certificate, and the record of accepts
/// failing for want of descriptors.
#[derive(Debug, Clone)]
struct Door {
    proxies: Arc<ProxyProtocol>,
    limits: Arc<Limits>,
    tls: Option<Arc<TlsProvider>>,
    shortage: Arc<Shortage>,
}

impl Service {
    fn preauth_timeout(&self) -> Duration {
        match self {
            Service::Pop3(s) => s.preauth_timeout(),
            Service::Submission(s) => s.preauth_timeout(),
        }
    }

    /// The login deadline of a connection accepted at `accepted`.
    fn login_deadline(&self, accepted: Instant) -> LoginDeadline {
        let allowed = match self {
            Service::Pop3(s) => s.login_deadline(),
            Service::Submission(s) => s.login_deadline(),
        };
        LoginDeadline::new(accepted, allowed)
    }

    /// Serves one connection. Each protocol's future is boxed: a spawned
    /// task is as large as the largest future it may run, and an idle POP3
    /// connection must not carry the room a submission relay needs.
    async fn serve(
        self,
        stream: Stream,
        peer: SocketAddr,
        login: LoginDeadline,
        shutdown: watch::Receiver<bool>,
    ) {
        match self {
            Service::Pop3(s) => {
                Box::pin(pop3::handler::serve(s, stream, peer, login, shutdown)).await
            }
            Service::Submission(s) => {
                Box::pin(submission::handler::serve(s, stream, peer, login, shutdown)).await
            }
        }
    }

    /// What a plaintext client hears when a connection limit turns it away.
    fn refusal(&self) -> &'static [u8] {
        match self {
            Service::Pop3(_) => b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
            Service::Submission(_) => b"421 4.7.0 Too many connections, try again later\r\n",
        }
    }
}

/// A bound, not yet serving, popgate.
#[derive(Debug)]
pub struct Gateway {
    listeners: Vec<(ListenerKind, TcpListener)>,
    pop3: Arc<Pop3Service>,
    submission: Option<Arc<SubmissionService>>,
    door: Door,
    auth: Arc<Authenticator>,
}

/// The parts of a running gateway that SIGHUP reloads.
#[derive(Debug, Clone)]
pub struct Reloader {
    tls: Option<Arc<TlsProvider>>,
    auth: Arc<Authenticator>,
}

impl Reloader {
    /// Reloads certificates and the user database; sessions carry on.
    pub fn reload(&self) {
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => {
                    info!("TLS certificate reloaded");
                    if let Some(warning) = expiry_watch::warning(tls, SystemTime::now()) {
                        warn!("{warning}");
                    }
                }
                Err(e) => error!("TLS certificate not reloaded, keeping the old one: {e}"),
            }
        }
        match self.auth.reload() {
            Ok(()) => info!("user database reloaded"),
            Err(e) => error!("user database not reloaded, keeping the old one: {e}"),
        }
    }
}

/// The authentication layer's configuration from the settings.
pub fn auth_config(settings: &Settings) -> Result<AuthConfig, StartError> {
    let backend = match settings.auth.backend {
        BackendKind::Htpasswd => BackendConfig::Htpasswd {
            path: settings.auth.htpasswd.clone(),
        },
        BackendKind::Pam => BackendConfig::Pam {
            service: settings.auth.pam_service.clone(),
            min_uid: settings.auth.min_uid,
        },
    };
    Ok(AuthConfig {
        backend,
        deny_users: settings.auth.deny_users.clone(),
        disabled_users: settings.auth.disabled_users.clone(),
        maildir_template: settings.store.maildir.clone(),
        failure_delay: settings.auth.failure_delay.0,
        cache_ttl: settings.auth.cache_ttl.0,
        login_name_case: settings.auth.login_name_case.into(),
    })
}

impl Gateway {
    /// Loads certificates and users and binds every listener.
    pub async fn bind(settings: &Settings) -> Result<Gateway, StartError> {
        let tls = match &settings.tls {
            Some(paths) => Some(Arc::new(TlsProvider::load(&paths.cert, &paths.key)?)),
            None => None,
        };
        let auth = Arc::new(Authenticator::new(auth_config(settings)?)?);
        if settings.auth.backend == BackendKind::Pam && nix::unistd::geteuid().is_root() {
            crate::identity::drop_supplementary_groups().map_err(|e| {
                StartError::Setting(
                    "auth.backend",
                    format!("cannot drop supplementary groups: {e}"),
                )
            })?;
        }
        let throttle = Arc::new(Throttle::with_config(ThrottleConfig {
            base_delay: settings.auth.failure_delay.0,
            max_delay: settings.auth.max_failure_delay.0,
            close_after: settings.auth.max_failures,
            ..ThrottleConfig::default()
        }));
        let login = Arc::new(LoginGate::new(
            auth.clone(),
            throttle,
            settings.auth.max_checks,
            settings.auth.check_timeout.0,
        ));
        let limits = Arc::new(Limits::new(
            settings.pop3.max_connections,
            settings.pop3.max_connections_per_ip,
            settings.pop3.max_connections_per_user,
        ));
        let setting = |(key, message)| StartError::Setting(key, message);
        let pop3 = Pop3Service::new(settings, tls.clone(), login.clone(), limits.clone())
            .map_err(setting)?;
        let submission = match &settings.submission {
            Some(_) => Some(Arc::new(
                SubmissionService::new(settings, tls.clone(), login).map_err(setting)?,
            )),
            None => None,
        };
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
            let listener =
                listen(addr, backlog).map_err(|source| StartError::Bind { addr, source })?;
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
        Ok(Gateway {
            listeners,
            pop3: Arc::new(pop3),
            submission,
            door: Door {
                proxies: Arc::new(ProxyProtocol::new(&settings.proxy_protocol)),
                limits,
                tls,
                shortage: Arc::new(Shortage::default()),
            },
            auth,
        })
    }

    /// The bound addresses, e.g. to learn the port of a `:0` listener.
    pub fn local_addrs(&self) -> Vec<(ListenerKind, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(kind, l)| Some((*kind, l.local_addr().ok()?)))
            .collect()
    }

    /// A handle that reloads certificates and users while serving.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            tls: self.door.tls.clone(),
            auth: self.auth.clone(),
        }
    }

    /// Serves until `shutdown` becomes true, then waits for sessions to end.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        for (kind, listener) in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                info!("listening: service={} addr={addr}", kind.name());
            }
            let service = match (kind, &self.submission) {
                (ListenerKind::Submission | ListenerKind::SubmissionTls, Some(submission)) => {
                    Service::Submission(submission.clone())
                }
                _ => Service::Pop3(self.pop3.clone()),
            };
            let shutdown = shutdown.clone();
            let done = done_tx.clone();
            let door = self.door.clone();
            tokio::spawn(accept_loop(kind, listener, service, door, shutdown, done));
        }
        drop(done_tx);
        if let Some(tls) = &self.door.tls {
            let report = |warning: Option<String>| {
                if let Some(warning) = warning {
                    warn!("{warning}");
                }
            };
            let watch =
                expiry_watch::watch(tls.clone(), expiry_watch::PERIOD, shutdown.clone(), report);
            tokio::spawn(watch);
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
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns must not live across an await point.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
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

async fn accept_loop(
    kind: ListenerKind,
    listener: TcpListener,
    service: Service,
    door: Door,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let mut backoff = Backoff::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if descriptors::is_per_connection(&e) => {
                debug!("accept failed on {}: {e}", kind.name());
                continue;
            }
            Err(e) => {
                // Out of descriptors or kernel memory: the connection stays
                // in the listen queue; wait, without spinning, for sessions
                // to end and give some back.
                if door.shortage.failed() {
                    warn_accept_failing(kind, &e);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_wait()) => continue,
                    _ = stopped(&mut shutdown) => return,
                }
            }
        };
        backoff.reset();
        if let Some(ended) = door.shortage.accepted() {
            info!(
                "accepting again on {} after {:.1}s; {} accept attempts failed meanwhile",
                kind.name(),
                ended.lasted.as_secs_f64(),
                ended.failures
            );
        }
        let _ = tcp.set_nodelay(true);
        let connection = connection(
            kind,
            tcp,
            peer,
            service.clone(),
            door.clone(),
            shutdown.clone(),
        );
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
    let login = service.login_deadline(Instant::now());
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
    let _slot = match door.limits.admit(client.ip()) {
        Ok(slot) => slot,
        Err(refusal) => {
            refuse(kind, tcp, client, refusal, service.refusal()).await;
            return;
        }
    };
    let handshake = login.read_timeout(service.preauth_timeout());
    if let Some(stream) = open_stream(kind, tcp, door.tls.as_deref(), handshake).await {
        service.serve(stream, client, login, shutdown).await;
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

/// Where a user's password file lives when none is configured, for messages.
pub fn describe_backend(settings: &Settings) -> String {
    match settings.auth.backend {
        BackendKind::Htpasswd => format!(
            "htpasswd {}",
            PathBuf::from(&settings.auth.htpasswd).display()
        ),
        BackendKind::Pam => format!("PAM service {}", settings.auth.pam_service),
    }
}
