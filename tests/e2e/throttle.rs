//! Brute force against the real binary: failures from one address slow it
//! down and then get it hung up on, while another address is not affected;
//! unknown users cannot be told from wrong passwords by time; and the log
//! lines of failures are what the fail2ban filter in examples/ matches,
//! checked with Debian's fail2ban-regex.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Client, Options, Server, PASSWORD};

fn server(auth: &[&str]) -> Server {
    Server::with(Options {
        auth: auth.iter().map(|l| l.to_string()).collect(),
        ..Options::default()
    })
}

fn from(server: &Server, source: &str) -> Client {
    let source: IpAddr = source.parse().unwrap();
    Client::connect_from(source, server.tls, Some(server.client_config()))
}

/// Sends PASS and returns the answer and how long it took.
fn timed_pass(client: &mut Client, user: &str, password: &str) -> (String, Duration) {
    client.ok(&format!("USER {user}"));
    let started = Instant::now();
    let reply = client.cmd(&format!("PASS {password}"));
    (reply, started.elapsed())
}

#[test]
fn failures_slow_an_address_down_then_close_it_but_not_another_address() {
    let server = server(&[
        "failure_delay = \"100ms\"",
        "max_failure_delay = \"800ms\"",
        "max_failures = 6",
    ]);
    let mut attacker = from(&server, "127.0.0.1");
    let expected_ms = [100, 200, 400, 800, 800];
    let mut took = Vec::new();
    for _ in expected_ms {
        let (reply, elapsed) = timed_pass(&mut attacker, "alice", "guess");
        assert_eq!(reply, "-ERR [AUTH] Authentication failed");
        took.push(elapsed);
    }
    for (elapsed, ms) in took.iter().zip(expected_ms) {
        assert!(*elapsed >= Duration::from_millis(ms), "{took:?}");
    }
    // The growth is real: the first answer came well before the fourth's delay.
    assert!(took[0] < Duration::from_millis(800), "{took:?}");

    // Meanwhile another address gets the base delay only, and logs in.
    let mut other = from(&server, "127.0.0.2");
    let (reply, elapsed) = timed_pass(&mut other, "alice", "typo");
    assert_eq!(reply, "-ERR [AUTH] Authentication failed");
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
    let (reply, _) = timed_pass(&mut other, "alice", PASSWORD);
    assert!(reply.starts_with("+OK"), "{reply}");

    // The sixth failure is answered, then the connection is closed; so is
    // every further failure's connection from that address.
    let (reply, _) = timed_pass(&mut attacker, "alice", "guess");
    assert_eq!(reply, "-ERR [AUTH] Authentication failed");
    assert!(attacker.is_closed_within(Duration::from_secs(10)));
    let mut again = from(&server, "127.0.0.1");
    let (reply, _) = timed_pass(&mut again, "bob", "guess");
    assert_eq!(reply, "-ERR [AUTH] Authentication failed");
    assert!(again.is_closed_within(Duration::from_secs(10)));
    // A right password from the attacker's address is not refused either.
    let mut right = from(&server, "127.0.0.1");
    let (reply, _) = timed_pass(&mut right, "bob", PASSWORD);
    assert!(reply.starts_with("+OK"), "{reply}");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Unknown user and wrong password cost the same: the server checks unknown
/// names against a decoy hash of the same kind and cost. With a bcrypt cost
/// of 10 (tens of milliseconds, far above scheduling noise), skipping the
/// decoy would make unknown names answer faster by the whole hash time. The
/// bound is a third of that time, measured on this run: well above the
/// noise between two interleaved series of medians, well below a missing hash.
#[test]
fn unknown_users_and_wrong_passwords_take_the_same_time() {
    let server = Server::with(Options {
        auth: vec!["failure_delay = \"0s\"".into(), "max_failures = 0".into()],
        bcrypt_cost: 10,
        ..Options::default()
    });
    let mut client = server.connect_tls();
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let (reply, elapsed) = timed_pass(&mut client, "nosuchuser", "guess");
        assert_eq!(reply, "-ERR [AUTH] Authentication failed");
        unknown.push(elapsed);
        let (reply, elapsed) = timed_pass(&mut client, "alice", "guess");
        assert_eq!(reply, "-ERR [AUTH] Authentication failed");
        wrong.push(elapsed);
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    eprintln!("median answer: unknown user {unknown:?}, wrong password {wrong:?}");
    assert!(
        wrong >= Duration::from_millis(10),
        "the hash is too cheap for the comparison to mean anything: {wrong:?}"
    );
    let difference = unknown.abs_diff(wrong);
    assert!(
        difference < wrong / 3,
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
}

#[test]
fn fail2ban_matches_every_failure_line_the_server_writes() {
    let server = server(&["failure_delay = \"10ms\""]);
    let mut client = from(&server, "127.0.0.1");
    timed_pass(&mut client, "alice", "wrong");
    timed_pass(&mut client, "nosuchuser", "wrong");
    timed_pass(&mut client, "root", "wrong");
    // A name that breaks the login-name rule, sent inside AUTH PLAIN, is
    // refused before any check: it can never forge a failure line.
    assert_eq!(
        client.cmd("AUTH PLAIN AHggcmlwPTE5Mi4wLjIuOQB3cm9uZw=="),
        "-ERR [AUTH] Invalid user name"
    );
    let mut other = from(&server, "127.0.0.2");
    timed_pass(&mut other, "bob", "wrong");
    timed_pass(&mut other, "bob", PASSWORD);
    let log = server.wait_for_log("rip=127.0.0.2 user=bob reason=bad-credentials");
    let lines: Vec<&str> = log.lines().collect();

    let dir = tempfile::tempdir().unwrap();
    let logfile = dir.path().join("popgate.log");
    std::fs::write(&logfile, lines.join("\n") + "\n").unwrap();
    let filter = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/fail2ban/filter.d/popgate.conf");
    let output = Command::new("fail2ban-regex")
        .args(["--print-all-matched"])
        .arg(&logfile)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex (Debian package fail2ban) must be installed");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains(&format!(
            "Lines: {} lines, 0 ignored, 4 matched",
            lines.len()
        )),
        "{report}\n{log}"
    );
    for host in ["127.0.0.1", "127.0.0.2"] {
        assert!(report.contains(host), "{report}");
    }
    assert!(
        !report.contains("192.0.2.9"),
        "a forged address matched:\n{report}"
    );
}

