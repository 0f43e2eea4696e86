//! Migration: serve the UIDLs another POP3 server already gave out.
//!
//! A client that leaves mail on the server remembers every message by its
//! UIDL; if the UIDLs change when the server does, it downloads the whole
//! mailbox again. Dovecot and Courier keep the UIDLs they serve in a file in
//! the Maildir, so popgate reads those files at login and serves the same
//! UIDLs for the messages they list:
//!
//! | file | reader | UIDL served |
//! | --- | --- | --- |
//! | `dovecot-uidlist` | [`dovecot`] | the saved `P` field, else Dovecot's default `%08Xu%08Xv` |
//! | `courierpop3dsizelist` | [`courier`] | `UID<uid>-<uidvalidity>` |
//!
//! Both files are keyed here by the message's unique name (the file name
//! before `:`), so a message renamed since (new/ to cur/, a flag added) is
//! still found. A message neither file knows gets popgate's own UIDL (see
//! [`uidl`](crate::uidl)); when both files know it, Dovecot's wins.
//!
//! ```
//! use popgate_store::migrate::Imported;
//!
//! let dovecot = b"3 V1700000000 N3 G0123\n1 W812 :1.a.host:2,S\n2 P0042 :2.b.host\n";
//! let imported = Imported::parse(Some(dovecot), None);
//! assert_eq!(imported.uidl(b"1.a.host").as_deref(), Some("000000016553f100"));
//! assert_eq!(imported.uidl(b"2.b.host").as_deref(), Some("0042"));
//! assert_eq!(imported.wire_size(b"1.a.host"), Some(812));
//! assert_eq!(imported.uidl(b"3.c.host"), None);
//! ```
//!
//! The files are read once per login (they hold one line per message),
//! through the same bounded reader as the size cache, and never written:
//! after the switch they only shrink in meaning as messages are deleted.
//! A file that is missing, unreadable or not in a known format is ignored.

pub mod courier;
pub mod dovecot;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;

use hashbrown::hash_table::{self, HashTable};

use crate::size_cache::read_bounded;

/// What was imported for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    /// A UIDL to serve as it is.
    Literal(&'a [u8]),
    /// Dovecot's default format: the UID, then the UIDVALIDITY, each as at
    /// least eight lowercase hex digits.
    UidValidity {
        /// The message's UID.
        uid: u32,
        /// The mailbox's UIDVALIDITY.
        validity: u32,
    },
    /// Courier's `UID<uid>-<uidvalidity>` (or `UID<uid>` when the
    /// UIDVALIDITY is 0).
    Courier {
        /// The message's UID.
        uid: u64,
        /// The UIDVALIDITY the list was written with.
        validity: u64,
    },
    /// Courier's oldest form: the unique name, escaped.
    CourierName(&'a [u8]),
}

impl Entry<'_> {
    /// The UIDL text, or `None` when it would not be a valid RFC 1939 UIDL
    /// (then popgate's own rule applies).
    fn render(&self) -> Option<String> {
        let text = match *self {
            Entry::Literal(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Entry::UidValidity { uid, validity } => format!("{uid:08x}{validity:08x}"),
            Entry::Courier { uid, validity: 0 } => format!("UID{uid}"),
            Entry::Courier { uid, validity } => format!("UID{uid}-{validity}"),
            Entry::CourierName(unique) => courier::escaped_name(unique),
        };
        crate::uidl::is_valid(text.as_bytes()).then_some(text)
    }
}

/// One message in an imported list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// Its UIDL.
    pub(crate) uidl: Entry<'a>,
    /// Its wire (CRLF) size, when the list recorded one.
    pub(crate) wire_size: Option<u64>,
}

/// The raw bytes of the migration files of one Maildir, read at login.
#[derive(Debug, Default)]
pub struct Files {
    dovecot: Option<Vec<u8>>,
    courier: Option<Vec<u8>>,
}

impl Files {
    /// Reads `dovecot-uidlist` and `courierpop3dsizelist` from the Maildir
    /// at `root`, when present (bounded like the size cache).
    pub fn read(root: &Path) -> Files {
        Files {
            dovecot: read_bounded(&root.join(dovecot::FILE)),
            courier: read_bounded(&root.join(courier::FILE)),
        }
    }

