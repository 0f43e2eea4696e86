//! Mailbox behaviour on real Maildirs in temporary directories.

// Tests: every helper may unwrap, expect and panic, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use popgate_store::wire::Encoder;
use popgate_store::{Mailbox, OnDele, OpenOptions, Order, StoreError, LOCK_FILE, SIZE_CACHE_FILE};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A Maildir in a temporary directory.
struct Maildir {
    dir: tempfile::TempDir,
}

impl Maildir {
    fn new() -> std::io::Result<Maildir> {
        let dir = tempfile::tempdir()?;
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir(dir.path().join(sub))?;
        }
        Ok(Maildir { dir })
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn put(&self, sub: &str, name: &str, content: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.root().join(sub).join(name);
        fs::write(&path, content)?;
        Ok(path)
    }

    /// The sorted file names in a subdirectory.
    fn names(&self, sub: &str) -> std::io::Result<Vec<String>> {
        let mut names = fs::read_dir(self.root().join(sub))?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    fn cache(&self) -> std::io::Result<String> {
        fs::read_to_string(self.root().join(SIZE_CACHE_FILE))
    }

    fn write_cache(&self, text: &str) -> std::io::Result<()> {
        fs::write(self.root().join(SIZE_CACHE_FILE), text)
    }

    fn open(&self) -> Result<Mailbox, StoreError> {
        Mailbox::open(self.root(), &options(OnDele::Delete))
    }

    fn open_with(&self, on_dele: OnDele) -> Result<Mailbox, StoreError> {
        Mailbox::open(self.root(), &options(on_dele))
    }

    fn open_newest_first(&self) -> Result<Mailbox, StoreError> {
        let options = OpenOptions {
            order: Order::NewestFirst,
            ..options(OnDele::Delete)
        };
        Mailbox::open(self.root(), &options)
    }
}

fn options(on_dele: OnDele) -> OpenOptions {
    OpenOptions {
        lock: true,
        lock_wait: Duration::from_millis(200),
        order: Order::OldestFirst,
        on_dele,
        deadline: None,
        snapshots: None,
    }
}

fn uidls(mailbox: &Mailbox) -> Vec<&str> {
    (0..mailbox.len())
        .map(|index| {
            let uidl = mailbox.uidl(index).unwrap_or(b"(none)");
            std::str::from_utf8(uidl).unwrap_or("(not UTF-8)")
        })
        .collect()
}

fn sizes(mailbox: &Mailbox) -> Vec<u64> {
    (0..mailbox.len())
        .map(|index| mailbox.size(index).unwrap_or(u64::MAX))
        .collect()
}

/// Every message's UIDL and size, in message order.
fn listing(mailbox: &Mailbox) -> Vec<(String, u64)> {
    uidls(mailbox)
        .into_iter()
        .map(str::to_owned)
        .zip(sizes(mailbox))
        .collect()
}

/// RETR as the gateway does it: the file through the encoder.
fn retr(mailbox: &Mailbox, index: usize) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut file = mailbox.open_message(index)?.file;
    let mut encoder = Encoder::full();
    let mut buf = [0u8; 3];
    let mut out = Vec::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        encoder.encode(&buf[..n], &mut out);
    }
    encoder.finish(&mut out);
    Ok(out)
}

#[test]
fn open_moves_new_to_cur_and_orders_by_delivery() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("new", "1700000200.M2P1.host", b"two\n")?;
    maildir.put("new", "1700000100.M1P1.host", b"one\n")?;
    maildir.put("cur", "1700000300.M3P1.host:2,S", b"three\n")?;
    maildir.put("cur", "1700000100.M0P1.host:2,", b"zero\n")?;

    let mailbox = maildir.open()?;
    assert_eq!(
        uidls(&mailbox),
        [
            "1700000100.M0P1.host",
            "1700000100.M1P1.host",
            "1700000200.M2P1.host",
            "1700000300.M3P1.host"
        ]
    );
    assert_eq!(maildir.names("new")?, Vec::<String>::new());
    assert_eq!(
        maildir.names("cur")?,
        [
            "1700000100.M0P1.host:2,",
            "1700000100.M1P1.host:2,",
            "1700000200.M2P1.host:2,",
            "1700000300.M3P1.host:2,S"
        ]
    );
    assert_eq!(retr(&mailbox, 1)?, b"one\r\n.\r\n");
    drop(mailbox);

    let newest = maildir.open_newest_first()?;
    assert_eq!(
        uidls(&newest),
        [
            "1700000300.M3P1.host",
            "1700000200.M2P1.host",
            "1700000100.M1P1.host",
            "1700000100.M0P1.host"
        ]
    );
    assert_eq!(retr(&newest, 0)?, b"three\r\n.\r\n");
    Ok(())
}

#[test]
fn mail_delivered_during_the_session_waits_for_the_next_one() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("new", "1.a.host", b"a\n")?;
    let mailbox = maildir.open()?;
    maildir.put("new", "2.b.host", b"b\n")?;
    assert_eq!(uidls(&mailbox), ["1.a.host"]);
    drop(mailbox);
    assert_eq!(uidls(&maildir.open()?), ["1.a.host", "2.b.host"]);
    Ok(())
}

