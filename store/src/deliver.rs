//! Local delivery: a message written into a Maildir, as its owner would.
//!
//! The Maildir protocol: the message is written under a unique name in
//! `tmp/` and synced, then renamed into `new/`, and `new/` is synced. A
//! reader never sees half a message; a crash leaves at most a file in
//! `tmp/`.
//!
//! Written for a server that runs as root on behalf of users who own their
//! Maildirs:
//!
//! * **Identity.** The store knows no users: the caller runs every call
//!   here with the filesystem identity (fsuid/fsgid) of the Maildir's
//!   owner, as the gateway's `run_as` does. The file then belongs to the
//!   owner, and the kernel refuses what the owner could not do.
//! * **No symlinks below the root.** The root is opened (and created when
//!   missing, see [`ensure_maildir`](crate::ensure_maildir)); `tmp/` and
//!   `new/` are opened relative to it with `O_NOFOLLOW | O_DIRECTORY`; the
//!   file is created relative to `tmp/` with `O_CREAT | O_EXCL |
//!   O_NOFOLLOW`, mode 0600, and renamed relative to the two directory
//!   descriptors without replacing anything. A `tmp/` or `new/` replaced by
//!   a symlink is an error: nothing is written where it points.
//! * **Sizes in the name.** The name is Dovecot's kind,
//!   `<secs>.M<usecs>P<pid>Q<n>.<host>,S=<octets>,W=<wire>`: `S=` the
//!   octets on disk, `W=` the exact POP3 size ([`wire_size`]), which the
//!   reader takes from the name, so the first login reads nothing to size
//!   the message. The host is reduced to letters, digits, `.`, `-` and `_`,
//!   so no `/`, `:` or `,` in it can break the name or fake a field.
//! * **All or nothing.** [`deliver`] puts a copy into every Maildir's
//!   `tmp/` first, and moves them into `new/` only once all of them are
//!   written and synced; on any failure every copy is taken back, so a
//!   client that retries leaves no duplicates.
//!
//! The bytes are stored as given; the gateway stores LF line ends, as local
//! MTAs do.
//!
//! [`wire_size`]: crate::wire::wire_size

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{fsync, openat, unlinkat, AtFlags, Mode, OFlags};

use crate::file::{open_subdir, rename_noreplace_at};
use crate::{create, wire, StoreError};

/// Deliveries made by this process: the `Q` part of the unique names.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// The mode of a delivered message: its owner's alone.
const FILE_MODE: u32 = 0o600;

/// One copy of a message in a Maildir's `tmp/`, not yet visible to readers;
/// [`publish`](Staged::publish) moves it into `new/`,
/// [`discard`](Staged::discard) removes it again. Each runs with the owner's
/// filesystem identity, like [`Staged::write`].
///
/// Dropping a `Staged` leaves its file where it is (in `tmp/`, where a
/// reader never looks): [`deliver`] discards every copy it does not publish.
#[derive(Debug)]
struct Staged {
    maildir: PathBuf,
    root: OwnedFd,
    tmp: OwnedFd,
    new: OwnedFd,
    name: String,
    place: Place,
}

/// Where a staged copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Tmp,
    New,
    Gone,
}

impl Staged {
    /// Writes `message` into `tmp/` of `maildir` under a new unique name
    /// and syncs it; creates the Maildir first when it is missing. `host`
    /// names this host in the file name.
    ///
    /// Errors ([`StoreError::Io`]): the Maildir cannot be opened or
    /// created, `tmp/` or `new/` is not a directory (a symlink is not), or
    /// the file cannot be written.
    fn write(maildir: &Path, message: &[u8], host: &str) -> Result<Staged, StoreError> {
        let root = create::open_root(maildir)?;
        let subdir = |sub: &str| {
            open_subdir(&root, sub).map_err(|err| {
                StoreError::io(
                    format!(
                        "opening {:?} (a directory, not a symlink)",
                        maildir.join(sub)
                    ),
                    err,
                )
            })
        };
        let tmp = subdir("tmp")?;
        let new = subdir("new")?;
        let wire_size =
            wire::wire_size(message).map_err(|err| StoreError::io("sizing the message", err))?;
        let name = unique_name(SystemTime::now(), host, message.len() as u64, wire_size);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = openat(&tmp, name.as_str(), flags, Mode::from_raw_mode(FILE_MODE)).map_err(
            |errno| {
                StoreError::io(
                    format!("creating {:?}", maildir.join("tmp").join(&name)),
                    errno.into(),
                )
            },
        )?;
        let mut staged = Staged {
            maildir: maildir.to_path_buf(),
            root,
            tmp,
            new,
            name,
            place: Place::Tmp,
        };
        let mut file = File::from(file);
        if let Err(err) = file.write_all(message).and_then(|()| file.sync_all()) {
            let error = StoreError::io(format!("writing {:?}", staged.path("tmp")), err);
            // The half-written file goes; the write error is the one to tell.
            let _ = staged.discard();
            return Err(error);
        }
        Ok(staged)
    }

