//! The guides in `docs/guides/` cannot rot: every ```` ```toml ```` block in
//! them is a whole configuration, and the real `popgate config` must load
//! each one (and the package's `debian/popgate.toml`). The guides whose
//! setup can run here are also served from their own block by
//! [`GuideServer`]: listeners moved to loopback ports, absolute paths moved
//! into a sandbox that holds the certificate, the htpasswd file and the
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

/// The ```toml blocks of `guide` (a file name in docs/guides), in order.
pub fn configurations(guide: &str) -> Vec<String> {
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

/// The one configuration of `guide`.
pub fn configuration(guide: &str) -> String {
    let blocks = configurations(guide);
    assert_eq!(blocks.len(), 1, "{guide} should have one ```toml block");
    blocks.into_iter().next().unwrap()
}

/// Caught: a guide whose configuration no longer loads (a key renamed or
/// removed, a value the code refuses), a guide without one, the shipped
/// conffile broken.
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
    _sandbox: tempfile::TempDir,
    /// The configuration as served.
    pub config: toml::Value,
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
    /// Serves `config` (a guide's block) with htpasswd `users` (password
    /// [`PASSWORD`]) and empty Maildirs for them, with extra environment
    /// `env`.
    pub fn start(config: &str, users: &[&str], env: &[(String, String)]) -> GuideServer {
        let sandbox = tempfile::tempdir().unwrap();
        // The mail user must be able to reach what is below.
        fs::set_permissions(sandbox.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = sandbox.path().display().to_string();
        let as_root = nix::unistd::geteuid().is_root();
        let mut text = String::new();
        for line in config.lines() {
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
            _sandbox: sandbox,
            config: value,
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
    let server = GuideServer::start(&configuration("system-users.md"), &[], &env);
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
    let server = GuideServer::start(
        &configuration("virtual-users.md"),
        &["alice@example.com"],
        &[],
    );
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
    let server = GuideServer::start(
        &configuration("leave-on-server.md"),
        &["bob@example.com"],
        &[],
    );
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
