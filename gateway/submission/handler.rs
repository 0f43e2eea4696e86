//! The submission connection driver: the I/O edge around the pure [`Session`].
//!
//! It reads whatever the client sent (bounded reads under a timeout, and
//! before login never past the connection's
//! [login deadline](crate::login_deadline)), lets the session consume it,
//! and carries out each [`Step`]: the TLS handshake after STARTTLS
//! (dropping any bytes that came with the command), the credential check
//! (on a blocking thread, with the failure delay shared with POP3, within
//! the login deadline), the relay's answer about a recipient at RCPT, and
//! the relay. Replies go out when the input runs dry, so a pipelining
//! client gets all its answers in one write.
//!
//! Input is read straight into the unconsumed-bytes buffer, at most 2 KiB
//! at a time before login and 64 KiB after, so a connection that has not
//! logged in holds a few kilobytes, not the 64 KiB a message upload reads
//! with (see `tests/e2e/submission_memory.rs` for the figure).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use popgate_auth::Credentials;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tracing::{info, warn};

use super::message::{self, Trace};
use super::reply::reply;
use super::session::{LoginRefusal, Session, Step, Transaction};
use super::SubmissionService;
use crate::limits::Slot;
use crate::log_text::LogText;
use crate::login::Outcome;
use crate::login_deadline::LoginDeadline;
use crate::protocol_log;
use crate::stream::Stream;

/// The most bytes read from the socket at once after login.
const READ_CHUNK: usize = 64 * 1024;
/// The most bytes read from the socket at once before login: EHLO,
/// STARTTLS and an AUTH line fit, and an idle connection holds no more.
const PRELOGIN_READ_CHUNK: usize = 2 * 1024;

/// What a session did, for its summary log line.
#[derive(Debug, Default)]
struct Summary {
    accepted: usize,
    refused: usize,
    end: &'static str,
}

/// One client connection from greeting to close.
struct Connection<'a> {
    service: &'a SubmissionService,
    stream: Stream,
    pending: Vec<u8>,
    output: Vec<u8>,
    peer: SocketAddr,
    session: Session,
    summary: Summary,
    /// The user's place in `max_connections_per_user`, once logged in.
    user_slot: Option<Slot<String>>,
    /// How much of `output` the protocol log has shown.
    logged: usize,
    /// When the connection must have logged in by.
    login: LoginDeadline,
}

/// Serves one accepted connection (TLS already established on port 465).
pub async fn serve(
    service: Arc<SubmissionService>,
    stream: Stream,
    peer: SocketAddr,
    login: LoginDeadline,
    shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut options = service.options.clone();
    options.tls = stream.is_tls();
    options.starttls_available = !options.tls && service.tls.is_some();
    let mut connection = Connection {
        service: &service,
        stream,
        pending: Vec::new(),
        output: Vec::with_capacity(1024),
        peer,
        session: Session::new(options),
        summary: Summary::default(),
        user_slot: None,
        logged: 0,
        login,
    };
    connection.summary.end = match connection.run(shutdown).await {
        Ok(end) => end,
        Err(error) => {
            tracing::debug!(%peer, error = %LogText(&error), "connection error");
            "error"
        }
    };
    connection.stream.close().await;
    info!(
        target: "popgate::session",
        "submission session ended: rip={} user={} tls={} accepted={} refused={} end={} duration_ms={}",
        peer.ip(),
        LogText(connection.session.user().unwrap_or("-")),
        connection.stream.tls_version().unwrap_or("no"),
        connection.summary.accepted,
        connection.summary.refused,
        connection.summary.end,
        started.elapsed().as_millis(),
    );
}

