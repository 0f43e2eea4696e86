//! Local delivery (`relay = "maildir"`) to the host's own users, with
//! popgate running as root as it does for PAM users: one PAM user submits
//! through the real submission listener, and the message lands in another
//! user's private Maildir (0700, theirs) as if that user had written it,
//! never through a symlink the user planted, all or nothing with several
//! recipients, and in a Maildir made for a user who has none yet. Users
//! come from pam_wrapper and nss_wrapper (see `pam.rs`).
//!
//! These tests need root, as the server does here (it writes with each
//! user's uid); CI runs them as root.

use std::fs;
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::harness::{crlf, Server};
use crate::pam::{chown_tree, running_as_root, PamSandbox, PASS};
use crate::smtp_harness::{plain, submission_addr, Smtp};

const PAMUSER_UID: u32 = 20001;
const CAROL_UID: u32 = 20002;

/// A message from pamuser to carol, as the client sends it.
const MESSAGE: &[u8] =
    b"From: pamuser@localhost\r\nTo: carol@localhost\r\nSubject: local\r\n\r\nHello Carol\r\n.dot\r\n";

/// PAM users with private Maildirs, and a server that delivers to them.
///
/// The template names the homes by path rather than `~`, so that the same
/// test runs against a build whose local delivery refused `~` templates.
fn sandbox() -> (PamSandbox, Server) {
    let pam = PamSandbox::new();
    for user in ["pamuser", "carol"] {
        for path in [pam.home(user), pam.home(user).join("Maildir")] {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        }
    }
    let template = format!("{}/home/%n/Maildir", pam.root().display());
    let server = pam.server_with(
        &template,
        &[],
        &[],
        Some(vec!["relay = \"maildir\"".into()]),
    );
    (pam, server)
}

/// A submission session logged in as `user`.
fn submitter(server: &Server, user: &str) -> Smtp {
    let mut smtp = Smtp::connect(submission_addr(server), None).starttls(server.client_config());
    smtp.cmd("EHLO client.test");
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {}", plain(user, PASS))),
        "235 2.7.0 Authentication successful",
        "{}",
        server.log()
    );
    smtp
}

/// MAIL, RCPT for each of `to` (each must be accepted), DATA: the final reply.
fn submit(smtp: &mut Smtp, to: &[&str]) -> String {
    smtp.send_message("pamuser@localhost", to, MESSAGE)
}

