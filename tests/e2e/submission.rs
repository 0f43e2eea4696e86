//! Submission end to end: the real binary between a client and a real
//! upstream SMTP server (aiosmtpd) on loopback, or local Maildirs.

use std::process::Command;
use std::time::Duration;

use crate::harness::{check_steps, message_files, Options, Server, PASSWORD};
use crate::smtp_harness::{
    added_headers, plain, server_relaying_to, submission_addr, submissions_addr, Sink, Smtp,
    SYSTEM_PYTHON,
};

/// A message with what tends to break relays: dot lines, 8-bit text, a
/// long header, no Date or Message-ID (so popgate adds them).
const MESSAGE: &[u8] = b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n\
Subject: relayed byte for byte\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\
\r\n.leading dot\r\n..two dots\r\n.\r\nnon-ASCII: \xc3\xa9t\xc3\xa9\r\nlast line\r\n";

#[test]
fn envelope_headers_and_body_arrive_byte_for_byte() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    let reply = smtp.send_message(
        "alice@example.com",
        &["bob@example.org", "carol@example.net"],
        MESSAGE,
    );
    assert_eq!(reply, "250 2.0.0 Message accepted for delivery");
    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 Bye");
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].envelope,
        r#"{"from": "alice@example.com", "to": ["bob@example.org", "carol@example.net"], "login": null}"#
    );
    assert_eq!(
        received[0].commands,
        [
            "MAIL FROM:<alice@example.com> BODY=8BITMIME",
            "RCPT TO:<bob@example.org>",
            "RCPT TO:<carol@example.net>"
        ]
    );
    let added = added_headers(&received[0].data, MESSAGE);
    let lines: Vec<&str> = added.split("\r\n").collect();
    assert_eq!(lines[0], "Received: from client.test ([127.0.0.1])");
    assert_eq!(lines[1], "\tby localhost (popgate) with ESMTPSA (TLSv1_3)");
    assert_eq!(lines[2], "\t(authenticated user alice);");
    assert!(
        lines[3].starts_with('\t') && lines[3].ends_with(" +0000"),
        "{added}"
    );
    assert!(
        lines[4].starts_with("Message-ID: <") && lines[4].ends_with("@localhost>"),
        "{added}"
    );
    assert_eq!(lines[5], format!("Date: {}", lines[3].trim_start()));
    assert_eq!(lines.len(), 7, "{added}");
}

#[test]
fn a_stopped_upstream_gives_451_and_nothing_is_reported_delivered() {
    let mut sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    sink.stop();
    let mut smtp = Smtp::logged_in(&server);
    let reply = smtp.send_message("alice@example.com", &["bob@example.org"], MESSAGE);
    assert_eq!(reply, "451 4.4.1 Upstream unavailable, try again later");
    assert!(sink.received().is_empty());
    // The session goes on: the client may try again.
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    server.wait_for_log("outcome=Temporary");
}

#[test]
fn upstream_refusals_reach_the_client_with_their_text() {
    let sink = Sink::replying("550 5.7.1 Policy says no");
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    let reply = smtp.send_message("alice@example.com", &["bob@example.org"], MESSAGE);
    assert_eq!(reply, "550 5.7.1 Upstream refused: Policy says no");

    let sink = Sink::replying("451 4.3.0 Try later");
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    let reply = smtp.send_message("alice@example.com", &["bob@example.org"], MESSAGE);
    assert_eq!(
        reply,
        "451 4.4.1 Upstream deferred the message: 4.3.0 Try later"
    );
}

