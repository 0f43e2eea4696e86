//! The body of a big RETR: a 25 MB message file (in the page cache) read
//! in the POP3 driver's pieces (`MESSAGE_PIECE`) and encoded for the
//! wire, output emptied after each, as the driver streams a message past
//! its first piece.
//!
//! Two ways to read the pieces, so the difference stays visible:
//!
//! - `nowait`: what the driver does, `read::read_nowait` into one buffer
//!   on the async thread;
//! - `tokio-fs`: what it did before issue 15, `tokio::fs::File::read`,
//!   which takes every piece to a blocking thread and copies it out of a
//!   buffer of its own.
//!
//! And the start of a RETR of a 45 KB message (the drain's average), in
//! the page cache, through the store: open it, then read it whole.
//!
//! - `open-read`: what the driver does, the length the open found passed
//!   to `read::read_start_nowait`;
//! - `open-statx-read`: what it did until the drain's profile showed the
//!   second `statx`, the length asked of the kernel again.
//!
//! ```text
//! cargo bench --bench retr
//! ```

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use popgate::pop3::driver::MESSAGE_PIECE;
use popgate_store::read;
use popgate_store::wire::Encoder;
use popgate_store::{Mailbox, OpenOptions};
use tokio::io::AsyncReadExt;

#[path = "common/mail.rs"]
mod mail;

const MESSAGE_SIZE: usize = 25 << 20;
/// The size of the message whose start is read.
const SMALL_SIZE: usize = 45 * 1024;

/// Delivers one message of [`SMALL_SIZE`] octets to the Maildir `root`
/// (created if missing).
fn deliver_small_message(root: &Path) {
    let mut text = b"Subject: bench\n\n".to_vec();
    while text.len() < SMALL_SIZE {
        text.extend_from_slice(&[b'x'; 75]);
        text.push(b'\n');
    }
    text.truncate(SMALL_SIZE);
    popgate_store::deliver(&[root], &text, "bench", |_, step| step()).unwrap();
}

/// Opens message 1 and reads it whole, with the length the open found or,
/// when `statx_again`, with the length asked of the kernel once more.
fn open_and_read_start(mailbox: &Mailbox, statx_again: bool) -> usize {
    let opened = mailbox
        .open_message_nowait(0)
        .unwrap()
        .expect("the message left the caches");
    let len = match statx_again {
        true => opened.file.metadata().unwrap().len(),
        false => opened.len,
    };
    let start = read::read_start_nowait(&opened.file, len, SMALL_SIZE)
        .unwrap()
        .expect("the message left the page cache");
    assert!(start.whole);
    start.bytes.len()
}

/// Sends what the encoder produced whenever a piece's worth is there.
fn drain(out: &mut Vec<u8>, sent: &mut usize) {
    if out.len() >= MESSAGE_PIECE {
        *sent += out.len();
        black_box(&out);
        out.clear();
    }
}

fn stream_nowait(path: &Path, chunk: &mut [u8], out: &mut Vec<u8>) -> usize {
    let file = File::open(path).unwrap();
    let mut encoder = Encoder::full();
    let mut sent = 0;
    loop {
        let n = read::read_nowait(&file, chunk)
            .unwrap()
            .expect("the message left the page cache");
        if n == 0 {
            break;
        }
        encoder.encode(&chunk[..n], out);
        drain(out, &mut sent);
    }
    encoder.finish(out);
    sent + out.len()
}

async fn stream_tokio_fs(path: &Path, chunk: &mut [u8], out: &mut Vec<u8>) -> usize {
    let mut file = tokio::fs::File::open(path).await.unwrap();
    let mut encoder = Encoder::full();
    let mut sent = 0;
    loop {
        let n = file.read(chunk).await.unwrap();
        if n == 0 {
            break;
        }
        encoder.encode(&chunk[..n], out);
        drain(out, &mut sent);
    }
    encoder.finish(out);
    sent + out.len()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message");
    std::fs::write(&path, mail::mkmaildir_message(MESSAGE_SIZE, 0)).unwrap();
    // Read once, so every variant finds it in the page cache.
    let mut warm = File::open(&path).unwrap();
    std::io::copy(&mut warm, &mut std::io::sink()).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("retr/read_encode");
    group.throughput(Throughput::Bytes(MESSAGE_SIZE as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    let mut chunk = vec![0u8; MESSAGE_PIECE];
    let mut out = Vec::with_capacity(2 * MESSAGE_PIECE);
    group.bench_function("nowait", |b| {
        b.iter(|| {
            out.clear();
            stream_nowait(&path, &mut chunk, &mut out)
        })
    });
    group.bench_function("tokio-fs", |b| {
        b.iter(|| {
            out.clear();
            runtime.block_on(stream_tokio_fs(&path, &mut chunk, &mut out))
        })
    });
    group.finish();

    let small = tempfile::tempdir().unwrap();
    deliver_small_message(small.path());
    let mailbox = Mailbox::open(small.path(), &OpenOptions::default()).unwrap();
    let mut group = c.benchmark_group("retr/start");
    group.throughput(Throughput::Bytes(SMALL_SIZE as u64));
    group.bench_function("open-read", |b| {
        b.iter(|| open_and_read_start(&mailbox, false))
    });
    group.bench_function("open-statx-read", |b| {
        b.iter(|| open_and_read_start(&mailbox, true))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
