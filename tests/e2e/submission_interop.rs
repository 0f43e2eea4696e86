//! Submission against what real senders and phones send (issue 16) and the
//! sender policy and STARTTLS on a shared host (issue 10): the real binary
//! between a raw SMTP client and an aiosmtpd upstream, checking what the
//! upstream received (the MAIL and RCPT commands as they arrived, and the
//! message) besides the replies.

use base64::Engine as _;

use crate::harness::{Options, Server, PASSWORD};
use crate::smtp_harness::{added_headers, plain, server_relaying_to, submission_addr, Sink, Smtp};

/// The base64 PLAIN response acting as `authzid` with `user`'s password.
fn plain_as(authzid: &str, user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{user}\0{password}"))
}

/// RFC 4954 §5: `AUTH=` on MAIL is parsed and discarded, also beside
/// `SIZE=` and `BODY=`, and never passed upstream; a malformed value is a
/// 501. Caught: `AUTH=<>` got `555 5.5.4 Unsupported MAIL parameter`, so
/// every MTA relaying through popgate with SMTP AUTH (Postfix with
/// `smtp_sasl_auth_enable`, Exim, sendmail smarthosts) had every message
/// refused.
#[test]
fn mail_auth_is_parsed_and_discarded_beside_size_and_body() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    let eight_bit = b"From: alice@example.com\r\nSubject: via an MTA\r\n\r\nh\xc3\xa9llo\r\n";
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com> SIZE=120 BODY=8BITMIME AUTH=<>"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<bob@example.org>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        smtp.data(eight_bit),
        "250 2.0.0 Message accepted for delivery"
    );
    // An MTA that trusts its submitter names it, xtext-encoded.
    let ascii = b"From: alice@example.com\r\nSubject: trusted\r\n\r\nhello\r\n";
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com> AUTH=alice+40example.com"),
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        smtp.cmd("RCPT TO:<carol@example.net>"),
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(smtp.data(ascii), "250 2.0.0 Message accepted for delivery");
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com> AUTH=+zz"),
        "501 5.5.4 Invalid parameter AUTH"
    );
    let received = sink.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].commands,
        [
            "MAIL FROM:<alice@example.com> BODY=8BITMIME",
            "RCPT TO:<bob@example.org>"
        ]
    );
    added_headers(&received[0].data, eight_bit);
    assert_eq!(
        received[1].commands,
        [
            "MAIL FROM:<alice@example.com>",
            "RCPT TO:<carol@example.net>"
        ]
    );
    added_headers(&received[1].data, ascii);
}

/// RFC 5321 §4.1.2 (a quoted local part) and §4.1.3 (address literals):
/// legal addresses are accepted and relayed upstream exactly as given, and
/// the sender policy compares them sensibly: `"alice"@example.com` is
/// alice's own, a quoted local part that looks like her address is not.
/// Caught: smtp-proto dropped the quotes, so `"john doe"@example.net` was
/// refused as the invalid `john doe@example.net` (`553 5.1.3`) and
/// `"alice"@Example.com` went upstream unquoted; address literals got
/// `501 5.1.3`.
#[test]
fn quoted_local_parts_and_address_literals_reach_the_upstream_as_written() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    assert_eq!(
        smtp.cmd("MAIL FROM:<\"alice\"@Example.com>"),
        "250 2.1.0 Sender OK"
    );
    for recipient in [
        "\"john doe\"@example.net",
        "bob@[192.0.2.1]",
        "carol@[IPv6:2001:db8::1]",
    ] {
        assert_eq!(
            smtp.cmd(&format!("RCPT TO:<{recipient}>")),
            "250 2.1.5 Recipient OK",
            "{recipient}"
        );
    }
    let message = b"From: Alice <alice@example.com>\r\nTo: \"john doe\"@example.net\r\n\r\nhi\r\n";
    assert_eq!(
        smtp.data(message),
        "250 2.0.0 Message accepted for delivery"
    );
    for spoof in [
        "\"alice@example.com\"@evil.example",
        "\"ceo\"@example.com",
        "alice@[127.0.0.1]",
    ] {
        assert_eq!(
            smtp.cmd(&format!("MAIL FROM:<{spoof}>")),
            "553 5.7.1 Sender address not owned by the authenticated user",
            "{spoof}"
        );
    }
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].commands,
        [
            "MAIL FROM:<\"alice\"@Example.com>",
            "RCPT TO:<\"john doe\"@example.net>",
            "RCPT TO:<bob@[192.0.2.1]>",
            "RCPT TO:<carol@[IPv6:2001:db8::1]>",
        ]
    );
    added_headers(&received[0].data, message);
}

