//! The mailbox-settings file on disk, watched for changes as the htpasswd
//! file is.
//!
//! The file is read when the server starts; a file that cannot be read or
//! used stops start-up. Afterwards a login asks, at most once a second
//! ([`MailboxFile::refresh_due`]), whether the file changed (one `stat`:
//! device, inode, size, modification and change times); a changed file is
//! read again on a blocking thread ([`MailboxFile::refresh`]) and replaces
//! the table in one step. SIGHUP reads it again whatever its times say
//! ([`MailboxFile::reload`]).
//!
//! A read that fails after start-up — a broken line, a file popgate can no
//! longer read once it runs as `mail_user`, a file gone — keeps the table
//! in force and says so in **one** log line; the failed file's identity is
//! remembered, so the next look waits for it to change again instead of
//! failing (and logging) once a second.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, TryLockError};
use std::time::{Duration, Instant};

use popgate_auth::LoginNameCase;
use tracing::{error, info};

use super::table::{MailboxFileError, MailboxTable, MAX_FILE_SIZE};

/// How often, at most, a login looks whether the file changed.
pub const CHANGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The mailbox-settings file and the table read from it.
#[derive(Debug)]
pub struct MailboxFile {
    path: PathBuf,
    case: LoginNameCase,
    table: RwLock<Arc<MailboxTable>>,
    watch: Mutex<Watch>,
}

/// What was last seen of the file.
#[derive(Debug)]
struct Watch {
    /// The file as last read, or as it was when reading it failed; `None`
    /// when there was no file.
    seen: Option<FileIdentity>,
    /// The file changed while it was read: read it again at the next look.
    unsettled: bool,
    last_check: Instant,
}

