//! The reply-by-email poller invariant (Workfront-style integrations: log
//! in, fetch all, delete all, QUIT, again and again).
//!
//! A writer delivers messages into the Maildir the way an MTA does (tmp/,
//! then new/) the whole time, while a poller runs session after session.
//! Some sessions QUIT cleanly, some drop the connection before QUIT, some
//! are cut in the middle of a RETR (the poller was killed), and in some
//! popgate itself is killed with SIGKILL, before or right after QUIT. At the
//! end:
//!
//! * every delivered message was retrieved at least once;
//! * right after each clean QUIT, none of the messages it deleted is left;
//! * no message was retrieved twice, unless every retrieval but the last
//!   was in a session that did not finish with a clean QUIT.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{crlf, Server};

/// How many messages the writer delivers.
const DELIVERIES: usize = 200;

/// Sessions run with the mixed endings before the final drain.
const MIN_ROUNDS: usize = 24;

/// The Maildir unique name the writer gives message `id`: known before the
/// message exists, so the poller can judge any message it retrieves, however
/// far the writer has got.
fn name_of(id: usize) -> String {
    format!("{}.M{id}P7.writer", 1_700_000_000 + id)
}

fn body(id: usize) -> Vec<u8> {
    format!("Subject: ticket {id}\nMessage-Id: <{id}@writer>\n\nreply body {id}\n").into_bytes()
}

/// The id in a retrieved message.
fn id_of(retrieved: &[u8]) -> usize {
    let text = String::from_utf8_lossy(retrieved);
    let start = text.find("Message-Id: <").unwrap() + "Message-Id: <".len();
    text[start..].split('@').next().unwrap().parse().unwrap()
}

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Quit,
    DropBeforeQuit,
    PollerKilledInRetr,
    ServerKilledBeforeQuit,
    ServerKilledAfterQuit,
}

fn end_of(round: usize) -> End {
    match round % 8 {
        1 => End::DropBeforeQuit,
        3 => End::PollerKilledInRetr,
        5 => End::ServerKilledAfterQuit,
        6 => End::ServerKilledBeforeQuit,
        _ => End::Quit,
    }
}

fn unique_names_on_disk(maildir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["cur", "new"] {
        for entry in fs::read_dir(maildir.join(sub)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            names.push(name.split(':').next().unwrap().to_string());
        }
    }
    names
}

#[test]
fn pollers_lose_nothing_and_get_nothing_twice_after_a_clean_quit() {
    let mut server = Server::start();
    let maildir = server.maildir("alice");

    // The writer: tmp/ then new/, a little at a time.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (maildir, done) = (maildir.clone(), done.clone());
        thread::spawn(move || {
            for id in 0..DELIVERIES {
                let name = name_of(id);
                let tmp = maildir.join("tmp").join(&name);
                fs::write(&tmp, body(id)).unwrap();
                fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
                thread::sleep(Duration::from_millis(if id % 10 == 0 { 40 } else { 5 }));
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    // Per message id: the rounds that retrieved it, and whether each of
    // those sessions finished with a clean QUIT.
    let mut retrievals: HashMap<usize, Vec<(usize, bool)>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut round = 0;
    loop {
        assert!(Instant::now() < deadline, "poller did not finish");
        // Every kind of ending gets its turns, however fast the writer is;
        // then clean sessions drain what is left.
        let draining = done.load(Ordering::SeqCst) && round >= MIN_ROUNDS;
        let end = if draining { End::Quit } else { end_of(round) };
        let mut client = server.login("alice");
        let stat = client.ok("STAT");
        let count: usize = stat.split(' ').nth(1).unwrap().parse().unwrap();
        if count == 0 && draining {
            client.ok("QUIT");
            break;
        }
        let mut got = Vec::new();
        for number in 1..=count {
            if end == End::PollerKilledInRetr && number == count.div_ceil(2) {
                client.send(&format!("RETR {number}"));
                break;
            }
            let (_, message) = client.retrieve(&format!("RETR {number}"));
            let id = id_of(&message);
            assert_eq!(message, crlf(&body(id)), "message {id} garbled");
            got.push(id);
            client.ok(&format!("DELE {number}"));
        }
        let clean = match end {
            End::Quit => {
                assert_eq!(
                    client.cmd("QUIT"),
                    format!("+OK Logging out, {} messages deleted", got.len())
                );
                true
            }
            End::DropBeforeQuit | End::PollerKilledInRetr => {
                client.drop_connection();
                false
            }
            End::ServerKilledBeforeQuit => {
                server.kill_and_restart();
                false
            }
            End::ServerKilledAfterQuit => {
                client.send("QUIT");
                server.kill_and_restart();
                false
            }
        };
        for &id in &got {
            retrievals.entry(id).or_default().push((round, clean));
        }
        if clean {
            let on_disk = unique_names_on_disk(&maildir);
            for &id in &got {
                assert!(
                    !on_disk.contains(&name_of(id)),
                    "message {id} deleted by a clean QUIT in round {round} is still there"
                );
            }
        }
        round += 1;
    }
    writer.join().unwrap();

    assert!(unique_names_on_disk(&maildir).is_empty());
    let again = retrievals.values().filter(|s| s.len() > 1).count();
    eprintln!("{round} sessions; {again} messages served again after an unclean end");
    for id in 0..DELIVERIES {
        let sessions = retrievals
            .get(&id)
            .unwrap_or_else(|| panic!("message {id} was never retrieved"));
        let (_, earlier) = sessions.split_last().unwrap();
        for (round, clean) in earlier {
            assert!(
                !clean,
                "message {id} retrieved again after the clean QUIT of round {round}: {sessions:?}"
            );
        }
    }
}
