//! The POP3 conversation: greeting, CAPA, STLS, logins of every kind, and
//! the transaction commands, checked byte for byte against the Maildir.

use std::time::{Duration, Instant};

use crate::harness::{crlf, deliver, Options, Server, User, PASSWORD};

const MESSAGE: &[u8] = b"From: a@example.com\nSubject: hi\n\nline one\n.dot line\n..two dots\nlast line without newline";

#[test]
fn secure_login_takes_no_credentials_before_tls() {
    let server = Server::start();
    let mut client = server.connect();
    assert_eq!(client.greeting, "+OK popgate ready");
    let (_, capa) = client.multi("CAPA");
    for wanted in [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "STLS",
        "EXPIRE NEVER",
    ] {
        assert!(
            capa.iter().any(|c| c == wanted),
            "{wanted} missing from {capa:?}"
        );
    }
    assert!(
        !capa.iter().any(|c| c == "USER" || c.starts_with("SASL")),
        "{capa:?}"
    );
    for line in ["USER alice", "AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U="] {
        let reply = client.cmd(line);
        assert!(reply.starts_with("-ERR [AUTH]"), "{line}: {reply}");
    }
    let mut client = client.stls(server.client_config());
    let (_, capa) = client.multi("CAPA");
    assert!(!capa.iter().any(|c| c == "STLS"), "{capa:?}");
    assert!(capa.iter().any(|c| c == "USER"));
    assert!(capa.iter().any(|c| c == "SASL PLAIN LOGIN"));
    client.ok("USER alice");
    client.ok(&format!("PASS {PASSWORD}"));
    assert_eq!(client.cmd("STLS"), "-ERR Not allowed after login");
}

#[test]
fn plaintext_login_can_be_allowed() {
    let server = Server::with(Options {
        pop3: vec!["login = \"plaintext\"".into()],
        ..Options::default()
    });
    let mut client = server.connect();
    let (_, capa) = client.multi("CAPA");
    assert!(capa.iter().any(|c| c == "USER") && capa.iter().any(|c| c == "STLS"));
    client.ok("USER alice");
    assert!(client
        .cmd(&format!("PASS {PASSWORD}"))
        .starts_with("+OK Logged in"));
}

#[test]
fn every_sasl_form_logs_in() {
    let server = Server::start();
    // "\0alice\0correct horse"
    let plain = "AGFsaWNlAGNvcnJlY3QgaG9yc2U=";
    // Each login QUITs, or the next would wait for alice's session lock.
    let mut client = server.connect_tls();
    assert!(client
        .cmd(&format!("AUTH PLAIN {plain}"))
        .starts_with("+OK Logged in"));
    client.ok("QUIT");
    let mut client = server.connect_tls();
    assert_eq!(client.cmd("AUTH PLAIN"), "+ ");
    assert!(client.cmd(plain).starts_with("+OK Logged in"));
    client.ok("QUIT");
    let mut client = server.connect_tls();
    assert_eq!(client.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6");
    assert_eq!(client.cmd("YWxpY2U="), "+ UGFzc3dvcmQ6");
    assert!(client
        .cmd("Y29ycmVjdCBob3JzZQ==")
        .starts_with("+OK Logged in"));
    client.ok("QUIT");
    let mut client = server.connect_tls();
    assert_eq!(client.cmd("AUTH LOGIN YWxpY2U="), "+ UGFzc3dvcmQ6");
    assert_eq!(client.cmd("*"), "-ERR Authentication cancelled");
    let (_, mechanisms) = client.multi("AUTH");
    assert_eq!(mechanisms, ["PLAIN", "LOGIN"]);
    assert_eq!(
        client.cmd("AUTH PLAIN %%%"),
        "-ERR the SASL response is not valid base64"
    );
    assert!(client.cmd("AUTH GSSAPI").starts_with("-ERR"));
    assert!(client.cmd("USER bob").starts_with("+OK"));
}

#[test]
fn unknown_user_and_wrong_password_get_the_same_answer_after_the_delay() {
    let server = Server::with(Options {
        auth: vec!["failure_delay = \"300ms\"".into()],
        ..Options::default()
    });
    let mut answers = Vec::new();
    for (user, password) in [
        ("alice", "wrong"),
        ("nobody-here", "wrong"),
        ("root", PASSWORD),
    ] {
        let mut client = server.connect_tls();
        client.ok(&format!("USER {user}"));
        let started = Instant::now();
        let reply = client.cmd(&format!("PASS {password}"));
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{user}: answered too fast"
        );
        answers.push(reply);
    }
    assert_eq!(answers[0], "-ERR [AUTH] Authentication failed");
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    let log = server.wait_for_log("user=nobody-here");
    assert!(
        log.contains(
            "authentication failed: service=pop3 rip=127.0.0.1 user=alice reason=bad-credentials"
        ),
        "{log}"
    );
    assert!(!log.contains("wrong"), "a password reached the log:\n{log}");
}