#[test]
fn uidls_are_unique_names_or_hashes() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1700000000.a b.host:2,S", b"x\n")?;
    maildir.put("cur", &format!("1700000001.{}:2,", "y".repeat(60)), b"x\n")?;
    maildir.put("cur", &format!("1700000002.{}:2,", "z".repeat(59)), b"x\n")?;
    maildir.put("cur", "1700000003.plain.host,S=2:2,RS", b"x\n")?;
    let mailbox = maildir.open()?;
    let seventy = format!("1700000002.{}", "z".repeat(59));
    assert_eq!(
        uidls(&mailbox),
        [
            // A space: hashed.
            "76a8922fca975b6d46af4cd986ac1d70",
            // 71 characters: hashed.
            "1c73f0ec9028f3bd3fa19832ff38ba87",
            // 70 characters: as it is.
            seventy.as_str(),
            "1700000003.plain.host,S=2",
        ]
    );
    Ok(())
}

#[test]
fn uidls_survive_flag_changes_and_new_to_cur() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("new", "1.stable.host", b"x\n")?;
    let first = uidls(&maildir.open_with(OnDele::MarkSeen)?)
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    let mailbox = maildir.open_with(OnDele::MarkSeen)?;
    assert!(mailbox.commit(&[0]).is_complete());
    assert_eq!(maildir.names("cur")?, ["1.stable.host:2,S"]);
    assert_eq!(uidls(&maildir.open()?), first);
    Ok(())
}

#[test]
fn sizes_from_w_field_cache_and_computation() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.w.host,S=4,W=1234:2,", b"a\nb\n")?;
    maildir.put("cur", "2.cached.host:2,", b"abc\n")?;
    maildir.put("cur", "3.computed.host:2,", b"a\nb\r\n.c")?;
    maildir.write_cache("popgate-sizes 1\n2.cached.host 4 999\n")?;

    let mailbox = maildir.open()?;
    assert_eq!(sizes(&mailbox), [1234, 999, 10]);
    assert_eq!(retr(&mailbox, 2)?, b"a\r\nb\r\n..c\r\n.\r\n");
    assert_eq!(
        maildir.cache()?,
        "popgate-sizes 1\n2.cached.host 4 999\n3.computed.host 7 10\n"
    );
    Ok(())
}

#[test]
fn size_equals_what_retr_sends_without_stuffing() -> TestResult {
    let maildir = Maildir::new()?;
    let content = b"From: a\n.\n..x\r\nbare\rcr\n\nno final newline";
    maildir.put("cur", "1.m.host:2,", content)?;
    let mailbox = maildir.open()?;
    let sent = retr(&mailbox, 0)?;
    assert_eq!(
        sent,
        b"From: a\r\n..\r\n...x\r\nbare\rcr\r\n\r\nno final newline\r\n.\r\n"
    );
    // Two stuffed dots and the 3-octet terminator are not counted.
    assert_eq!(
        mailbox.size(0).unwrap_or_default(),
        sent.len() as u64 - 2 - 3
    );
    assert_eq!(mailbox.size(0).unwrap_or_default(), 46);
    Ok(())
}

#[test]
fn empty_message_has_size_zero() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.empty.host:2,", b"")?;
    let mailbox = maildir.open()?;
    assert_eq!(sizes(&mailbox), [0]);
    assert_eq!(retr(&mailbox, 0)?, b".\r\n");
    Ok(())
}

#[test]
fn corrupt_or_truncated_cache_is_recomputed() -> TestResult {
    for bad in [
        "popgate-sizes 1\n1.a.host 2 999\n2.b.host 3 999",
        "popgate-sizes 1\n1.a.host 2 999\n2.b.host 3\n",
        "popgate-sizes 0\n1.a.host 2 999\n2.b.host 3 999\n",
        "popgate-sizes 1\n1.a.host 2 999\n2.b.host 3 999\n1.a.host 2 999\n",
        "",
    ] {
        let maildir = Maildir::new()?;
        maildir.put("cur", "1.a.host:2,", b"a\n")?;
        maildir.put("cur", "2.b.host:2,", b"bb\n")?;
        maildir.write_cache(bad)?;
        let mailbox = maildir.open()?;
        assert_eq!(sizes(&mailbox), [3, 4], "{bad:?}");
        assert_eq!(
            maildir.cache()?,
            "popgate-sizes 1\n1.a.host 2 3\n2.b.host 3 4\n",
            "{bad:?}"
        );
    }
    Ok(())
}

#[test]
fn stale_cache_entries_are_dropped() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"a\n")?;
    maildir.write_cache("popgate-sizes 1\n0.gone.host 5 6\n1.a.host 2 3\n")?;
    let mailbox = maildir.open()?;
    assert_eq!(sizes(&mailbox), [3]);
    assert_eq!(maildir.cache()?, "popgate-sizes 1\n1.a.host 2 3\n");
    Ok(())
}

#[test]
fn deleted_messages_leave_the_cache_at_the_next_open() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"a\n")?;
    maildir.put("cur", "2.b.host:2,", b"b\n")?;
    assert!(maildir.open()?.commit(&[0]).is_complete());
    drop(maildir.open()?);
    assert_eq!(maildir.cache()?, "popgate-sizes 1\n2.b.host 2 3\n");
    Ok(())
}

