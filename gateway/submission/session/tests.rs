//! The session core, driven with bytes as a client would send them.

use super::*;
use crate::line_buffer::LineBuffer;
use crate::protocol_log::Tap;

fn options(tls: bool) -> SessionOptions {
    SessionOptions {
        hostname: "mail.example.com".into(),
        tls,
        starttls_available: true,
        plaintext_login: false,
        max_message_size: 100,
        max_recipients: 2,
        check_recipients: false,
    }
}

/// Feeds `input` and returns the step and the replies.
fn feed(session: &mut Session, input: &[u8]) -> (Step, String) {
    let mut out = Vec::new();
    let mut bytes = input.iter();
    let step = session.advance(&mut bytes, &mut out);
    (step, String::from_utf8(out).unwrap())
}

fn logged_in(senders: Senders) -> Session {
    let mut session = Session::new(options(true));
    let (step, _) = feed(
        &mut session,
        b"EHLO client\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n",
    );
    let Step::Authenticate(credentials) = step else {
        panic!("{step:?}");
    };
    assert_eq!(credentials.user, "alice");
    assert_eq!(credentials.password.expose(), "s3cret");
    let mut out = Vec::new();
    session.authenticated("alice".into(), senders, &mut out);
    assert_eq!(out, b"235 2.7.0 Authentication successful\r\n");
    session
}

fn alice() -> Senders {
    Senders::Only(vec!["alice@example.com".into()])
}

#[test]
fn ehlo_offers_starttls_before_tls_and_auth_only_after() {
    let mut session = Session::new(options(false));
    let (step, out) = feed(&mut session, b"EHLO client\r\n");
    assert!(matches!(step, Step::NeedMore));
    assert_eq!(
        out,
        "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
    );
    let (_, out) = feed(
        &mut session,
        b"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nMAIL FROM:<a@b.c>\r\n",
    );
    assert_eq!(
        out,
        "538 5.7.11 Encryption required: use STARTTLS first\r\n530 5.7.0 Authentication required\r\n"
    );
    let (step, out) = feed(&mut session, b"STARTTLS\r\n");
    assert!(matches!(step, Step::StartTls));
    assert_eq!(out, "220 2.0.0 Ready to start TLS\r\n");
    session.tls_started();
    let (_, out) = feed(&mut session, b"AUTH LOGIN\r\n");
    assert_eq!(out, "503 5.5.1 EHLO first\r\n");
    let (_, out) = feed(&mut session, b"EHLO client\r\n");
    assert!(
        out.ends_with("250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n"),
        "{out}"
    );
}

#[test]
fn login_exchange_prompts_and_decodes() {
    let mut session = Session::new(options(true));
    let (step, out) = feed(&mut session, b"EHLO c\r\nAUTH LOGIN\r\nYWxpY2U=\r\n");
    assert!(matches!(step, Step::NeedMore));
    assert!(
        out.ends_with("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"),
        "{out}"
    );
    assert!(session.in_sasl_exchange());
    let (step, _) = feed(&mut session, b"czNjcmV0\r\n");
    let Step::Authenticate(credentials) = step else {
        panic!("{step:?}");
    };
    assert_eq!(credentials.user, "alice");
    assert_eq!(credentials.password.expose(), "s3cret");
    let mut out = Vec::new();
    session.login_refused(LoginRefusal::Credentials { close: false }, &mut out);
    assert_eq!(out, b"535 5.7.8 Authentication credentials invalid\r\n");
    let (_, out) = feed(&mut session, b"AUTH PLAIN\r\n*\r\n");
    assert_eq!(out, "334 \r\n501 5.0.0 Authentication cancelled\r\n");
}

