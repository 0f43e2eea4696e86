//! The control socket: `popgate who`, `popgate kick USER` and `popgate
//! reload` talk to the running server through a local Unix socket
//! (`[control] socket`, `/run/popgate/control` by default).
//!
//! - **Who may ask.** The socket is made mode 0600 and owned by the user
//!   popgate serves as: it is bound as root, before popgate becomes
//!   `[store] mail_user`, and given to that user, so root and that user can
//!   connect and no one else. Each connection's peer credentials
//!   (`SO_PEERCRED`) are checked too: only uid 0 and popgate's own uid are
//!   answered, whatever the file's mode became.
//! - **Where.** Without a `[control]` section the default path is tried,
//!   and if it cannot be made (no `/run/popgate`: the systemd unit creates
//!   it with `RuntimeDirectory=popgate`) popgate logs why and serves
//!   without it; with the section, such a failure stops start-up (see
//!   [`ControlSocket::open`]). A socket left by a popgate that died is
//!   replaced; one that still answers, or a path that is not a socket, is
//!   left alone.
//! - **What.** One request line, one JSON answer ([`protocol`]), each
//!   connection on a task of its own, the request read within
//!   [`REQUEST_TIMEOUT`] and the answer written within [`ANSWER_TIMEOUT`].
//!   `who` lists the [session registry](crate::sessions); `kick` tells the
//!   user's sessions to end (each ends without applying anything: see
//!   [`crate::connection`]) and waits up to [`KICK_WAIT`] for them to be
//!   gone, so their mailbox locks are free when `popgate kick` returns;
//!   `reload` runs the same function as SIGHUP and answers its report.
//!
//! [`client`] is the other end, used by the CLI.

pub mod client;
pub mod protocol;

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use popgate_auth::Authenticator;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::{SettingError, Settings, DEFAULT_CONTROL_SOCKET};
use crate::connection::stopped;
use crate::descriptors::Backoff;
use crate::log_text::LogText;
use crate::sessions::Sessions;
use protocol::{Request, Response, MAX_REQUEST};

/// How much input past the request is read and dropped before closing.
const MAX_UNREAD: u64 = 64 * 1024;

/// How long a client has to send its request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `kick` waits for the kicked sessions to be gone.
pub const KICK_WAIT: Duration = Duration::from_secs(5);

/// What a reload did, as `popgate reload` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// True when every part was reloaded.
    pub complete: bool,
    /// What was reloaded, or kept and why, one line per part.
    pub report: String,
}

/// The reload SIGHUP runs, which `popgate reload` runs too.
pub type Reload = Arc<dyn Fn() -> ReloadOutcome + Send + Sync>;

/// What the control socket answers from.
pub struct Control {
    sessions: Arc<Sessions>,
    auth: Arc<Authenticator>,
    reload: Reload,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Answers from `sessions`, folds names to kick as `auth` folds login
    /// names, and reloads with `reload`.
    pub fn new(sessions: Arc<Sessions>, auth: Arc<Authenticator>, reload: Reload) -> Control {
        Control {
            sessions,
            auth,
            reload,
        }
    }

    /// Serves one request.
    pub async fn answer(&self, request: Request) -> Response {
        match request {
            Request::Who => Response::Sessions(self.sessions.list()),
            Request::Kick(name) => {
                let user = self.auth.login_name(&name);
                let kicked = self.sessions.kick(&user);
                let until = Instant::now() + KICK_WAIT;
                let mut still_open = self.sessions.still_open(&kicked);
                while still_open > 0 && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    still_open = self.sessions.still_open(&kicked);
                }
                info!(
                    "control: kick user={} sessions={} still_open={still_open}",
                    LogText(&user),
                    kicked.len()
                );
                Response::Kicked {
                    user,
                    sessions: kicked.len(),
                    still_open,
                }
            }
            Request::Reload => {
                info!("control: reload");
                let reload = self.reload.clone();
                match tokio::task::spawn_blocking(move || reload()).await {
                    Ok(outcome) => Response::Reloaded {
                        complete: outcome.complete,
                        report: outcome.report,
                    },
                    Err(error) => Response::Error(format!("the reload failed: {error}")),
                }
            }
        }
    }
}

/// Why the control socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process answers on the socket (another popgate).
    #[error("{0}: another process answers on this socket")]
    InUse(PathBuf),
    /// Something that is not a socket is at the path.
    #[error("{0}: there is something else than a socket there; not replacing it")]
    NotASocket(PathBuf),
    /// The owner named (`[store] mail_user`) is not a system user.
    #[error("no system user named {0:?} to own the control socket")]
    NoSuchUser(String),
    /// A system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
}

/// The bound control socket, not yet serving.
#[derive(Debug)]
pub struct ControlSocket {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    /// The socket file's device and inode, so only ours is removed.
    file: (u64, u64),
}