    /// Moves the copy from `tmp/` into `new/` (never replacing a file
    /// there), where readers find it, and syncs `new/`. Does nothing when
    /// it is there already, or was discarded.
    fn publish(&mut self) -> Result<(), StoreError> {
        if self.place != Place::Tmp {
            return Ok(());
        }
        rename_noreplace_at(&self.tmp, &self.name, &self.new, &self.name).map_err(|err| {
            StoreError::io(format!("moving {:?} into new/", self.path("tmp")), err)
        })?;
        self.place = Place::New;
        fsync(&self.new).map_err(|errno| {
            StoreError::io(
                format!("syncing {:?}", self.maildir.join("new")),
                errno.into(),
            )
        })
    }

    /// Takes the copy back: removes it from `tmp/`, or from `new/` when it
    /// was published. A reader that has already moved it on into `cur/`
    /// gives it the name `<name>:2,`, which is removed instead; one that
    /// has also flagged it is too late to undo.
    fn discard(&mut self) -> Result<(), StoreError> {
        let (sub, removed) = match self.place {
            Place::Gone => return Ok(()),
            Place::Tmp => ("tmp", remove(&self.tmp, &self.name)),
            Place::New => (
                "new",
                match remove(&self.new, &self.name) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        open_subdir(&self.root, "cur")
                            .and_then(|cur| remove(&cur, &format!("{}:2,", self.name)))
                    }
                    other => other,
                },
            ),
        };
        match removed {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(StoreError::io(
                format!("removing {:?}", self.path(sub)),
                err,
            )),
            // Removed now, or already gone.
            _ => {
                self.place = Place::Gone;
                Ok(())
            }
        }
    }

    /// The copy's path in `sub`, for messages.
    fn path(&self, sub: &str) -> PathBuf {
        self.maildir.join(sub).join(&self.name)
    }
}

/// Removes the file `name` from `dir`.
fn remove(dir: &OwnedFd, name: &str) -> io::Result<()> {
    Ok(unlinkat(dir, name, AtFlags::empty())?)
}

/// Why [`deliver`] delivered nothing.
#[derive(Debug, thiserror::Error)]
#[error("delivery to Maildir {index} failed: {error}")]
pub struct Undelivered {
    /// The position of the Maildir that failed.
    pub index: usize,
    /// What went wrong there.
    #[source]
    pub error: StoreError,
    /// Copies that could not be taken back (their position, and why):
    /// these Maildirs may get the message twice when the client retries.
    pub not_withdrawn: Vec<(usize, StoreError)>,
}

/// Delivers `message` into every Maildir of `maildirs`, or into none.
///
/// Every copy is written and synced into its Maildir's `tmp/` first; only
/// then are they moved into `new/`, one after the other. When any step
/// fails, every copy written so far is taken back, published or not (one
/// that a reader already moved into `cur/` and flagged stays), and the
/// error says which Maildir failed.
///
/// The Maildirs may have different owners: each step on the Maildir at
/// position `i` is handed to `as_owner(i, step)`, which must call `step`
/// once with that owner's filesystem identity (or just call it, when
/// there is nothing to switch). Not calling it fails the delivery.
///
/// ```no_run
/// # fn main() -> Result<(), popgate_store::Undelivered> {
/// let maildirs = ["/home/ann/Maildir", "/home/ben/Maildir"];
/// let message = b"From: carol@example.com\nSubject: hi\n\nhello\n";
/// // The gateway switches to the owner's fsuid and fsgid around `step`.
/// popgate_store::deliver(&maildirs, message, "mail.example.com", |_owner, step| step())?;
/// # Ok(())
/// # }
/// ```
pub fn deliver<P, O>(
    maildirs: &[P],
    message: &[u8],
    host: &str,
    mut as_owner: O,
) -> Result<(), Undelivered>
where
    P: AsRef<Path>,
    O: FnMut(usize, &mut dyn FnMut()),
{
    let mut staged: Vec<Staged> = Vec::with_capacity(maildirs.len());
    for (index, maildir) in maildirs.iter().enumerate() {
        match run_as_owner(&mut as_owner, index, || {
            Staged::write(maildir.as_ref(), message, host)
        }) {
            Ok(copy) => staged.push(copy),
            Err(error) => return Err(withdraw(staged, &mut as_owner, index, error)),
        }
    }
    for index in 0..staged.len() {
        let published = match staged.get_mut(index) {
            Some(copy) => run_as_owner(&mut as_owner, index, || copy.publish()),
            None => Ok(()),
        };
        if let Err(error) = published {
            return Err(withdraw(staged, &mut as_owner, index, error));
        }
    }
    Ok(())
}

