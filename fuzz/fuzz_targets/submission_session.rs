//! A `popgate::submission::session::Session` fed a client's bytes, with the
//! connection driver's part simulated (the [`Driver`] below, the one place
//! that knows the driver's steps). The reads arrive in pieces the input
//! picks, and are handed over either as the real driver hands them (a line
//! at a time while the session reads commands or SASL responses, all that
//! is buffered while it reads message text, through the real `LineBuffer`)
//! or all at once, whatever the session reads: the session frames its
//! input itself, so either must give the same conversation.
//!
//! A model frames the bytes the session consumed on its own — command
//! lines, SASL lines, message text up to the first `<CRLF>.<CRLF>`, BDAT
//! chunks — and pairs each with the reply it got. Invariants:
//!
//! * replies are whole CRLF lines of at most 512 octets, `DDD-` or `DDD `
//!   then printable text; the enhanced status code, where there is one, has
//!   the reply's class;
//! * every command line, SASL line and message gets exactly one reply, a
//!   BDAT chunk none (it is never read as commands), and nothing else gets
//!   one; a line is refused as too long exactly when it is;
//! * `Step::NeedMore` leaves bytes it was given unread only right at the
//!   end of a message or a BDAT chunk (the driver hands them over again, a
//!   line at a time, so the protocol log sees each command after it);
//!   STARTTLS, a login, a message and a chunk stop the session right at the
//!   end of their line or text, so nothing pipelined after STARTTLS is
//!   answered;
//! * what the session says it reads (`Tapped::reading`, which the protocol
//!   log's tap trusts to keep secrets and message text out of the log) is
//!   what the model reads: commands, a SASL response, or message text;
//! * credentials reach the driver only after EHLO, with TLS (or
//!   `plaintext_login`), outside a transaction, before a login; `235` comes
//!   only from the driver, and a refused login gets the reply its
//!   `LoginRefusal` is due (and closes when that ends the connection);
//! * MAIL before a login gets `530`; MAIL gets 250 only from a sender the
//!   policy allows, RCPT only inside a transaction and within
//!   `max_recipients`, DATA `354` only with a recipient;
//! * a message reaches the relay — the only way to a 250 after DATA — only
//!   once its `<CRLF>.<CRLF>` was consumed, and it is exactly the text
//!   before it, unstuffed, within `max_message_size`, without a bare CR or
//!   LF, from the MAIL and to the RCPTs that got 250; a message not relayed
//!   gets 552, 554 or (under a sender policy) 553 or 554, for the reason the model
//!   sees;
//! * the 11th error closes the session with 421, QUIT with 221.
//!
//! Input: a flags byte, a seed for the piece sizes, then the client's bytes.
//! A login is accepted when the password has an odd length, and refused
//! (each way in turn, by the length) when it is even; the relay's answer is
//! picked by the seed, its text taken from the message.

#![no_main]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use popgate::line_buffer::LineBuffer;
use popgate::login::LoginRefusal;
use popgate::protocol_log::{Reading, Tapped};
use popgate::submission::driver::INPUT_LIMIT;
use popgate::submission::envelope::{self, Verb};
use popgate::submission::relay::outcome::RelayOutcome;
use popgate::submission::session::{
    Senders, Session, SessionOptions, Step, Transaction, MAX_COMMAND_LINE, MAX_LINE,
};
use smtp_proto::Request;

/// The server's name in the greeting and the EHLO answer.
const HOSTNAME: &str = "mx.fuzz.test";
/// The addresses of the logged-in user under `sender_policy = "own"`.
const OWN_ADDRESSES: [&str; 2] = ["fuzz@example.com", "Alias@Example.org"];
/// The most the driver reads from the socket at once after login (its
/// `READ_CHUNK`).
const READ_CHUNK: usize = 64 * 1024;
/// Errors the session tolerates before it closes (its `MAX_ERRORS`).
const MAX_ERRORS: u32 = 10;
/// The longest reply line, CRLF included (RFC 5321 §4.5.3.1.5).
const MAX_REPLY_LINE: usize = 512;

