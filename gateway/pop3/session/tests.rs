//! The POP3 session, driven line by line as a client would.

use super::*;
use crate::login::LoginRefusal;
use crate::pop3::maildrop::MessageInfo;

fn options(tls: bool) -> SessionOptions {
    SessionOptions {
        stls_available: !tls,
        tls,
        plaintext_login: false,
        max_command_size: 512,
    }
}

fn mailbox() -> Vec<MessageInfo> {
    vec![
        MessageInfo {
            uidl: "a1".into(),
            size: 100,
        },
        MessageInfo {
            uidl: "b2".into(),
            size: 20,
        },
    ]
}

/// Feeds one line and returns the response text and the step.
fn send(session: &mut Session<Vec<MessageInfo>>, line: &str) -> (String, Next<Vec<MessageInfo>>) {
    let mut out = Vec::new();
    let next = session.handle_line(line.as_bytes(), &mut out);
    (String::from_utf8(out).unwrap(), next)
}

fn logged_in() -> Session<Vec<MessageInfo>> {
    let mut session = Session::new(options(true));
    let mut out = Vec::new();
    session.logged_in(mailbox(), &mut out);
    assert_eq!(out, b"+OK Logged in, 2 messages (120 octets)\r\n");
    session
}

fn listing(session: &Session<Vec<MessageInfo>>, kind: Listing, budget: usize) -> String {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let limit = out.len() + budget;
        let Some(next) = session.write_listing(kind, from, &mut out, limit) else {
            break;
        };
        assert!(next > from || budget == 0, "listing must progress");
        from = next;
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn no_credentials_before_tls_under_secure_login() {
    let mut session: Session<Vec<MessageInfo>> = Session::new(options(false));
    for line in ["USER alice", "PASS x", "AUTH PLAIN AGFsaWNlAHg="] {
        let (text, next) = send(&mut session, line);
        assert!(
            text.starts_with("-ERR [AUTH] Plaintext authentication disallowed"),
            "{text}"
        );
        assert!(matches!(next, Next::Continue));
    }
    let (text, _) = send(&mut session, "CAPA");
    assert!(text.contains("\r\nSTLS\r\n") && !text.contains("USER") && !text.contains("SASL"));
    let (text, next) = send(&mut session, "STLS");
    assert_eq!(text, "+OK Begin TLS negotiation\r\n");
    assert!(matches!(next, Next::StartTls));
    session.tls_started();
    let (text, _) = send(&mut session, "CAPA");
    assert!(
        !text.contains("STLS")
            && text.contains("\r\nUSER\r\n")
            && text.contains("SASL PLAIN LOGIN")
    );
    let (text, _) = send(&mut session, "STLS");
    assert_eq!(text, "-ERR Already using TLS\r\n");
}

#[test]
fn user_pass_yields_credentials_and_a_refusal_forgets_the_user() {
    let mut session: Session<Vec<MessageInfo>> = Session::new(options(true));
    assert_eq!(
        send(&mut session, "PASS x").0,
        "-ERR No user name given; send USER first\r\n"
    );
    assert_eq!(
        send(&mut session, "USER ../etc").0,
        "-ERR [AUTH] Invalid user name\r\n"
    );
    assert_eq!(
        send(&mut session, "USER alice").0,
        "+OK Send your password\r\n"
    );
    match send(&mut session, "PASS secret words").1 {
        Next::Authenticate(c) => {
            assert_eq!(c.user, "alice");
            assert_eq!(c.password.expose(), "secret words");
        }
        other => panic!("{other:?}"),
    }
    let mut out = Vec::new();
    session.login_refused(LoginRefusal::Credentials { close: false }, &mut out);
    assert_eq!(out, b"-ERR [AUTH] Authentication failed\r\n");
    assert!(send(&mut session, "PASS again")
        .0
        .starts_with("-ERR No user name"));
}

#[test]
fn sasl_plain_and_login_in_both_forms() {
    let mut session: Session<Vec<MessageInfo>> = Session::new(options(true));
    // "\0alice\0pw"
    let (_, next) = send(&mut session, "AUTH PLAIN AGFsaWNlAHB3");
    assert!(
        matches!(next, Next::Authenticate(c) if c.user == "alice" && c.password.expose() == "pw")
    );
    assert_eq!(send(&mut session, "AUTH PLAIN").0, "+ \r\n");
    assert!(session.in_sasl_exchange());
    let (_, next) = send(&mut session, "AGFsaWNlAHB3");
    assert!(matches!(next, Next::Authenticate(c) if c.user == "alice"));
    assert_eq!(send(&mut session, "AUTH LOGIN").0, "+ VXNlcm5hbWU6\r\n");
    assert_eq!(send(&mut session, "YWxpY2U=").0, "+ UGFzc3dvcmQ6\r\n");
    let (_, next) = send(&mut session, "cHc=");
    assert!(
        matches!(next, Next::Authenticate(c) if c.user == "alice" && c.password.expose() == "pw")
    );
    assert_eq!(
        send(&mut session, "AUTH LOGIN YWxpY2U=").0,
        "+ UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(
        send(&mut session, "*").0,
        "-ERR Authentication cancelled\r\n"
    );
    assert!(!session.in_sasl_exchange());
    assert!(send(&mut session, "AUTH PLAIN !!!").0.starts_with("-ERR"));
    assert_eq!(
        send(&mut session, "AUTH CRAM-MD5").0,
        "-ERR Unsupported authentication mechanism\r\n"
    );
    assert_eq!(
        send(&mut session, "AUTH").0,
        "+OK Supported mechanisms follow\r\nPLAIN\r\nLOGIN\r\n.\r\n"
    );
}

/// AUTH LOGIN is one exchange whether the user comes with the command or
/// after the prompt: a malformed name is refused at once, either way, and
/// a `*` cancels wherever it comes.
#[test]
fn auth_login_refuses_a_malformed_name_in_both_forms() {
    let mut session: Session<Vec<MessageInfo>> = Session::new(options(true));
    // "a b"
    assert_eq!(
        send(&mut session, "AUTH LOGIN YSBi").0,
        "-ERR [AUTH] Invalid user name\r\n"
    );
    assert!(!session.in_sasl_exchange());
    assert_eq!(send(&mut session, "AUTH LOGIN").0, "+ VXNlcm5hbWU6\r\n");
    assert_eq!(
        send(&mut session, "YSBi").0,
        "-ERR [AUTH] Invalid user name\r\n"
    );
    assert!(!session.in_sasl_exchange());
    for cancel in ["AUTH LOGIN *", "AUTH PLAIN *"] {
        assert_eq!(
            send(&mut session, cancel).0,
            "-ERR Authentication cancelled\r\n"
        );
    }
}

/// RFC 3206 §4 / RFC 5034: acting as another user (an authzid that is
/// not the authcid) is a credentials failure, `-ERR [AUTH]`; a response
/// that does not decode stays a plain `-ERR`. Caught: it was a plain
/// `-ERR`, which clients do not read as "wrong credentials".
#[test]
fn acting_as_another_user_gets_the_auth_code() {
    let mut session: Session<Vec<MessageInfo>> = Session::new(options(true));
    // "bob\0alice\0pw"
    let refused = "-ERR [AUTH] acting as another user is not supported\r\n";
    assert_eq!(send(&mut session, "AUTH PLAIN Ym9iAGFsaWNlAHB3").0, refused);
    assert_eq!(send(&mut session, "AUTH PLAIN").0, "+ \r\n");
    assert_eq!(send(&mut session, "Ym9iAGFsaWNlAHB3").0, refused);
    assert_eq!(
        send(&mut session, "AUTH PLAIN !!!").0,
        "-ERR the SASL response is not valid base64\r\n"
    );
}

/// Every login refusal, exactly as a POP3 client reads it: the code it
/// acts on (`[AUTH]` asks for the password again, `[IN-USE]` and
/// `[SYS/TEMP]` mean later, `[SYS/PERM]` never) and the text. The driver
/// used to write these itself, apart from the session's own replies.
#[test]
fn every_login_refusal_has_its_code_and_text() {
    for (refusal, expected) in [
        (
            LoginRefusal::Credentials { close: false },
            "-ERR [AUTH] Authentication failed\r\n",
        ),
        (
            LoginRefusal::Credentials { close: true },
            "-ERR [AUTH] Authentication failed\r\n",
        ),
        (
            LoginRefusal::Disabled,
            "-ERR [SYS/PERM] POP3 access is disabled for this mailbox\r\n",
        ),
        (
            LoginRefusal::Unavailable,
            "-ERR [SYS/TEMP] Authentication is temporarily unavailable\r\n",
        ),
        (
            LoginRefusal::TooManySessions,
            "-ERR [IN-USE] Too many sessions for this user\r\n",
        ),
        (
            LoginRefusal::MailboxLocked,
            "-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n",
        ),
        (
            LoginRefusal::MailboxUnavailable,
            "-ERR [SYS/TEMP] Mailbox is temporarily unavailable\r\n",
        ),
        (
            LoginRefusal::MailboxBroken,
            "-ERR [SYS/PERM] Mailbox cannot be opened\r\n",
        ),
        (
            LoginRefusal::LoginDeadline,
            "-ERR [SYS/TEMP] Login not completed in time, try again later\r\n",
        ),
    ] {
        let mut session: Session<Vec<MessageInfo>> = Session::new(options(true));
        send(&mut session, "USER alice");
        let mut out = Vec::new();
        session.login_refused(refusal, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{refusal:?}");
        // AUTHORIZATION starts over: the user name is forgotten.
        assert!(send(&mut session, "PASS x")
            .0
            .starts_with("-ERR No user name"));
    }
}

#[test]
fn transaction_commands_answer_from_the_snapshot() {
    let mut session = logged_in();
    assert_eq!(send(&mut session, "STAT").0, "+OK 2 120\r\n");
    assert_eq!(send(&mut session, "LIST 2").0, "+OK 2 20\r\n");
    assert_eq!(send(&mut session, "UIDL 1").0, "+OK 1 a1\r\n");
    assert_eq!(
        send(&mut session, "LIST 3").0,
        "-ERR There's no message 3.\r\n"
    );
    assert_eq!(
        send(&mut session, "RETR 0").0,
        "-ERR There's no message 0.\r\n"
    );
    assert!(matches!(
        send(&mut session, "RETR 2").1,
        Next::Retrieve {
            index: 1,
            number: 2,
            size: 20,
            body_lines: None
        }
    ));
    assert!(matches!(
        send(&mut session, "TOP 1 0").1,
        Next::Retrieve {
            index: 0,
            body_lines: Some(0),
            ..
        }
    ));
    assert_eq!(
        send(&mut session, "USER bob").0,
        "-ERR Not allowed after login\r\n"
    );
    assert_eq!(send(&mut session, "NOOP").0, "+OK \r\n");
}

#[test]
fn deleted_messages_disappear_until_rset() {
    let mut session = logged_in();
    assert_eq!(send(&mut session, "DELE 1").0, "+OK Message 1 deleted\r\n");
    assert_eq!(
        send(&mut session, "DELE 1").0,
        "-ERR Message 1 is deleted.\r\n"
    );
    assert_eq!(
        send(&mut session, "RETR 1").0,
        "-ERR Message 1 is deleted.\r\n"
    );
    assert_eq!(send(&mut session, "STAT").0, "+OK 1 20\r\n");
    let (text, next) = send(&mut session, "LIST");
    assert_eq!(text, "+OK 1 messages (20 octets)\r\n");
    assert!(matches!(next, Next::List(Listing::Sizes)));
    assert_eq!(listing(&session, Listing::Sizes, 1 << 20), "2 20\r\n.\r\n");
    assert_eq!(listing(&session, Listing::Uidls, 1 << 20), "2 b2\r\n.\r\n");
    assert_eq!(
        send(&mut session, "RSET").0,
        "+OK 2 messages (120 octets)\r\n"
    );
    assert_eq!(
        listing(&session, Listing::Uidls, 1),
        "1 a1\r\n2 b2\r\n.\r\n"
    );
}

#[test]
fn quit_hands_back_the_deletions_only_from_transaction() {
    let mut session = logged_in();
    send(&mut session, "DELE 2");
    match send(&mut session, "QUIT") {
        (text, Next::Update { mailbox, deleted }) => {
            assert_eq!(text, "");
            assert_eq!(mailbox.len(), 2);
            assert_eq!(deleted, vec![1]);
        }
        other => panic!("{other:?}"),
    }
    let mut session: Session<Vec<MessageInfo>> = Session::new(options(true));
    let (text, next) = send(&mut session, "QUIT");
    assert_eq!(text, "+OK Logging out\r\n");
    assert!(matches!(next, Next::Close));
}

#[test]
fn repeated_garbage_closes_the_connection() {
    let mut session: Session<Vec<MessageInfo>> = Session::new(options(false));
    for _ in 1..MAX_INVALID_BEFORE_LOGIN {
        assert!(matches!(
            send(&mut session, "GET / HTTP/1.1").1,
            Next::Continue
        ));
    }
    let (text, next) = send(&mut session, "GET / HTTP/1.1");
    assert_eq!(text, "-ERR Too many invalid commands, closing.\r\n");
    assert!(matches!(next, Next::Close));
}

#[test]
fn utf8_and_capa_work_in_both_states() {
    let mut session: Session<Vec<MessageInfo>> = Session::new(options(true));
    assert_eq!(send(&mut session, "UTF8").0, "+OK UTF8 enabled\r\n");
    let mut session = logged_in();
    assert_eq!(send(&mut session, "UTF8").0, "+OK UTF8 enabled\r\n");
    let capa = send(&mut session, "CAPA").0;
    assert!(capa.contains("\r\nUSER\r\n") && capa.contains("\r\nEXPIRE NEVER\r\n"));
}
