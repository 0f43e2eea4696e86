//! Certificates before they bite: `popgate check` reports the certificate
//! each TLS listener of a real server serves (POP3S, STLS, submission's TLS
//! and STARTTLS) and fails near its end, after it, or for a name that is not
//! `hostname`; the server warns in its log at start and after a reload.

use std::time::{Duration, SystemTime};

use crate::harness::{check_steps, Options, Server, PASSWORD};

const DAY: u64 = 24 * 60 * 60;

/// A self-signed certificate and its key (PEM) for `names` (the first is
/// also the subject's CN), valid from two days ago until `end`.
fn certificate(names: &[&str], end: SystemTime) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
    params.not_before = (SystemTime::now() - Duration::from_secs(2 * DAY)).into();
    params.not_after = end.into();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].as_str());
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// `days` and an hour from now: whole days left stay `days` during a test.
fn in_days(days: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(days * DAY + 3600)
}

/// A server (`hostname = "localhost"`) serving `certificate` on POP3,
/// POP3S, submission and submissions.
fn serving(certificate: (String, String)) -> Server {
    Server::with(Options {
        submission: Some(vec!["relay = \"maildir\"".into()]),
        certificate: Some(certificate),
        ..Options::default()
    })
}

/// Every listener appears in the check's report.
fn assert_every_listener_reported(text: &str) {
    for listener in [
        "pop3s 127.0.0.1:",
        "pop3 STLS 127.0.0.1:",
        "submissions 127.0.0.1:",
        "submission STARTTLS 127.0.0.1:",
    ] {
        assert!(text.contains(listener), "{listener}\n{text}");
    }
}

/// A certificate 3 days from its end: the server says so at start, and
/// `check` fails with that reason on every listener, before any login;
/// `--warn-days 3` lets it pass and the user's steps run. Caught before
/// this change: `check` never looked at expiry, and nothing was logged.
#[test]
fn a_certificate_expiring_in_3_days_fails_the_check_and_is_logged_at_start() {
    let server = serving(certificate(&["localhost"], in_days(3)));
    let warning = "TLS certificate CN=localhost expires in 3 days (";
    let log = server.wait_for_log(warning);
    assert!(log.contains(warning), "{log}");
    assert!(log.contains("within 14 days: renew it"), "{log}");

    let (ok, text) = server.run_check(&[], None);
    assert!(!ok, "{text}");
    assert_eq!(check_steps(&text), ["FAIL tls"; 4], "{text}");
    assert_every_listener_reported(&text);
    assert_eq!(
        text.matches("expires in 3 days (").count(),
        4,
        "the reason on every listener:\n{text}"
    );
    assert!(text.contains("within 14 days"), "{text}");
    assert!(text.contains("check failed"), "{text}");

    let (ok, text) = server.run_check(&["--user", "alice"], Some(PASSWORD));
    assert!(!ok, "{text}");
    assert_eq!(check_steps(&text), ["FAIL tls"; 4], "{text}");
    assert!(text.contains("check for alice failed"), "{text}");

    let args = ["--warn-days", "3", "--user", "alice"];
    let (ok, text) = server.run_check(&args, Some(PASSWORD));
    assert!(ok, "{text}");
    let steps = check_steps(&text);
    assert_eq!(steps[..4], ["ok tls"; 4], "{text}");
    assert_eq!(
        steps[4..],
        ["ok login", "ok stat", "ok uidl", "ok top", "ok quit"]
    );
    assert!(text.contains("3 days left"), "{text}");
}

/// A good certificate: `check` passes without a user and prints subject,
/// issuer, names and days left for each listener, and the server warns of
/// nothing. A renewal written to disk is pointed out until it is reloaded;
/// after SIGHUP the new certificate is what the warning and the check
/// judge. Caught before this change: `check` needed a user and printed no
/// certificate; a reload did not look at the new certificate's expiry.
#[test]
fn a_good_certificate_shows_subject_and_days_left_and_a_reloaded_one_counts() {
    let server = serving(certificate(&["localhost", "127.0.0.1"], in_days(80)));
    let (ok, text) = server.run_check(&[], None);
    assert!(ok, "{text}");
    assert_eq!(check_steps(&text), ["ok tls"; 4], "{text}");
    assert_every_listener_reported(&text);
    let described = "CN=localhost, issued by CN=localhost, names localhost 127.0.0.1; \
                     80 days left (until ";
    assert_eq!(text.matches(described).count(), 4, "{text}");
    assert!(
        !text.contains("not the certificate in [tls] cert"),
        "{text}"
    );
    // The check's connections end as a client's that quits, not as errors.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.log().matches("session ended").count() < 4 && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    let ended: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("session ended"))
        .collect();
    assert_eq!(ended.len(), 4, "{log}");
    assert!(ended.iter().all(|l| l.contains("end=quit")), "{log}");

    // Renewed on disk, not reloaded: still served, and said.
    let (cert, key) = certificate(&["localhost"], in_days(3));
    std::fs::write(&server.cert_pem, cert).unwrap();
    std::fs::write(server.dir.path().join("key.pem"), key).unwrap();
    let (ok, text) = server.run_check(&[], None);
    assert!(ok, "{text}");
    assert_eq!(
        text.matches("not the certificate in [tls] cert").count(),
        4,
        "{text}"
    );
    let before_reload = server.log();
    assert!(
        !before_reload.contains("TLS certificate CN="),
        "{before_reload}"
    );

    server.hangup();
    let warning = "TLS certificate CN=localhost expires in 3 days (";
    // The reload logs the warning before its own summary line: wait for both.
    server.wait_for_log(warning);
    let log = server.wait_for_log("configuration reloaded");
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(log.contains(warning), "{log}");
    let (ok, text) = server.run_check(&[], None);
    assert!(!ok, "{text}");
    assert_eq!(text.matches("expires in 3 days (").count(), 4, "{text}");
    assert!(
        !text.contains("not the certificate in [tls] cert"),
        "{text}"
    );
}

/// A certificate for another name fails the check naming `hostname` and
/// the names it has. Caught before this change: nothing checked the name
/// without a user's login.
#[test]
fn a_certificate_for_another_name_fails_naming_the_hostname() {
    let server = serving(certificate(&["mail.example.net"], in_days(80)));
    let (ok, text) = server.run_check(&[], None);
    assert!(!ok, "{text}");
    assert_eq!(check_steps(&text), ["FAIL tls"; 4], "{text}");
    let reason = "does not name hostname `localhost` (it names mail.example.net)";
    assert_eq!(text.matches(reason).count(), 4, "{text}");
    assert!(!text.contains("expires in"), "{text}");
}

/// An expired certificate is still read and reported as expired, by the
/// check and in the log. Caught: a check that verifies validity in the
/// handshake would only say "certificate expired" without what it was.
#[test]
fn an_expired_certificate_is_reported_with_what_it_is() {
    let ended = SystemTime::now() - Duration::from_secs(DAY + 3600);
    let server = serving(certificate(&["localhost"], ended));
    let warning = "TLS certificate CN=localhost expired 1 day ago (";
    let log = server.wait_for_log(warning);
    assert!(log.contains(warning), "{log}");
    let (ok, text) = server.run_check(&["--warn-days", "0"], None);
    assert!(!ok, "{text}");
    assert_eq!(check_steps(&text), ["FAIL tls"; 4], "{text}");
    assert_eq!(text.matches("expired 1 day ago (").count(), 4, "{text}");
    assert!(
        text.contains("CN=localhost, issued by CN=localhost"),
        "{text}"
    );
}
