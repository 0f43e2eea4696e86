//! Migration from Dovecot: a private Dovecot (Debian's dovecot-pop3d) serves
//! a Maildir first and writes its `dovecot-uidlist`; then popgate serves the
//! same Maildir, and its UIDL and LIST answers must equal Dovecot's.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{chown_tree_to, deliver, Client, Server};

const DOVECOT: &str = "/usr/sbin/dovecot";
const DOVECOT_PASSWORD: &str = "dovecot secret";

/// A private Dovecot instance: its own base_dir, config and users, POP3 on
/// a free loopback port, stopped on drop.
struct Dovecot {
    dir: tempfile::TempDir,
    child: Child,
    addr: SocketAddr,
}

impl Dovecot {
    /// Starts Dovecot serving `mail_root/%u` as Maildirs, with extra
    /// settings appended to its configuration.
    fn start(mail_root: &Path, extra: &str) -> Dovecot {
        assert!(
            Path::new(DOVECOT).exists(),
            "{DOVECOT} missing: run scripts/system-deps.sh test (dovecot-core, dovecot-pop3d)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("run")).unwrap();
        fs::create_dir(d.join("state")).unwrap();
        // Dovecot never gives mail access to root; a root test run hands the
        // mail to `nobody`, any other run keeps its own user.
        let (uid, gid) = mail_owner();
        fs::write(
            d.join("users"),
            format!(
                "alice:{{PLAIN}}{DOVECOT_PASSWORD}:{uid}:{gid}::{}/alice::\n",
                mail_root.display()
            ),
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let unprivileged = if my_ids().0 == 0 {
            String::new()
        } else {
            let me = Command::new("id").arg("-un").output().unwrap().stdout;
            let me = String::from_utf8(me).unwrap();
            let me = me.trim();
            format!("default_internal_user = {me}\ndefault_login_user = {me}\n")
        };
        let config = format!(
            "instance_name = popgate-test-{port}\n\
             base_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             protocols = pop3\nlisten = 127.0.0.1\nssl = no\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain\n\
             first_valid_uid = 1\n{unprivileged}\
             passdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n}}\n\
             mail_location = maildir:{mail}/%u\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
             inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             {extra}\n",
            d = d.display(),
            mail = mail_root.display(),
        );
        fs::write(d.join("dovecot.conf"), config).unwrap();
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let dovecot = Dovecot {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
        };
        dovecot.wait_ready();
        dovecot
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not start; log:\n{}",
                fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Logs in as alice over plaintext POP3.
    fn login(&self) -> Client {
        let mut client = Client::connect(self.addr, None);
        client.ok("USER alice");
        client.ok(&format!("PASS {DOVECOT_PASSWORD}"));
        client
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // `dovecot stop` lets the master take its children down with it.
        let _ = Command::new(DOVECOT)
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The uid and gid Dovecot accesses the mail as.
fn mail_owner() -> (u32, u32) {
    match my_ids() {
        (0, _) => (65534, 65534),
        ids => ids,
    }
}

/// This process's uid and gid, as the owner of a file it creates.
fn my_ids() -> (u32, u32) {
    let file = tempfile::NamedTempFile::new().unwrap();
    let metadata = file.as_file().metadata().unwrap();
    (metadata.uid(), metadata.gid())
}

/// Hands a Maildir to the mail owner and lets it reach the directory.
fn give_to_mail_owner(server: &Server, maildir: &Path) {
    let (uid, gid) = mail_owner();
    let mut dirs = vec![
        server.dir.path().to_path_buf(),
        server.dir.path().join("mail"),
    ];
    dirs.retain(|dir| dir.is_dir());
    for dir in dirs {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    chown_tree_to(maildir, uid, gid);
}

/// A mailbox with messages in new/ and cur/, some flagged, one with a dot
/// line, one with CRLF line ends.
fn fill(maildir: &Path) -> Vec<PathBuf> {
    let mut names = Vec::new();
    for i in 0..6u64 {
        let body = match i {
            2 => "Subject: dots\n\n.leading dot\n..two\n".to_string(),
            4 => "Subject: crlf\r\n\r\nline one\r\nline two\r\n".to_string(),
            _ => format!("Subject: message {i}\nFrom: a@example.com\n\nbody {i}\n"),
        };
        names.push(
            maildir
                .join("new")
                .join(deliver(maildir, 1_700_000_000 + i, body.as_bytes())),
        );
    }
    // Two messages already seen by a reader, with flags.
    for (i, path) in names.iter().enumerate().take(2) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let flags = if i == 0 { "S" } else { "FS" };
        fs::rename(path, maildir.join("cur").join(format!("{name}:2,{flags}"))).unwrap();
    }
    names
}

/// UIDL and LIST from one session, then QUIT without deleting.
fn listings(client: &mut Client) -> (Vec<String>, Vec<String>) {
    let (_, uidl) = client.multi("UIDL");
    let (_, list) = client.multi("LIST");
    client.ok("QUIT");
    (uidl, list)
}

fn migrate_and_compare(dovecot_extra: &str) -> (Vec<String>, String) {
    let server = Server::start();
    let maildir = server.maildir("alice");
    fill(&maildir);
    give_to_mail_owner(&server, &maildir);
    let (dovecot_uidl, dovecot_list) = {
        let dovecot = Dovecot::start(&server.dir.path().join("mail"), dovecot_extra);
        let mut client = dovecot.login();
        listings(&mut client)
    };
    let uidlist = fs::read_to_string(maildir.join("dovecot-uidlist"))
        .expect("Dovecot wrote no dovecot-uidlist");
    assert_eq!(dovecot_uidl.len(), 6, "{dovecot_uidl:?}");
    let mut client = server.login("alice");
    let (popgate_uidl, popgate_list) = listings(&mut client);
    assert_eq!(popgate_uidl, dovecot_uidl, "dovecot-uidlist:\n{uidlist}");
    assert_eq!(popgate_list, dovecot_list);
    // Messages delivered after the switch get popgate's own UIDLs.
    let name = deliver(&maildir, 1_800_000_000, b"Subject: after\n\nnew\n");
    let mut client = server.login("alice");
    let (after, _) = listings(&mut client);
    assert_eq!(after.get(..6), Some(&dovecot_uidl[..]));
    assert_eq!(after.get(6), Some(&format!("7 {name}")));
    (dovecot_uidl, uidlist)
}

#[test]
fn popgate_serves_the_uidls_dovecot_served_by_default() {
    let (uidls, uidlist) = migrate_and_compare("");
    // Dovecot's default pop3_uidl_format, %08Xu%08Xv, in lowercase hex.
    let validity: u32 = uidlist
        .lines()
        .next()
        .and_then(|header| header.split(' ').find_map(|f| f.strip_prefix('V')))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(uidls[0], format!("1 00000001{validity:08x}"));
}

#[test]
fn popgate_serves_uidls_dovecot_saved_in_p_fields() {
    let (uidls, uidlist) =
        migrate_and_compare("pop3_save_uidl = yes\npop3_uidl_format = %v.%u-%f\n");
    assert!(uidlist.contains(" P"), "no P fields saved:\n{uidlist}");
    assert!(uidls[0].contains(".1-1700000000."), "{uidls:?}");
}
