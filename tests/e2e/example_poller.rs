//! The reply-by-email poller in `examples/poller.rs` does what its docs say
//! against the real server: every message once, deleted at QUIT.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::harness::{deliver, message_files, Server, PASSWORD};

/// `cargo test` builds the examples next to the test binaries' directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join(name)
}

fn poll(server: &Server) -> String {
    let mut child = Command::new(example("poller"))
        .arg(server.tls.to_string())
        .arg("localhost")
        .arg(&server.cert_pem)
        .arg("alice")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the poller example is built by `cargo test`");
    write!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_poller_example_fetches_each_message_once_and_empties_the_mailbox() {
    let server = Server::start();
    let first = deliver(
        &server.maildir("alice"),
        1_700_000_000,
        b"Subject: ticket 1\n\nreply\n",
    );
    let second = deliver(
        &server.maildir("alice"),
        1_700_000_001,
        b"Subject: ticket 2\n\n.\n",
    );
    assert_eq!(
        poll(&server),
        format!("{first} ticket 1\n{second} ticket 2\n")
    );
    assert!(message_files(&server.maildir("alice")).is_empty());
    assert_eq!(poll(&server), "");
}
