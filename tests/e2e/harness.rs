//! The test harness: a real `popgate serve` process on ephemeral loopback
//! ports, with a real certificate, htpasswd file and Maildirs in a temporary
//! directory, and a small POP3 client on the shared
//! [line client](crate::line_client), plain TCP or rustls TLS.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::line_client::{LineClient, Trickled};

/// The password every test user has, unless a test says otherwise.
pub const PASSWORD: &str = "correct horse";

/// One user of a test server.
pub struct User {
    pub name: &'static str,
    pub password: &'static str,
}

/// What to put into a test server's configuration.
pub struct Options {
    pub users: Vec<User>,
    /// Extra TOML lines for `[pop3]`.
    pub pop3: Vec<String>,
    /// Extra TOML lines for `[auth]`.
    pub auth: Vec<String>,
    /// Extra TOML lines for `[store]`.
    pub store: Vec<String>,
    /// Extra top-level TOML (whole sections), appended as is.
    pub extra: String,
    /// Lines for a `[submission]` section (listeners on 127.0.0.1:0 are
    /// added); `None` leaves submission off.
    pub submission: Option<Vec<String>>,
    /// Replaces the `backend`/`htpasswd` lines of `[auth]` (e.g. PAM).
    pub backend: Option<String>,
    /// Replaces the `[store] maildir` template.
    pub maildir: Option<String>,
    /// Extra environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// The bcrypt cost of the users' htpasswd entries.
    pub bcrypt_cost: u32,
    /// The certificate and key (PEM) to serve; `None`: a fresh self-signed
    /// one for `localhost` and `127.0.0.1`.
    pub certificate: Option<(String, String)>,
    /// The server's descriptor limit (`RLIMIT_NOFILE`, soft and hard), set
    /// with util-linux's `prlimit`; `None` inherits the test's.
    pub nofile: Option<(u64, u64)>,
    /// Serve `[metrics]` on 127.0.0.1:0 (its address: `addrs["metrics"]`).
    pub metrics: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: vec![
                User {
                    name: "alice",
                    password: PASSWORD,
                },
                User {
                    name: "bob",
                    password: PASSWORD,
                },
            ],
            pop3: Vec::new(),
            auth: vec!["failure_delay = \"100ms\"".into()],
            store: Vec::new(),
            extra: String::new(),
            submission: None,
            backend: None,
            maildir: None,
            env: Vec::new(),
            bcrypt_cost: 4,
            certificate: None,
            nofile: None,
            metrics: false,
        }
    }
}

/// A running popgate with its sandbox.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub cert_pem: PathBuf,
    /// Every listener's address by service name (`pop3`, `submission`, …).
    pub addrs: HashMap<String, SocketAddr>,
    cert_der: CertificateDer<'static>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// How many listeners to wait for, the environment and the descriptor
    /// limit, for restarts.
    services: usize,
    env: Vec<(String, String)>,
    nofile: Option<(u64, u64)>,
}

/// A rustls client configuration that trusts `certificate` alone.
pub fn trusting(certificate: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    trusting_all(&[certificate])
}

/// A rustls client configuration that trusts `certificates` alone.
pub fn trusting_all(certificates: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The popgate binary cargo built for these tests.
pub fn popgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_popgate")
}

impl Server {
    /// A server with two users, alice and bob, with empty Maildirs.
    pub fn start() -> Server {
        Server::with(Options::default())
    }