#[test]
fn warm_cache_reads_no_message() -> TestResult {
    let maildir = Maildir::new()?;
    let path = maildir.put("cur", "1.a.host:2,", b"a\n")?;
    drop(maildir.open()?);
    assert_eq!(maildir.cache()?, "popgate-sizes 1\n1.a.host 2 3\n");
    // Change the file behind the cache's back: a login that read it would
    // see the new size.
    fs::write(&path, b"longer now\n")?;
    let mailbox = maildir.open()?;
    assert_eq!(sizes(&mailbox), [3]);
    Ok(())
}

#[test]
fn retr_of_a_file_that_changed_size_drops_its_cache_entry() -> TestResult {
    let maildir = Maildir::new()?;
    let path = maildir.put("cur", "1.a.host:2,", b"a\n")?;
    maildir.put("cur", "2.b.host:2,", b"b\n")?;
    drop(maildir.open()?);
    fs::write(&path, b"longer now\n")?;
    let mailbox = maildir.open()?;
    assert_eq!(retr(&mailbox, 1)?, b"b\r\n.\r\n");
    assert_eq!(
        maildir.cache()?,
        "popgate-sizes 1\n1.a.host 2 3\n2.b.host 2 3\n",
        "a matching entry is kept"
    );
    assert_eq!(retr(&mailbox, 0)?, b"longer now\r\n.\r\n");
    assert_eq!(maildir.cache()?, "popgate-sizes 1\n2.b.host 2 3\n");
    drop(mailbox);
    assert_eq!(sizes(&maildir.open()?), [12, 3]);
    Ok(())
}

#[test]
fn unwritable_cache_is_not_an_error() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"a\n")?;
    // A directory where the cache file should be: the rename fails.
    fs::create_dir(maildir.root().join(SIZE_CACHE_FILE))?;
    fs::write(maildir.root().join(SIZE_CACHE_FILE).join("x"), b"")?;
    let mailbox = maildir.open()?;
    assert_eq!(sizes(&mailbox), [3]);
    let leftovers: Vec<String> = fs::read_dir(maildir.root())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    assert!(
        leftovers.iter().all(|n| !n.contains(".tmp.")),
        "{leftovers:?}"
    );
    Ok(())
}

#[test]
fn commit_delete_unlinks_only_the_given_messages() -> TestResult {
    let maildir = Maildir::new()?;
    for name in ["1.a.host:2,", "2.b.host:2,S", "3.c.host:2,"] {
        maildir.put("cur", name, b"x\n")?;
    }
    let mailbox = maildir.open()?;
    let report = mailbox.commit(&[2, 0, 2, 7]);
    assert_eq!(report.applied, 2);
    assert_eq!(report.failed.len(), 1);
    assert!(matches!(
        report.failed[0],
        (7, StoreError::NoSuchMessage(7))
    ));
    assert!(!report.is_complete());
    assert_eq!(maildir.names("cur")?, ["2.b.host:2,S"]);
    Ok(())
}

#[test]
fn commit_with_nothing_deleted_changes_nothing() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"x\n")?;
    let report = maildir.open()?.commit(&[]);
    assert_eq!(report.applied, 0);
    assert!(report.is_complete());
    assert_eq!(maildir.names("cur")?, ["1.a.host:2,"]);
    Ok(())
}

#[test]
fn commit_mark_seen_and_keep_add_the_seen_flag() -> TestResult {
    for on_dele in [OnDele::MarkSeen, OnDele::Keep] {
        let maildir = Maildir::new()?;
        for name in [
            "1.a.host:2,FR",
            "2.b.host:2,T",
            "3.c.host:2,S",
            "4.d.host:2,",
        ] {
            maildir.put("cur", name, b"x\n")?;
        }
        let mailbox = maildir.open_with(on_dele.clone())?;
        let report = mailbox.commit(&[0, 1, 2]);
        assert_eq!(report.applied, 3, "{on_dele}");
        assert!(report.is_complete());
        assert_eq!(
            maildir.names("cur")?,
            [
                "1.a.host:2,FRS",
                "2.b.host:2,ST",
                "3.c.host:2,S",
                "4.d.host:2,"
            ],
            "{on_dele}"
        );
    }
    Ok(())
}

#[test]
fn commit_move_creates_the_folder_and_moves_seen() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,F", b"x\n")?;
    maildir.put("cur", "2.b.host:2,", b"y\n")?;
    let mailbox = maildir.open_with("move:Archive".parse()?)?;
    let report = mailbox.commit(&[0]);
    assert_eq!(report.applied, 1);
    assert!(report.is_complete());
    let folder = maildir.root().join(".Archive");
    for sub in ["cur", "new", "tmp"] {
        assert!(folder.join(sub).is_dir(), "{sub}");
    }
    assert_eq!(fs::read(folder.join("maildirfolder"))?, b"");
    assert_eq!(maildir.names(".Archive/cur")?, ["1.a.host:2,FS"]);
    assert_eq!(fs::read(folder.join("cur/1.a.host:2,FS"))?, b"x\n");
    assert_eq!(maildir.names("cur")?, ["2.b.host:2,"]);

    // The folder exists now; a second move uses it.
    let report = maildir.open_with("move:Archive".parse()?)?.commit(&[0]);
    assert!(report.is_complete());
    assert_eq!(
        maildir.names(".Archive/cur")?,
        ["1.a.host:2,FS", "2.b.host:2,S"]
    );
    Ok(())
}