/// Takes back every copy after the step at `index` failed with `error`.
fn withdraw<O>(
    staged: Vec<Staged>,
    as_owner: &mut O,
    index: usize,
    error: StoreError,
) -> Undelivered
where
    O: FnMut(usize, &mut dyn FnMut()),
{
    let mut not_withdrawn = Vec::new();
    for (at, mut copy) in staged.into_iter().enumerate() {
        if let Err(error) = run_as_owner(as_owner, at, || copy.discard()) {
            not_withdrawn.push((at, error));
        }
    }
    Undelivered {
        index,
        error,
        not_withdrawn,
    }
}

/// Runs `step` through `as_owner` for the Maildir at `index`.
fn run_as_owner<T, O>(
    as_owner: &mut O,
    index: usize,
    step: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError>
where
    O: FnMut(usize, &mut dyn FnMut()),
{
    let mut step = Some(step);
    let mut result = None;
    as_owner(index, &mut || {
        if let Some(step) = step.take() {
            result = Some(step());
        }
    });
    result.unwrap_or_else(|| {
        Err(StoreError::io(
            "switching to the Maildir owner's identity",
            io::Error::other("the step was not run"),
        ))
    })
}

/// A new unique name for a message delivered at `now` on `host`, with its
/// size on disk and on the wire.
fn unique_name(now: SystemTime, host: &str, octets: u64, wire_size: u64) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let count = DELIVERIES.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{count}.{},S={octets},W={wire_size}",
        since.as_secs(),
        since.subsec_micros(),
        std::process::id(),
        safe_host(host),
    )
}

