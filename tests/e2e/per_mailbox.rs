//! Per-mailbox settings (`[auth] mailbox_settings`, issue 12 item 1): the
//! issue's example in one server, a change to the file taking effect
//! without a restart, broken files refused with their line while the
//! settings in force stay, and `popgate mailbox` saying where each value
//! comes from.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{
    deliver, message_files, popgate_bin, serve_refused, Client, Options, Server, User, PASSWORD,
};
use crate::smtp_harness::{plain, submission_addr, Sink, Smtp};

/// The issue's example, as an admin writes it.
const ISSUE_EXAMPLE: &str = r#"[alice]
pop3 = false                 # POP3 off for this mailbox (Set-CASMailbox -PopEnabled $false)
[reply-bot]
on_dele = "delete"           # the poller's mailbox is emptied ...
order = "newest-first"
max_connections = 2
[bob]
on_dele = "keep"             # ... while a person's keeps its copies
submission = false           # may read but not send
addresses = ["bob@example.com", "sales@example.com"]
"#;

fn users() -> Vec<User> {
    ["alice", "bob", "reply-bot", "dave"]
        .into_iter()
        .map(|name| User {
            name,
            password: PASSWORD,
        })
        .collect()
}

/// A server whose global `on_dele` moves to an Archive folder, so that
/// both the file's `delete` and its `keep` differ from it, with the
/// mailbox settings at `file` and submission relaying to `sink`.
fn server(file: &Path, sink: &Sink) -> Server {
    Server::with(Options {
        users: users(),
        pop3: vec![
            "on_dele = \"move:Archive\"".into(),
            // Sessions of one mailbox at once, so max_connections is what
            // refuses the third.
            "lock = false".into(),
        ],
        auth: vec![
            "failure_delay = \"100ms\"".into(),
            format!("mailbox_settings = \"{}\"", file.display()),
        ],
        submission: Some(sink.relay_lines()),
        ..Options::default()
    })
}

/// What alice, whose POP3 the issue's example switches off, hears.
const ALICE_DISABLED: &str = "-ERR [SYS/PERM] POP3 access is disabled for this mailbox";

/// A [`server`] with the issue's example as its mailbox settings file:
/// the directory holding it, the file, the sink and the server.
fn issue_example_server() -> (tempfile::TempDir, PathBuf, Sink, Server) {
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("mailboxes.toml");
    fs::write(&file, ISSUE_EXAMPLE).unwrap();
    let sink = Sink::start();
    let server = server(&file, &sink);
    (files, file, sink, server)
}

/// Writes `text` over `path` as editors do: a new file renamed over it.
fn replace(path: &Path, text: &str) {
    let new = path.with_extension("new");
    fs::write(&new, text).unwrap();
    fs::rename(&new, path).unwrap();
}

/// The reply to USER and PASS on a new TLS connection.
fn pop3_login(server: &Server, user: &str) -> (Client, String) {
    let mut client = server.connect_tls();
    client.ok(&format!("USER {user}"));
    let reply = client.cmd(&format!("PASS {PASSWORD}"));
    (client, reply)
}

/// A submission connection after STARTTLS and EHLO, and its reply to AUTH.
fn smtp_login(server: &Server, user: &str) -> (Smtp, String) {
    let smtp = Smtp::connect(submission_addr(server), None);
    let mut smtp = smtp.starttls(server.client_config());
    smtp.cmd("EHLO client.test");
    let reply = smtp.cmd(&format!("AUTH PLAIN {}", plain(user, PASSWORD)));
    (smtp, reply)
}

