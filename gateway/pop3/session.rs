//! The POP3 session as a state machine. Pure: lines in, response bytes and
//! [`Next`] steps out; no sockets, no clocks, no files.
//!
//! ```text
//!   AUTHORIZATION --USER/PASS or AUTH--> (driver checks) --> TRANSACTION --QUIT--> UPDATE
//!        |  ^                                                    |
//!        |  +---- STLS (driver upgrades, state starts over) ----  |
//!        +--QUIT--> closed, nothing applied                       +-- drop: nothing applied
//! ```
//!
//! Whatever needs I/O comes back as a [`Next`] for the connection driver:
//! checking a password, starting TLS, streaming a message, listing, or
//! applying deletions. The driver reports the outcome through
//! [`Session::logged_in`], [`Session::login_refused`] and
//! [`Session::tls_started`]; a refused login is answered here, whoever
//! refused it (the login gate, a limit, the store, the login deadline). Everything else — state rules, message numbers,
//! deletion marks, STAT/LIST/UIDL answers — is decided here, so it can be
//! tested without a network. A SASL exchange is popgate-auth's
//! [`SaslExchange`], the same one submission runs: the session frames its
//! challenges (`+ `) and words how it ended.

use popgate_auth::sasl::{self, Mechanism, Progress, SaslError, SaslExchange};
use popgate_auth::{validate_login_name, Credentials};

use super::capability::Capabilities;
use super::command::{self, Command, MessageNumber};
use super::maildrop::Maildrop;
use super::reply::{self, Code};
use crate::login::LoginRefusal;
use crate::protocol_log::{Reading, Tapped};

/// Invalid commands tolerated before login, and after, before the connection
/// is closed (a port scanner or a confused client gets disconnected).
const MAX_INVALID_BEFORE_LOGIN: u32 = 10;
const MAX_INVALID_AFTER_LOGIN: u32 = 50;

/// Fixed properties of a connection, set when it is accepted.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// STLS may be offered: a plain listener with TLS configured.
    pub stls_available: bool,
    /// The connection is already TLS (port 995).
    pub tls: bool,
    /// Credentials are accepted without TLS (`login = "plaintext"`).
    pub plaintext_login: bool,
    /// `max_command_size`, CRLF included.
    pub max_command_size: usize,
}

/// Which listing to stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `LIST`: message number and size.
    Sizes,
    /// `UIDL`: message number and unique id.
    Uidls,
}

/// What the driver must do after a line has been handled. Any response text
/// has already been appended to the output buffer.
#[derive(Debug)]
pub enum Next<M> {
    /// Nothing more: read the next line.
    Continue,
    /// Check these credentials, then call [`Session::logged_in`] or
    /// [`Session::login_refused`].
    Authenticate(Credentials),
    /// Flush, discard any input already buffered, start TLS, then call
    /// [`Session::tls_started`].
    StartTls,
    /// Open message `index` and send it: `+OK`, its bytes, the terminator.
    /// `body_lines` is `Some(n)` for `TOP`.
    Retrieve {
        /// 0-based index into the snapshot.
        index: usize,
        /// The number the client used, for error messages.
        number: MessageNumber,
        /// The size LIST reports for it.
        size: u64,
        /// `Some(n)` for TOP: headers, blank line, n body lines.
        body_lines: Option<u64>,
    },
    /// The `+OK` line is written: stream the listing with
    /// [`Session::write_listing`] until it reports the end.
    List(Listing),
    /// QUIT in TRANSACTION: apply the leave-on-server policy to `deleted`,
    /// answer, close.
    Update {
        /// The mailbox, handed back to the driver.
        mailbox: M,
        /// 0-based indexes of the messages marked deleted.
        deleted: Vec<usize>,
    },
    /// The response is written; close the connection.
    Close,
}

#[derive(Debug)]
enum State<M> {
    Authorization {
        user: Option<String>,
        /// A SASL exchange waiting for the client's next line.
        sasl: Option<SaslExchange>,
    },
    Transaction(Transaction<M>),
    Closed,
}

#[derive(Debug)]
struct Transaction<M> {
    mailbox: M,
    deleted: Vec<bool>,
    deleted_count: usize,
    deleted_octets: u64,
    total_octets: u64,
}

impl<M: Maildrop> Transaction<M> {
    fn new(mailbox: M) -> Self {
        let count = mailbox.count();
        let total_octets = (0..count).filter_map(|index| mailbox.size(index)).sum();
        let deleted = vec![false; count];
        Transaction {
            mailbox,
            deleted,
            deleted_count: 0,
            deleted_octets: 0,
            total_octets,
        }
    }

    fn visible_count(&self) -> usize {
        self.deleted.len() - self.deleted_count
    }

    fn visible_octets(&self) -> u64 {
        self.total_octets - self.deleted_octets
    }

