//! `popgate demo`: a sandbox to try popgate in one command.
//!
//! It creates a directory with everything a real deployment has — a
//! self-signed certificate, an htpasswd file with two users, `demo` and
//! `friend`, each with a fresh random password, a Maildir with a few messages
//! for demo and an empty one for friend, and a configuration file that uses
//! them on loopback ports — and then serves it like `popgate serve`.
//!
//! Submission is on too, relaying into the local Maildirs (`relay =
//! "maildir"`): a message demo sends to `friend@localhost` is in friend's
//! mailbox, ready to fetch over POP3, as soon as the client hears 250.
//! Its control socket is in the sandbox too, so `popgate who -c
//! SANDBOX/popgate.toml` works without root.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};

use crate::config::ControlSettings;

/// Where the sandbox lives and which ports it uses.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The sandbox directory (created if missing).
    pub dir: PathBuf,
    /// Plaintext POP3 port (STLS).
    pub pop3_port: u16,
    /// Implicit-TLS POP3 port.
    pub pop3s_port: u16,
    /// Submission port (STARTTLS).
    pub submission_port: u16,
    /// Implicit-TLS submission port.
    pub submissions_port: u16,
}

/// What was set up, for the instructions printed to the user.
#[derive(Debug)]
pub struct Demo {
    /// The configuration file to serve.
    pub config: PathBuf,
    /// The certificate clients must trust.
    pub cert: PathBuf,
    /// The demo user's password.
    pub password: String,
    /// The friend user's password.
    pub friend_password: String,
    /// The options used.
    pub options: DemoOptions,
}

/// The demo user.
pub const DEMO_USER: &str = "demo";

/// The second user, whom demo can write to.
pub const FRIEND_USER: &str = "friend";

/// Creates (or refreshes) the sandbox. The Maildir is seeded only when it
/// does not exist yet, so mail left by an earlier run stays; the password is
/// new each time.
pub fn prepare(options: DemoOptions) -> io::Result<Demo> {
    fs::create_dir_all(&options.dir)?;
    let dir = fs::canonicalize(&options.dir)?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if !cert.exists() || !key.exists() {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .map_err(io::Error::other)?;
        write_private(&key, certified.signing_key.serialize_pem().as_bytes())?;
        fs::write(&cert, certified.cert.pem())?;
    }
    let password = Alphanumeric.sample_string(&mut rand::rng(), 16);
    let friend_password = Alphanumeric.sample_string(&mut rand::rng(), 16);
    let mut users = String::new();
    for (user, password) in [(DEMO_USER, &password), (FRIEND_USER, &friend_password)] {
        let hash = popgate_auth::hash_password_bcrypt(password, 10).map_err(io::Error::other)?;
        let _ = writeln!(users, "{user}:{hash}");
    }
    write_private(&dir.join("users.htpasswd"), users.as_bytes())?;
    let maildir = dir.join("mail").join(DEMO_USER).join("Maildir");
    if !maildir.exists() {
        seed_maildir(&maildir)?;
    }
    let friend = dir.join("mail").join(FRIEND_USER).join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(friend.join(sub))?;
    }
    let config = dir.join("popgate.toml");
    fs::write(&config, config_text(&dir, &options))?;
    Ok(Demo {
        config,
        cert,
        password,
        friend_password,
        options,
    })
}

fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    io::Write::write_all(&mut file, contents)
}

fn config_text(dir: &Path, options: &DemoOptions) -> String {
    // `popgate who -c DIR/popgate.toml` then works without root; a sandbox
    // too deep for a socket path keeps the default (tried, else skipped).
    let control = ControlSettings {
        socket: dir.join("control"),
    };
    let control = match control.validate() {
        Ok(()) => format!("\n[control]\nsocket = \"{}\"\n", control.socket.display()),
        Err(_) => String::new(),
    };
    let dir = dir.display();
    format!(
        r#"# Written by `popgate demo`. Serve it again with: popgate serve -c {dir}/popgate.toml
hostname = "localhost"

[tls]
cert = "{dir}/cert.pem"
key = "{dir}/key.pem"

[pop3]
listen = ["127.0.0.1:{pop3}"]
listen_tls = ["127.0.0.1:{pop3s}"]
login = "secure"

[auth]
backend = "htpasswd"
htpasswd = "{dir}/users.htpasswd"

[store]
maildir = "{dir}/mail/%u/Maildir"

[submission]
listen = ["127.0.0.1:{submission}"]
listen_tls = ["127.0.0.1:{submissions}"]
relay = "maildir"          # deliver into the local Maildirs above
sender_policy = "own"      # demo sends as demo@localhost only
{control}"#,
        pop3 = options.pop3_port,
        pop3s = options.pop3s_port,
        submission = options.submission_port,
        submissions = options.submissions_port,
    )
}

