//! The reply-by-email poller in `examples/reply_poller/` against the real
//! server over POP3S, served from the configuration of
//! `docs/guides/reply-by-email.md`: replies written the way Outlook (plain text and
//! HTML only), Gmail (multipart/alternative, a wrapped attribution) and
//! Thunderbird (format=flowed) write them, with the ticket in the
//! plus-address, the thread headers or the Subject; plus a message that
//! names no ticket. Each is printed once as a JSON line and deleted at QUIT.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::guides::GuideServer;
use crate::harness::{message_files, PASSWORD};

/// The integration's mailbox, as in the guide.
const MAILBOX: &str = "reply@tracker.example.com";

/// `cargo test` builds the examples next to the test binaries' directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join(name)
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/e2e/replies")
            .join(name),
    )
    .unwrap()
}

/// Runs the poller against `server`; its JSON lines, parsed.
fn poll(server: &GuideServer) -> Vec<Value> {
    let mut child = Command::new(example("reply_poller"))
        .arg(server.addrs["pop3s"].to_string())
        .arg("localhost")
        .arg(&server.cert_pem)
        .arg(MAILBOX)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the reply_poller example is built by `cargo test`");
    write!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// Caught: quoted originals kept or replies lost per client's style, a
/// ticket missed, a message served twice, the mailbox left with what was
/// handled. (On the old `poller` example, which printed `UIDL subject`,
/// every JSON line fails.)
#[test]
fn the_reply_poller_reads_each_client_s_reply_once_and_empties_the_mailbox() {
    let server = GuideServer::start("reply-by-email.md", &[MAILBOX], &[]);
    let maildir = server.maildir(MAILBOX);
    let delivered = |seconds, name: &str| server.deliver(MAILBOX, seconds, &sample(name));
    let outlook = delivered(1_700_000_000, "outlook-plain.eml");
    let outlook_html = delivered(1_700_000_001, "outlook-html.eml");
    let gmail = delivered(1_700_000_002, "gmail.eml");
    let thunderbird = delivered(1_700_000_003, "thunderbird.eml");
    let stray = server.deliver(
        MAILBOX,
        1_700_000_004,
        b"From: someone@else.example\nSubject: Out of office\n\n.I am away.\n",
    );
    assert_eq!(
        poll(&server),
        [
            json!({"uidl": outlook, "from": "carol@client.example", "ticket": "4711",
                   "reply": "It works again, thank you.\n\nCarol"}),
            json!({"uidl": outlook_html, "from": "dave@client.example", "ticket": "4712",
                   "reply": "Thanks, the VPN works from the café now.\n\nDave"}),
            json!({"uidl": gmail, "from": "erik@mail.example", "ticket": "4713",
                   "reply": "Sounds good, Tuesday works for me.\n\nGrüße, Erik"}),
            json!({"uidl": thunderbird, "from": "frank@client.example", "ticket": "4714",
                   "reply": "The new monitor arrived and it is installed, but the cable is a \
                             little short; could you send a longer one?\n\nFrank"}),
            json!({"uidl": stray, "from": "someone@else.example", "ticket": null,
                   "reply": ".I am away."}),
        ]
    );
    assert!(message_files(&maildir).is_empty());
    assert_eq!(poll(&server), Vec::<Value>::new());
}
