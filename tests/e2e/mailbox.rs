//! What sessions do to the Maildir: deletions only at QUIT, nothing on a
//! drop, the session lock, a snapshot fixed at login, files that vanish.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{crlf, deliver, message_files, settle, Options, Server, PASSWORD};

fn nth_message(i: u64) -> Vec<u8> {
    format!("Subject: {i}\n\nbody {i}\n").into_bytes()
}

/// The size LIST reports for [`nth_message`].
fn nth_size(i: u64) -> usize {
    crlf(&nth_message(i)).len()
}

fn three_messages(server: &Server) -> Vec<String> {
    (0..3)
        .map(|i| deliver(&server.maildir("alice"), 1_700_000_000 + i, &nth_message(i)))
        .collect()
}

#[test]
fn dele_and_quit_remove_exactly_the_marked_messages() {
    let server = Server::start();
    let names = three_messages(&server);
    let mut client = server.login("alice");
    client.ok("DELE 1");
    client.ok("DELE 3");
    assert_eq!(client.cmd("DELE 3"), "-ERR Message 3 is deleted.");
    assert_eq!(client.cmd("STAT"), format!("+OK 1 {}", nth_size(1)));
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 2 messages deleted");
    assert!(client.is_closed_within(Duration::from_secs(5)));
    let left = message_files(&server.maildir("alice"));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].to_string_lossy().contains(&names[1]));
    let mut client = server.login("alice");
    assert_eq!(client.cmd("STAT"), format!("+OK 1 {}", nth_size(1)));
}

#[test]
fn a_connection_that_ends_without_quit_deletes_nothing() {
    let server = Server::start();
    three_messages(&server);
    let mut client = server.login("alice");
    client.ok("DELE 1");
    client.ok("DELE 2");
    client.drop_connection();
    server.wait_for_log("end=disconnected");
    assert_eq!(message_files(&server.maildir("alice")).len(), 3);
    let mut client = server.login("alice");
    client.ok("DELE 1");
    client.ok("RSET");
    client.ok("QUIT");
    assert!(client.is_closed_within(Duration::from_secs(5)));
    assert_eq!(message_files(&server.maildir("alice")).len(), 3);
}

#[test]
fn quit_before_login_applies_nothing() {
    let server = Server::start();
    three_messages(&server);
    let mut client = server.connect_tls();
    assert_eq!(client.cmd("QUIT"), "+OK Logging out");
    assert_eq!(message_files(&server.maildir("alice")).len(), 3);
}

#[test]
fn a_second_session_waits_for_the_lock_then_gets_in_use() {
    let server = Server::with(Options {
        pop3: vec!["lock_wait = \"700ms\"".into()],
        ..Options::default()
    });
    three_messages(&server);
    let mut first = server.login("alice");
    let mut second = server.connect_tls();
    second.ok("USER alice");
    let started = Instant::now();
    assert_eq!(
        second.cmd(&format!("PASS {PASSWORD}")),
        "-ERR [IN-USE] Mailbox is locked by another POP3 session"
    );
    assert!(started.elapsed() >= Duration::from_millis(700));
    // Another user's mailbox is not affected.
    server.login("bob");
    // A second session that arrives while the first is finishing gets in.
    second.ok("USER alice");
    second.send(&format!("PASS {PASSWORD}"));
    thread::sleep(Duration::from_millis(200));
    first.ok("QUIT");
    assert!(second.line().starts_with("+OK Logged in, 3 messages"));
}

#[test]
fn the_snapshot_is_taken_at_login_and_new_mail_waits_for_the_next_session() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    three_messages(&server);
    let three = nth_size(0) + nth_size(1) + nth_size(2);
    let mut client = server.login("alice");
    assert_eq!(client.cmd("STAT"), format!("+OK 3 {three}"));
    assert!(
        fs::read_dir(maildir.join("new")).unwrap().next().is_none(),
        "new/ not moved to cur/"
    );
    deliver(&maildir, 1_700_000_999, &nth_message(9));
    assert_eq!(client.cmd("STAT"), format!("+OK 3 {three}"));
    assert_eq!(client.cmd("LIST 4"), "-ERR There's no message 4.");
    client.ok("QUIT");
    let mut client = server.login("alice");
    assert_eq!(client.cmd("STAT"), format!("+OK 4 {}", three + nth_size(9)));
}