    /// How many bytes were read, both files together.
    pub fn len(&self) -> usize {
        [&self.dovecot, &self.courier]
            .into_iter()
            .flatten()
            .map(Vec::len)
            .sum()
    }

    /// `true` when neither file was there (or both were empty).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parses what was read.
    pub fn parse(&self) -> Imported<'_> {
        Imported::parse(self.dovecot.as_deref(), self.courier.as_deref())
    }
}

/// One migration list, indexed by unique name without copying it.
///
/// The index holds where each line starts (4 bytes a line), hashed by the
/// line's unique name; a lookup parses again the line it lands on. For a
/// 100,000-message list that is well under a megabyte next to the file's
/// bytes, where a map of parsed records took seven.
#[derive(Debug, Default)]
pub(crate) struct List<'a> {
    /// The lines after the header.
    body: &'a [u8],
    format: Format,
    /// Line starts in `body`, by unique name (the last line of a name).
    lines: HashTable<u32>,
    hasher: RandomState,
}

/// Which server wrote a list, and what its header said.
#[derive(Debug, Clone, Copy, Default)]
enum Format {
    /// Courier's `courierpop3dsizelist`.
    #[default]
    Courier,
    /// Dovecot's `dovecot-uidlist`, with the mailbox's UIDVALIDITY.
    Dovecot { validity: u32 },
}

impl Format {
    /// Parses the line starting at `at` in `body`.
    fn parse_at(self, body: &[u8], at: u32) -> Option<(&[u8], Record<'_>)> {
        let rest = body.get(at as usize..)?;
        let line = rest
            .get(..memchr::memchr(b'\n', rest).unwrap_or(rest.len()))
            .unwrap_or_default();
        match self {
            Format::Courier => courier::parse_line(line),
            Format::Dovecot { validity } => dovecot::parse_line(line, validity),
        }
    }
}

impl<'a> List<'a> {
    /// Indexes a `dovecot-uidlist` (empty when its header is not one this
    /// reader knows).
    pub(crate) fn dovecot(bytes: &'a [u8]) -> List<'a> {
        match dovecot::header(bytes) {
            Some((validity, body)) => List::index(body, Format::Dovecot { validity }),
            None => List::default(),
        }
    }

    /// Indexes a `courierpop3dsizelist` (empty when its header is not one
    /// this reader knows).
    pub(crate) fn courier(bytes: &'a [u8]) -> List<'a> {
        match courier::header(bytes) {
            Some(body) => List::index(body, Format::Courier),
            None => List::default(),
        }
    }

    /// Indexes the lines of `body`; malformed lines are skipped, and a
    /// later line for the same unique name wins.
    fn index(body: &'a [u8], format: Format) -> List<'a> {
        let hasher = RandomState::new();
        let mut lines = HashTable::with_capacity(memchr::memchr_iter(b'\n', body).count() + 1);
        let unique_at = |at: &u32| format.parse_at(body, *at).map(|(unique, _)| unique);
        let mut start = 0usize;
        for line in body.split(|&b| b == b'\n') {
            let at = u32::try_from(start).unwrap_or(u32::MAX);
            start += line.len() + 1;
            let Some((unique, _)) = format.parse_at(body, at) else {
                continue;
            };
            match lines.entry(
                hasher.hash_one(unique),
                |other| unique_at(other) == Some(unique),
                |other| hasher.hash_one(unique_at(other).unwrap_or_default()),
            ) {
                hash_table::Entry::Occupied(mut occupied) => *occupied.get_mut() = at,
                hash_table::Entry::Vacant(vacant) => {
                    vacant.insert(at);
                }
            }
        }
        List {
            body,
            format,
            lines,
            hasher,
        }
    }

    /// What the list says about the message with this unique name.
    pub(crate) fn get(&self, unique: &[u8]) -> Option<Record<'a>> {
        if self.lines.is_empty() {
            return None;
        }
        let (body, format) = (self.body, self.format);
        let mut found = None;
        self.lines.find(self.hasher.hash_one(unique), |&at| {
            match format.parse_at(body, at) {
                Some((name, record)) if name == unique => {
                    found = Some(record);
                    true
                }
                _ => false,
            }
        })?;
        found
    }

    /// How many messages the list knows.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }
}

/// The UIDLs (and sizes) imported for one login, by unique name.
#[derive(Debug, Default)]
pub struct Imported<'a> {
    dovecot: List<'a>,
    courier: List<'a>,
}

/// What the imported lists say about one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Found {
    /// The UIDL to serve (see [`Imported::uidl`]).
    pub(crate) uidl: Option<String>,
    /// Its wire size (see [`Imported::wire_size`]).
    pub(crate) wire_size: Option<u64>,
}