fuzz_target!(|data: &[u8]| {
    let [flags, seed, input @ ..] = data else {
        return;
    };
    let options = SessionOptions {
        hostname: HOSTNAME.into(),
        tls: flags & 1 != 0,
        starttls_available: flags & 2 != 0,
        plaintext_login: flags & 4 != 0,
        max_message_size: [16, 64, 1000, 35 << 20][usize::from(flags >> 4) % 4],
        max_recipients: if flags & 0x40 != 0 { 1 } else { 3 },
        // Recipients are taken at RCPT, as for every relay but local
        // delivery.
        check_recipients: false,
    };
    let senders = if flags & 8 != 0 {
        Senders::Any
    } else {
        Senders::Only(OWN_ADDRESSES.iter().map(|a| a.to_string()).collect())
    };
    let by_lines = flags & 0x80 != 0;
    Driver::new(options, senders, *seed, by_lines).run(input);
});

/// What the simulated driver did after a step, for the model.
enum Event {
    /// `Step::NeedMore`.
    None,
    /// `Step::StartTls`; the driver dropped the unread bytes.
    StartTls,
    /// `Step::Authenticate`, answered by the driver with `reply`: accepted,
    /// or refused for `refusal`.
    Authenticated {
        refusal: Option<LoginRefusal>,
        reply: Vec<u8>,
    },
    /// `Step::Relay`, answered by the driver with `reply`.
    Relayed {
        transaction: Transaction,
        outcome: RelayOutcome,
        reply: Vec<u8>,
    },
    /// `Step::Close`.
    Close,
}

/// The connection driver (`gateway/submission/driver.rs`), simulated:
/// reads arrive in pieces the seed picks, into a `LineBuffer` as large as
/// the driver's; each step is carried out as the driver does. When the
/// session's API changes, this is what to adapt.
struct Driver {
    session: Session,
    senders: Senders,
    random: u32,
    /// Hand the session a line at a time while it reads lines, as the
    /// driver does; else all that is buffered, whatever it reads.
    by_lines: bool,
    input: LineBuffer,
    model: Model,
}

impl Driver {
    fn new(options: SessionOptions, senders: Senders, seed: u8, by_lines: bool) -> Driver {
        Driver {
            model: Model::new(&options, matches!(senders, Senders::Only(_))),
            session: Session::new(options),
            senders,
            random: 0x9e37_79b9 ^ u32::from(seed),
            by_lines,
            input: LineBuffer::new(INPUT_LIMIT),
        }
    }

