//! The per-address connection limit counts a client the way the login
//! throttle does: an IPv4 client that reaches a dual-stack listener (its
//! address then reads `::ffff:127.0.0.1`) is the same client as on an IPv4
//! listener. (IPv6 clients by their /64: see `proxy_protocol.rs`, where a
//! PROXY header names IPv6 clients.)

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::harness::{Client, Options, Server};

/// Issue 10 item 4: the POP3 plaintext listener is dual-stack (`[::]`), the
/// implicit-TLS one IPv4 only, and `max_connections_per_ip = 1`. One IPv4
/// client holds a TLS connection; its connection to the dual-stack listener,
/// where its address is IPv4-mapped, must count against the same limit.
/// Before, the limit was keyed by the raw address, so the mapped form was a
/// second client with a limit of its own.
#[test]
fn an_ipv4_mapped_address_counts_as_the_ipv4_address() {
    let server = Server::with(Options {
        pop3: vec!["max_connections_per_ip = 1".into()],
        env: vec![("POPGATE_POP3__LISTEN".into(), "[::]:0".into())],
        ..Options::default()
    });
    assert!(server.plain.is_ipv6(), "{}", server.plain);
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let _held = Client::connect(server.tls, Some(server.client_config()));
    let mut mapped = TcpStream::connect(SocketAddr::new(loopback, server.plain.port())).unwrap();
    mapped
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let _ = mapped.read_to_string(&mut answer);
    assert_eq!(
        answer,
        "-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    );
    let log = server.wait_for_log("connection refused");
    assert!(
        log.contains("connection refused: service=pop3 rip=::ffff:127.0.0.1 limit=PerIp"),
        "{log}"
    );
}
