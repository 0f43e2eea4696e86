//! Reading the start of a message, with or without waiting for the disk.
//!
//! RETR and TOP begin by reading the first piece of the message file; most
//! messages fit in it whole. The gateway serves many sessions on a few
//! async threads, where a read that waits for the disk would stall every
//! other session, so it normally sends file work to a blocking thread. That
//! hop costs two thread wake-ups per command, more than the read itself
//! when the message is in memory, and a message a client fetches usually is:
//! it was delivered or listed moments ago.
//!
//! So there are two ways to read the start:
//!
//! - [`read_start_nowait`] asks the kernel for the data only if it is in
//!   the page cache (`preadv2` with `RWF_NOWAIT`, Linux 4.14), and returns
//!   `None` as soon as it would have to wait. It is safe on an async thread.
//! - [`read_start`] reads the same piece and may block; it belongs on a
//!   blocking thread.
//!
//! Both read from the file's current position and leave it after the piece,
//! so the rest of a large message can be read on from there, and both size
//! their buffer from the file's length: a 4 KiB message costs a 4 KiB buffer.
//! The caller passes that length in: the open already asked the kernel for
//! it ([`Mailbox::open_message`](crate::Mailbox::open_message)), and asking
//! again was one system call in twelve of a drained message.
//!
//! The rest of a large message is read the same way, a piece at a time:
//! [`read_nowait`] into the caller's buffer while the pages are cached (a
//! 25 MB message is hundreds of pieces, and a trip to a blocking thread for
//! each was a fifth of RETR's CPU), an ordinary blocking read of the piece
//! otherwise.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let file = std::fs::File::open("/var/vmail/ann/Maildir/cur/1700000000.M1P1.host:2,")?;
//! let len = file.metadata()?.len();
//! let start = match popgate_store::read::read_start_nowait(&file, len, 128 * 1024)? {
//!     Some(start) => start,
//!     // Not in memory: read it where blocking is allowed.
//!     None => popgate_store::read::read_start(&file, len, 128 * 1024)?,
//! };
//! assert!(start.bytes.len() <= 128 * 1024);
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::{self, IoSliceMut, Read};

use rustix::io::{preadv2, Errno, ReadWriteFlags};

/// The first piece of a message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The octets read, from the start of the file.
    pub bytes: Vec<u8>,
    /// `true` when `bytes` is the whole file (the read reached its end).
    pub whole: bool,
}