impl<'a> Imported<'a> {
    /// Parses the contents of a `dovecot-uidlist` and a
    /// `courierpop3dsizelist` (either may be absent).
    pub fn parse(dovecot: Option<&'a [u8]>, courier: Option<&'a [u8]>) -> Imported<'a> {
        Imported {
            dovecot: dovecot.map(List::dovecot).unwrap_or_default(),
            courier: courier.map(List::courier).unwrap_or_default(),
        }
    }

    /// `true` when neither file listed anything.
    pub fn is_empty(&self) -> bool {
        self.dovecot.len() == 0 && self.courier.len() == 0
    }

    /// The UIDL and size of the message with this unique name, looking it
    /// up once in each list at most.
    pub(crate) fn find(&self, unique: &[u8]) -> Found {
        let dovecot = self.dovecot.get(unique);
        let dovecot_uidl = dovecot.and_then(|record| record.uidl.render());
        let courier = if dovecot.is_none() || dovecot_uidl.is_none() {
            self.courier.get(unique)
        } else {
            None
        };
        Found {
            wire_size: dovecot.or(courier).and_then(|record| record.wire_size),
            uidl: dovecot_uidl.or_else(|| courier.and_then(|record| record.uidl.render())),
        }
    }

    /// The UIDL the previous server served for the message with this
    /// unique name, if it knew the message and the UIDL is valid.
    pub fn uidl(&self, unique: &[u8]) -> Option<String> {
        self.find(unique).uidl
    }

    /// The wire size the previous server recorded (Dovecot's `W` field).
    pub fn wire_size(&self, unique: &[u8]) -> Option<u64> {
        self.find(unique).wire_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_wins_over_courier_and_unknown_falls_through() {
        let dovecot = b"3 V10 N2\n1 :1.a.host:2,S\n";
        let courier = b"/3 3 77\n1.a.host:2,S 5 1:77:0\n2.b.host 6 2:77:0\n";
        let imported = Imported::parse(Some(dovecot), Some(courier));
        assert_eq!(
            imported.uidl(b"1.a.host").as_deref(),
            Some("000000010000000a")
        );
        assert_eq!(imported.uidl(b"2.b.host").as_deref(), Some("UID2-77"));
        assert_eq!(imported.uidl(b"3.c.host"), None);
        assert!(!imported.is_empty());
        assert!(Imported::parse(None, None).is_empty());
    }

    #[test]
    fn files_count_the_bytes_read() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(Files::read(dir.path()).is_empty());
        std::fs::write(dir.path().join(dovecot::FILE), b"3 V1 N2\n")?;
        std::fs::write(dir.path().join(courier::FILE), b"/3 3 77\n")?;
        let files = Files::read(dir.path());
        assert_eq!(files.len(), 16);
        assert!(!files.is_empty());
        Ok(())
    }

    #[test]
    fn invalid_imported_uidls_are_not_served() {
        let long = format!("3 V1 N2\n1 P{} :1.a.host\n", "x".repeat(71));
        let imported = Imported::parse(Some(long.as_bytes()), None);
        assert_eq!(imported.uidl(b"1.a.host"), None);
    }

    #[test]
    fn courier_without_uidvalidity() {
        assert_eq!(
            Entry::Courier {
                uid: 5,
                validity: 0
            }
            .render()
            .as_deref(),
            Some("UID5")
        );
    }
}
