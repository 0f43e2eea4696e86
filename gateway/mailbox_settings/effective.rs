//! A mailbox's effective settings, and where each comes from.
//!
//! [`resolve`] is the one place the mailbox-settings file meets the global
//! configuration: POP3 asks it at login for the switch, `on_dele`, `order`
//! and the session limit; submission for its switch and the sender
//! addresses; `popgate mailbox` prints all of it ([`describe`]) with each
//! value's [`Source`], as `Get-CASMailbox` shows Exchange admins. A key the
//! file sets wins over the global one, except that `[auth] disabled_users`
//! stays switched off whatever the file says: a switch an admin turned off
//! in one place is not turned back on from another.
//!
//! `disabled_users` is applied by `popgate-auth` before the password is
//! even accepted, and it refuses the user on every service, submission
//! included (a right password gets the disabled answer); [`resolve`] says
//! so too, so what `popgate mailbox` prints is what a login meets.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::Arc;

use popgate_auth::{LoginNameCase, Policy};
use popgate_store::{OnDele, Order};

use super::table::{Lined, MailboxEntry, MailboxTable};
use crate::config::{SenderPolicy, SettingError, Settings};

/// Where a setting's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Nothing sets it: popgate's own default.
    Default,
    /// A key of the configuration file, written as `[section] key`.
    Setting(&'static str),
    /// A line of the mailbox-settings file.
    File {
        /// The file.
        path: Arc<Path>,
        /// The line, from 1.
        line: usize,
    },
    /// The login name itself (an address, or the name at `hostname`).
    LoginName,
    /// The configuration has no `[submission]` section.
    NoSubmission,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Setting(key) => f.write_str(key),
            Source::File { path, line } => write!(f, "{} line {line}", path.display()),
            Source::LoginName => f.write_str("the login name"),
            Source::NoSubmission => f.write_str("no [submission] section"),
        }
    }
}

/// A value and its [`Source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value in force.
    pub value: T,
    /// Where it comes from.
    pub source: Source,
}

impl<T> Sourced<T> {
    fn new(value: T, source: Source) -> Sourced<T> {
        Sourced { value, source }
    }
}

/// Whom a user may send as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderAddresses {
    /// No submission is served.
    NotServed,
    /// Any address (`[submission] sender_policy = "any"`).
    Any,
    /// These addresses, each with where it comes from.
    Only(Vec<Sourced<String>>),
}

/// One mailbox's settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The login name, folded.
    pub user: String,
    /// On `[auth] deny_users`: every login is refused, as if unknown.
    pub denied: bool,
    /// Whether POP3 logins are allowed.
    pub pop3: Sourced<bool>,
    /// Whether submission logins are allowed.
    pub submission: Sourced<bool>,
    /// What UPDATE does with deleted messages.
    pub on_dele: Sourced<OnDele>,
    /// The order messages are listed in.
    pub order: Sourced<Order>,
    /// Logged-in POP3 sessions of the user at once.
    pub max_connections: Sourced<usize>,
    /// Whom the user may send as.
    pub senders: SenderAddresses,
}

/// The global settings a mailbox falls back to, from one configuration.
#[derive(Debug, Clone)]
pub struct Defaults {
    case: LoginNameCase,
    /// `deny_users` and `disabled_users`, as popgate-auth applies them.
    policy: Policy,
    on_dele: OnDele,
    order: Order,
    max_connections: usize,
    senders: Option<SenderDefaults>,
}

/// The sender settings of `[submission]`.
#[derive(Debug, Clone)]
struct SenderDefaults {
    policy: SenderPolicy,
    hostname: String,
    /// `[submission.addresses]` by folded login name; entries that fold
    /// together are merged.
    addresses: BTreeMap<String, Vec<String>>,
}

impl Defaults {
    /// The defaults of `settings`; the error names a key that cannot work.
    pub fn new(settings: &Settings) -> Result<Defaults, SettingError> {
        let case = LoginNameCase::from(settings.auth.login_name_case);
        let options = settings.pop3.open_options()?;
        let senders = settings.submission.as_ref().map(|submission| {
            let mut addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (user, list) in &submission.addresses {
                addresses
                    .entry(case.fold(user))
                    .or_default()
                    .extend(list.iter().cloned());
            }
            SenderDefaults {
                policy: submission.sender_policy,
                hostname: settings.hostname.clone(),
                addresses,
            }
        });
        Ok(Defaults {
            case,
            policy: Policy::new(&settings.auth.deny_users, &settings.auth.disabled_users),
            on_dele: options.on_dele,
            order: options.order,
            max_connections: settings.pop3.max_connections_per_user,
            senders,
        })
    }

    /// The name a user who sends `name` is known by (`[auth] login_name_case`).
    pub fn login_name(&self, name: &str) -> String {
        self.case.fold(name)
    }

    /// How the file's table names are folded.
    pub fn case(&self) -> LoginNameCase {
        self.case
    }
}

