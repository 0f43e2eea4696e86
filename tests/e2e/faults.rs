//! Faults: popgate killed with SIGKILL in the middle of UPDATE, several
//! popgate processes on one mail tree, a size cache that cannot be written.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{crlf, Client, Options, Server, PASSWORD};

/// How many messages the kill test's mailbox holds.
const MESSAGES: usize = 5_000;

fn body(i: usize) -> Vec<u8> {
    let dots = if i % 7 == 0 { ".dot line\n" } else { "" };
    format!("Subject: message {i}\nMessage-Id: <{i}@test>\n\n{dots}body of {i}\n").into_bytes()
}

/// The unique name of message `i` (number `i + 1`: names sort by delivery).
fn unique(i: usize) -> String {
    format!("{}.M{i}P1.faulthost", 1_700_000_000 + i)
}

/// Every message file in cur/ and new/, by unique name, with its contents.
fn on_disk(maildir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["cur", "new"] {
        for entry in fs::read_dir(maildir.join(sub)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let unique = name.split(':').next().unwrap().to_string();
            let previous = files.insert(unique, fs::read(entry.path()).unwrap());
            assert!(previous.is_none(), "{name} is there twice");
        }
    }
    files
}

fn count_cur(maildir: &Path) -> usize {
    fs::read_dir(maildir.join("cur")).map_or(0, |dir| dir.count())
}

#[test]
fn sigkill_during_update_leaves_every_message_intact_or_deleted_as_asked() {
    kill_during_update("delete");
}

#[test]
fn sigkill_during_update_with_move_loses_nothing() {
    kill_during_update("move:Archive");
}

/// Fills a 5,000-message mailbox, DELEs every other message, QUITs and
/// kills popgate with SIGKILL as soon as UPDATE has started; then checks
/// the Maildir file by file and logs in again. With `move:`, a message
/// that left the inbox must be in the folder, intact.
fn kill_during_update(on_dele: &str) {
    let mut server = Server::with(Options {
        pop3: vec![format!("on_dele = \"{on_dele}\"")],
        ..Options::default()
    });
    let maildir = server.maildir("alice");
    let archive = maildir.join(".Archive");
    for i in 0..MESSAGES {
        fs::write(
            maildir.join("cur").join(format!("{}:2,", unique(i))),
            body(i),
        )
        .unwrap();
    }
    // Warm the size cache, so the next login is quick.
    server.login("alice").ok("QUIT");

    // Mark every other message deleted (numbers 2, 4, ...), pipelined.
    let mut client = server.login("alice");
    let deleted: Vec<usize> = (0..MESSAGES).filter(|i| i % 2 == 1).collect();
    let commands: String = deleted
        .iter()
        .map(|i| format!("DELE {}\r\n", i + 1))
        .collect();
    client.send_raw(commands.as_bytes());
    for _ in &deleted {
        assert!(client.line().starts_with("+OK"));
    }
    // QUIT starts UPDATE; kill the process as soon as files start to go.
    client.send("QUIT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_cur(&maildir) == MESSAGES && Instant::now() < deadline {
        std::hint::spin_loop();
    }
    server.kill_and_restart();
    let left_at_kill = count_cur(&maildir);
    eprintln!(
        "{on_dele}: killed with {} of {} deletions applied",
        MESSAGES - left_at_kill,
        deleted.len()
    );

    // File by file: kept messages intact, deleted ones intact or gone
    // (or, with move:, intact in the folder).
    let files = on_disk(&maildir);
    let moved = if archive.exists() {
        on_disk(&archive)
    } else {
        BTreeMap::new()
    };
    for i in 0..MESSAGES {
        match (files.get(&unique(i)), moved.get(&unique(i))) {
            (Some(contents), None) => assert_eq!(contents, &body(i), "message {} changed", i + 1),
            (None, Some(contents)) => {
                assert!(i % 2 == 1, "message {} moved but not deleted", i + 1);
                assert_eq!(contents, &body(i), "message {} changed", i + 1);
            }
            (None, None) if !on_dele.starts_with("move:") => {
                assert!(i % 2 == 1, "message {} was not deleted but is gone", i + 1);
            }
            (inbox, folder) => panic!(
                "message {}: in inbox {}, in folder {}",
                i + 1,
                inbox.is_some(),
                folder.is_some()
            ),
        }
    }
    assert_eq!(files.len(), left_at_kill);
    assert!(fs::read_dir(maildir.join("new")).unwrap().next().is_none());

    // The next login sees exactly the files that are there.
    let mut client = server.login("alice");
    let total: usize = files.values().map(|contents| crlf(contents).len()).sum();
    assert_eq!(client.cmd("STAT"), format!("+OK {} {total}", files.len()));
    let (_, uidls) = client.multi("UIDL");
    let served: Vec<&str> = uidls
        .iter()
        .map(|line| line.split(' ').nth(1).unwrap())
        .collect();
    let expected: Vec<&str> = files.keys().map(String::as_str).collect();
    let mut sorted = served.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected);
    for (number, name) in served.iter().enumerate().step_by(97) {
        let (_, got) = client.retrieve(&format!("RETR {}", number + 1));
        assert_eq!(got, crlf(&files[*name]), "RETR {}", number + 1);
    }
    // And a clean drain finishes the job.
    let commands: String = (1..=files.len()).map(|n| format!("DELE {n}\r\n")).collect();
    client.send_raw(commands.as_bytes());
    for _ in 0..files.len() {
        assert!(client.line().starts_with("+OK"));
    }
    assert_eq!(
        client.cmd("QUIT"),
        format!("+OK Logging out, {} messages deleted", files.len())
    );
    assert!(client.is_closed_within(Duration::from_secs(20)));
    assert!(on_disk(&maildir).is_empty());
    if on_dele.starts_with("move:") {
        let moved = on_disk(&archive);
        assert_eq!(moved.len(), MESSAGES);
        assert!((0..MESSAGES).all(|i| moved[&unique(i)] == body(i)));
    }
}