    /// A server configured by `options`.
    pub fn with(options: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (cert, key) = options.certificate.clone().unwrap_or_else(|| {
            let certified =
                rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                    .unwrap();
            (certified.cert.pem(), certified.signing_key.serialize_pem())
        });
        let cert_pem = root.join("cert.pem");
        fs::write(&cert_pem, &cert).unwrap();
        fs::write(root.join("key.pem"), key).unwrap();
        let cert_der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let mut htpasswd = String::new();
        for user in &options.users {
            let hash =
                popgate_auth::hash_password_bcrypt(user.password, options.bcrypt_cost).unwrap();
            htpasswd.push_str(&format!("{}:{hash}\n", user.name));
            make_maildir(&root.join("mail").join(user.name));
        }
        fs::write(root.join("users.htpasswd"), htpasswd).unwrap();
        let backend = options.backend.clone().unwrap_or_else(|| {
            format!(
                "backend = \"htpasswd\"\nhtpasswd = \"{}/users.htpasswd\"",
                root.display()
            )
        });
        let maildir = options
            .maildir
            .clone()
            .unwrap_or_else(|| format!("{}/mail/%u", root.display()));
        let config = format!(
            "hostname = \"localhost\"\n\
             [tls]\ncert = \"{root}/cert.pem\"\nkey = \"{root}/key.pem\"\n\
             [pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n{pop3}\n\
             [auth]\n{backend}\n{auth}\n\
             [store]\nmaildir = \"{maildir}\"\n{store}\n{extra}\n\
             [control]\nsocket = \"{root}/control\"\n{metrics}{submission}",
            root = root.display(),
            pop3 = options.pop3.join("\n"),
            auth = options.auth.join("\n"),
            store = options.store.join("\n"),
            extra = options.extra,
            metrics = match options.metrics {
                true => "[metrics]\nlisten = \"127.0.0.1:0\"\n",
                false => "",
            },
            submission = match &options.submission {
                Some(lines) => format!(
                    "[submission]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n{}\n",
                    lines.join("\n")
                ),
                None => String::new(),
            },
        );
        fs::write(root.join("popgate.toml"), config).unwrap();
        let services =
            usize::from(options.metrics) + if options.submission.is_some() { 4 } else { 2 };
        let (child, log, addrs) = spawn_serve_limited(
            &root.join("popgate.toml"),
            services,
            &options.env,
            options.nofile,
        );
        Server {
            plain: addrs["pop3"],
            tls: addrs["pop3s"],
            addrs,
            cert_der,
            cert_pem,
            dir,
            child,
            log,
            services,
            env: options.env,
            nofile: options.nofile,
        }
    }

    /// Starts one more popgate on this server's configuration file.
    fn spawn_again(&self) -> (Child, Arc<Mutex<Vec<String>>>, HashMap<String, SocketAddr>) {
        spawn_serve_limited(
            &self.dir.path().join("popgate.toml"),
            self.services,
            &self.env,
            self.nofile,
        )
    }

    /// The control socket (`[control] socket`, in the sandbox).
    pub fn control_socket(&self) -> PathBuf {
        self.dir.path().join("control")
    }

