//! The login deadline: a connection that keeps sending commands without
//! logging in is closed when `login_deadline` has passed since it was
//! accepted, while a session that logged in before is never cut by it;
//! and a login whose mailbox is slow to size (a local user's huge sparse
//! file) gives up at its own deadline without holding up anyone else's.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{deliver, Client, Options, Server, User, PASSWORD};
use crate::pam::{PamSandbox, PASS as PAM_PASS};
use crate::smtp_harness::{plain, submission_addr, Smtp};

/// The deadline the tests configure, and the idle timeout before login
/// that on its own would never close a client sending every 200 ms.
const DEADLINE: &str = "login_deadline = \"2s\"";
const LONG_PREAUTH: &str = "preauth_timeout = \"60s\"";

/// How often the busy clients send a command.
const EVERY: Duration = Duration::from_millis(200);

/// What POP3 answers at the deadline.
const POP3_TOO_LATE: &str = "-ERR [SYS/TEMP] Login not completed in time, try again later";

fn pop3_server() -> Server {
    Server::with(Options {
        pop3: vec![DEADLINE.into(), LONG_PREAUTH.into()],
        ..Options::default()
    })
}

/// Sends CAPA every 200 ms until `until`, or until an answer is not the
/// capability list; returns that answer (`None`: the server closed).
fn capa_until(client: &mut Client, until: Instant) -> Option<String> {
    while Instant::now() < until {
        client.send("CAPA");
        let status = client.try_line()?;
        if status != "+OK Capability list follows" {
            return Some(status);
        }
        client.body();
        thread::sleep(EVERY);
    }
    None
}

/// Before: `preauth_timeout` restarted with every command and nothing
/// else bounded the time before login, so a client sending CAPA every
/// 200 ms kept its connection (and its place in the per-address limit)
/// for as long as it liked.
#[test]
fn a_busy_pop3_client_that_never_logs_in_is_closed_at_the_deadline() {
    let server = pop3_server();
    let started = Instant::now();
    let mut client = server.connect_tls();
    let answer = capa_until(&mut client, started + Duration::from_secs(20));
    let elapsed = started.elapsed();
    assert_eq!(answer.as_deref(), Some(POP3_TOO_LATE));
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(client.is_closed_within(Duration::from_secs(10)));
    server.wait_for_log("end=login-deadline");
}

