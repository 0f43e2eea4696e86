//! `popgate_store::wire::Encoder` and `wire_size` on arbitrary messages.
//!
//! Invariants: output does not depend on where the input is split; every
//! body line that starts with a dot was stuffed, so the terminator appears
//! only at the end; removing the stuffing gives the input with CRLF line
//! ends (and a final CRLF), whose length is `wire_size`; and TOP's output is
//! a prefix of RETR's, identical when the limit is past the end.

#![no_main]

use libfuzzer_sys::fuzz_target;
use popgate_store::wire::{wire_size, Encoder};

fuzz_target!(|data: &[u8]| {
    let [split, top_lines, message @ ..] = data else {
        return;
    };
    let split = message.len() * usize::from(*split) / 255;
    let top_lines = match top_lines {
        255 => u64::MAX,
        n => u64::from(n % 8),
    };

    let full = encode(Encoder::full(), &[message]);
    assert_eq!(
        encode(Encoder::full(), &[&message[..split], &message[split..]]),
        full,
        "RETR output depends on the split"
    );
    let body = full
        .strip_suffix(b".\r\n")
        .expect("the output ends with the terminator");
    if message.is_empty() {
        assert!(body.is_empty());
    } else {
        assert!(
            body.ends_with(b"\r\n"),
            "a non-empty message ends with CRLF"
        );
    }
    let expected = crlf_lines(message);
    assert_eq!(unstuff(body), expected);
    assert_eq!(
        wire_size(message).expect("reading a slice"),
        expected.len() as u64
    );

    let top = encode(Encoder::top(top_lines), &[message]);
    assert_eq!(
        encode(
            Encoder::top(top_lines),
            &[&message[..split], &message[split..]]
        ),
        top,
        "TOP output depends on the split"
    );
    let top_body = top
        .strip_suffix(b".\r\n")
        .expect("TOP ends with the terminator");
    assert!(full.starts_with(top_body), "TOP is not a prefix of RETR");
    if top_lines == u64::MAX {
        assert_eq!(top, full);
    }
});

/// Encodes `chunks` one after the other, then finishes.
fn encode(mut encoder: Encoder, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        encoder.encode(chunk, &mut out);
    }
    encoder.finish(&mut out);
    out
}

/// The reference: LF not after CR becomes CRLF, and a final CRLF is supplied.
fn crlf_lines(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() * 2 + 2);
    let mut previous = None;
    for &byte in message {
        if byte == b'\n' && previous != Some(b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
        previous = Some(byte);
    }
    if previous.is_some_and(|byte| byte != b'\n') {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Checks that every line of `body` ends in CRLF and that a line starting
/// with a dot starts with two, and removes the stuffed dots.
fn unstuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "a body line without CRLF");
        match line.strip_prefix(b".") {
            Some(rest) => {
                assert!(rest.starts_with(b"."), "a dot line was not stuffed");
                out.extend_from_slice(rest);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}