#[test]
fn oversized_and_spoofed_messages_are_refused_and_not_relayed() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &["max_message_size = \"2K\""]);
    let mut smtp = Smtp::logged_in(&server);
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com> SIZE=4096"),
        "552 5.3.4 Message too big for system"
    );
    let mut big = b"From: alice@example.com\r\n\r\n".to_vec();
    for _ in 0..100 {
        big.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    assert_eq!(
        smtp.send_message("alice@example.com", &["bob@example.org"], &big),
        "552 5.3.4 Message too big for system"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<ceo@example.com>"),
        "553 5.7.1 Sender address not owned by the authenticated user"
    );
    let spoofed = b"From: CEO <ceo@example.com>\r\n\r\nPay this invoice.\r\n";
    assert_eq!(
        smtp.send_message("alice@example.com", &["bob@example.org"], spoofed),
        "553 5.7.1 From: address not owned by the authenticated user"
    );
    // alice@localhost is alice's too (login@hostname).
    let own = b"From: alice@localhost\r\n\r\nfine\r\n";
    assert_eq!(
        smtp.send_message("alice@localhost", &["bob@example.org"], own),
        "250 2.0.0 Message accepted for delivery"
    );
    assert_eq!(sink.received().len(), 1);
}

#[test]
fn credentials_need_tls_and_bad_ones_get_535_and_a_fail2ban_line() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::connect(submission_addr(&server), None);
    assert_eq!(
        smtp.cmd("EHLO client.test"),
        "250-localhost\n250-PIPELINING\n250-SIZE 36700160\n250-8BITMIME\n\
         250-ENHANCEDSTATUSCODES\n250 STARTTLS"
    );
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {}", plain("alice", PASSWORD))),
        "538 5.7.11 Encryption required: use STARTTLS first"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com>"),
        "530 5.7.0 Authentication required"
    );
    let mut smtp = smtp.starttls(server.client_config());
    assert_eq!(
        smtp.cmd("EHLO client.test"),
        "250-localhost\n250-PIPELINING\n250-SIZE 36700160\n250-8BITMIME\n\
         250-ENHANCEDSTATUSCODES\n250 AUTH PLAIN LOGIN"
    );
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {}", plain("alice", "wrong"))),
        "535 5.7.8 Authentication credentials invalid"
    );
    let log = server.wait_for_log("service=submission");
    assert!(
        log.contains(
            "authentication failed: service=submission rip=127.0.0.1 user=alice reason=bad-credentials"
        ),
        "{log}"
    );
    assert!(!log.contains("wrong"), "{log}");
    // AUTH LOGIN on the implicit-TLS port works.
    let mut smtp = Smtp::connect(submissions_addr(&server), Some(server.client_config()));
    smtp.cmd("EHLO client.test");
    assert_eq!(smtp.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6");
    assert_eq!(smtp.cmd("YWxpY2U="), "334 UGFzc3dvcmQ6");
    let password = base64_of(PASSWORD);
    assert_eq!(smtp.cmd(&password), "235 2.7.0 Authentication successful");
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn commands_pipelined_behind_starttls_are_discarded() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::connect(submission_addr(&server), None);
    smtp.cmd("EHLO client.test");
    smtp.send_raw(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<alice@example.com>\r\n");
    assert_eq!(smtp.reply(), "220 2.0.0 Ready to start TLS");
    assert!(smtp.is_silent_for(Duration::from_millis(300)));
    let mut smtp = smtp.tls_after_220(server.client_config());
    // The first reply over TLS answers this EHLO, not the injected NOOP.
    let ehlo = smtp.cmd("EHLO client.test");
    assert!(ehlo.starts_with("250-localhost\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
}

#[test]
fn nothing_is_smuggled_through_the_relay() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    let smuggled: &[&[u8]] = &[
        b"hi\n.\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n",
        b"hi\r\n.\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n",
        b"hi\r.\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n",
    ];
    for inner in smuggled {
        assert_eq!(
            smtp.cmd("MAIL FROM:<alice@example.com>"),
            "250 2.1.0 Sender OK"
        );
        assert_eq!(
            smtp.cmd("RCPT TO:<bob@example.org>"),
            "250 2.1.5 Recipient OK"
        );
        assert!(smtp.cmd("DATA").starts_with("354 "));
        let mut data = b"From: alice@example.com\r\n\r\n".to_vec();
        data.extend_from_slice(inner);
        data.extend_from_slice(b"From: ceo@example.com\r\n\r\nsmuggled\r\n.\r\n");
        smtp.send_raw(&data);
        assert_eq!(
            smtp.reply(),
            "554 5.6.0 Bare CR or LF in the message: lines must end with CRLF"
        );
    }
    assert_eq!(smtp.cmd("NOOP"), "250 2.0.0 OK");
    assert!(sink.received().is_empty());
}

#[test]
fn pipelined_transactions_are_answered_in_order_and_all_relayed() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    let mut batch = Vec::new();
    for n in 1..=2 {
        batch.extend_from_slice(
            format!(
                "MAIL FROM:<alice@example.com>\r\nRCPT TO:<r{n}@example.org>\r\nDATA\r\n\
                 From: alice@example.com\r\nSubject: {n}\r\n\r\nbody {n}\r\n.\r\n"
            )
            .as_bytes(),
        );
    }
    batch.extend_from_slice(b"QUIT\r\n");
    smtp.send_raw(&batch);
    let mut replies = Vec::new();
    while let Some(line) = smtp.line() {
        replies.push(line);
    }
    let one = [
        "250 2.1.0 Sender OK",
        "250 2.1.5 Recipient OK",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 Message accepted for delivery",
    ];
    let mut expected: Vec<&str> = one.iter().chain(one.iter()).copied().collect();
    expected.push("221 2.0.0 Bye");
    assert_eq!(replies, expected);
    let received = sink.received();
    assert_eq!(received.len(), 2);
    for (n, message) in received.iter().enumerate() {
        let n = n + 1;
        let original = format!("From: alice@example.com\r\nSubject: {n}\r\n\r\nbody {n}\r\n");
        added_headers(&message.data, original.as_bytes());
        assert!(message.envelope.contains(&format!("r{n}@example.org")));
    }
}

#[test]
fn curl_and_python_smtplib_send_through_it() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let message = server.dir.path().join("message.eml");
    std::fs::write(
        &message,
        b"From: alice@example.com\r\nSubject: from curl\r\n\r\nhello\r\n",
    )
    .unwrap();
    let port = submission_addr(&server).port();
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30", "--ssl-reqd"])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg("--cacert")
        .arg(&server.cert_pem)
        .args(["--user", &format!("alice:{PASSWORD}")])
        .args([
            "--mail-from",
            "alice@example.com",
            "--mail-rcpt",
            "bob@example.org",
        ])
        .arg("--upload-file")
        .arg(&message)
        .arg(format!("smtp://localhost:{port}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let script = r#"
import smtplib, ssl, sys
starttls, implicit, cafile, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile=cafile)
with smtplib.SMTP("localhost", starttls, timeout=30) as s:
    s.starttls(context=context)
    s.login("alice", password)
    s.sendmail("alice@example.com", ["carol@example.net"], b"From: alice@example.com\r\nSubject: smtplib\r\n\r\nvia 587\r\n")
with smtplib.SMTP_SSL("localhost", implicit, context=context, timeout=30) as s:
    s.login("alice", password)
    s.sendmail("alice@example.com", ["dave@example.net"], b"From: alice@example.com\r\nSubject: smtplib\r\n\r\nvia 465\r\n")
"#;
    let output = Command::new(SYSTEM_PYTHON)
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(submissions_addr(&server).port().to_string())
        .arg(&server.cert_pem)
        .arg(PASSWORD)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let received = sink.received();
    assert_eq!(received.len(), 3);
    added_headers(
        &received[0].data,
        b"From: alice@example.com\r\nSubject: from curl\r\n\r\nhello\r\n",
    );
    added_headers(
        &received[1].data,
        b"From: alice@example.com\r\nSubject: smtplib\r\n\r\nvia 587\r\n",
    );
    added_headers(
        &received[2].data,
        b"From: alice@example.com\r\nSubject: smtplib\r\n\r\nvia 465\r\n",
    );
    assert!(received[2].envelope.contains("dave@example.net"));
}

#[test]
fn the_maildir_relay_delivers_to_a_local_user_who_fetches_over_pop3() {
    let server = Server::with(Options {
        submission: Some(vec!["relay = \"maildir\"".into()]),
        ..Options::default()
    });
    let mut smtp = Smtp::logged_in(&server);
    let message = b"From: alice@localhost\r\nTo: bob@localhost\r\nSubject: local\r\n\r\nHi Bob\r\n";
    assert_eq!(
        smtp.send_message("alice@localhost", &["bob@localhost"], message),
        "250 2.0.0 Message accepted for delivery"
    );
    // An unknown local user is refused at RCPT, before any message text.
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@localhost>"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<nobody@localhost>"),
        "550 5.1.1 No such local mailbox"
    );
    assert_eq!(smtp.cmd("DATA"), "554 5.5.1 No valid recipients");
    assert_eq!(smtp.cmd("RSET"), "250 2.0.0 Reset");
    assert_eq!(message_files(&server.maildir("bob")).len(), 1);
    let mut pop3 = server.login("bob");
    let (status, body) = pop3.retrieve("RETR 1");
    assert!(status.starts_with("+OK"), "{status}");
    let body = crate::harness::unstuff(&body);
    let added = added_headers(&body, message);
    assert!(added.contains("(authenticated user alice)"), "{added}");
}

