//! PAM end to end, without touching the host's users: the real binary runs
//! under `pam_wrapper` (PAM reads a service file of the test's own, whose
//! `pam_matrix` module checks a passdb file) and `nss_wrapper` (the passwd
//! database is a file of the test's own, giving uid, gid and home).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{deliver, make_maildir, popgate_bin, system_library, Options, Server};

const SERVICE: &str = "popgate-test";
pub(crate) const PASS: &str = "pam secret";

/// A sandbox of PAM and passwd files, and the environment that activates it.
/// Users (password [`PASS`]): pamuser (uid 20001), carol (20002), locked
/// (another service only), lowuid (500), sleepy (PAM hangs 20 s).
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

    pub(crate) fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
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

    pub(crate) fn server(&self, auth: &[&str]) -> Server {
        self.server_with(auth, &[])
    }

    /// A server on this sandbox with extra `[auth]` and `[pop3]` lines.
    pub(crate) fn server_with(&self, auth: &[&str], pop3: &[&str]) -> Server {
        let mut lines: Vec<String> = vec!["failure_delay = \"100ms\"".into()];
        lines.extend(auth.iter().map(|l| l.to_string()));
        Server::with(Options {
            users: Vec::new(),
            backend: Some(format!("backend = \"pam\"\npam_service = \"{SERVICE}\"")),
            maildir: Some("~/Maildir".into()),
            auth: lines,
            pop3: pop3.iter().map(|l| l.to_string()).collect(),
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

fn pass(server: &Server, user: &str, password: &str) -> String {
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
    let server = pam.server(&["check_timeout = \"2s\"", "max_checks = 4"]);
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
