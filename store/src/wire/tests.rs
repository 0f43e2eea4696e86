//! The wire encoder and wire_size, on every kind of line ending and split.

use super::*;
use proptest::prelude::*;

fn encode_chunks(encoder: Encoder, chunks: &[&[u8]]) -> Vec<u8> {
    let mut encoder = encoder;
    let mut out = Vec::new();
    for chunk in chunks {
        encoder.encode(chunk, &mut out);
    }
    encoder.finish(&mut out);
    out
}

fn full(input: &[u8]) -> Vec<u8> {
    encode_chunks(Encoder::full(), &[input])
}

fn top(input: &[u8], n: u64) -> Vec<u8> {
    encode_chunks(Encoder::top(n), &[input])
}

fn size(input: &[u8]) -> u64 {
    match wire_size(input) {
        Ok(size) => size,
        Err(err) => panic!("reading a slice failed: {err}"),
    }
}

/// Every split of `input` into two and three chunks gives `expected`.
fn assert_all_splits(input: &[u8], expected: &[u8]) {
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(
            encode_chunks(Encoder::full(), &[a, b]),
            expected,
            "split {i}"
        );
        for j in i..=input.len() {
            let (b1, c) = input.split_at(j);
            let b1 = &b1[i..];
            assert_eq!(
                encode_chunks(Encoder::full(), &[a, b1, c]),
                expected,
                "split {i} {j}"
            );
        }
    }
}

#[test]
fn empty_message_is_just_the_terminator() {
    assert_eq!(full(b""), b".\r\n");
    assert_eq!(size(b""), 0);
}

#[test]
fn lf_becomes_crlf() {
    assert_eq!(full(b"a\nb\n"), b"a\r\nb\r\n.\r\n");
    assert_eq!(size(b"a\nb\n"), 6);
}

#[test]
fn crlf_stays() {
    assert_eq!(full(b"a\r\nb\r\n"), b"a\r\nb\r\n.\r\n");
    assert_eq!(size(b"a\r\nb\r\n"), 6);
}

#[test]
fn bare_cr_stays_and_does_not_end_a_line() {
    assert_eq!(full(b"a\rb\n"), b"a\rb\r\n.\r\n");
    assert_eq!(size(b"a\rb\n"), 5);
    assert_eq!(full(b"a\r.b\n"), b"a\r.b\r\n.\r\n");
    assert_eq!(full(b"a\r\r\nb\n"), b"a\r\r\nb\r\n.\r\n");
}

#[test]
fn missing_final_newline_is_supplied() {
    assert_eq!(full(b"abc"), b"abc\r\n.\r\n");
    assert_eq!(size(b"abc"), 5);
    assert_eq!(full(b"a\nbc"), b"a\r\nbc\r\n.\r\n");
    assert_eq!(size(b"a\nbc"), 7);
}

#[test]
fn final_bare_cr_gets_a_crlf_after_it() {
    assert_eq!(full(b"abc\r"), b"abc\r\r\n.\r\n");
    assert_eq!(size(b"abc\r"), 6);
}

#[test]
fn dots_are_stuffed_at_every_line_start() {
    assert_eq!(
        full(b".a\n..b\nc.d\n."),
        b"..a\r\n...b\r\nc.d\r\n..\r\n.\r\n"
    );
    assert_eq!(size(b".a\n..b\nc.d\n."), 17);
    assert_eq!(full(b".\r\n"), b"..\r\n.\r\n");
    assert_eq!(size(b".\r\n"), 3);
}

#[test]
fn blank_lines_are_kept() {
    assert_eq!(full(b"\n\n"), b"\r\n\r\n.\r\n");
    assert_eq!(size(b"\n\n"), 4);
}

#[test]
fn chunk_boundaries_do_not_matter() {
    assert_all_splits(b"a\r\nb", b"a\r\nb\r\n.\r\n");
    assert_all_splits(b".x\n.\r\n\r.y\r", b"..x\r\n..\r\n\r.y\r\r\n.\r\n");
    assert_all_splits(b"\n.\n", b"\r\n..\r\n.\r\n");
}

#[test]
fn cr_at_chunk_end_and_lf_at_next_start_is_crlf() {
    assert_eq!(
        encode_chunks(Encoder::full(), &[b"a\r", b"\nb\n"]),
        b"a\r\nb\r\n.\r\n"
    );
    assert_eq!(
        encode_chunks(Encoder::full(), &[b"a\r", b"", b"\n.b\n"]),
        b"a\r\n..b\r\n.\r\n"
    );
}

