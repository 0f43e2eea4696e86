//! The submission session as a pure state machine (no sockets, no clock).
//!
//! The connection driver feeds it bytes with [`Session::advance`]: a line
//! at a time while it reads commands or SASL responses, everything at once
//! while it reads message text ([`Session::reading`]), no line longer than
//! [`MAX_LINE`]. Whatever the split, the session collects each command line
//! itself (up to [`MAX_COMMAND_LINE`]) and parses the whole line with
//! smtp-proto's `Request::parse`, reads message text with a [`DataReader`]
//! (which ends DATA only at `<CRLF>.<CRLF>` and removes dot-stuffing),
//! appends replies to an output buffer and stops at each [`Step`] that
//! needs the outside world:
//!
//! | step | the driver… | then calls |
//! | --- | --- | --- |
//! | [`Step::NeedMore`] | hands over what is left of the input, else flushes replies and reads more | `advance` |
//! | [`Step::StartTls`] | discards unread bytes, runs the handshake | [`Session::tls_started`] |
//! | [`Step::Authenticate`] | checks the credentials | [`Session::authenticated`] or [`Session::login_refused`] |
//! | [`Step::CheckRecipient`] | asks the relay whether it takes the recipient | [`Session::recipient_checked`] |
//! | [`Step::Relay`] | hands the message to the relay | [`Session::relayed`] |
//! | [`Step::Close`] | flushes and closes | — |
//!
//! A call stops where message text ends (a message, relayed or refused at
//! its end, or a skipped BDAT chunk), leaving what follows unread: those
//! are commands again, which the driver hands over a line at a time, so
//! the protocol log's tap sees each, and answers before it reads more.
//!
//! Replies to pipelined commands pile up in the output until the input runs
//! dry, so a pipelining client gets them in one write (RFC 2920). Every
//! command line gets exactly one reply: smtp-proto's streaming
//! `RequestReceiver` is not used because, on a line such as `RCPT TO` with
//! no colon, its parser reads on into the next line and swallows that
//! command unanswered; given one line alone, it can only report that line
//! as incomplete, which is answered as a syntax error.
//!
//! The arguments of MAIL and RCPT are read from the command line itself by
//! [`envelope`] (smtp-proto's path parser drops quotes and refuses address
//! literals), so addresses reach the relay exactly as the client wrote
//! them. SMTPUTF8 is not offered; `envelope` says why.
//!
//! HELO is answered `250 <hostname>`, without an enhanced status code
//! (RFC 2034 §3 puts none on HELO/EHLO). After STARTTLS the session
//! forgets everything the client said in the clear, its login included
//! (RFC 3207 §4.2): it must EHLO and AUTH again.
//!
//! A command line is at most 4096 octets, CRLF included (smtp-proto's
//! `MAX_LINE_LENGTH`), however the client's bytes were split on the way; a
//! SASL response line less than [`MAX_LINE`]. A longer line closes the
//! session.
//!
//! The protocol log is the connection core's business: the session only
//! says what it is reading ([`Tapped`]).

use std::slice::Iter;

use popgate_auth::sasl::{self, Mechanism, Progress, SaslError, SaslExchange};
use popgate_auth::Credentials;
use smtp_proto::{Error as ParseError, Request};

use super::address::{AddressError, Mailbox};
use super::data::DataReader;
use super::envelope::{self, EnvelopeError, MailArguments, Verb};
use super::message::{self, OriginatorError};
use super::relay::outcome::{split_status, RecipientCheck, RelayOutcome};
use super::reply::{bare, multiline, reply};
use crate::login::LoginRefusal;
use crate::protocol_log::{Reading, Tapped};

/// The longest line the session reads, a SASL response's (RFC 4954 §4):
/// a line must be shorter, its CRLF included. A driver that hands lines
/// over one at a time cuts none shorter.
pub const MAX_LINE: usize = 12 * 1024;
/// Bad commands tolerated before the session is closed.
const MAX_ERRORS: u32 = 10;
/// The longest command line, LF included: smtp-proto's bound, well over
/// the 512 octets RFC 5321 asks servers to accept. A longer line closes
/// the session.
pub const MAX_COMMAND_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;
/// The keywords smtp-proto parses, for the protocol log (which shows any
/// other line only by its length).
pub const KEYWORDS: &[&str] = &[
    "EHLO", "HELO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "AUTH", "NOOP", "VRFY", "EXPN", "HELP",
    "ETRN", "ATRN", "BURL", "STARTTLS", "RSET", "QUIT",
];

