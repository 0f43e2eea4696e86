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
//! For RETR, [`Encoder`] marks the bytes that need a CR or a dot inserted
//! before them 64 at a time (SSE2 compares and a movemask on x86_64),
//! copies each 64-byte block whole and opens a gap for each insertion;
//! other architectures copy the input in runs between the insertions,
//! found with `memchr`. TOP, which must count lines, goes through a line
//! scanner that finds line ends with `memchr` and hands out each line's
//! bytes. Either way encoding costs little more than a copy. [`wire_size`],
//! which a first login runs over every message, does not need the
//! insertions, only the count the rules give: the length, plus one for
//! every LF not preceded by CR, plus two when the message ends inside a
//! line. It counts LFs and CRLFs with vectorised
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

    /// RETR's encoding of `input`, appended to `out`: the input copied in
    /// runs that break only where something is inserted, a CR before a
    /// bare LF or a stuffed dot after an LF. A run of CRLF lines without
    /// leading dots is one copy, and an LF line costs one copy and two
    /// pushes: no pieces, no per-line state. The counterpart of
    /// [`scan`](Self::scan) for the whole message: 1.45 times as fast on LF
    /// text, twice on CRLF text (`cargo bench --bench wire`). x86_64 uses
    /// `copy_blocks` instead, and builds this one only for the tests,
    /// which check the two against each other.
    #[cfg(any(not(target_arch = "x86_64"), test))]
    fn copy_inserting(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Some(&last) = input.last() else {
            return;
        };
        if self.line_len == 0 && input.first() == Some(&b'.') {
            out.push(b'.');
        }
        // Where the part not yet copied starts.
        let mut run = 0;
        let mut last_lf = None;
        for lf in memchr::memchr_iter(b'\n', input) {
            let cr_before = match lf.checked_sub(1) {
                Some(before) => input.get(before) == Some(&b'\r'),
                None => self.prev_cr,
            };
            if !cr_before {
                out.extend_from_slice(input.get(run..lf).unwrap_or_default());
                out.push(b'\r');
                run = lf;
            }
            if input.get(lf + 1) == Some(&b'.') {
                out.extend_from_slice(input.get(run..=lf).unwrap_or_default());
                out.push(b'.');
                run = lf + 1;
            }
            last_lf = Some(lf);
        }
        out.extend_from_slice(input.get(run..).unwrap_or_default());
        let in_line = match last_lf {
            Some(lf) => input.len() - lf - 1,
            None => input.len(),
        };
        self.line_len = match last_lf {
            Some(_) => in_line as u64,
            None => self.line_len.saturating_add(in_line as u64),
        };
        self.prev_cr = last == b'\r';
    }

    /// RETR's encoding of `input` on x86_64: the same bytes as
    /// `copy_inserting`, built 64 bytes at a time.
    ///
    /// Each block is compared with itself shifted by one byte (the byte
    /// before it in front) to mark the bytes that need an insertion before
    /// them: an LF not preceded by CR, and a `.` preceded by LF. SSE2's
    /// movemask turns the marks into one bit per byte of a `u64`. The block
    /// is copied whole into a staging buffer, and each marked byte gets
    /// its CR or dot written in front of it followed by a copy of the rest
    /// of the block, one block long, one byte further on. Every copy has a
    /// fixed size and no search stops at a line end, so an LF line costs
    /// about two 64-byte copies instead of a `memchr`, a `memcpy` of its
    /// length and a push: 1.55 times as fast on LF and on CRLF text, 1.4
    /// times on dot-heavy text (`cargo bench --bench wire`, and run against
    /// each other in turn). Without movemask, which LLVM does not emit for
    /// the same marks computed in plain Rust, the gain is gone; SSE2 is
    /// part of x86_64, so `safe_arch` offers it without `unsafe` here.
    #[cfg(target_arch = "x86_64")]
    fn copy_blocks(&mut self, input: &[u8], out: &mut Vec<u8>) {
        use safe_arch::{
            bitandnot_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i,
            set_splat_i8_m128i,
        };
        const BLOCK: usize = 64;
        /// The byte before a block, the block and the 63 bytes after it,
        /// which the copy after an insertion before its last byte reads
        /// (and the next block's copy overwrites).
        const WINDOW: usize = 2 * BLOCK;
        const STAGE: usize = 4096;
        let Some(&last) = input.last() else {
            return;
        };
        // What the byte before `input` means for its first byte: a CR that
        // an LF pairs with, or a line start where a dot is stuffed.
        let before_input = if self.prev_cr {
            b'\r'
        } else if self.line_len == 0 {
            b'\n'
        } else {
            0
        };
        let splat = |byte: u8| set_splat_i8_m128i(i8::from_ne_bytes([byte]));
        let (cr, lf, dot) = (splat(b'\r'), splat(b'\n'), splat(b'.'));
        let mut stage = [0u8; STAGE];
        let mut written = 0;
        for at in (0..input.len()).step_by(BLOCK) {
            let len = BLOCK.min(input.len() - at);
            let padded: [u8; WINDOW];
            let window = at.checked_sub(1).and_then(|from| input.get(from..));
            let window = match window.and_then(|w| w.first_chunk::<WINDOW>()) {
                Some(window) => window,
                // The first block and the last ones: the window is copied
                // into zeros, which need no insertion.
                None => {
                    let before = at.checked_sub(1).and_then(|b| input.get(b));
                    let rest = input.get(at..).unwrap_or_default();
                    let rest = rest.get(..WINDOW - 1).unwrap_or(rest);
                    let mut buf = [0u8; WINDOW];
                    if let Some((first, tail)) = buf.split_first_mut() {
                        *first = before.copied().unwrap_or(before_input);
                        if let Some(dst) = tail.get_mut(..rest.len()) {
                            dst.copy_from_slice(rest);
                        }
                    }
                    padded = buf;
                    &padded
                }
            };
            let mut marks = 0u64;
            for k in 0..BLOCK / 16 {
                let load = |from: usize| {
                    let bytes = window.get(from..).and_then(|w| w.first_chunk::<16>());
                    bytes.map_or(m128i::default(), load_unaligned_m128i)
                };
                let (before, bytes) = (load(16 * k), load(16 * k + 1));
                let bare_lf = bitandnot_m128i(
                    cmp_eq_mask_i8_m128i(before, cr),
                    cmp_eq_mask_i8_m128i(bytes, lf),
                );
                let line_dot = cmp_eq_mask_i8_m128i(before, lf) & cmp_eq_mask_i8_m128i(bytes, dot);
                let bits = move_mask_i8_m128i(bare_lf | line_dot) as u16;
                marks |= u64::from(bits) << (16 * k);
            }
            // A block grows to at most two, and the last copy writes up
            // to 63 bytes past that.
            if written + 3 * BLOCK > STAGE {
                out.extend_from_slice(stage.get(..written).unwrap_or_default());
                written = 0;
            }
            let copy = |stage: &mut [u8; STAGE], from: usize, to: usize| {
                let src = window.get(from..).and_then(|w| w.first_chunk::<BLOCK>());
                let dst = stage
                    .get_mut(to..)
                    .and_then(|s| s.first_chunk_mut::<BLOCK>());
                if let (Some(src), Some(dst)) = (src, dst) {
                    *dst = *src;
                }
            };
            copy(&mut stage, 1, written);
            let mut inserted = 0;
            while marks != 0 {
                let q = marks.trailing_zeros() as usize;
                marks &= marks - 1;
                let to = written + q + inserted;
                copy(&mut stage, 1 + q, to + 1);
                let byte = if window.get(1 + q) == Some(&b'.') {
                    b'.'
                } else {
                    b'\r'
                };
                if let Some(slot) = stage.get_mut(to) {
                    *slot = byte;
                }
                inserted += 1;
            }
            written += len + inserted;
        }
        out.extend_from_slice(stage.get(..written).unwrap_or_default());
        self.line_len = match memchr::memrchr(b'\n', input) {
            Some(lf) => (input.len() - lf - 1) as u64,
            None => self.line_len.saturating_add(input.len() as u64),
        };
        self.prev_cr = last == b'\r';
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
        if self.top.is_none() {
            #[cfg(target_arch = "x86_64")]
            self.scanner.copy_blocks(input, out);
            #[cfg(not(target_arch = "x86_64"))]
            self.scanner.copy_inserting(input, out);
            return;
        }
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
mod tests;
