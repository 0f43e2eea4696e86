//! Reusing a login's snapshot for the next login of an unchanged Maildir
//! (`Mailbox::open_nowait`), on real Maildirs in temporary directories.
//!
//! A snapshot is kept only when the Maildir's directories last changed
//! more than two seconds before the login; the tests set their times an
//! hour back instead of waiting.

// Tests: every helper may unwrap, expect and panic, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use popgate_store::wire::Encoder;
use popgate_store::{Mailbox, OnDele, OpenOptions, Order, SnapshotCache, StoreError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A Maildir with three messages, its directories last changed an hour ago.
fn settled_maildir() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir(dir.path().join(sub))?;
    }
    fs::write(
        dir.path().join("cur/100.a.host:2,S"),
        b"Subject: a\n\none\n",
    )?;
    fs::write(
        dir.path().join("cur/200.b.host:2,"),
        b"Subject: b\n\n.two\n",
    )?;
    fs::write(dir.path().join("new/300.c.host"), b"Subject: c\n\nthree\n")?;
    // The first login moves new/ to cur/ and writes the size cache; the
    // lock file is made by the first locked one.
    drop(Mailbox::open(dir.path(), &options(None))?);
    settle(dir.path())?;
    Ok(dir)
}

/// Sets the modification times of the Maildir's directories an hour back.
fn settle(root: &Path) -> std::io::Result<()> {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for dir in [root.to_path_buf(), root.join("cur"), root.join("new")] {
        fs::File::open(dir)?.set_modified(an_hour_ago)?;
    }
    Ok(())
}

fn options(snapshots: Option<&Arc<SnapshotCache>>) -> OpenOptions {
    OpenOptions {
        lock_wait: Duration::from_millis(100),
        snapshots: snapshots.cloned(),
        ..OpenOptions::default()
    }
}

/// A cache of its own, and options that keep snapshots in it.
fn caching() -> (Arc<SnapshotCache>, OpenOptions) {
    let cache = Arc::new(SnapshotCache::default());
    let options = options(Some(&cache));
    (cache, options)
}

/// Every message's number, UIDL, size and RETR bytes.
fn contents(mailbox: &Mailbox) -> Vec<(usize, Vec<u8>, u64, Vec<u8>)> {
    (0..mailbox.len())
        .map(|index| {
            let mut file = mailbox.open_message(index).unwrap().file;
            let (mut raw, mut wire) = (Vec::new(), Vec::new());
            file.read_to_end(&mut raw).unwrap();
            let mut encoder = Encoder::full();
            encoder.encode(&raw, &mut wire);
            encoder.finish(&mut wire);
            (
                index,
                mailbox.uidl(index).unwrap().to_vec(),
                mailbox.size(index).unwrap(),
                wire,
            )
        })
        .collect()
}

#[test]
fn an_unchanged_maildir_opens_from_the_snapshot_its_last_login_kept() -> TestResult {
    let maildir = settled_maildir()?;
    let (cache, options) = caching();
    assert!(Mailbox::open_nowait(maildir.path(), &options).is_none());
    let listed = contents(&Mailbox::open(maildir.path(), &options)?);
    assert_eq!(cache.len(), 1);
    let reused = Mailbox::open_nowait(maildir.path(), &options).ok_or("not reused")?;
    assert_eq!(contents(&reused), listed);
    assert_eq!(listed.len(), 3);
    // The other order is a snapshot of its own.
    let newest_first = OpenOptions {
        order: Order::NewestFirst,
        ..options.clone()
    };
    drop(reused);
    assert!(Mailbox::open_nowait(maildir.path(), &newest_first).is_none());
    Ok(())
}

#[test]
fn a_maildir_changed_within_two_seconds_is_listed_at_every_login() -> TestResult {
    let maildir = settled_maildir()?;
    let (cache, options) = caching();
    fs::write(maildir.path().join("cur/400.d.host:2,"), b"d\n")?;
    drop(Mailbox::open(maildir.path(), &options)?);
    assert!(cache.is_empty());
    assert!(Mailbox::open_nowait(maildir.path(), &options).is_none());
    Ok(())
}

#[test]
fn a_delivery_a_deletion_a_flag_or_a_migration_list_sends_the_next_login_to_list() -> TestResult {
    type Change = fn(&Path) -> std::io::Result<()>;
    let changes: [(&str, Change); 4] = [
        ("delivery", |root| {
            fs::write(root.join("new/500.e.host"), b"e\n")
        }),
        ("deletion", |root| {
            fs::remove_file(root.join("cur/100.a.host:2,S"))
        }),
        ("flag", |root| {
            fs::rename(
                root.join("cur/200.b.host:2,"),
                root.join("cur/200.b.host:2,S"),
            )
        }),
        ("migration list", |root| {
            fs::write(root.join("dovecot-uidlist"), b"3 V1 N1\n1 :100.a.host\n")
        }),
    ];
    for (change, make) in changes {
        let maildir = settled_maildir()?;
        let (cache, options) = caching();
        let before = contents(&Mailbox::open(maildir.path(), &options)?);
        assert_eq!(cache.len(), 1, "{change}");
        make(maildir.path())?;
        assert!(
            Mailbox::open_nowait(maildir.path(), &options).is_none(),
            "{change}: the old snapshot was reused"
        );
        let after = contents(&Mailbox::open(maildir.path(), &options)?);
        // A flag changes the file's name, not what the client sees.
        assert_eq!(after == before, change == "flag", "{change}");
    }
    Ok(())
}