/// Enough of a file's metadata to notice that it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileIdentity {
    /// The file at `path` now, if there is one.
    fn of(path: &Path) -> Option<FileIdentity> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileIdentity {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// What one read of the file gave.
struct Loaded {
    table: MailboxTable,
    seen: Option<FileIdentity>,
    unsettled: bool,
}

impl MailboxFile {
    /// Reads the file at `path`, folding names by `case`.
    pub fn open(path: &Path, case: LoginNameCase) -> Result<MailboxFile, MailboxFileError> {
        let read = read(path, case)?;
        Ok(MailboxFile {
            path: path.to_owned(),
            case,
            table: RwLock::new(Arc::new(read.table)),
            watch: Mutex::new(Watch {
                seen: read.seen,
                unsettled: read.unsettled,
                last_check: Instant::now(),
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the file's names are folded.
    pub fn case(&self) -> LoginNameCase {
        self.case
    }

    /// The table in force.
    pub fn table(&self) -> Arc<MailboxTable> {
        Arc::clone(&self.table.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// True when [`refresh`](Self::refresh) would look at the file now:
    /// the last look is a second old, and no other thread is looking.
    pub fn refresh_due(&self) -> bool {
        match self.watch.try_lock() {
            Ok(watch) => watch.last_check.elapsed() >= CHANGE_CHECK_INTERVAL,
            Err(TryLockError::Poisoned(watch)) => {
                watch.into_inner().last_check.elapsed() >= CHANGE_CHECK_INTERVAL
            }
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// Reads the file again if it changed since the last look, looking at
    /// most once a second; while another thread looks, returns at once.
    /// Blocking: call it from a blocking thread. A file that changed but
    /// cannot be used keeps the table in force, and says so in one line.
    pub fn refresh(&self) {
        let mut watch = match self.watch.try_lock() {
            Ok(watch) => watch,
            Err(TryLockError::Poisoned(watch)) => watch.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if watch.last_check.elapsed() < CHANGE_CHECK_INTERVAL {
            return;
        }
        watch.last_check = Instant::now();
        if !watch.unsettled && FileIdentity::of(&self.path) == watch.seen {
            return;
        }
        match self.load(&mut watch) {
            Ok(users) => info!(
                "mailbox settings reloaded: {} ({users} mailboxes)",
                self.path.display()
            ),
            Err(e) => error!(
                "mailbox settings file changed but cannot be used, the settings loaded before \
                 stay in force: {e}"
            ),
        }
    }

    /// Reads the file now, changed or not (SIGHUP); returns how many
    /// mailboxes it has. On error the table in force stays.
    pub fn reload(&self) -> Result<usize, MailboxFileError> {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        watch.last_check = Instant::now();
        self.load(&mut watch)
    }

    /// Reads the file and puts its table in force; on error remembers the
    /// file as it is, so that only a new change is read again.
    fn load(&self, watch: &mut Watch) -> Result<usize, MailboxFileError> {
        match read(&self.path, self.case) {
            Ok(read) => {
                let users = read.table.len();
                *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(read.table);
                watch.seen = read.seen;
                watch.unsettled = read.unsettled;
                Ok(users)
            }
            Err(error) => {
                watch.seen = FileIdentity::of(&self.path);
                watch.unsettled = false;
                Err(error)
            }
        }
    }
}

/// Reads and parses the file at `path`.
fn read(path: &Path, case: LoginNameCase) -> Result<Loaded, MailboxFileError> {
    let error = |message: String| MailboxFileError {
        path: path.to_owned(),
        line: None,
        message,
    };
    let before = FileIdentity::of(path);
    let mut text = String::new();
    File::open(path)
        .and_then(|file| file.take(MAX_FILE_SIZE + 1).read_to_string(&mut text))
        .map_err(|e| error(e.to_string()))?;
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(error(format!("larger than {MAX_FILE_SIZE} bytes")));
    }
    let seen = FileIdentity::of(path);
    let table = MailboxTable::parse(path, &text, case)?;
    Ok(Loaded {
        table,
        unsettled: before != seen,
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        // A new file renamed over the old, as editors and configuration
        // management write: a new inode, whatever the clock's resolution.
        let new = path.with_extension("new");
        std::fs::write(&new, text).unwrap();
        std::fs::rename(&new, path).unwrap();
    }

    fn on_dele(file: &MailboxFile, user: &str) -> Option<String> {
        let table = file.table();
        table
            .get(user)?
            .on_dele
            .as_ref()
            .map(|l| l.value.to_string())
    }

    fn look_now(file: &MailboxFile) {
        file.watch.lock().unwrap().last_check =
            Instant::now().checked_sub(CHANGE_CHECK_INTERVAL).unwrap();
        file.refresh();
    }

    /// A change is read at the next look; a broken change keeps the table
    /// and is not read again until the file changes once more; SIGHUP's
    /// reload reads it whatever it looks like.
    #[test]
    fn changes_are_read_and_broken_ones_keep_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailboxes.toml");
        write(&path, "[bob]\non_dele = \"keep\"\n");
        let file = MailboxFile::open(&path, LoginNameCase::Lower).unwrap();
        assert_eq!(on_dele(&file, "bob").as_deref(), Some("keep"));
        assert!(!file.refresh_due(), "looked at when opened");

        write(&path, "[bob]\non_dele = \"mark-seen\"\n");
        file.refresh();
        assert_eq!(
            on_dele(&file, "bob").as_deref(),
            Some("keep"),
            "not a second yet"
        );
        look_now(&file);
        assert_eq!(on_dele(&file, "bob").as_deref(), Some("mark-seen"));

        write(&path, "[bob]\non_del = \"delete\"\n");
        look_now(&file);
        assert_eq!(on_dele(&file, "bob").as_deref(), Some("mark-seen"));
        let error = file.reload().unwrap_err();
        assert_eq!(error.line, Some(2));
        assert_eq!(on_dele(&file, "bob").as_deref(), Some("mark-seen"));

        std::fs::remove_file(&path).unwrap();
        assert!(file.reload().is_err());
        assert_eq!(on_dele(&file, "bob").as_deref(), Some("mark-seen"));
        write(&path, "[bob]\n[carol]\non_dele = \"delete\"\n");
        assert_eq!(file.reload().unwrap(), 2);
        assert_eq!(on_dele(&file, "bob"), None);
        assert_eq!(on_dele(&file, "carol").as_deref(), Some("delete"));
    }

    #[test]
    fn a_missing_or_oversized_file_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mailboxes.toml");
        let error = MailboxFile::open(&path, LoginNameCase::Lower).unwrap_err();
        assert!(error.to_string().contains("mailboxes.toml"), "{error}");
        std::fs::write(&path, "#".repeat(MAX_FILE_SIZE as usize + 1)).unwrap();
        let error = MailboxFile::open(&path, LoginNameCase::Lower).unwrap_err();
        assert!(error.message.contains("larger than"), "{error}");
    }
}
