//! The message on the wire: the one place that decides what RETR and TOP
//! send, and therefore what LIST and STAT report.
//!
//! A Maildir file usually has bare LF line ends; POP3 (RFC 1939 §3) wants
//! CRLF lines, a `.` stuffed in front of every line that starts with `.`, and
//! a terminating `.` line. This module turns the file into exactly those
//! bytes, as a stream, so a message is never held whole in memory:
//!
//! ```
//! use popgate_store::wire::{wire_size, Encoder};
//!
//! let message = b"Subject: hi\n\n.dot\nlast line without LF";
//! let mut out = Vec::new();
//! let mut encoder = Encoder::full();
//! // Feed the file in chunks of any size; split points do not matter.
//! for chunk in message.chunks(7) {
//!     encoder.encode(chunk, &mut out);
//! }
//! encoder.finish(&mut out);
//! assert_eq!(
//!     out,
//!     b"Subject: hi\r\n\r\n..dot\r\nlast line without LF\r\n.\r\n".to_vec()
//! );
//!
//! // LIST/STAT size: the same bytes without the stuffed dot and terminator.
//! assert_eq!(wire_size(&message[..])?, 43);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The rules, applied to any mix of LF, CRLF and bare CR:
//!
//! * an LF not preceded by CR becomes CRLF; CRLF stays; a bare CR stays as it
//!   is (it does not end a line);
//! * a `.` is stuffed at the start of every line that starts with `.`;
//! * a non-empty message that does not end with LF gets a CRLF supplied;
//! * then the terminator `.\r\n` (an empty message is just `.\r\n`).
//!
//! [`Encoder::top`] keeps the header section, the blank line that ends it
//! and at most `n` body lines; the header section ends at the first line that
//! is empty (just LF or CRLF), and a message without one is all headers.
//!
//! [`Encoder`] is driven by a line scanner that finds line ends with
//! `memchr` and hands out whole runs of bytes, so encoding costs little
//! more than a copy. [`wire_size`], which a first login runs over every
//! message, does not need the runs, only the count the rules give: the
//! length, plus one for every LF not preceded by CR, plus two when the
//! message ends inside a line. It counts LFs and CRLFs with vectorised
//! searches instead of stopping at every line, and property tests check
//! that it always equals the length of what the encoder sends, less the
//! stuffed dots and the terminator.

use std::io::{self, Read};
use std::ops::ControlFlow;

/// How much [`wire_size`] reads at a time.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// The end of one line, as the scanner reports it.
#[derive(Debug, Clone, Copy)]
struct LineEnd {
    /// The LF was not preceded by CR, so a CR must be inserted before it.
    insert_cr: bool,
    /// The whole line was empty (just LF or CRLF).
    blank: bool,
}

/// A run of bytes belonging to one line, never containing LF.
#[derive(Debug, Clone, Copy)]
struct Piece<'a> {
    /// The bytes to copy as they are.
    text: &'a [u8],
    /// `text` begins a line, so a leading `.` must be stuffed.
    starts_line: bool,
    /// The line ends right after `text` (the LF itself is not in `text`).
    end: Option<LineEnd>,
}

/// The line-break state machine shared by the size counter and the encoder.
///
/// It carries across chunk boundaries everything needed to classify the next
/// byte: how long the current line is so far and whether it ended in CR.
#[derive(Debug, Clone, Copy, Default)]
struct LineScanner {
    /// Bytes of the current, unfinished line seen so far (saturating).
    line_len: u64,
    /// The last byte seen was a CR.
    prev_cr: bool,
}

impl LineScanner {
    /// Splits `input` into pieces and hands each to `f`, stopping early when
    /// `f` breaks. Returns the number of input bytes consumed.
    #[inline]
    fn scan<'a, F>(&mut self, input: &'a [u8], mut f: F) -> usize
    where
        F: FnMut(Piece<'a>) -> ControlFlow<()>,
    {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|rest| !rest.is_empty()) {
            let starts_line = self.line_len == 0;
            match memchr::memchr(b'\n', rest) {
                Some(at) => {
                    let text = rest.get(..at).unwrap_or_default();
                    let cr_before = match text.last() {
                        Some(&byte) => byte == b'\r',
                        None => self.prev_cr,
                    };
                    let len = self.line_len.saturating_add(at as u64);
                    let blank = len == 0 || (len == 1 && cr_before);
                    self.line_len = 0;
                    self.prev_cr = false;
                    pos += at + 1;
                    let piece = Piece {
                        text,
                        starts_line,
                        end: Some(LineEnd {
                            insert_cr: !cr_before,
                            blank,
                        }),
                    };
                    if f(piece).is_break() {
                        return pos;
                    }
                }
                None => {
                    self.line_len = self.line_len.saturating_add(rest.len() as u64);
                    self.prev_cr = rest.last() == Some(&b'\r');
                    let piece = Piece {
                        text: rest,
                        starts_line,
                        end: None,
                    };
                    // The input is used up whatever `f` says.
                    let _ = f(piece);
                    return input.len();
                }
            }
        }
        input.len()
    }

    /// The message so far ends inside a line, so a CRLF must be supplied.
    fn needs_final_crlf(&self) -> bool {
        self.line_len > 0
    }
}

