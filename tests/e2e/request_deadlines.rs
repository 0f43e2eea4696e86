//! Per-request deadlines after login: a logged-in client that trickles a
//! command line or its message text a byte at a time is cut (the idle
//! timeout restarts with every byte, so before these deadlines it held
//! its session, and its per-user slot, for as long as it liked), while a
//! client that is merely slow over a long exchange is not.
//!
//! The servers use a 3 s idle timeout and the clients send a byte every
//! second, so the idle timeout alone never expires; the margins allow for
//! a loaded machine.

use std::time::{Duration, Instant};

use crate::harness::{message_files, Options, Server};
use crate::smtp_harness::{stuff, Smtp};

/// The idle timeout after login the servers are given.
const IDLE: Duration = Duration::from_secs(3);
/// How often a trickling client sends its next byte.
const EVERY: Duration = Duration::from_secs(1);
/// How late a cut may come after its deadline on a loaded machine.
const MARGIN: Duration = Duration::from_secs(5);

/// A server with submission (local delivery) and both idle timeouts at
/// [`IDLE`], plus `submission` lines.
fn server(submission: &[&str]) -> Server {
    let mut lines: Vec<String> = vec![
        "relay = \"maildir\"".into(),
        format!("idle_timeout = \"{}s\"", IDLE.as_secs()),
    ];
    lines.extend(submission.iter().map(|line| line.to_string()));
    lines.push("[submission.addresses]".into());
    lines.push("alice = [\"alice@example.com\"]".into());
    Server::with(Options {
        pop3: vec![format!("idle_timeout = \"{}s\"", IDLE.as_secs())],
        submission: Some(lines),
        ..Options::default()
    })
}

/// A submission client logged in as alice, at DATA's 354.
fn at_data(server: &Server) -> Smtp {
    let mut smtp = Smtp::logged_in(server);
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com>"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<bob@example.org>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        smtp.cmd("DATA"),
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    smtp
}

/// Asserts `closed_after` is `expected`, give or take: never early, at
/// most [`MARGIN`] late.
fn assert_cut_at(closed_after: Option<Duration>, expected: Duration) {
    let Some(after) = closed_after else {
        panic!("never cut (expected after {expected:?})");
    };
    assert!(
        after + Duration::from_millis(300) >= expected && after <= expected + MARGIN,
        "cut after {after:?}, expected {expected:?}"
    );
}

/// A logged-in submission client sending its message a byte a second is
/// cut about [`IDLE`] after DATA (its 3 octets earn 3 ms at the default
/// `min_data_rate` of 1 KiB/s), with `421 4.4.2`, and nothing is relayed.
/// Before: every byte restarted the idle timeout and the client was never
/// cut.
#[test]
fn a_logged_in_submission_client_trickling_data_is_cut_at_its_deadline() {
    let server = server(&[]);
    let mut smtp = at_data(&server);
    let trickled = smtp.trickle(b"From: alice@example.com", EVERY, IDLE + 3 * MARGIN);
    assert_cut_at(trickled.closed_after, IDLE);
    assert_eq!(
        trickled.answer,
        "421 4.4.2 Message text too slow (below the minimum data rate), closing\r\n"
    );
    let log = server.wait_for_log("end=request-timeout");
    assert!(
        log.contains("submission session ended: rip=127.0.0.1 user=alice"),
        "{log}"
    );
    assert!(message_files(&server.maildir("bob")).is_empty());
}

/// The deadline grows with what arrives: at `min_data_rate = 100` a
/// client sending 50 octets a second earns half a second per second, so
/// it is cut when `t = IDLE + t/2`, about 6 s after DATA — not at the
/// idle timeout (a deadline that ignored the octets received), and not
/// never (as before). A client starved on a loaded machine sends fewer
/// octets and is cut sooner, so the lower bound is only clearly past the
/// idle timeout.
#[test]
fn the_data_deadline_grows_by_one_second_per_min_data_rate_octets() {
    let server = server(&["min_data_rate = 100"]);
    let mut smtp = at_data(&server);
    let trickled = smtp.trickle(
        b"Subject: slow\r\n",
        Duration::from_millis(20),
        2 * IDLE + 3 * MARGIN,
    );
    let after = trickled
        .closed_after
        .expect("never cut (expected after about 6 s)");
    assert!(
        after >= IDLE + Duration::from_millis(1500) && after <= 2 * IDLE + MARGIN,
        "cut after {after:?}, expected about {:?}",
        2 * IDLE
    );
    assert!(
        trickled.answer.starts_with("421 4.4.2 "),
        "{}",
        trickled.answer
    );
}