    /// A xorshift step: the pieces, the refusals and the relay's answers.
    fn next_random(&mut self) -> u32 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 17;
        self.random ^= self.random << 5;
        self.random
    }

    /// How much buffered input to hand the session next (the driver's
    /// `next_input`); `None` when it must read more.
    fn next_input(&self) -> Option<usize> {
        let pending = self.input.pending().len();
        match self.session.reading() {
            Reading::Command | Reading::SecretResponse if self.by_lines => {
                self.input.line_end(MAX_LINE)
            }
            _ => Some(pending).filter(|&len| len > 0),
        }
    }

    fn run(mut self, input: &[u8]) {
        let mut out = Vec::new();
        self.session.greeting(&mut out);
        assert_eq!(
            out,
            format!("220 {HOSTNAME} ESMTP popgate ready\r\n").as_bytes()
        );
        let mut rest = input;
        while !rest.is_empty() {
            let piece = match self.next_random() % 4 {
                0 => rest.len(),
                1 => 1,
                _ => (self.next_random() % 16 + 1) as usize,
            };
            let (mut read, tail) = rest.split_at(piece.min(rest.len()));
            rest = tail;
            while !read.is_empty() {
                let filled = now(self.input.fill(&mut read, READ_CHUNK)).expect("reading a slice");
                assert!(filled > 0, "fill made no progress");
                if self.hand_over() == Next::Stop {
                    return;
                }
            }
        }
    }

    /// Hands the session what is buffered, step by step, until it must
    /// read more (or the connection ends).
    fn hand_over(&mut self) -> Next {
        while let Some(len) = self.next_input() {
            let mut out = Vec::new();
            let given = &self.input.pending()[..len];
            let mut bytes = given.iter();
            let step = self.session.advance(&mut bytes, &mut out);
            let used = len - bytes.as_slice().len();
            let consumed = given[..used].to_vec();
            let left_in_given = len - used;
            self.input.consume(used);
            let event = match step {
                Step::NeedMore => Event::None,
                Step::StartTls => Event::StartTls,
                Step::Authenticate(credentials) => {
                    let at = out.len();
                    let length = credentials.password.expose().len();
                    let refusal = (length % 2 == 0)
                        .then(|| LoginRefusal::ALL[length / 2 % LoginRefusal::ALL.len()]);
                    match refusal {
                        None => self.session.authenticated(
                            credentials.user,
                            self.senders.clone(),
                            &mut out,
                        ),
                        Some(refusal) => self.session.login_refused(refusal, &mut out),
                    }
                    Event::Authenticated {
                        refusal,
                        reply: out[at..].to_vec(),
                    }
                }
                Step::Relay(transaction) => {
                    let outcome = self.relay_outcome(&transaction.data);
                    let at = out.len();
                    self.session.relayed(outcome.clone(), &mut out);
                    Event::Relayed {
                        transaction,
                        outcome,
                        reply: out[at..].to_vec(),
                    }
                }
                Step::Close => Event::Close,
                Step::CheckRecipient(_) => unreachable!("recipient checks are off"),
            };
            let next = match &event {
                Event::StartTls => Next::StartTls,
                Event::Close => Next::Stop,
                Event::Authenticated {
                    refusal: Some(refusal),
                    ..
                } if refusal.ends_connection().is_some() => Next::Stop,
                _ => Next::Advance,
            };
            self.model
                .observe(&consumed, left_in_given, self.input.pending(), &out, event);
            match next {
                Next::Advance => {}
                Next::StartTls => {
                    // Bytes after STARTTLS came in the clear: dropped.
                    self.input.discard();
                    self.session.tls_started();
                    self.model.tls_started();
                }
                Next::Stop => return Next::Stop,
            }
            self.model.check_reading(self.session.reading());
        }
        Next::Advance
    }

    /// What the relay answers: picked at random, with a text taken from
    /// the message (an upstream's text is not to be trusted either).
    fn relay_outcome(&mut self, data: &[u8]) -> RelayOutcome {
        let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
        let text = String::from_utf8_lossy(line).into_owned();
        match self.next_random() % 4 {
            0 | 1 => RelayOutcome::Accepted,
            2 => RelayOutcome::Temporary(text),
            _ => RelayOutcome::Permanent((self.next_random() % 700) as u16, text),
        }
    }
}

/// Runs a future that never waits, as reading from a slice never does.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("reading from a slice waited"),
    }
}

/// What the driver does after a step.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Hand over what is left, else read more.
    Advance,
    StartTls,
    Stop,
}

/// What the model reads the next bytes as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command,
    Sasl,
    Data,
    /// A BDAT chunk of this many octets still to come.
    Chunk(usize),
    Closed,
}

/// One reply: its code, its lines (without CRLF), and its octets.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
    raw: Vec<u8>,
}

impl Reply {
    /// The text of a one-line reply, after the code and a space.
    fn text(&self) -> &str {
        assert_eq!(
            self.lines.len(),
            1,
            "a multiline reply where one line is due"
        );
        &self.lines[0][4..]
    }

    fn is(&self, expected: &str) -> bool {
        self.lines.len() == 1 && self.lines[0] == expected
    }
}