impl Connection<'_> {
    async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> std::io::Result<&'static str> {
        self.session.greeting(&mut self.output);
        loop {
            let mut bytes = self.pending.iter();
            let step = self.session.advance(&mut bytes, &mut self.output);
            let consumed = self.pending.len() - bytes.as_slice().len();
            self.pending.drain(..consumed);
            self.log_exchange();
            match step {
                Step::NeedMore => {
                    self.flush().await?;
                    if let Some(end) = self.read(&mut shutdown).await? {
                        return Ok(end);
                    }
                }
                Step::StartTls => {
                    self.flush().await?;
                    // Bytes sent after STARTTLS came in the clear: never act
                    // on them as if they came over TLS (RFC 3207 §5).
                    self.pending.clear();
                    if let Some(end) = Box::pin(self.start_tls()).await {
                        return Ok(end);
                    }
                }
                Step::Authenticate(credentials) => {
                    // The password check ends at the login deadline.
                    let login = self.login;
                    let checked = login.within(Box::pin(self.authenticate(credentials))).await;
                    if let Some(end) = checked.unwrap_or_else(|| Some(self.login_too_late())) {
                        self.flush().await?;
                        return Ok(end);
                    }
                }
                Step::CheckRecipient(recipient) => {
                    let check = Box::pin(self.service.relay.check_recipient(&recipient)).await;
                    if self
                        .session
                        .recipient_checked(recipient, check, &mut self.output)
                    {
                        self.flush().await?;
                        return Ok("too-many-errors");
                    }
                }
                // Boxed, like the other steps: the relay's and the login's
                // futures are large, and an idle connection need not hold them.
                Step::Relay(transaction) => Box::pin(self.relay(transaction)).await,
                Step::Close => {
                    self.flush().await?;
                    return Ok("quit");
                }
            }
        }
    }

    /// Reads more input; `Some(reason)` ends the connection.
    async fn read(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::io::Result<Option<&'static str>> {
        let logged_in = self.session.user().is_some();
        if !logged_in && self.login.has_passed() {
            let end = self.login_too_late();
            self.flush().await?;
            return Ok(Some(end));
        }
        let timeout = if logged_in {
            self.service.idle_timeout
        } else {
            self.login.read_timeout(self.service.preauth_timeout)
        };
        let room = if logged_in {
            READ_CHUNK
        } else {
            PRELOGIN_READ_CHUNK
        };
        self.pending.reserve(room);
        let mut limited = (&mut self.stream).take(room as u64);
        tokio::select! {
            read = tokio::time::timeout(timeout, limited.read_buf(&mut self.pending)) => match read {
                Err(_) if !logged_in && self.login.has_passed() => {
                    let end = self.login_too_late();
                    self.flush().await?;
                    Ok(Some(end))
                }
                Err(_) => {
                    reply(&mut self.output, 421, "4.4.2", "Idle for too long, closing");
                    self.flush().await?;
                    Ok(Some("timeout"))
                }
                Ok(Ok(0)) => Ok(Some("disconnected")),
                Ok(Ok(_)) => Ok(None),
                Ok(Err(error)) => Err(error),
            },
            _ = crate::server::stopped(shutdown) => {
                reply(&mut self.output, 421, "4.3.2", "Server shutting down, try again later");
                self.flush().await?;
                Ok(Some("shutdown"))
            }
        }
    }

    /// The login deadline passed before a login succeeded: the answer, and
    /// the reason the connection ends.
    fn login_too_late(&mut self) -> &'static str {
        reply(
            &mut self.output,
            421,
            "4.7.0",
            "Login not completed in time, closing",
        );
        "login-deadline"
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.log_exchange();
        let timeout = self.service.idle_timeout;
        self.stream.write_within(&mut self.output, timeout).await?;
        self.logged = 0;
        Ok(())
    }

    /// With `protocol_log` on: logs what the session heard and the reply
    /// lines not yet logged, in the order they happened.
    fn log_exchange(&mut self) {
        if !self.service.options.protocol_log {
            return;
        }
        let ip = self.peer.ip();
        for (at, heard) in self.session.take_heard() {
            self.log_replies(at);
            protocol_log::client("submission", ip, &heard);
        }
        self.log_replies(self.output.len());
    }

    /// Logs the reply lines in `output` up to `end`.
    fn log_replies(&mut self, end: usize) {
        let end = end.min(self.output.len());
        if end <= self.logged {
            return;
        }
        for line in self.output[self.logged..end].split_inclusive(|&b| b == b'\n') {
            protocol_log::server("submission", self.peer.ip(), line);
        }
        self.logged = end;
    }

    async fn start_tls(&mut self) -> Option<&'static str> {
        let Some(tls) = &self.service.tls else {
            return Some("error");
        };
        let handshake = self.login.read_timeout(self.service.preauth_timeout);
        if !self.stream.start_tls(tls, handshake).await {
            return Some("tls-failed");
        }
        self.session.tls_started();
        // The login is forgotten with the rest: so is its place in
        // max_connections_per_user.
        self.user_slot = None;
        None
    }

    async fn authenticate(&mut self, credentials: Credentials) -> Option<&'static str> {
        let ip = self.peer.ip();
        match self
            .service
            .login
            .check("submission", ip, credentials)
            .await
        {
            Outcome::Accepted(account) => {
                match self.service.user_limit.admit(&account.user) {
                    Ok(slot) => {
                        self.user_slot = Some(slot);
                        let senders = self.service.senders(&account.user);
                        self.session
                            .authenticated(account.user, senders, &mut self.output);
                    }
                    Err(refusal) => {
                        warn!(
                            target: "popgate::session",
                            "submission login refused: rip={ip} user={} limit={refusal:?}",
                            LogText(&account.user),
                        );
                        self.session
                            .login_refused(LoginRefusal::TooManySessions, &mut self.output);
                    }
                }
                None
            }
            Outcome::Disabled => {
                self.session
                    .login_refused(LoginRefusal::Credentials, &mut self.output);
                None
            }
            Outcome::Rejected { close } => {
                self.session
                    .login_refused(LoginRefusal::Credentials, &mut self.output);
                close.then_some("too-many-failures")
            }
            Outcome::Unavailable => {
                self.session
                    .login_refused(LoginRefusal::Unavailable, &mut self.output);
                None
            }
        }
    }

    async fn relay(&mut self, transaction: Transaction) {
        let Transaction { from, to, data } = transaction;
        let user = self.session.user().unwrap_or("-").to_owned();
        let trace = Trace {
            helo: self.session.helo().unwrap_or("unknown"),
            ip: self.peer.ip(),
            hostname: &self.service.options.hostname,
            user: &user,
            tls: self.stream.tls_version(),
        };
        let data = message::with_trace(&data, &trace);
        let size = data.len();
        // Quoted, so a space or quote in a quoted local part cannot forge
        // a field of the log line.
        let sender = format!(
            "{:?}",
            format!("<{}>", from.as_ref().map_or("", |a| a.as_str()))
        );
        let recipients = to.len();
        let outcome = self
            .service
            .relay
            .send(from, to, data, self.service.relay_timeout)
            .await;
        if outcome == super::session::RelayOutcome::Accepted {
            self.summary.accepted += 1;
        } else {
            self.summary.refused += 1;
        }
        info!(
            target: "popgate::relay",
            "submission relayed: rip={} user={} from={} recipients={recipients} size={size} outcome={outcome:?}",
            self.peer.ip(),
            LogText(&user),
            LogText(&sender),
        );
        self.session.relayed(outcome, &mut self.output);
    }
}