/// A login at 1.5 s, half a second before the deadline, keeps its session
/// well past it: the deadline is for logging in, not for the session.
#[test]
fn a_pop3_session_that_logged_in_in_time_is_never_cut() {
    let server = pop3_server();
    let started = Instant::now();
    let mut client = server.connect_tls();
    assert_eq!(
        capa_until(&mut client, started + Duration::from_millis(1500)),
        None
    );
    client.ok("USER alice");
    assert!(client.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    while started.elapsed() < Duration::from_millis(4500) {
        client.ok("NOOP");
        thread::sleep(EVERY);
    }
    client.ok("STAT");
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 0 messages deleted");
}

/// A password check still running at the deadline (a PAM module that
/// hangs for 20 s, `check_timeout` 20 s) answers `[SYS/TEMP]` at the
/// deadline and closes. Before: the login waited for `check_timeout`.
#[test]
fn a_password_check_still_running_at_the_deadline_is_given_up() {
    let pam = PamSandbox::new();
    let server = pam.server_with(
        "~/Maildir",
        &["check_timeout = \"20s\""],
        &[DEADLINE, LONG_PREAUTH],
        None,
    );
    let started = Instant::now();
    let mut client = server.connect_tls();
    client.ok("USER sleepy");
    client.send(&format!("PASS {PAM_PASS}"));
    assert_eq!(client.line(), POP3_TOO_LATE);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert!(client.is_closed_within(Duration::from_secs(10)));
}

fn submission_server() -> Server {
    Server::with(Options {
        pop3: vec![LONG_PREAUTH.into()],
        submission: Some(vec!["relay = \"maildir\"".into(), DEADLINE.into()]),
        ..Options::default()
    })
}

/// Sends NOOP every 200 ms until `until`, or until an answer is not
/// `250`; returns that answer (`None`: the server closed).
fn noop_until(smtp: &mut Smtp, until: Instant) -> Option<String> {
    while Instant::now() < until {
        smtp.send_raw(b"NOOP\r\n");
        let mut lines = Vec::new();
        loop {
            let line = smtp.line()?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        let reply = lines.join("\n");
        if !reply.starts_with("250") {
            return Some(reply);
        }
        thread::sleep(EVERY);
    }
    None
}

/// Before: as for POP3, a submission client sending NOOP every 200 ms was
/// never closed before login.
#[test]
fn a_busy_submission_client_that_never_logs_in_is_closed_at_the_deadline() {
    let server = submission_server();
    let started = Instant::now();
    let mut smtp = Smtp::connect(submission_addr(&server), None);
    assert!(smtp.cmd("EHLO client.test").starts_with("250"));
    let answer = noop_until(&mut smtp, started + Duration::from_secs(20));
    let elapsed = started.elapsed();
    assert_eq!(
        answer.as_deref(),
        Some("421 4.7.0 Login not completed in time, closing")
    );
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(smtp.line(), None);
}

/// A submission login at 1.5 s keeps its session well past the deadline.
#[test]
fn a_submission_session_that_logged_in_in_time_is_never_cut() {
    let server = submission_server();
    let started = Instant::now();
    let smtp = Smtp::connect(submission_addr(&server), None);
    let mut smtp = smtp.starttls(server.client_config());
    assert!(smtp.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(
        noop_until(&mut smtp, started + Duration::from_millis(1500)),
        None
    );
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {}", plain("alice", PASSWORD))),
        "235 2.7.0 Authentication successful"
    );
    assert_eq!(
        noop_until(&mut smtp, started + Duration::from_millis(4500)),
        None
    );
    assert!(smtp.cmd("QUIT").starts_with("221"));
}

/// Puts a file of `size` octets that is all holes into `user`'s cur/:
/// reading it for its size takes minutes, from no disk at all.
fn plant_sparse_file(server: &Server, user: &str, size: u64) {
    let path = server
        .maildir(user)
        .join("cur")
        .join("1700000000.Mhuge.host:2,");
    fs::File::create(&path).unwrap().set_len(size).unwrap();
}

/// Fills `user`'s Maildir with messages that have no size in their names,
/// so a first login reads each one (a cold login).
fn fill_cold(server: &Server, user: &str) {
    let maildir = server.maildir(user);
    for i in 0..50 {
        deliver(&maildir, 1_700_000_000 + i, b"Subject: cold\n\nline\n");
    }
}

/// Sends USER and PASS for `user` without waiting for the PASS answer.
fn start_login(server: &Server, user: &str) -> Client {
    let mut client = server.connect_tls();
    client.ok(&format!("USER {user}"));
    client.send(&format!("PASS {PASSWORD}"));
    client
}

/// Logs `user` in and says how long the PASS answer took.
fn timed_login(server: &Server, user: &str) -> Duration {
    let mut client = server.connect_tls();
    client.ok(&format!("USER {user}"));
    let started = Instant::now();
    let reply = client.cmd(&format!("PASS {PASSWORD}"));
    let took = started.elapsed();
    assert!(reply.starts_with("+OK"), "{user}: {reply}");
    client.ok("QUIT");
    took
}

/// Before: the process-wide limit of two cold size computations waited
/// without bound and a computation read every file to its end, so a
/// mailbox with a 100 GiB sparse file held its slot for minutes and its
/// login answered only then; two such logins took both slots, and every
/// other user's first login waited for them.
///
/// Now: alice's login answers `[SYS/TEMP]` at its deadline while bob's cold
/// login and carol's warm one go through at once; then alice and erin,
/// both slow, time out together, and the slots they held are free again
/// at once (the sizing stopped at their deadlines): dave's cold login right
/// after is prompt, where it would otherwise have waited until its own
/// deadline.
#[test]
fn a_mailbox_slow_to_size_holds_up_only_its_own_login() {
    let names = ["alice", "bob", "carol", "dave", "erin"];
    let server = Server::with(Options {
        users: names
            .iter()
            .map(|&name| User {
                name,
                password: PASSWORD,
            })
            .collect(),
        pop3: vec!["login_deadline = \"3s\"".into(), LONG_PREAUTH.into()],
        ..Options::default()
    });
    plant_sparse_file(&server, "alice", 100 << 30);
    plant_sparse_file(&server, "erin", 100 << 30);
    for user in ["bob", "carol", "dave"] {
        fill_cold(&server, user);
    }
    // carol's sizes are known: her next login is warm.
    timed_login(&server, "carol");

    let started = Instant::now();
    let mut alice = start_login(&server, "alice");
    thread::sleep(Duration::from_millis(300));
    let bob = timed_login(&server, "bob");
    let carol = timed_login(&server, "carol");
    assert!(bob < Duration::from_secs(2), "bob waited {bob:?}");
    assert!(carol < Duration::from_secs(2), "carol waited {carol:?}");
    assert_eq!(alice.line(), POP3_TOO_LATE);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(2500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");

    // Both cold slots taken by slow mailboxes, until their deadlines.
    let mut alice = start_login(&server, "alice");
    let mut erin = start_login(&server, "erin");
    assert_eq!(alice.line(), POP3_TOO_LATE);
    assert_eq!(erin.line(), POP3_TOO_LATE);
    let dave = timed_login(&server, "dave");
    assert!(dave < Duration::from_secs(2), "dave waited {dave:?}");
}