/// The client's side as the model sees it, and the session state the
/// replies so far imply.
struct Model {
    tls: bool,
    starttls_available: bool,
    plaintext_login: bool,
    max_message_size: usize,
    max_recipients: usize,
    sender_policy: bool,
    mode: Mode,
    /// Consumed octets not yet part of a finished line, message or chunk.
    partial: Vec<u8>,
    replies: VecDeque<Reply>,
    /// The driver's step waiting for the unit that caused it.
    event: Option<Event>,
    /// The last unit of the current `advance` ended message text (a
    /// message or a BDAT chunk).
    text_ended: bool,
    helo: bool,
    logged_in: bool,
    /// The sender of the open transaction.
    from: Option<String>,
    to: Vec<String>,
    errors: u32,
}

impl Model {
    fn new(options: &SessionOptions, sender_policy: bool) -> Model {
        Model {
            tls: options.tls,
            starttls_available: options.starttls_available,
            plaintext_login: options.plaintext_login,
            max_message_size: options.max_message_size,
            max_recipients: options.max_recipients,
            sender_policy,
            mode: Mode::Command,
            partial: Vec::new(),
            replies: VecDeque::new(),
            event: None,
            text_ended: false,
            helo: false,
            logged_in: false,
            from: None,
            to: Vec::new(),
            errors: 0,
        }
    }

    /// One `advance` (and the driver's step): the octets it consumed, how
    /// many of those it was given it left, all input still buffered after
    /// it, the replies written, and what the driver did.
    fn observe(
        &mut self,
        consumed: &[u8],
        left_in_given: usize,
        unread: &[u8],
        out: &[u8],
        event: Event,
    ) {
        assert_ne!(self.mode, Mode::Closed, "input read after Close");
        self.replies.extend(parse_replies(out));
        self.partial.extend_from_slice(consumed);
        let need_more = matches!(event, Event::None);
        self.event = match event {
            Event::None => None,
            event => Some(event),
        };
        self.text_ended = false;
        while let Some(unit) = self.next_unit() {
            self.handle(&unit);
        }
        if self.mode != Mode::Closed && matches!(self.event, Some(Event::Close)) {
            self.line_too_long(unread);
        }
        if need_more && left_in_given > 0 {
            assert!(
                self.text_ended && self.partial.is_empty(),
                "NeedMore with bytes left unread, not at the end of a message or chunk"
            );
        }
        assert!(
            self.event.is_none(),
            "a step not at the end of a line or message"
        );
        if let Some(reply) = self.replies.front() {
            panic!("a reply to nothing the client sent: {:?}", reply.lines);
        }
    }

    /// Takes the next finished unit out of the consumed octets.
    fn next_unit(&mut self) -> Option<Vec<u8>> {
        let end = match self.mode {
            Mode::Command | Mode::Sasl => memchr(b'\n', &self.partial)? + 1,
            Mode::Data => data_end(&self.partial)?,
            Mode::Chunk(left) if left <= self.partial.len() => left,
            Mode::Chunk(_) | Mode::Closed => return None,
        };
        Some(self.partial.drain(..end).collect())
    }

    fn reply(&mut self) -> Reply {
        self.replies
            .pop_front()
            .expect("a line or message without a reply")
    }

    /// Takes the driver's step for the unit just read, which must be the
    /// last octets consumed.
    fn take_event(&mut self) -> Option<Event> {
        let event = self.event.take()?;
        assert!(
            self.partial.is_empty(),
            "the session went on reading after a step"
        );
        Some(event)
    }

    fn handle(&mut self, unit: &[u8]) {
        let text = matches!(self.mode, Mode::Data | Mode::Chunk(_));
        match self.mode {
            Mode::Command => self.command(unit),
            Mode::Sasl => self.sasl(unit),
            Mode::Data => self.message(unit),
            Mode::Chunk(_) => self.mode = Mode::Command,
            Mode::Closed => unreachable!(),
        }
        // Commands after message text are handed over again, so the
        // protocol log sees each: the session stops where the text ends.
        self.text_ended = text;
        assert!(
            !text || self.partial.is_empty(),
            "the session read on past the end of a message or chunk"
        );
    }