/// Retries `attempt` until it gives `want` (the file is looked at at most
/// once a second, so a change shows within a few logins), for 10 seconds.
fn eventually(want: &str, mut attempt: impl FnMut() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = attempt();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn message(from: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: x@example.org\r\nSubject: hi\r\n\r\nhello\r\n").into_bytes()
}

/// Issue 12's example end to end in one server: alice's POP3 is off (and
/// her sending is not), reply-bot's DELE removes files while bob's keeps
/// them and dave, who has no table, gets the global `move:Archive`;
/// reply-bot's list is newest first and holds two sessions at most; bob
/// may not send. Then the file changes and bob sends as
/// sales@example.com, without a restart. Before the feature every login
/// succeeded and every DELE moved to the Archive.
#[test]
fn the_issue_example_in_one_server() {
    let (_files, file, sink, server) = issue_example_server();
    let (_, reply) = pop3_login(&server, "alice");
    assert_eq!(reply, ALICE_DISABLED);
    let log = server.wait_for_log("reason=disabled");
    assert!(
        log.contains(
            "authentication refused: service=pop3 rip=127.0.0.1 user=alice reason=disabled"
        ),
        "{log}"
    );
    let (_, reply) = smtp_login(&server, "alice");
    assert_eq!(
        reply, "235 2.7.0 Authentication successful",
        "POP3 only is off"
    );

    let bot = server.maildir("reply-bot");
    deliver(&bot, 1_700_000_001, b"Subject: older\n\nold\n");
    deliver(&bot, 1_700_000_002, b"Subject: newer\n\nnew\n");
    let (mut poller, reply) = pop3_login(&server, "reply-bot");
    assert!(reply.starts_with("+OK"), "{reply}");
    let (_, top) = poller.retrieve("TOP 1 0");
    assert_eq!(top, b"Subject: newer\r\n\r\n", "newest first");
    let (_second, reply) = pop3_login(&server, "reply-bot");
    assert!(reply.starts_with("+OK"), "{reply}");
    let (_third, reply) = pop3_login(&server, "reply-bot");
    assert_eq!(reply, "-ERR [IN-USE] Too many sessions for this user");
    poller.ok("DELE 1");
    poller.ok("DELE 2");
    assert_eq!(poller.cmd("QUIT"), "+OK Logging out, 2 messages deleted");
    assert!(message_files(&bot).is_empty());
    assert!(!bot.join(".Archive").exists());

    for (user, archived) in [("bob", false), ("dave", true)] {
        let maildir = server.maildir(user);
        deliver(&maildir, 1_700_000_003, b"Subject: keep me?\n\nbody\n");
        let (mut client, reply) = pop3_login(&server, user);
        assert!(reply.starts_with("+OK"), "{user}: {reply}");
        client.ok("DELE 1");
        assert_eq!(client.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
        let left = message_files(&maildir).len();
        assert_eq!((user, left), (user, usize::from(!archived)));
        assert_eq!(maildir.join(".Archive/cur").exists(), archived, "{user}");
    }

    let (mut refused, reply) = smtp_login(&server, "bob");
    assert_eq!(
        reply,
        "535 5.7.1 Submission access is disabled for this mailbox"
    );
    assert_eq!(
        refused.cmd("MAIL FROM:<bob@example.com>"),
        "530 5.7.0 Authentication required"
    );
    let log = server.wait_for_log("service=submission rip=127.0.0.1 user=bob reason=disabled");
    assert!(log.contains("user=bob reason=disabled"), "{log}");

    // bob may send after all: the file changes, the server does not restart.
    replace(&file, &ISSUE_EXAMPLE.replace("submission = false", ""));
    let mut sent = None;
    let reply = eventually("235 2.7.0 Authentication successful", || {
        let (smtp, reply) = smtp_login(&server, "bob");
        sent = Some(smtp);
        reply
    });
    assert_eq!(reply, "235 2.7.0 Authentication successful");
    let mut smtp = sent.unwrap();
    let reply = smtp.send_message(
        "sales@example.com",
        &["x@example.org"],
        &message("sales@example.com"),
    );
    assert_eq!(reply, "250 2.0.0 Message accepted for delivery");
    assert_eq!(
        smtp.cmd("MAIL FROM:<carol@example.com>"),
        "553 5.7.1 Sender address not owned by the authenticated user"
    );
    assert_eq!(sink.received().len(), 1);
    assert!(server.log().contains("mailbox settings reloaded"));
}

/// A broken change to the file is refused with its line, in one log line,
/// and the settings in force stay: alice's POP3 stays off, bob's on_dele
/// stays keep. SIGHUP's reload says the same and keeps them too. Caught:
/// a file read again without checks would have dropped alice's switch.
#[test]
fn a_broken_file_is_refused_with_its_line_and_the_old_settings_stay() {
    let (_files, file, _sink, server) = issue_example_server();
    let (_, reply) = pop3_login(&server, "alice");
    assert_eq!(reply, ALICE_DISABLED);

    for (broken, line, what) in [
        (
            "[alice]\npop3 = false\non_del = \"keep\"\n",
            3,
            "unknown field `on_del`",
        ),
        (
            "[alice]\npop3 = false\n\n[bob]\non_dele = \"shred\"\n",
            5,
            "unknown on_dele \"shred\"",
        ),
    ] {
        replace(&file, broken);
        let needle = format!("{} line {line}: ", file.display());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.log().contains(&needle) && Instant::now() < deadline {
            let (_, reply) = pop3_login(&server, "alice");
            assert_eq!(reply, ALICE_DISABLED);
            std::thread::sleep(Duration::from_millis(200));
        }
        // More logins, more seconds: still one line for this change.
        for _ in 0..6 {
            let (_, reply) = pop3_login(&server, "alice");
            assert_eq!(reply, ALICE_DISABLED);
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = server.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&needle)).collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(
            lines[0].contains("mailbox settings file changed but cannot be used, the settings loaded before stay in force")
                && lines[0].contains(what),
            "{log}"
        );
    }
    let bob = server.maildir("bob");
    deliver(&bob, 1_700_000_001, b"Subject: s\n\nb\n");
    let (mut client, _) = pop3_login(&server, "bob");
    client.ok("DELE 1");
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert_eq!(message_files(&bob).len(), 1, "bob's keep is still in force");

    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let log = server.wait_for_log("old contents kept: auth.mailbox_settings");
    assert!(
        log.contains(&format!(
            "mailbox settings not reloaded, keeping the old one: {} line 5: ",
            file.display()
        )),
        "{log}"
    );
    let (_, reply) = pop3_login(&server, "alice");
    assert_eq!(reply, ALICE_DISABLED);
}

/// A file that cannot work stops start-up, naming the file and the line,
/// as an unknown key of the configuration does.
#[test]
fn a_broken_file_stops_start_up_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailboxes.toml");
    fs::write(&file, "[bob]\non_dele = \"keep\"\nmax_connections = 0\n").unwrap();
    let config = dir.path().join("popgate.toml");
    fs::write(
        &config,
        format!(
            "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n\
             [auth]\nhtpasswd = \"/dev/null\"\nmailbox_settings = \"{}\"\n",
            file.display()
        ),
    )
    .unwrap();
    let error = serve_refused(&config);
    assert!(
        error.contains(&format!(
            "key `auth.mailbox_settings`: {} line 3: [bob] max_connections: must be at least 1",
            file.display()
        )),
        "{error}"
    );
}

