//! The mailbox-settings file, parsed: one table per login name, each key
//! optional, every value kept with the line it was written on.
//!
//! ```toml
//! [reply-bot]
//! on_dele = "delete"
//! order = "newest-first"
//! max_connections = 2
//! [bob]
//! pop3 = true
//! submission = false
//! addresses = ["bob@example.com", "sales@example.com"]
//! ```
//!
//! [`MailboxTable::parse`] is pure (text in, table or error out). A file
//! that cannot work is refused whole, with the line at fault: an unknown
//! key (a typo must never silently leave a mailbox with the global
//! policy), a value of the wrong type, an `on_dele` or `order` the store
//! does not know, a `max_connections` of 0, an address MAIL FROM could not
//! carry, a table name that breaks the login-name rule, two tables for one
//! user. Names are folded by `[auth] login_name_case` as logins are, so
//! `[Bob]` is the table of the account `bob`, and `[Bob]` beside `[bob]`
//! is two tables for one user.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use popgate_auth::{validate_login_name, LoginNameCase};
use popgate_store::{OnDele, Order};
use serde::Deserialize;
use toml::Spanned;

use crate::submission::address::Mailbox;

/// The largest mailbox-settings file read, in bytes.
pub const MAX_FILE_SIZE: u64 = 16 << 20;

/// A value from the file and the line (from 1) it was written on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lined<T> {
    /// The value.
    pub value: T,
    /// Its line in the file.
    pub line: usize,
}

/// One user's table: the keys it sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxEntry {
    /// POP3 on or off for the mailbox.
    pub pop3: Option<Lined<bool>>,
    /// Submission logins allowed or not.
    pub submission: Option<Lined<bool>>,
    /// What UPDATE does with deleted messages.
    pub on_dele: Option<Lined<OnDele>>,
    /// The order messages are listed in.
    pub order: Option<Lined<Order>>,
    /// Logged-in POP3 sessions of the user at once.
    pub max_connections: Option<Lined<usize>>,
    /// More sender addresses, besides `[submission.addresses]`.
    pub addresses: Vec<Lined<String>>,
}

/// A parsed mailbox-settings file, by folded login name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxTable {
    path: Arc<Path>,
    entries: HashMap<String, MailboxEntry>,
}

/// A mailbox-settings file that cannot be used: the file, the line when
/// one is at fault, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MailboxFileError {
    /// The file.
    pub path: PathBuf,
    /// The line at fault, from 1.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MailboxFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// A user's table as written, before its values are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    pop3: Option<Spanned<bool>>,
    submission: Option<Spanned<bool>>,
    on_dele: Option<Spanned<String>>,
    order: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
    addresses: Option<Vec<Spanned<String>>>,
}

impl MailboxTable {
    /// A table with no user in it, for `path`.
    pub fn empty(path: &Path) -> MailboxTable {
        MailboxTable {
            path: Arc::from(path),
            entries: HashMap::new(),
        }
    }