/// What a session may offer and accept.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// This server's name, in the EHLO answer.
    pub hostname: String,
    /// The connection is TLS already (port 465).
    pub tls: bool,
    /// STARTTLS can be offered (a certificate is configured).
    pub starttls_available: bool,
    /// Credentials are accepted without TLS.
    pub plaintext_login: bool,
    /// The largest message, in octets.
    pub max_message_size: usize,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Ask the driver about each recipient at RCPT
    /// ([`Step::CheckRecipient`]) instead of taking every address: local
    /// delivery refuses unknown users there, not after DATA.
    pub check_recipients: bool,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Step {
    /// The session wants more input: whatever is left of the bytes given
    /// (after a message refused at its end, or a BDAT chunk skipped), else
    /// more from the client once the replies are sent.
    NeedMore,
    /// Upgrade to TLS; bytes already received after STARTTLS are discarded.
    StartTls,
    /// Check these credentials.
    Authenticate(Credentials),
    /// Find out whether the relay takes mail for this recipient.
    CheckRecipient(Mailbox),
    /// Hand this message to the relay.
    Relay(Transaction),
    /// Close the connection once the replies are sent.
    Close,
}

/// One message, ready for the relay.
#[derive(Debug)]
pub struct Transaction {
    /// The envelope sender, as the client wrote it; `None` for the null
    /// sender `<>`.
    pub from: Option<Mailbox>,
    /// The envelope recipients, as the client wrote them.
    pub to: Vec<Mailbox>,
    /// The message as the client sent it, dot-stuffing removed, CRLF lines.
    pub data: Vec<u8>,
}

/// Who the client may send as, once logged in.
#[derive(Debug, Clone)]
pub enum Senders {
    /// Anyone (`sender_policy = "any"`).
    Any,
    /// Only these addresses, held in their [`Mailbox::canonical`] form and
    /// compared without case (build it with [`Senders::only`]).
    Only(Vec<String>),
}

impl Senders {
    /// Only `addresses`; each that is an RFC 5321 mailbox is held in its
    /// canonical form, so `"alice"@Example.com` matches `alice@example.com`.
    pub fn only(addresses: impl IntoIterator<Item = String>) -> Senders {
        Senders::Only(
            addresses
                .into_iter()
                .map(|a| Mailbox::parse(&a).map(|m| m.canonical()).unwrap_or(a))
                .collect(),
        )
    }

    /// True when `address` is one the user may send as.
    fn allows(&self, address: &Mailbox) -> bool {
        match self {
            Senders::Any => true,
            Senders::Only(list) => {
                let canonical = address.canonical();
                list.iter().any(|a| a.eq_ignore_ascii_case(&canonical))
            }
        }
    }

    /// [`Senders::allows`] for an address from a header field, which must
    /// be an RFC 5321 mailbox to be anyone's.
    fn allows_text(&self, address: &str) -> bool {
        match self {
            Senders::Any => true,
            Senders::Only(_) => Mailbox::parse(address).is_ok_and(|m| self.allows(&m)),
        }
    }
}

enum Input {
    Command,
    /// A SASL exchange waits for the client's next line.
    Sasl(SaslExchange),
    Data(DataReader),
    /// The chunk after a BDAT command (CHUNKING is not offered): message
    /// text, skipped, never read as commands.
    Discard {
        left: usize,
    },
}

/// One submission session, from greeting to QUIT.
pub struct Session {
    options: SessionOptions,
    tls: bool,
    input: Input,
    sasl_line: Vec<u8>,
    data: Vec<u8>,
    helo: Option<String>,
    user: Option<(String, Senders)>,
    from: Option<Option<Mailbox>>,
    to: Vec<Mailbox>,
    errors: u32,
    /// The command line being read, for MAIL and RCPT.
    line: Vec<u8>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tls", &self.tls)
            .field("helo", &self.helo)
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session; the driver sends [`Session::greeting`] first.
    pub fn new(options: SessionOptions) -> Session {
        Session {
            tls: options.tls,
            options,
            input: Input::Command,
            sasl_line: Vec::new(),
            data: Vec::new(),
            helo: None,
            user: None,
            from: None,
            to: Vec::new(),
            errors: 0,
            line: Vec::new(),
        }
    }