#[test]
fn top_zero_sends_headers_and_blank_line() {
    let msg = b"From: a\nSubject: b\n\nbody 1\nbody 2\n";
    assert_eq!(top(msg, 0), b"From: a\r\nSubject: b\r\n\r\n.\r\n");
}

#[test]
fn top_n_sends_n_body_lines() {
    let msg = b"From: a\r\n\r\n.one\r\ntwo\nthree\n";
    assert_eq!(top(msg, 1), b"From: a\r\n\r\n..one\r\n.\r\n");
    assert_eq!(top(msg, 2), b"From: a\r\n\r\n..one\r\ntwo\r\n.\r\n");
    assert_eq!(top(msg, 3), full(msg));
}

#[test]
fn top_huge_equals_full() {
    let msg = b"From: a\n\nx\n\ny\nlast";
    assert_eq!(top(msg, u64::MAX), full(msg));
    assert_eq!(top(msg, 99_999_999), full(msg));
}

#[test]
fn top_without_blank_line_is_all_headers() {
    let msg = b"From: a\nSubject: b";
    assert_eq!(top(msg, 0), b"From: a\r\nSubject: b\r\n.\r\n");
    assert_eq!(top(b"", 0), b".\r\n");
}

#[test]
fn top_of_message_with_empty_body() {
    assert_eq!(top(b"From: a\n\n", 0), b"From: a\r\n\r\n.\r\n");
    assert_eq!(top(b"From: a\n\n", 5), b"From: a\r\n\r\n.\r\n");
}

#[test]
fn top_leading_blank_line_means_no_headers() {
    assert_eq!(top(b"\nbody\nmore\n", 1), b"\r\nbody\r\n.\r\n");
}

#[test]
fn top_line_with_only_cr_before_crlf_is_not_blank() {
    let msg = b"A: 1\n\r\r\nB: 2\n\nbody\n";
    assert_eq!(top(msg, 0), b"A: 1\r\n\r\r\nB: 2\r\n\r\n.\r\n");
}

#[test]
fn top_blank_line_split_across_chunks() {
    let out = encode_chunks(Encoder::top(0), &[b"A: 1\r\n\r", b"\nbody\n"]);
    assert_eq!(out, b"A: 1\r\n\r\n.\r\n");
}

#[test]
fn top_is_done_and_ignores_further_input() {
    let mut encoder = Encoder::top(0);
    let mut out = Vec::new();
    encoder.encode(b"A: 1\n\nbody\n", &mut out);
    assert!(encoder.is_done());
    encoder.encode(b"more\n", &mut out);
    encoder.finish(&mut out);
    encoder.finish(&mut out);
    assert_eq!(out, b"A: 1\r\n\r\n.\r\n");
}

#[test]
fn full_is_not_done_until_finished() {
    let mut encoder = Encoder::default();
    let mut out = Vec::new();
    encoder.encode(b"a\n", &mut out);
    assert!(!encoder.is_done());
    encoder.finish(&mut out);
    assert!(encoder.is_done());
    encoder.encode(b"b\n", &mut out);
    assert_eq!(out, b"a\r\n.\r\n");
}

#[test]
fn wire_size_retries_interrupted_reads_and_reports_errors() {
    struct Flaky {
        calls: u32,
    }
    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            match self.calls {
                1 => Err(io::Error::from(io::ErrorKind::Interrupted)),
                2 => {
                    buf[..2].copy_from_slice(b"a\n");
                    Ok(2)
                }
                _ => Err(io::Error::other("disk on fire")),
            }
        }
    }
    let err = wire_size(Flaky { calls: 0 }).map_err(|e| e.to_string());
    assert_eq!(err, Err("disk on fire".to_string()));
}

#[test]
fn wire_size_reads_past_one_chunk() {
    let input = vec![b'\n'; READ_CHUNK * 2 + 3];
    assert_eq!(size(&input), (READ_CHUNK as u64 * 2 + 3) * 2);
}

/// Undoes dot-stuffing and strips the terminator; `None` if the stream
/// is malformed.
fn unstuff(encoded: &[u8]) -> Option<Vec<u8>> {
    let body = encoded.strip_suffix(b".\r\n")?;
    let mut out = Vec::with_capacity(body.len());
    let mut at_line_start = true;
    for &byte in body {
        if !(at_line_start && byte == b'.') {
            out.push(byte);
        }
        at_line_start = byte == b'\n';
    }
    Some(out)
}

/// The reference transformation: LF→CRLF and the final CRLF supplied.
fn reference(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = None;
    for &byte in input {
        if byte == b'\n' && prev != Some(b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
        prev = Some(byte);
    }
    if !input.is_empty() && prev != Some(b'\n') {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn message_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => Just(b'\n'),
        2 => Just(b'\r'),
        2 => Just(b'.'),
        3 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..300)
}

fn split_input<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points {
        chunks.push(&input[start..point]);
        start = point;
    }
    chunks.push(&input[start..]);
    chunks
}

