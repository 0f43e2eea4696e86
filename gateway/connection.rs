//! The connection core: what every line protocol needs around its pure
//! session, written once.
//!
//! `server.rs` accepts a connection, reads the PROXY header, admits it,
//! runs the TLS handshake on implicit-TLS ports and hands the [`Stream`] to
//! a [`Connection`], which it gives to the service's driver
//! ([`Protocol::serve`]). The driver owns only what is its protocol's (POP3:
//! the mailbox, RETR, UPDATE; submission: the relay); the core owns the rest:
//!
//! - the stream, plain or TLS, and the client's address;
//! - one bounded input buffer ([`LineBuffer`]), read as lines
//!   ([`Connection::take_line`]) or as bytes ([`Connection::line_end`],
//!   [`Connection::hand_bytes`]), and the output buffer; both start small
//!   and grow only when a read or a reply needs it;
//! - time: every read waits at most the idle timeout (before login
//!   `preauth_timeout`, never past the [login deadline](crate::login_deadline);
//!   after login `idle_timeout`, never past the
//!   [request deadline](crate::request_deadline) of the command line or
//!   message being received) and ends at shutdown or a kick
//!   ([`Connection::read_more`] says which [`Ending`] came, the driver words
//!   the goodbye: [`Connection::read_or_end`]);
//! - [`Connection::flush`], a bounded write, and [`Connection::start_tls`]:
//!   flush, forget what was pipelined behind STLS/STARTTLS (RFC 2595 §4,
//!   RFC 3207 §4.2), handshake within the pre-login timeout;
//! - its entry in the [session registry](crate::sessions), which
//!   `popgate who` lists: registered at start, its user set by the driver
//!   at login ([`Connection::set_user`]), its TLS version and its session's
//!   state ([`Tapped::state`], after every session call that goes through
//!   the core) kept up to date by the core, removed when the connection is
//!   dropped;
//! - the kick (`popgate kick USER`): a kicked connection ends wherever it
//!   next waits. Waiting for input, it hears the driver's goodbye for
//!   [`Ending::Kicked`]; a write that waits for a client that does not
//!   read ends at once ([`Connection::flush`]); a long reply (a message
//!   body, a listing) stops at its next chunk
//!   ([`Connection::flush_partial`]), without a goodbye, as a write error
//!   would. A step that is not a write runs to its end first: a relay in
//!   flight finishes and its answer is sent (a message handed on is never
//!   left unacknowledged), a password check or an UPDATE already begun
//!   completes. Drivers ask [`Connection::is_kicked`] before applying
//!   anything: a kicked POP3 session never enters UPDATE. Its summary says
//!   `end=kicked`;
//! - the [protocol log](crate::protocol_log), as a [`Tap`]: every session
//!   call goes through the core ([`Connection::hand_line`],
//!   [`Connection::hand_bytes`], [`Connection::reply`]), which shows the tap
//!   what went in and what came out, so no session keeps logging state.
//!   Output written through [`Connection::output`] (message bodies,
//!   listings) passes the tap by;
//! - [`Connection::finish`]: the stream's bounded close ([`Stream::close`]:
//!   a TLS client that stopped reading cannot hold it) and the one summary line,
//!   `{service} session ended: rip=… user=… tls=… {fields} end=… duration_ms=…`,
//!   the protocol giving its user and its middle fields;
//! - with `[metrics]` on, the connection's [`SessionMetrics`]
//!   ([`Connection::with_metrics`]): its place in the sessions gauge for as
//!   long as the connection lives, and the clock of its commands, which the
//!   hand-overs and reads above run, as they run the protocol log; drivers
//!   record their protocol's events on it ([`Connection::metrics`]), and
//!   answer and count a refused login through [`Connection::refuse_login`].
//!
//! A line protocol is a [`Protocol`]: its [`ConnectionSettings`], the line a
//! client turned away at a connection limit hears, and its driver.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU64;
use std::pin::Pin;
use std::slice::Iter;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

