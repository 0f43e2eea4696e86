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
//! Shutdown follows mini-redis: every session task holds a clone of an mpsc
//! sender; when shutdown is signalled the accept loops stop, idle sessions are
//! told through a watch channel and close without applying anything, and
//! `run` waits — up to a grace period — until the last sender is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use popgate_auth::{Authenticator, Throttle, ThrottleConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::{BackendKind, SettingError, Settings};
use crate::connection::{stopped, Connection, Protocol};
use crate::control::{Control, Reload};
use crate::limits::{Limits, Refusal};
use crate::log_text::LogText;
use crate::login::LoginGate;
use crate::login_deadline::LoginDeadline;
use crate::pop3::Pop3Service;
use crate::proxy_protocol::{HeaderError, ProxyProtocol};
use crate::sessions::Sessions;
use crate::stream::Stream;
use crate::submission::SubmissionService;
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

/// The service behind a listener: what the accept loop hands connections
/// to. Adding a line protocol is adding its listeners' kinds above and, in
/// [`Gateway::run`], which service they map to.
type Service = Arc<dyn Protocol>;

/// What every listener shares, whatever it serves: the trusted proxies,
/// the connection limits, the certificate and the session registry.
#[derive(Debug, Clone)]
struct Door {
    proxies: Arc<ProxyProtocol>,
    limits: Arc<Limits>,
    tls: Option<Arc<TlsProvider>>,
    sessions: Arc<Sessions>,
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

/// What a reload did, one line per part; each line was also logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// What was reloaded, or kept and why.
    pub lines: Vec<String>,
    /// True when every part was reloaded.
    pub complete: bool,
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines.join("\n"))
    }
}

impl Reloader {
    /// Reloads certificates and the user database; sessions carry on.
    pub fn reload(&self) -> ReloadReport {
        let mut report = ReloadReport {
            lines: Vec::new(),
            complete: true,
        };
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => {
                    info!("TLS certificate reloaded");
                    report.lines.push("TLS certificate reloaded".into());
                }
                Err(e) => {
                    error!("TLS certificate not reloaded, keeping the old one: {e}");
                    report.lines.push(format!(
                        "TLS certificate not reloaded, keeping the old one: {e}"
                    ));
                    report.complete = false;
                }
            }
        }
        match self.auth.reload() {
            Ok(()) => {
                info!("user database reloaded");
                report.lines.push("user database reloaded".into());
            }
            Err(e) => {
                error!("user database not reloaded, keeping the old one: {e}");
                report.lines.push(format!(
                    "user database not reloaded, keeping the old one: {e}"
                ));
                report.complete = false;
            }
        }
        report
    }
}

impl Gateway {
    /// Loads certificates and users and binds every listener.
    pub async fn bind(settings: &Settings) -> Result<Gateway, StartError> {
        let tls = match &settings.tls {
            Some(paths) => Some(Arc::new(TlsProvider::load(&paths.cert, &paths.key)?)),
            None => None,
        };
        let auth = Arc::new(Authenticator::new(settings.auth_config())?);
        if settings.auth.backend == BackendKind::Pam && nix::unistd::geteuid().is_root() {
            crate::identity::drop_supplementary_groups().map_err(|e| {
                SettingError::new(
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
        let pop3 = Pop3Service::new(settings, tls.clone(), login.clone(), limits.clone())?;
        let submission = match &settings.submission {
            Some(_) => Some(Arc::new(SubmissionService::new(
                settings,
                tls.clone(),
                login,
            )?)),
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
        for (kind, addr) in wanted {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            listeners.push((kind, listener));
        }
        Ok(Gateway {
            listeners,
            pop3: Arc::new(pop3),
            submission,
            door: Door {
                proxies: Arc::new(ProxyProtocol::new(&settings.proxy_protocol)),
                limits,
                tls,
                sessions: Arc::new(Sessions::new()),
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

    /// What the control socket answers from: this gateway's sessions and
    /// login-name rule, and `reload` for `popgate reload`.
    pub fn control(&self, reload: Reload) -> Control {
        Control::new(self.door.sessions.clone(), self.auth.clone(), reload)
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
            let service: Service = match (kind, &self.submission) {
                (ListenerKind::Submission | ListenerKind::SubmissionTls, Some(submission)) => {
                    submission.clone()
                }
                _ => self.pop3.clone(),
            };
            let shutdown = shutdown.clone();
            let done = done_tx.clone();
            let door = self.door.clone();
            tokio::spawn(accept_loop(kind, listener, service, door, shutdown, done));
        }
        drop(done_tx);
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

async fn accept_loop(
    kind: ListenerKind,
    listener: TcpListener,
    service: Service,
    door: Door,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off, don't spin.
                warn!("accept failed on {}: {e}", kind.name());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
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
    let _slot = match door.limits.admit(client.ip()) {
        Ok(slot) => slot,
        Err(refusal) => {
            refuse(kind, tcp, client, refusal, service.busy()).await;
            return;
        }
    };
    let handshake = login.read_timeout(service.connection_settings().preauth_timeout);
    if let Some(stream) = open_stream(kind, tcp, door.tls.as_deref(), handshake).await {
        let settings = service.connection_settings();
        let connection = Connection::new(settings, stream, client, login, shutdown, &door.sessions);
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