/// Reads up to `limit` octets from `file`, whose length is `len`, waiting
/// for the disk if needed.
pub fn read_start(mut file: &File, len: u64, limit: usize) -> io::Result<Start> {
    let (len, fits) = start_len(len, limit);
    let mut buffer = vec![0u8; len];
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => return Ok(finished(buffer, filled, true)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(finished(buffer, filled, fits))
}

/// Reads up to `limit` octets from `file` only while they are in the page
/// cache: `Ok(None)` as soon as the kernel would have to wait for the disk
/// (or the file system cannot tell). Then the position is wherever the
/// partial read left it, so the caller must not read on from there: it
/// calls [`read_start`] on a fresh open of the file, or after seeking
/// back to the start.
pub fn read_start_nowait(file: &File, len: u64, limit: usize) -> io::Result<Option<Start>> {
    let (len, fits) = start_len(len, limit);
    let mut buffer = vec![0u8; len];
    let mut filled = 0;
    while filled < buffer.len() {
        let mut slices = [IoSliceMut::new(&mut buffer[filled..])];
        // `u64::MAX`: read at, and advance, the file's own position.
        match preadv2(file, &mut slices, u64::MAX, ReadWriteFlags::NOWAIT) {
            Ok(0) => return Ok(Some(finished(buffer, filled, true))),
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => return Ok(None),
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(Some(finished(buffer, filled, fits)))
}

/// Reads the next piece of `file`, from its current position, into
/// `buffer`, only while it is in the page cache: `Ok(Some(n))` for `n`
/// octets read (`0` at the end of the file; fewer than asked when only the
/// start of the piece is cached), `Ok(None)` when the kernel would have to
/// wait for the disk (or the file system cannot tell), with nothing read
/// and the position unchanged: the caller then reads the piece where
/// blocking is allowed.
pub fn read_nowait(file: &File, buffer: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        let mut slices = [IoSliceMut::new(buffer)];
        // `u64::MAX`: read at, and advance, the file's own position.
        match preadv2(file, &mut slices, u64::MAX, ReadWriteFlags::NOWAIT) {
            Ok(n) => return Ok(Some(n)),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => return Ok(None),
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// How much of a file of `len` octets to read first, and whether that is
/// all of it: `len` when it is at most `limit`, and then reading that much
/// is reading it whole, with no further read to meet its end (a Maildir
/// message file is never changed in place; one cut short meanwhile ends
/// the read early all the same). Else `limit`.
fn start_len(len: u64, limit: usize) -> (usize, bool) {
    match usize::try_from(len) {
        Ok(len) if len <= limit => (len, true),
        _ => (limit, false),
    }
}

fn finished(mut buffer: Vec<u8>, filled: usize, whole: bool) -> Start {
    buffer.truncate(filled);
    Start {
        bytes: buffer,
        whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    /// A file holding `content`, open for reading, with its length.
    fn file_with(content: &[u8]) -> io::Result<(tempfile::TempDir, File, u64)> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("m");
        std::fs::write(&path, content)?;
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        Ok((dir, file, len))
    }

    /// The start of `file`, read without waiting (`nowait`: it must be in
    /// the page cache) or read the way that may wait.
    fn start_of(file: &File, len: u64, limit: usize, nowait: bool) -> io::Result<Start> {
        match nowait {
            true => {
                read_start_nowait(file, len, limit)?.ok_or_else(|| io::Error::other("not cached"))
            }
            false => read_start(file, len, limit),
        }
    }

    #[test]
    fn a_small_file_is_read_whole_both_ways() -> io::Result<()> {
        let content = b"Subject: hi\n\nbody\n";
        let (_dir, file, len) = file_with(content)?;
        let start = read_start_nowait(&file, len, 1024)?;
        assert_eq!(
            start,
            Some(Start {
                bytes: content.to_vec(),
                whole: true
            })
        );
        let (_dir, file, len) = file_with(content)?;
        assert_eq!(
            read_start(&file, len, 1024)?,
            Start {
                bytes: content.to_vec(),
                whole: true
            }
        );
        Ok(())
    }

    #[test]
    fn a_file_of_exactly_the_limit_is_read_whole() -> io::Result<()> {
        let content = vec![b'x'; 4096];
        for nowait in [true, false] {
            let (_dir, file, len) = file_with(&content)?;
            let start = start_of(&file, len, 4096, nowait)?;
            assert!(start.whole && start.bytes == content);
        }
        Ok(())
    }

    #[test]
    fn a_large_file_stops_at_the_limit_and_reading_goes_on_from_there() -> io::Result<()> {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for nowait in [true, false] {
            let (_dir, mut file, len) = file_with(&content)?;
            let start = start_of(&file, len, 4096, nowait)?;
            assert_eq!(start.bytes, content[..4096]);
            assert!(!start.whole);
            let mut rest = Vec::new();
            file.read_to_end(&mut rest)?;
            assert_eq!(rest, content[4096..]);
        }
        Ok(())
    }

    /// The rest of a message, read a piece at a time without waiting,
    /// is every octet after the start, in order, and then the end.
    #[test]
    fn the_rest_is_read_in_pieces_to_the_end() -> io::Result<()> {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let (_dir, file, len) = file_with(&content)?;
        let mut read = start_of(&file, len, 4096, true)?.bytes;
        let mut piece = vec![0u8; 65536];
        loop {
            match read_nowait(&file, &mut piece)? {
                Some(0) => break,
                Some(n) => read.extend_from_slice(&piece[..n]),
                None => return Err(io::Error::other("not cached")),
            }
        }
        assert_eq!(read, content);
        Ok(())
    }

    /// The length the open found is trusted, both ways: a file cut short
    /// after the open ends its start early, with what is there; one grown
    /// after it (no Maildir file should change at all) is read to that
    /// length, the message as it was opened. Whole either way.
    #[test]
    fn a_file_changed_after_the_open_is_read_to_what_the_open_found() -> io::Result<()> {
        type Change = fn(&File) -> io::Result<()>;
        let content = vec![b'y'; 4096];
        let cut: Change = |file| file.set_len(100);
        let grow: Change = |mut file| file.write_all(b"appended later");
        for (change, expected) in [(cut, &content[..100]), (grow, &content[..])] {
            for nowait in [true, false] {
                let (dir, file, len) = file_with(&content)?;
                let writer = std::fs::OpenOptions::new()
                    .append(true)
                    .open(dir.path().join("m"))?;
                change(&writer)?;
                let start = start_of(&file, len, 8192, nowait)?;
                assert_eq!(start.bytes, expected);
                assert!(start.whole);
            }
        }
        Ok(())
    }

    #[test]
    fn a_file_exactly_at_the_limit_is_whole() -> io::Result<()> {
        let (_dir, file, len) = file_with(&[b'x'; 4096])?;
        let start = read_start(&file, len, 4097)?;
        assert!(start.whole);
        assert_eq!(start.bytes.len(), 4096);
        Ok(())
    }

    #[test]
    fn an_empty_file_is_whole_and_empty() -> io::Result<()> {
        let (_dir, file, len) = file_with(b"")?;
        let start = read_start_nowait(&file, len, 4096)?;
        assert_eq!(
            start,
            Some(Start {
                bytes: Vec::new(),
                whole: true
            })
        );
        Ok(())
    }

    /// A file whose pages were dropped from the page cache is not read
    /// without waiting; the blocking read still gets every octet.
    #[test]
    fn pages_not_in_memory_are_left_to_the_blocking_read() -> io::Result<()> {
        /// Disk file systems that drop clean pages on request and honour
        /// `RWF_NOWAIT`: ext2/3/4, XFS, Btrfs.
        const DISK_FILE_SYSTEMS: [u64; 3] = [0xEF53, 0x5846_5342, 0x9123_683E];
        let content = vec![b'a'; 256 * 1024];
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("m");
        let mut writer = File::create(&path)?;
        writer.write_all(&content)?;
        writer.sync_all()?;
        let mut file = File::open(&path)?;
        let len = file.metadata()?.len();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
        let on_disk = DISK_FILE_SYSTEMS.contains(&(rustix::fs::fstatfs(&file)?.f_type as u64));
        match read_start_nowait(&file, len, 512 * 1024)? {
            None => {}
            // tmpfs, overlays and the like may keep or refetch the pages.
            Some(start) if !on_disk => assert_eq!(start.bytes, content),
            Some(_) => panic!("pages dropped from the cache were read without waiting"),
        }
        file.seek(SeekFrom::Start(0))?;
        let mut piece = vec![0u8; 512 * 1024];
        match read_nowait(&file, &mut piece)? {
            None => assert_eq!(file.stream_position()?, 0, "a refused read moved on"),
            // The first refusal may have started the disk's readahead.
            Some(n) => assert_eq!(piece[..n], content[..n]),
        }
        file.seek(SeekFrom::Start(0))?;
        let start = read_start(&file, len, 512 * 1024)?;
        assert_eq!(start.bytes, content);
        assert!(start.whole);
        Ok(())
    }
}