/// A logged-in POP3 client that sends a command line a byte a second is
/// cut [`IDLE`] after the line's first byte, however many bytes keep
/// coming. Before: each byte restarted the idle timeout; an 8 KiB line
/// held the session for hours.
#[test]
fn a_logged_in_pop3_client_trickling_a_command_line_is_cut_from_its_first_byte() {
    let server = server(&[]);
    let mut client = server.login("alice");
    let trickled = client.trickle(b"NOOP", EVERY, IDLE + 3 * MARGIN);
    assert_cut_at(trickled.closed_after, IDLE);
    assert_eq!(
        trickled.answer,
        "-ERR Autologout; command line not completed in time\r\n"
    );
    let log = server.wait_for_log("end=request-timeout");
    assert!(
        log.contains("pop3 session ended: rip=127.0.0.1 user=alice"),
        "{log}"
    );
}

/// A 3 MiB message sent in 64 KiB pieces ten times a second takes longer
/// than the idle timeout in all, and is accepted: the deadline grows with
/// what arrives. And a POP3 client that sends each command in two halves a
/// second apart, for longer than the idle timeout in all, is served: each
/// line has its own deadline. Either would be cut by a deadline counted
/// per message or per session instead of per request and rate.
#[test]
fn clients_slow_over_a_long_exchange_but_not_trickling_are_not_cut() {
    let server = server(&[]);
    let mut smtp = at_data(&server);
    let line = format!("{}\r\n", "x".repeat(1022));
    let mut message =
        b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: big\r\n\r\n".to_vec();
    while message.len() < 3 << 20 {
        message.extend_from_slice(line.as_bytes());
    }
    let started = Instant::now();
    for piece in stuff(&message).chunks(64 * 1024) {
        smtp.send_raw(piece);
        std::thread::sleep(Duration::from_millis(100));
    }
    smtp.send_raw(b".\r\n");
    assert_eq!(smtp.reply(), "250 2.0.0 Message accepted for delivery");
    assert!(started.elapsed() > IDLE, "{:?}", started.elapsed());
    assert_eq!(message_files(&server.maildir("bob")).len(), 1);

    let mut client = server.login("alice");
    let started = Instant::now();
    while started.elapsed() < IDLE + Duration::from_secs(2) {
        client.send_raw(b"NO");
        std::thread::sleep(EVERY);
        assert!(client.cmd("OP").starts_with("+OK"));
    }
    client.ok("QUIT");
}

/// A logged-in client that sends half a command, or starts its message,
/// and then nothing is idle rather than slow: at the idle timeout it
/// hears the idle answer and its summary says `end=timeout`, as before
/// these deadlines (the two coincide then; the request deadline only ever
/// cuts earlier). Would fail if any partial request ended as a request
/// timeout.
#[test]
fn a_client_silent_inside_a_request_is_idle_not_slow() {
    let server = server(&[]);
    let mut client = server.login("alice");
    client.send_raw(b"NO");
    assert_eq!(
        client.read_to_close(),
        "-ERR Autologout; idle for too long\r\n"
    );
    let mut smtp = at_data(&server);
    smtp.send_raw(b"Subject: and then nothing\r\n");
    assert_eq!(smtp.reply(), "421 4.4.2 Idle for too long, closing");
    let log = server.wait_for_log("submission session ended");
    assert_eq!(log.matches("end=timeout").count(), 2, "{log}");
    assert!(!log.contains("end=request-timeout"), "{log}");
}

/// Before login nothing changes: a client trickling `USER alice` is cut at
/// the login deadline (6 s from connect), with its answer, not 3 s (the
/// idle timeouts before and after login) from its first byte. Would fail
/// if the request deadlines applied before login too.
#[test]
fn before_login_the_login_deadline_still_decides() {
    let server = Server::with(Options {
        pop3: vec![
            "preauth_timeout = \"3s\"".into(),
            format!("idle_timeout = \"{}s\"", IDLE.as_secs()),
            "login_deadline = \"6s\"".into(),
        ],
        ..Options::default()
    });
    let mut client = server.connect_tls();
    let trickled = client.trickle(b"USER alice", EVERY, Duration::from_secs(6) + 3 * MARGIN);
    assert_cut_at(trickled.closed_after, Duration::from_secs(6));
    assert_eq!(
        trickled.answer,
        "-ERR [SYS/TEMP] Login not completed in time, try again later\r\n"
    );
    server.wait_for_log("end=login-deadline");
}
