//! Limits and hostile input: long lines, idle clients, STLS injection,
//! connection limits.

use std::time::Duration;

use crate::harness::{Options, Server, PASSWORD};

#[test]
fn an_overlong_command_gets_an_error_and_the_session_goes_on() {
    let server = Server::start();
    let mut client = server.connect_tls();
    assert_eq!(
        client.cmd(&format!("USER {}", "a".repeat(600))),
        "-ERR Command line too long"
    );
    client.ok("USER alice");
    assert!(client.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
}

#[test]
fn eight_kilobytes_without_a_line_end_close_the_connection() {
    let server = Server::start();
    let mut client = server.connect();
    client.send_raw(&vec![b'a'; 9000]);
    let rest = client.read_to_close();
    assert!(rest.starts_with("-ERR line longer than"), "{rest}");
}

#[test]
fn idle_clients_are_logged_out() {
    let server = Server::with(Options {
        pop3: vec![
            "preauth_timeout = \"1s\"".into(),
            "idle_timeout = \"2s\"".into(),
        ],
        ..Options::default()
    });
    let mut client = server.connect();
    let started = std::time::Instant::now();
    let goodbye = client.try_line();
    assert_eq!(
        goodbye.as_deref(),
        Some("-ERR Autologout; idle for too long"),
        "after {:?}; the server's log:\n{}",
        started.elapsed(),
        server.log()
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(client.try_line().is_none());
    let mut client = server.login("alice");
    std::thread::sleep(Duration::from_millis(1300));
    client.ok("NOOP");
    assert_eq!(
        client.try_line().as_deref(),
        Some("-ERR Autologout; idle for too long")
    );
    assert!(client.try_line().is_none());
}

#[test]
fn commands_pipelined_behind_stls_are_discarded() {
    let server = Server::start();
    let mut client = server.connect();
    // The injected USER/PASS/CAPA ride in the same packet as STLS.
    client.send_raw(format!("STLS\r\nUSER alice\r\nPASS {PASSWORD}\r\nCAPA\r\n").as_bytes());
    assert_eq!(client.line(), "+OK Begin TLS negotiation");
    // The server must not answer the injected lines in the clear, and must
    // not have applied them: after the handshake PASS has no USER.
    let mut client = client.tls_after_stls_answer(server.client_config());
    assert_eq!(
        client.cmd(&format!("PASS {PASSWORD}")),
        "-ERR No user name given; send USER first"
    );
}

#[test]
fn too_many_connections_from_one_address_are_turned_away() {
    let server = Server::with(Options {
        pop3: vec!["max_connections_per_ip = 2".into()],
        ..Options::default()
    });
    let _a = server.connect();
    let _b = server.connect();
    let stream = std::net::TcpStream::connect(server.plain).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut &stream, &mut reply).unwrap();
    assert_eq!(
        reply,
        "-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    );
}

#[test]
fn too_many_invalid_commands_close_the_connection() {
    let server = Server::start();
    let mut client = server.connect();
    client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: y\r\nAccept: */*\r\n\r\nA\r\nB\r\nC\r\nD\r\nE\r\nF\r\n");
    let all = client.read_to_close();
    assert!(
        all.ends_with("-ERR Too many invalid commands, closing.\r\n"),
        "{all}"
    );
}
