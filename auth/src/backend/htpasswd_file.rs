//! The htpasswd backend: a file, watched for changes.
//!
//! The file is read when the authenticator is built; an unreadable file is
//! an error then. Afterwards, every check first asks whether the file
//! changed (at most once per interval, one `stat`), comparing device, inode,
//! size, modification and change times: the [`watched_file`](crate::watched_file)
//! module does the looking, this one the reading. A changed file is read again and
//! replaces the table in one step; checks already running finish with the old
//! table. A file that is rewritten while it is being read (`htpasswd`
//! rewrites in place) is read again, up to three times.
//!
//! Names are folded by the configured [`LoginNameCase`] as the file is read;
//! a file with two entries that fold to the same name (`Bob` and `bob`) is
//! refused, naming both.
//!
//! A read that fails after start-up — the file unreadable (popgate dropped to
//! `mail_user`, and the file is root's), vanished mid-rename, grown too
//! large, or holding a case clash — keeps the table in force and says so in
//! **one** log line: logins go on with the users loaded last, rather than
//! every login answering `[SYS/TEMP]` until an admin notices. The failed
//! file's identity is remembered, so the next attempt waits for the file to
//! change again instead of failing (and logging) once a second.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{Answer, Refresh, MAX_HTPASSWD_SIZE};
use crate::hash::StoredHash;
use crate::htpasswd::{LoadReport, Lookup, Table};
use crate::login_name::LoginNameCase;
use crate::sync;
use crate::watched_file::{FileIdentity, FileWatch, Seen};
use crate::AuthError;

/// How many skipped lines are logged one by one on each load.
const MAX_LOGGED_LINES: usize = 20;

/// An htpasswd file and its current table.
pub(crate) struct HtpasswdFile {
    case: LoginNameCase,
    state: RwLock<State>,
    watch: FileWatch,
    hash_verifications: AtomicU64,
}

/// The table in force.
struct State {
    table: Arc<Table>,
    report: LoadReport,
    /// Raised on every reload.
    generation: u64,
}

impl HtpasswdFile {
    /// Reads the file at `path`, folding names by `case`.
    pub(crate) fn open(path: &Path, case: LoginNameCase) -> Result<HtpasswdFile, AuthError> {
        let (table, report, seen) = read_table(path, case)?;
        Ok(HtpasswdFile {
            case,
            state: RwLock::new(State {
                table: Arc::new(table),
                report,
                generation: 0,
            }),
            watch: FileWatch::new(path, seen),
            hash_verifications: AtomicU64::new(0),
        })
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        self.watch.path()
    }

    /// Checks `password` for `user` (a folded name) against the current table.
    pub(crate) fn verify(&self, user: &str, password: &str) -> Answer {
        let (table, generation) = {
            let state = sync::read(&self.state);
            (Arc::clone(&state.table), state.generation)
        };
        match table.lookup(user) {
            Lookup::Found(hash) => {
                if self.check(hash, password) {
                    Answer::Valid {
                        home: None,
                        system: None,
                        generation,
                    }
                } else {
                    Answer::Invalid
                }
            }
            Lookup::Unusable | Lookup::Missing => {
                self.spend_decoy_on(&table, password);
                Answer::Invalid
            }
        }
    }

    /// Whether `user` has an entry with a usable hash in the current table.
    pub(crate) fn lookup(&self, user: &str) -> Answer {
        let state = sync::read(&self.state);
        match state.table.lookup(user) {
            Lookup::Found(_) => Answer::Valid {
                home: None,
                system: None,
                generation: state.generation,
            },
            Lookup::Unusable | Lookup::Missing => Answer::Invalid,
        }
    }

    /// Spends the work of one failed check.
    pub(crate) fn spend_decoy(&self, password: &str) {
        let table = Arc::clone(&sync::read(&self.state).table);
        self.spend_decoy_on(&table, password);
    }

    /// Reloads the file if it changed since it was last looked at; looks at
    /// most once per `interval`. While another thread is looking, answers at
    /// once. A failed read keeps the table in force and logs one line; the
    /// file is not read again until it changes again.
    pub(crate) fn refresh(&self, interval: Duration) -> Refresh {
        match self.watch.refresh(interval, || self.load()) {
            None => Refresh::Unchanged,
            Some(Ok(())) => Refresh::Reloaded,
            Some(Err(error)) => {
                tracing::error!(
                    path = %self.path().display(),
                    %error,
                    "htpasswd file changed but cannot be loaded: the users loaded before stay in force"
                );
                Refresh::Unchanged
            }
        }
    }

