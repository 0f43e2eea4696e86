//! Clients nobody here wrote: curl (pop3s:// and pop3:// with STLS) and
//! Python's poplib fetch from the running server, and what they save equals
//! the Maildir file with CRLF line ends.

use std::process::Command;

use crate::harness::{crlf, deliver, Server, PASSWORD};

const MESSAGE: &[u8] =
    b"From: a@example.com\nSubject: real clients\n\n.leading dot\n..two\nmiddle\r\nCRLF line\r\nno final newline";

fn curl(server: &Server, url_port: u16, scheme: &str, path: &str, extra: &[&str]) -> Vec<u8> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(["--resolve", &format!("localhost:{url_port}:127.0.0.1")])
        .arg("--cacert")
        .arg(&server.cert_pem)
        .args(["--user", &format!("alice:{PASSWORD}")])
        .args(extra)
        .arg(format!("{scheme}://localhost:{url_port}/{path}"))
        .output()
        .expect("curl must be installed (the test command installs it)");
    assert!(
        output.status.success(),
        "curl {scheme} {path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn curl_lists_and_retrieves_over_pop3s_and_stls() {
    let server = Server::start();
    deliver(&server.maildir("alice"), 1_700_000_000, MESSAGE);
    let expected = crlf(MESSAGE);
    let listing = curl(&server, server.tls.port(), "pop3s", "", &[]);
    assert_eq!(listing, format!("1 {}\r\n", expected.len()).into_bytes());
    let retrieved = curl(&server, server.tls.port(), "pop3s", "1", &[]);
    assert_eq!(retrieved, expected);
    let retrieved = curl(&server, server.plain.port(), "pop3", "1", &["--ssl-reqd"]);
    assert_eq!(retrieved, expected);
}

#[test]
fn python_poplib_fetches_with_stls_and_deletes() {
    let server = Server::start();
    deliver(&server.maildir("alice"), 1_700_000_000, MESSAGE);
    let second = b"Subject: two\n\nsecond\n";
    deliver(&server.maildir("alice"), 1_700_000_001, second);
    let script = r#"
import poplib, ssl, sys
port, cafile, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.create_default_context(cafile=cafile)
box = poplib.POP3("127.0.0.1", port, timeout=20)
box.stls(context=context)
box.user("alice")
box.pass_(password)
count, size = box.stat()
listed = [int(line.split()[1]) for line in box.list()[1]]
uidls = [line.split()[1].decode() for line in box.uidl()[1]]
status, lines, octets = box.retr(1)
top = box.top(1, 0)[1]
box.dele(1)
box.quit()
sys.stdout.buffer.write(repr((count, size, listed, uidls, lines, octets, top)).encode())
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.plain.port().to_string())
        .arg(&server.cert_pem)
        .arg(PASSWORD)
        .output()
        .expect("python3 must be installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    let (first, second) = (crlf(MESSAGE).len(), crlf(second).len());
    assert!(
        printed.starts_with(&format!("(2, {}, [{first}, {second}]", first + second)),
        "{printed}"
    );
    // poplib un-stuffs and splits lines; it counts octets including CRLFs.
    assert!(printed.contains("b'.leading dot', b'..two'"), "{printed}");
    assert!(
        printed.contains("[b'From: a@example.com', b'Subject: real clients', b'']"),
        "{printed}"
    );
    let remaining = crate::harness::message_files(&server.maildir("alice"));
    assert_eq!(remaining.len(), 1, "{remaining:?}");
}