#[test]
fn the_session_lock_is_taken_first_and_held_by_a_reused_snapshot() -> TestResult {
    let maildir = settled_maildir()?;
    let (_cache, options) = caching();
    let first = Mailbox::open(maildir.path(), &options)?;
    // Held by the first session: the blocking path waits for it.
    assert!(Mailbox::open_nowait(maildir.path(), &options).is_none());
    drop(first);
    let reused = Mailbox::open_nowait(maildir.path(), &options).ok_or("not reused")?;
    assert!(matches!(
        Mailbox::open(maildir.path(), &options),
        Err(StoreError::Locked)
    ));
    drop(reused);
    // Without the lock there is nothing to wait for.
    let unlocked = OpenOptions {
        lock: false,
        ..options.clone()
    };
    drop(Mailbox::open(maildir.path(), &unlocked)?);
    let (_a, _b) = (
        Mailbox::open_nowait(maildir.path(), &unlocked).ok_or("not reused")?,
        Mailbox::open_nowait(maildir.path(), &unlocked).ok_or("not reused")?,
    );
    Ok(())
}

#[test]
fn deleting_from_a_reused_snapshot_removes_the_messages_and_moves_the_stamps() -> TestResult {
    let maildir = settled_maildir()?;
    let cache = Arc::new(SnapshotCache::default());
    let options = OpenOptions {
        on_dele: OnDele::Delete,
        ..options(Some(&cache))
    };
    drop(Mailbox::open(maildir.path(), &options)?);
    let reused = Mailbox::open_nowait(maildir.path(), &options).ok_or("not reused")?;
    assert!(reused.commit(&[0, 2]).is_complete());
    assert!(Mailbox::open_nowait(maildir.path(), &options).is_none());
    let left = Mailbox::open(maildir.path(), &options)?;
    assert_eq!(left.len(), 1);
    assert_eq!(left.uidl(0), Some(&b"200.b.host"[..]));
    Ok(())
}

#[test]
fn without_a_cache_nothing_is_kept_or_reused() -> TestResult {
    let maildir = settled_maildir()?;
    drop(Mailbox::open(maildir.path(), &options(None))?);
    assert!(Mailbox::open_nowait(maildir.path(), &options(None)).is_none());
    Ok(())
}

#[test]
fn a_snapshot_that_would_not_open_the_same_again_is_not_kept() -> TestResult {
    // A message that cannot move from new/ (here new/ is on another file
    // system, so the rename fails) is served from there, and the next
    // listing would try to move it again. Its size is in its name (`,W=`),
    // so nothing has to be read for it.
    let maildir = settled_maildir()?;
    let elsewhere = tempfile::tempdir_in("/dev/shm")?;
    fs::remove_dir(maildir.path().join("new"))?;
    std::os::unix::fs::symlink(elsewhere.path(), maildir.path().join("new"))?;
    fs::write(elsewhere.path().join("400.d.host,W=3"), b"d\n")?;
    let (cache, options) = caching();
    // The first login after it may rewrite the size cache; the second
    // finds everything as the first left it.
    for _ in 0..2 {
        settle(maildir.path())?;
        let opened = Mailbox::open(maildir.path(), &options)?;
        assert_eq!(opened.len(), 4, "the message in new/ served");
    }
    assert!(cache.is_empty(), "kept with a message left in new/");
    // A login that rewrites the size cache moves the root's stamp.
    let maildir = settled_maildir()?;
    fs::remove_file(maildir.path().join(popgate_store::SIZE_CACHE_FILE))?;
    settle(maildir.path())?;
    drop(Mailbox::open(maildir.path(), &options)?);
    assert!(cache.is_empty(), "kept while the size cache was rewritten");
    // The next login finds the cache written and keeps its snapshot.
    settle(maildir.path())?;
    drop(Mailbox::open(maildir.path(), &options)?);
    assert_eq!(cache.len(), 1);
    Ok(())
}

#[test]
fn without_its_lock_file_a_locked_login_goes_to_the_blocking_path() -> TestResult {
    let maildir = settled_maildir()?;
    let (_cache, options) = caching();
    drop(Mailbox::open(maildir.path(), &options)?);
    fs::remove_file(maildir.path().join(popgate_store::LOCK_FILE))?;
    // Creating the lock file could wait: not done on the async thread.
    assert!(Mailbox::open_nowait(maildir.path(), &options).is_none());
    drop(Mailbox::open(maildir.path(), &options)?);
    assert!(maildir.path().join(popgate_store::LOCK_FILE).exists());
    Ok(())
}
