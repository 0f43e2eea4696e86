//! Started as root for virtual users with `[store] mail_user`, popgate binds
//! its ports and then runs as that user: every id of the process changes,
//! and it still serves (and deletes) mail that user owns. Needs root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{deliver, make_maildir, message_files, spawn_serve, Client, PASSWORD};

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// The `Uid:`/`Gid:` lines of /proc/PID/status: real, effective, saved, fs.
fn ids(pid: u32, key: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn root_becomes_the_mail_user_after_binding_and_still_serves_its_mail() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: becoming the mail user needs root (CI runs as root)");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    let maildir = root.join("mail").join("alice");
    make_maildir(&maildir);
    deliver(
        &maildir,
        1_700_000_000,
        b"Subject: owned by the mail user\n\nbody\n",
    );
    chown_tree(&root.join("mail"), uid, gid);
    let hash = popgate_auth::hash_password_bcrypt(PASSWORD, 4).unwrap();
    fs::write(root.join("users.htpasswd"), format!("alice:{hash}\n")).unwrap();
    let config = root.join("popgate.toml");
    fs::write(
        &config,
        format!(
            "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\nlogin = \"plaintext\"\n\
             [auth]\nhtpasswd = \"{root}/users.htpasswd\"\nfailure_delay = \"100ms\"\n\
             [store]\nmaildir = \"{root}/mail/%u\"\nmail_user = \"nobody\"\n",
            root = root.display()
        ),
    )
    .unwrap();
    let (mut child, log, addrs) = spawn_serve(&config, 1, &[]);
    let pid = child.id();
    assert_eq!(ids(pid, "Uid:"), [uid; 4], "uids of the running server");
    assert_eq!(ids(pid, "Gid:"), [gid; 4], "gids of the running server");
    let mut client = Client::connect(addrs["pop3"], None);
    client.ok("USER alice");
    client.ok(&format!("PASS {PASSWORD}"));
    client.ok("DELE 1");
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert!(message_files(&maildir).is_empty());
    let _ = child.kill();
    let _ = child.wait();
    assert!(log
        .lock()
        .unwrap()
        .join("\n")
        .contains("running as mail user nobody"));
}

#[test]
fn an_unknown_mail_user_stops_start_up_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("popgate.toml");
    fs::write(&config, "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n[auth]\nhtpasswd = \"/dev/null\"\n[store]\nmail_user = \"no-such-user-here\"\n").unwrap();
    let output = std::process::Command::new(crate::harness::popgate_bin())
        .args(["serve", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("store.mail_user") && error.contains("no-such-user-here"),
        "{error}"
    );
}
