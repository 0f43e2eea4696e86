//! Login names are case-folded as Dovecot folds them with its default
//! `auth_username_format = %Lu` (Dovecot's auth settings: "%Lu" lowercases
//! the user name): phones capitalise the first letter of the user field, so
//! `Alice` must log in as `alice` on POP3 (USER/PASS, RFC 1939 §7; AUTH
//! PLAIN, RFC 5034 and RFC 4616) and on submission (AUTH PLAIN, RFC 4954).
//! `[auth] login_name_case = "exact"` keeps the old behaviour; the domain of
//! an address-form name is case-insensitive either way (RFC 4343).

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{popgate_bin, Options, Server, PASSWORD};
use crate::smtp_harness::{plain, submission_addr, Sink, Smtp};

fn plain_pop3(user: &str, password: &str) -> String {
    format!("AUTH PLAIN {}", plain(user, password))
}

/// Issue 16 item 6: `Alice` logs in as `alice` by USER/PASS and AUTH PLAIN
/// on POP3 and by AUTH PLAIN on submission; the session summaries and the
/// failure line name `alice`, and `[submission.addresses]` written for
/// `Alice` applies to her. Before, `Alice` was an unknown user everywhere.
#[test]
fn a_capitalised_name_logs_in_as_the_lowercase_user_everywhere() {
    let sink = Sink::start();
    let mut submission = sink.relay_lines();
    submission.push("[submission.addresses]".into());
    submission.push("Alice = [\"sales@example.com\"]".into());
    let server = Server::with(Options {
        submission: Some(submission),
        ..Options::default()
    });
    crate::harness::deliver(
        &server.maildir("alice"),
        1_700_000_000,
        b"Subject: x\n\nhi\n",
    );

    let mut client = server.connect_tls();
    client.ok("USER Alice");
    let reply = client.cmd(&format!("PASS {PASSWORD}"));
    assert!(reply.starts_with("+OK"), "{reply}\n{}", server.log());
    assert_eq!(client.ok("STAT"), "+OK 1 18");
    client.ok("QUIT");
    let mut client = server.connect_tls();
    client.ok(&plain_pop3("ALICE", PASSWORD));
    client.ok("QUIT");
    let mut client = server.connect_tls();
    client.ok("USER Alice");
    assert_eq!(
        client.cmd("PASS wrong"),
        "-ERR [AUTH] Authentication failed"
    );

    let smtp = Smtp::connect(submission_addr(&server), None);
    let mut smtp = smtp.starttls(server.client_config());
    smtp.cmd("EHLO client.test");
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {}", plain("Alice", PASSWORD))),
        "235 2.7.0 Authentication successful"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<sales@example.com>"),
        "250 2.1.0 Sender OK"
    );
    smtp.cmd("RSET");
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@localhost>"),
        "250 2.1.0 Sender OK"
    );
    smtp.cmd("QUIT");

    for line in [
        "pop3 session ended: rip=127.0.0.1 user=alice tls=",
        "authentication failed: service=pop3 rip=127.0.0.1 user=alice reason=bad-credentials",
        "submission session ended: rip=127.0.0.1 user=alice tls=",
    ] {
        let log = server.wait_for_log(line);
        assert!(log.contains(line), "{line}\n{log}");
    }
    assert!(!server.log().contains("user=Alice"), "{}", server.log());
    assert!(!server.log().contains("user=ALICE"), "{}", server.log());
}

/// Issue 16 item 6: under `login_name_case = "exact"`, `Alice` is not
/// `alice` (the behaviour before the setting existed); `alice` still is.
#[test]
fn exact_case_refuses_a_capitalised_name() {
    let server = Server::with(Options {
        auth: vec![
            "failure_delay = \"10ms\"".into(),
            "login_name_case = \"exact\"".into(),
        ],
        ..Options::default()
    });
    let mut client = server.connect_tls();
    client.ok("USER Alice");
    assert_eq!(
        client.cmd(&format!("PASS {PASSWORD}")),
        "-ERR [AUTH] Authentication failed"
    );
    assert_eq!(
        client.cmd(&plain_pop3("Alice", PASSWORD)),
        "-ERR [AUTH] Authentication failed"
    );
    client.ok(&plain_pop3("alice", PASSWORD));
}

/// Issue 16 item 6: an htpasswd file with `Bob` and `bob` is refused at
/// start-up under the default `"lower"`, naming both entries: which
/// password would `BOB` have? Before, both were loaded as two users.
#[test]
fn an_htpasswd_file_with_names_that_differ_only_by_case_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hash = popgate_auth::hash_password_bcrypt(PASSWORD, 4).unwrap();
    fs::write(
        root.join("users.htpasswd"),
        format!("alice:{hash}\nBob:{hash}\nbob:{hash}\n"),
    )
    .unwrap();
    let config = root.join("popgate.toml");
    fs::write(
        &config,
        format!(
            "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n\
             [auth]\nhtpasswd = \"{}/users.htpasswd\"\n",
            root.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(popgate_bin())
        .args(["serve", "-c"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that starts anyway must fail the test, not hang it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(status.is_some_and(|s| !s.success()), "started:\n{error}");
    assert!(
        error.contains("\"Bob\" (line 2) and \"bob\" (line 3) differ only by case"),
        "{error}"
    );
    assert!(error.contains("users.htpasswd"), "{error}");
}
