//! The Debian package, built, installed, used, removed and purged for real.
//!
//! `scripts/package --binary` packages the popgate binary that `cargo test`
//! already built (a release build would cost CI minutes and test nothing
//! more about the packaging), and dpkg installs the .deb into a throwaway
//! Debian root: a copy of a minimal `debootstrap` of the host's release,
//! made once and cached under `target/package-test/`. Everything then runs
//! inside that root with `chroot`, as an admin would run it on a fresh
//! host: the maintainer scripts, the installed `popgate config`, `serve`,
//! `passwd` and `check`. Nothing is started by systemd there (no systemd
//! runs in a chroot), which is also what the postinst must cope with.
//!
//! The test is `#[ignore]`d in a plain `cargo test` (it needs root, dpkg,
//! debootstrap, cargo-deb and, the first time, the Debian mirror);
//! `scripts/test` runs it with `--ignored` wherever dpkg is present.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::harness::{deliver, message_files, popgate_bin, start_serving, with_input};

/// The password of the test user.
const PASSWORD: &str = "package test password";

/// Runs `command` under `timeout` (so a hung step fails the test instead of
/// CI); panics with everything it printed unless it succeeds.
fn run(what: &str, seconds: u32, command: &mut Command) -> Output {
    let output = run_unchecked(seconds, command);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn run_unchecked(seconds: u32, command: &mut Command) -> Output {
    let mut timed = Command::new("timeout");
    timed
        .arg(seconds.to_string())
        .arg(command.get_program())
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null());
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    timed.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Why this machine cannot run the test, if it cannot.
fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (dpkg into a chroot needs it)".into());
    }
    for tool in ["dpkg", "debootstrap", "chroot", "timeout"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|output| output.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// The host's Debian release, which the throwaway root is made of (the
/// tested binary links against the host's libraries).
fn release() -> String {
    let os_release = fs::read_to_string("/etc/os-release").unwrap();
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|codename| codename.trim_matches('"').to_owned())
        .filter(|codename| !codename.is_empty())
        .expect("VERSION_CODENAME in /etc/os-release")
}

/// Where the cached roots and throwaway copies live.
fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/package-test");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A minimal root of `release` with what the package depends on, made once
/// (about a minute and a half) and reused. It is made under another name
/// and renamed when complete, so an interrupted run never leaves half a
/// root behind to be reused.
fn cached_root(release: &str) -> PathBuf {
    let root = work_dir().join(format!("debootstrap-{release}"));
    if root.join("usr/bin/dpkg").exists() {
        return root;
    }
    let partial = work_dir().join(format!("debootstrap-{release}.partial"));
    if partial.exists() {
        // debootstrap mounts /proc inside while it runs.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(partial.join("proc"))
            .stderr(Stdio::null())
            .status();
        fs::remove_dir_all(&partial).unwrap();
    }
    run(
        "debootstrap",
        900,
        Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=adduser,init-system-helpers",
                release,
            ])
            .arg(&partial),
    );
    fs::rename(&partial, &root).unwrap();
    root
}

/// A fresh copy of the cached root, removed when dropped.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new(release: &str) -> Root {
        let cached = cached_root(release);
        let dir = tempfile::Builder::new()
            .prefix("root-")
            .tempdir_in(work_dir())
            .unwrap();
        run(
            "copying the cached root",
            300,
            Command::new("cp")
                .arg("-a")
                .arg(cached.join("."))
                .arg(dir.path()),
        );
        Root { dir }
    }

    /// `path` (absolute inside the root) as seen from the host.
    fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    /// A command run inside the root.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("chroot");
        command
            .arg(self.dir.path())
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C");
        command
    }

    fn run(&self, what: &str, program: &str, args: &[&str]) -> Output {
        run(what, 120, self.command(program).args(args))
    }

    /// The installed `popgate` with `args`, run inside the root.
    fn popgate(&self, args: &[&str]) -> Command {
        let mut command = self.command("/usr/bin/popgate");
        command.args(args);
        command
    }

    fn user_exists(&self, name: &str) -> bool {
        run_unchecked(30, self.command("getent").args(["passwd", name]))
            .status
            .success()
    }
}

/// Builds the .deb from the binary this test run uses.
fn build_package(output: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = run(
        "scripts/package",
        600,
        Command::new(repo.join("scripts/package"))
            .arg("--binary")
            .arg(popgate_bin())
            .arg("--fast")
            .arg("--output")
            .arg(output)
            .current_dir(repo),
    );
    let stdout = String::from_utf8_lossy(&built.stdout);
    let deb = PathBuf::from(stdout.lines().last().expect("the path of the .deb").trim());
    assert!(
        deb.is_file(),
        "no .deb at {}: {}",
        deb.display(),
        text(&built)
    );
    deb
}