    /// Parses `text`, the contents of `path`, folding names by `case`.
    pub fn parse(
        path: &Path,
        text: &str,
        case: LoginNameCase,
    ) -> Result<MailboxTable, MailboxFileError> {
        let error = |line: Option<usize>, message: String| MailboxFileError {
            path: path.to_owned(),
            line,
            message,
        };
        let line_of = |offset: usize| line_at(text, offset);
        let raw: BTreeMap<Spanned<String>, RawEntry> = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(s.start));
            let mut message = e.message().to_owned();
            if let Some(header) = line.and_then(|line| unquoted_header(text, line)) {
                message.push_str(&format!(
                    " (a name with `.` or `@` is written in quotes: [\"{header}\"])"
                ));
            }
            error(line, message)
        })?;
        // In the file's order, so that of two tables for one user the
        // second is the one named at fault.
        let mut raw: Vec<(Spanned<String>, RawEntry)> = raw.into_iter().collect();
        raw.sort_by_key(|(name, _)| name.span().start);
        let mut entries: HashMap<String, MailboxEntry> = HashMap::new();
        let mut lines: HashMap<String, (usize, String)> = HashMap::new();
        for (name, raw) in raw {
            let line = line_of(name.span().start);
            let written = name.into_inner();
            if validate_login_name(&written).is_err() {
                return Err(error(
                    Some(line),
                    format!(
                        "[{written}] is not a login name (letters, digits, . _ - + @; at most 64)"
                    ),
                ));
            }
            let user = case.fold(&written);
            if let Some((first, spelt)) = lines.get(&user) {
                return Err(error(
                    Some(line),
                    format!("[{written}] is the user of [{spelt}] on line {first} too"),
                ));
            }
            let entry = raw
                .check(text, &written)
                .map_err(|(line, message)| error(Some(line), format!("[{written}] {message}")))?;
            lines.insert(user.clone(), (line, written));
            entries.insert(user, entry);
        }
        Ok(MailboxTable {
            path: Arc::from(path),
            entries,
        })
    }

    /// The file the table was read from.
    pub fn path(&self) -> &Arc<Path> {
        &self.path
    }

    /// The table of `user`, a folded login name.
    pub fn get(&self, user: &str) -> Option<&MailboxEntry> {
        self.entries.get(user)
    }

    /// How many users have a table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no user has a table.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl RawEntry {
    /// The entry, its values checked; an error gives the line and why.
    fn check(self, text: &str, user: &str) -> Result<MailboxEntry, (usize, String)> {
        let max_connections = self.max_connections.map(|v| lined(text, v));
        if let Some(Lined { value: 0, line }) = max_connections {
            return Err((line, "max_connections: must be at least 1".into()));
        }
        let mut addresses = Vec::new();
        for address in self.addresses.unwrap_or_default() {
            let address = lined(text, address);
            // As MAIL FROM reads addresses: one that does not parse so
            // could never be sent as.
            if Mailbox::parse(&address.value).is_err() {
                return Err((
                    address.line,
                    format!(
                        "addresses: `{}` (for {user}) is not an RFC 5321 email address (ASCII only)",
                        address.value
                    ),
                ));
            }
            addresses.push(address);
        }
        Ok(MailboxEntry {
            pop3: self.pop3.map(|v| lined(text, v)),
            submission: self.submission.map(|v| lined(text, v)),
            on_dele: parse_value(self.on_dele.map(|v| lined(text, v)), "on_dele")?,
            order: parse_value(self.order.map(|v| lined(text, v)), "order")?,
            max_connections,
            addresses,
        })
    }
}

/// The text of `key` parsed, as the `[pop3]` key of the same name is.
fn parse_value<T: FromStr<Err = String>>(
    written: Option<Lined<String>>,
    key: &str,
) -> Result<Option<Lined<T>>, (usize, String)> {
    let Some(Lined { value, line }) = written else {
        return Ok(None);
    };
    match value.parse() {
        Ok(value) => Ok(Some(Lined { value, line })),
        Err(error) => Err((line, format!("{key}: {error}"))),
    }
}

/// The name in a table header `[a.b]` or `[a@b]` on `line` of `text`:
/// TOML reads the first as table `b` inside table `a`, and refuses the
/// second, where a login name was meant.
fn unquoted_header(text: &str, line: usize) -> Option<&str> {
    let header = text.lines().nth(line - 1)?.trim();
    let name = header.strip_prefix('[')?.split(']').next()?.trim();
    (name.contains(['.', '@']) && !name.contains(['"', '\''])).then_some(name)
}

/// A value of `text` with its line.
fn lined<T>(text: &str, spanned: Spanned<T>) -> Lined<T> {
    Lined {
        line: line_at(text, spanned.span().start),
        value: spanned.into_inner(),
    }
}

/// The line (from 1) of the byte at `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