#[test]
fn commit_move_to_an_unsafe_folder_moves_nothing() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"x\n")?;
    let mailbox = maildir.open_with(OnDele::Move("../escape".into()))?;
    let report = mailbox.commit(&[0]);
    assert_eq!(report.applied, 0);
    assert!(matches!(&report.failed[..], [(0, StoreError::InvalidFolder(f))] if f == "../escape"));
    assert_eq!(maildir.names("cur")?, ["1.a.host:2,"]);
    Ok(())
}

#[test]
fn commit_move_reports_a_folder_that_cannot_be_created() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"x\n")?;
    maildir.put("cur", "2.b.host:2,", b"x\n")?;
    fs::write(maildir.root().join(".Archive"), b"a file, not a folder")?;
    let report = maildir.open_with("move:Archive".parse()?)?.commit(&[0, 1]);
    assert_eq!(report.applied, 0);
    assert_eq!(report.failed.len(), 2);
    assert!(report
        .failed
        .iter()
        .all(|(_, err)| matches!(err, StoreError::Io { .. }) && err.is_temporary()));
    assert_eq!(maildir.names("cur")?, ["1.a.host:2,", "2.b.host:2,"]);
    Ok(())
}

#[test]
fn dropping_without_commit_deletes_nothing() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"x\n")?;
    maildir.put("new", "2.b.host", b"y\n")?;
    let mailbox = maildir.open()?;
    assert_eq!(mailbox.len(), 2);
    drop(mailbox);
    assert_eq!(maildir.names("cur")?, ["1.a.host:2,", "2.b.host:2,"]);
    Ok(())
}

#[test]
fn vanished_message() -> TestResult {
    let maildir = Maildir::new()?;
    let gone = maildir.put("cur", "1.a.host:2,", b"x\n")?;
    maildir.put("cur", "2.b.host:2,", b"y\n")?;
    let mailbox = maildir.open_with(OnDele::MarkSeen)?;
    fs::remove_file(gone)?;
    assert!(matches!(mailbox.open_message(0), Err(StoreError::Vanished)));
    assert_eq!(retr(&mailbox, 1)?, b"y\r\n.\r\n");
    let report = mailbox.commit(&[0, 1]);
    assert_eq!(report.applied, 1);
    assert!(matches!(&report.failed[..], [(0, StoreError::Vanished)]));
    assert_eq!(maildir.names("cur")?, ["2.b.host:2,S"]);
    Ok(())
}

#[test]
fn deleting_a_vanished_message_counts_as_done() -> TestResult {
    let maildir = Maildir::new()?;
    let gone = maildir.put("cur", "1.a.host:2,", b"x\n")?;
    let mailbox = maildir.open()?;
    fs::remove_file(gone)?;
    let report = mailbox.commit(&[0]);
    assert_eq!(report.applied, 1);
    assert!(report.is_complete());
    Ok(())
}

#[test]
fn a_message_renamed_by_another_program_is_found_again() -> TestResult {
    let maildir = Maildir::new()?;
    let old = maildir.put("cur", "1.a.host:2,", b"x\n")?;
    let mailbox = maildir.open()?;
    // An IMAP server marks it answered and seen.
    fs::rename(old, maildir.root().join("cur/1.a.host:2,RS"))?;
    assert_eq!(retr(&mailbox, 0)?, b"x\r\n.\r\n");
    assert!(mailbox.commit(&[0]).is_complete());
    assert_eq!(maildir.names("cur")?, Vec::<String>::new());
    Ok(())
}

#[test]
fn out_of_range_index_is_an_error() -> TestResult {
    let maildir = Maildir::new()?;
    let mailbox = maildir.open()?;
    assert!(matches!(
        mailbox.open_message(0),
        Err(StoreError::NoSuchMessage(0))
    ));
    assert!(matches!(
        mailbox.open_message(usize::MAX),
        Err(StoreError::NoSuchMessage(usize::MAX))
    ));
    Ok(())
}

#[test]
fn second_session_waits_then_is_locked_and_gets_in_after_the_first() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"x\n")?;
    let first = maildir.open()?;
    let started = Instant::now();
    let second = maildir.open();
    assert!(matches!(second, Err(StoreError::Locked)));
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(first);
    let third = maildir.open()?;
    assert_eq!(third.len(), 1);
    assert!(maildir.root().join(LOCK_FILE).is_file());
    // commit releases the lock too.
    assert!(third.commit(&[]).is_complete());
    drop(maildir.open()?);
    Ok(())
}

#[test]
fn a_waiting_session_gets_in_when_the_first_quits() -> TestResult {
    let maildir = Maildir::new()?;
    let first = maildir.open()?;
    let quitter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        first.commit(&[])
    });
    let second = Mailbox::open(
        maildir.root(),
        &OpenOptions {
            lock_wait: Duration::from_secs(10),
            ..options(OnDele::Delete)
        },
    );
    assert!(second.is_ok());
    assert!(quitter
        .join()
        .map_err(|_| "quitter panicked")?
        .is_complete());
    Ok(())
}

