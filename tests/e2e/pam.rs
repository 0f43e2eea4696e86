//! PAM end to end, without touching the host's users: the real binary runs
//! under `pam_wrapper` (PAM reads a service file of the test's own, whose
//! `pam_matrix` module checks a passdb file) and `nss_wrapper` (the passwd
//! database is a file of the test's own, giving uid, gid and home).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{deliver, make_maildir, popgate_bin, system_library, Client, Options, Server};

const SERVICE: &str = "popgate-test";
/// Every sandbox user's password.
pub(crate) const PASS: &str = "pam secret";

/// A sandbox of PAM and passwd files, and the environment that activates it.
/// Its users, each with a Maildir in its home (owned by it when the tests
/// run as root): pamuser (uid 20001), carol (20002), locked (20003, PAM's
/// account stack refuses it), lowuid (500, below `min_uid`), sleepy (20004,
/// its PAM check hangs for 20 seconds).
pub(crate) struct PamSandbox {
    dir: tempfile::TempDir,
}

impl PamSandbox {
    pub(crate) fn new() -> PamSandbox {
        let dir = tempfile::tempdir().unwrap();
        // The server may read homes with the users' uids (file identity).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path();
        fs::write(
            root.join("passdb"),
            format!(
                "pamuser:{PASS}:{SERVICE}\n\
                 carol:{PASS}:{SERVICE}\n\
                 locked:{PASS}:some-other-service\n\
                 lowuid:{PASS}:{SERVICE}\n\
                 sleepy:{PASS}:{SERVICE}\n"
            ),
        )
        .unwrap();
        let mut passwd = String::new();
        for (name, uid) in [
            ("pamuser", 20001),
            ("carol", 20002),
            ("locked", 20003),
            ("lowuid", 500),
            ("sleepy", 20004),
        ] {
            let home = root.join("home").join(name);
            make_maildir(&home.join("Maildir"));
            chown_tree(&home, uid);
            passwd.push_str(&format!(
                "{name}:x:{uid}:{uid}:test user:{}:/bin/false\n",
                home.display()
            ));
        }
        fs::write(root.join("passwd"), passwd).unwrap();
        fs::write(root.join("group"), "users:x:100:\n").unwrap();
        let services = root.join("pam.d");
        fs::create_dir(&services).unwrap();
        let matrix = format!(
            "{} passdb={}",
            system_library("pam_wrapper/pam_matrix.so").display(),
            root.join("passdb").display()
        );
        // `sleepy` goes through a module that hangs for 20 seconds first.
        fs::write(
            services.join(SERVICE),
            format!(
                "auth [success=ignore default=1] {} quiet user = sleepy\n\
                 auth requisite {} quiet /bin/sleep 20\n\
                 auth required {matrix}\n\
                 account required {matrix}\n",
                system_library("security/pam_succeed_if.so").display(),
                system_library("security/pam_exec.so").display(),
            ),
        )
        .unwrap();
        PamSandbox { dir }
    }

    /// The home directory of `user`.
    pub(crate) fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }

    /// The directory that holds the homes, the PAM and the passwd files.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self) -> Vec<(String, String)> {
        let root = self.dir.path();
        let mut env = pam_wrapper_env(&root.join("pam.d"));
        env[0].1.push_str(&format!(
            " {}",
            system_library("libnss_wrapper.so").display()
        ));
        env.push((
            "NSS_WRAPPER_PASSWD".into(),
            root.join("passwd").display().to_string(),
        ));
        env.push((
            "NSS_WRAPPER_GROUP".into(),
            root.join("group").display().to_string(),
        ));
        env
    }

    /// A server for these users, their Maildirs at `~/Maildir`, with these
    /// extra `[auth]` lines.
    pub(crate) fn server(&self, auth: &[&str]) -> Server {
        self.server_with("~/Maildir", auth, &[], None)
    }

    /// A server for these users with the Maildir template `maildir`, extra
    /// `[auth]` and `[pop3]` lines, and `[submission]` lines when it is to
    /// have submission.
    pub(crate) fn server_with(
        &self,
        maildir: &str,
        auth: &[&str],
        pop3: &[&str],
        submission: Option<Vec<String>>,
    ) -> Server {
        let mut lines: Vec<String> = vec!["failure_delay = \"100ms\"".into()];
        lines.extend(auth.iter().map(|l| l.to_string()));
        Server::with(Options {
            users: Vec::new(),
            backend: Some(format!("backend = \"pam\"\npam_service = \"{SERVICE}\"")),
            maildir: Some(maildir.into()),
            auth: lines,
            pop3: pop3.iter().map(|l| l.to_string()).collect(),
            submission,
            env: self.env(),
            ..Options::default()
        })
    }
}

/// The environment that makes PAM read its service files from `services`
/// (`LD_PRELOAD` first, so callers may add to it).
pub fn pam_wrapper_env(services: &Path) -> Vec<(String, String)> {
    vec![
        (
            "LD_PRELOAD".into(),
            system_library("libpam_wrapper.so").display().to_string(),
        ),
        ("PAM_WRAPPER".into(), "1".into()),
        (
            "PAM_WRAPPER_SERVICE_DIR".into(),
            services.display().to_string(),
        ),
    ]
}