    /// Looks up a message number, writing the `-ERR` for a bad or deleted one.
    /// Returns its index and size.
    fn message(&self, number: MessageNumber, out: &mut Vec<u8>) -> Option<(usize, u64)> {
        let found = (number as usize)
            .checked_sub(1)
            .and_then(|index| Some((index, self.mailbox.size(index)?)));
        match found {
            None => {
                reply::err(out, None, format_args!("There's no message {number}."));
                None
            }
            Some((index, _)) if self.deleted[index] => {
                reply::err(out, None, format_args!("Message {number} is deleted."));
                None
            }
            found => found,
        }
    }
}

/// One POP3 conversation's protocol state.
#[derive(Debug)]
pub struct Session<M> {
    state: State<M>,
    options: SessionOptions,
    invalid_commands: u32,
}

impl<M: Maildrop> Session<M> {
    /// A new session in the AUTHORIZATION state.
    pub fn new(options: SessionOptions) -> Self {
        Session {
            state: State::Authorization {
                user: None,
                sasl: None,
            },
            options,
            invalid_commands: 0,
        }
    }

    /// True once the user has logged in.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    /// The mailbox of a logged-in session.
    pub fn mailbox(&self) -> Option<&M> {
        match &self.state {
            State::Transaction(t) => Some(&t.mailbox),
            _ => None,
        }
    }

    /// Messages marked deleted and their octets, for the session summary.
    pub fn deleted_summary(&self) -> (usize, u64) {
        match &self.state {
            State::Transaction(t) => (t.deleted_count, t.deleted_octets),
            _ => (0, 0),
        }
    }

    /// True while a SASL exchange waits for the client's next line, which is
    /// then a response, not a command (and may be longer than a command).
    pub fn in_sasl_exchange(&self) -> bool {
        matches!(self.state, State::Authorization { sasl: Some(_), .. })
    }

    fn credentials_allowed(&self) -> bool {
        self.options.tls || self.options.plaintext_login
    }

    fn capabilities(&self) -> Capabilities {
        let before_login = matches!(self.state, State::Authorization { .. });
        Capabilities {
            stls: before_login && self.options.stls_available && !self.options.tls,
            credentials: self.credentials_allowed(),
        }
    }

    /// Handles one input line (without its line ending).
    pub fn handle_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Next<M> {
        if self.in_sasl_exchange() {
            return self.continue_sasl(line, out);
        }
        match command::parse(line, self.options.max_command_size) {
            Ok(command) => self.handle_command(command, out),
            Err(error) => self.invalid(out, format_args!("{error}")),
        }
    }

    fn invalid(&mut self, out: &mut Vec<u8>, text: std::fmt::Arguments<'_>) -> Next<M> {
        self.invalid_commands += 1;
        let limit = if self.is_authenticated() {
            MAX_INVALID_AFTER_LOGIN
        } else {
            MAX_INVALID_BEFORE_LOGIN
        };
        if self.invalid_commands >= limit {
            reply::err(
                out,
                None,
                format_args!("Too many invalid commands, closing."),
            );
            self.state = State::Closed;
            return Next::Close;
        }
        reply::err(out, None, text);
        Next::Continue
    }

    fn handle_command(&mut self, command: Command, out: &mut Vec<u8>) -> Next<M> {
        match command {
            Command::Capa => {
                self.capabilities().write(out);
                Next::Continue
            }
            Command::Noop if self.is_authenticated() => {
                reply::ok(out, format_args!(""));
                Next::Continue
            }
            Command::Utf8 => {
                reply::ok(out, format_args!("UTF8 enabled"));
                Next::Continue
            }
            Command::Quit => self.quit(out),
            command if self.is_authenticated() => self.transaction(command, out),
            command => self.authorization(command, out),
        }
    }