/// RFC 6531 §3.4: SMTPUTF8 is handled consistently. popgate does not offer
/// it (the relay's EHLO is unknown until after DATA; `envelope.rs` says
/// why), so it refuses the parameter and non-ASCII addresses, `553 5.6.7`,
/// and nothing non-ASCII reaches the upstream, even one that offers
/// SMTPUTF8 (as Postfix does). Caught: a non-ASCII recipient was accepted
/// without the parameter and relayed with `SMTPUTF8` added, while a client
/// that declared SMTPUTF8 got `555`.
#[test]
fn smtputf8_is_not_offered_and_non_ascii_addresses_are_refused() {
    let sink = Sink::with(&["--smtputf8"]);
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    let ehlo = smtp.cmd("EHLO client.test");
    assert!(
        ehlo.starts_with("250-localhost") && !ehlo.contains("SMTPUTF8"),
        "{ehlo}"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com>"),
        "250 2.1.0 Sender OK"
    );
    for recipient in ["jos\u{e9}@example.org", "bob@b\u{fc}cher.example"] {
        assert_eq!(
            smtp.cmd(&format!("RCPT TO:<{recipient}>")),
            "553 5.6.7 Non-ASCII recipient address: SMTPUTF8 is not offered",
            "{recipient}"
        );
    }
    assert_eq!(
        smtp.cmd("RCPT TO:<bob@example.org>"),
        "250 2.1.5 Recipient OK"
    );
    let message = b"From: alice@example.com\r\n\r\nascii only\r\n";
    assert_eq!(
        smtp.data(message),
        "250 2.0.0 Message accepted for delivery"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<\u{e1}lice@example.com>"),
        "553 5.6.7 Non-ASCII sender address: SMTPUTF8 is not offered"
    );
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com> SMTPUTF8"),
        "555 5.5.4 Unsupported MAIL parameter SMTPUTF8"
    );
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].commands,
        ["MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.org>"]
    );
    added_headers(&received[0].data, message);
}

/// RFC 4954 §6 (`535 5.7.8`) and RFC 3206 §4 (`[AUTH]`): a well-formed
/// PLAIN response whose authzid names another user is an authentication
/// failure on both protocols; a response that does not decode stays `501`
/// and a plain `-ERR`. Caught: submission answered `501 5.5.2 Cannot decode
/// the SASL response` and POP3 a plain `-ERR`, which clients read as a
/// protocol error rather than refused credentials.
#[test]
fn acting_as_another_user_is_an_authentication_failure_on_both_protocols() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let as_bob = plain_as("bob", "alice", PASSWORD);
    let mut smtp = Smtp::connect(submission_addr(&server), None).starttls(server.client_config());
    smtp.cmd("EHLO client.test");
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {as_bob}")),
        "535 5.7.8 Authentication credentials invalid: acting as another user is not allowed"
    );
    assert_eq!(
        smtp.cmd("AUTH PLAIN !!!"),
        "501 5.5.2 Cannot decode the SASL response"
    );
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {}", plain("alice", PASSWORD))),
        "235 2.7.0 Authentication successful"
    );

    let mut pop3 = server.connect_tls();
    assert_eq!(
        pop3.cmd(&format!("AUTH PLAIN {as_bob}")),
        "-ERR [AUTH] acting as another user is not supported"
    );
    assert_eq!(
        pop3.cmd("AUTH PLAIN !!!"),
        "-ERR the SASL response is not valid base64"
    );
    pop3.ok(&format!("AUTH PLAIN {}", plain("alice", PASSWORD)));
}