#[test]
fn two_processes_on_one_mail_tree_honour_each_others_lock() {
    let server = Server::with(Options {
        pop3: vec!["lock_wait = \"700ms\"".into()],
        ..Options::default()
    });
    let maildir = server.maildir("alice");
    for i in 0..3 {
        fs::write(maildir.join("new").join(unique(i)), body(i)).unwrap();
    }
    let other = server.another_process();
    let login_other = || {
        let mut client = Client::connect(other.tls, Some(server.client_config()));
        client.ok("USER alice");
        client
    };

    let mut first = server.login("alice");
    first.ok("DELE 1");
    let mut second = login_other();
    let started = Instant::now();
    assert_eq!(
        second.cmd(&format!("PASS {PASSWORD}")),
        "-ERR [IN-USE] Mailbox is locked by another POP3 session"
    );
    assert!(started.elapsed() >= Duration::from_millis(700));

    // Waiting in the other process, it gets in once the first QUITs, and
    // sees the first session's deletion.
    let mut second = login_other();
    second.send(&format!("PASS {PASSWORD}"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(first.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert!(second.line().starts_with("+OK Logged in, 2 messages"));
    // And the other way round.
    let mut third = server.connect_tls();
    third.ok("USER alice");
    assert_eq!(
        third.cmd(&format!("PASS {PASSWORD}")),
        "-ERR [IN-USE] Mailbox is locked by another POP3 session"
    );
    second.ok("QUIT");
}

#[test]
fn a_size_cache_that_cannot_be_written_degrades_to_serving_without_it() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    // A directory where the cache file goes: reading it fails and writing
    // it (a rename over a non-empty directory) fails too, as a full disk or
    // a read-only mount would; as root, permissions cannot show this.
    fs::create_dir(maildir.join("popgate-sizes")).unwrap();
    fs::write(maildir.join("popgate-sizes").join("keep"), b"").unwrap();
    for i in 0..3 {
        fs::write(maildir.join("new").join(unique(i)), body(i)).unwrap();
    }
    let total: usize = (0..3).map(|i| crlf(&body(i)).len()).sum();
    for _ in 0..2 {
        let mut client = server.login("alice");
        assert_eq!(client.cmd("STAT"), format!("+OK 3 {total}"));
        let (status, got) = client.retrieve("RETR 2");
        assert_eq!(status, format!("+OK {} octets", crlf(&body(1)).len()));
        assert_eq!(got, crlf(&body(1)));
        assert_eq!(client.cmd("QUIT"), "+OK Logging out, 0 messages deleted");
    }
    assert!(maildir.join("popgate-sizes").is_dir());
    let stray: Vec<_> = fs::read_dir(&maildir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp."))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}
