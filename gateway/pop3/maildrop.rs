//! What a POP3 session reads: a mailbox snapshot that lists its messages.
//!
//! The pure [`Session`](super::session::Session) is generic over
//! [`Maildrop`], so that it can be driven without a Maildir: a real session
//! reads a [`popgate_store::Mailbox`], tests, fuzzing and benchmarks a
//! `Vec` of [`MessageInfo`].

/// What the session is reading: a mailbox snapshot that lists its messages.
/// Index 0 is message number 1.
pub trait Maildrop {
    /// How many messages the snapshot holds.
    fn count(&self) -> usize;
    /// The size LIST and STAT report for message `index`; `None` past the
    /// end.
    fn size(&self, index: usize) -> Option<u64>;
    /// The UIDL of message `index` (printable ASCII); `None` past the end.
    fn uidl(&self, index: usize) -> Option<&[u8]>;
}

impl Maildrop for popgate_store::Mailbox {
    fn count(&self) -> usize {
        self.len()
    }
    fn size(&self, index: usize) -> Option<u64> {
        popgate_store::Mailbox::size(self, index)
    }
    fn uidl(&self, index: usize) -> Option<&[u8]> {
        popgate_store::Mailbox::uidl(self, index)
    }
}

impl<M: Maildrop> Maildrop for std::sync::Arc<M> {
    fn count(&self) -> usize {
        M::count(self.as_ref())
    }
    fn size(&self, index: usize) -> Option<u64> {
        M::size(self.as_ref(), index)
    }
    fn uidl(&self, index: usize) -> Option<&[u8]> {
        M::uidl(self.as_ref(), index)
    }
}

/// One message of a maildrop kept in a `Vec` (tests, fuzzing, benchmarks;
/// a real session reads a [`popgate_store::Mailbox`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Its UIDL.
    pub uidl: String,
    /// Its size as LIST reports it.
    pub size: u64,
}

impl Maildrop for Vec<MessageInfo> {
    fn count(&self) -> usize {
        self.len()
    }
    fn size(&self, index: usize) -> Option<u64> {
        self.get(index).map(|message| message.size)
    }
    fn uidl(&self, index: usize) -> Option<&[u8]> {
        self.get(index).map(|message| message.uidl.as_bytes())
    }
}