/// A Maildir with a message that takes minutes to size (64 GiB of holes)
/// gives up at the deadline, and keeps the sizes it learnt meanwhile; once
/// the slow file is gone, the next open reads nothing it read before.
#[test]
fn opening_stops_at_the_deadline_and_keeps_what_it_sized() -> TestResult {
    let maildir = Maildir::new()?;
    for i in 0..200 {
        maildir.put(
            "cur",
            &format!("{}.M{i}.host:2,", 1_700_000_000 + i),
            b"a\nb\n",
        )?;
    }
    let huge = maildir.put("cur", "1800000000.Mhuge.host:2,", b"")?;
    fs::File::options()
        .write(true)
        .open(&huge)?
        .set_len(64 << 30)?;
    let started = Instant::now();
    let options = OpenOptions {
        deadline: Some(started + Duration::from_millis(300)),
        ..options(OnDele::Delete)
    };
    assert!(matches!(
        Mailbox::open(maildir.root(), &options),
        Err(StoreError::TimedOut)
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
    // With two sizing threads or more, one is stuck in the huge file while
    // the others size the rest, which is kept. (With one, the files are
    // sized in directory order, and the huge one may come first.)
    let threads = thread::available_parallelism().map_or(1, usize::from);
    if threads >= 2 {
        let cached = maildir.cache()?;
        assert!(cached.lines().count() > 100, "{cached}");
        assert!(!cached.contains("Mhuge"), "{cached}");
    }
    // The lock was released, so another session gets in.
    fs::remove_file(&huge)?;
    let mailbox = maildir.open()?;
    assert_eq!(mailbox.len(), 200);
    assert_eq!(maildir.cache()?.lines().count(), 201);
    Ok(())
}

#[test]
fn a_deadline_that_passes_while_waiting_for_the_lock_times_out() -> TestResult {
    let maildir = Maildir::new()?;
    let _first = maildir.open()?;
    let options = OpenOptions {
        lock_wait: Duration::from_secs(30),
        deadline: Some(Instant::now() + Duration::from_millis(200)),
        ..options(OnDele::Delete)
    };
    assert!(matches!(
        Mailbox::open(maildir.root(), &options),
        Err(StoreError::TimedOut)
    ));
    Ok(())
}

#[test]
fn without_lock_sessions_do_not_exclude_each_other() -> TestResult {
    let maildir = Maildir::new()?;
    let unlocked = OpenOptions {
        lock: false,
        ..options(OnDele::Delete)
    };
    let first = Mailbox::open(maildir.root(), &unlocked)?;
    let second = Mailbox::open(maildir.root(), &unlocked)?;
    drop((first, second));
    assert!(!maildir.root().join(LOCK_FILE).exists());
    Ok(())
}

#[test]
fn symlinks_are_never_served() -> TestResult {
    let maildir = Maildir::new()?;
    let outside = tempfile::tempdir()?;
    let secret = outside.path().join("secret");
    fs::write(&secret, b"secret\n")?;
    std::os::unix::fs::symlink(&secret, maildir.root().join("cur/1.link.host:2,"))?;
    std::os::unix::fs::symlink(&secret, maildir.root().join("new/2.link.host"))?;
    let real = maildir.put("cur", "3.real.host:2,", b"real\n")?;
    let mailbox = maildir.open()?;
    assert_eq!(uidls(&mailbox), ["3.real.host"]);

    // Replaced by a symlink after the snapshot: refused, not followed.
    fs::remove_file(&real)?;
    std::os::unix::fs::symlink(&secret, &real)?;
    assert!(matches!(
        mailbox.open_message(0),
        Err(StoreError::NotRegularFile(p)) if p == real
    ));
    Ok(())
}

#[test]
fn a_message_that_cannot_move_to_cur_is_served_from_new() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("new", "1.dup.host", b"from new\n")?;
    maildir.put("cur", "1.dup.host:2,", b"from cur\n")?;
    let mailbox = maildir.open()?;
    assert_eq!(mailbox.len(), 2);
    assert_eq!(retr(&mailbox, 0)?, b"from new\r\n.\r\n");
    assert_eq!(retr(&mailbox, 1)?, b"from cur\r\n.\r\n");
    assert!(mailbox.commit(&[0]).is_complete());
    assert_eq!(maildir.names("new")?, Vec::<String>::new());
    assert_eq!(maildir.names("cur")?, ["1.dup.host:2,"]);
    assert_eq!(
        fs::read(maildir.root().join("cur/1.dup.host:2,"))?,
        b"from cur\n"
    );
    Ok(())
}

#[test]
fn missing_maildir_cur_or_new_is_no_such_mailbox() -> TestResult {
    let maildir = Maildir::new()?;
    let missing = maildir.root().join("nope");
    assert!(matches!(
        Mailbox::open(&missing, &options(OnDele::Delete)),
        Err(StoreError::NoSuchMailbox(p)) if p == missing
    ));
    fs::remove_dir(maildir.root().join("new"))?;
    assert!(matches!(maildir.open(), Err(StoreError::NoSuchMailbox(_))));
    fs::create_dir(maildir.root().join("new"))?;
    fs::remove_dir(maildir.root().join("cur"))?;
    let err = maildir.open().err();
    assert!(matches!(&err, Some(StoreError::NoSuchMailbox(p)) if p.ends_with("cur")));
    assert!(err.is_some_and(|e| !e.is_temporary()));
    Ok(())
}

#[test]
fn top_through_the_mailbox() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"Subject: x\n\n.line 1\nline 2\n")?;
    let mailbox = maildir.open()?;
    let mut file = mailbox.open_message(0)?.file;
    let mut content = Vec::new();
    file.read_to_end(&mut content)?;
    let mut encoder = Encoder::top(1);
    let mut out = Vec::new();
    encoder.encode(&content, &mut out);
    assert!(encoder.is_done());
    encoder.finish(&mut out);
    assert_eq!(out, b"Subject: x\r\n\r\n..line 1\r\n.\r\n");
    Ok(())
}

