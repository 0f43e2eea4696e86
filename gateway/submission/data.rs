//! Reading the message text after DATA (RFC 5321 §4.1.1.4, §4.5.2).
//!
//! The text ends at the first line that is a single `.`, that is at
//! `<CRLF>.<CRLF>`, the CRLF that ended the DATA command counting as the
//! first (so `.` at once is an empty message). Any other line that starts
//! with `.` loses that `.` (dot-stuffing). The reader takes its input in
//! whatever pieces it arrives and keeps only up to the size limit, while
//! still finding the end.
//!
//! smtp-proto's `DataReceiver` is not used: it also ends the text at a `.`
//! followed by more than one CR before the LF (`.\r\r\n`), which is not the
//! end; the rest of the message would then be read as commands.

use std::slice::Iter;

/// Where the reader is in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After a CRLF: a `.` here is stuffing or the end.
    LineStart,
    /// After a `.` that starts a line.
    Dot,
    /// After `.` and CR at the start of a line.
    DotCr,
    /// Inside a line.
    Text,
    /// After a CR inside a line.
    Cr,
}

/// The message text of one DATA command, as it arrives.
#[derive(Debug)]
pub struct DataReader {
    state: State,
    limit: usize,
    /// Octets of text so far, kept or not.
    len: usize,
}

impl DataReader {
    /// A reader for text right after the DATA command's CRLF, keeping at
    /// most `limit` octets.
    pub fn new(limit: usize) -> DataReader {
        DataReader {
            state: State::LineStart,
            limit,
            len: 0,
        }
    }

    /// Consumes `bytes` up to the end of the text, appending the text
    /// (unstuffed, CRLF line ends kept, the final `.` line left out) to
    /// `text` while it is within the limit. `true` once the end is read;
    /// `false` when `bytes` ran out before it.
    pub fn read(&mut self, bytes: &mut Iter<'_, u8>, text: &mut Vec<u8>) -> bool {
        for &byte in bytes.by_ref() {
            self.state = match (self.state, byte) {
                (State::LineStart, b'.') => State::Dot,
                (State::Dot, b'\r') => State::DotCr,
                (State::DotCr, b'\n') => return true,
                (State::DotCr, _) => {
                    self.push(b'\r', text);
                    self.text_byte(State::Cr, byte, text)
                }
                (state, _) => self.text_byte(state, byte, text),
            };
        }
        false
    }

    /// `true` when the text is longer than the limit (what was kept is
    /// then only its beginning).
    pub fn is_over(&self) -> bool {
        self.len > self.limit
    }

    /// Takes `byte` as text read in `state`; the state after it.
    fn text_byte(&mut self, state: State, byte: u8, text: &mut Vec<u8>) -> State {
        self.push(byte, text);
        match (state, byte) {
            (State::Cr, b'\n') => State::LineStart,
            (_, b'\r') => State::Cr,
            _ => State::Text,
        }
    }

    fn push(&mut self, byte: u8, text: &mut Vec<u8>) {
        self.len += 1;
        if self.len <= self.limit {
            text.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `input` in pieces cut at `cuts`: the text, whether it ended,
    /// what was left unread, and whether it was over `limit`.
    fn read(input: &[u8], cuts: &[usize], limit: usize) -> (Vec<u8>, bool, Vec<u8>, bool) {
        let mut reader = DataReader::new(limit);
        let mut text = Vec::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain([input.len()]) {
            let mut bytes = input[start..end.max(start)].iter();
            if reader.read(&mut bytes, &mut text) {
                let rest = [bytes.as_slice(), &input[end.max(start)..]].concat();
                return (text, true, rest, reader.is_over());
            }
            start = end.max(start);
        }
        (text, false, Vec::new(), reader.is_over())
    }

    #[test]
    fn the_text_ends_at_the_first_dot_line_and_loses_its_stuffing() {
        let (text, done, rest, over) = read(b"a\r\n..b\r\n.c\r\n.\r\nQUIT\r\n", &[], 100);
        assert_eq!(text, b"a\r\n.b\r\nc\r\n");
        assert!(done && !over);
        assert_eq!(rest, b"QUIT\r\n");
        let (text, done, rest, _) = read(b".\r\nNOOP\r\n", &[], 100);
        assert!(done && text.is_empty());
        assert_eq!(rest, b"NOOP\r\n");
    }

    /// Not `.\r\r\n` (where smtp-proto's receiver stopped), nor a `.`
    /// line with a bare LF or CR, nor one with a space.
    #[test]
    fn only_crlf_dot_crlf_ends_the_text() {
        for input in [
            &b"a\r\n.\r\r\nMAIL FROM:<x@y>\r\n.\r\n"[..],
            b"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n",
            b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n",
            b"a\r\n. \r\nMAIL FROM:<x@y>\r\n.\r\n",
        ] {
            let (text, done, rest, _) = read(input, &[], 100);
            assert!(done, "{input:?}");
            assert!(rest.is_empty(), "ended early: {input:?}");
            assert!(text.ends_with(b"MAIL FROM:<x@y>\r\n"), "{input:?}");
        }
        let (text, _, _, _) = read(b"a\r\n.\r\r\n.\r\n", &[], 100);
        assert_eq!(text, b"a\r\n\r\r\n");
    }

    #[test]
    fn any_split_gives_the_same_text() {
        let input = b"From: a@b\r\n\r\n..x\r\n.\r\r\n\r\n.y\n.\r.\r\n.\r\nNOOP\r\n";
        let whole = read(input, &[], 100);
        for first in 0..input.len() {
            for second in first..input.len() {
                assert_eq!(
                    read(input, &[first, second], 100),
                    whole,
                    "{first} {second}"
                );
            }
        }
    }

    /// The CR of the end line is not text, wherever a read ends.
    #[test]
    fn the_limit_counts_the_text_only() {
        let input = b"12345678\r\n.\r\n";
        for cut in 0..input.len() {
            let (text, done, _, over) = read(input, &[cut], 10);
            assert!(done && !over, "{cut}");
            assert_eq!(text, b"12345678\r\n");
            let (text, done, _, over) = read(input, &[cut], 9);
            assert!(done && over, "{cut}");
            assert_eq!(text, b"12345678\r");
        }
    }
}