    /// True when [`refresh`](Self::refresh) would look at the file now (or
    /// another thread is looking).
    pub(crate) fn refresh_due(&self, interval: Duration) -> bool {
        self.watch.due(interval).unwrap_or(true)
    }

    /// Reads the file again now; on error the table in force stays.
    pub(crate) fn reload(&self) -> Result<(), AuthError> {
        self.watch.reload(|| self.load())
    }

    /// The version of the table, raised by every reload.
    pub(crate) fn generation(&self) -> u64 {
        sync::read(&self.state).generation
    }

    /// What the last successful read of the file found.
    pub(crate) fn report(&self) -> LoadReport {
        sync::read(&self.state).report.clone()
    }

    /// How many password hashes were computed, decoys included.
    pub(crate) fn hash_verifications(&self) -> u64 {
        self.hash_verifications.load(Ordering::Relaxed)
    }

    fn check(&self, hash: &StoredHash, password: &str) -> bool {
        self.hash_verifications.fetch_add(1, Ordering::Relaxed);
        hash.verify(password.as_bytes())
    }

    fn spend_decoy_on(&self, table: &Table, password: &str) {
        if let Some(decoy) = table.decoy() {
            // The answer is meaningless and thrown away; only the work counts.
            std::hint::black_box(self.check(decoy, std::hint::black_box(password)));
        }
    }

    /// Reads the file and installs its table; on error keeps the table in
    /// force (the watch remembers the file as it is now, so that only a
    /// further change brings another attempt).
    fn load(&self) -> Result<((), Seen), AuthError> {
        let (table, report, seen) = read_table(self.path(), self.case)?;
        let mut state = sync::write(&self.state);
        *state = State {
            table: Arc::new(table),
            report,
            generation: state.generation.wrapping_add(1),
        };
        Ok(((), seen))
    }
}

impl fmt::Debug for HtpasswdFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = sync::read(&self.state);
        f.debug_struct("HtpasswdFile")
            .field("path", &self.path())
            .field("case", &self.case)
            .field("entries", &state.report.entries)
            .finish_non_exhaustive()
    }
}

/// Reads and parses the file; refuses a file with a case clash.
fn read_table(path: &Path, case: LoginNameCase) -> Result<(Table, LoadReport, Seen), AuthError> {
    let (contents, seen) = read_file(path)?;
    let (table, report) = Table::parse(&contents, case);
    if !report.case_clashes.is_empty() {
        return Err(AuthError::HtpasswdCaseClash {
            path: path.to_owned(),
            clashes: report.case_clashes,
        });
    }
    log_load(path, &report);
    Ok((table, report, seen))
}

/// Reads the whole file, and the identity it had while being read
/// ([`Seen::Unsettled`] if it kept changing).
fn read_file(path: &Path) -> Result<(Vec<u8>, Seen), AuthError> {
    let unreadable = |source| AuthError::HtpasswdUnreadable {
        path: path.to_owned(),
        source,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let before = FileIdentity::of(path).map_err(unreadable)?;
        let mut contents = Vec::new();
        File::open(path)
            .and_then(|file| file.take(MAX_HTPASSWD_SIZE + 1).read_to_end(&mut contents))
            .map_err(unreadable)?;
        if u64::try_from(contents.len()).map_or(true, |len| len > MAX_HTPASSWD_SIZE) {
            return Err(AuthError::HtpasswdTooLarge {
                path: path.to_owned(),
                limit: MAX_HTPASSWD_SIZE,
            });
        }
        let after = FileIdentity::of(path).map_err(unreadable)?;
        if before == after {
            return Ok((contents, Seen::File(after)));
        }
        if attempts == 3 {
            return Ok((contents, Seen::Unsettled));
        }
    }
}

/// Logs what a load found: a summary, and each problem line by number.
fn log_load(path: &Path, report: &LoadReport) {
    tracing::info!(
        path = %path.display(),
        entries = report.entries,
        skipped = report.skipped.len(),
        unsupported = report.unsupported.len(),
        "htpasswd file loaded"
    );
    for skipped in report.skipped.iter().take(MAX_LOGGED_LINES) {
        tracing::warn!(
            path = %path.display(),
            line = skipped.line,
            reason = %skipped.reason,
            "htpasswd line skipped"
        );
    }
    for line in report.unsupported.iter().take(MAX_LOGGED_LINES) {
        tracing::warn!(
            path = %path.display(),
            line,
            "htpasswd entry has an unsupported hash scheme (use bcrypt, SHA-crypt, $apr1$ or {{SHA}}); \
             that user cannot log in"
        );
    }
}
