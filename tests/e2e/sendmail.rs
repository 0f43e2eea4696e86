//! `relay = "sendmail"` with a fake sendmail: a shell script that records
//! its arguments and the message, then exits with the status its recipient
//! asks for. Only exit 0 is acknowledged with 250; sysexits.h decides
//! between 4xx and 5xx for the rest.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{Options, Server};
use crate::smtp_harness::Smtp;

/// Exits as the last recipient's local part says, after reading the whole
/// message (`tempfail`, `nouser`, `crash`), or before reading any of it
/// (`early`, `quitter`).
const FAKE_SENDMAIL: &str = r#"#!/bin/sh
dir=$(dirname "$0")
for rcpt; do :; done
case "$rcpt" in
  early@*) echo "refused before reading" >&2; exit 67 ;;
  quitter@*) exit 0 ;;
esac
printf '%s\n' "$*" > "$dir/$rcpt.args"
cat > "$dir/$rcpt.eml"
case "$rcpt" in
  tempfail@*) echo "queue file write error" >&2; exit 75 ;;
  nouser@*) printf '\n%s: user unknown\nsecond line\n' "$rcpt" >&2; exit 67 ;;
  crash@*) kill -KILL $$ ;;
esac
exit 0
"#;

fn fake_sendmail(dir: &Path) -> Server {
    let script = dir.join("fake-sendmail");
    fs::write(&script, FAKE_SENDMAIL).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    Server::with(Options {
        submission: Some(vec![
            "relay = \"sendmail\"".into(),
            format!("sendmail_command = \"{}\"", script.display()),
            "relay_timeout = \"30s\"".into(),
        ]),
        ..Options::default()
    })
}

const MESSAGE: &[u8] =
    b"From: alice@localhost\r\nSubject: exit status\r\n\r\n.dot line\r\nbody\r\n";

#[test]
fn the_exit_status_decides_between_250_4xx_and_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = fake_sendmail(dir.path());
    let mut smtp = Smtp::logged_in(&server);
    let mut send = |to: &str, message: &[u8]| smtp.send_message("alice@localhost", &[to], message);

    // The whole message was handed over, but the MTA said "later".
    assert_eq!(
        send("tempfail@example.org", MESSAGE),
        "451 4.0.0 Try again later: temporary failure (sendmail exit 75): queue file write error"
    );
    assert!(dir.path().join("tempfail@example.org.eml").exists());
    assert_eq!(
        send("nouser@example.org", MESSAGE),
        "550 5.1.1 Upstream refused: user unknown (sendmail exit 67): \
         nouser@example.org: user unknown"
    );
    assert_eq!(
        send("early@example.org", MESSAGE),
        "550 5.1.1 Upstream refused: user unknown (sendmail exit 67): refused before reading"
    );
    assert_eq!(
        send("crash@example.org", MESSAGE),
        "451 4.3.0 Local MTA was killed, try again later"
    );
    // Exit 0 without reading a message too large for the pipe's buffer:
    // what it took is not what the client sent.
    let mut large = MESSAGE.to_vec();
    large
        .extend(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n".repeat(8192));
    assert_eq!(
        send("quitter@example.org", &large),
        "451 4.3.0 Local MTA did not read the whole message, try again later"
    );

    assert_eq!(
        send("bob@example.org", MESSAGE),
        "250 2.0.0 Message accepted for delivery"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("bob@example.org.args")).unwrap(),
        "-i -f alice@localhost -- bob@example.org\n"
    );
    let delivered = fs::read(dir.path().join("bob@example.org.eml")).unwrap();
    assert!(
        delivered.ends_with(MESSAGE),
        "{}",
        String::from_utf8_lossy(&delivered)
    );
    assert!(delivered.starts_with(b"Received: from client.test"));

    assert_eq!(smtp.cmd("QUIT"), "221 2.0.0 Bye");
    let log = server.wait_for_log("submission session ended");
    assert!(log.contains("accepted=1 refused=5"), "{log}");
}
