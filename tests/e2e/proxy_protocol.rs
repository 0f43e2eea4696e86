//! The PROXY protocol against the real binary: 127.0.0.1 is the trusted
//! proxy, and the headers it sends name documentation addresses
//! (203.0.113.x) as clients. Those addresses, not 127.0.0.1, must be what
//! the login throttle and the per-address limit count and what the logs
//! name; a trusted peer without a valid header is closed without a word; an
//! untrusted one is never asked for a header.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{tcp_from, Client, Options, Server, PASSWORD};
use crate::smtp_harness::Smtp;

/// `[proxy_protocol]` trusting 127.0.0.1, with a short header timeout.
const TRUST_LOOPBACK: &str = "[proxy_protocol]\ntrusted = [\"127.0.0.1\"]\ntimeout = \"1s\"\n";

fn behind_proxy(options: Options) -> Server {
    Server::with(Options {
        extra: TRUST_LOOPBACK.into(),
        ..options
    })
}

/// A v1 header naming `client` (port 40000) as the source.
fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 110\r\n").into_bytes()
}

/// A v2 PROXY header over TCP/IPv4 naming `client` (port 40000).
fn v2(client: &str) -> Vec<u8> {
    let client: Ipv4Addr = client.parse().unwrap();
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend(client.octets());
    header.extend([127, 0, 0, 1]);
    header.extend(40000u16.to_be_bytes());
    header.extend(995u16.to_be_bytes());
    header
}

/// A v2 LOCAL header: the proxy speaking for itself (a health check).
fn v2_local() -> Vec<u8> {
    b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec()
}