/// Writes a service file `name` in `services` that checks `passdb` with
/// pam_matrix (auth and account).
pub fn write_matrix_service(services: &Path, name: &str, passdb: &Path) {
    fs::create_dir_all(services).unwrap();
    let matrix = format!(
        "{} passdb={}",
        system_library("pam_wrapper/pam_matrix.so").display(),
        passdb.display()
    );
    fs::write(
        services.join(name),
        format!("auth required {matrix}\naccount required {matrix}\n"),
    )
    .unwrap();
}

/// Gives `path` and everything below it to `uid` when running as root (the
/// server then opens it with that uid); else leaves it to the test's user.
pub fn chown_tree(path: &Path, uid: u32) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// True when running as root; otherwise says why the test is skipped. For
/// tests of what the server does with each user's uid, which it can only
/// do as root.
pub fn running_as_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "skipped: acting with each user's uid needs a server running as root \
         (CI runs the tests as root)"
    );
    false
}

/// `PASS` for `user` over TLS: the server's answer.
pub fn pass(server: &Server, user: &str, password: &str) -> String {
    let mut client = server.connect_tls();
    client.ok(&format!("USER {user}"));
    client.cmd(&format!("PASS {password}"))
}

#[test]
fn pam_users_log_in_to_their_home_maildir() {
    let pam = PamSandbox::new();
    let maildir = pam.home("pamuser").join("Maildir");
    deliver(&maildir, 1_700_000_000, b"Subject: hi\n\nfrom PAM\n");
    chown_tree(&pam.home("pamuser"), 20001);
    let server = pam.server(&[]);

    let mut client = server.connect_tls();
    client.ok("USER pamuser");
    assert!(
        client.cmd(&format!("PASS {PASS}")).starts_with("+OK"),
        "log:\n{}",
        server.log()
    );
    assert_eq!(
        client.ok("STAT"),
        format!("+OK 1 {}", "Subject: hi\r\n\r\nfrom PAM\r\n".len())
    );
    client.ok("QUIT");

    assert_eq!(
        pass(&server, "pamuser", "wrong"),
        "-ERR [AUTH] Authentication failed"
    );
    assert_eq!(
        pass(&server, "nosuchuser", PASS),
        "-ERR [AUTH] Authentication failed"
    );
}

/// Caught: a user whose MTA had not delivered yet (no Maildir) could not
/// log in at all (`-ERR [SYS/PERM]`); Dovecot gives an empty mailbox.
#[test]
fn a_first_login_creates_the_maildir_and_its_parents_as_the_user() {
    if !running_as_root() {
        return;
    }
    let pam = PamSandbox::new();
    let home = pam.home("carol");
    fs::remove_dir_all(home.join("Maildir")).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let server = pam.server_with("~/mail/box/Maildir", &[], &[], None);

    let mut client = server.connect_tls();
    client.ok("USER carol");
    assert_eq!(
        client.cmd(&format!("PASS {PASS}")),
        "+OK Logged in, 0 messages (0 octets)",
        "{}",
        server.log()
    );
    assert_eq!(client.ok("STAT"), "+OK 0 0");
    client.ok("QUIT");
    let maildir = home.join("mail/box/Maildir");
    for path in [
        home.join("mail"),
        home.join("mail/box"),
        maildir.clone(),
        maildir.join("cur"),
        maildir.join("new"),
        maildir.join("tmp"),
    ] {
        let metadata = fs::metadata(&path).unwrap();
        assert!(metadata.is_dir(), "{path:?}");
        assert_eq!((metadata.uid(), metadata.gid()), (20002, 20002), "{path:?}");
        assert_eq!(metadata.mode() & 0o777, 0o700, "{path:?}");
    }
}

/// Caught: a Maildir path that is a regular file, or a symlink to nothing,
/// answered `[SYS/PERM]` (as if the mailbox were gone for good) instead of
/// a temporary error an admin can fix, and nothing named the path in the log.
#[test]
fn a_maildir_that_is_not_a_directory_is_a_temporary_error_with_a_log_line() {
    if !running_as_root() {
        return;
    }
    let pam = PamSandbox::new();
    let file = pam.home("pamuser").join("Maildir");
    fs::remove_dir_all(&file).unwrap();
    fs::write(&file, b"not a Maildir").unwrap();
    chown_tree(&file, 20001);
    let dangling = pam.home("carol").join("Maildir");
    fs::remove_dir_all(&dangling).unwrap();
    std::os::unix::fs::symlink(pam.home("carol").join("nowhere"), &dangling).unwrap();
    let server = pam.server(&[]);

    for (user, path) in [("pamuser", &file), ("carol", &dangling)] {
        assert_eq!(
            pass(&server, user, PASS),
            "-ERR [SYS/TEMP] Mailbox is temporarily unavailable",
            "{user}"
        );
        let log = server.wait_for_log(&format!("{:?}", path.display().to_string()));
        assert!(log.contains("mailbox not opened"), "{log}");
    }
    assert_eq!(fs::read(&file).unwrap(), b"not a Maildir");
    assert!(!pam.home("carol").join("nowhere").exists());
}

