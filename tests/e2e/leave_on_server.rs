//! Leave on server: each `on_dele` policy through the real binary, and the
//! `EXPIRE NEVER` promise of CAPA under each (RFC 2449 §6.7: a message the
//! client retrieves and leaves is never removed by the server).

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::harness::{crlf, deliver, Options, Server};

fn server_with(on_dele: &str) -> Server {
    Server::with(Options {
        pop3: vec![format!("on_dele = \"{on_dele}\"")],
        ..Options::default()
    })
}

fn body(i: u64) -> Vec<u8> {
    format!("Subject: {i}\n\nbody {i}\n").into_bytes()
}

/// File names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Delivers two messages, retrieves both, DELEs the first, QUITs. Returns
/// the two unique names.
fn retrieve_both_delete_first(server: &Server) -> [String; 2] {
    let maildir = server.maildir("alice");
    let first = deliver(&maildir, 1_700_000_001, &body(1));
    let second = deliver(&maildir, 1_700_000_002, &body(2));
    let mut client = server.login("alice");
    let (_, capa) = client.multi("CAPA");
    assert!(capa.contains(&"EXPIRE NEVER".to_string()), "{capa:?}");
    for n in 1..=2 {
        let (_, got) = client.retrieve(&format!("RETR {n}"));
        assert_eq!(got, crlf(&body(n)));
    }
    client.ok("DELE 1");
    assert_eq!(client.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert!(client.is_closed_within(Duration::from_secs(5)));
    [first, second]
}

/// EXPIRE NEVER: the retrieved, not deleted message is untouched.
fn left_message_stays(server: &Server, unique: &str) {
    let cur = server.maildir("alice").join("cur");
    assert!(
        names(&cur).contains(&format!("{unique}:2,")),
        "{:?}",
        names(&cur)
    );
    let mut client = server.login("alice");
    let (_, uidls) = client.multi("UIDL");
    assert!(uidls
        .iter()
        .any(|line| line.ends_with(&format!(" {unique}"))));
}

#[test]
fn delete_unlinks_the_deleted_message() {
    let server = server_with("delete");
    let [first, second] = retrieve_both_delete_first(&server);
    let cur = names(&server.maildir("alice").join("cur"));
    assert!(!cur.iter().any(|name| name.starts_with(&first)), "{cur:?}");
    left_message_stays(&server, &second);
}

#[test]
fn keep_and_mark_seen_leave_the_file_marked_seen() {
    for policy in ["keep", "mark-seen"] {
        let server = server_with(policy);
        let [first, second] = retrieve_both_delete_first(&server);
        let cur = names(&server.maildir("alice").join("cur"));
        assert!(cur.contains(&format!("{first}:2,S")), "{policy}: {cur:?}");
        left_message_stays(&server, &second);
    }
}

#[test]
fn move_files_the_deleted_message_into_a_new_maildir_folder() {
    let server = server_with("move:Archive");
    let [first, second] = retrieve_both_delete_first(&server);
    let folder = server.maildir("alice").join(".Archive");
    assert_eq!(names(&folder), ["cur", "maildirfolder", "new", "tmp"]);
    assert_eq!(names(&folder.join("cur")), [format!("{first}:2,S")]);
    assert_eq!(
        fs::read(folder.join("cur").join(format!("{first}:2,S"))).unwrap(),
        body(1)
    );
    let cur = names(&server.maildir("alice").join("cur"));
    assert!(!cur.iter().any(|name| name.starts_with(&first)), "{cur:?}");
    left_message_stays(&server, &second);
}
