//! UPDATE only after every earlier reply was written: a client that
//! pipelines `RETR 1`, `DELE 1`, `QUIT` and never gets the message keeps
//! it; one that reads everything has it deleted.

use std::time::{Duration, Instant};

use crate::harness::{
    crlf, deliver, message_files, tcp_with_receive_buffer, unstuff, Client, Server, PASSWORD,
};

/// The commands of a poller that fetches and deletes message 1 in one go.
const FETCH_AND_DELETE: &[u8] = b"RETR 1\r\nDELE 1\r\nQUIT\r\n";

/// Waits until the server has logged the end of `count` sessions.
fn wait_for_sessions(server: &Server, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.log();
        if log.matches("pop3 session ended").count() >= count || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Before: at QUIT the driver applied the deletions first and wrote the
/// pending replies after, so a client that was gone by then lost a message
/// whose RETR it never received. The login waits for another session's
/// lock while the client resets the connection, so the replies to the
/// pipelined RETR, DELE and QUIT can only fail to be written: the
/// message must stay.
#[test]
fn a_reset_client_that_never_got_its_retr_keeps_the_message() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    deliver(&maildir, 1_700_000_000, b"Subject: one\n\nkeep me\n");

    // Another session holds the mailbox, so the next login waits for it.
    let mut holder = server.login("alice");
    let mut client = server.connect_tls();
    let mut commands = format!("USER alice\r\nPASS {PASSWORD}\r\n").into_bytes();
    commands.extend_from_slice(FETCH_AND_DELETE);
    client.send_raw(&commands);
    client.reset();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(holder.cmd("QUIT"), "+OK Logging out, 0 messages deleted");

    let log = wait_for_sessions(&server, 2);
    assert!(log.contains("user=alice"), "{log}");
    assert_eq!(message_files(&maildir).len(), 1, "{log}");
    let mut again = server.login("alice");
    assert!(again.ok("STAT").starts_with("+OK 1 "));
}

/// The same with a message far larger than the socket buffers (32 MB)
/// and a client with a tiny receive buffer that never reads: the server
/// is stuck writing the RETR when the client resets, and nothing is
/// applied. (This one held before too: the driver flushed a big message
/// as it went, so it never reached QUIT; it guards against UPDATE being
/// applied while replies are still being written.)
#[test]
fn a_client_that_stops_reading_a_big_retr_keeps_the_message() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    let line = "x".repeat(99) + "\n";
    let body = format!("Subject: big\n\n{}", line.repeat(320_000));
    deliver(&maildir, 1_700_000_000, body.as_bytes());

    let tcp = tcp_with_receive_buffer(server.tls, 4096);
    let mut client = Client::over(tcp, Some(server.client_config()));
    client.ok("USER alice");
    assert!(client.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    client.send_raw(FETCH_AND_DELETE);
    // Long enough for the server to fill the buffers and wait.
    std::thread::sleep(Duration::from_secs(1));
    assert!(!server.log().contains("pop3 session ended"));
    client.reset();

    let log = wait_for_sessions(&server, 1);
    assert!(log.contains("end=error"), "{log}");
    assert_eq!(message_files(&maildir).len(), 1, "{log}");
}

/// A client that pipelines the same commands and reads everything gets the
/// message, then has it deleted.
#[test]
fn a_pipelined_fetch_and_delete_that_is_read_deletes() {
    let server = Server::start();
    let maildir = server.maildir("alice");
    let body = format!("Subject: some\n\n{}", "text line\n".repeat(20_000));
    deliver(&maildir, 1_700_000_000, body.as_bytes());

    let mut client = server.login("alice");
    client.send_raw(FETCH_AND_DELETE);
    let status = client.line();
    assert!(status.starts_with("+OK"), "{status}");
    assert_eq!(unstuff(&client.body()), crlf(body.as_bytes()));
    assert!(client.line().starts_with("+OK"));
    assert_eq!(client.line(), "+OK Logging out, 1 messages deleted");
    assert!(client.is_closed_within(Duration::from_secs(10)));
    assert!(message_files(&maildir).is_empty());
}
