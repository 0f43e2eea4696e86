//! File identity, as root, with two real system users created by the test
//! (and removed afterwards, also when it fails): a session reads its
//! Maildir with its user's rights, so symlinks to another user's mail or to
//! `/etc/shadow` are never served, another user's mailbox cannot be
//! opened, and a message the user could not delete is not deleted. Passwords are checked by pam_matrix under pam_wrapper; uid, gid
//! and home come from the host's real passwd database.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{deliver, make_maildir, Options, Server};
use crate::pam::{chown_tree, pam_wrapper_env, write_matrix_service};

const SERVICE: &str = "popgate-identity";
const PASS: &str = "identity secret";

/// A system user that exists while this value lives.
struct SystemUser {
    name: String,
    uid: u32,
    home: PathBuf,
}

impl SystemUser {
    fn create(name: String, home: PathBuf) -> SystemUser {
        let status = Command::new("useradd")
            .args([
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg("--home-dir")
            .arg(&home)
            .arg(&name)
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name} failed");
        // From here on, the guard removes the user whatever happens.
        let mut user = SystemUser { uid: 0, name, home };
        user.uid = nix::unistd::User::from_name(&user.name)
            .unwrap()
            .unwrap()
            .uid
            .as_raw();
        make_maildir(&user.maildir());
        chown_tree(&user.home, user.uid);
        fs::set_permissions(&user.home, fs::Permissions::from_mode(0o700)).unwrap();
        user
    }

    fn maildir(&self) -> PathBuf {
        self.home.join("Maildir")
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "skipped: the file-identity test creates system users and needs root (CI runs as root)"
    );
    false
}

fn server(root: &Path, maildir: &str, users: &[&SystemUser]) -> Server {
    fs::create_dir_all(root).unwrap();
    let passdb = root.join("passdb");
    let entries: String = users
        .iter()
        .map(|u| format!("{}:{PASS}:{SERVICE}\n", u.name))
        .collect();
    fs::write(&passdb, entries).unwrap();
    write_matrix_service(&root.join("pam.d"), SERVICE, &passdb);
    Server::with(Options {
        users: Vec::new(),
        backend: Some(format!("backend = \"pam\"\npam_service = \"{SERVICE}\"")),
        maildir: Some(maildir.into()),
        env: pam_wrapper_env(&root.join("pam.d")),
        ..Options::default()
    })
}

fn login(server: &Server, user: &str) -> (crate::harness::Client, String) {
    let mut client = server.connect_tls();
    client.ok(&format!("USER {user}"));
    let reply = client.cmd(&format!("PASS {PASS}"));
    (client, reply)
}

#[test]
fn sessions_touch_only_what_their_user_may() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    let tag = std::process::id() % 100_000;
    let ann = SystemUser::create(format!("pgann{tag}"), root.join("ann"));
    let ben = SystemUser::create(format!("pgben{tag}"), root.join("ben"));

    let own = "Subject: ann's own\n\nmine\n";
    deliver(&ann.maildir(), 1_700_000_000, own.as_bytes());
    let secret = "Subject: ben's secret\n\nprivate\n";
    let ben_name = deliver(&ben.maildir(), 1_700_000_001, secret.as_bytes());
    let ben_file = ben.maildir().join("new").join(&ben_name);
    symlink(
        &ben_file,
        ann.maildir().join("cur/1700000002.link.host:2,S"),
    )
    .unwrap();
    symlink(
        "/etc/shadow",
        ann.maildir().join("new/1700000003.shadow.host"),
    )
    .unwrap();
    chown_tree(&ann.home, ann.uid);
    chown_tree(&ben.home, ben.uid);

    let server = server(root, "~/Maildir", &[&ann, &ben]);
    let (mut client, reply) = login(&server, &ann.name);
    assert!(reply.starts_with("+OK"), "{reply}\n{}", server.log());
    // Only the regular file is a message; the symlinks are skipped.
    let own_size = own.len() + own.matches('\n').count();
    assert_eq!(client.ok("STAT"), format!("+OK 1 {own_size}"));
    let (_, body) = client.retrieve("RETR 1");
    assert_eq!(String::from_utf8_lossy(&body), own.replace('\n', "\r\n"));
    assert!(client.cmd("RETR 2").starts_with("-ERR"));
    client.ok("QUIT");
    // What the session wrote, it wrote as ann.
    let lock = fs::metadata(ann.maildir().join(popgate_store::LOCK_FILE)).unwrap();
    assert_eq!(lock.uid(), ann.uid);
    assert_eq!(fs::read_to_string(&ben_file).unwrap(), secret);

    // A server whose template points everyone at ben's Maildir: ann's
    // session cannot open it, ben's can.
    let ben_dir = format!("{}", ben.maildir().display());
    let crossed = self::server(&root.join("crossed"), &ben_dir, &[&ann, &ben]);
    let (_, reply) = login(&crossed, &ann.name);
    assert!(reply.starts_with("-ERR [SYS/"), "{reply}");
    let (mut client, reply) = login(&crossed, &ben.name);
    assert!(reply.starts_with("+OK"), "{reply}");
    assert!(client.ok("STAT").starts_with("+OK 1 "));
    client.ok("QUIT");

    // A message ann may read but not delete (its directory is root's):
    // DELE and QUIT leave it in place and say so.
    fs::remove_file(ann.maildir().join("new/1700000003.shadow.host")).unwrap();
    let cur = ann.maildir().join("cur");
    nix::unistd::chown(&cur, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    fs::set_permissions(&cur, fs::Permissions::from_mode(0o755)).unwrap();
    let (mut client, reply) = login(&server, &ann.name);
    assert!(reply.starts_with("+OK"), "{reply}");
    client.ok("DELE 1");
    assert_eq!(
        client.cmd("QUIT"),
        "-ERR [SYS/TEMP] Some deleted messages were not removed: 1"
    );
    assert_eq!(
        fs::read_dir(&cur).unwrap().count(),
        2,
        "message and link remain"
    );
}