use crate::line_buffer::{LineBuffer, LineTooLong};
use crate::log_text::LogText;
use crate::login::LoginRefusal;
use crate::login_deadline::LoginDeadline;
use crate::metrics::SessionMetrics;
use crate::protocol_log::{Reading, Tap, Tapped};
use crate::request_deadline::RequestClock;
use crate::sessions::{Registration, Sessions};
use crate::stream::Stream;
use crate::tls::TlsProvider;

/// The output buffer's first capacity; replies that need more grow it.
const OUTPUT_CAPACITY: usize = 1024;

/// What the core needs to know of a protocol to run its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// The service's name in logs: `pop3`, `submission`.
    pub service: &'static str,
    /// The idle timeout before login (and for the TLS handshake).
    pub preauth_timeout: Duration,
    /// The idle timeout after login.
    pub idle_timeout: Duration,
    /// How long a connection has to log in, from accept.
    pub login_deadline: Duration,
    /// The most unconsumed input held (see [`LineBuffer::new`]).
    pub input_limit: usize,
    /// The slowest message text allowed after login, in octets a second
    /// (see [`crate::request_deadline`]); `None` for a protocol that reads
    /// none.
    pub min_data_rate: Option<NonZeroU64>,
    /// With `protocol_log` on, the protocol's command keywords (upper
    /// case), which the log shows; `None` when it is off.
    pub protocol_log: Option<&'static [&'static str]>,
}

/// A line protocol the server serves: one entry of its service table.
pub trait Protocol: fmt::Debug + Send + Sync + 'static {
    /// How its connections are read, timed and logged.
    fn connection_settings(&self) -> &ConnectionSettings;

    /// What a plaintext client hears when a connection limit turns it away.
    fn busy(&self) -> &'static [u8];

    /// Serves one connection, from the greeting to the summary line. The
    /// future is boxed: a spawned task is as large as the largest future it
    /// may run, and an idle POP3 connection must not carry the room a
    /// submission relay needs.
    fn serve(self: Arc<Self>, connection: Connection) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// How a wait for input ended, when no input came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client closed the connection.
    Closed,
    /// The idle timeout passed.
    IdleTimeout,
    /// The login deadline passed before a login.
    LoginDeadline,
    /// The server is shutting down.
    Shutdown,
    /// A logged-in client took too long over one command line or message
    /// (see [`crate::request_deadline`]).
    RequestTimeout,
    /// An administrator ended the session (`popgate kick`).
    Kicked,
}

impl Ending {
    /// The reason the session summary gives (`end=`).
    pub fn reason(self) -> &'static str {
        match self {
            Ending::Closed => "disconnected",
            Ending::IdleTimeout => "timeout",
            Ending::LoginDeadline => "login-deadline",
            Ending::Shutdown => "shutdown",
            Ending::RequestTimeout => "request-timeout",
            Ending::Kicked => "kicked",
        }
    }
}

/// The error a kicked connection's writes end with.
fn kicked() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "kicked")
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns must not live across an await point.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

/// One client connection, from the greeting to its summary line.
#[derive(Debug)]
pub struct Connection {
    settings: ConnectionSettings,
    stream: Stream,
    peer: SocketAddr,
    started: Instant,
    input: LineBuffer,
    output: Vec<u8>,
    login: LoginDeadline,
    shutdown: watch::Receiver<bool>,
    tap: Option<Tap>,
    /// Boxed: a connection without metrics carries a pointer's room only.
    metrics: Option<Box<SessionMetrics>>,
    registration: Registration,
    request: RequestClock,
}

impl Connection {
    /// A connection from `peer` over `stream` (TLS already, on an
    /// implicit-TLS port), which must log in by `login`; it registers in
    /// `sessions` until it is dropped.
    pub fn new(
        settings: &ConnectionSettings,
        stream: Stream,
        peer: SocketAddr,
        login: LoginDeadline,
        shutdown: watch::Receiver<bool>,
        sessions: &Arc<Sessions>,
    ) -> Connection {
        let registration =
            sessions.register(settings.service, peer, stream.tls_version(), "connected");
        Connection {
            settings: *settings,
            stream,
            peer,
            started: Instant::now(),
            input: LineBuffer::new(settings.input_limit),
            output: Vec::with_capacity(OUTPUT_CAPACITY),
            login,
            shutdown,
            tap: settings
                .protocol_log
                .map(|keywords| Tap::new(settings.service, peer.ip(), keywords)),
            metrics: None,
            registration,
            request: RequestClock::new(settings.idle_timeout, settings.min_data_rate),
        }
    }