/// Connects, sends `header` first, then (with `tls`) the TLS handshake,
/// and reads the POP3 greeting.
fn proxied(
    addr: SocketAddr,
    header: &[u8],
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Client {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(header).unwrap();
    Client::over(tcp, tls)
}

/// Connects, sends `bytes`, and returns everything the server says until
/// it closes the connection, and how long that took. A close with our
/// bytes unread reaches us as a reset; that is a close too.
fn answer_to(addr: SocketAddr, bytes: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    if let Err(error) = tcp.read_to_end(&mut answer) {
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset,
            "the server must close the connection: {error}"
        );
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn fail_login(client: &mut Client) -> String {
    client.ok("USER alice");
    client.cmd("PASS wrong")
}

#[test]
fn failed_logins_count_against_the_client_the_header_names() {
    let server = behind_proxy(Options {
        pop3: vec!["login = \"plaintext\"".into()],
        auth: vec!["failure_delay = \"10ms\"".into(), "max_failures = 2".into()],
        ..Options::default()
    });
    // Two failures from 203.0.113.7 (v2): the second closes the connection.
    let mut first = proxied(server.plain, &v2("203.0.113.7"), None);
    assert_eq!(fail_login(&mut first), "-ERR [AUTH] Authentication failed");
    assert_eq!(fail_login(&mut first), "-ERR [AUTH] Authentication failed");
    assert!(first.is_closed_within(Duration::from_secs(10)));
    // Every connection came from 127.0.0.1, but 203.0.113.8 (v1) has its
    // own count: its failure leaves the connection open.
    let mut other = proxied(server.plain, &v1("203.0.113.8"), None);
    assert_eq!(fail_login(&mut other), "-ERR [AUTH] Authentication failed");
    other.ok("USER alice");
    assert!(other.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    // 203.0.113.7 is still over its limit, whichever header version names it.
    let mut again = proxied(server.plain, &v1("203.0.113.7"), None);
    assert_eq!(fail_login(&mut again), "-ERR [AUTH] Authentication failed");
    assert!(again.is_closed_within(Duration::from_secs(10)));

    let mut log = String::new();
    for line in [
        "pop3 session ended: rip=203.0.113.7 user=- tls=no retrieved=0/0 deleted=0 end=too-many-failures",
        "authentication failed: service=pop3 rip=203.0.113.7 user=alice reason=bad-credentials",
        "authentication failed: service=pop3 rip=203.0.113.8 user=alice reason=bad-credentials",
    ] {
        log = server.wait_for_log(line);
        assert!(log.contains(line), "{line}\n{log}");
    }
    assert!(!log.contains("rip=127.0.0.1"), "{log}");
}

#[test]
fn the_per_address_limit_counts_the_client_the_header_names() {
    let server = behind_proxy(Options {
        pop3: vec!["max_connections_per_ip = 1".into()],
        ..Options::default()
    });
    let _held = proxied(server.plain, &v1("203.0.113.7"), None);
    let (answer, _) = answer_to(server.plain, &v2("203.0.113.7"));
    assert_eq!(
        answer,
        "-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    );
    // A second client through the same proxy is a different address.
    let mut second = proxied(server.plain, &v2("203.0.113.8"), None);
    assert_eq!(second.cmd("STAT"), "-ERR Not allowed before login");
    let log = server.wait_for_log("connection refused");
    assert!(
        log.contains("connection refused: service=pop3 rip=203.0.113.7 limit=PerIp"),
        "{log}"
    );
}

/// Issue 10 item 4: the per-address connection limit counts an IPv6 client
/// by its /64, as the login throttle does. Before, the limit was keyed by
/// the full address, so a client with a /64 (every IPv6 customer, every
/// rented server) got a fresh limit for each of its 2^64 addresses. The
/// PROXY header is how a test names IPv6 clients of its choosing.
#[test]
fn the_per_address_limit_counts_an_ipv6_client_by_its_64() {
    let server = behind_proxy(Options {
        pop3: vec!["max_connections_per_ip = 1".into()],
        ..Options::default()
    });
    let v6 = |client: &str| format!("PROXY TCP6 {client} ::1 40000 110\r\n").into_bytes();
    let _held = proxied(server.plain, &v6("2001:db8:1:2::1"), None);
    let (answer, _) = answer_to(server.plain, &v6("2001:db8:1:2:ffff:ffff:ffff:fffe"));
    assert_eq!(
        answer,
        "-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    );
    // The next /64 is another client.
    let mut neighbour = proxied(server.plain, &v6("2001:db8:1:3::1"), None);
    assert_eq!(neighbour.cmd("STAT"), "-ERR Not allowed before login");
    let log = server.wait_for_log("connection refused");
    assert!(
        log.contains(
            "connection refused: service=pop3 rip=2001:db8:1:2:ffff:ffff:ffff:fffe limit=PerIp"
        ),
        "{log}"
    );
}

#[test]
fn a_trusted_peer_without_a_valid_header_is_closed_without_a_word() {
    let server = behind_proxy(Options::default());
    // Silence: closed once the 1 s header timeout is over, never greeted.
    let (answer, took) = answer_to(server.plain, b"");
    assert_eq!(answer, "");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    for (addr, bytes) in [
        (server.plain, &b"CAPA\r\n"[..]),
        (server.plain, b"PROXY TCP4 203.0.113.7\r\nCAPA\r\n"),
        (server.plain, b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c"),
        (server.plain, "PROXY TCP4 ".repeat(20).as_bytes()),
        // A v2 block that announces 1000 octets is refused unread.
        (server.plain, b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x03\xe8"),
        // A TLS ClientHello with no header before it.
        (server.tls, b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"),
    ] {
        let (answer, _) = answer_to(addr, bytes);
        assert_eq!(answer, "", "{bytes:?}");
    }
    // Seven connections, seven lines (the log arrives asynchronously).
    let closed = "connection from a trusted proxy closed";
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = server.log();
    while log.matches(closed).count() < 7 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        log = server.log();
    }
    for (service, reason) in [
        ("pop3", "no complete PROXY header within 1s"),
        ("pop3", "not a valid PROXY header: "),
        (
            "pop3",
            "not a valid PROXY header: no line end within 107 octets",
        ),
        ("pop3", "PROXY header longer than 512 octets"),
        (
            "pop3s",
            "not a valid PROXY header: it does not start with PROXY",
        ),
    ] {
        let line = format!(
            "connection from a trusted proxy closed: service={service} proxy=127.0.0.1 reason={reason}"
        );
        assert!(log.contains(&line), "{line}\n{log}");
    }
    assert_eq!(log.matches(closed).count(), 7, "{log}");
    assert!(!log.contains("session ended"), "{log}");
}

#[test]
fn a_local_header_keeps_the_proxys_own_address_and_what_follows_it() {
    let server = behind_proxy(Options {
        pop3: vec!["login = \"plaintext\"".into()],
        ..Options::default()
    });
    // Header and commands in one write: not an octet after the header is lost.
    let mut bytes = v2_local();
    bytes.extend(b"USER alice\r\nPASS wrong\r\n");
    let mut check = proxied(server.plain, &bytes, None);
    assert_eq!(check.line(), "+OK Send your password");
    assert_eq!(check.line(), "-ERR [AUTH] Authentication failed");
    let log = server.wait_for_log("rip=127.0.0.1 user=alice reason=bad-credentials");
    assert!(
        log.contains("authentication failed: service=pop3 rip=127.0.0.1 user=alice"),
        "{log}"
    );
}

/// Greeting and QUIT on a submission listener, `header` sent first.
fn smtp_greeting_and_quit(
    mut tcp: TcpStream,
    header: &[u8],
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) {
    tcp.write_all(header).unwrap();
    let mut smtp = Smtp::over(tcp, tls);
    assert!(smtp.cmd("QUIT").starts_with("221"));
}

#[test]
fn every_listener_reads_the_header_first_and_tls_comes_after_it() {
    let server = behind_proxy(Options {
        submission: Some(vec!["relay = \"maildir\"".into()]),
        ..Options::default()
    });
    // POP3 on the implicit-TLS port: header, handshake, login.
    let mut pop3s = proxied(server.tls, &v2("203.0.113.7"), Some(server.client_config()));
    pop3s.ok("USER alice");
    pop3s.ok(&format!("PASS {PASSWORD}"));
    pop3s.ok("QUIT");
    // POP3 with STLS after the header.
    let pop3 = proxied(server.plain, &v1("203.0.113.8"), None);
    let mut pop3 = pop3.stls(server.client_config());
    pop3.ok("QUIT");
    // Submission, STARTTLS port and implicit-TLS port.
    let connect = |service: &str| TcpStream::connect(server.addrs[service]).unwrap();
    smtp_greeting_and_quit(connect("submission"), &v1("203.0.113.9"), None);
    smtp_greeting_and_quit(
        connect("submissions"),
        &v2("203.0.113.10"),
        Some(server.client_config()),
    );

    // Each session's line comes when it has ended, in any order.
    for line in [
        "pop3 session ended: rip=203.0.113.7 user=alice tls=TLS",
        "pop3 session ended: rip=203.0.113.8 user=- tls=TLS",
        "submission session ended: rip=203.0.113.9 ",
        "submission session ended: rip=203.0.113.10 ",
    ] {
        let log = server.wait_for_log(line);
        assert!(log.contains(line), "{line}\n{log}");
    }
}

#[test]
fn without_trust_a_header_is_just_a_bad_command() {
    // No [proxy_protocol] at all: the default.
    let plain = Server::start();
    let mut client = plain.connect();
    assert_eq!(
        client.cmd("PROXY TCP4 203.0.113.7 127.0.0.1 40000 110"),
        "-ERR Unknown command"
    );
    // 127.0.0.1 is trusted, 127.0.0.2 is not: it is greeted at once.
    let server = behind_proxy(Options::default());
    let mut client = Client::connect_from("127.0.0.2".parse().unwrap(), server.plain, None);
    assert_eq!(
        client.cmd("PROXY TCP4 203.0.113.7 127.0.0.1 40000 110"),
        "-ERR Unknown command"
    );
}

/// A real HAProxy, killed on drop.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback address with a port nothing listens on now.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// examples/haproxy.cfg made to run here: its frontends on `fronts`, its
/// first backend server per service at `backends`, the second server and
/// syslog left out, checks every half second, fewer connections.
fn example_config(fronts: &[(&str, SocketAddr)], backends: &[(&str, SocketAddr)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/haproxy.cfg");
    let example = std::fs::read_to_string(path).unwrap();
    let mut config = String::new();
    for line in example.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"log") || line.contains("popgate2") {
            continue;
        }
        // This sandbox allows fewer file descriptors than 20000 connections need.
        let mut line = line
            .replace("inter 10s", "inter 500ms")
            .replace("maxconn 20000", "maxconn 1000");
        for (bind, addr) in fronts {
            if words == ["bind", *bind] {
                line = format!("    bind {addr}");
            }
        }
        for (server, addr) in backends {
            line = line.replace(server, &addr.to_string());
        }
        config.push_str(&line);
        config.push('\n');
    }
    config
}

/// Waits up to 60 s for `needle` in the server's log; fails at once, with
/// its log, if HAProxy has exited (e.g. its port was taken meanwhile).
fn wait_long_for(server: &Server, haproxy: &mut Haproxy, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = server.wait_for_log(needle);
        if let Some(status) = haproxy.0.try_wait().unwrap() {
            let output = std::fs::read_to_string(server.dir.path().join("haproxy.log"));
            panic!("haproxy exited ({status}):\n{}", output.unwrap_or_default());
        }
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
    }
}

/// The HAProxy example, run for real in front of popgate: its health checks
/// (a PROXY header, then TLS where the port has it) pass on all four
/// listeners, and clients at 127.0.0.2 reach every service through it with
/// popgate seeing 127.0.0.2, not HAProxy's 127.0.0.1.
#[test]
fn the_haproxy_example_sends_clients_addresses_to_every_listener() {
    let server = behind_proxy(Options {
        submission: Some(vec!["relay = \"maildir\"".into()]),
        ..Options::default()
    });
    let fronts = [
        (":110", free_port()),
        (":995", free_port()),
        (":587", free_port()),
        (":465", free_port()),
    ];
    let backends = [
        ("10.0.0.11:110", server.plain),
        ("10.0.0.11:995", server.tls),
        ("10.0.0.11:587", server.addrs["submission"]),
        ("10.0.0.11:465", server.addrs["submissions"]),
    ];
    let config_path = server.dir.path().join("haproxy.cfg");
    std::fs::write(&config_path, example_config(&fronts, &backends)).unwrap();
    let haproxy_log = std::fs::File::create(server.dir.path().join("haproxy.log")).unwrap();
    let mut haproxy = Haproxy(
        Command::new("haproxy")
            .arg("-f")
            .arg(&config_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(haproxy_log)
            .spawn()
            .expect("haproxy (Debian package haproxy) must be installed"),
    );

    // Each listener has passed a health check: greeting, QUIT, goodbye.
    for needle in [
        "pop3 session ended: rip=127.0.0.1 user=- tls=no retrieved=0/0 deleted=0 end=quit",
        "pop3 session ended: rip=127.0.0.1 user=- tls=TLS",
        "submission session ended: rip=127.0.0.1 user=- tls=no",
        "submission session ended: rip=127.0.0.1 user=- tls=TLS",
    ] {
        let log = wait_long_for(&server, &mut haproxy, needle);
        let haproxy = std::fs::read_to_string(server.dir.path().join("haproxy.log")).unwrap();
        assert!(log.contains(needle), "{needle}\n{log}\nhaproxy:\n{haproxy}");
    }

    let client: IpAddr = "127.0.0.2".parse().unwrap();
    let config = server.client_config();
    let mut pop3s = Client::over(tcp_from(client, fronts[1].1), Some(config.clone()));
    pop3s.ok("USER alice");
    pop3s.ok(&format!("PASS {PASSWORD}"));
    pop3s.ok("QUIT");
    let pop3 = Client::over(tcp_from(client, fronts[0].1), None);
    let mut pop3 = pop3.stls(config.clone());
    pop3.ok("USER bob");
    pop3.ok(&format!("PASS {PASSWORD}"));
    pop3.ok("QUIT");
    smtp_greeting_and_quit(tcp_from(client, fronts[2].1), b"", None);
    smtp_greeting_and_quit(tcp_from(client, fronts[3].1), b"", Some(config));

    for needle in [
        "pop3 session ended: rip=127.0.0.2 user=alice tls=TLS",
        "pop3 session ended: rip=127.0.0.2 user=bob tls=TLS",
        "submission session ended: rip=127.0.0.2 user=- tls=no",
        "submission session ended: rip=127.0.0.2 user=- tls=TLS",
    ] {
        let log = wait_long_for(&server, &mut haproxy, needle);
        assert!(log.contains(needle), "{needle}\n{log}");
    }
}