    /// Runs `popgate ARGS --socket SOCKET` against this server's control
    /// socket, as root would: `popgate who`, `kick USER`, `reload`.
    pub fn control(&self, args: &[&str]) -> std::process::Output {
        Command::new(popgate_bin())
            .args(args)
            .arg("--socket")
            .arg(self.control_socket())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The Maildir of `user`.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user)
    }

    /// A new plaintext connection, greeting read.
    pub fn connect(&self) -> Client {
        Client::connect(self.plain, None)
    }

    /// A new implicit-TLS connection, greeting read.
    pub fn connect_tls(&self) -> Client {
        Client::connect(self.tls, Some(self.client_config()))
    }

    /// A TLS connection logged in as `user`.
    pub fn login(&self, user: &str) -> Client {
        let mut client = self.connect_tls();
        client.ok(&format!("USER {user}"));
        let reply = client.cmd(&format!("PASS {PASSWORD}"));
        assert!(reply.starts_with("+OK"), "login of {user}: {reply}");
        client
    }

    /// The certificate the server started with.
    pub fn client_certificate(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// A rustls client configuration that trusts this server's certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        trusting(self.cert_der.clone())
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until the log contains `needle` (the log is written asynchronously).
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for_line(&self.log, needle)
    }

    /// Runs `popgate check ARGS` against this server, with `password` (if
    /// any) on standard input; returns its exit success and what it printed.
    pub fn run_check(&self, args: &[&str], password: Option<&str>) -> (bool, String) {
        // The server's configuration with the ports it really bound for ":0".
        let mut config = fs::read_to_string(self.dir.path().join("popgate.toml")).unwrap();
        for service in ["pop3", "pop3s", "submission", "submissions"] {
            if let Some(addr) = self.addrs.get(service) {
                config = config.replacen("\"127.0.0.1:0\"", &format!("\"{addr}\""), 1);
            }
        }
        let check_config = self.dir.path().join("check.toml");
        fs::write(&check_config, config).unwrap();
        let input = password.map(|password| format!("{password}\n"));
        let output = with_input(
            Command::new(popgate_bin())
                .arg("check")
                .args(args)
                .arg("-c")
                .arg(&check_config),
            input.as_deref().unwrap_or(""),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// Sends SIGHUP (reload) to the server.
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL, as a crash or `kill -9` would, and
    /// starts it again on the same configuration and mail. The listening
    /// addresses change; the log starts afresh.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, log, addrs) = self.spawn_again();
        self.child = child;
        self.log = log;
        self.plain = addrs["pop3"];
        self.tls = addrs["pop3s"];
        self.addrs = addrs;
    }

    /// Another popgate process on this server's configuration, and so on
    /// the same mail tree (as behind a load balancer over shared storage),
    /// with a control socket of its own (as on a host of its own).
    pub fn another_process(&self) -> OtherProcess {
        let mut env = self.env.clone();
        let socket = self.dir.path().join(format!("control-{}", rand_suffix()));
        env.push((
            "POPGATE_CONTROL__SOCKET".into(),
            socket.display().to_string(),
        ));
        let config = self.dir.path().join("popgate.toml");
        let (child, _log, addrs) = spawn_serve(&config, self.services, &env);
        OtherProcess {
            child,
            tls: addrs["pop3s"],
        }
    }

    /// Waits for the process to exit (after a signal sent by the test).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A second popgate process started by [`Server::another_process`];
/// killed on drop.
pub struct OtherProcess {
    child: Child,
    /// Its implicit-TLS POP3 address.
    pub tls: SocketAddr,
}

impl Drop for OtherProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` with `input` written to its standard input, which is then
/// closed; returns its status and what it printed.
pub fn with_input(command: &mut Command, input: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Waits until `log`, as [`spawn_serve`] captures it, contains `needle`
/// (the log is written asynchronously), at most ten seconds; returns the
/// whole log.
pub fn wait_for_line(log: &Mutex<Vec<String>>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = log.lock().unwrap().join("\n");
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `popgate serve -c config`, which must fail to start; returns what
/// it printed on standard error.
pub fn serve_refused(config: &Path) -> String {
    let output = Command::new(popgate_bin())
        .args(["serve", "-c"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "popgate started with:\n{}",
        fs::read_to_string(config).unwrap_or_default()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `popgate serve -c config` and waits until its listeners are up;
/// returns the process, its captured log, and the address per service.
pub fn spawn_serve(
    config: &Path,
    services: usize,
    env: &[(String, String)],
) -> (Child, Arc<Mutex<Vec<String>>>, HashMap<String, SocketAddr>) {
    spawn_serve_limited(config, services, env, None)
}

/// [`spawn_serve`] with the descriptor limit `nofile` (soft, hard), set by
/// `prlimit`, which then executes popgate in its own process.
pub fn spawn_serve_limited(
    config: &Path,
    services: usize,
    env: &[(String, String)],
    nofile: Option<(u64, u64)>,
) -> (Child, Arc<Mutex<Vec<String>>>, HashMap<String, SocketAddr>) {
    let mut command = match nofile {
        Some((soft, hard)) => {
            let mut command = Command::new("prlimit");
            command.arg(format!("--nofile={soft}:{hard}")).arg("--");
            command.arg(popgate_bin());
            command
        }
        None => Command::new(popgate_bin()),
    };
    command
        .args(["serve", "-c"])
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)));
    start_serving(command, services)
}

/// Starts `command`, a `popgate serve` however it is run (the package test
/// runs the installed one in a chroot), and waits until `services`
/// listeners are up (it must log at `info`); returns the process, its
/// captured log, and the address per service.
pub fn start_serving(
    mut command: Command,
    services: usize,
) -> (Child, Arc<Mutex<Vec<String>>>, HashMap<String, SocketAddr>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            sink.lock().unwrap().push(line);
        }
    });
    let mut addrs = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while addrs.len() < services {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "popgate did not start; log:\n{}",
                log.lock().unwrap().join("\n")
            )
        });
        if let Some(rest) = line.split("listening: service=").nth(1) {
            let (service, addr) = rest.split_once(" addr=").unwrap();
            addrs.insert(service.to_string(), addr.trim().parse().unwrap());
        }
    }
    (child, log, addrs)
}

/// The path of an installed system library or PAM module, given relative
/// to a library directory (`libpam_wrapper.so`, `security/pam_exec.so`).
///
/// Searched, in order: the Debian multiarch directories (the triplet from
/// `dpkg-architecture -qDEB_HOST_MULTIARCH`, else `<arch>-linux-gnu`) under
/// /usr/lib and /lib, then /usr/lib64, /lib64, /usr/lib and /lib, so the
/// tests run on any Debian architecture and on lib64 distributions alike.
/// Panics naming every directory searched when the file is not installed.
pub fn system_library(relative: &str) -> PathBuf {
    static DIRS: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    let dirs = DIRS.get_or_init(|| {
        let triplet = Command::new("dpkg-architecture")
            .arg("-qDEB_HOST_MULTIARCH")
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .filter(|triplet| !triplet.is_empty())
            .unwrap_or_else(|| format!("{}-linux-gnu", std::env::consts::ARCH));
        let mut dirs = vec![
            PathBuf::from("/usr/lib").join(&triplet),
            PathBuf::from("/lib").join(&triplet),
        ];
        dirs.extend(["/usr/lib64", "/lib64", "/usr/lib", "/lib"].map(PathBuf::from));
        dirs
    });
    dirs.iter()
        .map(|dir| dir.join(relative))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{relative} is not installed: looked in {} \
                 (scripts/system-deps.sh test installs libpam-wrapper and libnss-wrapper)",
                dirs.iter()
                    .map(|dir| dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The first two words of each step line `popgate check` printed, as
/// `ok tls` or `FAIL login`.
pub fn check_steps(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("FAIL "))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// A directory for a server started as root that becomes `nobody`
/// (`[store] mail_user = "nobody"`): the directory itself open to all,
/// alice's empty Maildir in `mail/alice` given to nobody, and alice in
/// `users.htpasswd` with [`PASSWORD`].
pub struct MailUserSandbox {
    /// The directory; the test's configuration goes in it too.
    pub dir: tempfile::TempDir,
    /// nobody's uid and gid.
    pub uid: u32,
    pub gid: u32,
    /// alice's Maildir.
    pub maildir: PathBuf,
}

impl MailUserSandbox {
    /// The sandbox, or `None` when the tests do not run as root (then the
    /// test, which needs root to become another user, says it is skipped).
    pub fn new() -> Option<MailUserSandbox> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: becoming the mail user needs root (CI runs as root)");
            return None;
        }
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        let maildir = root.join("mail").join("alice");
        make_maildir(&maildir);
        chown_tree_to(&root.join("mail"), uid, gid);
        let hash = popgate_auth::hash_password_bcrypt(PASSWORD, 4).unwrap();
        fs::write(root.join("users.htpasswd"), format!("alice:{hash}\n")).unwrap();
        Some(MailUserSandbox {
            dir,
            uid,
            gid,
            maildir,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Delivers `contents` into alice's Maildir ([`deliver`]), as nobody's.
    pub fn deliver(&self, seconds: u64, contents: &[u8]) {
        deliver(&self.maildir, seconds, contents);
        chown_tree_to(&self.root().join("mail"), self.uid, self.gid);
    }
}

/// Gives `path` and everything below it to `uid` and `gid`.
pub fn chown_tree_to(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree_to(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// Creates an empty Maildir.
pub fn make_maildir(path: &Path) {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(path.join(sub)).unwrap();
    }
}

/// Sets the modification times of `maildir`'s directories an hour back,
/// as on a mailbox nothing happened to lately: then a login keeps its
/// snapshot for the next (see `popgate_store::snapshot_cache`).
pub fn settle(maildir: &Path) {
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for dir in [
        maildir.to_path_buf(),
        maildir.join("cur"),
        maildir.join("new"),
    ] {
        fs::File::open(dir)
            .and_then(|dir| dir.set_modified(an_hour_ago))
            .unwrap();
    }
}

/// Delivers `contents` into `maildir/new` the way an MTA does (tmp, then
/// rename), under a name whose leading seconds give the delivery order.
pub fn deliver(maildir: &Path, seconds: u64, contents: &[u8]) -> String {
    let name = format!(
        "{seconds}.M{}P{}.testhost",
        rand_suffix(),
        std::process::id()
    );
    let tmp = maildir.join("tmp").join(&name);
    fs::write(&tmp, contents).unwrap();
    fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    name
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The bytes RETR must send for a file: LF made CRLF, final CRLF supplied.
pub fn crlf(contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in contents.iter().enumerate() {
        if b == b'\n' && (i == 0 || contents[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Files in a Maildir's cur/ and new/.
pub fn message_files(maildir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        for entry in fs::read_dir(maildir.join(sub)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    files
}

/// A POP3 client for tests, on the shared [`LineClient`]: the greeting,
/// status lines, multi-line bodies exactly as sent, and STLS.
pub struct Client {
    line: LineClient,
    pub greeting: String,
}

impl Client {
    /// Connects, optionally with TLS, and reads the greeting.
    pub fn connect(addr: SocketAddr, tls: Option<Arc<rustls::ClientConfig>>) -> Client {
        Client::over(TcpStream::connect(addr).unwrap(), tls)
    }

    /// Connects from the local address `source` (e.g. 127.0.0.2, to be
    /// another client address on loopback), and reads the greeting.
    pub fn connect_from(
        source: std::net::IpAddr,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Client {
        Client::over(tcp_from(source, addr), tls)
    }

    /// Takes over a connected socket (TLS first when `tls` is given) and
    /// reads the greeting.
    pub fn over(tcp: TcpStream, tls: Option<Arc<rustls::ClientConfig>>) -> Client {
        let mut client = Client {
            line: LineClient::over(tcp, tls, Duration::from_secs(20)),
            greeting: String::new(),
        };
        client.greeting = client.line();
        assert!(
            client.greeting.starts_with("+OK"),
            "greeting: {}",
            client.greeting
        );
        client
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.line.send_raw(bytes);
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) {
        self.line.send(line);
    }

    /// Reads one response line, without CRLF. Panics on EOF.
    pub fn line(&mut self) -> String {
        self.try_line()
            .expect("connection closed while a line was expected")
    }

    /// Reads one line, or `None` when the server closed the connection.
    pub fn try_line(&mut self) -> Option<String> {
        self.line.line()
    }

    /// Sends a command and returns the status line.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }

    /// Sends a command that must succeed; returns the status line.
    pub fn ok(&mut self, line: &str) -> String {
        let reply = self.cmd(line);
        assert!(reply.starts_with("+OK"), "{line}: {reply}");
        reply
    }

    /// Reads the body of a multi-line response, up to and without the
    /// terminating ".\r\n", exactly as sent (still dot-stuffed).
    pub fn body(&mut self) -> Vec<u8> {
        loop {
            let buffered = self.line.buffered();
            if buffered.starts_with(b".\r\n") {
                self.line.consume(3);
                return Vec::new();
            }
            if let Some(end) = buffered.windows(5).position(|w| w == b"\r\n.\r\n") {
                let body = buffered[..end + 2].to_vec();
                self.line.consume(end + 5);
                return body;
            }
            assert!(
                self.line.fill(),
                "connection closed inside a multi-line response"
            );
        }
    }

    /// Sends a multi-line command; returns its status line and body lines.
    pub fn multi(&mut self, line: &str) -> (String, Vec<String>) {
        let status = self.ok(line);
        let body = String::from_utf8(self.body()).unwrap();
        (status, body.lines().map(str::to_string).collect())
    }

    /// RETR or TOP: the status line and the body with dot-stuffing undone.
    pub fn retrieve(&mut self, line: &str) -> (String, Vec<u8>) {
        let status = self.ok(line);
        (status, unstuff(&self.body()))
    }

    /// STLS, then the TLS handshake on the same connection.
    pub fn stls(mut self, config: Arc<rustls::ClientConfig>) -> Client {
        let reply = self.cmd("STLS");
        assert_eq!(reply, "+OK Begin TLS negotiation");
        self.tls_after_stls_answer(config)
    }

    /// Switches to TLS after the test itself sent STLS and read the `+OK`;
    /// anything buffered from the server meanwhile would be a protocol error.
    pub fn tls_after_stls_answer(self, config: Arc<rustls::ClientConfig>) -> Client {
        Client {
            line: self.line.into_tls(config),
            greeting: self.greeting,
        }
    }

    /// True once the server has closed the connection (waits up to `within`).
    pub fn is_closed_within(&mut self, within: Duration) -> bool {
        self.line.is_closed_within(within)
    }

    /// Reads until the server closes; returns everything it sent meanwhile.
    pub fn read_to_close(&mut self) -> String {
        self.line.read_to_close()
    }

    /// Sends `bytes` a byte at a time (see [`LineClient::trickle`]).
    pub fn trickle(&mut self, bytes: &[u8], every: Duration, give_up: Duration) -> Trickled {
        self.line.trickle(bytes, every, give_up)
    }

    /// Closes the TCP connection without QUIT.
    pub fn drop_connection(self) {
        self.line.drop_connection();
    }

    /// Ends the connection with a TCP reset (`SO_LINGER` 0), as a client
    /// that crashed does: whatever the server writes next fails.
    pub fn reset(self) {
        self.line.reset();
    }
}

/// A blocking TCP connection to `addr` from the local address `source`
/// (e.g. 127.0.0.2, to be another client address on loopback).
pub fn tcp_from(source: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    tcp_prepared(addr, |socket| socket.bind(SocketAddr::new(source, 0)))
}

/// A blocking TCP connection to `addr` whose receive buffer is as small as
/// the kernel allows about `size` octets to be, set before connecting so
/// the window it offers stays small.
pub fn tcp_with_receive_buffer(addr: SocketAddr, size: u32) -> TcpStream {
    tcp_prepared(addr, |socket| socket.set_recv_buffer_size(size))
}

/// A blocking TCP connection to `addr` from a socket `prepare` set up
/// before connecting.
fn tcp_prepared(
    addr: SocketAddr,
    prepare: impl FnOnce(&tokio::net::TcpSocket) -> std::io::Result<()>,
) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let tcp = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        prepare(&socket).unwrap();
        socket.connect(addr).await.unwrap().into_std().unwrap()
    });
    tcp.set_nonblocking(false).unwrap();
    tcp
}

/// Undoes dot-stuffing: a line that starts with ".." loses one dot.
pub fn unstuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut line_start = true;
    let mut i = 0;
    while i < body.len() {
        if line_start && body[i] == b'.' {
            i += 1;
            line_start = false;
            continue;
        }
        line_start = body[i] == b'\n';
        out.push(body[i]);
        i += 1;
    }
    out
}