    /// The connection, counted and timed in `metrics` (`None`: metrics off).
    pub fn with_metrics(mut self, metrics: Option<SessionMetrics>) -> Connection {
        self.metrics = metrics.map(Box::new);
        self
    }

    /// Where the driver records its protocol's events; `None` with metrics off.
    pub fn metrics(&self) -> Option<&SessionMetrics> {
        self.metrics.as_deref()
    }

    /// Names the logged-in user in the session registry (`None` once a
    /// login is forgotten, as after STARTTLS), so `popgate who` shows it
    /// and `popgate kick` finds it; the registry also takes `session`'s
    /// state, which the driver's own call (the login) changed.
    pub fn set_user<S: Tapped>(&mut self, user: Option<&str>, session: &S) {
        self.registration.set_user(user);
        self.registration.set_state(session.state());
    }

    /// True once an administrator kicked the session.
    pub fn is_kicked(&self) -> bool {
        self.registration.is_kicked()
    }

    /// The client's address (from the PROXY header, behind a trusted proxy).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// True once the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The negotiated TLS version, e.g. `TLSv1_3`.
    pub fn tls_version(&self) -> Option<&'static str> {
        self.stream.tls_version()
    }

    /// When the connection must have logged in by.
    pub fn login_deadline(&self) -> LoginDeadline {
        self.login
    }

    /// Moves the next complete input line, without its line ending, into
    /// `line`; `Ok(false)` when none is buffered (see
    /// [`LineBuffer::take_line`]).
    pub fn take_line(&mut self, line: &mut Vec<u8>) -> Result<bool, LineTooLong> {
        self.input.take_line(line)
    }

    /// The length of the next input line, LF included, for lines of at most
    /// `limit` octets (see [`LineBuffer::line_end`]).
    pub fn line_end(&self, limit: usize) -> Option<usize> {
        self.input.line_end(limit)
    }

    /// How many input bytes are buffered.
    pub fn pending_len(&self) -> usize {
        self.input.pending().len()
    }

    /// Hands `line` to `session` through `handle`, which may write replies.
    pub fn hand_line<S: Tapped, R>(
        &mut self,
        session: &mut S,
        line: &[u8],
        handle: impl FnOnce(&mut S, &[u8], &mut Vec<u8>) -> R,
    ) -> R {
        let before = session.reading();
        let started = self.metrics.as_mut().map(|metrics| metrics.handing());
        let mark = self.output.len();
        let result = handle(session, line, &mut self.output);
        // The line was taken out with its line end: at least one octet.
        let after = handed(
            &mut self.request,
            &mut self.registration,
            session,
            before,
            line.len() + 1,
        );
        if self.tap.is_some() || self.metrics.is_some() {
            let handed = Handed {
                before,
                input: line,
                after,
                output: &self.output[mark..],
            };
            handed.show(&mut self.tap, &mut self.metrics, started);
        }
        result
    }

    /// Hands the first `len` buffered input bytes to `session` through
    /// `advance`, which takes what it uses from the iterator and may write
    /// replies; what it took is consumed.
    pub fn hand_bytes<S: Tapped, R>(
        &mut self,
        session: &mut S,
        len: usize,
        advance: impl FnOnce(&mut S, &mut Iter<'_, u8>, &mut Vec<u8>) -> R,
    ) -> R {
        let before = session.reading();
        let started = self.metrics.as_mut().map(|metrics| metrics.handing());
        let given = &self.input.pending()[..len.min(self.input.pending().len())];
        let mut bytes = given.iter();
        let mark = self.output.len();
        let result = advance(session, &mut bytes, &mut self.output);
        let used = given.len() - bytes.as_slice().len();
        let after = handed(
            &mut self.request,
            &mut self.registration,
            session,
            before,
            used,
        );
        if self.tap.is_some() || self.metrics.is_some() {
            let handed = Handed {
                before,
                input: &given[..used],
                after,
                output: &self.output[mark..],
            };
            handed.show(&mut self.tap, &mut self.metrics, started);
        }
        self.input.consume(used);
        result
    }

    /// Lets `write` append reply lines to the output, which the protocol
    /// log shows (a session's answer to a driver's step, a greeting, a
    /// goodbye).
    pub fn reply<R>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mark = self.output.len();
        let result = write(&mut self.output);
        if let Some(tap) = &self.tap {
            tap.said(&self.output[mark..]);
        }
        result
    }

    /// Answers a refused login with `answer` (the session's reply to
    /// `refusal`) and counts it; `Some(reason)` when the refusal ends the
    /// connection. Both protocols' drivers refuse logins through it.
    pub fn refuse_login(
        &mut self,
        refusal: LoginRefusal,
        answer: impl FnOnce(&mut Vec<u8>),
    ) -> Option<&'static str> {
        if let Some(metrics) = self.metrics() {
            metrics.login_refused(refusal);
        }
        self.reply(answer);
        refusal.ends_connection()
    }

    /// The output buffer itself, for what the protocol log never shows:
    /// message bodies and listings.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Writes all buffered output, within the idle timeout: a client that
    /// stops reading cannot hold the connection. A kick ends a write that
    /// waits for the client; output the client takes at once still goes
    /// out, so a reply owed (a relay's 250) is not lost to a kick.
    pub async fn flush(&mut self) -> io::Result<()> {
        let timeout = self.settings.idle_timeout;
        tokio::select! {
            biased;
            written = self.stream.write_within(&mut self.output, timeout) => written,
            () = self.registration.kicked() => Err(kicked()),
        }
    }

    /// Writes part of a long reply (a message body, a listing): as
    /// [`Connection::flush`], but a kicked connection stops here, with an
    /// error, instead of sending the rest.
    pub async fn flush_partial(&mut self) -> io::Result<()> {
        if self.is_kicked() {
            return Err(kicked());
        }
        self.flush().await
    }

    /// How long the next read may wait.
    fn read_timeout(&self, logged_in: bool) -> Duration {
        read_timeout(&self.settings, self.login, logged_in)
    }

    /// Reads more input, at most `max_read` octets; `Some` tells how the
    /// wait ended instead. A deadline that has passed ends it at once:
    /// before login (`logged_in` false) the login deadline, after it the
    /// deadline of the request being received.
    pub async fn read_more(
        &mut self,
        logged_in: bool,
        max_read: usize,
    ) -> io::Result<Option<Ending>> {
        if let Some(metrics) = &mut self.metrics {
            metrics.waiting();
        }
        if !logged_in && self.login.has_passed() {
            return Ok(Some(Ending::LoginDeadline));
        }
        let now = Instant::now();
        let request = match logged_in {
            true => self.request.deadline(now, self.input.pending().len()),
            false => None,
        };
        let idle = self.read_timeout(logged_in);
        // A client silent for the whole idle timeout is idle, whatever it
        // was in the middle of; the request deadline cuts it only earlier.
        let (timeout, too_long) = match request {
            Some(due) if due <= now => return Ok(Some(Ending::RequestTimeout)),
            Some(due) if due - now < idle => (due - now, Ending::RequestTimeout),
            _ => (idle, Ending::IdleTimeout),
        };
        tokio::select! {
            read = tokio::time::timeout(timeout, self.input.fill(&mut self.stream, max_read)) => match read {
                Err(_) if !logged_in && self.login.has_passed() => Ok(Some(Ending::LoginDeadline)),
                Err(_) => Ok(Some(too_long)),
                Ok(Ok(0)) => Ok(Some(Ending::Closed)),
                Ok(Ok(_)) => Ok(None),
                Ok(Err(error)) => Err(error),
            },
            _ = stopped(&mut self.shutdown) => Ok(Some(Ending::Shutdown)),
            () = self.registration.kicked() => Ok(Some(Ending::Kicked)),
        }
    }

    /// Flushes, then reads more input (see [`Connection::read_more`]).
    /// When the connection ends instead, `goodbye` writes the protocol's
    /// last words (nothing, for a client that left), which are flushed;
    /// the result is then the summary's reason.
    pub async fn read_or_end(
        &mut self,
        logged_in: bool,
        max_read: usize,
        goodbye: impl FnOnce(Ending, &mut Vec<u8>),
    ) -> io::Result<Option<&'static str>> {
        self.flush().await?;
        match self.read_more(logged_in, max_read).await? {
            None => Ok(None),
            Some(Ending::Closed) => Ok(Some(Ending::Closed.reason())),
            Some(ending) => {
                self.reply(|out| goodbye(ending, out));
                self.flush().await?;
                Ok(Some(ending.reason()))
            }
        }
    }

    /// STLS or STARTTLS: flushes the answer, forgets whatever the client
    /// sent after the command (it came in the clear), and runs the
    /// handshake within the pre-login timeout. `Some(reason)` ends the
    /// connection: no certificate (`error`), a failed handshake
    /// (`tls-failed`).
    pub async fn start_tls(
        &mut self,
        tls: Option<&TlsProvider>,
    ) -> io::Result<Option<&'static str>> {
        self.flush().await?;
        self.input.discard();
        let Some(tls) = tls else {
            return Ok(Some("error"));
        };
        let handshake = self.read_timeout(false);
        if !self.stream.start_tls(tls, handshake).await {
            return Ok(Some("tls-failed"));
        }
        self.registration.set_tls(self.stream.tls_version());
        Ok(None)
    }

    /// Ends the connection: closes the stream (within
    /// [`CLOSE_WITHIN`](crate::stream::CLOSE_WITHIN)) and logs the session's
    /// one summary line, with `user` (once logged in) and the protocol's
    /// own `fields`. `ended` is how the driver's loop ended; an error on a
    /// kicked connection is the kick's doing (`end=kicked`). (It borrows
    /// the connection, so a driver's future need not hold a second one
    /// while it runs: an idle connection's task stays small.)
    pub async fn finish<F: fmt::Display + Sync>(
        &mut self,
        ended: io::Result<&'static str>,
        user: Option<&str>,
        fields: &F,
    ) {
        if let Some(metrics) = &mut self.metrics {
            metrics.waiting();
        }
        let end = match ended {
            Ok(end) => end,
            Err(_) if self.is_kicked() => Ending::Kicked.reason(),
            Err(error) => {
                tracing::debug!(peer = %self.peer, error = %LogText(&error), "connection error");
                "error"
            }
        };
        self.stream.close().await;
        let summary = Summary {
            service: self.settings.service,
            ip: self.peer.ip(),
            user,
            tls: self.stream.tls_version(),
            fields,
            end,
            duration_ms: self.started.elapsed().as_millis(),
        };
        info!(target: "popgate::session", "{summary}");
    }
}