/// Every login refusal, exactly as a submission client reads it (RFC 4954
/// §6): wrong credentials `535 5.7.8`, a switched-off user `535 5.7.1`
/// saying so, a passing condition `454 4.7.0`, the login deadline `421`.
#[test]
fn every_login_refusal_has_its_reply() {
    let unavailable = "454 4.7.0 Authentication temporarily unavailable\r\n";
    for (refusal, expected) in [
        (
            LoginRefusal::Credentials { close: false },
            "535 5.7.8 Authentication credentials invalid\r\n",
        ),
        (
            LoginRefusal::Credentials { close: true },
            "535 5.7.8 Authentication credentials invalid\r\n",
        ),
        (
            LoginRefusal::Disabled,
            "535 5.7.1 Submission access is disabled for this mailbox\r\n",
        ),
        (LoginRefusal::Unavailable, unavailable),
        (
            LoginRefusal::TooManySessions,
            "454 4.7.0 Too many sessions for this user, try again later\r\n",
        ),
        (LoginRefusal::MailboxLocked, unavailable),
        (LoginRefusal::MailboxUnavailable, unavailable),
        (LoginRefusal::MailboxBroken, unavailable),
        (
            LoginRefusal::LoginDeadline,
            "421 4.7.0 Login not completed in time, closing\r\n",
        ),
    ] {
        let mut session = Session::new(options(true));
        let mut out = Vec::new();
        session.login_refused(refusal, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{refusal:?}");
        assert!(session.user().is_none());
    }
}

#[test]
fn a_pipelined_transaction_is_relayed_with_its_data_unstuffed() {
    let mut session = logged_in(alice());
    let (step, out) = feed(
        &mut session,
        b"MAIL FROM:<alice@example.com> BODY=8BITMIME\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n\
          From: alice@example.com\r\n\r\n..dot\r\nend\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(
        out,
        "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    );
    let Step::Relay(transaction) = step else {
        panic!("{step:?}");
    };
    assert_eq!(transaction.from.unwrap().to_string(), "alice@example.com");
    assert_eq!(transaction.to.len(), 1);
    assert_eq!(
        transaction.data,
        b"From: alice@example.com\r\n\r\n.dot\r\nend\r\n"
    );
    let mut out = Vec::new();
    session.relayed(RelayOutcome::Accepted, &mut out);
    assert_eq!(out, b"250 2.0.0 Message accepted for delivery\r\n");
    let (step, out) = feed(&mut session, b"QUIT\r\n");
    assert!(matches!(step, Step::Close));
    assert_eq!(out, "221 2.0.0 Bye\r\n");
}

#[test]
fn an_empty_message_ends_at_the_first_dot_line() {
    let mut session = logged_in(Senders::Any);
    let (step, _) = feed(
        &mut session,
        b"MAIL FROM:<>\r\nRCPT TO:<b@c.d>\r\nDATA\r\n.\r\n",
    );
    let Step::Relay(transaction) = step else {
        panic!("{step:?}");
    };
    assert!(transaction.from.is_none());
    assert!(transaction.data.is_empty());
}

#[test]
fn smuggling_attempts_are_refused_whole() {
    for body in [
        &b"From: alice@example.com\r\n\r\nhi\n.\r\nMAIL FROM:<x@y.z>\r\n.\r\n"[..],
        b"From: alice@example.com\r\n\r\nhi\r\n.\nMAIL FROM:<x@y.z>\r\n.\r\n",
        b"From: alice@example.com\r\n\r\nhi\r\r\n.\r\n",
    ] {
        let mut session = logged_in(alice());
        let mut input = b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@c.d>\r\nDATA\r\n".to_vec();
        input.extend_from_slice(body);
        let (step, out) = feed(&mut session, &input);
        assert!(matches!(step, Step::NeedMore), "{step:?}");
        assert!(
            out.ends_with("554 5.6.0 Bare CR or LF in the message: lines must end with CRLF\r\n"),
            "{out}"
        );
    }
}

#[test]
fn senders_sizes_and_recipients_are_bounded() {
    let mut session = logged_in(alice());
    let (_, out) = feed(
        &mut session,
        b"MAIL FROM:<mallory@example.com>\r\nMAIL FROM:<alice@example.com> SIZE=101\r\n\
          MAIL FROM:<ALICE@example.com>\r\nRCPT TO:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nRCPT TO:<c@x.y>\r\n",
    );
    assert_eq!(
        out,
        "553 5.7.1 Sender address not owned by the authenticated user\r\n\
         552 5.3.4 Message too big for system\r\n250 2.1.0 Sender OK\r\n\
         250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n452 4.5.3 Too many recipients\r\n"
    );
    let mut big = b"DATA\r\nFrom: alice@example.com\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 200));
    big.extend_from_slice(b"\r\n.\r\n");
    let (step, out) = feed(&mut session, &big);
    assert!(matches!(step, Step::NeedMore));
    assert!(
        out.ends_with("552 5.3.4 Message too big for system\r\n"),
        "{out}"
    );
}

#[test]
fn a_spoofed_from_header_is_refused() {
    let mut session = logged_in(alice());
    let (step, out) = feed(
        &mut session,
        b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@c.d>\r\nDATA\r\nFrom: ceo@example.com\r\n\r\nx\r\n.\r\n",
    );
    assert!(matches!(step, Step::NeedMore));
    assert!(
        out.ends_with("553 5.7.1 From: address not owned by the authenticated user\r\n"),
        "{out}"
    );
}

/// RFC 4954 §5: `AUTH=` on MAIL is parsed and discarded, beside `SIZE=`
/// and `BODY=`. Caught: `AUTH=<>` got `555 5.5.4 Unsupported MAIL
/// parameter`, so every MTA relaying with SMTP AUTH had its mail refused.
#[test]
fn mail_takes_auth_beside_size_and_body() {
    let mut session = logged_in(alice());
    let (_, out) = feed(
        &mut session,
        b"MAIL FROM:<alice@example.com> SIZE=50 BODY=8BITMIME AUTH=<>\r\nRSET\r\n\
          MAIL FROM:<alice@example.com> AUTH=alice+40example.com\r\nRSET\r\n\
          MAIL FROM:<alice@example.com> AUTH=+4\r\nMAIL FROM:<alice@example.com> SIZE=101 AUTH=<>\r\n\
          MAIL FROM:<alice@example.com> ENVID=x\r\n",
    );
    assert_eq!(
        out,
        "250 2.1.0 Sender OK\r\n250 2.0.0 Reset\r\n250 2.1.0 Sender OK\r\n250 2.0.0 Reset\r\n\
         501 5.5.4 Invalid parameter AUTH\r\n552 5.3.4 Message too big for system\r\n\
         555 5.5.4 Unsupported MAIL parameter ENVID\r\n"
    );
}

/// RFC 5321 §4.1.2–4.1.3: a quoted local part and address literals are
/// legal and reach the relay exactly as written; the sender policy sees
/// through the quotes. Caught: smtp-proto dropped the quotes
/// (`"john doe"@example.net` was refused as the invalid `john
/// doe@example.net`, `"alice"@…` went on unquoted) and address literals
/// were refused.
#[test]
fn quoted_local_parts_and_address_literals_are_kept_as_written() {
    let mut session = logged_in(alice());
    let (step, out) = feed(
        &mut session,
        b"MAIL FROM:<\"alice\"@Example.com>\r\nRCPT TO:<\"john doe\"@example.net>\r\n\
          RCPT TO:<bob@[192.0.2.1]>\r\nDATA\r\nFrom: alice@example.com\r\n\r\nx\r\n.\r\n",
    );
    assert!(
        out.starts_with(
            "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
        ),
        "{out}"
    );
    let Step::Relay(transaction) = step else {
        panic!("{step:?}");
    };
    assert_eq!(transaction.from.unwrap().as_str(), "\"alice\"@Example.com");
    let to: Vec<&str> = transaction.to.iter().map(Mailbox::as_str).collect();
    assert_eq!(to, ["\"john doe\"@example.net", "bob@[192.0.2.1]"]);
    session.relayed(RelayOutcome::Accepted, &mut Vec::new());
    for spoof in [
        "\"alice@example.com\"@evil.example",
        "\"alice\"@example.com.evil.example",
        "alice@[127.0.0.1]",
    ] {
        let (_, out) = feed(&mut session, format!("MAIL FROM:<{spoof}>\r\n").as_bytes());
        assert_eq!(
            out, "553 5.7.1 Sender address not owned by the authenticated user\r\n",
            "{spoof}"
        );
    }
    let (_, out) = feed(&mut session, b"MAIL FROM:<alice@192.0.2.1>\r\n");
    assert_eq!(out, "501 5.1.7 Invalid sender address\r\n");
}

/// RFC 6531 §3.4: SMTPUTF8 is either offered and honoured, or not offered
/// and non-ASCII addresses refused. popgate does the second. Caught: a
/// non-ASCII recipient was accepted without the parameter (and relayed
/// with SMTPUTF8 added by lettre).
#[test]
fn non_ascii_addresses_are_refused_as_smtputf8_is_not_offered() {
    let mut session = Session::new(options(true));
    let (_, out) = feed(&mut session, b"EHLO client\r\n");
    assert!(!out.contains("SMTPUTF8"), "{out}");
    let mut session = logged_in(Senders::Any);
    let (_, out) = feed(
        &mut session,
        "MAIL FROM:<alice@example.com> SMTPUTF8\r\nMAIL FROM:<josé@example.com>\r\n\
         MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@exämple.com>\r\nRCPT TO:<b\u{f6}b@example.com>\r\n"
            .as_bytes(),
    );
    assert_eq!(
        out,
        "555 5.5.4 Unsupported MAIL parameter SMTPUTF8\r\n\
         553 5.6.7 Non-ASCII sender address: SMTPUTF8 is not offered\r\n\
         250 2.1.0 Sender OK\r\n\
         553 5.6.7 Non-ASCII recipient address: SMTPUTF8 is not offered\r\n\
         553 5.6.7 Non-ASCII recipient address: SMTPUTF8 is not offered\r\n"
    );
}

/// RFC 4954 §6: a well-formed PLAIN response whose authzid names another
/// user is an authentication failure, `535 5.7.8`; bad base64 stays `501`.
/// Caught: it got `501 5.5.2 Cannot decode the SASL response`.
#[test]
fn acting_as_another_user_is_an_authentication_failure() {
    let mut session = Session::new(options(true));
    // "bob\0alice\0s3cret", then not base64 at all.
    let (step, out) = feed(
        &mut session,
        b"EHLO c\r\nAUTH PLAIN Ym9iAGFsaWNlAHMzY3JldA==\r\nAUTH PLAIN\r\nYm9iAGFsaWNlAHMzY3JldA==\r\nAUTH PLAIN %%%\r\n",
    );
    assert!(matches!(step, Step::NeedMore), "{step:?}");
    let refusal =
        "535 5.7.8 Authentication credentials invalid: acting as another user is not allowed\r\n";
    assert!(
        out.ends_with(&format!(
            "{refusal}334 \r\n{refusal}501 5.5.2 Cannot decode the SASL response\r\n"
        )),
        "{out}"
    );
    assert!(session.user().is_none());
}

/// A user name that breaks the login-name rule is refused inside the SASL
/// exchange, as POP3 refuses it, before a password is asked for: `535
/// 5.7.8`, and no credentials reach the login gate. Caught: submission
/// asked for the password and handed `../etc` to the backend.
#[test]
fn a_malformed_name_is_refused_inside_sasl() {
    let mut session = Session::new(options(true));
    // "\0../etc\0pw", then AUTH LOGIN with "a b" as the user.
    let (step, out) = feed(
        &mut session,
        b"EHLO c\r\nAUTH PLAIN AC4uL2V0YwBwdw==\r\nAUTH LOGIN\r\nYSBi\r\n",
    );
    assert!(matches!(step, Step::NeedMore), "{step:?}");
    assert!(
        out.ends_with(
            "535 5.7.8 Authentication credentials invalid\r\n334 VXNlcm5hbWU6\r\n\
             535 5.7.8 Authentication credentials invalid\r\n"
        ),
        "{out}"
    );
    assert!(!session.in_sasl_exchange());
}

/// RFC 5321 §4.1.1.1: HELO is answered `250 <domain>`, and RFC 2034 §3
/// puts no enhanced status code on it. Caught: `250 2.0.0 mail.example.com`.
#[test]
fn helo_is_answered_with_the_bare_hostname() {
    let mut session = Session::new(options(true));
    let (_, out) = feed(&mut session, b"HELO client\r\n");
    assert_eq!(out, "250 mail.example.com\r\n");
    assert_eq!(session.helo(), Some("client"));
}

/// RFC 3207 §4.2: after STARTTLS the server forgets everything the client
/// said before, its login included. Caught: with `login = "plaintext"` a
/// client that logged in before STARTTLS could send MAIL after it without
/// a new AUTH.
#[test]
fn starttls_forgets_the_login() {
    let mut session = Session::new(SessionOptions {
        plaintext_login: true,
        ..options(false)
    });
    let (step, _) = feed(
        &mut session,
        b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n",
    );
    assert!(matches!(step, Step::Authenticate(_)), "{step:?}");
    session.authenticated("alice".into(), alice(), &mut Vec::new());
    let (step, _) = feed(&mut session, b"STARTTLS\r\n");
    assert!(matches!(step, Step::StartTls), "{step:?}");
    session.tls_started();
    assert!(session.user().is_none());
    let (_, out) = feed(&mut session, b"EHLO c\r\nMAIL FROM:<alice@example.com>\r\n");
    assert!(out.contains("250 AUTH PLAIN LOGIN\r\n"), "{out}");
    assert!(
        out.ends_with("530 5.7.0 Authentication required\r\n"),
        "{out}"
    );
}

/// RFC 5322 §3.6 allows exactly one From field and at most one Sender;
/// §4.5 lets a field name be followed by white space before the colon.
/// Caught: `From : ceo@example.com` beside a genuine From passed the
/// policy, and a Sender: field was never looked at.
#[test]
fn the_policy_sees_every_from_field_and_the_sender_field() {
    let refused = |headers: &str| {
        let mut session = logged_in(alice());
        let input = format!(
            "MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@c.d>\r\nDATA\r\n{headers}\r\nx\r\n.\r\n"
        );
        let (step, out) = feed(&mut session, input.as_bytes());
        match step {
            Step::NeedMore => out.lines().last().unwrap().to_owned(),
            Step::Relay(_) => "relayed".to_owned(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        refused("From : ceo@example.com\r\nFrom: alice@example.com\r\n"),
        "554 5.6.0 The message has 2 From: fields; RFC 5322 allows exactly one"
    );
    assert_eq!(
        refused("From\t: ceo@example.com\r\n"),
        "553 5.7.1 From: address not owned by the authenticated user"
    );
    assert_eq!(
        refused("From: alice@example.com\r\nSender: ceo@example.com\r\n"),
        "553 5.7.1 Sender: address not owned by the authenticated user"
    );
    assert_eq!(
        refused("From: alice@example.com\r\nSender: alice@example.com, ceo@example.com\r\n"),
        "554 5.6.0 The Sender: field must appear at most once and name one mailbox"
    );
    assert_eq!(
        refused("From: \"alice@example.com\"@evil.example\r\n"),
        "553 5.7.1 The From: field cannot be parsed"
    );
    assert_eq!(
        refused("FROM :\r\n Alice\r\n <ALICE@example.com>\r\nsender: alice@example.com\r\n"),
        "relayed"
    );
}

/// Found by the `submission_session` fuzz target: smtp-proto's streaming
/// receiver, on `RCPT TO` or `MAIL FROM` without a colon, read on into the
/// next line and swallowed the command there without a reply.
#[test]
fn every_pipelined_line_gets_its_own_reply() {
    let mut session = logged_in(alice());
    let (step, out) = feed(
        &mut session,
        b"MAIL FROM\r\nNOOP\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO\r\nRSET\r\n",
    );
    assert!(matches!(step, Step::NeedMore), "{step:?}");
    assert_eq!(
        out,
        "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n250 2.0.0 OK\r\n\
         250 2.1.0 Sender OK\r\n501 5.5.4 Syntax: RCPT TO:<address>\r\n250 2.0.0 Reset\r\n"
    );
    // The same line alone (after RSET: outside a transaction), then the
    // next command in a later read.
    let (step, out) = feed(&mut session, b"RCPT TO\r\n");
    assert!(matches!(step, Step::NeedMore), "{step:?}");
    assert_eq!(out, "503 5.5.1 MAIL first\r\n");
    let (_, out) = feed(&mut session, b"NOOP\r\n");
    assert_eq!(out, "250 2.0.0 OK\r\n");
}

/// Found by the `submission_session` fuzz target: smtp-proto's
/// `DataReceiver` ended the message at `.\r\r\n`, then read the rest of
/// the message as commands.
#[test]
fn a_dot_line_with_more_crs_does_not_end_the_message() {
    let mut session = logged_in(Senders::Any);
    let (step, out) = feed(
        &mut session,
        b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@c.d>\r\nDATA\r\nx\r\n.\r\r\nRSET\r\n.\r\n",
    );
    assert!(matches!(step, Step::NeedMore), "{step:?}");
    assert_eq!(
        out,
        "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
         354 Start mail input; end with <CRLF>.<CRLF>\r\n\
         554 5.6.0 Bare CR or LF in the message: lines must end with CRLF\r\n"
    );
}

/// A message of exactly `max_message_size` octets is relayed, wherever
/// the reads split its end line: smtp-proto's `DataReceiver` kept the CR
/// of `.\r\n` as text until the LF came, so a read ending between them
/// counted it against the limit and the message got 552.
#[test]
fn a_message_of_exactly_the_limit_is_relayed_whatever_the_split() {
    let mut message = b"From: alice@example.com\r\n\r\n".to_vec();
    message.resize(98, b'x');
    message.extend_from_slice(b"\r\n.\r\n");
    for cut in 0..message.len() {
        let mut session = logged_in(alice());
        feed(
            &mut session,
            b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@c.d>\r\nDATA\r\n",
        );
        let (step, out) = feed(&mut session, &message[..cut]);
        assert!(matches!(step, Step::NeedMore), "{cut}: {step:?} {out}");
        let (step, out) = feed(&mut session, &message[cut..]);
        let Step::Relay(transaction) = step else {
            panic!("{cut}: {step:?} {out}");
        };
        assert_eq!(transaction.data.len(), 100);
    }
}

/// Found by the `submission_session` fuzz target: a refused message ended
/// `advance` with `NeedMore` while commands pipelined after it were still
/// unread, and the driver then waited for the client's next bytes, so a
/// client waiting for their replies waited for the idle timeout. The
/// session stops at the message's end (the protocol log shows the commands
/// after it a line at a time), leaving them unread; the driver hands them
/// over before it reads again, so they are answered with the refusal.
#[test]
fn commands_pipelined_after_a_refused_message_are_answered_at_once() {
    for body in [
        &b"From: ceo@example.com\r\n\r\nx\r\n.\r\n"[..],
        b"From: alice@example.com\r\n\r\nbare\nLF\r\n.\r\n",
        &[
            &b"From: alice@example.com\r\n\r\n"[..],
            &[b'x'; 200],
            b"\r\n.\r\n",
        ]
        .concat(),
    ] {
        let mut session = logged_in(alice());
        feed(
            &mut session,
            b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@c.d>\r\nDATA\r\n",
        );
        let input = [body, b"RSET\r\nQUIT\r\n"].concat();
        let mut out = Vec::new();
        let mut bytes = input.iter();
        let step = session.advance(&mut bytes, &mut out);
        assert!(matches!(step, Step::NeedMore), "{step:?}");
        assert_eq!(bytes.as_slice(), b"RSET\r\nQUIT\r\n");
        let step = session.advance(&mut bytes, &mut out);
        assert!(matches!(step, Step::Close), "{step:?}");
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.ends_with("250 2.0.0 Reset\r\n221 2.0.0 Bye\r\n"),
            "{out}"
        );
    }
}

#[test]
fn upstream_refusals_keep_their_code_and_text() {
    let mut session = logged_in(Senders::Any);
    let mut out = Vec::new();
    session.relayed(
        RelayOutcome::Permanent(550, "5.1.1 no such user".into()),
        &mut out,
    );
    session.relayed(RelayOutcome::Temporary("try later".into()), &mut out);
    session.relayed(
        RelayOutcome::Temporary("4.3.0 MTA deferred".into()),
        &mut out,
    );
    session.relayed(
        RelayOutcome::Temporary("5.1.1 not a temporary code".into()),
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "550 5.1.1 Upstream refused: no such user\r\n\
         451 4.4.1 try later\r\n\
         451 4.3.0 MTA deferred\r\n\
         451 4.4.1 5.1.1 not a temporary code\r\n"
    );
}

#[test]
fn overlong_lines_and_repeated_errors_close_the_session() {
    let mut session = Session::new(options(false));
    let mut line = b"NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 5000));
    let (step, out) = feed(&mut session, &line[..3000]);
    assert!(matches!(step, Step::NeedMore), "{step:?} {out:?}");
    let (step, out) = feed(&mut session, &line[3000..]);
    assert!(matches!(step, Step::Close), "{step:?} {out:?}");
    assert_eq!(out, "500 5.5.6 Command line too long, closing\r\n");
    let mut session = Session::new(options(false));
    let (step, out) = feed(&mut session, &b"XYZZY\r\n".repeat(20));
    assert!(matches!(step, Step::Close), "{step:?}");
    assert!(
        out.ends_with("421 4.7.0 Too many errors, closing\r\n"),
        "{out}"
    );
}

/// What [`drive`] saw: the replies, the messages relayed (recipients and
/// data) and what the protocol log showed, `C:` and `S:` lines in order.
type Driven = (Vec<u8>, Vec<(String, Vec<u8>)>, Vec<String>);

/// Runs a future that never waits, as reading from a slice never does.
fn now<F: std::future::Future>(future: F) -> F::Output {
    let waker = std::task::Waker::noop();
    match std::pin::pin!(future).poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("reading from a slice waited"),
    }
}

/// Drives a session over `chunks` as the connection driver does: each chunk
/// read into a [`LineBuffer`], the session handed a line at a time while it
/// reads lines and everything while it reads message text, the protocol
/// log's [`Tap`] shown each call (every login succeeds, every relay is
/// accepted).
fn drive(chunks: &[&[u8]]) -> Driven {
    let mut session = Session::new(options(true));
    let mut tap = Tap::new("submission", [192, 0, 2, 1].into(), KEYWORDS);
    let mut input = LineBuffer::new(MAX_LINE + 64 * 1024);
    let mut out = Vec::new();
    let mut relayed = Vec::new();
    let mut shown = Vec::new();
    for chunk in chunks {
        let mut reader = *chunk;
        while !reader.is_empty() {
            now(input.fill(&mut reader, 64 * 1024)).unwrap();
            loop {
                let len = match session.reading() {
                    Reading::MessageText => Some(input.pending().len()).filter(|&n| n > 0),
                    _ => input.line_end(MAX_LINE),
                };
                let Some(len) = len else { break };
                let before = session.reading();
                let mark = out.len();
                let mut bytes = input.pending()[..len].iter();
                let step = session.advance(&mut bytes, &mut out);
                let used = len - bytes.as_slice().len();
                let after = session.reading();
                let given = &input.pending()[..used];
                shown.extend(tap.show(before, given, after, &out[mark..]));
                input.consume(used);
                let mark = out.len();
                match step {
                    Step::NeedMore => {}
                    Step::Close => {
                        shown.extend(texts(&out[mark..]));
                        return (out, relayed, strings(shown));
                    }
                    Step::StartTls => session.tls_started(),
                    Step::Authenticate(credentials) => {
                        session.authenticated(credentials.user, Senders::Any, &mut out)
                    }
                    Step::CheckRecipient(address) => {
                        session.recipient_checked(address, RecipientCheck::Accepted, &mut out);
                    }
                    Step::Relay(transaction) => {
                        let to = transaction.to.iter().map(|a| a.to_string()).collect();
                        relayed.push((to, transaction.data));
                        session.relayed(RelayOutcome::Accepted, &mut out);
                    }
                }
                shown.extend(texts(&out[mark..]));
            }
        }
    }
    (out, relayed, strings(shown))
}

fn texts(output: &[u8]) -> Vec<crate::protocol_log::Shown> {
    crate::protocol_log::replies(output).collect()
}

fn strings(shown: Vec<crate::protocol_log::Shown>) -> Vec<String> {
    shown.iter().map(ToString::to_string).collect()
}

const SCRIPT: &[u8] = b"EHLO c\r\nAUTH LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\n\
MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.y>\r\nDATA\r\n\
From: alice@example.com\r\n\r\n..a\r\n.\r\n\
MAIL FROM:<alice@example.com>\r\nRCPT TO:<c@x.y>\r\nDATA\r\nline\r\n.\r\nQUIT\r\n";

proptest::proptest! {
    #[test]
    fn any_split_of_the_input_gives_the_same_session(cuts in proptest::collection::vec(0..SCRIPT.len(), 0..12)) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(&SCRIPT[start..cut]);
            start = cut;
        }
        chunks.push(&SCRIPT[start..]);
        let (whole_out, whole_relayed, whole_shown) = drive(&[SCRIPT]);
        let (out, relayed, shown) = drive(&chunks);
        proptest::prop_assert_eq!(&out, &whole_out);
        proptest::prop_assert_eq!(&relayed, &whole_relayed);
        proptest::prop_assert_eq!(&shown, &whole_shown);
        proptest::prop_assert_eq!(shown.iter().filter(|l| l.starts_with("C: ")).count(), 13);
        proptest::prop_assert_eq!(relayed.len(), 2);
        proptest::prop_assert_eq!(&relayed[0].1, &b"From: alice@example.com\r\n\r\n.a\r\n".to_vec());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_get_bounded_answers(
        prefix in proptest::sample::select(vec![&b""[..], b"EHLO c\r\nAUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n"]),
        noise in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..2048),
    ) {
        let mut input = prefix.to_vec();
        input.extend_from_slice(&noise);
        let (out, relayed, shown) = drive(&[&input]);
        proptest::prop_assert!(out.len() <= 1024 + 100 * (input.len() + 1));
        proptest::prop_assert!(shown.iter().all(|text| !text.contains("AGEAYg")));
        for (_, data) in relayed {
            proptest::prop_assert!(!message::bare_line_break(&data));
        }
    }
}

