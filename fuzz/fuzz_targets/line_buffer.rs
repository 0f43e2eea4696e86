//! `popgate::line_buffer::LineBuffer` fed arbitrary input in arbitrary
//! pieces, through its real `fill` from an in-memory reader.
//!
//! Invariants, whatever the split: the lines taken out are exactly the
//! input's LF-terminated lines, each without its LF and one CR before it,
//! in order; the buffer refuses input exactly when a line (finished or not)
//! is longer than its limit, and hands out no line past that point.

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use popgate::line_buffer::{LineBuffer, LineTooLong};

fuzz_target!(|data: &[u8]| {
    let [limit, piece, input @ ..] = data else {
        return;
    };
    let limit = usize::from(*limit);
    let piece = usize::from(*piece).max(1);

    let (expected, overflow) = reference(input, limit);
    let mut buffer = LineBuffer::new(limit);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut refused = None;
    'reading: for chunk in input.chunks(piece) {
        let mut reader = chunk;
        while !reader.is_empty() {
            let read = now(buffer.fill(&mut reader, 4096)).expect("reading a slice");
            assert!(read > 0, "fill made no progress");
            loop {
                match buffer.take_line(&mut line) {
                    Ok(true) => lines.push(line.clone()),
                    Ok(false) => break,
                    Err(error) => {
                        refused = Some(error);
                        break 'reading;
                    }
                }
            }
        }
    }
    assert_eq!(lines, expected);
    assert_eq!(refused, overflow.then_some(LineTooLong(limit)));
    if !overflow {
        let tail = input.rsplit(|&b| b == b'\n').next().unwrap_or_default();
        assert_eq!(buffer.pending().is_empty(), tail.is_empty());
    }
});

/// The lines of `input` before the first one longer than `limit` (counting a
/// CR before its LF), and whether there is such a line.
fn reference(input: &[u8], limit: usize) -> (Vec<Vec<u8>>, bool) {
    let mut lines = Vec::new();
    let mut rest = input;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        if end > limit {
            return (lines, true);
        }
        let text = &rest[..end];
        lines.push(text.strip_suffix(b"\r").unwrap_or(text).to_vec());
        rest = &rest[end + 1..];
    }
    (lines, rest.len() > limit)
}

/// Runs a future that never waits, as reading from a slice never does.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading from a slice waited"),
    }
}