#[test]
fn mail_delivered_by_the_maildir_crate_is_served() -> TestResult {
    let maildir = Maildir::new()?;
    let delivery = maildir::Maildir::from(maildir.root().to_path_buf());
    let id = delivery.store_new(b"Subject: hi\n\nbody\n")?;
    let mailbox = maildir.open()?;
    assert_eq!(uidls(&mailbox), [id.as_str()]);
    assert_eq!(sizes(&mailbox), [21]);
    assert_eq!(retr(&mailbox, 0)?, b"Subject: hi\r\n\r\nbody\r\n.\r\n");
    Ok(())
}

#[test]
fn many_messages_open_from_a_warm_cache() -> TestResult {
    let maildir = Maildir::new()?;
    for i in 0..2_000u32 {
        maildir.put(
            "new",
            &format!("{}.M{i}P1.host", 1_700_000_000 + i),
            format!("n: {i}\n").as_bytes(),
        )?;
    }
    let cold = maildir.open()?;
    assert_eq!(cold.len(), 2_000);
    drop(cold);
    let cache = maildir.cache()?;
    assert_eq!(cache.lines().count(), 2_001);
    let warm = maildir.open()?;
    assert_eq!(warm.uidl(1_234), Some(&b"1700001234.M1234P1.host"[..]));
    assert_eq!(warm.size(1_234), Some(9));
    assert_eq!(
        maildir.cache()?,
        cache,
        "a warm open does not rewrite the cache"
    );
    Ok(())
}

#[test]
fn a_big_first_login_sizes_in_parallel_and_writes_the_cache_in_listing_order() -> TestResult {
    let maildir = Maildir::new()?;
    let mut expected = Vec::new();
    for i in 0..3_000u32 {
        // Same second for runs of ten messages: the order then rests on the
        // rest of the name. Mixed line ends, dots, no final newline.
        let name = format!("{}.M{i}P7.host", 1_700_000_000 + i / 10);
        let body = match i % 3 {
            0 => "a\n.b\n".repeat(1 + i as usize % 50),
            1 => "crlf\r\n".repeat(1 + i as usize % 40),
            _ => "bare \r cr and no end".repeat(1 + i as usize % 30),
        };
        let sub = if i % 2 == 0 { "new" } else { "cur" };
        let file = if sub == "cur" {
            format!("{name}:2,S")
        } else {
            name.clone()
        };
        maildir.put(sub, &file, body.as_bytes())?;
        let wire = popgate_store::wire::wire_size(body.as_bytes())?;
        expected.push((name, wire));
    }
    expected.sort_by(|a, b| {
        let secs = |n: &str| n.split('.').next().map(str::to_owned);
        (secs(&a.0), &a.0).cmp(&(secs(&b.0), &b.0))
    });

    let cold = maildir.open()?;
    assert_eq!(listing(&cold), expected);
    drop(cold);

    // The cache lists the messages in the order cur/ lists them.
    let listing: Vec<String> = fs::read_dir(maildir.root().join("cur"))?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    let cache = maildir.cache()?;
    let cached: Vec<&str> = cache
        .lines()
        .skip(1)
        .filter_map(|line| line.split(' ').next())
        .collect();
    let unique: Vec<&str> = listing
        .iter()
        .filter_map(|name| name.split(':').next())
        .collect();
    assert_eq!(cached, unique);

    // A warm login leaves that file alone (same inode: not replaced).
    let inode = |m: &Maildir| {
        fs::metadata(m.root().join(SIZE_CACHE_FILE))
            .map(|md| std::os::unix::fs::MetadataExt::ino(&md))
    };
    let before = inode(&maildir)?;
    let warm = maildir.open()?;
    assert_eq!(
        sizes(&warm),
        expected.iter().map(|e| e.1).collect::<Vec<_>>()
    );
    drop(warm);
    assert_eq!(
        inode(&maildir)?,
        before,
        "a warm open does not rewrite the cache"
    );

    // A cache in another order (an older popgate) still serves every size,
    // and is rewritten once in listing order.
    let mut lines: Vec<&str> = cache.lines().skip(1).collect();
    lines.reverse();
    maildir.write_cache(&format!("popgate-sizes 1\n{}\n", lines.join("\n")))?;
    let reordered = maildir.open()?;
    assert_eq!(
        sizes(&reordered),
        expected.iter().map(|e| e.1).collect::<Vec<_>>()
    );
    drop(reordered);
    assert_eq!(maildir.cache()?, cache);
    Ok(())
}