/// The session classifies what it reads as the protocol log needs it, and
/// the log built on that (the connection core's tap) shows commands and
/// replies in order, but no secret and no message text. Caught, before the
/// tap: POP3 logged no replies at all, and submission kept notes of what it
/// heard, with output offsets, inside its pure session.
#[test]
fn the_protocol_log_shows_commands_and_replies_in_order_but_no_secret() {
    let input: &[u8] = b"EHLO client\r\nAUTH LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\n\
        AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nc3RyYXkgc2VjcmV0\r\n\
        MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n\
        DATA\r\nSubject: private\r\n\r\ntext\r\n.\r\n\
        BDAT 10 LAST\r\nRSET\r\nXY\r\nQUIT\r\n";
    let (_, relayed, shown) = drive(&[input]);
    assert_eq!(relayed.len(), 1);
    assert_eq!(
        shown,
        [
            "C: EHLO client",
            "S: 250-mail.example.com",
            "S: 250-PIPELINING",
            "S: 250-SIZE 100",
            "S: 250-8BITMIME",
            "S: 250-ENHANCEDSTATUSCODES",
            "S: 250 AUTH PLAIN LOGIN",
            "C: AUTH LOGIN",
            "S: 334 VXNlcm5hbWU6",
            "C: <SASL response redacted>",
            "S: 334 UGFzc3dvcmQ6",
            "C: <SASL response redacted>",
            "S: 235 2.7.0 Authentication successful",
            "C: AUTH PLAIN <redacted>",
            "S: 503 5.5.1 Already authenticated",
            "C: <unrecognized command, 18 octets>",
            "S: 500 5.5.2 Command not recognized",
            "C: MAIL FROM:<alice@example.com>",
            "S: 250 2.1.0 Sender OK",
            "C: RCPT TO:<bob@example.org>",
            "S: 250 2.1.5 Recipient OK",
            "C: DATA",
            "S: 354 Start mail input; end with <CRLF>.<CRLF>",
            "C: <message, 29 octets>",
            "S: 250 2.0.0 Message accepted for delivery",
            "C: BDAT 10 LAST",
            "S: 502 5.5.1 Command not implemented",
            "C: <message, 10 octets>",
            "C: QUIT",
            "S: 221 2.0.0 Bye",
        ]
    );
}