/// Runs `popgate check --round-trip USER` against `server` with `password`
/// on standard input; returns its exit success and what it printed.
fn round_trip(server: &Server, user: &str, password: &str) -> (bool, String) {
    let args = ["--wait", "10s", "--round-trip", user];
    server.run_check(&args, Some(password))
}

#[test]
fn the_light_check_logs_in_and_reads_without_changing_anything() {
    let server = Server::start();
    crate::harness::deliver(
        &server.maildir("alice"),
        1_700_000_000,
        b"Subject: kept\n\nbody\n",
    );
    let (ok, text) = server.run_check(&["--user", "alice"], Some(PASSWORD));
    assert!(ok, "{text}");
    assert_eq!(
        check_steps(&text),
        ["ok tls", "ok tls", "ok login", "ok stat", "ok uidl", "ok top", "ok quit"],
        "{text}"
    );
    assert!(
        text.contains("1 unique ids") && text.contains("TOP 1 0: 2 lines"),
        "{text}"
    );
    assert_eq!(
        message_files(&server.maildir("alice")).len(),
        1,
        "the light check deleted mail"
    );
    let (ok, text) = server.run_check(&["--user", "alice"], Some("wrong"));
    assert!(!ok, "{text}");
    assert_eq!(
        check_steps(&text),
        ["ok tls", "ok tls", "FAIL login"],
        "{text}"
    );
    assert!(text.contains("-ERR [AUTH]"), "{text}");
}