#[test]
fn malformed_names_are_refused_at_user() {
    let server = Server::start();
    let mut client = server.connect_tls();
    for name in ["../etc/passwd", ".hidden", "a/b", &"x".repeat(65)] {
        assert_eq!(
            client.cmd(&format!("USER {name}")),
            "-ERR [AUTH] Invalid user name",
            "{name}"
        );
    }
}

#[test]
fn transaction_commands_match_the_files_byte_for_byte() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    let first = b"Subject: one\r\n\r\nCRLF body\r\n".to_vec();
    deliver(&maildir, 1_700_000_000, &first);
    let second_name = deliver(&maildir, 1_700_000_100, MESSAGE);
    let mut client = server.login("alice");
    let expected = [crlf(&first), crlf(MESSAGE)];
    let total: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(client.cmd("STAT"), format!("+OK 2 {total}"));
    let (_, list) = client.multi("LIST");
    assert_eq!(
        list,
        [
            format!("1 {}", expected[0].len()),
            format!("2 {}", expected[1].len())
        ]
    );
    assert_eq!(client.cmd("LIST 2"), format!("+OK 2 {}", expected[1].len()));
    let (_, uidl) = client.multi("UIDL");
    assert_eq!(uidl[1], format!("2 {second_name}"));
    assert_eq!(client.cmd("UIDL 2"), format!("+OK 2 {second_name}"));
    for (i, want) in expected.iter().enumerate() {
        let (status, body) = client.retrieve(&format!("RETR {}", i + 1));
        assert_eq!(status, format!("+OK {} octets", want.len()));
        assert_eq!(&body, want, "message {}", i + 1);
    }
    assert_eq!(client.cmd("RETR 3"), "-ERR There's no message 3.");
    assert_eq!(client.cmd("LIST 0"), "-ERR There's no message 0.");
    assert_eq!(client.cmd("RETR x"), "-ERR Invalid number");
    assert_eq!(client.cmd("NOOP"), "+OK ");
    assert_eq!(client.cmd("UTF8"), "+OK UTF8 enabled");
}

#[test]
fn top_sends_headers_blank_line_and_n_body_lines() {
    let server = Server::start();
    deliver(&server.maildir("alice"), 1_700_000_000, MESSAGE);
    let mut client = server.login("alice");
    let (_, top0) = client.retrieve("TOP 1 0");
    assert_eq!(top0, b"From: a@example.com\r\nSubject: hi\r\n\r\n");
    let (_, top2) = client.retrieve("TOP 1 2");
    assert_eq!(
        top2,
        b"From: a@example.com\r\nSubject: hi\r\n\r\nline one\r\n.dot line\r\n"
    );
    let (_, top_huge) = client.retrieve("TOP 1 99999999");
    assert_eq!(top_huge, crlf(MESSAGE));
    // TOP marks nothing: the file name keeps its flags.
    let names: Vec<_> = crate::harness::message_files(&server.maildir("alice"));
    assert!(
        names.iter().all(|p| !p.to_string_lossy().contains(",S")),
        "{names:?}"
    );
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = Server::start();
    let message = b"Subject: x\n\nbody\n";
    let size = crlf(message).len();
    deliver(&server.maildir("alice"), 1_700_000_000, message);
    let mut client = server.connect_tls();
    client.send_raw(
        format!("USER alice\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST 1\r\nUIDL\r\nNOOP\r\nQUIT\r\n")
            .as_bytes(),
    );
    let all = client.read_to_close();
    let lines: Vec<&str> = all.split("\r\n").collect();
    assert!(lines[0].starts_with("+OK Send your password"), "{all}");
    assert!(lines[1].starts_with("+OK Logged in"), "{all}");
    assert_eq!(lines[2], format!("+OK 1 {size}"));
    assert_eq!(lines[3], format!("+OK 1 {size}"));
    assert_eq!(lines[4], "+OK Unique-ID listing follows");
    assert_eq!(lines[6], ".");
    assert_eq!(lines[7], "+OK ");
    assert!(lines[8].starts_with("+OK Logging out"), "{all}");
}

#[test]
fn commands_in_the_wrong_state_are_refused() {
    let server = Server::start();
    let mut client = server.connect_tls();
    for line in [
        "STAT", "LIST", "RETR 1", "DELE 1", "RSET", "TOP 1 1", "UIDL", "NOOP",
    ] {
        assert_eq!(client.cmd(line), "-ERR Not allowed before login", "{line}");
    }
    assert_eq!(
        client.cmd("PASS x"),
        "-ERR No user name given; send USER first"
    );
    let mut client = server.login("alice");
    for line in ["USER alice", "PASS x", "AUTH PLAIN AGFsaWNlAHg="] {
        assert_eq!(client.cmd(line), "-ERR Not allowed after login", "{line}");
    }
    assert_eq!(client.cmd("APOP alice 0123"), "-ERR Unknown command");
}

#[test]
fn deny_list_refuses_even_the_right_password() {
    let server = Server::with(Options {
        users: vec![User {
            name: "admin",
            password: PASSWORD,
        }],
        ..Options::default()
    });
    let mut client = server.connect_tls();
    client.ok("USER admin");
    assert_eq!(
        client.cmd(&format!("PASS {PASSWORD}")),
        "-ERR [AUTH] Authentication failed"
    );
}

