//! `protocol_log = true`: every command and every reply line is logged, for
//! POP3 and submission alike, and neither the password, nor its base64, nor
//! the message text ever appears in the log.

use base64::Engine as _;

use crate::harness::{Options, Server, PASSWORD};
use crate::smtp_harness::{plain, submission_addr, Smtp};

const SUBJECT: &str = "Subject: quarterly figures 7d1f";
const BODY: &str = "body text 9c2e";

/// The protocol log lines of `service`, without time, level and fields.
fn transcript(log: &str, service: &str) -> Vec<String> {
    let fields = format!(" service=\"{service}\" rip=127.0.0.1");
    log.lines()
        .filter_map(|line| line.strip_suffix(&fields))
        .filter_map(|line| line.split_once(" INFO ").map(|(_, text)| text.to_string()))
        .collect()
}

#[test]
fn the_protocol_logs_show_commands_and_replies_but_no_secret() {
    let server = Server::with(Options {
        pop3: vec!["protocol_log = true".into()],
        submission: Some(vec![
            "relay = \"maildir\"".into(),
            "protocol_log = true".into(),
        ]),
        ..Options::default()
    });
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);

    let smtp = Smtp::connect(submission_addr(&server), None);
    let mut smtp = smtp.starttls(server.client_config());
    smtp.cmd("EHLO client.test");
    assert_eq!(smtp.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6");
    assert_eq!(smtp.cmd(&b64("alice")), "334 UGFzc3dvcmQ6");
    assert_eq!(
        smtp.cmd(&b64(PASSWORD)),
        "235 2.7.0 Authentication successful"
    );
    let message = format!("From: alice@localhost\r\n{SUBJECT}\r\n\r\n{BODY}\r\n");
    assert_eq!(
        smtp.send_message("alice@localhost", &["bob@localhost"], message.as_bytes()),
        "250 2.0.0 Message accepted for delivery"
    );
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 Bye");

    let mut smtp = Smtp::connect(submission_addr(&server), None);
    smtp.cmd("EHLO client.test");
    // Refused before TLS; a client that then sends its response anyway
    // must not have it logged as a command.
    let refused = smtp.cmd(&format!("AUTH PLAIN {}", plain("alice", PASSWORD)));
    assert!(refused.starts_with("538 "), "{refused}");
    assert!(smtp.cmd(&b64(PASSWORD)).starts_with("500 "));
    smtp.cmd("QUIT");

    let mut pop3 = server.connect_tls();
    pop3.ok("USER alice");
    pop3.ok(&format!("PASS {PASSWORD}"));
    pop3.ok("QUIT");
    let mut pop3 = server.connect_tls();
    pop3.ok(&format!("AUTH PLAIN {}", plain("alice", PASSWORD)));
    pop3.ok("QUIT");

    // Log lines are written asynchronously: wait for the last one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while transcript(&server.log(), "pop3").len() < 12 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = server.log();
    let submission = transcript(&log, "submission");
    let ehlo_reply = [
        "S: 250-localhost",
        "S: 250-PIPELINING",
        "S: 250-SIZE 36700160",
        "S: 250-8BITMIME",
        "S: 250-ENHANCEDSTATUSCODES",
    ];
    // The octets the client sent as message text: the final "." line too.
    let message_size = format!("C: <message, {} octets>", message.len() + 3);
    let unrecognized = format!(
        "C: <unrecognized command, {} octets>",
        b64(PASSWORD).len() + 2
    );
    let mut expected = vec![
        "S: 220 localhost ESMTP popgate ready",
        "C: STARTTLS",
        "S: 220 2.0.0 Ready to start TLS",
        "C: EHLO client.test",
    ];
    expected.extend(ehlo_reply);
    expected.extend([
        "S: 250 AUTH PLAIN LOGIN",
        "C: AUTH LOGIN",
        "S: 334 VXNlcm5hbWU6",
        "C: <SASL response redacted>",
        "S: 334 UGFzc3dvcmQ6",
        "C: <SASL response redacted>",
        "S: 235 2.7.0 Authentication successful",
        "C: MAIL FROM:<alice@localhost>",
        "S: 250 2.1.0 Sender OK",
        "C: RCPT TO:<bob@localhost>",
        "S: 250 2.1.5 Recipient OK",
        "C: DATA",
        "S: 354 Start mail input; end with <CRLF>.<CRLF>",
        &message_size,
        "S: 250 2.0.0 Message accepted for delivery",
        "C: QUIT",
        "S: 221 2.0.0 Bye",
        // The second session, without TLS.
        "S: 220 localhost ESMTP popgate ready",
        "C: EHLO client.test",
    ]);
    expected.extend(ehlo_reply);
    expected.extend([
        "S: 250 STARTTLS",
        "C: AUTH PLAIN <redacted>",
        "S: 538 5.7.11 Encryption required: use STARTTLS first",
        &unrecognized,
        "S: 500 5.5.2 Command not recognized",
        "C: QUIT",
        "S: 221 2.0.0 Bye",
    ]);
    assert_eq!(submission, expected, "{log}");
    let pop3 = transcript(&log, "pop3");
    assert_eq!(
        pop3,
        [
            "S: +OK popgate ready",
            "C: USER alice",
            "S: +OK Send your password",
            "C: PASS <redacted>",
            "S: +OK Logged in, 0 messages (0 octets)",
            "C: QUIT",
            "S: +OK Logging out, 0 messages deleted",
            "S: +OK popgate ready",
            "C: AUTH PLAIN <redacted>",
            "S: +OK Logged in, 0 messages (0 octets)",
            "C: QUIT",
            "S: +OK Logging out, 0 messages deleted",
        ],
        "{log}"
    );

    for secret in [
        PASSWORD.to_string(),
        b64(PASSWORD),
        plain("alice", PASSWORD),
        SUBJECT.to_string(),
        BODY.to_string(),
    ] {
        assert!(!log.contains(&secret), "{secret:?} logged:\n{log}");
    }
}

