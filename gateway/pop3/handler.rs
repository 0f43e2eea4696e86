//! The POP3 connection driver: the I/O edge around the pure [`Session`].
//!
//! It reads lines under the right timeout (before login, never past the
//! connection's [login deadline](crate::login_deadline)), hands them to the
//! session, writes what the session answered, and carries out each
//! [`Next`] step: checking credentials (on a blocking thread, with the
//! failure delay) and opening the mailbox (creating a Maildir that does not
//! exist yet, as the user's), both within the login deadline, streaming a
//! message through the wire encoder, upgrading to TLS, and applying
//! deletions at QUIT, once every earlier reply has been written. Every
//! other way a connection ends — the client leaves, a timeout, shutdown, an
//! error, a reply that cannot be written before UPDATE — applies nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use popgate_auth::{Account, Credentials};
use popgate_store::read::{self, Start};
use popgate_store::{wire, CommitReport, Mailbox, OpenOptions, StoreError};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tracing::{info, warn};

use super::command;
use super::reply::{self, Code};
use super::session::{Listing, Next, Session, SessionOptions};
use super::Pop3Service;
use crate::identity::{self, Identity};
use crate::line_buffer::{LineBuffer, HARD_LINE_LIMIT};
use crate::log_text::LogText;
use crate::login::Outcome;
use crate::login_deadline::LoginDeadline;
use crate::protocol_log;
use crate::stream::Stream;

/// Output is written to the socket whenever this much is buffered.
const WRITE_CHUNK: usize = 64 * 1024;
/// Message files are read in pieces of this size.
const READ_CHUNK: usize = 128 * 1024;

type Pop3Session = Session<Arc<Mailbox>>;

/// How a connection ended, for the summary log line.
#[derive(Debug, Default)]
struct Summary {
    user: Option<String>,
    retrieved: usize,
    retrieved_octets: u64,
    deleted: usize,
    end: &'static str,
}

/// One client connection from greeting to close.
struct Connection<'a> {
    service: &'a Pop3Service,
    stream: Stream,
    input: LineBuffer,
    output: Vec<u8>,
    peer: SocketAddr,
    session: Pop3Session,
    summary: Summary,
    user_slot: Option<crate::limits::Slot<String>>,
    /// The filesystem identity store calls run with (system users as root).
    identity: Option<Identity>,
    /// When the connection must have logged in by.
    login: LoginDeadline,
}