#[test]
fn a_mailbox_can_be_shared_with_blocking_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Mailbox>();
    assert_send_sync::<StoreError>();
}

#[test]
fn oversized_or_special_cache_files_are_replaced_unread() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"a\n")?;
    let cache = maildir.root().join(SIZE_CACHE_FILE);
    // Sparse: huge on paper, nothing on disk.
    fs::File::create(&cache)?.set_len((64 << 20) + 1)?;
    assert_eq!(sizes(&maildir.open()?), [3]);
    assert_eq!(maildir.cache()?, "popgate-sizes 1\n1.a.host 2 3\n");

    fs::remove_file(&cache)?;
    nix::unistd::mkfifo(&cache, nix::sys::stat::Mode::S_IRWXU)?;
    assert_eq!(
        sizes(&maildir.open()?),
        [3],
        "a FIFO does not hang the login"
    );
    assert_eq!(maildir.cache()?, "popgate-sizes 1\n1.a.host 2 3\n");
    Ok(())
}

#[test]
fn mark_seen_applies_to_messages_renamed_by_another_program() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,", b"x\n")?;
    maildir.put("cur", "2.b.host:2,", b"y\n")?;
    maildir.put("new", "3.c.host", b"z\n")?;
    let mailbox = maildir.open_with(OnDele::MarkSeen)?;
    fs::rename(
        maildir.root().join("cur/1.a.host:2,"),
        maildir.root().join("cur/1.a.host:2,R"),
    )?;
    fs::rename(
        maildir.root().join("cur/2.b.host:2,"),
        maildir.root().join("cur/2.b.host:2,T"),
    )?;
    let report = mailbox.commit(&[1, 0, 2]);
    assert_eq!(report.applied, 3);
    assert!(report.is_complete());
    assert_eq!(
        maildir.names("cur")?,
        ["1.a.host:2,RS", "2.b.host:2,ST", "3.c.host:2,S"]
    );
    Ok(())
}

#[test]
fn uidls_from_a_dovecot_uidlist_win_and_unknown_messages_fall_back() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,S", b"a\n")?;
    maildir.put("new", "2.b.host", b"bb\n")?;
    maildir.put("cur", "3.c.host:2,", b"ccc\n")?;
    maildir.put("cur", "4.d.host:2,", b"dddd\n")?;
    fs::write(
        maildir.root().join("dovecot-uidlist"),
        "3 V1700000000 N4 G0011\n1 W3 :1.a.host:2,\n2 Psaved-2 :2.b.host\n3 P :3.c.host:2,\n",
    )?;
    let mailbox = maildir.open()?;
    assert_eq!(
        uidls(&mailbox),
        ["000000016553f100", "saved-2", "3.c.host", "4.d.host"]
    );
    assert_eq!(sizes(&mailbox), [3, 4, 5, 6]);
    Ok(())
}

#[test]
fn uidls_from_a_courier_sizelist_are_served() -> TestResult {
    let maildir = Maildir::new()?;
    maildir.put("cur", "1.a.host:2,S", b"a\r\n")?;
    maildir.put("cur", "2.b.host:2,", b"b\n")?;
    fs::write(
        maildir.root().join("courierpop3dsizelist"),
        "/3 3 1699999999\n1.a.host:2, 5 1:1699999999:0\n",
    )?;
    let mailbox = maildir.open()?;
    assert_eq!(uidls(&mailbox), ["UID1-1699999999", "2.b.host"]);
    assert_eq!(sizes(&mailbox), [3, 3], "Courier's sizes are not used");
    Ok(())
}

/// The open that never waits for the disk serves the same file as
/// `open_message`, and hands back everything that needs more than an open.
#[test]
fn the_nowait_open_serves_what_is_cached_and_defers_the_rest() -> TestResult {
    let maildir = Maildir::new()?;
    let changed = maildir.put("cur", "1.a.host:2,", b"a\n")?;
    let renamed = maildir.put("cur", "2.b.host:2,", b"b\n")?;
    let gone = maildir.put("cur", "3.c.host:2,", b"c\n")?;
    let linked = maildir.put("cur", "4.d.host:2,", b"d\n")?;
    maildir.put("cur", "5.e.host:2,", b"Subject: e\n\nbody\n")?;
    drop(maildir.open()?);
    fs::write(&changed, b"longer now\n")?;
    let mailbox = maildir.open()?;
    fs::rename(&renamed, maildir.root().join("cur/2.b.host:2,RS"))?;
    fs::remove_file(&gone)?;
    fs::remove_file(&linked)?;
    std::os::unix::fs::symlink(maildir.root().join("cur/5.e.host:2,"), &linked)?;

    let mut content = Vec::new();
    let mut opened = mailbox
        .open_message_nowait(4)?
        .ok_or("a file just written is in the caches")?;
    opened.file.read_to_end(&mut content)?;
    assert_eq!(content, b"Subject: e\n\nbody\n");
    // The length the open found comes with the file.
    assert_eq!(opened.len, content.len() as u64);
    // Its cached size is stale: the cache must be rewritten, which may block.
    assert!(mailbox.open_message_nowait(0)?.is_none());
    // Renamed or gone: open_message looks for it, or reports it vanished.
    assert!(mailbox.open_message_nowait(1)?.is_none());
    assert!(mailbox.open_message_nowait(2)?.is_none());
    assert_eq!(retr(&mailbox, 1)?, b"b\r\n.\r\n");
    assert!(matches!(mailbox.open_message(2), Err(StoreError::Vanished)));
    // Refused exactly as open_message refuses.
    assert!(matches!(
        mailbox.open_message_nowait(3),
        Err(StoreError::NotRegularFile(p)) if p == linked
    ));
    assert!(matches!(
        mailbox.open_message_nowait(5),
        Err(StoreError::NoSuchMessage(5))
    ));
    Ok(())
}