/// One hand-over of input to a session, as the protocol log and the
/// command clock see it.
struct Handed<'a> {
    before: Reading,
    input: &'a [u8],
    after: Reading,
    output: &'a [u8],
}

impl Handed<'_> {
    /// Shows the hand-over to the protocol log and, when it started at
    /// `started`, to the command clock.
    fn show(
        &self,
        tap: &mut Option<Tap>,
        metrics: &mut Option<Box<SessionMetrics>>,
        started: Option<Instant>,
    ) {
        if let Some(tap) = tap {
            tap.exchange(self.before, self.input, self.after, self.output);
        }
        if let (Some(metrics), Some(started)) = (metrics, started) {
            metrics.handed(self.before, self.input, self.after, started);
        }
    }
}

/// How long a read may wait: the idle timeout after login; before it, the
/// pre-login timeout, cut to what is left of the login deadline.
fn read_timeout(settings: &ConnectionSettings, login: LoginDeadline, logged_in: bool) -> Duration {
    if logged_in {
        settings.idle_timeout
    } else {
        login.read_timeout(settings.preauth_timeout)
    }
}

/// After a session call: the request clock and the registry learn what
/// the session was handed and what it reads now, which is returned. (Over
/// the two fields, not the connection, so the caller may still hold its
/// input buffer.)
fn handed<S: Tapped>(
    request: &mut RequestClock,
    registration: &mut Registration,
    session: &S,
    before: Reading,
    used: usize,
) -> Reading {
    let after = session.reading();
    request.handed(before, used, after);
    registration.set_state(session.state());
    after
}