/// Turns the shipped configuration into the virtual-users setup its own
/// comments describe: htpasswd, `mail_user = "popgate"`, a Maildir
/// template; plus loopback listeners on ephemeral ports for the test.
fn switch_to_virtual_users(shipped: &str) -> String {
    let edits = [
        (
            "hostname = \"mail.example.com\"",
            "hostname = \"localhost\"",
        ),
        (
            "listen     = [\"0.0.0.0:110\"]",
            "listen     = [\"127.0.0.1:0\"]",
        ),
        (
            "listen_tls = [\"0.0.0.0:995\"]",
            "listen_tls = [\"127.0.0.1:0\"]",
        ),
        ("backend     = \"pam\"", "backend     = \"htpasswd\""),
        ("# htpasswd = ", "htpasswd = "),
        (
            "maildir = \"~/Maildir\"",
            "maildir = \"/var/vmail/%n/Maildir\"",
        ),
        ("# mail_user = \"popgate\"", "mail_user = \"popgate\""),
    ];
    let mut config = shipped.to_owned();
    for (from, to) in edits {
        assert_eq!(
            config.matches(from).count(),
            1,
            "the shipped configuration has no single `{from}`:\n{shipped}"
        );
        config = config.replacen(from, to, 1);
    }
    config
}

/// Caught, each by its own assertion: a file missing from the package or
/// installed where its tool does not look; the service enabled (or a
/// system user created) on a PAM host before anything is configured;
/// `serve` starting, or failing without saying what to set, on the shipped
/// configuration; the comments' virtual-users switch not working or the
/// `popgate` user not created for it; an upgrade overwriting the admin's
/// configuration; the installed binary not serving or not passing its own
/// check; remove deleting the configuration, or purge leaving it.
#[test]
#[ignore = "builds the .deb and installs it into a debootstrap root (root, dpkg, debootstrap, cargo-deb): scripts/test runs it"]
fn the_package_installs_serves_upgrades_removes_and_purges() {
    if let Some(reason) = unavailable() {
        eprintln!("SKIPPED the package test: {reason}");
        return;
    }
    let started = std::time::Instant::now();
    let out = tempfile::tempdir().unwrap();
    let deb = build_package(out.path());
    let root = Root::new(&release());
    fs::copy(&deb, root.path("/tmp/popgate.deb")).unwrap();

    // A first install on what is, as shipped, a PAM host.
    let installed = root.run("dpkg -i", "dpkg", &["-i", "/tmp/popgate.deb"]);
    assert!(
        text(&installed).contains("installed but not started"),
        "{}",
        text(&installed)
    );
    for path in [
        "/usr/bin/popgate",
        "/etc/popgate/popgate.toml",
        "/lib/systemd/system/popgate.service",
        "/etc/pam.d/popgate",
        "/etc/fail2ban/filter.d/popgate.conf",
        "/etc/fail2ban/jail.d/popgate.conf",
        "/usr/share/man/man1/popgate.1.gz",
        "/usr/share/man/man1/popgate-serve.1.gz",
        "/usr/share/man/man1/popgate-check.1.gz",
        "/usr/share/man/man5/popgate.toml.5.gz",
        "/usr/share/bash-completion/completions/popgate",
        "/usr/share/zsh/vendor-completions/_popgate",
        "/usr/share/fish/vendor_completions.d/popgate.fish",
        "/usr/share/doc/popgate/README.md",
        "/usr/share/doc/popgate/copyright",
        "/usr/share/doc/popgate/examples/popgate.toml",
        "/usr/share/doc/popgate/examples/mailboxes.toml",
        "/usr/share/doc/popgate/guides/system-users.md",
        "/usr/share/man/man1/popgate-who.1.gz",
        "/usr/share/man/man1/popgate-mailbox.1.gz",
    ] {
        assert!(root.path(path).is_file(), "{path} is not installed");
    }
    let unit = fs::read_to_string(root.path("/lib/systemd/system/popgate.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/popgate serve"), "{unit}");
    let jail = fs::read_to_string(root.path("/etc/fail2ban/jail.d/popgate.conf")).unwrap();
    assert!(jail.contains("\nenabled  = false\n"), "{jail}");
    // (A symlink to a path inside the root: not followed from out here.)
    let wants = root.path("/etc/systemd/system/multi-user.target.wants/popgate.service");
    assert!(
        fs::symlink_metadata(&wants).is_err(),
        "the service was enabled before it was configured"
    );
    assert!(
        !root.user_exists("popgate"),
        "a PAM host got a popgate user"
    );

    // The shipped configuration loads, and serving refuses until a
    // certificate is named, saying so.
    let config = root.run("popgate config", "/usr/bin/popgate", &["config"]);
    assert!(
        text(&config).contains("backend = \"pam\""),
        "{}",
        text(&config)
    );
    let refused = run_unchecked(60, &mut root.popgate(&["serve"]));
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("/etc/popgate/fullchain.pem")
            && text(&refused).contains("[tls] cert"),
        "{}",
        text(&refused)
    );

    // Configured for virtual users as the file's comments say; reinstalling
    // (an upgrade as far as the scripts know) creates the popgate user and
    // keeps the edited configuration.
    let shipped = fs::read_to_string(root.path("/etc/popgate/popgate.toml")).unwrap();
    let configured = switch_to_virtual_users(&shipped);
    fs::write(root.path("/etc/popgate/popgate.toml"), &configured).unwrap();
    let upgraded = root.run("dpkg -i again", "dpkg", &["-i", "/tmp/popgate.deb"]);
    assert!(root.user_exists("popgate"), "{}", text(&upgraded));
    assert_eq!(
        fs::read_to_string(root.path("/etc/popgate/popgate.toml")).unwrap(),
        configured,
        "the upgrade touched the configuration"
    );

    // The certificate at the shipped paths, a user, a Maildir with a message.
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    fs::write(
        root.path("/etc/popgate/fullchain.pem"),
        certified.cert.pem(),
    )
    .unwrap();
    fs::write(
        root.path("/etc/popgate/privkey.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let passwd = with_input(
        &mut root.popgate(&[
            "passwd",
            "-f",
            "/etc/popgate/users.htpasswd",
            "--cost",
            "4",
            "alice",
        ]),
        &format!("{PASSWORD}\n"),
    );
    assert!(passwd.status.success(), "{}", text(&passwd));
    root.run(
        "chgrp",
        "chgrp",
        &[
            "popgate",
            "/etc/popgate/users.htpasswd",
            "/etc/popgate/privkey.pem",
        ],
    );
    root.run(
        "chmod",
        "chmod",
        &[
            "640",
            "/etc/popgate/users.htpasswd",
            "/etc/popgate/privkey.pem",
        ],
    );
    let maildir = root.path("/var/vmail/alice/Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    deliver(
        &maildir,
        1_700_000_000,
        b"Subject: installed\n\nfrom the package test\n",
    );
    root.run("chown", "chown", &["-R", "popgate:popgate", "/var/vmail"]);

    let config = root.run("popgate config", "/usr/bin/popgate", &["config"]);
    assert!(
        text(&config).contains("mail_user = \"popgate\""),
        "{}",
        text(&config)
    );

    // The installed binary serves, as the popgate user, and passes its check.
    let mut serve = root.popgate(&["serve"]);
    serve.env("RUST_LOG", "info");
    let (mut server, log, addrs) = start_serving(serve, 2);
    // `check` finds the server through the configuration; the ports bound
    // for ":0" come from the environment, as an admin could override them.
    let mut check = root.popgate(&["check", "--user", "alice"]);
    check
        .env("POPGATE_POP3__LISTEN", addrs["pop3"].to_string())
        .env("POPGATE_POP3__LISTEN_TLS", addrs["pop3s"].to_string());
    let check = with_input(&mut check, &format!("{PASSWORD}\n"));
    let _ = server.kill();
    let _ = server.wait();
    let log = log.lock().unwrap().join("\n");
    assert!(
        check.status.success(),
        "{}\nserver log:\n{log}",
        text(&check)
    );
    assert!(text(&check).contains("1 unique ids"), "{}", text(&check));
    assert!(log.contains("running as mail user popgate"), "{log}");
    assert_eq!(
        message_files(&maildir).len(),
        1,
        "the check changed the mailbox"
    );

    // Remove keeps the configuration; purge takes what the package owns and
    // leaves the admin's own files (certificate, key, users).
    root.run("dpkg -r", "dpkg", &["-r", "popgate"]);
    assert!(!root.path("/usr/bin/popgate").exists());
    assert!(!root.path("/lib/systemd/system/popgate.service").exists());
    assert!(!root.path("/usr/share/man/man1/popgate.1.gz").exists());
    assert_eq!(
        fs::read_to_string(root.path("/etc/popgate/popgate.toml")).unwrap(),
        configured,
        "remove touched the configuration"
    );
    assert!(root.path("/etc/pam.d/popgate").exists());
    root.run("dpkg -P", "dpkg", &["-P", "popgate"]);
    for gone in [
        "/etc/popgate/popgate.toml",
        "/etc/pam.d/popgate",
        "/etc/fail2ban/filter.d/popgate.conf",
        "/etc/fail2ban/jail.d/popgate.conf",
    ] {
        assert!(!root.path(gone).exists(), "{gone} is left after purge");
    }
    for kept in [
        "/etc/popgate/fullchain.pem",
        "/etc/popgate/privkey.pem",
        "/etc/popgate/users.htpasswd",
    ] {
        assert!(root.path(kept).exists(), "purge removed the admin's {kept}");
    }
    let status = run_unchecked(30, root.command("dpkg").args(["-s", "popgate"]));
    assert!(!status.status.success(), "{}", text(&status));
    eprintln!(
        "package test: {:.0?} (package, root copy, install, serve, check, remove, purge)",
        started.elapsed()
    );
}