    fn quit(&mut self, out: &mut Vec<u8>) -> Next<M> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Transaction(t) => {
                let deleted = (0..t.deleted.len()).filter(|&i| t.deleted[i]).collect();
                Next::Update {
                    mailbox: t.mailbox,
                    deleted,
                }
            }
            _ => {
                reply::ok(out, format_args!("Logging out"));
                Next::Close
            }
        }
    }

    fn authorization(&mut self, command: Command, out: &mut Vec<u8>) -> Next<M> {
        let credentials_allowed = self.credentials_allowed();
        let State::Authorization { user, .. } = &mut self.state else {
            return self.invalid(out, format_args!("Not allowed now"));
        };
        match command {
            Command::Stls if self.options.tls => {
                reply::err(out, None, format_args!("Already using TLS"));
                Next::Continue
            }
            Command::Stls if !self.options.stls_available => {
                reply::err(out, None, format_args!("TLS is not available"));
                Next::Continue
            }
            Command::Stls => {
                reply::ok(out, format_args!("Begin TLS negotiation"));
                Next::StartTls
            }
            Command::User(_)
            | Command::Pass(_)
            | Command::Auth {
                mechanism: Some(_), ..
            } if !credentials_allowed => {
                reply::err(
                    out,
                    Some(Code::Auth),
                    format_args!("Plaintext authentication disallowed on non-secure connections; use STLS or port 995"),
                );
                Next::Continue
            }
            Command::User(name) => {
                if validate_login_name(&name).is_err() {
                    *user = None;
                    reply::err(out, Some(Code::Auth), format_args!("Invalid user name"));
                } else {
                    *user = Some(name);
                    reply::ok(out, format_args!("Send your password"));
                }
                Next::Continue
            }
            Command::Pass(password) => match user.take() {
                Some(name) => Next::Authenticate(Credentials::new(name, password)),
                None => {
                    reply::err(
                        out,
                        None,
                        format_args!("No user name given; send USER first"),
                    );
                    Next::Continue
                }
            },
            Command::Auth {
                mechanism: None, ..
            } => {
                reply::ok(out, format_args!("Supported mechanisms follow"));
                if credentials_allowed {
                    for mechanism in sasl::MECHANISMS {
                        reply::body_line(out, format_args!("{mechanism}"));
                    }
                }
                reply::end_multiline(out);
                Next::Continue
            }
            Command::Auth {
                mechanism: Some(mechanism),
                initial_response,
            } => {
                *user = None;
                match Mechanism::from_name(&mechanism) {
                    Some(mechanism) => {
                        let initial = initial_response.as_deref().map(str::as_bytes);
                        self.sasl(SaslExchange::start(mechanism, initial), out)
                    }
                    None => {
                        reply::err(
                            out,
                            None,
                            format_args!("Unsupported authentication mechanism"),
                        );
                        Next::Continue
                    }
                }
            }
            _ => self.invalid(out, format_args!("Not allowed before login")),
        }
    }

    /// The client's answer to a SASL challenge.
    fn continue_sasl(&mut self, line: &[u8], out: &mut Vec<u8>) -> Next<M> {
        let State::Authorization { sasl, .. } = &mut self.state else {
            return Next::Continue;
        };
        match sasl.take() {
            Some(exchange) => self.sasl(exchange.respond(line), out),
            None => Next::Continue,
        }
    }

    /// Frames the exchange's next challenge (`+ `), or answers how it ended.
    fn sasl(&mut self, progress: Progress, out: &mut Vec<u8>) -> Next<M> {
        match progress {
            Progress::Challenge(exchange) => {
                reply::continuation(out, exchange.challenge());
                if let State::Authorization { sasl, .. } = &mut self.state {
                    *sasl = Some(exchange);
                }
                Next::Continue
            }
            Progress::Done(credentials) => Next::Authenticate(credentials),
            Progress::Failed(error) => {
                sasl_failed(error, out);
                Next::Continue
            }
        }
    }

    /// The driver accepted the credentials and opened the mailbox.
    pub fn logged_in(&mut self, mailbox: M, out: &mut Vec<u8>) {
        let transaction = Transaction::new(mailbox);
        reply::ok(
            out,
            format_args!(
                "Logged in, {} messages ({} octets)",
                transaction.visible_count(),
                transaction.visible_octets()
            ),
        );
        self.invalid_commands = 0;
        self.state = State::Transaction(transaction);
    }

    /// The login was refused: answers why (with the RFC 2449/3206 code a
    /// client acts on), and AUTHORIZATION starts over.
    pub fn login_refused(&mut self, refusal: LoginRefusal, out: &mut Vec<u8>) {
        let (code, text) = match refusal {
            LoginRefusal::Credentials { .. } => (Code::Auth, "Authentication failed"),
            LoginRefusal::Disabled => (Code::SysPerm, "POP3 access is disabled for this mailbox"),
            LoginRefusal::Unavailable => {
                (Code::SysTemp, "Authentication is temporarily unavailable")
            }
            LoginRefusal::TooManySessions => (Code::InUse, "Too many sessions for this user"),
            LoginRefusal::MailboxLocked => {
                (Code::InUse, "Mailbox is locked by another POP3 session")
            }
            LoginRefusal::MailboxUnavailable => {
                (Code::SysTemp, "Mailbox is temporarily unavailable")
            }
            LoginRefusal::MailboxBroken => (Code::SysPerm, "Mailbox cannot be opened"),
            LoginRefusal::LoginDeadline => (
                Code::SysTemp,
                "Login not completed in time, try again later",
            ),
        };
        reply::err(out, Some(code), format_args!("{text}"));
        self.start_over();
    }

    /// TLS is up after STLS: all earlier state is forgotten (RFC 2595 §4).
    pub fn tls_started(&mut self) {
        self.options.tls = true;
        self.start_over();
    }

    /// Back to AUTHORIZATION, with no user name and no SASL exchange.
    fn start_over(&mut self) {
        self.state = State::Authorization {
            user: None,
            sasl: None,
        };
    }

    fn transaction(&mut self, command: Command, out: &mut Vec<u8>) -> Next<M> {
        let State::Transaction(t) = &mut self.state else {
            return Next::Continue;
        };
        match command {
            Command::Stat => {
                reply::ok(
                    out,
                    format_args!("{} {}", t.visible_count(), t.visible_octets()),
                );
                Next::Continue
            }
            Command::List(None) => {
                reply::ok(
                    out,
                    format_args!(
                        "{} messages ({} octets)",
                        t.visible_count(),
                        t.visible_octets()
                    ),
                );
                Next::List(Listing::Sizes)
            }
            Command::Uidl(None) => {
                reply::ok(out, format_args!("Unique-ID listing follows"));
                Next::List(Listing::Uidls)
            }
            Command::List(Some(number)) => {
                if let Some((_, size)) = t.message(number, out) {
                    reply::ok(out, format_args!("{number} {size}"));
                }
                Next::Continue
            }
            Command::Uidl(Some(number)) => {
                if let Some((index, _)) = t.message(number, out) {
                    let uidl = t.mailbox.uidl(index).unwrap_or_default();
                    let uidl = String::from_utf8_lossy(uidl);
                    reply::ok(out, format_args!("{number} {uidl}"));
                }
                Next::Continue
            }
            Command::Retr(number) | Command::Top(number, _) => {
                let body_lines = match command {
                    Command::Top(_, lines) => Some(lines),
                    _ => None,
                };
                match t.message(number, out) {
                    Some((index, size)) => Next::Retrieve {
                        index,
                        number,
                        size,
                        body_lines,
                    },
                    None => Next::Continue,
                }
            }
            Command::Dele(number) => {
                if let Some((index, size)) = t.message(number, out) {
                    t.deleted[index] = true;
                    t.deleted_count += 1;
                    t.deleted_octets += size;
                    reply::ok(out, format_args!("Message {number} deleted"));
                }
                Next::Continue
            }
            Command::Rset => {
                t.deleted.iter_mut().for_each(|d| *d = false);
                t.deleted_count = 0;
                t.deleted_octets = 0;
                reply::ok(
                    out,
                    format_args!(
                        "{} messages ({} octets)",
                        t.visible_count(),
                        t.visible_octets()
                    ),
                );
                Next::Continue
            }
            _ => self.invalid(out, format_args!("Not allowed after login")),
        }
    }

    /// Writes listing lines from message index `from` until about `budget`
    /// octets are in `out`; returns the index to continue from, or `None`
    /// once the terminating dot is written. Deleted messages are left out.
    pub fn write_listing(
        &self,
        listing: Listing,
        from: usize,
        out: &mut Vec<u8>,
        budget: usize,
    ) -> Option<usize> {
        let State::Transaction(t) = &self.state else {
            reply::end_multiline(out);
            return None;
        };
        let mailbox = &t.mailbox;
        let mut index = from;
        while index < t.deleted.len() {
            if out.len() >= budget {
                return Some(index);
            }
            if !t.deleted[index] {
                let number = index + 1;
                match listing {
                    Listing::Sizes => {
                        reply::size_line(out, number, mailbox.size(index).unwrap_or_default())
                    }
                    Listing::Uidls => {
                        reply::uidl_line(out, number, mailbox.uidl(index).unwrap_or_default())
                    }
                }
            }
            index += 1;
        }
        reply::end_multiline(out);
        None
    }
}

impl<M: Maildrop> Tapped for Session<M> {
    fn reading(&self) -> Reading {
        match self.in_sasl_exchange() {
            true => Reading::SecretResponse,
            false => Reading::Command,
        }
    }

    /// The states of RFC 1939: `authorization`, `transaction`, and
    /// `update` once QUIT was given.
    fn state(&self) -> &'static str {
        match self.state {
            State::Authorization { .. } => "authorization",
            State::Transaction(_) => "transaction",
            State::Closed => "update",
        }
    }
}

/// The answer to a SASL exchange that ended without credentials: a name
/// that breaks the rule as at USER, acting as another user as a failed login
/// (`[AUTH]`, RFC 3206), anything undecodable as a plain `-ERR`.
fn sasl_failed(error: SaslError, out: &mut Vec<u8>) {
    match error {
        SaslError::Cancelled => reply::err(out, None, format_args!("Authentication cancelled")),
        SaslError::InvalidLoginName => {
            reply::err(out, Some(Code::Auth), format_args!("Invalid user name"))
        }
        error if error.is_refusal() => reply::err(out, Some(Code::Auth), format_args!("{error}")),
        error => reply::err(out, None, format_args!("{error}")),
    }
}

#[cfg(test)]
mod tests;