/// The one line that sums a session up.
struct Summary<'a, F> {
    service: &'static str,
    ip: IpAddr,
    user: Option<&'a str>,
    tls: Option<&'static str>,
    fields: &'a F,
    end: &'static str,
    duration_ms: u128,
}

impl<F: fmt::Display> fmt::Display for Summary<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} session ended: rip={} user={} tls={} {} end={} duration_ms={}",
            self.service,
            self.ip,
            LogText(self.user.unwrap_or("-")),
            self.tls.unwrap_or("no"),
            self.fields,
            self.end,
            self.duration_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConnectionSettings {
        ConnectionSettings {
            service: "pop3",
            preauth_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
            login_deadline: Duration::from_secs(120),
            input_limit: 8192,
            min_data_rate: None,
            protocol_log: None,
        }
    }

    #[test]
    fn the_summary_line_keeps_its_fields_in_order_for_both_services() {
        struct Pop3;
        impl fmt::Display for Pop3 {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("retrieved=2/4711 deleted=1")
            }
        }
        let pop3 = Summary {
            service: "pop3",
            ip: IpAddr::from([192, 0, 2, 7]),
            user: Some("alice"),
            tls: Some("TLSv1_3"),
            fields: &Pop3,
            end: "quit",
            duration_ms: 12,
        };
        assert_eq!(
            pop3.to_string(),
            "pop3 session ended: rip=192.0.2.7 user=alice tls=TLSv1_3 \
             retrieved=2/4711 deleted=1 end=quit duration_ms=12"
        );
        let submission = Summary {
            service: "submission",
            ip: IpAddr::from([192, 0, 2, 8]),
            user: None,
            tls: None,
            fields: &"accepted=0 refused=1",
            end: "login-deadline",
            duration_ms: 120_000,
        };
        assert_eq!(
            submission.to_string(),
            "submission session ended: rip=192.0.2.8 user=- tls=no \
             accepted=0 refused=1 end=login-deadline duration_ms=120000"
        );
        // A user name is escaped, so it cannot forge the fields after it.
        let forged = Summary {
            user: Some("x\nend=quit"),
            ..submission
        };
        assert!(forged.to_string().contains(r"user=x\nend=quit tls=no"));
    }

    #[test]
    fn reads_wait_the_idle_timeout_after_login_and_never_past_the_deadline_before() {
        let settings = settings();
        let fresh = LoginDeadline::new(Instant::now(), Duration::from_secs(120));
        assert_eq!(
            read_timeout(&settings, fresh, false),
            Duration::from_secs(60)
        );
        assert_eq!(
            read_timeout(&settings, fresh, true),
            Duration::from_secs(600)
        );
        let nearly = LoginDeadline::new(Instant::now(), Duration::from_secs(5));
        assert!(read_timeout(&settings, nearly, false) <= Duration::from_secs(5));
        let passed = LoginDeadline::new(
            Instant::now() - Duration::from_secs(300),
            Duration::from_secs(120),
        );
        assert_eq!(read_timeout(&settings, passed, false), Duration::ZERO);
        // Logged in, the deadline no longer applies.
        assert_eq!(
            read_timeout(&settings, passed, true),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn endings_name_their_reasons() {
        assert_eq!(Ending::Closed.reason(), "disconnected");
        assert_eq!(Ending::IdleTimeout.reason(), "timeout");
        assert_eq!(Ending::LoginDeadline.reason(), "login-deadline");
        assert_eq!(Ending::Shutdown.reason(), "shutdown");
        assert_eq!(Ending::RequestTimeout.reason(), "request-timeout");
        assert_eq!(Ending::Kicked.reason(), "kicked");
    }
}
