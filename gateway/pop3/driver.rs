//! The POP3 connection driver: the protocol's own I/O around the pure
//! [`Session`], on the [connection core](crate::connection).
//!
//! It takes lines from the core, hands them to the session, and carries out
//! each [`Next`] step: checking credentials (on a blocking thread, with the
//! failure delay), asking the mailbox's settings (its POP3 switch, session
//! limit, `on_dele` and `order`, which the session keeps to its end) and
//! opening the mailbox (creating a Maildir that does not exist yet, as the
//! user's), all within the [login deadline](crate::login_deadline), streaming a
//! message through the wire encoder (once a session has had to wait for the
//! disk, with the next message loaded meanwhile), upgrading to TLS, and
//! applying deletions at QUIT, once every earlier reply has been written. A
//! refused login, whoever refused it, is the session's to answer
//! ([`Session::login_refused`]). Every other way a connection ends — the client
//! leaves, a timeout, shutdown, a kick (`popgate kick`, even one that comes
//! with QUIT already read), an error, a reply that cannot be written before
//! UPDATE — applies nothing.
//!
//! Replies go through the core's tap ([`Connection::reply`]), so the
//! protocol log shows them; message bodies and listings are written past it
//! ([`Connection::output`]). With `[metrics]` on, it records how each login
//! ended, each RETR and the deletions an UPDATE applied on the connection's
//! [metrics](Connection::metrics).

use std::fmt;
use std::future::Future;
use std::io::Read;
use std::sync::Arc;

use popgate_auth::{Account, Credentials};
use popgate_store::read::{self, Start};
use popgate_store::{wire, CommitReport, Mailbox, OpenOptions, StoreError};
use tracing::warn;

use super::reply::{self, Code};
use super::session::{Listing, Next, Session, SessionOptions};
use super::Pop3Service;
use crate::connection::{Connection, Ending};
use crate::identity::{self, Identity};
use crate::limits::Slot;
use crate::log_text::LogText;
use crate::login::{self, LoginRefusal};
use crate::mailbox_settings::effective::Effective;

/// Commands are read at most this much at a time.
const READ_SIZE: usize = 4096;
/// Replies and listings are written to the socket whenever this much is
/// buffered.
const WRITE_CHUNK: usize = 64 * 1024;
/// A message is read, encoded and written a piece of this size at a time,
/// each piece sent as soon as it is encoded. Small sends keep the client
/// reading while the next piece is prepared; with 128 KiB pieces, one
/// client's RETR of 1 MB messages ran about a fifth slower and took a third
/// to a half more of the server's CPU (see docs/performance.md). Public so
/// the benchmarks and the boundary test of RETR follow it.
pub const MESSAGE_PIECE: usize = 32 * 1024;

type Pop3Session = Session<Arc<Mailbox>>;

/// What a session did, for its summary line.
#[derive(Debug, Default)]
struct Summary {
    user: Option<String>,
    retrieved: usize,
    retrieved_octets: u64,
    deleted: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retrieved={}/{} deleted={}",
            self.retrieved, self.retrieved_octets, self.deleted
        )
    }
}

/// One POP3 conversation on a connection.
struct Driver {
    service: Arc<Pop3Service>,
    session: Pop3Session,
    summary: Summary,
    user_slot: Option<Slot<String>>,
    /// The filesystem identity store calls run with (system users as root).
    identity: Option<Identity>,
    /// Set once a message of this session had to be read from the disk:
    /// from then on, each RETR has the kernel load the next message while
    /// this one is sent (see [`popgate_store::prefetch`]).
    cold: bool,
    /// The load of the next message, while it is being started.
    loading: Option<tokio::task::JoinHandle<()>>,
    /// Dropped last: the session leaves the registry only once its mailbox
    /// lock and user slot are released, so `popgate kick` returns with them
    /// free.
    conn: Connection,
}

/// Serves one connection (TLS already established on port 995).
///
/// The driver is boxed apart from the future that runs it: an async fn
/// keeps its argument twice (as given, and as the binding it moves into),
/// and a driver is half a kilobyte, which every idle connection would hold
/// twice.
pub fn serve(service: Arc<Pop3Service>, conn: Connection) -> impl Future<Output = ()> + Send {
    let tls = conn.is_tls();
    let options = SessionOptions {
        stls_available: !tls && service.tls.is_some(),
        tls,
        plaintext_login: service.plaintext_login,
        max_command_size: service.max_command_size,
    };
    Box::new(Driver {
        service,
        session: Session::new(options),
        summary: Summary::default(),
        user_slot: None,
        identity: None,
        cold: false,
        loading: None,
        conn,
    })
    .serve()
}