/// The files in `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Everything under `dir` (the links themselves, not where they point)
/// that belongs to root.
fn owned_by_root(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = fs::symlink_metadata(&path).unwrap();
        if metadata.uid() == 0 {
            found.push(path.clone());
        }
        if metadata.is_dir() {
            pending.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    found
}

/// The `,X=<digits>` field of a file name.
fn field(name: &str, key: &str) -> Option<u64> {
    let start = name.find(&format!(",{key}="))? + key.len() + 2;
    let digits: String = name[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Caught: delivery wrote each copy as root, so the recipient's Maildir
/// held a root-owned file (and the recipient's next POP3 login, with the
/// recipient's own rights, could not move or read it); and names carried
/// no sizes, so the first login read every message to size it.
#[test]
fn a_delivered_message_is_the_recipients_own_and_fetched_at_its_exact_size() {
    if !running_as_root() {
        return;
    }
    let (pam, server) = sandbox();
    let mut smtp = submitter(&server, "pamuser");
    assert_eq!(
        submit(&mut smtp, &["carol@localhost"]),
        "250 2.0.0 Message accepted for delivery",
        "{}",
        server.log()
    );
    let maildir = pam.home("carol").join("Maildir");
    let delivered = files(&maildir.join("new"));
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert!(files(&maildir.join("tmp")).is_empty());
    let metadata = fs::symlink_metadata(&delivered[0]).unwrap();
    assert_eq!((metadata.uid(), metadata.gid()), (CAROL_UID, CAROL_UID));
    assert_eq!(metadata.mode() & 0o777, 0o600);
    assert!(owned_by_root(&pam.home("carol")).is_empty());
    let name = delivered[0].file_name().unwrap().to_str().unwrap();
    let stored = fs::read(&delivered[0]).unwrap();
    assert_eq!(field(name, "S"), Some(stored.len() as u64), "{name}");
    assert_eq!(field(name, "W"), Some(crlf(&stored).len() as u64), "{name}");

    let mut pop3 = server.connect_tls();
    pop3.ok("USER carol");
    let reply = pop3.cmd(&format!("PASS {PASS}"));
    assert!(reply.starts_with("+OK"), "{reply}\n{}", server.log());
    let listed: u64 = pop3
        .ok("LIST 1")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = pop3.retrieve("RETR 1");
    assert_eq!(status, format!("+OK {listed} octets"));
    assert_eq!(body.len() as u64, listed);
    assert!(body.ends_with(b"Hello Carol\r\n.dot\r\n"));
    pop3.ok("QUIT");
    // The login moved the message to cur/ with carol's own rights.
    assert_eq!(files(&maildir.join("cur")).len(), 1);
}

/// Caught: root followed carol's symlinked `tmp/` and `new/` and wrote a
/// root-owned file with content of the sender's choosing wherever they
/// pointed.
#[test]
fn symlinked_tmp_and_new_receive_nothing() {
    if !running_as_root() {
        return;
    }
    let (pam, server) = sandbox();
    let home = pam.home("carol");
    let elsewhere = home.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    chown_tree(&elsewhere, CAROL_UID);
    for sub in ["tmp", "new"] {
        let link = home.join("Maildir").join(sub);
        fs::remove_dir(&link).unwrap();
        symlink(&elsewhere, &link).unwrap();
        lchown(&link, Some(CAROL_UID), Some(CAROL_UID)).unwrap();
    }
    let mut smtp = submitter(&server, "pamuser");
    let reply = submit(&mut smtp, &["carol@localhost"]);
    assert!(files(&elsewhere).is_empty(), "{:?}", files(&elsewhere));
    assert!(
        owned_by_root(&home).is_empty(),
        "{:?}",
        owned_by_root(&home)
    );
    assert!(reply.starts_with("451 "), "{reply}");
    server.wait_for_log("local delivery failed");
    assert!(
        server.log().contains("(a directory, not a symlink)"),
        "{}",
        server.log()
    );
}

/// Caught: with two recipients, the first got its copy before the second
/// failed; the client, told 451, sent again, and the first got the
/// message twice. The second fails on a `new/` that is a symlink to
/// another file system: refused at once now, and before, the one failure
/// root met only after the first copy was in place (the rename across
/// file systems).
#[test]
fn a_failure_for_one_recipient_delivers_to_none_and_a_retry_to_each_once() {
    if !running_as_root() {
        return;
    }
    let (pam, server) = sandbox();
    let elsewhere = tempfile::tempdir_in("/dev/shm").unwrap();
    let device = |path: &Path| fs::metadata(path).unwrap().dev();
    assert_ne!(
        device(elsewhere.path()),
        device(pam.root()),
        "/dev/shm must be another file system than the temporary directory"
    );
    chown_tree(elsewhere.path(), PAMUSER_UID);
    let pamuser_new = pam.home("pamuser").join("Maildir/new");
    fs::remove_dir(&pamuser_new).unwrap();
    symlink(elsewhere.path(), &pamuser_new).unwrap();
    lchown(&pamuser_new, Some(PAMUSER_UID), Some(PAMUSER_UID)).unwrap();

    let mut smtp = submitter(&server, "pamuser");
    let recipients = ["carol@localhost", "pamuser@localhost"];
    let reply = submit(&mut smtp, &recipients);
    assert!(reply.starts_with("451 "), "{reply}");
    let carol = pam.home("carol").join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        assert!(files(&carol.join(sub)).is_empty(), "carol's {sub}/");
    }
    assert!(files(&pam.home("pamuser").join("Maildir/tmp")).is_empty());
    assert!(files(elsewhere.path()).is_empty());

    fs::remove_file(&pamuser_new).unwrap();
    fs::create_dir(&pamuser_new).unwrap();
    chown_tree(&pamuser_new, PAMUSER_UID);
    assert_eq!(
        submit(&mut smtp, &recipients),
        "250 2.0.0 Message accepted for delivery"
    );
    for (user, uid) in [("carol", CAROL_UID), ("pamuser", PAMUSER_UID)] {
        let delivered = files(&pam.home(user).join("Maildir/new"));
        assert_eq!(delivered.len(), 1, "{user}: {delivered:?}");
        assert_eq!(fs::metadata(&delivered[0]).unwrap().uid(), uid);
    }
}

/// Caught: a known user whose Maildir did not exist yet was refused as
/// `no such local mailbox` (the MTA's job of creating it at the first
/// delivery was left undone).
#[test]
fn the_first_message_to_a_user_without_a_maildir_creates_it_as_theirs() {
    if !running_as_root() {
        return;
    }
    let (pam, server) = sandbox();
    let maildir = pam.home("carol").join("Maildir");
    fs::remove_dir_all(&maildir).unwrap();
    let mut smtp = submitter(&server, "pamuser");
    assert_eq!(
        submit(&mut smtp, &["carol@localhost"]),
        "250 2.0.0 Message accepted for delivery",
        "{}",
        server.log()
    );
    for path in [
        maildir.clone(),
        maildir.join("cur"),
        maildir.join("new"),
        maildir.join("tmp"),
    ] {
        let metadata = fs::metadata(&path).unwrap();
        assert!(metadata.is_dir(), "{path:?}");
        assert_eq!(metadata.uid(), CAROL_UID, "{path:?}");
        assert_eq!(metadata.mode() & 0o777, 0o700, "{path:?}");
    }
    assert_eq!(files(&maildir.join("new")).len(), 1);
    assert!(owned_by_root(&pam.home("carol")).is_empty());
}