#[test]
fn the_account_stack_and_min_uid_refuse_right_passwords() {
    let pam = PamSandbox::new();
    let server = pam.server(&["disabled_users = [\"carol\"]"]);
    // pam_matrix's account module allows `locked` another service only.
    assert_eq!(
        pass(&server, "locked", PASS),
        "-ERR [AUTH] Authentication failed"
    );
    // uid 500 is below min_uid (1000).
    assert_eq!(
        pass(&server, "lowuid", PASS),
        "-ERR [AUTH] Authentication failed"
    );
    server.wait_for_log("below min_uid");
    // POP3 switched off for carol: said only after the right password.
    assert_eq!(
        pass(&server, "carol", PASS),
        "-ERR [SYS/PERM] POP3 access is disabled for this mailbox"
    );
    assert_eq!(
        pass(&server, "carol", "wrong"),
        "-ERR [AUTH] Authentication failed"
    );
    let log = server.log();
    assert!(!log.contains(PASS), "password logged:\n{log}");
}

#[test]
fn a_hanging_pam_module_stalls_only_its_own_login() {
    let pam = PamSandbox::new();
    // Twelve slots: this address's share is three, room for both hung
    // checks and the login beside them.
    let server = pam.server(&["check_timeout = \"2s\"", "max_checks = 12"]);
    let started = Instant::now();
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let mut client = server.connect_tls();
            client.ok("USER sleepy");
            client.send(&format!("PASS {PASS}"));
            client
        })
        .collect();
    // While two checks hang, another user logs in at once.
    std::thread::sleep(Duration::from_millis(300));
    let mut other = server.connect_tls();
    other.ok("USER pamuser");
    let before = Instant::now();
    assert!(other.cmd(&format!("PASS {PASS}")).starts_with("+OK"));
    assert!(before.elapsed() < Duration::from_secs(2));
    for mut sleeper in sleepers {
        assert_eq!(
            sleeper.line(),
            "-ERR [SYS/TEMP] Authentication is temporarily unavailable"
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the hung module was waited for"
    );
}

#[test]
fn a_missing_service_file_stops_start_up() {
    let pam = PamSandbox::new();
    let path = pam.dir.path().join("popgate.toml");
    fs::write(
        &path,
        "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n\
         [auth]\nbackend = \"pam\"\npam_service = \"popgate-absent\"\n\
         [store]\nmaildir = \"~/Maildir\"\n",
    )
    .unwrap();
    let output = Command::new(popgate_bin())
        .args(["serve", "-c"])
        .arg(&path)
        .envs(pam.env())
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{error}");
    assert!(
        error.contains("PAM service \"popgate-absent\" has no service file"),
        "{error}"
    );
    assert!(error.contains(&pam.dir.path().join("pam.d").display().to_string()));
}

#[test]
#[should_panic(expected = "pam_wrapper/not-installed.so is not installed: looked in /usr/lib/")]
fn a_missing_library_is_named_with_the_directories_searched() {
    system_library("pam_wrapper/not-installed.so");
}

/// Issue 10 item 4: one client address cannot hold every password-check
/// slot. 127.0.0.1 starts four logins of `sleepy`, whose PAM stack hangs
/// for 20 s, with `max_checks = 4`; before, they took all four slots and
/// 127.0.0.2's login waited out `check_timeout` and got `[SYS/TEMP]`. Now an
/// address holds at most a quarter of the slots (here one), its further
/// logins wait for its own, and the other address is answered at once.
#[test]
fn one_address_cannot_hold_every_check_slot() {
    let pam = PamSandbox::new();
    let server = pam.server(&["check_timeout = \"8s\"", "max_checks = 4"]);
    let source = |ip: &str| ip.parse::<std::net::IpAddr>().unwrap();
    let sleepers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = Client::connect_from(
                source("127.0.0.1"),
                server.tls,
                Some(server.client_config()),
            );
            client.ok("USER sleepy");
            client.send(&format!("PASS {PASS}"));
            client
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut other = Client::connect_from(
        source("127.0.0.2"),
        server.tls,
        Some(server.client_config()),
    );
    other.ok("USER pamuser");
    let before = Instant::now();
    let reply = other.cmd(&format!("PASS {PASS}"));
    let took = before.elapsed();
    assert!(reply.starts_with("+OK"), "{reply}\n{}", server.log());
    assert!(took < Duration::from_secs(4), "{took:?}");
    // The sleepers themselves get [SYS/TEMP] when check_timeout ends.
    for mut sleeper in sleepers {
        assert_eq!(
            sleeper.line(),
            "-ERR [SYS/TEMP] Authentication is temporarily unavailable"
        );
    }
}