#[test]
fn a_message_removed_by_another_program_gets_an_error_and_the_session_goes_on() {
    let server = Server::start();
    three_messages(&server);
    let mut client = server.login("alice");
    for file in message_files(&server.maildir("alice")) {
        if fs::read_to_string(&file).unwrap().contains("body 1") {
            fs::remove_file(file).unwrap();
        }
    }
    assert_eq!(
        client.cmd("RETR 2"),
        "-ERR Message 2 was removed by another program"
    );
    let (_, body) = client.retrieve("RETR 3");
    assert_eq!(body, crlf(&nth_message(2)));
    client.ok("DELE 2");
    assert!(client.cmd("QUIT").starts_with("+OK"));
    assert_eq!(message_files(&server.maildir("alice")).len(), 2);
}

#[test]
fn sizes_are_cached_in_the_maildir_and_uidls_never_change() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    three_messages(&server);
    let mut client = server.login("alice");
    let (_, first_uidls) = client.multi("UIDL");
    let (_, first_sizes) = client.multi("LIST");
    client.ok("QUIT");
    assert!(
        maildir.join("popgate-sizes").exists(),
        "no size cache written"
    );
    let mut client = server.login("alice");
    assert_eq!(client.multi("UIDL").1, first_uidls);
    assert_eq!(client.multi("LIST").1, first_sizes);
}

#[test]
fn newest_first_order_reverses_the_listing() {
    let server = Server::with(Options {
        pop3: vec!["order = \"newest-first\"".into()],
        ..Options::default()
    });
    let names = three_messages(&server);
    let mut client = server.login("alice");
    let (_, uidls) = client.multi("UIDL");
    assert_eq!(
        uidls,
        [
            format!("1 {}", names[2]),
            format!("2 {}", names[1]),
            format!("3 {}", names[0])
        ]
    );
}

#[test]
fn a_quit_right_behind_a_retr_still_applies_its_deletions() {
    // After a RETR the next message is read ahead on a blocking thread; a
    // QUIT pipelined right behind must still get the whole mailbox back.
    let server = Server::start();
    let line = format!("{}\n", "x".repeat(99));
    let body = format!("Subject: big\n\n{}", line.repeat(10_000));
    for i in 0..6 {
        deliver(&server.maildir("alice"), 1_700_000_000 + i, body.as_bytes());
    }
    for left in (1..6).rev() {
        let mut client = server.login("alice");
        client.send_raw(b"RETR 1\r\nDELE 1\r\nQUIT\r\n");
        let all = client.read_to_close();
        assert!(
            all.ends_with("+OK Logging out, 1 messages deleted\r\n"),
            "{}",
            &all[all.len() - 200..]
        );
        assert_eq!(message_files(&server.maildir("alice")).len(), left);
    }
}

#[test]
fn logins_of_a_settled_mailbox_see_every_delivery_and_deletion() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    three_messages(&server);
    // Moves new/ to cur/ and writes the size cache.
    server.login("alice").ok("QUIT");
    settle(&maildir);
    let listing = |client: &mut crate::harness::Client| client.multi("UIDL").1;
    let mut client = server.login("alice");
    let uidls = listing(&mut client);
    client.ok("QUIT");
    assert_eq!(uidls.len(), 3);
    // Unchanged: the same listing again.
    let mut client = server.login("alice");
    assert_eq!(listing(&mut client), uidls);
    client.ok("QUIT");
    // A delivery shows at the next login.
    deliver(&maildir, 1_700_000_010, &nth_message(3));
    let mut client = server.login("alice");
    assert_eq!(client.cmd("STAT").split(' ').nth(1), Some("4"));
    client.ok("QUIT");
    settle(&maildir);
    server.login("alice").ok("QUIT");
    // A deletion by a session of the settled mailbox is applied, and seen.
    let mut client = server.login("alice");
    client.ok("DELE 1");
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert!(client.is_closed_within(Duration::from_secs(5)));
    assert_eq!(message_files(&maildir).len(), 3);
    let mut client = server.login("alice");
    let left = listing(&mut client);
    assert_eq!(left.len(), 3);
    let first = uidls[0].split(' ').nth(1).unwrap();
    assert!(!left.iter().any(|line| line.ends_with(first)), "{left:?}");
}
