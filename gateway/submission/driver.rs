//! The submission connection driver: the protocol's own I/O around the
//! pure [`Session`], on the [connection core](crate::connection).
//!
//! It hands the session its input a line at a time while it reads commands
//! or SASL responses, so the protocol log sees each, and everything buffered
//! while it reads message text, so DATA goes at the speed of the reads. It
//! carries out each [`Step`]: the TLS handshake after STARTTLS (dropping
//! any bytes that came with the command), the credential check (on a
//! blocking thread, with the failure delay shared with POP3, within the
//! [login deadline](crate::login_deadline)) and the mailbox's settings
//! (whether it may send, and as whom), the relay's answer about a
//! recipient at RCPT, and the relay. Replies go out when the input runs
//! dry, so a pipelining client gets all its answers in one write. A refused
//! login is the session's to answer ([`Session::login_refused`]). With
//! `[metrics]` on, it records how each login ended and each relay's answer
//! on the connection's [metrics](Connection::metrics).
//!
//! Input is read at most 2 KiB at a time before login and 64 KiB after, so
//! a connection that has not logged in holds a few kilobytes, not the
//! 64 KiB a message upload reads with (see `tests/e2e/submission_memory.rs`
//! for the figure).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use popgate_auth::Credentials;
use tracing::{info, warn};

use super::message::{self, Trace};
use super::relay::outcome::RelayOutcome;
use super::reply::reply;
use super::session::{self, Session, Step, Transaction};
use super::SubmissionService;
use crate::connection::{Connection, Ending};
use crate::limits::Slot;
use crate::log_text::LogText;
use crate::login::{self, LoginRefusal};
use crate::protocol_log::{Reading, Tapped};

/// The most bytes read from the socket at once after login.
const READ_CHUNK: usize = 64 * 1024;
/// The most bytes read from the socket at once before login: EHLO,
/// STARTTLS and an AUTH line fit, and an idle connection holds no more.
const PRELOGIN_READ_CHUNK: usize = 2 * 1024;
/// The most input held unconsumed: the start of the longest line and one
/// read after it.
pub const INPUT_LIMIT: usize = session::MAX_LINE + READ_CHUNK;

/// What a session did, for its summary line.
#[derive(Debug, Default)]
struct Summary {
    accepted: usize,
    refused: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "accepted={} refused={}", self.accepted, self.refused)
    }
}

/// One submission conversation on a connection.
struct Driver {
    service: Arc<SubmissionService>,
    session: Session,
    summary: Summary,
    /// The user's place in `max_connections_per_user`, once logged in.
    user_slot: Option<Slot<String>>,
    /// Dropped last: the session leaves the registry only once its user
    /// slot is released.
    conn: Connection,
}

/// Serves one connection (TLS already established on port 465).
///
/// The driver is boxed apart from the future that runs it: an async fn
/// keeps its argument twice (as given, and as the binding it moves into),
/// and a driver is half a kilobyte, which every idle connection would hold
/// twice.
pub fn serve(service: Arc<SubmissionService>, conn: Connection) -> impl Future<Output = ()> + Send {
    let mut options = service.options.clone();
    options.tls = conn.is_tls();
    options.starttls_available = !options.tls && service.tls.is_some();
    Box::new(Driver {
        service,
        session: Session::new(options),
        summary: Summary::default(),
        user_slot: None,
        conn,
    })
    .serve()
}

/// What submission says when a connection ends without the client leaving.
fn goodbye(session: &mut Session, ending: Ending, out: &mut Vec<u8>) {
    match ending {
        Ending::Closed => {}
        Ending::IdleTimeout => reply(out, 421, "4.4.2", "Idle for too long, closing"),
        Ending::LoginDeadline => session.login_refused(LoginRefusal::LoginDeadline, out),
        Ending::Shutdown => reply(out, 421, "4.3.2", "Server shutting down, try again later"),
        Ending::RequestTimeout if session.reading() == Reading::MessageText => reply(
            out,
            421,
            "4.4.2",
            "Message text too slow (below the minimum data rate), closing",
        ),
        Ending::RequestTimeout => {
            reply(out, 421, "4.4.2", "Command not completed in time, closing")
        }
        Ending::Kicked => reply(out, 421, "4.3.2", "Disconnected by the administrator"),
    }
}

impl Driver {
    async fn serve(mut self: Box<Self>) {
        let ended = self.run().await;
        // The user's session slot is free before the summary line says the
        // session ended: a client that reads the log and logs in again is
        // not turned away by its own past session.
        self.user_slot = None;
        self.conn
            .finish(ended, self.session.user(), &self.summary)
            .await;
    }

