//! The submission session state machine: one message through a logged-in
//! session, fed as the connection driver feeds it (command lines one at a
//! time, the message text in one piece).
//!
//! ```text
//! cargo bench --bench smtp_session
//! ```

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use popgate::submission::relay::outcome::RelayOutcome;
use popgate::submission::session::{Senders, Session, SessionOptions, Step};

/// The commands before the message text.
const ENVELOPE: &[&[u8]] = &[
    b"MAIL FROM:<alice@example.com> BODY=8BITMIME SIZE=10240\r\n",
    b"RCPT TO:<bob@example.org>\r\n",
    b"RCPT TO:<carol@example.net>\r\n",
    b"DATA\r\n",
];

/// A 10 KB message, dot-stuffed, with its terminator.
fn message() -> Vec<u8> {
    let mut text =
        b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: figures\r\n\r\n".to_vec();
    while text.len() < 10 * 1024 {
        text.extend_from_slice(b"A line of text of a typical length, seventy-odd octets long.\r\n");
        text.extend_from_slice(b"..and one that starts with a dot, stuffed.\r\n");
    }
    text.extend_from_slice(b".\r\n");
    text
}

fn bench(c: &mut Criterion) {
    let options = SessionOptions {
        hostname: "mail.example.com".into(),
        tls: true,
        starttls_available: false,
        plaintext_login: false,
        max_message_size: 35 * 1024 * 1024,
        max_recipients: 100,
        check_recipients: false,
    };
    let mut session = Session::new(options);
    let mut out = Vec::with_capacity(4096);
    let mut login = b"EHLO client.example.com\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n".iter();
    loop {
        match session.advance(&mut login, &mut out) {
            Step::Authenticate(credentials) => {
                session.authenticated(credentials.user, Senders::Any, &mut out)
            }
            Step::NeedMore => break,
            other => panic!("{other:?}"),
        }
    }
    let message = message();

    let mut group = c.benchmark_group("smtp");
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("session/message", |b| {
        b.iter(|| {
            for line in ENVELOPE {
                let mut bytes = line.iter();
                black_box(session.advance(&mut bytes, &mut out));
            }
            let mut bytes = message.iter();
            match session.advance(&mut bytes, &mut out) {
                Step::Relay(transaction) => {
                    black_box(transaction);
                    session.relayed(RelayOutcome::Accepted, &mut out);
                }
                other => panic!("{other:?}"),
            }
            out.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