    /// Appends the 220 greeting.
    pub fn greeting(&self, out: &mut Vec<u8>) {
        bare(
            out,
            220,
            &format!("{} ESMTP popgate ready", self.options.hostname),
        );
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|(u, _)| u.as_str())
    }

    /// The name the client gave in EHLO/HELO.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// True while a SASL exchange is under way (its lines are secrets).
    pub fn in_sasl_exchange(&self) -> bool {
        matches!(self.input, Input::Sasl(_))
    }

    /// Consumes bytes from `bytes` until a step needs the driver.
    pub fn advance(&mut self, bytes: &mut Iter<'_, u8>, out: &mut Vec<u8>) -> Step {
        loop {
            let step = match &mut self.input {
                Input::Command => {
                    let rest = bytes.as_slice();
                    let newline = rest.iter().position(|&b| b == b'\n');
                    let take = newline.map_or(rest.len(), |at| at + 1);
                    if self.line.len() + take > MAX_COMMAND_LINE {
                        self.line.clear();
                        self.parse_error(ParseError::ResponseTooLong, out)
                    } else {
                        self.line.extend_from_slice(&rest[..take]);
                        *bytes = rest[take..].iter();
                        if newline.is_none() {
                            return Step::NeedMore;
                        }
                        let line = std::mem::take(&mut self.line);
                        let parsed = Request::parse(&mut line.iter()).map(Request::into_owned);
                        match (parsed, envelope::verb(&line)) {
                            (_, Some(Verb::Mail)) => self.mail(envelope::mail(&line), out),
                            (_, Some(Verb::Rcpt)) => self.rcpt(envelope::rcpt(&line), out),
                            (Ok(request), None) => self.command(request, out),
                            (Err(error), None) => self.parse_error(error, out),
                        }
                    }
                }
                Input::Sasl(_) => {
                    let rest = bytes.as_slice();
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(end) if self.sasl_line.len() + end < MAX_LINE => {
                            self.sasl_line.extend_from_slice(&rest[..end]);
                            *bytes = rest[end + 1..].iter();
                            self.sasl_response(out)
                        }
                        None if self.sasl_line.len() + rest.len() < MAX_LINE => {
                            self.sasl_line.extend_from_slice(rest);
                            *bytes = [].iter();
                            return Step::NeedMore;
                        }
                        _ => {
                            reply(out, 500, "5.5.6", "Authentication line too long, closing");
                            Some(Step::Close)
                        }
                    }
                }
                Input::Data(reader) => {
                    if !reader.read(bytes, &mut self.data) {
                        return Step::NeedMore;
                    }
                    let overflow = reader.is_over();
                    self.input = Input::Command;
                    Some(self.data_end(overflow, out))
                }
                Input::Discard { left } => {
                    let rest = bytes.as_slice();
                    let skipped = rest.len().min(*left);
                    *bytes = rest[skipped..].iter();
                    *left -= skipped;
                    if *left == 0 {
                        self.input = Input::Command;
                    }
                    // Message text ends here either way: what follows is
                    // handed over again, as commands.
                    return Step::NeedMore;
                }
            };
            if let Some(step) = step {
                return step;
            }
        }
    }

    fn parse_error(&mut self, error: ParseError, out: &mut Vec<u8>) -> Option<Step> {
        let (code, status, text) = match error {
            ParseError::ResponseTooLong => {
                reply(out, 500, "5.5.6", "Command line too long, closing");
                return Some(Step::Close);
            }
            ParseError::UnknownCommand => (500, "5.5.2", "Command not recognized".to_string()),
            ParseError::InvalidSenderAddress => (501, "5.1.7", "Invalid sender address".into()),
            ParseError::InvalidRecipientAddress => {
                (501, "5.1.3", "Invalid recipient address".into())
            }
            ParseError::SyntaxError { syntax } => (501, "5.5.4", format!("Syntax: {syntax}")),
            ParseError::InvalidParameter { param } => {
                (501, "5.5.4", format!("Invalid parameter {param}"))
            }
            ParseError::UnsupportedParameter { .. } => {
                (555, "5.5.4", "Unsupported parameter".into())
            }
            // The parser wanted more than the whole line it was given.
            ParseError::NeedsMoreData { .. } => (501, "5.5.4", "Syntax error".into()),
            ParseError::InvalidResponse { .. } => (500, "5.5.2", "Command not recognized".into()),
        };
        self.error(out, code, status, &text)
    }

    /// Answers an error and closes the session after too many of them.
    fn error(&mut self, out: &mut Vec<u8>, code: u16, status: &str, text: &str) -> Option<Step> {
        self.errors += 1;
        if self.errors > MAX_ERRORS {
            reply(out, 421, "4.7.0", "Too many errors, closing");
            return Some(Step::Close);
        }
        reply(out, code, status, text);
        None
    }

    fn command(&mut self, request: Request<String>, out: &mut Vec<u8>) -> Option<Step> {
        match request {
            Request::Ehlo { host } => {
                self.helo = Some(host);
                self.reset();
                self.ehlo(out);
            }
            Request::Helo { host } => {
                self.helo = Some(host);
                self.reset();
                bare(out, 250, &self.options.hostname);
            }
            Request::StartTls => {
                if self.tls {
                    return self.error(out, 503, "5.5.1", "TLS is already active");
                }
                if !self.options.starttls_available {
                    return self.error(out, 502, "5.5.1", "STARTTLS is not available");
                }
                reply(out, 220, "2.0.0", "Ready to start TLS");
                return Some(Step::StartTls);
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response, out),
            // `advance` reads MAIL and RCPT from the line itself; a line
            // smtp-proto alone takes for one (it skips a CR inside the
            // keyword) is no such command.
            Request::Mail { .. } | Request::Rcpt { .. } => {
                return self.error(out, 500, "5.5.2", "Command not recognized")
            }
            Request::Data => {
                if self.from.is_none() {
                    return self.error(out, 503, "5.5.1", "MAIL first");
                }
                if self.to.is_empty() {
                    return self.error(out, 554, "5.5.1", "No valid recipients");
                }
                bare(out, 354, "Start mail input; end with <CRLF>.<CRLF>");
                self.data.clear();
                self.input = Input::Data(DataReader::new(self.options.max_message_size));
            }
            Request::Rset => {
                self.reset();
                reply(out, 250, "2.0.0", "Reset");
            }
            Request::Noop { .. } => reply(out, 250, "2.0.0", "OK"),
            Request::Quit => {
                reply(out, 221, "2.0.0", "Bye");
                return Some(Step::Close);
            }
            Request::Vrfy { .. } => reply(
                out,
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept the message",
            ),
            Request::Bdat { chunk_size, .. } => {
                // CHUNKING is not offered, but the chunk a client sends
                // anyway is message text: skip it, never run it as commands.
                self.input = Input::Discard { left: chunk_size };
                return self.error(out, 502, "5.5.1", "Command not implemented");
            }
            Request::Lhlo { .. }
            | Request::Expn { .. }
            | Request::Help { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                return self.error(out, 502, "5.5.1", "Command not implemented")
            }
        }
        None
    }

    fn may_send_credentials(&self) -> bool {
        self.tls || self.options.plaintext_login
    }

    fn ehlo(&self, out: &mut Vec<u8>) {
        let size = format!("SIZE {}", self.options.max_message_size);
        let mut lines = vec![
            self.options.hostname.as_str(),
            "PIPELINING",
            &size,
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
        ];
        if !self.tls && self.options.starttls_available {
            lines.push("STARTTLS");
        }
        let auth;
        if self.may_send_credentials() && self.user.is_none() {
            auth = format!("AUTH {}", sasl::MECHANISMS.join(" "));
            lines.push(&auth);
        }
        multiline(out, 250, &lines);
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
        self.data = Vec::new();
    }

    fn auth(&mut self, mechanism: u64, initial: String, out: &mut Vec<u8>) -> Option<Step> {
        if self.helo.is_none() {
            return self.error(out, 503, "5.5.1", "EHLO first");
        }
        if self.user.is_some() {
            return self.error(out, 503, "5.5.1", "Already authenticated");
        }
        if self.from.is_some() {
            return self.error(out, 503, "5.5.1", "Not inside a mail transaction");
        }
        if !self.may_send_credentials() {
            return self.error(
                out,
                538,
                "5.7.11",
                "Encryption required: use STARTTLS first",
            );
        }
        let mechanism = match mechanism {
            smtp_proto::AUTH_PLAIN => Mechanism::Plain,
            smtp_proto::AUTH_LOGIN => Mechanism::Login,
            _ => return self.error(out, 504, "5.5.4", "Unrecognized authentication type"),
        };
        let initial = (!initial.is_empty()).then_some(initial.as_bytes());
        self.sasl(SaslExchange::start(mechanism, initial), out)
    }

    /// The client's answer to a SASL challenge, its line complete.
    fn sasl_response(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        let line = std::mem::take(&mut self.sasl_line);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        let Input::Sasl(exchange) = std::mem::replace(&mut self.input, Input::Command) else {
            return None;
        };
        self.sasl(exchange.respond(line), out)
    }

    /// Frames the exchange's next challenge (`334`), or answers how it ended.
    fn sasl(&mut self, progress: Progress, out: &mut Vec<u8>) -> Option<Step> {
        match progress {
            Progress::Challenge(exchange) => {
                bare(out, 334, exchange.challenge());
                self.input = Input::Sasl(exchange);
                None
            }
            Progress::Done(credentials) => Some(Step::Authenticate(credentials)),
            Progress::Failed(error) => self.sasl_failed(error, out),
        }
    }

    /// A SASL exchange that ended without credentials: a cancel is `501
    /// 5.0.0`; a well-formed response the server refuses is an
    /// authentication failure (`535 5.7.8`, RFC 4954 §6); anything else a
    /// syntax error (`501 5.5.2`).
    fn sasl_failed(&mut self, error: SaslError, out: &mut Vec<u8>) -> Option<Step> {
        match error {
            SaslError::Cancelled => self.error(out, 501, "5.0.0", "Authentication cancelled"),
            SaslError::ProxyAuthorization => self.error(
                out,
                535,
                "5.7.8",
                "Authentication credentials invalid: acting as another user is not allowed",
            ),
            error if error.is_refusal() => {
                self.error(out, 535, "5.7.8", "Authentication credentials invalid")
            }
            _ => self.error(out, 501, "5.5.2", "Cannot decode the SASL response"),
        }
    }

    /// The credentials were right: `user` may now send as `senders` allow.
    pub fn authenticated(&mut self, user: String, senders: Senders, out: &mut Vec<u8>) {
        self.user = Some((user, senders));
        reply(out, 235, "2.7.0", "Authentication successful");
    }

    /// The login was refused: answers why. Wrong credentials are `535
    /// 5.7.8` (RFC 4954 §6); a user whose right password met a switch that
    /// is off (`submission = false`, `disabled_users`) is `535 5.7.1` with
    /// a text that says so, as POP3 says `[SYS/PERM]`: a permanent refusal
    /// a client shows as a failed login with the server's words, and an
    /// admin tells apart from a wrong password (`5.7.1`, not authorized,
    /// as Exchange answers with its own 5.7.139 for a mailbox without
    /// SMTP AUTH). A passing condition is `454 4.7.0`, as the mailbox
    /// refusals would be, which only POP3 meets. Unless the refusal ends
    /// the connection ([`LoginRefusal::ends_connection`]), the client may
    /// try AUTH again.
    pub fn login_refused(&mut self, refusal: LoginRefusal, out: &mut Vec<u8>) {
        let (code, status, text) = match refusal {
            LoginRefusal::Credentials { .. } => {
                (535, "5.7.8", "Authentication credentials invalid")
            }
            LoginRefusal::Disabled => (
                535,
                "5.7.1",
                "Submission access is disabled for this mailbox",
            ),
            LoginRefusal::Unavailable
            | LoginRefusal::MailboxLocked
            | LoginRefusal::MailboxUnavailable
            | LoginRefusal::MailboxBroken => {
                (454, "4.7.0", "Authentication temporarily unavailable")
            }
            LoginRefusal::TooManySessions => (
                454,
                "4.7.0",
                "Too many sessions for this user, try again later",
            ),
            LoginRefusal::LoginDeadline => (421, "4.7.0", "Login not completed in time, closing"),
        };
        reply(out, code, status, text);
    }

    fn mail(
        &mut self,
        arguments: Result<MailArguments, EnvelopeError>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let Some((_, senders)) = &self.user else {
            return self.error(out, 530, "5.7.0", "Authentication required");
        };
        if self.from.is_some() {
            return self.error(out, 503, "5.5.1", "Nested MAIL command");
        }
        let arguments = match arguments {
            Ok(arguments) => arguments,
            Err(error) => return self.envelope_error(Verb::Mail, error, out),
        };
        if arguments
            .size
            .is_some_and(|size| size > self.options.max_message_size as u64)
        {
            return self.error(out, 552, "5.3.4", "Message too big for system");
        }
        let allowed = match &arguments.sender {
            Some(address) => senders.allows(address),
            None => matches!(senders, Senders::Any),
        };
        if !allowed {
            return self.error(
                out,
                553,
                "5.7.1",
                "Sender address not owned by the authenticated user",
            );
        }
        self.from = Some(arguments.sender);
        reply(out, 250, "2.1.0", "Sender OK");
        None
    }

    fn rcpt(
        &mut self,
        recipient: Result<Mailbox, EnvelopeError>,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        if self.from.is_none() {
            return self.error(out, 503, "5.5.1", "MAIL first");
        }
        let recipient = match recipient {
            Ok(recipient) => recipient,
            Err(error) => return self.envelope_error(Verb::Rcpt, error, out),
        };
        if self.to.len() >= self.options.max_recipients {
            reply(out, 452, "4.5.3", "Too many recipients");
            return None;
        }
        if self.options.check_recipients {
            return Some(Step::CheckRecipient(recipient));
        }
        self.to.push(recipient);
        reply(out, 250, "2.1.5", "Recipient OK");
        None
    }

    /// The reply to a MAIL or RCPT whose arguments cannot be taken.
    fn envelope_error(
        &mut self,
        verb: Verb,
        error: EnvelopeError,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let (name, syntax, status, whose) = match verb {
            Verb::Mail => (
                "MAIL",
                "MAIL FROM:<address> [parameters]",
                "5.1.7",
                "sender",
            ),
            Verb::Rcpt => ("RCPT", "RCPT TO:<address>", "5.1.3", "recipient"),
        };
        match error {
            EnvelopeError::Syntax => self.error(out, 501, "5.5.4", &format!("Syntax: {syntax}")),
            EnvelopeError::Address(AddressError::NonAscii) => self.error(
                out,
                553,
                "5.6.7",
                &format!("Non-ASCII {whose} address: SMTPUTF8 is not offered"),
            ),
            EnvelopeError::Address(_) => {
                self.error(out, 501, status, &format!("Invalid {whose} address"))
            }
            EnvelopeError::Unsupported(keyword) => self.error(
                out,
                555,
                "5.5.4",
                &format!("Unsupported {name} parameter {keyword}"),
            ),
            EnvelopeError::Invalid(keyword) => {
                self.error(out, 501, "5.5.4", &format!("Invalid parameter {keyword}"))
            }
        }
    }

    /// The relay's answer about `recipient` (after [`Step::CheckRecipient`]);
    /// `true` when the session is to close (too many errors: the `421` is
    /// in `out`).
    pub fn recipient_checked(
        &mut self,
        recipient: Mailbox,
        check: RecipientCheck,
        out: &mut Vec<u8>,
    ) -> bool {
        match check {
            RecipientCheck::Accepted => {
                self.to.push(recipient);
                reply(out, 250, "2.1.5", "Recipient OK");
                false
            }
            RecipientCheck::Unknown => self
                .error(out, 550, "5.1.1", "No such local mailbox")
                .is_some(),
            RecipientCheck::Unavailable => {
                reply(
                    out,
                    451,
                    "4.3.0",
                    "Cannot look up the recipient now, try again later",
                );
                false
            }
        }
    }

    /// The message is complete: the relay step, or, once a refusal is
    /// answered, [`Step::NeedMore`], the bytes after the message left
    /// unread: they are commands, which the driver hands over again a line
    /// at a time (pipelined, they are answered at once, with the refusal).
    fn data_end(&mut self, overflow: bool, out: &mut Vec<u8>) -> Step {
        let data = std::mem::take(&mut self.data);
        if overflow {
            self.reset();
            reply(out, 552, "5.3.4", "Message too big for system");
            return Step::NeedMore;
        }
        if message::bare_line_break(&data) {
            self.reset();
            reply(
                out,
                554,
                "5.6.0",
                "Bare CR or LF in the message: lines must end with CRLF",
            );
            return Step::NeedMore;
        }
        if let Some((_, senders @ Senders::Only(_))) = &self.user {
            if let Err((code, status, text)) = check_originators(senders, &data) {
                self.reset();
                reply(out, code, status, &text);
                return Step::NeedMore;
            }
        }
        let transaction = Transaction {
            from: self.from.take().flatten(),
            to: std::mem::take(&mut self.to),
            data,
        };
        Step::Relay(transaction)
    }

    /// Tells the client how the relay went; the transaction is over.
    pub fn relayed(&mut self, outcome: RelayOutcome, out: &mut Vec<u8>) {
        self.reset();
        match outcome {
            RelayOutcome::Accepted => reply(out, 250, "2.0.0", "Message accepted for delivery"),
            RelayOutcome::Temporary(text) => {
                let (status, text) = split_status(&text, '4').unwrap_or(("4.4.1", &text));
                reply(out, 451, status, text)
            }
            RelayOutcome::Permanent(code, text) => {
                let code = if (500..600).contains(&code) {
                    code
                } else {
                    554
                };
                let (status, text) = split_status(&text, '5').unwrap_or(("5.0.0", &text));
                reply(out, code, status, &format!("Upstream refused: {text}"))
            }
        }
    }

    /// STARTTLS done: everything said before is forgotten (RFC 3207 §4.2),
    /// the login too; the client must EHLO and AUTH again.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.line.clear();
        self.input = Input::Command;
        self.helo = None;
        self.user = None;
        self.reset();
    }
}

