//! The control socket and its commands: `popgate who` lists the sessions
//! of the running server, `popgate kick USER` ends that user's sessions
//! without applying their deletions, `popgate reload` reloads as SIGHUP
//! does and prints what it did; only root and the user popgate runs as
//! may ask.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    deliver, message_files, popgate_bin, serve_refused, spawn_serve, tcp_with_receive_buffer,
    Client, MailUserSandbox, Options, Server, PASSWORD,
};
use crate::smtp_harness::Smtp;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `popgate who` on `server`, which must succeed.
fn who(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["who"];
    all.extend_from_slice(args);
    let output = server.control(&all);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

/// A held POP3 session shows with its user, address, TLS version and
/// state, beside a connection that has not logged in; the table and the
/// JSON say the same, and the socket is found through the configuration
/// file as well as given. Before: there was no `popgate who`.
#[test]
fn who_shows_a_held_session_with_its_user_and_address() {
    let server = Server::start();
    let mut alice = server.login("alice");
    let _anonymous = server.connect();
    let table = who(&server, &[]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["service", "user", "rip", "tls", "since", "state"]);
    let alice_row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(alice_row[..4], ["pop3", "alice", "127.0.0.1", "TLSv1_3"]);
    assert!(alice_row[4].ends_with('Z'), "{table}");
    assert_eq!(alice_row[5], "transaction");
    let anonymous_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(anonymous_row[..4], ["pop3", "-", "127.0.0.1", "-"]);
    assert_eq!(anonymous_row[5], "connected");

    let json: serde_json::Value = serde_json::from_str(&who(&server, &["--json"])).unwrap();
    let sessions = json.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["user"], "alice");
    assert_eq!(sessions[0]["rip"], "127.0.0.1");
    assert_eq!(sessions[0]["state"], "transaction");
    assert_eq!(sessions[1]["user"], serde_json::Value::Null);

    let by_config = Command::new(popgate_bin())
        .args(["who", "-c"])
        .arg(server.dir.path().join("popgate.toml"))
        .output()
        .unwrap();
    assert!(by_config.status.success(), "{}", stderr(&by_config));
    assert!(
        stdout(&by_config).contains("alice"),
        "{}",
        stdout(&by_config)
    );

    alice.ok("QUIT");
    let deadline = Instant::now() + Duration::from_secs(10);
    while who(&server, &[]).contains("alice") {
        assert!(Instant::now() < deadline, "alice still listed after QUIT");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `popgate kick alice` ends alice's sessions: her POP3 session, which
/// had marked both her messages deleted, and her submission session. Each
/// client hears why, the summary says `end=kicked`, and both messages are
/// still there for the next login. bob's session goes on, and a user
/// without sessions is an error. Before: there was no `popgate kick`.
#[test]
fn kick_ends_the_session_and_its_deletions_are_not_applied() {
    let server = Server::with(Options {
        submission: Some(vec!["relay = \"maildir\"".into()]),
        ..Options::default()
    });
    for n in 0..2 {
        deliver(
            &server.maildir("alice"),
            1_700_000_000 + n,
            b"Subject: keep me\n\nbody\n",
        );
    }
    let mut alice = server.login("alice");
    alice.ok("DELE 1");
    alice.ok("DELE 2");
    let mut sending = Smtp::logged_in(&server);
    let mut bob = server.login("bob");

    let kicked = server.control(&["kick", "alice"]);
    assert!(kicked.status.success(), "{}", stderr(&kicked));
    assert_eq!(stdout(&kicked), "kicked 2 session(s) of alice\n");
    assert_eq!(
        alice.read_to_close(),
        "-ERR [SYS/TEMP] Disconnected by the administrator\r\n"
    );
    assert_eq!(
        sending.reply(),
        "421 4.3.2 Disconnected by the administrator"
    );
    let log = server.wait_for_log("end=kicked");
    assert!(
        log.contains("pop3 session ended: rip=127.0.0.1 user=alice tls=TLSv1_3 retrieved=0/0 deleted=0 end=kicked"),
        "{log}"
    );
    assert_eq!(message_files(&server.maildir("alice")).len(), 2);
    let mut again = server.login("alice");
    assert!(again.ok("STAT").starts_with("+OK 2 "));
    again.ok("QUIT");
    bob.ok("NOOP");

    let nobody = server.control(&["kick", "carol"]);
    assert!(!nobody.status.success());
    assert!(
        stderr(&nobody).contains("carol has no session"),
        "{}",
        stderr(&nobody)
    );
}

/// A kick reaches a session busy in a step: a RETR of a 32 MiB message to
/// a client that stopped reading ends at once (the write waiting on the
/// client is given up), not after the write timeout, `popgate kick`
/// returns with the session gone, and the DELE and QUIT pipelined behind
/// the RETR are never applied. Would fail if the kick were heard only
/// between commands: the session would hang in its write for the idle
/// timeout (60 s here).
#[test]
fn a_kick_ends_a_session_blocked_in_a_retr() {
    let server = Server::with(Options {
        pop3: vec![
            "idle_timeout = \"60s\"".into(),
            "login = \"plaintext\"".into(),
        ],
        ..Options::default()
    });
    let line = format!("{}\n", "y".repeat(1023));
    let mut big = b"Subject: big\n\n".to_vec();
    while big.len() < 32 << 20 {
        big.extend_from_slice(line.as_bytes());
    }
    deliver(&server.maildir("alice"), 1_700_000_000, &big);
    // Plaintext, so the close after the kick is not a TLS close_notify
    // that a client which does not read could hold up.
    let mut alice = Client::over(tcp_with_receive_buffer(server.plain, 4096), None);
    alice.ok("USER alice");
    alice.ok(&format!("PASS {PASSWORD}"));
    // DELE and QUIT wait behind the RETR: the kick must apply neither.
    alice.send_raw(b"RETR 1\r\nDELE 1\r\nQUIT\r\n");
    // The server fills the socket buffers and waits for the client.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let kicked = server.control(&["kick", "alice"]);
    assert!(kicked.status.success(), "{}", stderr(&kicked));
    assert_eq!(stdout(&kicked), "kicked 1 session(s) of alice\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.wait_for_log("end=kicked");
    assert_eq!(message_files(&server.maildir("alice")).len(), 1);
}

/// `popgate reload` reloads the configuration as SIGHUP does and prints
/// its report; with a broken certificate it says what was kept and exits
/// non-zero, while the server goes on with the old one. Before: there was
/// no `popgate reload`.
#[test]
fn reload_prints_what_was_reloaded() {
    let server = Server::start();
    let reloaded = server.control(&["reload"]);
    assert!(reloaded.status.success(), "{}", stderr(&reloaded));
    assert_eq!(
        stdout(&reloaded),
        "configuration reloaded: no setting changed\n"
    );
    fs::write(server.dir.path().join("cert.pem"), "not a certificate").unwrap();
    let refused = server.control(&["reload"]);
    assert!(!refused.status.success());
    let printed = stdout(&refused);
    assert!(
        printed.starts_with("TLS certificate not reloaded, keeping the old one: "),
        "{printed}"
    );
    assert!(
        printed.ends_with(
            "\nconfiguration reloaded: no setting changed; old contents kept: tls.cert\n"
        ),
        "{printed}"
    );
    assert!(
        stderr(&refused).contains("not complete"),
        "{}",
        stderr(&refused)
    );
    let mut alice = server.login("alice");
    alice.ok("QUIT");
}

/// The socket is mode 0600 and owned by the user popgate runs as; a peer
/// of another uid is refused by its credentials even when the file's mode
/// would let it connect. Needs root (to act as another user).
#[test]
fn only_root_and_the_service_user_may_ask() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: asking as another user needs root (CI runs as root)");
        return;
    }
    let server = Server::start();
    let socket = server.control_socket();
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 0);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    fs::set_permissions(server.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = || {
        Command::new(popgate_bin())
            .args(["who", "--socket"])
            .arg(&socket)
            .uid(nobody.uid.as_raw())
            .gid(nobody.gid.as_raw())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let refused = as_nobody();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Permission denied"),
        "{}",
        stderr(&refused)
    );
    // Even through a socket anyone could open, SO_PEERCRED decides.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let refused = as_nobody();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not allowed: only root and the user popgate runs as"),
        "{}",
        stderr(&refused)
    );
    server.wait_for_log("control connection refused: uid 65534 may not ask");
    assert!(who(&server, &[]).starts_with("service"));
}