#[test]
fn the_session_says_what_it_reads() {
    let mut session = Session::new(options(true));
    assert_eq!(session.reading(), Reading::Command);
    feed(&mut session, b"EHLO c\r\nAUTH LOGIN\r\n");
    assert_eq!(session.reading(), Reading::SecretResponse);
    let mut session = logged_in(Senders::Any);
    feed(
        &mut session,
        b"MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n",
    );
    assert_eq!(session.reading(), Reading::MessageText);
    feed(&mut session, b"x\r\n");
    assert_eq!(session.reading(), Reading::MessageText);
    feed(&mut session, b".\r\n");
    assert_eq!(session.reading(), Reading::Command);
    feed(&mut session, b"BDAT 4\r\n");
    assert_eq!(session.reading(), Reading::MessageText);
    let (step, _) = feed(&mut session, b"abcdNOOP\r\n");
    assert!(matches!(step, Step::NeedMore));
    assert_eq!(session.reading(), Reading::Command);
}

/// A command line is at most 4096 octets, CRLF included, however the
/// client's bytes were split. Caught: smtp-proto bounds only the lines it
/// has to buffer, so a 5,000-octet line that arrived in one read was
/// parsed, while the same line in 2 KiB reads closed the session.
#[test]
fn a_command_line_is_bounded_however_it_arrives() {
    let line = |len: usize| {
        let mut line = b"NOOP ".to_vec();
        line.resize(len - 2, b'x');
        line.extend_from_slice(b"\r\n");
        line
    };
    for (len, taken) in [(4096, true), (4097, false), (5000, false)] {
        let line = line(len);
        for cut in [len, 2048, 1] {
            let mut session = Session::new(options(false));
            let mut out = Vec::new();
            let mut step = Step::NeedMore;
            for piece in line.chunks(cut) {
                step = session.advance(&mut piece.iter(), &mut out);
                if !matches!(step, Step::NeedMore) {
                    break;
                }
            }
            let out = String::from_utf8(out).unwrap();
            if taken {
                assert!(matches!(step, Step::NeedMore), "{len} in {cut}: {step:?}");
                assert_eq!(out, "250 2.0.0 OK\r\n", "{len} in {cut}");
            } else {
                assert!(matches!(step, Step::Close), "{len} in {cut}: {step:?}");
                assert_eq!(out, "500 5.5.6 Command line too long, closing\r\n");
            }
        }
    }
}

