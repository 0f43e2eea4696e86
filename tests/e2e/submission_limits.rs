//! `[submission] max_connections_per_user`: logged-in submission sessions
//! are counted per user, apart from POP3's sessions, and a login over the
//! limit gets a temporary `454 4.7.0` with the connection left open.

use crate::harness::{Options, Server, PASSWORD};
use crate::smtp_harness::{plain, submission_addr, Smtp};

/// A STARTTLS connection, EHLO done, and the reply to AUTH PLAIN.
fn auth(server: &Server, user: &str, password: &str) -> (Smtp, String) {
    let smtp = Smtp::connect(submission_addr(server), None);
    let mut smtp = smtp.starttls(server.client_config());
    smtp.cmd("EHLO client.test");
    let reply = smtp.cmd(&format!("AUTH PLAIN {}", plain(user, password)));
    (smtp, reply)
}

#[test]
fn submission_sessions_per_user_are_limited_apart_from_pop3() {
    let server = Server::with(Options {
        pop3: vec!["max_connections_per_user = 1".into()],
        submission: Some(vec![
            "relay = \"maildir\"".into(),
            "max_connections_per_user = 1".into(),
        ]),
        ..Options::default()
    });
    let (mut first, reply) = auth(&server, "alice", PASSWORD);
    assert_eq!(reply, "235 2.7.0 Authentication successful");
    // A POP3 poller of the same user is not held back by the sending
    // session, nor the other way round.
    let mut poller = server.login("alice");

    let (mut second, reply) = auth(&server, "alice", PASSWORD);
    assert_eq!(
        reply,
        "454 4.7.0 Too many sessions for this user, try again later"
    );
    assert_eq!(
        second.cmd("MAIL FROM:<alice@localhost>"),
        "530 5.7.0 Authentication required"
    );
    // The limit is told only to someone with the right password.
    let (_, reply) = auth(&server, "alice", "wrong");
    assert_eq!(reply, "535 5.7.8 Authentication credentials invalid");
    // Other users have their own count.
    let (_, reply) = auth(&server, "bob", PASSWORD);
    assert_eq!(reply, "235 2.7.0 Authentication successful");
    let log = server.wait_for_log("submission login refused");
    assert!(
        log.contains("submission login refused: rip=127.0.0.1 user=alice limit=PerUser"),
        "{log}"
    );

    // When the first session ends, its slot is free again.
    assert_eq!(first.cmd("QUIT"), "221 2.0.0 Bye");
    let log = server.wait_for_log("refused=0 end=quit");
    assert!(
        log.contains("user=alice tls=TLSv1_3 accepted=0 refused=0 end=quit"),
        "{log}"
    );
    assert_eq!(
        second.cmd(&format!("AUTH PLAIN {}", plain("alice", PASSWORD))),
        "235 2.7.0 Authentication successful"
    );
    assert!(poller.ok("STAT").starts_with("+OK 0 "));
}
