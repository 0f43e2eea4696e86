//! Reading an htpasswd file.
//!
//! The format is Apache's: one `user:hash` per line. Blank lines and lines
//! starting with `#` are ignored; so is anything after a second `:` (some
//! tools keep comments there). This module turns the bytes of a file into a
//! [`Table`] and a [`LoadReport`] that says what was left out:
//!
//! * a line that cannot be an entry (no `:`, an invalid login name, an empty
//!   hash, not UTF-8) is **skipped**;
//! * a user listed twice keeps the first entry, as Apache does; the later
//!   line is skipped;
//! * two entries whose names are spelt differently but fold to the same
//!   login name ([`LoginNameCase::fold`]: `Bob` and `bob` under `"lower"`)
//!   are a **case clash**: which password would `BOB` have? The report
//!   names both, and the backend refuses such a file;
//! * an entry whose hash is of an **unsupported** kind (DES crypt,
//!   plaintext, a damaged hash) is kept, but that user can never log in.
//!
//! The report names lines by number only: a malformed line may well hold a
//! password, so its text is never repeated.
//!
//! The table also picks the **decoy**: the hash of the kind and cost that
//! most entries share. Names with no usable entry are checked against it, so
//! an unknown user costs as much as a wrong password.

use std::collections::HashMap;
use std::fmt;

use crate::hash::{StoredHash, Work};
use crate::login_name::{validate_login_name, LoginNameCase};

/// What loading an htpasswd file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Users loaded, including those whose hash is unsupported.
    pub entries: usize,
    /// Lines left out: malformed, or a user listed a second time.
    pub skipped: Vec<SkippedLine>,
    /// Line numbers (from 1) of entries whose hash scheme is unsupported or
    /// whose hash is malformed: these users cannot log in.
    pub unsupported: Vec<usize>,
    /// Entries whose names differ only by case once folded; the later line
    /// of each pair is not loaded, and a file with any is refused.
    pub case_clashes: Vec<CaseClash>,
}

impl LoadReport {
    /// Whether anything deserves a warning.
    pub fn has_warnings(&self) -> bool {
        !self.skipped.is_empty() || !self.unsupported.is_empty() || !self.case_clashes.is_empty()
    }
}

/// Two entries of an htpasswd file whose names are spelt differently but
/// fold to the same login name (`Bob` and `bob`, under `"lower"`).
///
/// The names are shown: they passed the login-name rule, so they are plain
/// ASCII without spaces or control characters, and they are the admin's own
/// file's user names, not secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseClash {
    /// The line of the first entry, from 1.
    pub first_line: usize,
    /// The name on that line, as written.
    pub first_name: String,
    /// The line of the later entry.
    pub line: usize,
    /// The name on that line, as written.
    pub name: String,
}

impl fmt::Display for CaseClash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\" (line {}) and \"{}\" (line {}) differ only by case",
            self.first_name, self.first_line, self.name, self.line
        )
    }
}

/// A line of an htpasswd file that was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkippedLine {
    /// The line number, from 1.
    pub line: usize,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Why a line of an htpasswd file was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The line is not valid UTF-8.
    NotUtf8,
    /// The line has no `:` between user and hash.
    NoSeparator,
    /// The user name breaks the login-name rule, so it could never log in.
    InvalidUserName,
    /// The hash is empty.
    EmptyHash,
    /// The user already has an entry on an earlier line.
    DuplicateUser,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::NotUtf8 => "not valid UTF-8",
            SkipReason::NoSeparator => "no ':' between user and hash",
            SkipReason::InvalidUserName => "the user name is not a valid login name",
            SkipReason::EmptyHash => "the hash is empty",
            SkipReason::DuplicateUser => "the user is listed on an earlier line",
        })
    }
}

/// Checks the contents of an htpasswd file without keeping it: the
/// [`LoadReport`] that [`Authenticator::report`](crate::Authenticator::report)
/// gives after loading a file with these bytes, names folded by `case`.
/// Never fails; the fuzzers drive the parser through it.
///
/// ```
/// use popgate_auth::{check_htpasswd, LoginNameCase};
///
/// let file = b"# users\nalice:{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o=\nbob\nAlice:{SHA}x\n";
/// let report = check_htpasswd(file, LoginNameCase::Lower);
/// assert_eq!(report.entries, 1);
/// assert_eq!(report.skipped[0].line, 3);
/// assert_eq!(report.case_clashes[0].line, 4);
/// assert!(check_htpasswd(file, LoginNameCase::Exact).case_clashes.is_empty());
/// ```
pub fn check_htpasswd(contents: &[u8], case: LoginNameCase) -> LoadReport {
    Table::parse(contents, case).1
}

/// What the table knows about a user.
pub(crate) enum Lookup<'a> {
    /// The user has a usable hash.
    Found(&'a StoredHash),
    /// The user is listed, with an unsupported hash.
    Unusable,
    /// The user is not listed.
    Missing,
}

/// The users of an htpasswd file and their hashes, by folded name.
pub(crate) struct Table {
    entries: HashMap<String, Option<StoredHash>>,
    decoy: Option<StoredHash>,
}