/// Counts wire octets (CRLF line ends, no stuffed dots, no terminator).
#[derive(Debug, Clone, Copy, Default)]
struct SizeCounter {
    size: u64,
    /// The last byte seen was a CR.
    prev_cr: bool,
    /// The message so far ends inside a line (its last byte is not LF).
    in_line: bool,
}

impl SizeCounter {
    fn feed(&mut self, input: &[u8]) {
        let Some(&last) = input.last() else {
            return;
        };
        let lf = memchr::memchr_iter(b'\n', input).count();
        let mut crlf = memchr::memmem::find_iter(input, b"\r\n").count();
        // A CRLF split between the previous chunk and this one.
        if self.prev_cr && input.first() == Some(&b'\n') {
            crlf += 1;
        }
        // Every LF not preceded by CR gets a CR inserted.
        let inserted = lf.saturating_sub(crlf) as u64;
        self.size = self
            .size
            .saturating_add(input.len() as u64)
            .saturating_add(inserted);
        self.prev_cr = last == b'\r';
        self.in_line = last != b'\n';
    }

    fn total(&self) -> u64 {
        if self.in_line {
            self.size.saturating_add(2)
        } else {
            self.size
        }
    }
}

/// The size LIST and STAT report for a message: the length of its full
/// encoding with CRLF line ends and a supplied final CRLF, but without
/// stuffed dots and without the terminator (RFC 1939 §11).
///
/// Reads `reader` to the end in 64 KiB chunks; `Interrupted` reads are
/// retried, any other read error is returned.
pub fn wire_size(reader: impl Read) -> io::Result<u64> {
    wire_size_with(reader, &mut vec![0u8; READ_CHUNK])
}

/// [`wire_size`] reading through the caller's buffer, so sizing many files
/// allocates (and zeroes) one buffer instead of one per file.
pub(crate) fn wire_size_with(mut reader: impl Read, buf: &mut [u8]) -> io::Result<u64> {
    let mut counter = SizeCounter::default();
    loop {
        let n = match reader.read(buf) {
            Ok(0) => return Ok(counter.total()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        counter.feed(buf.get(..n).unwrap_or_default());
    }
}

/// What TOP still has to send.
#[derive(Debug, Clone, Copy)]
struct TopLimit {
    /// Still inside the header section.
    in_headers: bool,
    /// Body lines still to send once the headers are done.
    body_lines_left: u64,
}

/// A streaming POP3 multi-line encoder for one message (RETR or TOP).
///
/// Feed the file with [`encode`](Encoder::encode) in chunks of any size,
/// then call [`finish`](Encoder::finish) once. Output is appended to the
/// caller's buffer; write the bytes from `finish` together with the last
/// chunk, as some clients expect `CRLF.CRLF` in one packet.
#[derive(Debug, Clone)]
pub struct Encoder {
    scanner: LineScanner,
    top: Option<TopLimit>,
    done: bool,
    finished: bool,
}

impl Encoder {
    /// An encoder for the whole message (RETR).
    pub fn full() -> Encoder {
        Encoder {
            scanner: LineScanner::default(),
            top: None,
            done: false,
            finished: false,
        }
    }

    /// An encoder for `TOP msg n`: the headers, the blank line that ends
    /// them, and at most `body_lines` body lines. `u64::MAX` (or any number
    /// past the end) sends the whole message.
    pub fn top(body_lines: u64) -> Encoder {
        Encoder {
            top: Some(TopLimit {
                in_headers: true,
                body_lines_left: body_lines,
            }),
            ..Encoder::full()
        }
    }

    /// `true` once no more input will be used: TOP's limit was reached or
    /// [`finish`](Encoder::finish) was called. Callers can stop reading the
    /// file then.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Encodes the next chunk of the message, appending to `out`. Input
    /// after TOP's limit (or after `finish`) is ignored.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        out.reserve(input.len() + input.len() / 32 + 2);
        let Encoder {
            scanner, top, done, ..
        } = self;
        scanner.scan(input, |piece| {
            if piece.starts_line && piece.text.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(piece.text);
            let Some(end) = piece.end else {
                return ControlFlow::Continue(());
            };
            out.extend_from_slice(if end.insert_cr { b"\r\n" } else { b"\n" });
            if top.as_mut().is_some_and(|limit| limit_reached(limit, end)) {
                *done = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
    }

    /// Ends the message: supplies the final CRLF when the message ended
    /// inside a line, then appends the terminator `.\r\n`. Calling it again
    /// appends nothing.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if self.scanner.needs_final_crlf() {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.finished = true;
        self.done = true;
    }
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::full()
    }
}

/// Accounts one finished line against TOP's limit; `true` when that line
/// was the last one to send.
fn limit_reached(limit: &mut TopLimit, end: LineEnd) -> bool {
    if limit.in_headers {
        if !end.blank {
            return false;
        }
        limit.in_headers = false;
    } else {
        limit.body_lines_left = limit.body_lines_left.saturating_sub(1);
    }
    limit.body_lines_left == 0
}

#[cfg(test)]
mod tests {
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
}
