//! Clients nobody here wrote fetch from the running server: curl (pop3s://
//! and pop3:// with STLS) saves exactly the Maildir file with CRLF line
//! ends; Python's poplib, fetchmail (which reads with `TOP n 99999999`) and
//! mpop (which leaves copies by UIDL) get every message whole.

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

/// The messages a client delivered into `dir`, one file each, in name order.
fn delivered(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
        .collect()
}

#[test]
fn fetchmail_peeks_with_top_fetches_whole_messages_and_deletes_them() {
    let server = Server::start();
    deliver(&server.maildir("alice"), 1_700_000_000, MESSAGE);
    deliver(
        &server.maildir("alice"),
        1_700_000_001,
        b"Subject: second\n\n.\n..\nend\n",
    );
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let rc = work.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\nset no bouncemail\n\
             poll localhost via 127.0.0.1 protocol pop3 port {port} uidl\n\
             \x20 user \"alice\" password \"{PASSWORD}\" is root here\n\
             \x20 mda \"/bin/sh -c 'cat > {out}/msg.$$'\"\n\
             \x20 ssl sslcertfile \"{cert}\" sslcertck sslcommonname \"localhost\"\n",
            port = server.tls.port(),
            out = out.display(),
            cert = server.cert_pem.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let output = Command::new("fetchmail")
        .args(["--fetchmailrc"])
        .arg(&rc)
        .args(["--nodetach", "--verbose"])
        .env("FETCHMAILHOME", work.path())
        .output()
        .expect("fetchmail must be installed (the test command installs it)");
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{log}");
    // Without `keep` or `fetchall`, fetchmail reads messages with TOP n 99999999.
    assert!(log.contains("TOP 1 99999999"), "{log}");
    let messages = delivered(&out);
    assert_eq!(messages.len(), 2, "{log}");
    let all = messages.join("\n");
    assert!(
        all.contains("\n.leading dot\n..two\nmiddle\nCRLF line\nno final newline\n"),
        "{all}"
    );
    assert!(all.contains("\n.\n..\nend\n"), "{all}");
    assert!(
        crate::harness::message_files(&server.maildir("alice")).is_empty(),
        "{log}"
    );
}

#[test]
fn mpop_fetches_into_a_maildir_over_stls_and_leaves_copies_by_uidl() {
    let server = Server::start();
    deliver(&server.maildir("alice"), 1_700_000_000, MESSAGE);
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("Maildir");
    crate::harness::make_maildir(&target);
    let mpop = |extra: &[&str]| {
        let output = Command::new("mpop")
            .args([
                "--host=127.0.0.1",
                "--auth=user",
                "--user=alice",
                "--tls=on",
                "--tls-starttls=on",
            ])
            .arg(format!("--port={}", server.plain.port()))
            .arg(format!("--tls-trust-file={}", server.cert_pem.display()))
            .arg("--tls-host-override=localhost")
            .arg(format!("--passwordeval=echo '{PASSWORD}'"))
            .arg(format!("--delivery=maildir,{}", target.display()))
            .arg(format!(
                "--uidls-file={}",
                work.path().join("uidls").display()
            ))
            .args(extra)
            .output()
            .expect("mpop must be installed (the test command installs it)");
        let log = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{log}");
    };
    mpop(&["--keep=on"]);
    let fetched = crate::harness::message_files(&target);
    assert_eq!(fetched.len(), 1);
    let bytes = std::fs::read(&fetched[0]).unwrap();
    assert!(
        bytes.ends_with(b"CRLF line\nno final newline\n"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    // Left on the server; the next poll knows its UIDL and fetches nothing.
    assert_eq!(
        crate::harness::message_files(&server.maildir("alice")).len(),
        1
    );
    mpop(&["--keep=on"]);
    assert_eq!(crate::harness::message_files(&target).len(), 1);
    mpop(&["--keep=off", "--only-new=off"]);
    assert!(crate::harness::message_files(&server.maildir("alice")).is_empty());
}