/// What POP3 says when a connection ends without the client leaving.
fn goodbye(session: &mut Pop3Session, ending: Ending, out: &mut Vec<u8>) {
    match ending {
        Ending::Closed => {}
        Ending::IdleTimeout => reply::err(out, None, format_args!("Autologout; idle for too long")),
        Ending::LoginDeadline => session.login_refused(LoginRefusal::LoginDeadline, out),
        Ending::Shutdown => reply::err(
            out,
            Some(Code::SysTemp),
            format_args!("Server shutting down, try again later"),
        ),
        Ending::RequestTimeout => reply::err(
            out,
            None,
            format_args!("Autologout; command line not completed in time"),
        ),
        Ending::Kicked => reply::err(
            out,
            Some(Code::SysTemp),
            format_args!("Disconnected by the administrator"),
        ),
    }
}

impl Driver {
    async fn serve(mut self: Box<Self>) {
        let ended = self.run().await;
        // As in submission: the user's slot is free before the summary line.
        self.user_slot = None;
        let summary = &self.summary;
        self.conn
            .finish(ended, summary.user.as_deref(), summary)
            .await;
    }

    async fn run(&mut self) -> std::io::Result<&'static str> {
        let banner = &self.service.banner;
        self.conn
            .reply(|out| reply::ok(out, format_args!("{banner}")));
        let mut line = Vec::with_capacity(256);
        loop {
            loop {
                match self.conn.take_line(&mut line) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(too_long) => {
                        self.conn.reply(|out| {
                            reply::err(out, None, format_args!("{too_long}, closing"))
                        });
                        self.conn.flush().await?;
                        return Ok("line-too-long");
                    }
                }
                let next = self
                    .conn
                    .hand_line(&mut self.session, &line, Session::handle_line);
                if let Some(end) = self.step(next).await? {
                    self.conn.flush().await?;
                    return Ok(end);
                }
                if self.conn.output().len() >= WRITE_CHUNK {
                    self.conn.flush().await?;
                }
            }
            let logged_in = self.session.is_authenticated();
            let session = &mut self.session;
            let read = self.conn.read_or_end(logged_in, READ_SIZE, |ending, out| {
                goodbye(session, ending, out)
            });
            if let Some(end) = read.await? {
                return Ok(end);
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
                let login = self.conn.login_deadline();
                return Ok(
                    match login.within(Box::pin(self.authenticate(credentials))).await {
                        Some(done) => done,
                        None => self.login_refused(LoginRefusal::LoginDeadline),
                    },
                );
            }
            Next::StartTls => {
                let tls = self.service.tls.as_deref();
                let ended = Box::pin(self.conn.start_tls(tls)).await?;
                if ended.is_none() {
                    self.session.tls_started();
                }
                return Ok(ended);
            }
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
                self.conn.flush().await?;
                // Nor does a kick that came before UPDATE began.
                if self.conn.is_kicked() {
                    let session = &mut self.session;
                    self.conn.reply(|out| goodbye(session, Ending::Kicked, out));
                    return Ok(Some(Ending::Kicked.reason()));
                }
                Box::pin(self.update(mailbox, deleted)).await;
                return Ok(Some("quit"));
            }
        }
        Ok(None)
    }

    /// Checks the credentials and opens the mailbox; a refusal, whoever
    /// made it, is answered by the session. `Some(reason)` ends the
    /// connection.
    async fn authenticate(&mut self, credentials: Credentials) -> Option<&'static str> {
        let ip = self.conn.peer().ip();
        let refusal = match self.service.login.check("pop3", ip, credentials).await {
            Ok(account) => {
                let mailbox = self.service.mailboxes.settings_for(&account.user).await;
                if !mailbox.pop3.value {
                    login::switched_off("pop3", ip, &account.user)
                } else {
                    match self.open_mailbox(account, &mailbox).await {
                        Ok(()) => return None,
                        Err(refusal) => refusal,
                    }
                }
            }
            Err(refusal) => refusal,
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

    /// After a successful login: takes a per-user slot and opens the
    /// mailbox, both as its settings say.
    async fn open_mailbox(
        &mut self,
        account: Account,
        mailbox: &Effective,
    ) -> Result<(), LoginRefusal> {
        let ip = self.conn.peer().ip();
        let slot = self
            .service
            .limits
            .admit_user(&account.user, mailbox.max_connections.value)
            .map_err(|_| LoginRefusal::TooManySessions)?;
        let options = OpenOptions {
            deadline: Some(self.conn.login_deadline().instant()),
            on_dele: mailbox.on_dele.value.clone(),
            order: mailbox.order.value,
            ..self.service.open_options.clone()
        };
        let maildir = account.maildir.clone();
        let identity = Identity::of(&account);
        // An unchanged Maildir is opened from its kept snapshot right here
        // when that cannot wait for the disk (the identity switch is safe:
        // nothing in between yields). Else on a blocking thread; there, a
        // user whose MTA has not delivered yet has no Maildir: the first
        // login creates it, as theirs, and finds it empty. Only a login
        // that finds none pays for looking at what is missing.
        let reused = identity::run_as(identity, || Mailbox::open_nowait(&maildir, &options));
        let (opened, reused) = match reused {
            Ok(Some(mailbox)) => (Ok(mailbox), true),
            _ => {
                let listed =
                    store_call(identity, move || match Mailbox::open(&maildir, &options) {
                        Err(StoreError::NoSuchMailbox(_)) => {
                            popgate_store::ensure_maildir(&maildir)?;
                            Mailbox::open(&maildir, &options)
                        }
                        opened => opened,
                    })
                    .await;
                (listed, false)
            }
        };
        match opened {
            Ok(mailbox) => {
                self.identity = identity;
                self.user_slot = Some(slot);
                if let Some(metrics) = self.conn.metrics() {
                    metrics.logged_in();
                    metrics.mailbox_opened(reused);
                }
                let session = &mut self.session;
                self.conn
                    .reply(|out| session.logged_in(Arc::new(mailbox), out));
                self.conn.set_user(Some(&account.user), &self.session);
                self.summary.user = Some(account.user);
                Ok(())
            }
            Err(StoreError::TimedOut) => {
                warn!(target: "popgate::store", rip = %ip, user = %LogText(&account.user), "mailbox not opened within the login deadline");
                Err(LoginRefusal::LoginDeadline)
            }
            Err(error) => {
                warn!(target: "popgate::store", rip = %ip, user = %LogText(&account.user), error = %LogText(&error), "mailbox not opened");
                Err(match &error {
                    StoreError::Locked => LoginRefusal::MailboxLocked,
                    error if error.is_temporary() => LoginRefusal::MailboxUnavailable,
                    _ => LoginRefusal::MailboxBroken,
                })
            }
        }
    }

    async fn list(&mut self, listing: Listing) -> std::io::Result<()> {
        let mut from = 0;
        while let Some(next) =
            self.session
                .write_listing(listing, from, self.conn.output(), WRITE_CHUNK)
        {
            self.conn.flush_partial().await?;
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
                self.cold = true;
                let mailbox = Arc::clone(&mailbox);
                store_call(self.identity, move || {
                    let opened = mailbox.open_message(index)?;
                    let start = read::read_start(&opened.file, opened.len, MESSAGE_PIECE)?;
                    Ok((opened.file, start))
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
                self.conn.reply(|out| {
                    reply::err(
                        out,
                        None,
                        format_args!("Message {number} was removed by another program"),
                    )
                });
                return Ok(());
            }
            Err(error) => {
                warn!(target: "popgate::store", rip = %self.conn.peer().ip(), error = %LogText(&error), "message not opened");
                self.conn.reply(|out| {
                    reply::err(
                        out,
                        Some(Code::SysTemp),
                        format_args!("Message {number} cannot be read now"),
                    )
                });
                return Ok(());
            }
        };
        if body_lines.is_none() {
            self.load_next(&mailbox, index + 1);
        }
        let mut encoder = match body_lines {
            None => {
                self.conn
                    .reply(|out| reply::ok(out, format_args!("{size} octets")));
                wire::Encoder::full()
            }
            Some(lines) => {
                self.conn
                    .reply(|out| reply::ok(out, format_args!("Top of message {number} follows")));
                wire::Encoder::top(lines)
            }
        };
        let mut sent = chunk.len() as u64;
        encoder.encode(&chunk, self.conn.output());
        if !whole && !encoder.is_done() {
            self.stream_rest(file, &mut chunk, &mut encoder, &mut sent)
                .await?;
        }
        encoder.finish(self.conn.output());
        if body_lines.is_none() {
            self.summary.retrieved += 1;
            self.summary.retrieved_octets += sent;
            if let Some(metrics) = self.conn.metrics() {
                metrics.retrieved(sent);
            }
        }
        Ok(())
    }

    /// Streams the rest of a message larger than the first chunk, one chunk
    /// at a time, so memory stays bounded whatever the message's size. A
    /// chunk in the page cache is read right here, into the one buffer
    /// (no trip to a blocking thread, no second copy); only one that would
    /// wait for the disk is read on a blocking thread.
    async fn stream_rest(
        &mut self,
        mut file: std::fs::File,
        chunk: &mut Vec<u8>,
        encoder: &mut wire::Encoder,
        sent: &mut u64,
    ) -> std::io::Result<()> {
        if self.conn.output().len() >= MESSAGE_PIECE {
            self.conn.flush_partial().await?;
        }
        chunk.resize(MESSAGE_PIECE, 0);
        while !encoder.is_done() {
            let n = match read::read_nowait(&file, chunk)? {
                Some(n) => n,
                None => {
                    self.cold = true;
                    let n;
                    (file, n) = read_blocking(file, chunk).await?;
                    n
                }
            };
            if n == 0 {
                break;
            }
            *sent += n as u64;
            encoder.encode(&chunk[..n], self.conn.output());
            if self.conn.output().len() >= MESSAGE_PIECE {
                self.conn.flush_partial().await?;
            }
        }
        Ok(())
    }

    /// In a session that has met the disk, starts loading message `index`
    /// into memory on a blocking thread, unless a load is still being
    /// started (one at a time per session). Nothing waits for it: a load
    /// that fails, or comes too late, only leaves RETR to read the message
    /// from the disk as before.
    fn load_next(&mut self, mailbox: &Mailbox, index: usize) {
        if !self.cold
            || self
                .loading
                .as_ref()
                .is_some_and(|load| !load.is_finished())
        {
            return;
        }
        let Some(prefetch) = mailbox.prefetch(index) else {
            return;
        };
        let identity = self.identity;
        self.loading = Some(tokio::task::spawn_blocking(move || {
            // Only a hint: an error here is met again, and answered, by
            // the RETR of that message.
            let _ = identity::run_as(identity, || prefetch.load());
        }));
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
                self.conn.reply(|out| {
                    reply::ok(out, format_args!("Logging out, {count} messages deleted"))
                });
            }
            Some(report) => {
                let failed: Vec<String> = report
                    .failed
                    .iter()
                    .map(|(index, _)| (index + 1).to_string())
                    .collect();
                for (index, error) in &report.failed {
                    warn!(target: "popgate::store", rip = %self.conn.peer().ip(), number = index + 1, error = %LogText(error), "deletion not applied");
                }
                self.summary.deleted = count - failed.len();
                let failed = failed.join(" ");
                self.conn.reply(|out| {
                    reply::err(
                        out,
                        Some(Code::SysTemp),
                        format_args!("Some deleted messages were not removed: {failed}"),
                    )
                });
            }
            None => self.conn.reply(|out| {
                reply::err(
                    out,
                    Some(Code::SysTemp),
                    format_args!("Deleted messages were not removed"),
                )
            }),
        }
        if let Some(metrics) = self.conn.metrics() {
            metrics.deleted(self.summary.deleted);
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
    let Ok(Ok(Some(opened))) = opened else {
        return None;
    };
    match read::read_start_nowait(&opened.file, opened.len, MESSAGE_PIECE) {
        Ok(Some(start)) => Some((opened.file, start)),
        _ => None,
    }
}

/// Reads the next chunk of `file` into `chunk` on a blocking thread (the
/// file is open: no identity needed); gives the file back with the count.
async fn read_blocking(
    file: std::fs::File,
    chunk: &mut Vec<u8>,
) -> std::io::Result<(std::fs::File, usize)> {
    let mut buffer = std::mem::take(chunk);
    let (file, buffer, read) = tokio::task::spawn_blocking(move || {
        let read = loop {
            match (&file).read(&mut buffer) {
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                read => break read,
            }
        };
        (file, buffer, read)
    })
    .await
    .map_err(std::io::Error::other)?;
    *chunk = buffer;
    Ok((file, read?))
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