/// The settings of `user` (a folded login name): `table`'s entry for it
/// where it sets a key, else `defaults`.
pub fn resolve(defaults: &Defaults, table: Option<&MailboxTable>, user: &str) -> Effective {
    let entry = table.and_then(|table| Some((table.get(user)?, table.path())));
    let disabled = defaults.policy.is_disabled(user);
    let switch = |key: fn(&MailboxEntry) -> &Option<Lined<bool>>| {
        if disabled {
            return Sourced::new(false, Source::Setting("[auth] disabled_users"));
        }
        from_file(entry, key).unwrap_or(Sourced::new(true, Source::Default))
    };
    let submission = match defaults.senders {
        None => Sourced::new(false, Source::NoSubmission),
        Some(_) => switch(|e| &e.submission),
    };
    let senders = match &defaults.senders {
        None => SenderAddresses::NotServed,
        Some(senders) if senders.policy == SenderPolicy::Any => SenderAddresses::Any,
        Some(senders) => {
            let own = if user.contains('@') {
                user.to_owned()
            } else {
                format!("{user}@{}", senders.hostname)
            };
            let mut list = vec![Sourced::new(own, Source::LoginName)];
            for address in senders.addresses.get(user).into_iter().flatten() {
                list.push(Sourced::new(
                    address.clone(),
                    Source::Setting("[submission.addresses]"),
                ));
            }
            if let Some((entry, path)) = entry {
                list.extend(entry.addresses.iter().map(|address| {
                    Sourced::new(address.value.clone(), file_line(path, address.line))
                }));
            }
            SenderAddresses::Only(list)
        }
    };
    Effective {
        user: user.to_owned(),
        denied: defaults.policy.is_denied(user),
        pop3: switch(|e| &e.pop3),
        submission,
        on_dele: from_file(entry, |e| &e.on_dele).unwrap_or_else(|| {
            Sourced::new(defaults.on_dele.clone(), Source::Setting("[pop3] on_dele"))
        }),
        order: from_file(entry, |e| &e.order).unwrap_or(Sourced::new(
            defaults.order,
            Source::Setting("[pop3] order"),
        )),
        max_connections: from_file(entry, |e| &e.max_connections).unwrap_or(Sourced::new(
            defaults.max_connections,
            Source::Setting("[pop3] max_connections_per_user"),
        )),
        senders,
    }
}

/// The value `key` of a user's table, when the table sets it.
fn from_file<T: Clone>(
    entry: Option<(&MailboxEntry, &Arc<Path>)>,
    key: fn(&MailboxEntry) -> &Option<Lined<T>>,
) -> Option<Sourced<T>> {
    let (entry, path) = entry?;
    let lined = key(entry).as_ref()?;
    Some(Sourced::new(
        lined.value.clone(),
        file_line(path, lined.line),
    ))
}

/// The source of a value on `line` of `path`.
fn file_line(path: &Arc<Path>, line: usize) -> Source {
    Source::File {
        path: Arc::clone(path),
        line,
    }
}

/// `effective` as `popgate mailbox` prints it: each key as the
/// mailbox-settings file would write it, with its source in a comment.
/// `file` is the mailbox-settings file, if one is configured, and whether
/// it has a table for the user.
pub fn describe(effective: &Effective, file: Option<(&Path, bool)>) -> String {
    let mut out = String::new();
    let user = &effective.user;
    let _ = writeln!(out, "# {user}: settings in force and where each comes from");
    // The table's header as the file writes it: quoted when TOML needs it.
    let header = if user.contains(['.', '@']) {
        format!("[\"{user}\"]")
    } else {
        format!("[{user}]")
    };
    match file {
        None => out.push_str("# no [auth] mailbox_settings file\n"),
        Some((path, false)) => {
            let _ = writeln!(out, "# {} has no {header} table", path.display());
        }
        Some((path, true)) => {
            let _ = writeln!(out, "# {header} in {}", path.display());
        }
    }
    if effective.denied {
        out.push_str("# on [auth] deny_users: every login is refused, as if unknown\n");
    }
    let mut rows: Vec<(String, String)> = vec![
        row("pop3", &effective.pop3, |v| v.to_string()),
        row("submission", &effective.submission, |v| v.to_string()),
        row("on_dele", &effective.on_dele, |v| format!("\"{v}\"")),
        row("order", &effective.order, |v| format!("\"{v}\"")),
        row("max_connections", &effective.max_connections, |v| {
            v.to_string()
        }),
    ];
    let mut tail = String::new();
    match &effective.senders {
        SenderAddresses::NotServed => {}
        SenderAddresses::Any => {
            tail.push_str("# sends as any address: [submission] sender_policy = \"any\"\n");
        }
        SenderAddresses::Only(list) => {
            rows.push(("addresses = [".into(), String::new()));
            for address in list {
                rows.push((
                    format!("    \"{}\",", address.value),
                    address.source.to_string(),
                ));
            }
            rows.push(("]".into(), String::new()));
        }
    }
    let width = rows.iter().map(|(left, _)| left.len()).max().unwrap_or(0) + 2;
    for (left, source) in rows {
        if source.is_empty() {
            let _ = writeln!(out, "{left}");
        } else {
            let _ = writeln!(out, "{left:<width$}# {source}");
        }
    }
    out.push_str(&tail);
    out
}

/// One line of [`describe`]: `key = value` and the source.
fn row<T>(key: &str, sourced: &Sourced<T>, show: impl Fn(&T) -> String) -> (String, String) {
    (
        format!("{key} = {}", show(&sourced.value)),
        sourced.source.to_string(),
    )
}

#[cfg(test)]
mod tests;
