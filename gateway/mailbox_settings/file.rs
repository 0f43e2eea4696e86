//! The mailbox-settings file on disk, watched for changes as the htpasswd
//! file is.
//!
//! The file is read when the server starts; a file that cannot be read or
//! used stops start-up. Afterwards a login asks, at most once a second
//! ([`MailboxFile::refresh_due`]), whether the file changed (one `stat`:
//! device, inode, size, modification and change times); a changed file is
//! read again on a blocking thread ([`MailboxFile::refresh`]) and replaces
//! the table in one step. SIGHUP reads it again whatever its times say
//! ([`MailboxFile::reload`]). The looking is popgate-auth's
//! [`watched_file`](popgate_auth::watched_file), shared with the htpasswd
//! file; this module does the reading.
//!
//! A read that fails after start-up — a broken line, a file popgate can no
//! longer read once it runs as `mail_user`, a file gone — keeps the table
//! in force and says so in **one** log line; the failed file's identity is
//! remembered, so the next look waits for it to change again instead of
//! failing (and logging) once a second.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use popgate_auth::watched_file::{FileWatch, Seen};
use popgate_auth::LoginNameCase;
use tracing::{error, info};

use super::table::{MailboxFileError, MailboxTable, MAX_FILE_SIZE};

/// How often, at most, a login looks whether the file changed.
pub const CHANGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The mailbox-settings file and the table read from it.
#[derive(Debug)]
pub struct MailboxFile {
    case: LoginNameCase,
    table: RwLock<Arc<MailboxTable>>,
    watch: FileWatch,
}

/// What one read of the file gave.
struct Loaded {
    table: MailboxTable,
    seen: Seen,
}

impl MailboxFile {
    /// Reads the file at `path`, folding names by `case`.
    pub fn open(path: &Path, case: LoginNameCase) -> Result<MailboxFile, MailboxFileError> {
        let read = read(path, case)?;
        Ok(MailboxFile {
            case,
            table: RwLock::new(Arc::new(read.table)),
            watch: FileWatch::new(path, read.seen),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.watch.path()
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
        self.watch.due(CHANGE_CHECK_INTERVAL).unwrap_or(false)
    }

    /// Reads the file again if it changed since the last look, looking at
    /// most once a second; while another thread looks, returns at once.
    /// Blocking: call it from a blocking thread. A file that changed but
    /// cannot be used keeps the table in force, and says so in one line.
    pub fn refresh(&self) {
        self.refresh_every(CHANGE_CHECK_INTERVAL);
    }

    /// [`refresh`](Self::refresh), looking at most once per `interval`.
    fn refresh_every(&self, interval: Duration) {
        match self.watch.refresh(interval, || self.load()) {
            None => {}
            Some(Ok(users)) => info!(
                "mailbox settings reloaded: {} ({users} mailboxes)",
                self.path().display()
            ),
            Some(Err(e)) => error!(
                "mailbox settings file changed but cannot be used, the settings loaded before \
                 stay in force: {e}"
            ),
        }
    }

    /// Reads the file now, changed or not (SIGHUP); returns how many
    /// mailboxes it has. On error the table in force stays.
    pub fn reload(&self) -> Result<usize, MailboxFileError> {
        self.watch.reload(|| self.load())
    }

    /// Reads the file and puts its table in force (on error the watch
    /// remembers the file as it is, so that only a new change is read
    /// again); returns how many mailboxes it has.
    fn load(&self) -> Result<(usize, Seen), MailboxFileError> {
        let read = read(self.path(), self.case)?;
        let users = read.table.len();
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(read.table);
        Ok((users, read.seen))
    }
}

/// Reads and parses the file at `path`.
fn read(path: &Path, case: LoginNameCase) -> Result<Loaded, MailboxFileError> {
    let error = |message: String| MailboxFileError {
        path: path.to_owned(),
        line: None,
        message,
    };
    let before = Seen::now(path);
    let mut text = String::new();
    File::open(path)
        .and_then(|file| file.take(MAX_FILE_SIZE + 1).read_to_string(&mut text))
        .map_err(|e| error(e.to_string()))?;
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(error(format!("larger than {MAX_FILE_SIZE} bytes")));
    }
    let seen = Seen::settled(before, Seen::now(path));
    let table = MailboxTable::parse(path, &text, case)?;
    Ok(Loaded { table, seen })
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
        file.refresh_every(Duration::ZERO);
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