    /// What the session says it reads must be what the model reads.
    fn check_reading(&self, reading: Reading) {
        let expected = match self.mode {
            Mode::Command => Reading::Command,
            Mode::Sasl => Reading::SecretResponse,
            Mode::Data | Mode::Chunk(_) => Reading::MessageText,
            Mode::Closed => return,
        };
        assert_eq!(reading, expected, "the session reads something else");
    }

    fn may_send_credentials(&self) -> bool {
        self.tls || self.plaintext_login
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    /// A command line and its reply.
    fn command(&mut self, line: &[u8]) {
        assert!(line.len() <= MAX_COMMAND_LINE, "a line over the limit read");
        let request = Request::parse(&mut line.iter());
        if matches!(self.event, Some(Event::Authenticated { .. })) && self.partial.is_empty() {
            assert!(
                matches!(request, Ok(Request::Auth { .. })),
                "credentials from {request:?}"
            );
            self.login();
            return;
        }
        let reply = self.reply();
        match envelope::verb(line) {
            Some(Verb::Mail) => return self.mail(line, &reply),
            Some(Verb::Rcpt) => return self.rcpt(line, &reply),
            None => {}
        }
        match request {
            Ok(Request::Ehlo { .. }) if reply.code == 250 => {
                let mut expected = vec![
                    HOSTNAME.to_string(),
                    "PIPELINING".into(),
                    format!("SIZE {}", self.max_message_size),
                    "8BITMIME".into(),
                    "ENHANCEDSTATUSCODES".into(),
                ];
                if !self.tls && self.starttls_available {
                    expected.push("STARTTLS".into());
                }
                if self.may_send_credentials() && !self.logged_in {
                    expected.push("AUTH PLAIN LOGIN".into());
                }
                let texts: Vec<&str> = reply.lines.iter().map(|line| &line[4..]).collect();
                assert_eq!(texts, expected, "the EHLO answer");
                self.helo = true;
                self.reset();
            }
            Ok(Request::Helo { .. }) if reply.code == 250 => {
                assert!(reply.is(&format!("250 {HOSTNAME}")));
                self.helo = true;
                self.reset();
            }
            Ok(Request::StartTls) if reply.code == 220 => {
                assert!(reply.is("220 2.0.0 Ready to start TLS"));
                assert!(!self.tls && self.starttls_available, "STARTTLS not offered");
                assert!(
                    matches!(self.take_event(), Some(Event::StartTls)),
                    "220 to STARTTLS without the TLS step"
                );
            }
            Ok(Request::Auth { .. }) if reply.code == 334 => {
                self.check_login_allowed();
                self.mode = Mode::Sasl;
            }
            Ok(Request::Data) if reply.code == 354 => {
                assert!(
                    self.from.is_some() && !self.to.is_empty(),
                    "354 without sender and recipient"
                );
                self.mode = Mode::Data;
            }
            Ok(Request::Rset) if reply.code == 250 => {
                assert!(reply.is("250 2.0.0 Reset"));
                self.reset();
            }
            Ok(Request::Noop { .. }) if reply.code == 250 => assert!(reply.is("250 2.0.0 OK")),
            Ok(Request::Vrfy { .. }) if reply.code == 252 => {}
            Ok(Request::Quit) if reply.code == 221 => {
                assert!(reply.is("221 2.0.0 Bye"));
                self.close();
            }
            Ok(Request::Bdat { chunk_size, .. }) => {
                self.error_reply(&reply);
                if self.mode != Mode::Closed {
                    assert!(reply.is("502 5.5.1 Command not implemented"));
                    self.mode = Mode::Chunk(chunk_size);
                }
            }
            _ => self.error_reply(&reply),
        }
    }

    /// A MAIL line (read by `envelope`, as the session reads it) and its
    /// reply.
    fn mail(&mut self, line: &[u8], reply: &Reply) {
        if reply.code == 250 {
            assert!(reply.is("250 2.1.0 Sender OK"));
            assert!(self.logged_in, "MAIL accepted before a login");
            assert!(self.from.is_none(), "nested MAIL accepted");
            let sender = envelope::mail(line)
                .expect("MAIL accepted that does not parse")
                .sender;
            let allowed = match &sender {
                Some(mailbox) => {
                    !self.sender_policy
                        || OWN_ADDRESSES
                            .iter()
                            .any(|own| own.eq_ignore_ascii_case(&mailbox.canonical()))
                }
                None => !self.sender_policy,
            };
            assert!(allowed, "a sender the policy refuses: {sender:?}");
            self.from = Some(sender.map_or(String::new(), |m| m.as_str().to_owned()));
        } else if !self.logged_in && reply.code != 421 {
            assert!(
                reply.is("530 5.7.0 Authentication required"),
                "MAIL before login: {:?}",
                reply.lines
            );
            self.error();
        } else {
            self.error_reply(reply);
        }
    }

    /// A RCPT line and its reply.
    fn rcpt(&mut self, line: &[u8], reply: &Reply) {
        match reply.code {
            250 => {
                assert!(reply.is("250 2.1.5 Recipient OK"));
                assert!(self.from.is_some(), "RCPT accepted without MAIL");
                assert!(self.to.len() < self.max_recipients, "too many recipients");
                let recipient = envelope::rcpt(line).expect("RCPT accepted that does not parse");
                self.to.push(recipient.as_str().to_owned());
            }
            452 => assert!(self.from.is_some() && self.to.len() >= self.max_recipients),
            _ => self.error_reply(reply),
        }
    }

    /// A counted error: a 5xx, or 421 and Close once there are too many.
    fn error_reply(&mut self, reply: &Reply) {
        self.errors += 1;
        if self.errors > MAX_ERRORS {
            assert!(
                reply.is("421 4.7.0 Too many errors, closing"),
                "{:?}",
                reply.lines
            );
            self.close();
        } else {
            assert!(
                (500..600).contains(&reply.code),
                "not an error reply: {:?}",
                reply.lines
            );
        }
    }

    /// Counts an error already checked.
    fn error(&mut self) {
        self.errors += 1;
        assert!(
            self.errors <= MAX_ERRORS,
            "an error past the limit not closing"
        );
    }

    fn close(&mut self) {
        assert!(
            matches!(self.take_event(), Some(Event::Close)),
            "a closing reply without Close"
        );
        self.mode = Mode::Closed;
    }

    /// A login may be attempted now.
    fn check_login_allowed(&self) {
        assert!(self.helo, "a login before EHLO");
        assert!(!self.logged_in, "a second login");
        assert!(self.from.is_none(), "a login inside a transaction");
        assert!(self.may_send_credentials(), "credentials without TLS");
    }

    /// The unit just read handed credentials to the driver.
    fn login(&mut self) {
        self.check_login_allowed();
        let Some(Event::Authenticated { refusal, reply }) = self.take_event() else {
            unreachable!("checked by the caller");
        };
        let answer = self.reply();
        assert_eq!(answer.raw, reply, "the login's reply is the driver's");
        self.mode = Mode::Command;
        match refusal {
            None => {
                assert!(answer.is("235 2.7.0 Authentication successful"));
                self.logged_in = true;
            }
            Some(refusal) => {
                let code = match refusal {
                    LoginRefusal::Credentials { .. } | LoginRefusal::Disabled => 535,
                    LoginRefusal::LoginDeadline => 421,
                    _ => 454,
                };
                assert_eq!(answer.code, code, "{refusal:?}: {:?}", answer.lines);
                if refusal.ends_connection().is_some() {
                    self.mode = Mode::Closed;
                }
            }
        }
    }

    /// A SASL response line and its reply.
    fn sasl(&mut self, _line: &[u8]) {
        if matches!(self.event, Some(Event::Authenticated { .. })) && self.partial.is_empty() {
            self.login();
            return;
        }
        let reply = self.reply();
        self.mode = Mode::Command;
        if reply.code == 334 {
            self.mode = Mode::Sasl;
        } else {
            self.error_reply(&reply);
        }
    }

    /// A whole message (up to and with its terminator) and its reply.
    fn message(&mut self, unit: &[u8]) {
        let text = unstuffed(unit);
        let over = text.len() > self.max_message_size;
        let bare = has_bare_line_break(&text);
        self.mode = Mode::Command;
        let from = self.from.take();
        let to = std::mem::take(&mut self.to);
        if matches!(self.event, Some(Event::Relayed { .. })) && self.partial.is_empty() {
            let Some(Event::Relayed {
                transaction,
                outcome,
                reply,
            }) = self.take_event()
            else {
                unreachable!();
            };
            assert!(!over, "a message over the size limit relayed");
            assert!(!bare, "a message with a bare CR or LF relayed");
            assert!(
                transaction.data == text,
                "the relayed text is not the message sent"
            );
            let sender = transaction.from.as_ref().map(|a| a.as_str().to_owned());
            let expected = from.filter(|address| !address.is_empty());
            assert_eq!(sender, expected, "the relayed sender");
            let recipients: Vec<String> = transaction
                .to
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect();
            assert_eq!(recipients, to, "the relayed recipients");
            let answer = self.reply();
            assert_eq!(answer.raw, reply, "the relay's reply is the driver's");
            check_relay_reply(&answer, &outcome);
            return;
        }
        let reply = self.reply();
        if over {
            assert!(
                reply.is("552 5.3.4 Message too big for system"),
                "{:?}",
                reply.lines
            );
        } else if bare {
            assert_eq!(reply.code, 554, "{:?}", reply.lines);
        } else {
            assert!(
                self.sender_policy && matches!(reply.code, 553 | 554),
                "a message neither relayed nor refused for a reason: {:?}",
                reply.lines
            );
        }
    }

    /// The session closed on a line it had not finished: only a line
    /// (without its LF) of at least the limit may be refused as too long.
    fn line_too_long(&mut self, unread: &[u8]) {
        let limit = match self.mode {
            Mode::Command => MAX_COMMAND_LINE,
            Mode::Sasl => MAX_LINE,
            mode => panic!("Close in the middle of {mode:?}"),
        };
        let reply = self.reply();
        assert_eq!(
            reply.code, 500,
            "Close on an unfinished line: {:?}",
            reply.lines
        );
        let rest = &unread[..memchr(b'\n', unread).unwrap_or(unread.len())];
        let length = self.partial.len() + rest.len();
        assert!(
            length >= limit,
            "a line of {length} octets refused as too long"
        );
        self.event = None;
        self.mode = Mode::Closed;
    }

    /// TLS is up: the session starts over, its login included (RFC 3207
    /// §4.2).
    fn tls_started(&mut self) {
        assert!(self.partial.is_empty());
        self.tls = true;
        self.helo = false;
        self.logged_in = false;
        self.reset();
        self.mode = Mode::Command;
    }
}

/// The reply `relayed` must give for `outcome`.
fn check_relay_reply(reply: &Reply, outcome: &RelayOutcome) {
    match outcome {
        RelayOutcome::Accepted => {
            assert!(reply.is("250 2.0.0 Message accepted for delivery"))
        }
        RelayOutcome::Temporary(_) => assert_eq!(reply.code, 451),
        RelayOutcome::Permanent(code, _) => {
            let expected = if (500..600).contains(code) {
                *code
            } else {
                554
            };
            assert_eq!(reply.code, expected);
            assert!(reply.text().contains("Upstream refused: "));
        }
    }
}

/// Splits the output into replies, checking every line's form.
fn parse_replies(out: &[u8]) -> Vec<Reply> {
    if out.is_empty() {
        return Vec::new();
    }
    assert!(out.ends_with(b"\r\n"), "output not ending in CRLF");
    let mut replies = Vec::new();
    let mut current: Option<Reply> = None;
    for raw in out.split_inclusive(|&b| b == b'\n') {
        assert!(raw.len() <= MAX_REPLY_LINE, "a reply line over 512 octets");
        let line = raw.strip_suffix(b"\r\n").expect("a line without CRLF");
        assert!(
            line.iter().all(|b| (0x20..0x7f).contains(b)),
            "a reply line that is not printable ASCII: {:?}",
            String::from_utf8_lossy(line)
        );
        let line = String::from_utf8_lossy(line).into_owned();
        let bytes = line.as_bytes();
        assert!(
            bytes.len() >= 4
                && bytes[..3].iter().all(u8::is_ascii_digit)
                && matches!(bytes[3], b' ' | b'-'),
            "not a reply line: {line:?}"
        );
        let code: u16 = line[..3].parse().expect("three digits");
        assert!((200..600).contains(&code), "reply code {code}");
        let last = bytes[3] == b' ';
        let reply = current.get_or_insert_with(|| Reply {
            code,
            lines: Vec::new(),
            raw: Vec::new(),
        });
        assert_eq!(reply.code, code, "a multiline reply changing its code");
        reply.lines.push(line);
        reply.raw.extend_from_slice(raw);
        if last {
            let reply = current.take().expect("just inserted");
            check_status_class(&reply);
            replies.push(reply);
        }
    }
    assert!(current.is_none(), "a multiline reply without its last line");
    replies
}

/// A one-line reply other than the greeting, HELO's answer (RFC 2034 §3:
/// none on HELO/EHLO), 334 and 354 carries an enhanced status code of its
/// own class (RFC 2034, 3463).
fn check_status_class(reply: &Reply) {
    if reply.lines.len() > 1
        || matches!(reply.code, 334 | 354)
        || reply.is(&format!("250 {HOSTNAME}"))
    {
        return;
    }
    let text = reply.text();
    let status = text.split(' ').next().unwrap_or_default();
    let parts: Vec<&str> = status.split('.').collect();
    assert!(
        parts.len() == 3
            && parts[0].len() == 1
            && parts[0].as_bytes()[0] == b'0' + (reply.code / 100) as u8
            && parts[1..]
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())),
        "no enhanced status code of the reply's class: {:?}",
        reply.lines
    );
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Where message text that began right after the DATA line ends: after
/// the first `.` line, `<CRLF>.<CRLF>` counting the DATA line's own CRLF.
fn data_end(text: &[u8]) -> Option<usize> {
    let mut with_primer = b"\r\n".to_vec();
    with_primer.extend_from_slice(text);
    with_primer
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|at| at + 3)
}

/// The message in a unit that ends with `.<CRLF>`: dot-stuffing removed
/// (a `.` that starts a line goes), lines kept with their CRLF.
fn unstuffed(unit: &[u8]) -> Vec<u8> {
    let body = &unit[..unit.len() - 3];
    let mut text = Vec::with_capacity(body.len());
    for (at, &byte) in body.iter().enumerate() {
        let line_start = at == 0 || (at >= 2 && &body[at - 2..at] == b"\r\n");
        if !(line_start && byte == b'.') {
            text.push(byte);
        }
    }
    text
}

/// A CR not followed by LF, or an LF not after CR.
fn has_bare_line_break(text: &[u8]) -> bool {
    text.iter().enumerate().any(|(at, &b)| match b {
        b'\r' => text.get(at + 1) != Some(&b'\n'),
        b'\n' => at == 0 || text[at - 1] != b'\r',
        _ => false,
    })
}