impl Table {
    /// Parses the contents of an htpasswd file, folding each name by
    /// `case`. Never fails: what cannot be used is listed in the report.
    pub(crate) fn parse(contents: &[u8], case: LoginNameCase) -> (Table, LoadReport) {
        let mut entries: HashMap<String, Option<StoredHash>> = HashMap::new();
        // The first line and spelling of each folded name.
        let mut spelt: HashMap<String, (usize, &str)> = HashMap::new();
        let mut report = LoadReport::default();
        // One candidate decoy per kind of work, in order of first appearance,
        // with the number of entries of that kind.
        let mut kinds: Vec<(Work, usize, StoredHash)> = Vec::new();
        for (index, raw) in contents.split(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            let raw = raw.trim_ascii();
            if raw.is_empty() || raw.starts_with(b"#") {
                continue;
            }
            let (user, hash) = match parse_line(raw) {
                Ok(entry) => entry,
                Err(reason) => {
                    report.skipped.push(SkippedLine { line, reason });
                    continue;
                }
            };
            let folded = case.fold(user);
            if let Some(&(first_line, first_name)) = spelt.get(&folded) {
                if first_name == user {
                    report.skipped.push(SkippedLine {
                        line,
                        reason: SkipReason::DuplicateUser,
                    });
                } else {
                    report.case_clashes.push(CaseClash {
                        first_line,
                        first_name: first_name.to_owned(),
                        line,
                        name: user.to_owned(),
                    });
                }
                continue;
            }
            spelt.insert(folded.clone(), (line, user));
            let stored = StoredHash::parse(hash);
            match &stored {
                Some(stored) => {
                    let work = stored.work();
                    match kinds.iter_mut().find(|(kind, _, _)| *kind == work) {
                        Some((_, count, _)) => *count += 1,
                        None => kinds.push((work, 1, stored.clone())),
                    }
                }
                None => report.unsupported.push(line),
            }
            entries.insert(folded, stored);
        }
        report.entries = entries.len();
        let mut decoy: Option<(usize, StoredHash)> = None;
        for (_, count, hash) in kinds {
            if decoy.as_ref().is_none_or(|(best, _)| count > *best) {
                decoy = Some((count, hash));
            }
        }
        let table = Table {
            entries,
            decoy: decoy.map(|(_, hash)| hash),
        };
        (table, report)
    }

    /// Looks `user`, an already folded name, up.
    pub(crate) fn lookup(&self, user: &str) -> Lookup<'_> {
        match self.entries.get(user) {
            Some(Some(hash)) => Lookup::Found(hash),
            Some(None) => Lookup::Unusable,
            None => Lookup::Missing,
        }
    }

    /// The hash that names without a usable entry are checked against:
    /// one of the kind and cost most entries share (`None` if the table has
    /// no usable entry).
    pub(crate) fn decoy(&self) -> Option<&StoredHash> {
        self.decoy.as_ref()
    }
}