/// Three messages that show what the server gets right: a plain note, one
/// with lines that start with a dot (stuffed on the wire), and one without a
/// final newline (supplied on the wire).
fn seed_maildir(maildir: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(maildir.join(sub))?;
    }
    let messages = [
        (
            "Welcome to popgate",
            "This mailbox is a plain Maildir on disk. popgate serves it over POP3\n\
             without converting or copying anything.\n",
        ),
        (
            "Lines that start with a dot",
            "The next lines begin with dots; on the wire each gets one more.\n.\n..\n.hidden\nEnd.\n",
        ),
        ("No final newline", "This message's file ends without a newline."),
    ];
    for (i, (subject, body)) in messages.iter().enumerate() {
        let mut text = String::new();
        let _ = write!(
            text,
            "From: popgate <popgate@localhost>\nTo: {DEMO_USER}@localhost\nSubject: {subject}\n\
             Date: Mon, 2 Nov 2026 10:0{i}:00 +0000\nMessage-ID: <demo-{i}@localhost>\n\n{body}"
        );
        let name = format!("{}.demo{i}.localhost", 1_793_000_000 + i);
        fs::write(maildir.join("new").join(name), text)?;
    }
    Ok(())
}

impl Demo {
    /// How to connect, for people and for their mail clients.
    pub fn instructions(&self) -> String {
        let o = &self.options;
        format!(
            "popgate demo is ready.\n\n\
             Fetch the first message over POP3S (port {pop3s}):\n\
             \x20 curl --cacert {cert} pop3s://{user}:{pw}@127.0.0.1:{pop3s}/1\n\
             List the mailbox over POP3 with STLS (port {pop3}):\n\
             \x20 curl --ssl-reqd --cacert {cert} pop3://{user}:{pw}@127.0.0.1:{pop3}/\n\n\
             Send a message from {user} to {friend} through submission (port {submission}, STARTTLS):\n\
             \x20 printf 'From: {user}@localhost\\r\\nTo: {friend}@localhost\\r\\nSubject: Hello\\r\\n\\r\\nHi {friend}!\\r\\n' |\n\
             \x20 curl --ssl-reqd --cacert {cert} smtp://127.0.0.1:{submission} --user {user}:{pw} \\\n\
             \x20   --mail-from {user}@localhost --mail-rcpt {friend}@localhost --upload-file -\n\
             and fetch it as {friend} over POP3S:\n\
             \x20 curl --cacert {cert} pop3s://{friend}:{friend_pw}@127.0.0.1:{pop3s}/1\n\n\
             Thunderbird (Account Settings > Server Settings):\n\
             \x20 Server type: POP Mail Server   Server name: 127.0.0.1   Port: {pop3s}\n\
             \x20 Connection security: SSL/TLS   Authentication: Normal password\n\
             \x20 User name: {user}   Password: {pw}\n\
             \x20 (the certificate is self-signed: accept it, or trust {cert})\n\
             \x20 Outgoing (SMTP): 127.0.0.1 port {submission}, STARTTLS, Normal password\n\n\
             Configuration: {config}\nStop with Ctrl-C.\n",
            pop3 = o.pop3_port,
            pop3s = o.pop3s_port,
            submission = o.submission_port,
            cert = self.cert.display(),
            user = DEMO_USER,
            pw = self.password,
            friend = FRIEND_USER,
            friend_pw = self.friend_password,
            config = self.config.display(),
        )
    }
}