#[test]
fn the_logged_keywords_are_commands_smtp_proto_knows() {
    for keyword in KEYWORDS.iter().chain(&["XYZZY", "PASS", "AGFsaWNl"]) {
        let line = format!("{keyword}\r\n");
        let known = !matches!(
            Request::parse(&mut line.as_bytes().iter()),
            Err(ParseError::UnknownCommand)
        );
        assert_eq!(known, KEYWORDS.contains(keyword), "{keyword}");
    }
}

/// Drives `input` through a session that checks recipients, answering each
/// check with `check(address)`; returns the replies and the recipients of
/// the first message relayed.
fn with_checks(
    input: &[u8],
    check: impl Fn(&str) -> RecipientCheck,
) -> (String, Option<Vec<String>>) {
    let mut session = logged_in(Senders::Any);
    session.options.check_recipients = true;
    session.options.max_recipients = 100;
    let mut out = Vec::new();
    let mut bytes = input.iter();
    let relayed = loop {
        match session.advance(&mut bytes, &mut out) {
            Step::CheckRecipient(address) => {
                let verdict = check(address.as_str());
                if session.recipient_checked(address, verdict, &mut out) {
                    break None;
                }
            }
            Step::Relay(transaction) => {
                break Some(transaction.to.iter().map(|a| a.to_string()).collect());
            }
            Step::NeedMore | Step::Close => break None,
            step => panic!("unexpected {step:?}"),
        }
    };
    (String::from_utf8(out).unwrap(), relayed)
}

