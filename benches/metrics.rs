//! What `[metrics]` adds to the hot paths: the command clock the connection
//! core runs on every hand-over, the counters the drivers bump, and a
//! scrape.
//!
//! ```text
//! cargo bench --bench metrics
//! ```

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use popgate::login::LoginRefusal;
use popgate::metrics::{Metrics, Service};
use popgate::protocol_log::Reading;

#[path = "common/session.rs"]
mod session;

use session::SESSION;

fn command_clock(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::new());
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(SESSION.len() as u64));
    let mut session = metrics.session(Service::Pop3);
    // Each line timed as the core times it: hand-over, then the next read.
    group.bench_function("command_clock/session", |b| {
        b.iter(|| {
            for line in SESSION {
                let started = session.handing();
                session.handed(
                    Reading::Command,
                    black_box(line.as_bytes()),
                    Reading::Command,
                    started,
                );
                session.waiting();
            }
        })
    });
    group.finish();
}

fn events(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::new());
    let mut group = c.benchmark_group("metrics");
    // A poller's session: accepted, logged in, two RETRs, a commit, ended.
    group.bench_function("events/session", |b| {
        b.iter(|| {
            metrics.connection_accepted(Service::Pop3);
            let session = metrics.session(Service::Pop3);
            session.logged_in();
            session.retrieved(black_box(12_000));
            session.retrieved(black_box(3_400));
            session.deleted(black_box(2));
            session.login_refused(LoginRefusal::MailboxLocked);
        })
    });
    group.bench_function("scrape", |b| {
        b.iter(|| black_box(metrics.prometheus_text()).len())
    });
    group.finish();
}

criterion_group!(benches, command_clock, events);
criterion_main!(benches);