/// Splits a non-blank line into user and hash.
fn parse_line(raw: &[u8]) -> Result<(&str, &str), SkipReason> {
    let text = std::str::from_utf8(raw).map_err(|_| SkipReason::NotUtf8)?;
    let (user, rest) = text.split_once(':').ok_or(SkipReason::NoSeparator)?;
    if validate_login_name(user).is_err() {
        return Err(SkipReason::InvalidUserName);
    }
    let hash = rest.split(':').next().unwrap_or(rest);
    if hash.is_empty() {
        return Err(SkipReason::EmptyHash);
    }
    Ok((user, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FILE: &str = "\
# users of example.com
alice:$2y$05$2Jrpkdi9cBL.eBt0QMvosuvO6YQxw9tgWYAe4s/9gwjqWTM.49IFi

  bob:$apr1$r31LLsM8$/7MTMsB2tDroVeGVvBXr5.:Bob's comment field\r
frank:Bqj8Vw14x2dO6
gina:plain
no separator here
../evil:$apr1$r31LLsM8$/7MTMsB2tDroVeGVvBXr5.
empty:
alice:$apr1$r31LLsM8$/7MTMsB2tDroVeGVvBXr5.
erin:{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o=
carol:$2b$05$78PWPI/CjSv3SGoc4DvG6eVeS9HG8rZkP2A2/eYD78hcD/DSuhm7S
";

    #[test]
    fn entries_skipped_lines_and_unsupported_hashes() {
        let (table, report) = Table::parse(FILE.as_bytes(), LoginNameCase::Exact);
        assert_eq!(report.entries, 6);
        assert_eq!(
            report.skipped,
            [
                SkippedLine {
                    line: 7,
                    reason: SkipReason::NoSeparator
                },
                SkippedLine {
                    line: 8,
                    reason: SkipReason::InvalidUserName
                },
                SkippedLine {
                    line: 9,
                    reason: SkipReason::EmptyHash
                },
                SkippedLine {
                    line: 10,
                    reason: SkipReason::DuplicateUser
                },
            ]
        );
        assert_eq!(report.unsupported, [5, 6]);
        assert!(report.has_warnings());

        let Lookup::Found(alice) = table.lookup("alice") else {
            panic!("alice not found")
        };
        assert!(alice.verify(b"correct horse"), "the first alice line wins");
        let Lookup::Found(bob) = table.lookup("bob") else {
            panic!("bob not found")
        };
        assert!(bob.verify(b"apache md5"), "comment fields are ignored");
        assert!(matches!(table.lookup("frank"), Lookup::Unusable));
        assert!(matches!(table.lookup("gina"), Lookup::Unusable));
        assert!(matches!(table.lookup("Alice"), Lookup::Missing));
        assert!(matches!(table.lookup("nobody"), Lookup::Missing));
    }

    #[test]
    fn names_are_folded_and_case_clashes_reported() {
        const SHA: &str = "{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o=";
        let file = format!(
            "Bob:{SHA}\nbob:{SHA}\nBob:{SHA}\n\
             carol@Example.COM:{SHA}\nCarol@example.com:{SHA}\ncarol@EXAMPLE.com:{SHA}\n"
        );
        let clash = |first_line, first_name: &str, line, name: &str| CaseClash {
            first_line,
            first_name: first_name.into(),
            line,
            name: name.into(),
        };
        let (table, report) = Table::parse(file.as_bytes(), LoginNameCase::Lower);
        assert_eq!(report.entries, 2);
        assert!(matches!(table.lookup("bob"), Lookup::Found(_)));
        assert!(
            matches!(table.lookup("Bob"), Lookup::Missing),
            "lookups take folded names"
        );
        assert!(matches!(
            table.lookup("carol@example.com"),
            Lookup::Found(_)
        ));
        assert_eq!(
            report.skipped,
            [SkippedLine {
                line: 3,
                reason: SkipReason::DuplicateUser
            }],
            "the same spelling again is Apache's duplicate"
        );
        assert_eq!(
            report.case_clashes,
            [
                clash(1, "Bob", 2, "bob"),
                clash(4, "carol@Example.COM", 5, "Carol@example.com"),
                clash(4, "carol@Example.COM", 6, "carol@EXAMPLE.com"),
            ]
        );
        assert_eq!(
            report.case_clashes[0].to_string(),
            "\"Bob\" (line 1) and \"bob\" (line 2) differ only by case"
        );
        assert!(report.has_warnings());

        // Local parts as written; the domain is never case-sensitive.
        let (table, report) = Table::parse(file.as_bytes(), LoginNameCase::Exact);
        assert_eq!(report.entries, 4);
        assert!(matches!(table.lookup("Bob"), Lookup::Found(_)));
        assert!(matches!(table.lookup("bob"), Lookup::Found(_)));
        assert!(matches!(
            table.lookup("Carol@example.com"),
            Lookup::Found(_)
        ));
        assert_eq!(
            report.case_clashes,
            [clash(4, "carol@Example.COM", 6, "carol@EXAMPLE.com")]
        );
    }

    #[test]
    fn the_decoy_has_the_most_common_work() {
        let (table, _) = Table::parse(FILE.as_bytes(), LoginNameCase::Exact);
        // Two bcrypt cost-5 entries, one MD5, one SHA-1.
        assert_eq!(table.decoy().map(StoredHash::work), Some(Work::Bcrypt(5)));

        let (table, _) = Table::parse(
            b"a:{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o=\nb:$apr1$abc$BfqKdn9xFDWJPa3kcp/PH0\n",
            LoginNameCase::Lower,
        );
        assert_eq!(
            table.decoy().map(StoredHash::work),
            Some(Work::Sha1),
            "ties: first"
        );

        let (table, report) = Table::parse(b"frank:Bqj8Vw14x2dO6\n", LoginNameCase::Lower);
        assert!(table.decoy().is_none());
        assert_eq!(report.entries, 1);
    }

    #[test]
    fn non_utf8_lines_are_skipped() {
        let (table, report) = Table::parse(
            b"\xff\xfe:x\nerin:{SHA}/HL0E2fe0k86oFqfSf2+njzD3+o=",
            LoginNameCase::Lower,
        );
        assert_eq!(
            report.skipped,
            [SkippedLine {
                line: 1,
                reason: SkipReason::NotUtf8
            }]
        );
        assert!(matches!(table.lookup("erin"), Lookup::Found(_)));
        assert_eq!(SkipReason::NotUtf8.to_string(), "not valid UTF-8");
    }

    #[test]
    fn empty_file() {
        let (table, report) = Table::parse(b"", LoginNameCase::Lower);
        assert_eq!(report, LoadReport::default());
        assert!(!report.has_warnings());
        assert!(table.decoy().is_none());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(contents in proptest::collection::vec(any::<u8>(), 0..400)) {
            let (_, report) = Table::parse(&contents, LoginNameCase::Lower);
            prop_assert!(report.entries <= contents.len());
        }

        #[test]
        fn parsing_line_like_text_never_panics(text in "([a-z.@:#$ \r\n{}SHA0-9/]{0,30}\n){0,8}") {
            let _ = Table::parse(text.as_bytes(), LoginNameCase::Lower);
        }
    }
}
