//! Bounded input buffering and line framing for text protocols.
//!
//! Bytes read from the client go into a [`LineBuffer`] and are taken out in
//! order, so pipelined commands are answered in order and nothing buffered
//! is ever dropped by accident. It offers two views of the same bytes:
//!
//! - **lines** ([`LineBuffer::take_line`], POP3): a line ends at LF (a CR
//!   before it is removed); bare-LF clients are accepted, as popa3d does. A
//!   line longer than the buffer's limit is an error, and the client that
//!   sent it has its connection closed;
//! - **bytes** ([`LineBuffer::pending`] and [`LineBuffer::consume`],
//!   submission, whose session parses its own input): the driver hands
//!   over one line at a time ([`LineBuffer::line_end`]) while the session
//!   reads commands, so the protocol log sees each, and everything at once
//!   while it reads message text.
//!
//! The buffer starts empty and grows only as far as what is read needs:
//! [`LineBuffer::fill`] reads at most the size its caller asks for (small
//! before login), and never more than the limit can hold.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The most a POP3 client may send without a line ending.
pub const HARD_LINE_LIMIT: usize = 8 * 1024;

/// Unparsed input from one client.
#[derive(Debug)]
pub struct LineBuffer {
    data: Vec<u8>,
    start: usize,
    limit: usize,
}

/// The client sent more than the limit without a line ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line longer than {0} octets")]
pub struct LineTooLong(pub usize);

impl LineBuffer {
    /// An empty buffer that holds at most `limit` octets (and a CRLF) not
    /// yet taken out; it allocates nothing until the first read.
    pub fn new(limit: usize) -> Self {
        LineBuffer {
            data: Vec::new(),
            start: 0,
            limit,
        }
    }

    /// Moves the next complete line, without its line ending, into `line`.
    /// Returns `Ok(false)` when no complete line is buffered.
    pub fn take_line(&mut self, line: &mut Vec<u8>) -> Result<bool, LineTooLong> {
        let pending = &self.data[self.start..];
        match pending.iter().position(|&b| b == b'\n') {
            Some(end) if end > self.limit => Err(LineTooLong(self.limit)),
            Some(end) => {
                let text = &pending[..end];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                line.clear();
                line.extend_from_slice(text);
                self.start += end + 1;
                if self.start == self.data.len() {
                    self.data.clear();
                    self.start = 0;
                }
                Ok(true)
            }
            None if pending.len() > self.limit => Err(LineTooLong(self.limit)),
            None => Ok(false),
        }
    }

    /// The bytes read and not yet taken out.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// Takes the first `n` pending bytes out (as many as there are, at most).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.data.len());
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
    }

    /// How many pending bytes make the next line, its LF included, when
    /// lines are at most `limit` octets long: `Some(n)` for a complete line,
    /// and `Some(limit)` for the start of a longer one (whose reader then
    /// refuses it); `None` while what is pending may still become a line.
    pub fn line_end(&self, limit: usize) -> Option<usize> {
        let pending = self.pending();
        let window = &pending[..pending.len().min(limit)];
        match window.iter().position(|&b| b == b'\n') {
            Some(lf) => Some(lf + 1),
            None if pending.len() >= limit => Some(limit),
            None => None,
        }
    }

    /// Forgets everything buffered: what a client pipelined behind STLS or
    /// STARTTLS must never be answered (RFC 2595 §4, RFC 3207 §4.2).
    pub fn discard(&mut self) {
        self.data.clear();
        self.start = 0;
    }

    /// Reads what the client has sent, at most `max_read` octets and never
    /// more than the limit leaves room for (but at least one); `Ok(0)` is
    /// the end of the stream. Cancel-safe: dropped before it completes, it
    /// has read nothing.
    pub async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        max_read: usize,
    ) -> std::io::Result<usize> {
        if self.start > 0 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        let room = (self.limit + 2)
            .saturating_sub(self.data.len())
            .min(max_read)
            .max(1);
        self.data.reserve_exact(room);
        reader.take(room as u64).read_buf(&mut self.data).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, LineTooLong> {
        let mut buffer = LineBuffer::new(64);
        let mut lines = Vec::new();
        let mut line = Vec::new();
        for piece in input.chunks(chunk) {
            buffer.data.extend_from_slice(piece);
            while buffer.take_line(&mut line)? {
                lines.push(line.clone());
            }
        }
        Ok(lines)
    }

    #[test]
    fn lines_survive_every_split() {
        let input = b"USER a\r\nPASS b c\nSTAT\r\n\r\nQUIT\r\n";
        for chunk in 1..=input.len() {
            let lines = lines_of(input, chunk).unwrap();
            assert_eq!(
                lines,
                vec![&b"USER a"[..], b"PASS b c", b"STAT", b"", b"QUIT"],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_line_past_the_limit_is_an_error_even_before_its_end() {
        assert_eq!(lines_of(&[b'a'; 100], 100), Err(LineTooLong(64)));
        let mut long = vec![b'a'; 70];
        long.push(b'\n');
        assert_eq!(lines_of(&long, 71), Err(LineTooLong(64)));
    }

    #[test]
    fn discard_forgets_pipelined_input() {
        let mut buffer = LineBuffer::new(64);
        buffer.data.extend_from_slice(b"STLS\r\nCAPA\r\n");
        let mut line = Vec::new();
        assert!(buffer.take_line(&mut line).unwrap());
        buffer.discard();
        assert!(!buffer.take_line(&mut line).unwrap());
        assert!(buffer.pending().is_empty());
    }

    #[test]
    fn the_byte_view_hands_out_lines_up_to_a_limit() {
        let mut buffer = LineBuffer::new(64);
        buffer.data.extend_from_slice(b"EHLO a\r\nDATA\r\nmore");
        assert_eq!(buffer.line_end(64), Some(8));
        buffer.consume(8);
        assert_eq!(buffer.pending(), b"DATA\r\nmore");
        assert_eq!(buffer.line_end(64), Some(6));
        buffer.consume(6);
        // "more" may still become a line; past the limit it never will.
        assert_eq!(buffer.line_end(64), None);
        assert_eq!(buffer.line_end(4), Some(4));
        assert_eq!(buffer.line_end(3), Some(3));
        // A line of exactly the limit, LF included, is a line.
        buffer.data.extend_from_slice(b"\n");
        assert_eq!(buffer.line_end(5), Some(5));
        buffer.consume(100);
        assert!(buffer.pending().is_empty());
        assert_eq!(buffer.line_end(64), None);
    }

    #[tokio::test]
    async fn fill_reads_at_most_what_is_asked_and_the_limit_allows() {
        let mut buffer = LineBuffer::new(10);
        let mut input: &[u8] = &[b'x'; 100];
        assert_eq!(buffer.fill(&mut input, 4).await.unwrap(), 4);
        assert_eq!(buffer.fill(&mut input, 100).await.unwrap(), 8);
        assert_eq!(buffer.pending().len(), 12);
        // A full buffer still reads one octet, so a line past the limit
        // is seen as such.
        assert_eq!(buffer.fill(&mut input, 100).await.unwrap(), 1);
        buffer.consume(13);
        let mut empty: &[u8] = &[];
        assert_eq!(buffer.fill(&mut empty, 4).await.unwrap(), 0);
    }
}
