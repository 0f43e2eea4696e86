//! SIGHUP reloads the whole configuration (issue 12 item 2): sessions in
//! progress keep the settings they started with and none is dropped, new
//! sessions get the new ones, a configuration that cannot work is refused
//! in one line naming the key while the server goes on with the one in
//! force, and a change that needs a restart is logged as such.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{
    crlf, deliver, message_files, trusting_all, Client, Options, Server, User, PASSWORD,
};

fn hang_up(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Logs in `client` as `user`.
fn login(client: &mut Client, user: &str) {
    client.ok(&format!("USER {user}"));
    client.ok(&format!("PASS {PASSWORD}"));
}

/// Sessions in the middle of things while SIGHUP changes `on_dele`, the
/// per-address limit, the banner, the certificate and (needing a restart)
/// the listen addresses. alice is logged in and half-way through reading
/// a long LIST; bob is connected and not logged in yet. Neither is
/// dropped; their QUIT applies the `on_dele` they started with (delete),
/// while a session that starts after the reload keeps its message (keep),
/// hears the new banner over the new certificate, and the new limit turns
/// the next connection from the address away. Meanwhile carol logs in and
/// out again and again from another address, across the reload, and every
/// one of her sessions is served. Before, SIGHUP reloaded only the
/// certificate and the users: the banner, on_dele and the limit stayed.
#[test]
fn sessions_in_progress_keep_their_settings_across_a_reload() {
    let server = Server::with(Options {
        users: ["alice", "bob", "carol"]
            .into_iter()
            .map(|name| User {
                name,
                password: PASSWORD,
            })
            .collect(),
        pop3: vec![
            "on_dele = \"delete\"".into(),
            "banner = \"before the reload\"".into(),
        ],
        ..Options::default()
    });
    let renewed =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let either = trusting_all(&[server.client_certificate(), renewed.cert.der().clone()]);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let poller = {
        let (stop, served, tls) = (stop.clone(), served.clone(), server.tls);
        std::thread::spawn(move || {
            let mut greetings = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let source = "127.0.0.2".parse().unwrap();
                let mut client = Client::connect_from(source, tls, Some(either.clone()));
                login(&mut client, "carol");
                client.ok("STAT");
                assert_eq!(client.cmd("QUIT"), "+OK Logging out, 0 messages deleted");
                greetings.push(client.greeting);
                served.fetch_add(1, Ordering::Relaxed);
            }
            greetings
        })
    };
    // Waits until carol has had `n` sessions.
    let served_by = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while served.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            served.load(Ordering::Relaxed) >= n,
            "carol's sessions stalled"
        );
    };
    let alice = server.maildir("alice");
    let bob = server.maildir("bob");
    for i in 0..400u64 {
        deliver(
            &alice,
            1_700_000_000 + i,
            format!("Subject: {i}\n\nbody {i}\n").as_bytes(),
        );
    }
    deliver(&bob, 1_700_000_000, b"Subject: bob 1\n\nold session\n");

    let mut listing = server.connect_tls();
    assert_eq!(listing.greeting, "+OK before the reload");
    login(&mut listing, "alice");
    assert!(listing.cmd("LIST").starts_with("+OK 400 messages"));
    for n in 1..=200 {
        let line = listing.line();
        assert!(line.starts_with(&format!("{n} ")), "{line}");
    }
    let mut waiting = server.connect_tls();

    let config = server.dir.path().join("popgate.toml");
    let text = fs::read_to_string(&config).unwrap();
    let changed = text
        .replace(
            "on_dele = \"delete\"",
            "on_dele = \"keep\"\nmax_connections_per_ip = 3",
        )
        .replace(
            "banner = \"before the reload\"",
            "banner = \"after the reload\"",
        )
        .replacen(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
            1,
        );
    assert_ne!(changed, text);
    fs::write(&config, changed).unwrap();
    fs::write(&server.cert_pem, renewed.cert.pem()).unwrap();
    served_by(1);
    fs::write(
        server.dir.path().join("key.pem"),
        renewed.signing_key.serialize_pem(),
    )
    .unwrap();
    hang_up(&server);
    let log = server.wait_for_log("configuration reloaded");
    let line = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap();
    assert!(
        line.contains(
            "configuration reloaded: changed pop3.banner, pop3.max_connections_per_ip, \
             pop3.on_dele; needs a restart to take effect: pop3.listen"
        ),
        "{log}"
    );
    // One of carol's sessions may have been accepted before the swap;
    // the one after it was not.
    served_by(served.load(Ordering::Relaxed) + 2);

    // The session that started after the reload: new certificate, new
    // banner, new on_dele.
    let mut fresh = Client::connect(
        server.tls,
        Some(trusting_all(&[renewed.cert.der().clone()])),
    );
    assert_eq!(fresh.greeting, "+OK after the reload");
    // The limit: alice's, bob's and this connection are three.
    let mut refused = BufReader::new(TcpStream::connect(server.plain).unwrap());
    let mut busy = String::new();
    refused.read_line(&mut busy).unwrap();
    assert_eq!(
        busy,
        "-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    );

    // The sessions in progress go on, on the settings they started with.
    for n in 201..=400 {
        let line = listing.line();
        assert!(line.starts_with(&format!("{n} ")), "{line}");
    }
    assert_eq!(listing.line(), ".");
    let (_, body) = listing.retrieve("RETR 400");
    assert_eq!(body, crlf(b"Subject: 399\n\nbody 399\n"));
    for n in 1..=3 {
        listing.ok(&format!("DELE {n}"));
    }
    assert_eq!(listing.cmd("QUIT"), "+OK Logging out, 3 messages deleted");
    assert_eq!(message_files(&alice).len(), 397, "the old on_dele: delete");

    login(&mut waiting, "bob");
    waiting.ok("DELE 1");
    assert_eq!(waiting.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert!(message_files(&bob).is_empty(), "accepted before: delete");

    deliver(&bob, 1_700_000_100, b"Subject: bob 2\n\nnew session\n");
    login(&mut fresh, "bob");
    fresh.ok("DELE 1");
    assert_eq!(fresh.cmd("QUIT"), "+OK Logging out, 1 messages deleted");
    assert_eq!(message_files(&bob).len(), 1, "accepted after: keep");
    assert!(fresh.is_closed_within(Duration::from_secs(5)));

    stop.store(true, Ordering::Relaxed);
    let greetings = poller.join().expect("a session of carol's failed");
    let before = greetings
        .iter()
        .filter(|g| *g == "+OK before the reload")
        .count();
    let after = greetings
        .iter()
        .filter(|g| *g == "+OK after the reload")
        .count();
    assert_eq!(before + after, greetings.len(), "{greetings:?}");
    assert!(before > 0 && after > 0, "{greetings:?}");
    assert!(!server.log().contains("end=error"), "{}", server.log());
}

/// A configuration that cannot work is refused, naming the key, in one
/// line; the server goes on serving with the configuration in force,
/// sessions in progress included, and a later good one is taken.
#[test]
fn an_invalid_configuration_is_refused_and_the_old_one_serves_on() {
    let server = Server::with(Options {
        pop3: vec!["banner = \"first\"".into()],
        ..Options::default()
    });
    let mut session = server.login("alice");
    let config = server.dir.path().join("popgate.toml");
    let good = fs::read_to_string(&config).unwrap();
    for (bad, key) in [
        (
            good.replace(
                "banner = \"first\"",
                "banner = \"second\"\nmax_command_size = 5",
            ),
            "key `pop3.max_command_size`: must be between 40 and 8192 octets",
        ),
        (
            good.replace(
                "banner = \"first\"",
                "banner = \"second\"\nbannr = \"typo\"",
            ),
            "bannr",
        ),
    ] {
        fs::write(&config, bad).unwrap();
        hang_up(&server);
        let log = server.wait_for_log(key);
        let refusals: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("configuration not reloaded"))
            .collect();
        assert!(
            refusals
                .last()
                .is_some_and(|l| l.contains(key) && l.contains("the old one stays in force")),
            "{log}"
        );
        assert_eq!(server.connect_tls().greeting, "+OK first");
        assert!(session.cmd("STAT").starts_with("+OK"));
    }
    assert_eq!(
        server
            .log()
            .lines()
            .filter(|l| l.contains("configuration not reloaded"))
            .count(),
        2,
        "one line per refusal"
    );
    fs::write(
        &config,
        good.replace("banner = \"first\"", "banner = \"third\""),
    )
    .unwrap();
    hang_up(&server);
    server.wait_for_log("configuration reloaded: changed pop3.banner");
    assert_eq!(server.connect_tls().greeting, "+OK third");
    assert_eq!(session.cmd("QUIT"), "+OK Logging out, 0 messages deleted");
}