/// A message of [`a_big_mixed_mailbox_keeps_every_uidl_and_size`]: where it
/// is, and the UIDL and size a session must report for it.
struct Mixed {
    sub: &'static str,
    file: String,
    uidl: String,
    size: u64,
}

/// Message `i` of the mixed mailbox; `dovecot` and `courier` collect the
/// lines of the migration lists that know it.
fn mixed(i: u32, dovecot: &mut String, courier: &mut String) -> std::io::Result<(Mixed, Vec<u8>)> {
    let secs = 1_700_000_000 + i;
    let body = match i % 3 {
        0 => "a\n.b\n".repeat(1 + i as usize % 7),
        1 => "crlf\r\n".repeat(1 + i as usize % 5),
        _ => "bare \r cr and no end".repeat(1 + i as usize % 3),
    };
    let wire = popgate_store::wire::wire_size(body.as_bytes())?;
    let (unique, uidl, size) = match i % 8 {
        // Not a valid UIDL (a space, too long): the hash of the name.
        0 => {
            let unique = format!("{secs}.M{i}P3.host name");
            let uidl = popgate_store::uidl::from_unique_name(unique.as_bytes());
            (unique, uidl, wire)
        }
        1 => {
            let unique = format!("{secs}.M{i}P3.{}", "long".repeat(20));
            let uidl = popgate_store::uidl::from_unique_name(unique.as_bytes());
            (unique, uidl, wire)
        }
        // Dovecot's default UIDL, and its W size, which wins.
        2 => {
            let unique = format!("{secs}.M{i}P3.host");
            dovecot.push_str(&format!("{i} W{} :{unique}:2,S\n", wire + 1000));
            (unique, format!("{i:08x}6553f100"), wire + 1000)
        }
        // A UIDL Dovecot saved.
        3 => {
            let unique = format!("{secs}.M{i}P3.host");
            dovecot.push_str(&format!("{i} P{i}-saved :{unique}\n"));
            (unique, format!("{i}-saved"), wire)
        }
        // Courier's UIDL.
        4 => {
            let unique = format!("{secs}.M{i}P3.host");
            courier.push_str(&format!("{unique}:2, 1 {i}:77:0\n"));
            (unique, format!("UID{i}-77"), wire)
        }
        // The size in the name wins over the content.
        5 => {
            let unique = format!("{secs}.M{i}P3.host,S=1,W={}", wire + 7);
            (unique.clone(), unique, wire + 7)
        }
        _ => {
            let unique = format!("{secs}.M{i}P3.host");
            (unique.clone(), unique, wire)
        }
    };
    let (sub, file) = if i % 2 == 0 {
        ("new", unique)
    } else {
        ("cur", format!("{unique}:2,S"))
    };
    Ok((
        Mixed {
            sub,
            file,
            uidl,
            size,
        },
        body.into_bytes(),
    ))
}

#[test]
fn a_big_mixed_mailbox_keeps_every_uidl_and_size() -> TestResult {
    let maildir = Maildir::new()?;
    let (mut dovecot, mut courier) = (
        String::from("3 V1700000000 N9999\n"),
        String::from("/3 9999 77\n"),
    );
    let mut messages = Vec::new();
    for i in 0..6_000u32 {
        let (message, body) = mixed(i, &mut dovecot, &mut courier)?;
        maildir.put(message.sub, &message.file, &body)?;
        messages.push(message);
    }
    fs::write(maildir.root().join("dovecot-uidlist"), dovecot)?;
    fs::write(maildir.root().join("courierpop3dsizelist"), courier)?;
    let expected: Vec<(String, u64)> = messages.iter().map(|m| (m.uidl.clone(), m.size)).collect();

    // First login (sizes computed, new/ moved), then from the cache.
    for login in ["cold", "warm"] {
        let mailbox = maildir.open()?;
        assert_eq!(mailbox.len(), 6_000, "{login}");
        assert_eq!(listing(&mailbox), expected, "{login}");
        assert_eq!((mailbox.uidl(6_000), mailbox.size(6_000)), (None, None));
    }

    // Messages removed behind popgate's back: the others keep theirs.
    let mut kept = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if i % 97 == 5 {
            let file = if message.sub == "new" {
                format!("{}:2,", message.file)
            } else {
                message.file.clone()
            };
            fs::remove_file(maildir.root().join("cur").join(file))?;
        } else {
            kept.push((message.uidl.clone(), message.size));
        }
    }
    for login in ["stale cache", "rewritten cache"] {
        assert_eq!(listing(&maildir.open()?), kept, "{login}");
    }
    let newest = maildir.open_newest_first()?;
    kept.reverse();
    assert_eq!(listing(&newest), kept);
    Ok(())
}