#[test]
fn check_round_trip_sends_fetches_and_deletes_and_fails_loudly() {
    let server = Server::with(Options {
        submission: Some(vec!["relay = \"maildir\"".into()]),
        ..Options::default()
    });
    let (ok, text) = round_trip(&server, "alice", PASSWORD);
    assert!(ok, "{text}");
    let steps: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    let tls = ["ok tls"; 4];
    assert_eq!(steps[..4], tls, "{text}");
    assert_eq!(steps[4..], ["ok send", "ok fetch", "ok delete"], "{text}");
    assert!(text.contains("from and to alice@localhost"), "{text}");
    assert!(message_files(&server.maildir("alice")).is_empty());

    let (ok, text) = round_trip(&server, "alice", "wrong");
    assert!(!ok, "{text}");
    assert_eq!(check_steps(&text)[4..], ["FAIL send"], "{text}");
    assert!(text.contains("check for alice failed"), "{text}");
}

#[test]
fn a_relay_without_starttls_never_gets_the_message() {
    let sink = Sink::start();
    let relay = format!("relay = \"smtp://127.0.0.1:{}\"", sink.port);
    let server = Server::with(Options {
        submission: Some(vec![relay, "relay_timeout = \"20s\"".into()]),
        ..Options::default()
    });
    let mut smtp = Smtp::logged_in(&server);
    let message = b"From: alice@localhost\r\n\r\nsecret plans\r\n";
    assert_eq!(
        smtp.send_message("alice@localhost", &["bob@example.org"], message),
        "451 4.4.1 Upstream unavailable, try again later"
    );
    assert!(sink.received().is_empty());
}