proptest! {
    #[test]
    fn unstuffed_encoding_is_crlf_normalised_input(
        input in message_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let chunks = split_input(&input, &cuts);
        let encoded = encode_chunks(Encoder::full(), &chunks);
        let expected = reference(&input);
        prop_assert_eq!(unstuff(&encoded), Some(expected.clone()));
        prop_assert_eq!(expected.len() as u64, size(&input));
        if input.is_empty() {
            prop_assert_eq!(encoded.as_slice(), b".\r\n");
        } else {
            prop_assert!(encoded.ends_with(b"\r\n.\r\n"));
        }
        prop_assert_eq!(encoded, full(&input));
    }

    #[test]
    fn chunked_top_equals_one_shot_top(
        input in message_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        n in 0u64..5,
    ) {
        let chunks = split_input(&input, &cuts);
        let chunked = encode_chunks(Encoder::top(n), &chunks);
        let one_shot = top(&input, n);
        prop_assert_eq!(&chunked, &one_shot);
        prop_assert!(full(&input).starts_with(&one_shot[..one_shot.len() - 3]));
        prop_assert_eq!(top(&input, u64::MAX), full(&input));
    }

    #[test]
    fn wire_size_does_not_depend_on_read_sizes(
        input in message_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut counter = SizeCounter::default();
        for chunk in split_input(&input, &cuts) {
            counter.feed(chunk);
        }
        prop_assert_eq!(counter.total(), size(&input));
    }
}

/// RETR's whole output computed one byte at a time: a CR before an LF not
/// preceded by CR, a dot before a dot that starts a line, the final CRLF
/// when the message ends inside a line, and the terminator.
fn byte_at_a_time(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // The message starts a line.
    let mut prev = b'\n';
    for &byte in input {
        if byte == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if byte == b'.' && prev == b'\n' {
            out.push(b'.');
        }
        out.push(byte);
        prev = byte;
    }
    if prev != b'\n' {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// RETR through the run-copying path that architectures other than
/// x86_64 take (on x86_64 `Encoder::full` takes the block path).
fn runs_path(chunks: &[&[u8]]) -> Vec<u8> {
    let mut scanner = LineScanner::default();
    let mut out = Vec::new();
    for chunk in chunks {
        scanner.copy_inserting(chunk, &mut out);
    }
    if scanner.needs_final_crlf() {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[test]
fn lf_and_line_dot_at_every_place_in_three_blocks() {
    for len in 0..=3 * 64 + 1 {
        let mut inputs = vec![
            b"\n".repeat(len),
            b"\n.".repeat(len / 2),
            b"\r\n".repeat(len / 2),
        ];
        for at in 0..len {
            let mut input = vec![b'a'; len];
            input[at] = b'\n';
            if let Some(next) = input.get_mut(at + 1) {
                *next = b'.';
            }
            inputs.push(input);
        }
        for input in &inputs {
            let expected = byte_at_a_time(input);
            assert_eq!(full(input), expected, "{input:?}");
            assert_eq!(runs_path(&[input]), expected, "{input:?}");
        }
    }
}

/// Messages of LF, CR, dot and one letter, so that line ends, CRLFs and
/// line-starting dots fall on every byte of the 64-byte blocks, the first
/// and last bytes of a chunk among them.
fn block_edge_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(b"\n\r.a".to_vec()), 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn retr_equals_the_byte_at_a_time_encoding_across_blocks_and_chunks(
        input in block_edge_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let chunks = split_input(&input, &cuts);
        let expected = byte_at_a_time(&input);
        prop_assert_eq!(&encode_chunks(Encoder::full(), &chunks), &expected);
        prop_assert_eq!(&runs_path(&chunks), &expected);
    }
}

#[test]
fn long_messages_in_chunks_of_any_size() {
    // Mixed line ends and dots, long enough to fill RETR's staging buffer
    // many times over, and all-LF text, which doubles in size.
    let mut state = 1u32;
    let mixed: Vec<u8> = (0..40_000)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            b"\n\r.abcdefgh\n."[(state >> 16) as usize % 13]
        })
        .collect();
    for input in [mixed, vec![b'\n'; 20_000]] {
        let expected = byte_at_a_time(&input);
        for size in [1, 63, 64, 65, 4096, input.len()] {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            assert_eq!(encode_chunks(Encoder::full(), &chunks), expected, "{size}");
            assert_eq!(runs_path(&chunks), expected, "{size}");
        }
    }
}