/// `popgate mailbox`: every setting of a user with a table and of one
/// without, and where each comes from, in the file's own syntax.
#[test]
fn popgate_mailbox_prints_each_setting_and_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mailboxes.toml");
    fs::write(&file, ISSUE_EXAMPLE).unwrap();
    let config = dir.path().join("popgate.toml");
    fs::write(
        &config,
        format!(
            "hostname = \"mail.example.com\"\n\
             [tls]\ncert = \"c\"\nkey = \"k\"\n\
             [pop3]\nlisten_tls = []\non_dele = \"move:Archive\"\n\
             [auth]\nhtpasswd = \"/dev/null\"\nmailbox_settings = \"{}\"\n\
             [submission]\nrelay = \"maildir\"\n\
             [submission.addresses]\nbob = [\"b.smith@example.com\"]\n",
            file.display()
        ),
    )
    .unwrap();
    let mailbox = |user: &str| {
        let output = Command::new(popgate_bin())
            .args(["mailbox", "-c"])
            .arg(&config)
            .arg(user)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        String::from_utf8(output.stdout).unwrap()
    };
    let at = |line: usize| format!("{} line {line}", file.display());
    let path = file.display();
    let bob = mailbox("Bob");
    let expected = [
        "# Bob logs in as bob ([auth] login_name_case)".to_string(),
        "# bob: settings in force and where each comes from".into(),
        format!("# [bob] in {path}"),
        "pop3 = true                  # default".into(),
        format!("submission = false           # {}", at(9)),
        format!("on_dele = \"keep\"             # {}", at(8)),
        "order = \"oldest-first\"       # [pop3] order".into(),
        "max_connections = 10         # [pop3] max_connections_per_user".into(),
        "addresses = [".into(),
        "    \"bob@mail.example.com\",  # the login name".into(),
        "    \"b.smith@example.com\",   # [submission.addresses]".into(),
        format!("    \"bob@example.com\",       # {}", at(10)),
        format!("    \"sales@example.com\",     # {}", at(10)),
        "]".into(),
    ];
    assert_eq!(bob.lines().collect::<Vec<_>>(), expected, "{bob}");

    let dave = mailbox("dave");
    let expected = [
        "# dave: settings in force and where each comes from".to_string(),
        format!("# {path} has no [dave] table"),
        "pop3 = true                   # default".into(),
        "submission = true             # default".into(),
        "on_dele = \"move:Archive\"      # [pop3] on_dele".into(),
        "order = \"oldest-first\"        # [pop3] order".into(),
        "max_connections = 10          # [pop3] max_connections_per_user".into(),
        "addresses = [".into(),
        "    \"dave@mail.example.com\",  # the login name".into(),
        "]".into(),
    ];
    assert_eq!(dave.lines().collect::<Vec<_>>(), expected, "{dave}");

    let output = Command::new(popgate_bin())
        .args(["mailbox", "-c"])
        .arg(&config)
        .arg("no/such")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a valid login name"));
}
