//! Bounded line framing for text protocols.
//!
//! Bytes read from the client go into a [`LineBuffer`]; complete lines are
//! taken out one at a time, so pipelined commands are answered in order and
//! nothing buffered is ever dropped by accident. A line ends at LF (a CR
//! before it is removed); bare-LF clients are accepted, as popa3d does.
//! The buffer never grows past its limit: a client that sends that much
//! without a line ending has its connection closed.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The most a client may send without a line ending.
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
    /// An empty buffer that holds at most `limit` octets of one line.
    pub fn new(limit: usize) -> Self {
        LineBuffer {
            data: Vec::with_capacity(1024),
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

    /// True when input is waiting that is not yet a complete line.
    pub fn has_pending(&self) -> bool {
        self.start < self.data.len()
    }

    /// Forgets everything buffered: what a client pipelined behind STLS or
    /// STARTTLS must never be answered (RFC 2595 §4, RFC 3207 §4.2).
    pub fn discard(&mut self) {
        self.data.clear();
        self.start = 0;
    }

    /// Reads what the client has sent; `Ok(0)` is the end of the stream.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> std::io::Result<usize> {
        if self.start > 0 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        let room = (self.limit + 2)
            .saturating_sub(self.data.len())
            .clamp(1, 4096);
        let old_len = self.data.len();
        self.data.resize(old_len + room, 0);
        let read = reader.read(&mut self.data[old_len..]).await;
        let n = *read.as_ref().unwrap_or(&0);
        self.data.truncate(old_len + n);
        read
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
        assert!(!buffer.has_pending());
    }
}
