//! The guides in `docs/guides/` cannot rot: every ```` ```toml ```` block in
//! them is a whole configuration, and the real `popgate config` must load
//! each one (and the package's `debian/popgate.toml`) — except a block
//! whose first line names another file than popgate.toml
//! (`# /etc/popgate/mailboxes.toml`): that is the whole of a file its
//! guide's configuration names. The guides whose setup can run here are
//! also served from their own blocks by [`GuideServer`]: listeners moved
//! to loopback ports, absolute paths moved into a sandbox that holds the
//! certificate, the htpasswd file, the files the guide shows and the
//! Maildirs, `hostname` made `localhost` for the test certificate, and
//! `mail_user` made `nobody` (or dropped when not root).

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use crate::harness::{
    deliver, make_maildir, message_files, popgate_bin, spawn_serve, trusting, Client, PASSWORD,
};
use crate::pam::{chown_tree, pam_wrapper_env, write_matrix_service};

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every guide, by file name.
fn guides() -> Vec<PathBuf> {
    let mut guides: Vec<PathBuf> = fs::read_dir(repository().join("docs/guides"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    guides.sort();
    guides
}

/// Every ```toml block of `guide` (a file name in docs/guides), in order.
fn toml_blocks(guide: &str) -> Vec<String> {
    let text = fs::read_to_string(repository().join("docs/guides").join(guide)).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "{guide}: a ```toml block is not closed");
    blocks
}

/// The file a ```toml block is the whole of, when its first line names
/// one (`# /etc/popgate/mailboxes.toml ...`) and it is not the
/// configuration itself.
fn shown_file(block: &str) -> Option<String> {
    let first = block.lines().next()?;
    let path = first.strip_prefix("# ")?.split_whitespace().next()?;
    (path.starts_with('/') && !path.ends_with("/popgate.toml")).then(|| path.to_owned())
}

/// The configurations of `guide`: its ```toml blocks that are not another
/// file (see [`files`]), in order.
fn configurations(guide: &str) -> Vec<String> {
    toml_blocks(guide)
        .into_iter()
        .filter(|block| shown_file(block).is_none())
        .collect()
}

/// The files `guide` shows whole, each with the absolute path its first
/// line names, in order.
fn files(guide: &str) -> Vec<(String, String)> {
    toml_blocks(guide)
        .into_iter()
        .filter_map(|block| Some((shown_file(&block)?, block)))
        .collect()
}

/// The one configuration of `guide`.
fn configuration(guide: &str) -> String {
    let blocks = configurations(guide);
    assert_eq!(blocks.len(), 1, "{guide} should have one ```toml block");
    blocks.into_iter().next().unwrap()
}

/// Caught: a guide whose configuration no longer loads (a key renamed or
/// removed, a value the code refuses), a guide without one, a file a guide
/// shows that its configuration does not name (so nothing would read it),
/// the shipped conffile broken.
#[test]
fn every_guide_configuration_loads_with_popgate_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = vec![(
        "debian/popgate.toml".to_owned(),
        fs::read_to_string(repository().join("debian/popgate.toml")).unwrap(),
    )];
    let guides = guides();
    assert!(guides.len() >= 6, "{guides:?}");
    for guide in guides {
        let name = guide.file_name().unwrap().to_string_lossy().into_owned();
        let blocks = configurations(&name);
        assert!(!blocks.is_empty(), "{name} has no ```toml configuration");
        for (path, _) in files(&name) {
            assert!(
                blocks
                    .iter()
                    .any(|config| config.contains(&format!("= \"{path}\""))),
                "{name} shows {path}, which its configuration does not name"
            );
        }
        for (index, block) in blocks.into_iter().enumerate() {
            checked.push((format!("{name} block {}", index + 1), block));
        }
    }
    for (what, config) in checked {
        let path = dir.path().join("popgate.toml");
        fs::write(&path, &config).unwrap();
        let output = Command::new(popgate_bin())
            .args(["config", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{what} does not load:\n{}\n{config}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `line` with every `"0.0.0.0:PORT"` made `"127.0.0.1:0"`.
fn loopback(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("\"0.0.0.0:") {
        out.push_str(&rest[..start]);
        out.push_str("\"127.0.0.1:0");
        rest = rest[start + "\"0.0.0.0:".len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// A guide's configuration served from a sandbox (see the module docs).
pub struct GuideServer {
    /// The sandbox the guide's absolute paths were moved into; removed
    /// when the server is dropped.
    sandbox: tempfile::TempDir,
    /// The configuration as served.
    pub config: toml::Value,
    /// Where that configuration is.
    config_path: PathBuf,
    /// The certificate (PEM) clients must trust.
    pub cert_pem: PathBuf,
    cert: rustls::pki_types::CertificateDer<'static>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// Every listener's address by service name (`pop3`, `pop3s`, …).
    pub addrs: HashMap<String, SocketAddr>,
    /// The Maildir of each user it was started with.
    maildirs: HashMap<String, PathBuf>,
}

impl GuideServer {
    /// Serves the configuration of `guide` (a file name in docs/guides)
    /// with the files the guide shows, htpasswd `users` (password
    /// [`PASSWORD`]) and empty Maildirs for them, with extra environment
    /// `env`.
    pub fn start(guide: &str, users: &[&str], env: &[(String, String)]) -> GuideServer {
        let sandbox = tempfile::tempdir().unwrap();
        // The mail user must be able to reach what is below.
        fs::set_permissions(sandbox.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = sandbox.path().display().to_string();
        for (path, contents) in files(guide) {
            let path = PathBuf::from(format!("{root}{path}"));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, contents).unwrap();
        }
        let as_root = nix::unistd::geteuid().is_root();
        let mut text = String::new();
        for line in configuration(guide).lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            let line = match key {
                "hostname" => "hostname = \"localhost\"".to_owned(),
                "mail_user" if as_root => "mail_user = \"nobody\"".to_owned(),
                "mail_user" => continue,
                _ => loopback(&line.replace("= \"/", &format!("= \"{root}/"))),
            };
            text.push_str(&line);
            text.push('\n');
        }
        let value: toml::Value = toml::from_str(&text).unwrap();
        let path_of = |section: &str, key: &str| {
            value
                .get(section)
                .and_then(|s| s.get(key))
                .and_then(|v| v.as_str())
                .map(PathBuf::from)
        };
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let cert_pem = path_of("tls", "cert").expect("[tls] cert");
        let key_pem = path_of("tls", "key").expect("[tls] key");
        for (path, contents) in [
            (&cert_pem, certified.cert.pem()),
            (&key_pem, certified.signing_key.serialize_pem()),
        ] {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
        if let Some(htpasswd) = path_of("auth", "htpasswd") {
            let mut entries = String::new();
            for user in users {
                let hash = popgate_auth::hash_password_bcrypt(PASSWORD, 4).unwrap();
                entries.push_str(&format!("{user}:{hash}\n"));
            }
            fs::create_dir_all(htpasswd.parent().unwrap()).unwrap();
            fs::write(&htpasswd, entries).unwrap();
        }
        let config_path = sandbox.path().join("popgate.toml");
        fs::write(&config_path, &text).unwrap();
        // Where each htpasswd user's mail lives, as the server itself will
        // find it: the template stays private to popgate-auth.
        let mut maildirs: HashMap<String, PathBuf> = HashMap::new();
        if !users.is_empty() {
            let settings = popgate::config::Settings::load(&config_path).unwrap();
            let auth_config = settings.auth_config();
            let auth = popgate_auth::Authenticator::new(auth_config).unwrap();
            for &user in users {
                match auth.lookup(user) {
                    popgate_auth::UserLookup::Found(account) => {
                        maildirs.insert(user.to_owned(), account.maildir);
                    }
                    other => panic!("{user} is not a user of the guide: {other:?}"),
                }
            }
        }
        for maildir in maildirs.values() {
            make_maildir(maildir);
        }
        if let Some(mail_user) = value["store"].get("mail_user").and_then(|v| v.as_str()) {
            let owner = nix::unistd::User::from_name(mail_user).unwrap().unwrap();
            let tops = maildirs.values().filter_map(|maildir| {
                maildir
                    .ancestors()
                    .find(|dir| dir.parent() == Some(sandbox.path()))
            });
            for top in tops {
                let owner = format!("{}:{}", owner.uid, owner.gid);
                let status = Command::new("chown")
                    .args(["-R", &owner])
                    .arg(top)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
        let listening = |section: &str, key: &str| {
            value
                .get(section)
                .and_then(|s| s.get(key))
                .and_then(|v| v.as_array())
                .is_some_and(|list| !list.is_empty())
        };
        let services = [
            ("pop3", "listen"),
            ("pop3", "listen_tls"),
            ("submission", "listen"),
            ("submission", "listen_tls"),
        ]
        .iter()
        .filter(|(section, key)| listening(section, key))
        .count();
        let (child, log, addrs) = spawn_serve(&config_path, services, env);
        GuideServer {
            sandbox,
            config: value,
            config_path,
            cert_pem,
            cert: certified.cert.der().clone(),
            child,
            log,
            addrs,
            maildirs,
        }
    }

    /// A TLS connection to POP3S, greeting read.
    pub fn connect_tls(&self) -> Client {
        Client::connect(self.addrs["pop3s"], Some(trusting(self.cert.clone())))
    }

    /// The Maildir of `user` (one it was started with), as the server finds it.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.maildirs[user].clone()
    }

    /// Delivers `message` to `user` as an MTA does (see
    /// [`crate::harness::deliver`]), owned by the mail user if there is one.
    pub fn deliver(&self, user: &str, seconds: u64, message: &[u8]) -> String {
        let maildir = self.maildir(user);
        let name = deliver(&maildir, seconds, message);
        if let Some(mail_user) = self.config["store"]
            .get("mail_user")
            .and_then(|v| v.as_str())
        {
            let owner = nix::unistd::User::from_name(mail_user).unwrap().unwrap();
            nix::unistd::chown(
                &maildir.join("new").join(&name),
                Some(owner.uid),
                Some(owner.gid),
            )
            .unwrap();
        }
        name
    }

    /// What `popgate mailbox` prints for `user` under the configuration
    /// as served, with the sandbox's paths made the guide's again.
    pub fn mailbox_report(&self, user: &str) -> String {
        let output = Command::new(popgate_bin())
            .args(["mailbox", "-c"])
            .arg(&self.config_path)
            .arg(user)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout.replace(&self.sandbox.path().display().to_string(), "")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for GuideServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logs `user` in over POP3S.
fn login(server: &GuideServer, user: &str) -> Client {
    let mut client = server.connect_tls();
    client.ok(&format!("USER {user}"));
    let reply = client.cmd(&format!("PASS {PASSWORD}"));
    assert!(reply.starts_with("+OK"), "{reply}\n{}", server.log());
    client
}

/// Caught: the guide's PAM setup (`backend`, `pam_service`, `~/Maildir`)
/// not serving a system user's home Maildir.
#[test]
fn the_system_users_guide_serves_a_pam_user_their_home_maildir() {
    let pam = tempfile::tempdir().unwrap();
    fs::set_permissions(pam.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let home = pam.path().join("home/ann");
    make_maildir(&home.join("Maildir"));
    deliver(
        &home.join("Maildir"),
        1_700_000_000,
        b"Subject: from Postfix\n\nhi\n",
    );
    chown_tree(&home, 20011);
    fs::write(
        pam.path().join("passwd"),
        format!("ann:x:20011:20011:Ann:{}:/bin/sh\n", home.display()),
    )
    .unwrap();
    fs::write(pam.path().join("group"), "ann:x:20011:\n").unwrap();
    fs::write(
        pam.path().join("passdb"),
        format!("ann:{PASSWORD}:popgate\n"),
    )
    .unwrap();
    write_matrix_service(
        &pam.path().join("pam.d"),
        "popgate",
        &pam.path().join("passdb"),
    );
    let mut env = pam_wrapper_env(&pam.path().join("pam.d"));
    env[0].1.push_str(&format!(
        " {}",
        crate::harness::system_library("libnss_wrapper.so").display()
    ));
    env.push((
        "NSS_WRAPPER_PASSWD".into(),
        pam.path().join("passwd").display().to_string(),
    ));
    env.push((
        "NSS_WRAPPER_GROUP".into(),
        pam.path().join("group").display().to_string(),
    ));
    let server = GuideServer::start("system-users.md", &[], &env);
    let mut client = login(&server, "ann");
    assert_eq!(
        client.ok("STAT"),
        format!("+OK 1 {}", "Subject: from Postfix\r\n\r\nhi\r\n".len())
    );
    client.ok("QUIT");
}

/// Caught: the guide's virtual-users setup not serving `%d/%n` Maildirs to
/// an address login, or not dropping to `mail_user`.
#[test]
fn the_virtual_users_guide_serves_an_address_login_as_the_mail_user() {
    let server = GuideServer::start("virtual-users.md", &["alice@example.com"], &[]);
    server.deliver(
        "alice@example.com",
        1_700_000_000,
        b"Subject: virtual\n\nhi\n",
    );
    assert!(server
        .maildir("alice@example.com")
        .ends_with("var/vmail/example.com/alice/Maildir"));
    let mut client = login(&server, "alice@example.com");
    assert!(client.ok("STAT").starts_with("+OK 1 "));
    client.ok("QUIT");
    if nix::unistd::geteuid().is_root() {
        assert!(
            server.log().contains("running as mail user nobody"),
            "{}",
            server.log()
        );
    }
}

/// Caught: what a client deletes not ending in `.Archive` under the
/// guide's `on_dele`, or its UIDL changing on the way.
#[test]
fn the_leave_on_server_guide_archives_what_a_client_deletes() {
    let server = GuideServer::start("leave-on-server.md", &["bob@example.com"], &[]);
    server.deliver(
        "bob@example.com",
        1_700_000_000,
        b"Subject: read on the phone\n\nhi\n",
    );
    let maildir = server.maildir("bob@example.com");
    let mut client = login(&server, "bob@example.com");
    let uidl = client.ok("UIDL 1");
    let uidl = uidl.rsplit(' ').next().unwrap().to_owned();
    client.ok("RETR 1");
    while client.line() != "." {}
    client.ok("DELE 1");
    client.ok("QUIT");
    assert!(message_files(&maildir).is_empty());
    let archived = message_files(&maildir.join(".Archive"));
    assert_eq!(archived.len(), 1, "{}", server.log());
    let name = archived[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(name.split(':').next().unwrap(), uidl);
}

/// The leave-on-server guide's mailbox-settings file, served with its
/// configuration: the shared mailbox keeps what a client deletes (listed
/// again, same UIDL, marked seen), the ticket poller's deletions are
/// removed rather than archived, alice's newest message is number 1, and
/// `popgate mailbox` names the line each of those comes from. Caught: the
/// guide's file not loading (a name with `@` unquoted, a key renamed), a
/// mailbox's own `on_dele` or `order` not applied (the server's
/// `move:Archive` and `oldest-first` instead), `popgate mailbox` not
/// saying where a setting comes from. Before per-mailbox settings the
/// guide's configuration did not load at all.
#[test]
fn the_leave_on_server_guide_gives_each_mailbox_its_own_policy() {
    let (shared, tickets, alice) = (
        "shared@example.com",
        "tickets@example.com",
        "alice@example.com",
    );
    let server = GuideServer::start("leave-on-server.md", &[shared, tickets, alice], &[]);

    let shared_maildir = server.maildir(shared);
    server.deliver(shared, 1_700_000_000, b"Subject: for the team\n\nhi\n");
    let mut client = login(&server, shared);
    let uidl = client.ok("UIDL 1");
    client.retrieve("RETR 1");
    client.ok("DELE 1");
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    let left = message_files(&shared_maildir);
    assert_eq!(left.len(), 1, "{}", server.log());
    let name = left[0].file_name().unwrap().to_string_lossy().into_owned();
    let flags = name.split(":2,").nth(1).unwrap_or_default();
    assert!(flags.contains('S'), "{name}");
    assert!(!shared_maildir.join(".Archive").exists());
    let mut client = login(&server, shared);
    assert_eq!(client.ok("UIDL 1"), uidl, "listed again, same UIDL");
    client.ok("QUIT");

    let tickets_maildir = server.maildir(tickets);
    server.deliver(tickets, 1_700_000_000, b"Subject: Re: [#42]\n\nfixed\n");
    let mut client = login(&server, tickets);
    client.retrieve("RETR 1");
    client.ok("DELE 1");
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert!(message_files(&tickets_maildir).is_empty());
    assert!(!tickets_maildir.join(".Archive").exists(), "not archived");

    server.deliver(alice, 1_700_000_001, b"Subject: older\n\nold\n");
    server.deliver(alice, 1_700_000_002, b"Subject: newer\n\nnew\n");
    let mut client = login(&server, alice);
    let (_, top) = client.retrieve("TOP 1 0");
    assert_eq!(top, b"Subject: newer\r\n\r\n", "newest first");
    client.ok("QUIT");

    let file = "/etc/popgate/mailboxes.toml";
    let report = server.mailbox_report(shared);
    assert!(
        report.contains(&format!("# [\"{shared}\"] in {file}\n")),
        "{report}"
    );
    let line = |n: usize| format!("{file} line {n}");
    assert_eq!(setting(&report, "on_dele"), ("\"keep\"", &*line(3)));
    assert_eq!(
        setting(&report, "order"),
        ("\"oldest-first\"", "[pop3] order")
    );
    let report = server.mailbox_report(alice);
    assert_eq!(setting(&report, "order"), ("\"newest-first\"", &*line(6)));
    assert_eq!(
        setting(&report, "on_dele"),
        ("\"move:Archive\"", "[pop3] on_dele")
    );
    let report = server.mailbox_report(tickets);
    assert_eq!(setting(&report, "on_dele"), ("\"delete\"", &*line(9)));
    let report = server.mailbox_report("bob@example.com");
    assert!(
        report.contains(&format!("# {file} has no [\"bob@example.com\"] table\n")),
        "{report}"
    );
}

/// The value of `key` in a `popgate mailbox` report, and its source.
fn setting<'a>(report: &'a str, key: &str) -> (&'a str, &'a str) {
    let line = report
        .lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {report}"));
    let (value, source) = line[key.len() + 3..].split_once(" # ").unwrap();
    (value.trim(), source.trim())
}