impl Tapped for Session {
    fn reading(&self) -> Reading {
        match self.input {
            Input::Command => Reading::Command,
            Input::Sasl(_) => Reading::SecretResponse,
            Input::Data { .. } | Input::Discard { .. } => Reading::MessageText,
        }
    }

    /// `authorization` until AUTH succeeds, then `ready`, `envelope` once
    /// MAIL is given, `data` while the message text comes.
    fn state(&self) -> &'static str {
        match (&self.input, &self.user, &self.from) {
            (Input::Data { .. } | Input::Discard { .. }, _, _) => "data",
            (_, None, _) => "authorization",
            (_, Some(_), Some(_)) => "envelope",
            (_, Some(_), None) => "ready",
        }
    }
}

/// The sender policy on the message's From: and Sender: fields: exactly one
/// From field, every address in it the user's, and a Sender field, when
/// there is one, naming one of the user's addresses. `Err` is the reply.
fn check_originators(senders: &Senders, data: &[u8]) -> Result<(), (u16, &'static str, String)> {
    let originators = message::originators(data).map_err(|error| match error {
        OriginatorError::Unparsable(what) => (553, "5.7.1", format!("The {what} cannot be parsed")),
        OriginatorError::NoFrom => (553, "5.7.1", "The message has no From: address".into()),
        OriginatorError::ManyFrom(n) => (
            554,
            "5.6.0",
            format!("The message has {n} From: fields; RFC 5322 allows exactly one"),
        ),
        OriginatorError::BadSender => (
            554,
            "5.6.0",
            "The Sender: field must appear at most once and name one mailbox".into(),
        ),
    })?;
    if !originators.from.iter().all(|a| senders.allows_text(a)) {
        return Err((
            553,
            "5.7.1",
            "From: address not owned by the authenticated user".into(),
        ));
    }
    if originators.sender.is_some_and(|a| !senders.allows_text(&a)) {
        return Err((
            553,
            "5.7.1",
            "Sender: address not owned by the authenticated user".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
