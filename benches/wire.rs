//! The RETR converter: `wire::Encoder` and `wire_size` throughput.
//!
//! Three 8 MiB messages: LF-only text (the usual Maildir file), the same
//! with CRLF line ends, and dot-heavy text where every other line starts
//! with a dot and needs stuffing. The encoder is fed the POP3 driver's
//! pieces (`MESSAGE_PIECE`) into an output buffer that is emptied after
//! each, as the driver does.
//!
//! ```text
//! cargo bench --bench wire
//! ```

// A benchmark: a failed set-up may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use popgate::pop3::driver::MESSAGE_PIECE;
use popgate_store::wire::{wire_size, Encoder};

const MESSAGE_SIZE: usize = 8 << 20;

/// About `MESSAGE_SIZE` bytes of mail-like lines (40 to 76 characters)
/// ending in `line_end`; with `dots`, every other line starts with a dot.
fn message(line_end: &str, dots: bool) -> Vec<u8> {
    let words = [
        "Lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet,",
        "consectetur",
        "adipiscing",
        "elit.",
    ];
    let mut out = Vec::with_capacity(MESSAGE_SIZE + 128);
    let mut line = 0usize;
    while out.len() < MESSAGE_SIZE {
        if dots && line % 2 == 0 {
            out.push(b'.');
        }
        let width = 40 + line * 7 % 37;
        let start = out.len();
        let mut word = line;
        while out.len() - start < width {
            out.extend_from_slice(words[word % words.len()].as_bytes());
            out.push(b' ');
            word += 3;
        }
        out.extend_from_slice(line_end.as_bytes());
        line += 1;
    }
    out
}

fn encode(message: &[u8], out: &mut Vec<u8>) -> usize {
    let mut encoder = Encoder::full();
    let mut sent = 0;
    for piece in message.chunks(MESSAGE_PIECE) {
        encoder.encode(piece, out);
        if out.len() >= MESSAGE_PIECE {
            sent += out.len();
            black_box(&out);
            out.clear();
        }
    }
    encoder.finish(out);
    sent += out.len();
    out.clear();
    sent
}

fn bench(c: &mut Criterion) {
    let inputs = [
        ("lf", message("\n", false)),
        ("crlf", message("\r\n", false)),
        ("dot-heavy", message("\n", true)),
    ];
    let mut group = c.benchmark_group("wire");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    for (name, input) in &inputs {
        group.throughput(Throughput::Bytes(input.len() as u64));
        let mut out = Vec::with_capacity(4 * MESSAGE_PIECE);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode(black_box(input), &mut out))
        });
        group.bench_function(format!("wire_size/{name}"), |b| {
            b.iter(|| wire_size(black_box(&input[..])).expect("reading a slice"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