/// Issue 10 item 5: an attacker holding one valid account (alice) guesses at
/// bob's password from the same address and logs in as alice between the
/// guesses. Before, each success cleared the whole address's record, so no
/// guess ever waited more than `failure_delay`; now a success clears only
/// alice's failures from that address, and the delay of the guesses at bob
/// keeps doubling (the n-th guess waits at least 2^n × 200 ms; bounds are
/// lower bounds only, so a slow machine cannot make the test fail).
#[test]
fn a_valid_account_does_not_reset_the_delay_of_guesses_at_another_user() {
    let server = server(&[
        "failure_delay = \"200ms\"",
        "max_failure_delay = \"30s\"",
        "max_failures = 0",
    ]);
    let mut guesser = from(&server, "127.0.0.1");
    let mut took = Vec::new();
    for round in 0..5u32 {
        let (reply, elapsed) = timed_pass(&mut guesser, "bob", &format!("guess{round}"));
        assert_eq!(reply, "-ERR [AUTH] Authentication failed");
        took.push(elapsed);
        let mut own = from(&server, "127.0.0.1");
        let (reply, _) = timed_pass(&mut own, "alice", PASSWORD);
        assert!(reply.starts_with("+OK"), "{reply}");
        own.ok("QUIT");
    }
    for (round, elapsed) in took.iter().enumerate() {
        let at_least = Duration::from_millis(200 << round);
        assert!(
            *elapsed >= at_least,
            "guess {round} waited {elapsed:?}, less than {at_least:?}: {took:?}"
        );
    }
}