/// The POP3 log shows every reply's status line, RETR's and LIST's too,
/// but never what the driver streams after it: message bodies and
/// listings. Caught: the POP3 log showed no reply at all.
#[test]
fn pop3_status_lines_are_logged_but_never_bodies_or_listings() {
    let server = Server::with(Options {
        pop3: vec!["protocol_log = true".into()],
        ..Options::default()
    });
    let message = format!("{SUBJECT}\n\n{BODY}\n");
    let name = crate::harness::deliver(&server.maildir("alice"), 1_700_000_000, message.as_bytes());
    let uidl = name.split(':').next().unwrap().to_owned();
    let size = crate::harness::crlf(message.as_bytes()).len();
    let mut pop3 = server.login("alice");
    let (status, _) = pop3.retrieve("RETR 1");
    let (_, listing) = pop3.multi("UIDL");
    assert_eq!(listing, [format!("1 {uidl}")]);
    pop3.ok("QUIT");

    let expected_last = "S: +OK Logging out, 0 messages deleted";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server.log().contains(expected_last) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = server.log();
    let pop3 = transcript(&log, "pop3");
    assert_eq!(
        pop3,
        [
            "S: +OK popgate ready".to_owned(),
            "C: USER alice".to_owned(),
            "S: +OK Send your password".to_owned(),
            "C: PASS <redacted>".to_owned(),
            format!("S: +OK Logged in, 1 messages ({size} octets)"),
            "C: RETR 1".to_owned(),
            format!("S: {status}"),
            "C: UIDL".to_owned(),
            "S: +OK Unique-ID listing follows".to_owned(),
            "C: QUIT".to_owned(),
            expected_last.to_owned(),
        ],
        "{log}"
    );
    for secret in [SUBJECT, BODY, uidl.as_str()] {
        assert!(!log.contains(secret), "{secret:?} logged:\n{log}");
    }
}