/// Started as root with `[store] mail_user`, popgate makes the socket
/// before it drops root and gives it to that user: the mail user may ask
/// (it is the user popgate runs as), and so may root. Needs root.
#[test]
fn the_socket_belongs_to_the_mail_user_popgate_becomes() {
    let Some(sandbox) = MailUserSandbox::new() else {
        return;
    };
    let root = sandbox.root();
    let socket = root.join("control");
    let config = root.join("popgate.toml");
    fs::write(
        &config,
        format!(
            "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n\
             [auth]\nhtpasswd = \"{root}/users.htpasswd\"\n\
             [store]\nmaildir = \"{root}/mail/%u\"\nmail_user = \"nobody\"\n\
             [control]\nsocket = \"{socket}\"\n",
            root = root.display(),
            socket = socket.display()
        ),
    )
    .unwrap();
    let (mut child, _log, _addrs) = spawn_serve(&config, 1, &[]);
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.uid(), sandbox.uid);
    assert_eq!(meta.mode() & 0o777, 0o600);
    for uid in [sandbox.uid, 0] {
        let output = Command::new(popgate_bin())
            .args(["who", "--socket"])
            .arg(&socket)
            .uid(uid)
            .gid(sandbox.gid)
            .output()
            .unwrap();
        assert!(output.status.success(), "uid {uid}: {}", stderr(&output));
        assert!(stdout(&output).starts_with("service"));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A socket left by a popgate that was killed is replaced at the next
/// start; a configured socket that cannot be made stops start-up naming
/// the key.
#[test]
fn a_stale_socket_is_replaced_and_a_configured_one_must_work() {
    let mut server = Server::start();
    server.kill_and_restart();
    assert!(who(&server, &[]).starts_with("service"));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("popgate.toml");
    fs::write(
        &config,
        format!(
            "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n\
             [auth]\nhtpasswd = \"{root}/users.htpasswd\"\n\
             [control]\nsocket = \"{root}/missing/control\"\n",
            root = dir.path().display()
        ),
    )
    .unwrap();
    fs::write(dir.path().join("users.htpasswd"), "").unwrap();
    let error = serve_refused(&config);
    assert!(error.contains("key `control.socket`"), "{error}");
}

/// The control socket reads one bounded request line in bounded time: an
/// unknown request, `MAX_REQUEST` octets without a line end and a client that
/// sends nothing (after `REQUEST_TIMEOUT`) each get an error answer and
/// the connection's end, and `who` is answered after them (caught: a
/// request read without a bound or a deadline holds its task, or worse,
/// the socket).
#[test]
fn bad_requests_get_an_error_and_the_socket_serves_on() {
    use popgate::control::protocol::MAX_REQUEST;
    use popgate::control::REQUEST_TIMEOUT;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    let server = Server::start();
    let ask = |bytes: &[u8]| -> String {
        let mut stream = UnixStream::connect(server.control_socket()).unwrap();
        stream
            .set_read_timeout(Some(REQUEST_TIMEOUT + Duration::from_secs(10)))
            .unwrap();
        stream.write_all(bytes).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let unknown = ask(b"frobnicate\n");
    assert!(unknown.contains("unknown request"), "{unknown}");
    // Exactly the bound, no line end.
    let long = ask(&vec![b'w'; MAX_REQUEST]);
    assert!(long.contains("request too long"), "{long}");
    // Well past it, and the answer read only once the server is done: it
    // reads and drops the rest, since a socket closed with input unread
    // resets the client's end and the answer not yet read is lost.
    let mut stream = UnixStream::connect(server.control_socket()).unwrap();
    stream.write_all(&vec![b'w'; 8 * MAX_REQUEST]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut longer = String::new();
    stream.read_to_string(&mut longer).unwrap();
    assert!(longer.contains("request too long"), "{longer}");
    let started = Instant::now();
    let silent = ask(b"");
    assert!(silent.contains("no request in time"), "{silent}");
    assert!(
        started.elapsed() + Duration::from_millis(200) >= REQUEST_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    let sessions = who(&server, &[]);
    assert!(sessions.starts_with("service"), "{sessions}");
}