/// RFC 5321 §4.1.1.1: HELO is answered `250 <domain>`; RFC 2034 §3 puts no
/// enhanced status code on HELO or EHLO. Caught: `250 2.0.0 localhost`.
#[test]
fn helo_is_answered_with_the_bare_hostname() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::connect(submission_addr(&server), None);
    assert_eq!(smtp.cmd("HELO client.test"), "250 localhost");
    let mut smtp = smtp.starttls(server.client_config());
    assert_eq!(smtp.cmd("HELO client.test"), "250 localhost");
}

/// RFC 5322 §3.6 (exactly one From field, at most one Sender field) and
/// §4.5 (white space before the colon is still a field name): with
/// `sender_policy = "own"` every From field is seen, however written, and
/// a Sender field is checked too; what is refused never reaches the
/// upstream. Caught: `From : ceo@example.com` before a genuine
/// `From: alice@…` passed the policy and was relayed, a foreign `Sender:`
/// was never looked at, and alice's own `FROM\t:` counted as no From at all.
#[test]
fn the_sender_policy_sees_every_from_field_and_the_sender_field() {
    let sink = Sink::start();
    let server = server_relaying_to(&sink, &[]);
    let mut smtp = Smtp::logged_in(&server);
    let to = ["bob@example.org"];
    assert_eq!(
        smtp.send_message(
            "alice@example.com",
            &to,
            b"From : ceo@example.com\r\nFrom: alice@example.com\r\n\r\nPay this.\r\n",
        ),
        "554 5.6.0 The message has 2 From: fields; RFC 5322 allows exactly one"
    );
    assert_eq!(
        smtp.send_message(
            "alice@example.com",
            &to,
            b"From: alice@example.com\r\nSender: ceo@example.com\r\n\r\nOn behalf.\r\n",
        ),
        "553 5.7.1 Sender: address not owned by the authenticated user"
    );
    let own =
        b"FROM\t:\r\n Alice\r\n <alice@example.com>\r\nSender : alice@example.com\r\n\r\nmine\r\n";
    assert_eq!(
        smtp.send_message("alice@example.com", &to, own),
        "250 2.0.0 Message accepted for delivery"
    );
    let received = sink.received();
    assert_eq!(received.len(), 1);
    added_headers(&received[0].data, own);
}

/// RFC 3207 §4.2: after STARTTLS the server forgets what the client said
/// in the clear, its login included, whatever `login` allows; MAIL right
/// after STARTTLS and EHLO gets 530 until the client authenticates again.
/// Caught: with `login = "plaintext"`, a login made in the clear survived
/// STARTTLS and MAIL was accepted without a new AUTH.
#[test]
fn starttls_forgets_the_login() {
    let sink = Sink::start();
    let mut submission = sink.relay_lines();
    submission.push("[submission.addresses]".into());
    submission.push("alice = [\"alice@example.com\"]".into());
    let server = Server::with(Options {
        pop3: vec!["login = \"plaintext\"".into()],
        submission: Some(submission),
        ..Options::default()
    });
    let mut smtp = Smtp::connect(submission_addr(&server), None);
    smtp.cmd("EHLO client.test");
    let login = format!("AUTH PLAIN {}", plain("alice", PASSWORD));
    assert_eq!(smtp.cmd(&login), "235 2.7.0 Authentication successful");
    let mut smtp = smtp.starttls(server.client_config());
    let ehlo = smtp.cmd("EHLO client.test");
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@example.com>"),
        "530 5.7.0 Authentication required"
    );
    assert!(ehlo.ends_with("250 AUTH PLAIN LOGIN"), "{ehlo}");
    assert_eq!(smtp.cmd(&login), "235 2.7.0 Authentication successful");
    let message = b"From: alice@example.com\r\n\r\nafter TLS\r\n";
    assert_eq!(
        smtp.send_message("alice@example.com", &["bob@example.org"], message),
        "250 2.0.0 Message accepted for delivery"
    );
    let received = sink.received();
    assert_eq!(received.len(), 1);
    added_headers(&received[0].data, message);
}
