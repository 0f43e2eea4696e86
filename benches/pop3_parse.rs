//! POP3 command handling: parsing the lines of a typical session, and the
//! same lines through the session state machine.
//!
//! ```text
//! cargo bench --bench pop3_parse
//! ```

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use popgate::pop3::command::parse;
use popgate::pop3::maildrop::MessageInfo;
use popgate::pop3::session::{Session, SessionOptions};

#[path = "common/session.rs"]
mod session;

use session::SESSION;

/// Lines a logged-in session answers itself, without the driver's I/O.
const TRANSACTION: &[&str] = &[
    "STAT", "LIST 17", "UIDL 17", "DELE 17", "LIST 18", "DELE 18", "NOOP", "RSET",
];

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("pop3");
    group.throughput(Throughput::Elements(SESSION.len() as u64));
    group.bench_function("parse/session", |b| {
        b.iter(|| {
            for line in SESSION {
                let _ = black_box(parse(black_box(line.as_bytes()), 512));
            }
        })
    });

    let options = SessionOptions {
        stls_available: false,
        tls: true,
        plaintext_login: false,
        max_command_size: 512,
    };
    let messages: Vec<MessageInfo> = (0..100)
        .map(|i| MessageInfo {
            uidl: format!("1700000000.M{i}P42.host"),
            size: 4000 + i,
        })
        .collect();
    let mut session = Session::new(options);
    session.logged_in(messages, &mut Vec::new());
    let mut out = Vec::with_capacity(4096);
    group.throughput(Throughput::Elements(TRANSACTION.len() as u64));
    group.bench_function("session/transaction", |b| {
        b.iter(|| {
            for line in TRANSACTION {
                black_box(session.handle_line(black_box(line.as_bytes()), &mut out));
            }
            out.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