impl ControlSocket {
    /// The control socket `settings` ask for, owned by `[store] mail_user`
    /// when set: `Ok(None)` when the default one cannot be made (logged),
    /// an error naming `control.socket` when a configured one cannot.
    pub fn open(settings: &Settings) -> Result<Option<ControlSocket>, SettingError> {
        let owner = settings.store.mail_user.as_deref();
        match &settings.control {
            Some(control) => ControlSocket::bind(&control.socket, owner)
                .map(Some)
                .map_err(|error| SettingError::new("control.socket", error.to_string())),
            None => match ControlSocket::bind(Path::new(DEFAULT_CONTROL_SOCKET), owner) {
                Ok(socket) => Ok(Some(socket)),
                Err(error) => {
                    warn!(
                        "no control socket, so no `popgate who`, `kick` or `reload`: {} \
                         (set [control] socket to a path popgate can create)",
                        LogText(&error)
                    );
                    Ok(None)
                }
            },
        }
    }

    /// Binds a socket at `path` (replacing one left by a process that is
    /// gone), mode 0600, owned by the system user `owner` when given.
    pub fn bind(path: &Path, owner: Option<&str>) -> Result<ControlSocket, ControlError> {
        let io_error = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        remove_stale(path)?;
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(io_error)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_error)?;
        if let Some(name) = owner {
            let user = nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ControlError::NoSuchUser(name.to_owned()))?;
            std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .map_err(io_error)?;
        }
        let made = fs::symlink_metadata(path).map_err(io_error)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            file: (made.dev(), made.ino()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers requests with `control` until `shutdown`, then removes the
    /// socket (if it is still this one and popgate still may).
    pub async fn serve(self, control: Arc<Control>, mut shutdown: watch::Receiver<bool>) {
        let ControlSocket {
            listener,
            path,
            file,
        } = self;
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(listener))
        {
            Ok(listener) => listener,
            Err(error) => {
                warn!("control socket {} not served: {error}", path.display());
                return;
            }
        };
        info!("control socket: {}", path.display());
        let mut backoff = Backoff::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped(&mut shutdown) => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    tokio::spawn(serve_one(stream, control.clone()));
                }
                Err(error) => {
                    warn!("control socket: accept failed: {error}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_wait()) => {}
                        _ = stopped(&mut shutdown) => break,
                    }
                }
            }
        }
        if fs::symlink_metadata(&path).is_ok_and(|now| (now.dev(), now.ino()) == file) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Clears the way for a new socket at `path`: nothing there, or a socket
/// nobody answers on any more (left by a popgate that was killed).
fn remove_stale(path: &Path) -> Result<(), ControlError> {
    let io_error = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(error)),
        Ok(found) if !found.file_type().is_socket() => {
            Err(ControlError::NotASocket(path.to_path_buf()))
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(ControlError::InUse(path.to_path_buf())),
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                fs::remove_file(path).map_err(io_error)
            }
            Err(error) => Err(io_error(error)),
        },
    }
}

/// True for a peer popgate answers: root, or the user popgate runs as.
fn may_ask(stream: &UnixStream) -> Result<(), String> {
    let uid = stream
        .peer_cred()
        .map_err(|error| format!("peer credentials unknown: {error}"))?
        .uid();
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        Ok(())
    } else {
        Err(format!("uid {uid} may not ask"))
    }
}

/// Serves one control connection: checks the peer, reads one request,
/// writes the answer.
async fn serve_one(mut stream: UnixStream, control: Arc<Control>) {
    let answer = match may_ask(&stream) {
        Err(why) => {
            warn!("control connection refused: {why}");
            Response::Error("not allowed: only root and the user popgate runs as".into())
        }
        Ok(()) => match read_request(&mut stream).await {
            Ok(request) => {
                debug!("control request: {request:?}");
                control.answer(request).await
            }
            Err(why) => Response::Error(why),
        },
    };
    let mut text = serde_json::to_vec(&answer).unwrap_or_else(|error| {
        format!("{{\"error\":\"the answer could not be written: {error}\"}}").into_bytes()
    });
    text.push(b'\n');
    let written = tokio::time::timeout(ANSWER_TIMEOUT, async {
        stream.write_all(&text).await?;
        stream.shutdown().await?;
        // What the client sent past the request (a line too long) is read
        // and dropped before closing: a socket closed with input unread
        // resets the client's end, and the answer it has not read yet is
        // lost with it.
        let mut rest = stream.take(MAX_UNREAD);
        tokio::io::copy(&mut rest, &mut tokio::io::sink()).await
    })
    .await;
    if !matches!(written, Ok(Ok(_))) {
        debug!("control answer not taken");
    }
}

/// Reads the request line, at most [`MAX_REQUEST`] octets within
/// [`REQUEST_TIMEOUT`].
async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = Vec::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST as u64));
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => return Err("no request in time".into()),
        Ok(Err(error)) => return Err(format!("request not read: {error}")),
        Ok(Ok(_)) => {}
    }
    if !line.ends_with(b"\n") && line.len() >= MAX_REQUEST {
        return Err("request too long".into());
    }
    let line = std::str::from_utf8(&line).map_err(|_| "request is not UTF-8".to_owned())?;
    Request::parse(line.trim_end_matches(['\r', '\n']))
}