    async fn run(&mut self) -> std::io::Result<&'static str> {
        let session = &mut self.session;
        self.conn.reply(|out| session.greeting(out));
        loop {
            let Some(len) = self.next_input() else {
                let logged_in = self.session.user().is_some();
                let most = if logged_in {
                    READ_CHUNK
                } else {
                    PRELOGIN_READ_CHUNK
                };
                let session = &mut self.session;
                let read = self
                    .conn
                    .read_or_end(logged_in, most, |ending, out| goodbye(session, ending, out));
                match read.await? {
                    Some(end) => return Ok(end),
                    None => continue,
                }
            };
            let step = self
                .conn
                .hand_bytes(&mut self.session, len, Session::advance);
            match step {
                Step::NeedMore => {}
                Step::StartTls => {
                    let tls = self.service.tls.as_deref();
                    if let Some(end) = Box::pin(self.conn.start_tls(tls)).await? {
                        return Ok(end);
                    }
                    self.session.tls_started();
                    // The login is forgotten with the rest: so is its place
                    // in max_connections_per_user.
                    self.user_slot = None;
                    self.conn.set_user(None, &self.session);
                }
                Step::Authenticate(credentials) => {
                    // The password check ends at the login deadline.
                    let login = self.conn.login_deadline();
                    let checked = login.within(Box::pin(self.authenticate(credentials))).await;
                    if let Some(end) =
                        checked.unwrap_or_else(|| self.login_refused(LoginRefusal::LoginDeadline))
                    {
                        self.conn.flush().await?;
                        return Ok(end);
                    }
                }
                Step::CheckRecipient(recipient) => {
                    let check = Box::pin(self.service.relay.check_recipient(&recipient)).await;
                    let session = &mut self.session;
                    if self
                        .conn
                        .reply(|out| session.recipient_checked(recipient, check, out))
                    {
                        self.conn.flush().await?;
                        return Ok("too-many-errors");
                    }
                }
                // Boxed, like the other steps: the relay's and the login's
                // futures are large, and an idle connection need not hold them.
                Step::Relay(transaction) => Box::pin(self.relay(transaction)).await,
                Step::Close => {
                    self.conn.flush().await?;
                    return Ok("quit");
                }
            }
        }
    }

    /// How much buffered input to hand the session next: the next line
    /// while it reads lines, all of it while it reads message text; `None`
    /// when it must wait for more.
    fn next_input(&self) -> Option<usize> {
        match self.session.reading() {
            Reading::MessageText => Some(self.conn.pending_len()).filter(|&len| len > 0),
            Reading::Command | Reading::SecretResponse => self.conn.line_end(session::MAX_LINE),
        }
    }

    async fn authenticate(&mut self, credentials: Credentials) -> Option<&'static str> {
        let ip = self.conn.peer().ip();
        let checked = self
            .service
            .login
            .check("submission", ip, credentials)
            .await;
        let account = match checked {
            Ok(account) => account,
            Err(refusal) => return self.login_refused(refusal),
        };
        let mailbox = self.service.mailboxes.settings_for(&account.user).await;
        if !mailbox.submission.value {
            return self.login_refused(login::switched_off("submission", ip, &account.user));
        }
        let max = self.service.max_sessions_per_user;
        let refusal = match self.service.user_limit.admit(&account.user, max) {
            Ok(slot) => {
                self.user_slot = Some(slot);
                if let Some(metrics) = self.conn.metrics() {
                    metrics.logged_in();
                }
                let senders = SubmissionService::senders(&mailbox);
                let session = &mut self.session;
                self.conn
                    .reply(|out| session.authenticated(account.user.clone(), senders, out));
                self.conn.set_user(Some(&account.user), &self.session);
                return None;
            }
            Err(refusal) => {
                warn!(
                    target: "popgate::session",
                    "submission login refused: rip={ip} user={} limit={refusal:?}",
                    LogText(&account.user),
                );
                LoginRefusal::TooManySessions
            }
        };
        self.login_refused(refusal)
    }

    /// Has the session answer `refusal`; `Some(reason)` when it ends the
    /// connection.
    fn login_refused(&mut self, refusal: LoginRefusal) -> Option<&'static str> {
        let session = &mut self.session;
        self.conn
            .refuse_login(refusal, |out| session.login_refused(refusal, out))
    }

    async fn relay(&mut self, transaction: Transaction) {
        let Transaction { from, to, data } = transaction;
        let user = self.session.user().unwrap_or("-").to_owned();
        let trace = Trace {
            helo: self.session.helo().unwrap_or("unknown"),
            ip: self.conn.peer().ip(),
            hostname: &self.service.options.hostname,
            user: &user,
            tls: self.conn.tls_version(),
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
        if let Some(metrics) = self.conn.metrics() {
            metrics.relayed(&outcome);
        }
        if outcome == RelayOutcome::Accepted {
            self.summary.accepted += 1;
        } else {
            self.summary.refused += 1;
        }
        info!(
            target: "popgate::relay",
            "submission relayed: rip={} user={} from={} recipients={recipients} size={size} outcome={outcome:?}",
            self.conn.peer().ip(),
            LogText(&user),
            LogText(&sender),
        );
        let session = &mut self.session;
        self.conn.reply(|out| session.relayed(outcome, out));
    }
}