#[test]
fn recipients_are_checked_at_rcpt_and_only_accepted_ones_get_the_message() {
    let (out, relayed) = with_checks(
        b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@x.y>\r\nRCPT TO:<ghost@x.y>\r\n\
          RCPT TO:<busy@x.y>\r\nDATA\r\nhi\r\n.\r\n",
        |address| match address {
            "ghost@x.y" => RecipientCheck::Unknown,
            "busy@x.y" => RecipientCheck::Unavailable,
            _ => RecipientCheck::Accepted,
        },
    );
    assert_eq!(
        out,
        "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n\
         550 5.1.1 No such local mailbox\r\n\
         451 4.3.0 Cannot look up the recipient now, try again later\r\n\
         354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    );
    assert_eq!(relayed, Some(vec!["bob@x.y".to_string()]));
}

#[test]
fn probing_for_user_names_ends_the_session() {
    let mut input = b"MAIL FROM:<alice@example.com>\r\n".to_vec();
    for n in 0..20 {
        input.extend_from_slice(format!("RCPT TO:<guess{n}@x.y>\r\n").as_bytes());
    }
    let (out, relayed) = with_checks(&input, |_| RecipientCheck::Unknown);
    assert_eq!(relayed, None);
    assert_eq!(out.matches("550 5.1.1").count(), 10, "{out}");
    assert!(
        out.ends_with("421 4.7.0 Too many errors, closing\r\n"),
        "{out}"
    );
}