/// `host` as it may appear in a file name: letters, digits, `.`, `-` and
/// `_`, anything else as `_`; `localhost` when empty.
fn safe_host(host: &str) -> String {
    if host.is_empty() {
        return "localhost".into();
    }
    host.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{name, uidl, Mailbox, OpenOptions, SIZE_CACHE_FILE};
    use proptest::prelude::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    const MESSAGE: &[u8] = b"Subject: hi\n\nline one\n.line two\n";

    fn maildir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        create::open_root(&maildir).unwrap();
        (dir, maildir)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Runs every step as is: no identity to switch in these tests.
    fn as_is(_: usize, step: &mut dyn FnMut()) {
        step();
    }

    #[test]
    fn a_delivered_message_is_in_new_with_its_sizes_in_the_name() {
        let (_dir, maildir) = maildir();
        deliver(&[&maildir], MESSAGE, "mail.example.com", as_is).unwrap();
        let delivered = names(&maildir.join("new"));
        assert_eq!(delivered.len(), 1);
        let name = &delivered[0];
        assert!(names(&maildir.join("tmp")).is_empty());
        let path = maildir.join("new").join(name);
        assert_eq!(fs::read(&path).unwrap(), MESSAGE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let wire = wire::wire_size(MESSAGE).unwrap();
        assert_eq!(wire, MESSAGE.len() as u64 + 4);
        assert!(
            name.ends_with(&format!(".mail.example.com,S={},W={wire}", MESSAGE.len())),
            "{name}"
        );
    }

    #[test]
    fn the_reader_takes_the_size_from_the_name_without_reading_the_file() {
        let (_dir, maildir) = maildir();
        deliver(&[&maildir], MESSAGE, "host", as_is).unwrap();
        let mailbox = Mailbox::open(&maildir, &OpenOptions::default()).unwrap();
        assert_eq!(mailbox.size(0), Some(wire::wire_size(MESSAGE).unwrap()));
        // Sizes learnt by reading a file would have been cached.
        assert!(!maildir.join(SIZE_CACHE_FILE).exists());
    }

    #[test]
    fn a_missing_maildir_is_created_for_the_first_message() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("ann/Maildir");
        deliver(&[&maildir], MESSAGE, "host", as_is).unwrap();
        assert_eq!(names(&maildir.join("new")).len(), 1);
        assert!(maildir.join("cur").is_dir());
    }

    #[test]
    fn symlinked_tmp_or_new_receive_nothing() {
        for linked in [&["new"][..], &["tmp"], &["tmp", "new"]] {
            let (dir, maildir) = maildir();
            let elsewhere = dir.path().join("elsewhere");
            fs::create_dir(&elsewhere).unwrap();
            for sub in linked {
                fs::remove_dir(maildir.join(sub)).unwrap();
                symlink(&elsewhere, maildir.join(sub)).unwrap();
            }
            let error = deliver(&[&maildir], MESSAGE, "host", as_is)
                .unwrap_err()
                .error;
            assert!(error.is_temporary(), "{error}");
            assert!(names(&elsewhere).is_empty(), "{linked:?}");
            for sub in ["tmp", "new"] {
                if !linked.contains(&sub) {
                    assert!(names(&maildir.join(sub)).is_empty(), "{linked:?} {sub}");
                }
            }
        }
    }

    #[test]
    fn a_file_in_place_of_tmp_fails_the_delivery() {
        let (_dir, maildir) = maildir();
        fs::remove_dir(maildir.join("tmp")).unwrap();
        fs::write(maildir.join("tmp"), b"").unwrap();
        assert!(deliver(&[&maildir], MESSAGE, "host", as_is).is_err());
        assert!(names(&maildir.join("new")).is_empty());
    }

    #[test]
    fn all_or_nothing_across_maildirs() {
        let dir = tempfile::tempdir().unwrap();
        let maildirs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|u| dir.path().join(u)).collect();
        for maildir in &maildirs {
            create::open_root(maildir).unwrap();
        }
        // The last one cannot take a copy: nobody gets one.
        fs::remove_dir(maildirs[2].join("tmp")).unwrap();
        fs::write(maildirs[2].join("tmp"), b"").unwrap();
        let failed = deliver(&maildirs, MESSAGE, "host", as_is).unwrap_err();
        assert_eq!(failed.index, 2);
        assert!(failed.not_withdrawn.is_empty());
        for maildir in &maildirs[..2] {
            assert!(names(&maildir.join("new")).is_empty());
            assert!(names(&maildir.join("tmp")).is_empty());
        }
        // Fixed, a retry gives each exactly one copy.
        fs::remove_file(maildirs[2].join("tmp")).unwrap();
        fs::create_dir(maildirs[2].join("tmp")).unwrap();
        deliver(&maildirs, MESSAGE, "host", as_is).unwrap();
        for maildir in &maildirs {
            assert_eq!(names(&maildir.join("new")).len(), 1);
            assert!(names(&maildir.join("tmp")).is_empty());
        }
    }

    #[test]
    fn a_failed_publish_takes_back_the_copies_already_published() {
        let dir = tempfile::tempdir().unwrap();
        let maildirs: Vec<PathBuf> = ["a", "b"].iter().map(|u| dir.path().join(u)).collect();
        for maildir in &maildirs {
            create::open_root(maildir).unwrap();
        }
        // The owner of "b" cannot be switched to at the publishing step.
        let mut steps = 0;
        let failed = deliver(&maildirs, MESSAGE, "host", |index, step| {
            steps += 1;
            if !(index == 1 && steps == 4) {
                step();
            }
        })
        .unwrap_err();
        assert_eq!(failed.index, 1);
        assert!(failed.error.is_temporary());
        for maildir in &maildirs {
            assert!(names(&maildir.join("new")).is_empty());
            assert!(names(&maildir.join("tmp")).is_empty());
        }
    }

    #[test]
    fn a_published_copy_a_reader_moved_on_is_still_taken_back() {
        let (_dir, maildir) = maildir();
        let mut staged = Staged::write(&maildir, MESSAGE, "host").unwrap();
        staged.publish().unwrap();
        let name = staged.name.clone();
        fs::rename(
            maildir.join("new").join(&name),
            maildir.join("cur").join(format!("{name}:2,")),
        )
        .unwrap();
        staged.discard().unwrap();
        assert!(names(&maildir.join("cur")).is_empty());
    }

    #[test]
    fn hosts_cannot_break_the_name() {
        assert_eq!(safe_host("mail.example.com"), "mail.example.com");
        assert_eq!(safe_host("a/b:c,W=1"), "a_b_c_W_1");
        assert_eq!(safe_host(""), "localhost");
    }

    proptest! {
        #[test]
        fn names_read_back_as_written(
            host in ".{0,40}",
            octets in any::<u64>(),
            wire in any::<u64>(),
            secs in 0u64..=4_000_000_000,
        ) {
            let now = UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let file_name = unique_name(now, &host, octets, wire);
            let unique = name::unique_name(file_name.as_bytes());
            prop_assert_eq!(unique, file_name.as_bytes());
            prop_assert_eq!(name::wire_size_hint(unique), Some(wire));
            prop_assert_eq!(name::delivery_seconds(file_name.as_bytes()), secs);
            let sizes = format!(",S={octets},W={wire}");
            prop_assert!(file_name.ends_with(&sizes), "{}", file_name);
            prop_assert!(file_name.bytes().all(|b| (0x21..0x7f).contains(&b)));
        }

        #[test]
        fn short_hosts_give_names_that_are_their_own_uidl(host in "[a-z0-9.-]{1,12}") {
            let file_name = unique_name(SystemTime::now(), &host, 123_456, 125_000);
            prop_assert!(uidl::is_valid(file_name.as_bytes()), "{}", file_name);
        }
    }
}
