//! RETR of a 1 MiB message, end to end: the `popgate` binary this bench
//! was built with, serving a Maildir in a temporary directory on a loopback
//! port, and a client that reads the reply line by line, as a mail client
//! does, until the terminating dot.
//!
//! This is the path a big RETR takes through the POP3 driver: open the
//! message, read a piece, encode it, send it, read the next. How big those
//! pieces are decides how well the client and the server overlap; with
//! 128 KiB pieces this bench took about a fifth longer per message than
//! with 32 KiB ones. The piece size is compiled in, so compare builds with
//! criterion's baselines:
//!
//! ```text
//! cargo bench --bench retr_loopback -- --save-baseline before
//! # change the driver, then
//! cargo bench --bench retr_loopback -- --baseline before
//! ```
//!
//! The Maildir holds [`MESSAGES`] messages, fetched in turn, so each RETR
//! reads a message from the page cache rather than one the CPU's caches
//! still hold from the last iteration.
//!
//! `1MiB-from-disk` fetches the same messages after the kernel was told to
//! drop them from the page cache (once per pass over the Maildir, outside
//! the timing), in a session of its own, with a client that keeps each
//! message in a file, as a mail client does. The first RETR of a pass
//! waits for the disk; from then on each RETR has the next message loaded
//! while it is sent and the client stores it (see
//! `popgate_store::prefetch`). On a file system that keeps its pages
//! whatever it is told (tmpfs), nothing is read from the disk.

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "common/mail.rs"]
mod mail;

/// The size of each message file, in octets.
const MESSAGE_SIZE: usize = 1 << 20;
/// How many messages the Maildir holds.
const MESSAGES: usize = 16;
const PASSWORD: &str = "bench password";

/// A running `popgate serve` and the address of its POP3 listener.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The users, each with a Maildir of the same messages: one session per
/// Maildir at a time, and the two figures each need one.
const USERS: [&str; 2] = ["warm", "cold"];

/// Writes the configuration, the htpasswd file and the Maildirs into `dir`
/// and starts the server, waiting for it to log its POP3 address.
fn start(dir: &Path) -> Server {
    for seed in 0..MESSAGES {
        let message = mail::mkmaildir_message(MESSAGE_SIZE, seed);
        // One delivery per Maildir: files of their own, not links to one.
        for user in USERS {
            let maildir = dir.join("mail").join(user);
            popgate_store::deliver(&[&maildir], &message, "bench", |_, step| step()).unwrap();
        }
    }
    let hash = popgate_auth::hash_password_bcrypt(PASSWORD, 4).unwrap();
    let users: String = USERS
        .iter()
        .map(|user| format!("{user}:{hash}\n"))
        .collect();
    std::fs::write(dir.join("users.htpasswd"), users).unwrap();
    let config = format!(
        "hostname = \"localhost\"\n\
         [pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\nlogin = \"plaintext\"\n\
         [auth]\nbackend = \"htpasswd\"\nhtpasswd = \"{root}/users.htpasswd\"\n\
         [store]\nmaildir = \"{root}/mail/%u\"\n",
        root = dir.display()
    );
    std::fs::write(dir.join("popgate.toml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_popgate"))
        .args(["serve", "-c"])
        .arg(dir.join("popgate.toml"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut lines = String::new();
    let addr = loop {
        let start = lines.len();
        assert!(
            log.read_line(&mut lines).unwrap() > 0,
            "popgate did not start:\n{lines}"
        );
        if let Some(rest) = lines[start..].split("listening: service=pop3 addr=").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    // Keep reading the log, so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    Server { child, addr }
}

/// A logged-in POP3 client.
struct Client {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr, user: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut client = Client {
            reader: BufReader::with_capacity(64 * 1024, stream),
            line: Vec::new(),
        };
        client.expect_ok();
        client.command(&format!("USER {user}"));
        client.command(&format!("PASS {PASSWORD}"));
        client
    }

    fn send(&mut self, command: &str) {
        let stream = self.reader.get_mut();
        stream.write_all(command.as_bytes()).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }

    fn read_line(&mut self) -> &[u8] {
        self.line.clear();
        let read = self.reader.read_until(b'\n', &mut self.line).unwrap();
        assert!(read > 0, "the server closed the connection");
        &self.line
    }

    fn expect_ok(&mut self) {
        let line = self.read_line();
        assert!(
            line.starts_with(b"+OK"),
            "{}",
            String::from_utf8_lossy(line)
        );
    }

    fn command(&mut self, command: &str) {
        self.send(command);
        self.expect_ok();
    }

    /// RETR `number`; returns the octets of the message as sent, line ends
    /// and dot-stuffing included, without the terminating line.
    fn retr(&mut self, number: usize) -> usize {
        self.command(&format!("RETR {number}"));
        let mut octets = 0;
        loop {
            let line = self.read_line();
            if line == b".\r\n" {
                return octets;
            }
            assert!(line.ends_with(b"\r\n"), "a line without CRLF");
            octets += line.len();
        }
    }

    /// RETR `number` as a mail client keeps a message: each line, without
    /// its dot-stuffing, into the message, and the message into a file of
    /// its own in `store`. Returns the message's octets.
    fn retr_and_keep(&mut self, number: usize, store: &Path) -> usize {
        self.command(&format!("RETR {number}"));
        let mut message = Vec::with_capacity(2 * MESSAGE_SIZE);
        loop {
            let line = self.read_line();
            if line == b".\r\n" {
                break;
            }
            message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        std::fs::write(store.join(number.to_string()), &message).unwrap();
        message.len()
    }
}

/// Asks the kernel to forget the pages of every message in `maildir`.
fn drop_from_page_cache(maildir: &Path) {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    for sub in ["cur", "new"] {
        for entry in std::fs::read_dir(maildir.join(sub)).unwrap() {
            let file = std::fs::File::open(entry.unwrap().path()).unwrap();
            posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut client = Client::connect(server.addr, "warm");
    let mut group = c.benchmark_group("retr/loopback");
    group.throughput(Throughput::Bytes(MESSAGE_SIZE as u64));
    group.measurement_time(Duration::from_secs(5));
    let mut next = 0;
    group.bench_function("1MiB", |b| {
        b.iter(|| {
            next = next % MESSAGES + 1;
            let octets = client.retr(next);
            assert!(octets > MESSAGE_SIZE, "every LF becomes CRLF");
        })
    });
    let maildir = dir.path().join("mail/cold");
    let kept = dir.path().join("kept");
    std::fs::create_dir(&kept).unwrap();
    let mut cold = Client::connect(server.addr, "cold");
    group.bench_function("1MiB-from-disk", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for i in 0..iters {
                let number = (i as usize) % MESSAGES + 1;
                if number == 1 {
                    drop_from_page_cache(&maildir);
                }
                let started = std::time::Instant::now();
                let octets = cold.retr_and_keep(number, &kept);
                took += started.elapsed();
                assert!(octets > MESSAGE_SIZE, "every LF becomes CRLF");
            }
            took
        })
    });
    group.finish();
    cold.command("QUIT");
    client.command("QUIT");
}

criterion_group!(benches, bench);
criterion_main!(benches);