#[test]
fn relays_over_starttls_and_smtps_log_in_with_the_password_file() {
    let certs = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = certs.path().join("relay-cert.pem");
    let key = certs.path().join("relay-key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let secret = certs.path().join("relay.secret");
    std::fs::write(&secret, "s3cret-relay-pw\n").unwrap();
    for (mode, scheme) in [("starttls", "smtp"), ("smtps", "smtps")] {
        let sink = Sink::with(&[
            "--tls",
            mode,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--auth",
            "relayer:s3cret-relay-pw",
        ]);
        let server = Server::with(Options {
            submission: Some(vec![
                format!("relay = \"{scheme}://localhost:{}\"", sink.port),
                format!("relay_ca_file = \"{}\"", cert.display()),
                "relay_user = \"relayer\"".into(),
                format!("relay_password_file = \"{}\"", secret.display()),
            ]),
            ..Options::default()
        });
        let mut smtp = Smtp::logged_in(&server);
        let message = b"From: alice@localhost\r\nSubject: via TLS\r\n\r\nhello\r\n";
        assert_eq!(
            smtp.send_message("alice@localhost", &["bob@example.org"], message),
            "250 2.0.0 Message accepted for delivery",
            "{mode}"
        );
        let received = sink.received();
        assert_eq!(received.len(), 1, "{mode}");
        assert!(
            received[0].envelope.ends_with(r#""login": "relayer"}"#),
            "{mode}: {}",
            received[0].envelope
        );
        added_headers(&received[0].data, message);
        let config = Command::new(crate::harness::popgate_bin())
            .args(["config", "-c"])
            .arg(server.dir.path().join("popgate.toml"))
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&config.stdout);
        assert!(printed.contains("relay.secret"), "{printed}");
        assert!(!printed.contains("s3cret-relay-pw"), "{printed}");
        assert!(!server.log().contains("s3cret-relay-pw"));
    }
}

#[test]
fn the_sendmail_relay_hands_the_message_to_the_local_mta() {
    let sink = Sink::start();
    // msmtp is a real sendmail-compatible MTA client; the wrapper only gives
    // it the sink's address, as /etc/msmtprc would.
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("sendmail");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec msmtp --host=127.0.0.1 --port={} --tls=off --auth=off \"$@\"\n",
            sink.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let server = Server::with(Options {
        submission: Some(vec![
            "relay = \"sendmail\"".into(),
            format!("sendmail_command = \"{}\"", wrapper.display()),
        ]),
        ..Options::default()
    });
    let mut smtp = Smtp::logged_in(&server);
    let message = b"From: alice@localhost\r\nSubject: via sendmail\r\n\r\n.dot line\r\nbody\r\n";
    assert_eq!(
        smtp.send_message("alice@localhost", &["bob@example.org"], message),
        "250 2.0.0 Message accepted for delivery"
    );
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].envelope,
        r#"{"from": "alice@localhost", "to": ["bob@example.org"], "login": null}"#
    );
    added_headers(&received[0].data, message);
    // msmtp exits EX_TEMPFAIL when its relay cannot be reached.
    drop(sink);
    let reply = smtp.send_message("alice@localhost", &["bob@example.org"], message);
    assert!(
        reply.starts_with(
            "451 4.0.0 Try again later: temporary failure (sendmail exit 75): \
             msmtp: cannot connect to 127.0.0.1"
        ),
        "{reply}"
    );
}

#[test]
fn an_upstream_that_never_answers_gets_a_451_after_relay_timeout() {
    // Accepts connections and holds them open without a greeting.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let server = Server::with(Options {
        submission: Some(vec![
            format!("relay = \"smtp://127.0.0.1:{port}\""),
            "relay_tls = \"none\"".into(),
            "relay_timeout = \"1s\"".into(),
        ]),
        ..Options::default()
    });
    let mut smtp = Smtp::logged_in(&server);
    let started = std::time::Instant::now();
    let reply = smtp.send_message(
        "alice@localhost",
        &["bob@example.org"],
        b"From: alice@localhost\r\n\r\nhello\r\n",
    );
    let waited = started.elapsed();
    assert!(reply.starts_with("451 4.4."), "{reply}");
    assert!(
        waited >= Duration::from_secs(1),
        "answered before the timeout: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(15),
        "held the client for {waited:?}"
    );
}
