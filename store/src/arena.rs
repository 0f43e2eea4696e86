//! One buffer for the names of a snapshot.
//!
//! A big Maildir holds 100,000 message files or more, and a session keeps
//! the name of each for its whole life (to open it for RETR, to rename or
//! remove it at UPDATE) and its UIDL (for UIDL). A `String` per name costs
//! a heap allocation of its own plus a 24-byte header; here every name is
//! appended to one growing buffer instead, and a message keeps only where
//! its bytes start and how many there are (a [`Span`]):
//!
//! ```text
//! bytes  1700000000.M1P2.host:2,S1700000007.M3P2.host:2,000000016553f100
//!        └────── file name 1 ─────┘└──── file name 2 ─────┘└─ a UIDL ───┘
//!        └─ UIDL 1 ──────┘
//! ```
//!
//! A UIDL that is the unique name of its file (the usual case, see
//! [`uidl`](crate::uidl)) is the first part of the file name's span and
//! costs nothing more; an imported or hashed UIDL is appended like a name.
//! Offsets are 32-bit, so one arena holds up to 4 GiB of names: some
//! 40 million messages.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Where some bytes are in an [`Arena`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Offset of the first byte.
    pub(crate) start: u32,
    /// How many bytes.
    pub(crate) len: u16,
}

impl Span {
    /// The first `len` bytes of this span (all of it when `len` is longer).
    pub(crate) fn prefix(self, len: usize) -> Span {
        Span {
            start: self.start,
            len: u16::try_from(len).unwrap_or(u16::MAX).min(self.len),
        }
    }
}

/// The arena is full: more than 4 GiB of names, or one over 64 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// Names appended one after the other; see the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Arena {
    bytes: Vec<u8>,
}

impl Arena {
    /// Appends `bytes` and returns where they are.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Span, Full> {
        let start = u32::try_from(self.bytes.len()).map_err(|_| Full)?;
        let len = u16::try_from(bytes.len()).map_err(|_| Full)?;
        start.checked_add(u32::from(len)).ok_or(Full)?;
        self.bytes.extend_from_slice(bytes);
        Ok(Span { start, len })
    }

    /// The bytes at `span` (empty for a span that is not from this arena).
    pub(crate) fn get(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.bytes
            .get(start..start + usize::from(span.len))
            .unwrap_or_default()
    }

    /// The bytes at `span` as a file name.
    pub(crate) fn os_str(&self, span: Span) -> &OsStr {
        OsStr::from_bytes(self.get(span))
    }

    /// How many octets the arena holds, room included.
    pub(crate) fn weight(&self) -> usize {
        self.bytes.capacity()
    }

    /// Gives back the room reserved for names that never came.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_find_what_was_pushed() -> Result<(), Full> {
        let mut arena = Arena::default();
        let a = arena.push(b"1.a.host:2,S")?;
        let empty = arena.push(b"")?;
        let b = arena.push(b"2.b.host")?;
        assert_eq!(arena.get(a), b"1.a.host:2,S");
        assert_eq!(arena.get(empty), b"");
        assert_eq!(arena.get(b), b"2.b.host");
        assert_eq!(arena.get(a.prefix(8)), b"1.a.host");
        assert_eq!(arena.get(a.prefix(99)), b"1.a.host:2,S");
        assert_eq!(arena.os_str(b), OsStr::new("2.b.host"));
        let elsewhere = Span { start: 15, len: 9 };
        assert_eq!(
            arena.get(elsewhere),
            b"",
            "a span past the end reads nothing"
        );
        Ok(())
    }

    #[test]
    fn a_name_over_64_kib_does_not_fit() {
        let mut arena = Arena::default();
        assert_eq!(arena.push(&vec![b'x'; 70_000]), Err(Full));
        assert_eq!(arena.push(b"a").map(|span| span.start), Ok(0));
    }
}