/// Serves one accepted connection (TLS already established on port 995).
pub async fn serve(
    service: Arc<Pop3Service>,
    stream: Stream,
    peer: SocketAddr,
    login: LoginDeadline,
    shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let tls = stream.is_tls();
    let options = SessionOptions {
        stls_available: !tls && service.tls.is_some(),
        tls,
        plaintext_login: service.plaintext_login,
        max_command_size: service.max_command_size,
    };
    let mut connection = Connection {
        service: &service,
        stream,
        input: LineBuffer::new(HARD_LINE_LIMIT),
        output: Vec::with_capacity(4096),
        peer,
        session: Session::new(options),
        summary: Summary::default(),
        user_slot: None,
        identity: None,
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
    let summary = &connection.summary;
    info!(
        target: "popgate::session",
        "pop3 session ended: rip={} user={} tls={} retrieved={}/{} deleted={} end={} duration_ms={}",
        peer.ip(),
        LogText(summary.user.as_deref().unwrap_or("-")),
        connection.stream.tls_version().unwrap_or("no"),
        summary.retrieved,
        summary.retrieved_octets,
        summary.deleted,
        summary.end,
        started.elapsed().as_millis(),
    );
}

impl Connection<'_> {
    async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> std::io::Result<&'static str> {
        reply::ok(&mut self.output, format_args!("{}", self.service.banner));
        let mut line = Vec::with_capacity(256);
        loop {
            loop {
                match self.input.take_line(&mut line) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(too_long) => {
                        reply::err(&mut self.output, None, format_args!("{too_long}, closing"));
                        self.flush().await?;
                        return Ok("line-too-long");
                    }
                }
                if self.service.protocol_log {
                    let shown = if self.session.in_sasl_exchange() {
                        protocol_log::SASL_RESPONSE.to_owned()
                    } else {
                        protocol_log::command_line(&line, command::KEYWORDS)
                    };
                    protocol_log::client("pop3", self.peer.ip(), &shown);
                }
                let next = self.session.handle_line(&line, &mut self.output);
                if let Some(end) = self.step(next).await? {
                    self.flush().await?;
                    return Ok(end);
                }
                if self.output.len() >= WRITE_CHUNK {
                    self.flush().await?;
                }
            }
            self.flush().await?;
            let logged_in = self.session.is_authenticated();
            if !logged_in && self.login.has_passed() {
                let end = self.login_too_late();
                self.flush().await?;
                return Ok(end);
            }
            let timeout = if logged_in {
                self.service.idle_timeout
            } else {
                self.login.read_timeout(self.service.preauth_timeout)
            };
            tokio::select! {
                read = tokio::time::timeout(timeout, self.input.fill(&mut self.stream)) => match read {
                    Err(_) if !logged_in && self.login.has_passed() => {
                        let end = self.login_too_late();
                        self.flush().await?;
                        return Ok(end);
                    }
                    Err(_) => {
                        reply::err(&mut self.output, None, format_args!("Autologout; idle for too long"));
                        self.flush().await?;
                        return Ok("timeout");
                    }
                    Ok(Ok(0)) => return Ok("disconnected"),
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Err(error),
                },
                _ = crate::server::stopped(&mut shutdown) => {
                    reply::err(&mut self.output, Some(Code::SysTemp), format_args!("Server shutting down, try again later"));
                    self.flush().await?;
                    return Ok("shutdown");
                }
            }
        }
    }

    /// Carries out one step; `Some(reason)` ends the connection.
    ///
    /// Each step's future is boxed: a future is as large as its largest
    /// state, and the login check, the TLS handshake and a RETR in flight
    /// are many kilobytes that an idle connection would otherwise keep
    /// allocated inline in its task for as long as it stays open.
    async fn step(&mut self, next: Next<Arc<Mailbox>>) -> std::io::Result<Option<&'static str>> {
        match next {
            Next::Continue => {}
            Next::Close => return Ok(Some("quit")),
            Next::Authenticate(credentials) => {
                // The password check and the mailbox open end at the
                // login deadline, whatever they are waiting for.
                let login = self.login;
                return match login.within(Box::pin(self.authenticate(credentials))).await {
                    Some(done) => done,
                    None => Ok(Some(self.login_too_late())),
                };
            }
            Next::StartTls => return Box::pin(self.start_tls()).await,
            Next::List(listing) => Box::pin(self.list(listing)).await?,
            Next::Retrieve {
                index,
                number,
                size,
                body_lines,
            } => Box::pin(self.retrieve(index, number, size, body_lines)).await?,
            Next::Update { mailbox, deleted } => {
                // Every reply before QUIT goes out first (a pipelined RETR's
                // last bytes among them): a client that never gets them
                // must not lose the message. If they cannot be written,
                // dropping the mailbox applies nothing.
                self.flush().await?;
                Box::pin(self.update(mailbox, deleted)).await;
                return Ok(Some("quit"));
            }
        }
        Ok(None)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        let timeout = self.service.idle_timeout;
        self.stream.write_within(&mut self.output, timeout).await
    }

    /// The login deadline passed before a login succeeded: the answer, and
    /// the reason the connection ends.
    fn login_too_late(&mut self) -> &'static str {
        reply::err(
            &mut self.output,
            Some(Code::SysTemp),
            format_args!("Login not completed in time, try again later"),
        );
        "login-deadline"
    }

    async fn start_tls(&mut self) -> std::io::Result<Option<&'static str>> {
        self.flush().await?;
        // Anything the client sent after STLS was sent in the clear and must
        // not be treated as if it came over TLS (RFC 2595 §4).
        self.input.discard();
        let Some(tls) = &self.service.tls else {
            return Ok(Some("error"));
        };
        let handshake = self.login.read_timeout(self.service.preauth_timeout);
        if !self.stream.start_tls(tls, handshake).await {
            return Ok(Some("tls-failed"));
        }
        self.session.tls_started();
        Ok(None)
    }

    async fn authenticate(
        &mut self,
        credentials: Credentials,
    ) -> std::io::Result<Option<&'static str>> {
        let ip = self.peer.ip();
        let refusal = match self.service.login.check("pop3", ip, credentials).await {
            Outcome::Accepted(account) => return self.open_mailbox(account).await,
            Outcome::Rejected { close } => {
                reply::err(
                    &mut self.output,
                    Some(Code::Auth),
                    format_args!("Authentication failed"),
                );
                close.then_some("too-many-failures")
            }
            Outcome::Disabled => {
                reply::err(
                    &mut self.output,
                    Some(Code::SysPerm),
                    format_args!("POP3 access is disabled for this mailbox"),
                );
                None
            }
            Outcome::Unavailable => {
                reply::err(
                    &mut self.output,
                    Some(Code::SysTemp),
                    format_args!("Authentication is temporarily unavailable"),
                );
                None
            }
        };
        self.session.login_refused();
        Ok(refusal)
    }

    /// After a successful login: takes a per-user slot and opens the mailbox.
    async fn open_mailbox(&mut self, account: Account) -> std::io::Result<Option<&'static str>> {
        let ip = self.peer.ip();
        let slot = match self.service.limits.admit_user(&account.user) {
            Ok(slot) => slot,
            Err(_) => {
                self.session.login_refused();
                reply::err(
                    &mut self.output,
                    Some(Code::InUse),
                    format_args!("Too many sessions for this user"),
                );
                return Ok(None);
            }
        };
        let options = OpenOptions {
            deadline: Some(self.login.instant()),
            ..self.service.open_options.clone()
        };
        let maildir = account.maildir.clone();
        let identity = Identity::of(&account);
        // A user whose MTA has not delivered yet has no Maildir: the first
        // login creates it, as theirs, and finds it empty.
        let opened = store_call(identity, move || {
            popgate_store::ensure_maildir(&maildir)?;
            Mailbox::open(&maildir, &options)
        })
        .await;
        match opened {
            Ok(mailbox) => {
                self.identity = identity;
                self.user_slot = Some(slot);
                self.summary.user = Some(account.user);
                self.session.logged_in(Arc::new(mailbox), &mut self.output);
            }
            Err(StoreError::TimedOut) => {
                warn!(target: "popgate::store", rip = %ip, user = %LogText(&account.user), "mailbox not opened within the login deadline");
                return Ok(Some(self.login_too_late()));
            }
            Err(error) => {
                self.session.login_refused();
                let (code, text) = match &error {
                    StoreError::Locked => {
                        (Code::InUse, "Mailbox is locked by another POP3 session")
                    }
                    error if error.is_temporary() => {
                        (Code::SysTemp, "Mailbox is temporarily unavailable")
                    }
                    _ => (Code::SysPerm, "Mailbox cannot be opened"),
                };
                warn!(target: "popgate::store", rip = %ip, user = %LogText(&account.user), error = %LogText(&error), "mailbox not opened");
                reply::err(&mut self.output, Some(code), format_args!("{text}"));
            }
        }
        Ok(None)
    }

    async fn list(&mut self, listing: Listing) -> std::io::Result<()> {
        let mut from = 0;
        while let Some(next) =
            self.session
                .write_listing(listing, from, &mut self.output, WRITE_CHUNK)
        {
            self.flush().await?;
            from = next;
        }
        Ok(())
    }

    /// Sends one message (RETR) or its top (TOP). An error after the `+OK`
    /// has gone out cannot be told to the client in protocol, so it ends the
    /// connection (and so applies nothing).
    async fn retrieve(
        &mut self,
        index: usize,
        number: u32,
        size: u64,
        body_lines: Option<u64>,
    ) -> std::io::Result<()> {
        let Some(mailbox) = self.session.mailbox().cloned() else {
            return Ok(());
        };
        let opened = match open_cached(&mailbox, index, self.identity) {
            Some(opened) => Ok(opened),
            // Opening the file and reading its first chunk is one blocking
            // call: most messages fit in that chunk, and then need no other.
            None => {
                store_call(self.identity, move || {
                    let file = mailbox.open_message(index)?;
                    let start = read::read_start(&file, READ_CHUNK)?;
                    Ok((file, start))
                })
                .await
            }
        };
        let (
            file,
            Start {
                bytes: mut chunk,
                whole,
            },
        ) = match opened {
            Ok(opened) => opened,
            Err(StoreError::Vanished) => {
                reply::err(
                    &mut self.output,
                    None,
                    format_args!("Message {number} was removed by another program"),
                );
                return Ok(());
            }
            Err(error) => {
                warn!(target: "popgate::store", rip = %self.peer.ip(), error = %LogText(&error), "message not opened");
                reply::err(
                    &mut self.output,
                    Some(Code::SysTemp),
                    format_args!("Message {number} cannot be read now"),
                );
                return Ok(());
            }
        };
        let mut encoder = match body_lines {
            None => {
                reply::ok(&mut self.output, format_args!("{size} octets"));
                wire::Encoder::full()
            }
            Some(lines) => {
                reply::ok(
                    &mut self.output,
                    format_args!("Top of message {number} follows"),
                );
                wire::Encoder::top(lines)
            }
        };
        let mut sent = chunk.len() as u64;
        encoder.encode(&chunk, &mut self.output);
        if !whole && !encoder.is_done() {
            self.stream_rest(file, &mut chunk, &mut encoder, &mut sent)
                .await?;
        }
        encoder.finish(&mut self.output);
        if body_lines.is_none() {
            self.summary.retrieved += 1;
            self.summary.retrieved_octets += sent;
        }
        Ok(())
    }

    /// Streams the rest of a message larger than the first chunk, one chunk
    /// at a time, so memory stays bounded whatever the message's size.
    async fn stream_rest(
        &mut self,
        file: std::fs::File,
        chunk: &mut Vec<u8>,
        encoder: &mut wire::Encoder,
        sent: &mut u64,
    ) -> std::io::Result<()> {
        if self.output.len() >= WRITE_CHUNK {
            self.flush().await?;
        }
        let mut file = tokio::fs::File::from_std(file);
        chunk.resize(READ_CHUNK, 0);
        while !encoder.is_done() {
            let n = file.read(chunk).await?;
            if n == 0 {
                break;
            }
            *sent += n as u64;
            encoder.encode(&chunk[..n], &mut self.output);
            if self.output.len() >= WRITE_CHUNK {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// QUIT in TRANSACTION: the UPDATE state of RFC 1939 §6.
    async fn update(&mut self, mailbox: Arc<Mailbox>, deleted: Vec<usize>) {
        let count = deleted.len();
        let committed = match Arc::try_unwrap(mailbox) {
            // Nothing to apply: dropping the mailbox releases its lock.
            Ok(_) if deleted.is_empty() => Some(CommitReport::default()),
            Ok(mailbox) => {
                let identity = self.identity;
                tokio::task::spawn_blocking(move || {
                    identity::run_as(identity, || mailbox.commit(&deleted))
                })
                .await
                .ok()
                .and_then(Result::ok)
            }
            Err(_) => None,
        };
        match committed {
            Some(report) if report.is_complete() => {
                self.summary.deleted = count;
                reply::ok(
                    &mut self.output,
                    format_args!("Logging out, {count} messages deleted"),
                );
            }
            Some(report) => {
                let failed: Vec<String> = report
                    .failed
                    .iter()
                    .map(|(index, _)| (index + 1).to_string())
                    .collect();
                for (index, error) in &report.failed {
                    warn!(target: "popgate::store", rip = %self.peer.ip(), number = index + 1, error = %LogText(error), "deletion not applied");
                }
                self.summary.deleted = count - failed.len();
                reply::err(
                    &mut self.output,
                    Some(Code::SysTemp),
                    format_args!(
                        "Some deleted messages were not removed: {}",
                        failed.join(" ")
                    ),
                );
            }
            None => reply::err(
                &mut self.output,
                Some(Code::SysTemp),
                format_args!("Deleted messages were not removed"),
            ),
        }
    }
}

/// Opens message `index` and reads its first chunk right here, on the
/// async thread, when the kernel can do both from its caches; `None` when
/// either would wait for the disk (or needs more than a read), and the
/// caller goes to a blocking thread instead. The identity switch is safe
/// here because nothing in between can yield to another session's task.
fn open_cached(
    mailbox: &Mailbox,
    index: usize,
    identity: Option<Identity>,
) -> Option<(std::fs::File, Start)> {
    let opened = identity::run_as(identity, || mailbox.open_message_nowait(index));
    let Ok(Ok(Some(file))) = opened else {
        return None;
    };
    match read::read_start_nowait(&file, READ_CHUNK) {
        Ok(Some(start)) => Some((file, start)),
        _ => None,
    }
}

/// Runs a blocking store call on a blocking thread, with `identity`.
async fn store_call<T: Send + 'static>(
    identity: Option<Identity>,
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let joined = tokio::task::spawn_blocking(move || identity::run_as(identity, call)).await;
    match joined {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => Err(StoreError::from(std::io::Error::other(error))),
        Err(error) => Err(StoreError::from(std::io::Error::other(error))),
    }
}