#[test]
fn disabled_mailboxes_say_so_after_a_right_password() {
    let server = Server::with(Options {
        auth: vec![
            "failure_delay = \"100ms\"".into(),
            "disabled_users = [\"bob\"]".into(),
        ],
        ..Options::default()
    });
    let mut client = server.connect_tls();
    client.ok("USER bob");
    assert_eq!(
        client.cmd("PASS wrong"),
        "-ERR [AUTH] Authentication failed"
    );
    client.ok("USER bob");
    assert!(client
        .cmd(&format!("PASS {PASSWORD}"))
        .starts_with("-ERR [SYS/PERM]"));
}

#[test]
fn a_changed_htpasswd_file_is_picked_up_without_restart() {
    let server = Server::start();
    let path = server.dir.path().join("users.htpasswd");
    let hash = popgate_auth::hash_password_bcrypt("new password", 4).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = server.connect_tls();
        client.ok("USER alice");
        if client.cmd("PASS new password").starts_with("+OK") {
            break;
        }
        assert!(Instant::now() < deadline, "new password never accepted");
    }
    let mut client = server.connect_tls();
    client.ok("USER alice");
    assert!(client
        .cmd(&format!("PASS {PASSWORD}"))
        .starts_with("-ERR [AUTH]"));
}

/// RETR reads a message's first piece together with opening it and
/// streams the rest: messages just under, at and over that size, and a
/// large one, must arrive byte for byte (LF endings, dot lines crossing the
/// boundary), and TOP must stop inside the first piece. Each size comes
/// twice: once in memory, read without leaving the async thread, and once
/// dropped from the page cache, so that the read must wait for the disk
/// and goes to a blocking thread.
#[test]
fn messages_around_the_first_read_and_large_ones_arrive_byte_for_byte() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    let chunk = popgate::pop3::driver::MESSAGE_PIECE;
    let message = |size: usize| {
        let mut m = b"Subject: sized\n\n".to_vec();
        let mut n = 0;
        while m.len() < size {
            m.extend_from_slice(format!(".line {n} with a leading dot\n").as_bytes());
            n += 1;
        }
        m.truncate(size);
        m
    };
    let sizes = [chunk - 1, chunk, chunk + 1, 3 * 1024 * 1024 + 17];
    let sizes = [sizes, sizes].concat();
    let names: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| deliver(&maildir, 1_700_000_000 + i as u64, &message(*size)))
        .collect();
    // Logging in reads every new message to learn its size.
    let mut client = server.login("alice");
    for name in &names[sizes.len() / 2..] {
        drop_from_page_cache(&maildir.join("cur").join(format!("{name}:2,")));
    }
    for (i, size) in sizes.iter().enumerate() {
        let want = crlf(&message(*size));
        let (status, body) = client.retrieve(&format!("RETR {}", i + 1));
        assert_eq!(status, format!("+OK {} octets", want.len()), "size {size}");
        assert!(body == want, "message of {size} octets differs");
    }
    for number in [4, 8] {
        let (_, top) = client.retrieve(&format!("TOP {number} 1"));
        assert_eq!(top, b"Subject: sized\r\n\r\n.line 0 with a leading dot\r\n");
    }
}

/// Once a RETR had to wait for the disk, the session has the kernel load
/// the message after it while it sends this one: the next RETR finds it in
/// memory. Only that one: the message after the next stays on disk.
#[test]
fn a_session_that_waited_for_the_disk_loads_the_next_message_ahead() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    let message: Vec<u8> = (0..20_000)
        .flat_map(|n| format!("line {n:05} of a message read from the disk\n").into_bytes())
        .collect();
    let names: Vec<String> = (0..3)
        .map(|i| deliver(&maildir, 1_700_000_000 + i, &message))
        .collect();
    let files: Vec<_> = names
        .iter()
        .map(|name| maildir.join("cur").join(format!("{name}:2,")))
        .collect();
    // Logging in reads every new message to learn its size.
    let mut client = server.login("alice");
    for file in &files {
        drop_from_page_cache(file);
        assert_eq!(resident(file), 0, "{} kept its pages", file.display());
    }
    let (_, body) = client.retrieve("RETR 1");
    assert!(body == crlf(&message));
    let deadline = Instant::now() + Duration::from_secs(10);
    while resident(&files[1]) < message.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "message 2 was not loaded ahead: {} of {} octets in memory",
            resident(&files[1]),
            message.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(resident(&files[2]), 0, "message 3 was loaded too");
    let (_, body) = client.retrieve("RETR 2");
    assert!(body == crlf(&message));
}

/// How many octets of `path` are in the page cache, as util-linux's
/// `fincore` finds them (it asks the kernel without reading the file).
fn resident(path: &std::path::Path) -> u64 {
    let output = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (Debian's util-linux-extra) runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// Writes `path` to disk and asks the kernel to forget its pages.
fn drop_from_page_cache(path: &std::path::Path) {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
}
