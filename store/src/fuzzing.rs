//! The store's private parsers, opened to the fuzz targets in `fuzz/`.
//!
//! Compiled only with the `fuzzing` feature, which only the fuzz crate
//! turns on, and hidden from the documentation: nothing here is part of
//! the store's API, and any of it may change with the parsers it wraps.
//! Each item is a thin wrapper that keeps the parser's own types private.
//!
//! | fuzz target | what it reaches here |
//! | --- | --- |
//! | `maildir_name` | [`name`]: unique name, delivery time, `,W=`, the `cur/` name, the seen flag |
//! | `dovecot_uidlist`, `courier_sizelist` | [`migration_list_len`], next to the public [`Imported`](crate::migrate::Imported) |
//! | `size_cache` | [`size_cache_read`] and [`size_cache_text`], the cache file's reader and writer without the file |

use crate::size_cache::{self, Sizable, Sizes};

/// Maildir file names (see the store's `name` module).
pub mod name {
    /// The unique name: the file name before its first `:`.
    pub fn unique_name(file_name: &[u8]) -> &[u8] {
        crate::name::unique_name(file_name)
    }

    /// The delivery time: the leading digits (0 without, `u64::MAX` on
    /// overflow).
    pub fn delivery_seconds(file_name: &[u8]) -> u64 {
        crate::name::delivery_seconds(file_name)
    }

    /// The wire size from the first valid `,W=<digits>` field.
    pub fn wire_size_hint(unique: &[u8]) -> Option<u64> {
        crate::name::wire_size_hint(unique)
    }

    /// The name a file from `new/` gets in `cur/`.
    pub fn cur_name(file_name: &[u8]) -> Vec<u8> {
        crate::name::cur_name(file_name)
    }

    /// The file name with the seen flag added, `None` when unchanged.
    pub fn with_seen_flag(file_name: &[u8]) -> Option<Vec<u8>> {
        crate::name::with_seen_flag(file_name)
    }

    /// A non-empty run of ASCII digits as a number, `None` otherwise.
    pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
        crate::name::parse_decimal(digits)
    }
}

/// Which migration list [`migration_list_len`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationList {
    /// Dovecot's `dovecot-uidlist`.
    Dovecot,
    /// Courier's `courierpop3dsizelist`.
    Courier,
}

/// How many messages (distinct unique names) the list in `bytes` knows.
pub fn migration_list_len(list: MigrationList, bytes: &[u8]) -> usize {
    match list {
        MigrationList::Dovecot => crate::migrate::List::dovecot(bytes).len(),
        MigrationList::Courier => crate::migrate::List::courier(bytes).len(),
    }
}

/// A file of a snapshot, as the size cache reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Its unique name.
    pub unique: Vec<u8>,
    /// Its size came from its name or an imported list: it declines the
    /// cache's sizes.
    pub sized_elsewhere: bool,
    /// The sizes (on disk, on the wire) the cache gave it.
    pub sizes: Option<(u64, u64)>,
}

/// The listing handed to the reader.
struct Listed<'a>(&'a mut [ListedFile]);

impl Sizable for Listed<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn unique(&self, index: usize) -> &[u8] {
        self.0.get(index).map_or(&[], |file| &file.unique)
    }
    fn take_sizes(&mut self, index: usize, sizes: Sizes) -> bool {
        match self.0.get_mut(index) {
            Some(file) if !file.sized_elsewhere => {
                file.sizes = Some((sizes.raw, sizes.wire));
                true
            }
            _ => false,
        }
    }
}

/// Reads a size cache file's text for `files` (in listing order):
/// `Some(rewrite)` as the store's reader returns it, `None` when the file
/// counts as corrupt.
pub fn size_cache_read(text: &[u8], files: &mut [ListedFile]) -> Option<bool> {
    size_cache::read_text(text, &mut Listed(files)).ok()
}

/// The text the store writes for `entries` (unique name, size on disk,
/// wire size).
pub fn size_cache_text(entries: &[(&[u8], u64, u64)]) -> Vec<u8> {
    let mut text = Vec::new();
    let entries = entries
        .iter()
        .map(|&(unique, raw, wire)| (unique, Sizes { raw, wire }));
    // Writing to a Vec cannot fail.
    let _ = size_cache::write_text(&mut text, entries);
    text
}
