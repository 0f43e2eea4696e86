//! Started as root for virtual users with `[store] mail_user`, popgate binds
//! its ports and then runs as that user: every id of the process changes,
//! and it still serves (and deletes) mail that user owns; files it can no
//! longer read are named at start and keep their contents on reload. Needs
//! root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::harness::{
    message_files, serve_refused, spawn_serve, trusting, wait_for_line, Client, MailUserSandbox,
    PASSWORD,
};

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
    let Some(sandbox) = MailUserSandbox::new() else {
        return;
    };
    let (root, uid, gid) = (sandbox.root(), sandbox.uid, sandbox.gid);
    sandbox.deliver(1_700_000_000, b"Subject: owned by the mail user\n\nbody\n");
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
    assert!(message_files(&sandbox.maildir).is_empty());
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
    let error = serve_refused(&config);
    assert!(
        error.contains("store.mail_user") && error.contains("no-such-user-here"),
        "{error}"
    );
}

/// Issue 10 item 7: files popgate re-reads after dropping to `mail_user`
/// must not turn into `[SYS/TEMP]` for every login at the first reload. The
/// htpasswd file, the TLS key and the mailbox-settings file are root's
/// alone (0600), as an admin or certbot leaves them. Start-up warns, naming
/// each; after the htpasswd file changes, logins go on with the users
/// loaded at start, and the log says so in one line, not one per login;
/// SIGHUP keeps the old certificate, users and mailbox settings too (issue
/// 12: alice's own `on_dele = "keep"` still applies after it). Before, the
/// first change made every login `[SYS/TEMP]`, and nothing at start-up
/// said it would.
#[test]
fn files_the_mail_user_cannot_read_keep_their_contents_and_are_named_at_start() {
    let Some(sandbox) = MailUserSandbox::new() else {
        return;
    };
    let root = sandbox.root();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    fs::write(root.join("cert.pem"), certified.cert.pem()).unwrap();
    let key = root.join("key.pem");
    fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let htpasswd = root.join("users.htpasswd");
    let entry = |user: &str| {
        format!(
            "{user}:{}\n",
            popgate_auth::hash_password_bcrypt(PASSWORD, 4).unwrap()
        )
    };
    let mailboxes = root.join("mailboxes.toml");
    fs::write(&mailboxes, "[alice]\non_dele = \"keep\"\n").unwrap();
    for file in [&htpasswd, &key, &mailboxes] {
        fs::set_permissions(file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = root.join("popgate.toml");
    fs::write(
        &config,
        format!(
            "[tls]\ncert = \"{root}/cert.pem\"\nkey = \"{root}/key.pem\"\n\
             [pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\nlogin = \"plaintext\"\n\
             [auth]\nhtpasswd = \"{root}/users.htpasswd\"\nfailure_delay = \"10ms\"\n\
             mailbox_settings = \"{root}/mailboxes.toml\"\n\
             [store]\nmaildir = \"{root}/mail/%u\"\nmail_user = \"nobody\"\n",
            root = root.display()
        ),
    )
    .unwrap();
    let (mut child, lines, addrs) = spawn_serve(&config, 1, &[]);
    let log = || lines.lock().unwrap().join("\n");
    let wait_for = |needle: &str| wait_for_line(&lines, needle);
    for (key, path) in [
        ("auth.htpasswd", &htpasswd),
        ("tls.key", &key),
        ("auth.mailbox_settings", &mailboxes),
    ] {
        let warning = format!(
            "{} (`{key}`) is not readable by mail user nobody",
            path.display()
        );
        assert!(
            wait_for(&warning).contains(&warning),
            "{warning}\n{}",
            log()
        );
    }
    assert!(!log().contains("cert.pem (`tls.cert`)"), "{}", log());
    let login = |user: &str| {
        let mut client = Client::connect(addrs["pop3"], None);
        client.ok(&format!("USER {user}"));
        let reply = client.cmd(&format!("PASS {PASSWORD}"));
        client.cmd("QUIT");
        reply
    };
    assert!(login("alice").starts_with("+OK"));

    // bob is added; the file stays root's. Logins over more than two change
    // checks (at most one a second) all go on with the users of the start.
    fs::write(&htpasswd, entry("alice") + &entry("bob")).unwrap();
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        let reply = login("alice");
        assert!(reply.starts_with("+OK"), "{reply}\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(login("bob"), "-ERR [AUTH] Authentication failed");
    let unloaded =
        "htpasswd file changed but cannot be loaded: the users loaded before stay in force";
    assert_eq!(log().matches(unloaded).count(), 1, "{}", log());
    assert!(log().contains("Permission denied"), "{}", log());

    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for line in [
        "TLS certificate not reloaded, keeping the old one",
        "user database not reloaded, keeping the old one",
        "mailbox settings not reloaded, keeping the old one",
        "old contents kept: tls.cert, auth.htpasswd, auth.mailbox_settings",
    ] {
        assert!(wait_for(line).contains(line), "{line}\n{}", log());
    }
    // alice's own on_dele, from the file read at start as root, still holds.
    sandbox.deliver(1_700_000_000, b"Subject: kept\n\nbody\n");
    let mut client = Client::connect(addrs["pop3"], None);
    client.ok("USER alice");
    client.ok(&format!("PASS {PASSWORD}"));
    client.ok("DELE 1");
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert_eq!(
        message_files(&sandbox.maildir).len(),
        1,
        "kept, as alice's file says"
    );
    // STLS still works with the certificate loaded at start.
    let client = Client::connect(addrs["pop3"], None);
    let mut client = client.stls(trusting(certified.cert.der().clone()));
    client.ok("USER alice");
    assert!(client.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    let _ = child.kill();
    let _ = child.wait();
}

/// The configuration file itself left root's alone (0600): start-up names
/// it, and SIGHUP, which can no longer read it, refuses in one line while
/// the configuration read at start serves on. Before issue 12 a reload
/// never read the file; now it does, and must not take the server down
/// with it.
#[test]
fn a_configuration_the_mail_user_cannot_read_is_named_and_kept_on_reload() {
    let Some(sandbox) = MailUserSandbox::new() else {
        return;
    };
    let root = sandbox.root();
    let config = root.join("popgate.toml");
    fs::write(
        &config,
        format!(
            "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\nlogin = \"plaintext\"\n\
             banner = \"as started\"\n\
             [auth]\nhtpasswd = \"{root}/users.htpasswd\"\n\
             [store]\nmaildir = \"{root}/mail/%u\"\nmail_user = \"nobody\"\n",
            root = root.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    let (mut child, lines, addrs) = spawn_serve(&config, 1, &[]);
    let log = || lines.lock().unwrap().join("\n");
    let wait_for = |needle: &str| wait_for_line(&lines, needle);
    let warning = format!(
        "{} (`configuration`) is not readable by mail user nobody",
        config.display()
    );
    assert!(wait_for(&warning).contains(&warning), "{}", log());
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let refused = "configuration not reloaded, the old one stays in force";
    let text = wait_for(refused);
    let line = text.lines().find(|l| l.contains(refused)).unwrap_or("");
    assert!(line.contains("Permission denied"), "{text}");
    let mut client = Client::connect(addrs["pop3"], None);
    assert_eq!(client.greeting, "+OK as started");
    client.ok("USER alice");
    client.ok(&format!("PASS {PASSWORD}"));
    let _ = child.kill();
    let _ = child.wait();
}
