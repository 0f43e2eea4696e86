//! Per-mailbox settings: the file `[auth] mailbox_settings` names, one
//! table per login name, each key optional, overriding the global
//! configuration for that mailbox alone — Exchange's `Set-CASMailbox
//! -PopEnabled` and `-PopUseProtocolDefaults`.
//!
//! ```toml
//! [alice]
//! pop3 = false                 # POP3 off for this mailbox
//! [reply-bot]
//! on_dele = "delete"           # the poller's mailbox is emptied ...
//! order = "newest-first"
//! max_connections = 2
//! [bob]
//! on_dele = "keep"             # ... while a person's keeps its copies
//! submission = false           # may read but not send
//! addresses = ["bob@example.com", "sales@example.com"]
//! ```
//!
//! Reading order: [`table`] parses the file (pure, with the line of every
//! value and of every error), [`file`](mod@file) watches it on disk (read again when
//! it changes, at most once a second, and on SIGHUP), [`effective`]
//! resolves a mailbox's settings from the file and the configuration, each
//! with its source. [`Mailboxes`] ties them together for one configuration:
//! the services ask it at login ([`Mailboxes::settings_for`]), and a
//! session keeps what it was told until it ends.

pub mod effective;
pub mod file;
pub mod table;

use std::sync::Arc;

use effective::{Defaults, Effective};
use file::MailboxFile;
use table::MailboxFileError;

use crate::config::{SettingError, Settings};

/// Why `popgate mailbox` cannot say a mailbox's settings.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The name breaks the login-name rule: no login could use it.
    #[error("`{0}` is not a valid login name (letters, digits, . _ - + @; at most 64)")]
    LoginName(String),
    /// A setting cannot work.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The mailbox-settings file cannot be used.
    #[error(transparent)]
    File(#[from] MailboxFileError),
}

/// What `popgate mailbox USER` prints: the settings in force for the
/// mailbox `name` logs in to under `settings`, each with where it comes
/// from (see [`effective::describe`]), as a server started now would
/// apply them.
pub fn report(settings: &Settings, name: &str) -> Result<String, ReportError> {
    if popgate_auth::validate_login_name(name).is_err() {
        return Err(ReportError::LoginName(name.to_owned()));
    }
    let defaults = Defaults::new(settings)?;
    let user = defaults.login_name(name);
    let table = match &settings.auth.mailbox_settings {
        Some(path) => Some(MailboxFile::open(path, defaults.case())?.table()),
        None => None,
    };
    let effective = effective::resolve(&defaults, table.as_deref(), &user);
    let file = table
        .as_deref()
        .map(|table| (&**table.path(), table.get(&user).is_some()));
    let mut text = String::new();
    if user != name {
        text.push_str(&format!(
            "# {name} logs in as {user} ([auth] login_name_case)\n"
        ));
    }
    text.push_str(&effective::describe(&effective, file));
    Ok(text)
}

/// The mailbox settings of one configuration: its global defaults and the
/// mailbox-settings file, if one is configured.
#[derive(Debug)]
pub struct Mailboxes {
    defaults: Defaults,
    file: Option<Arc<MailboxFile>>,
}

impl Mailboxes {
    /// Settings from `defaults` and, where it sets a key, `file`.
    pub fn new(defaults: Defaults, file: Option<Arc<MailboxFile>>) -> Mailboxes {
        Mailboxes { defaults, file }
    }

    /// The mailbox-settings file, if one is configured.
    pub fn file(&self) -> Option<&Arc<MailboxFile>> {
        self.file.as_ref()
    }

    /// The settings of `user` (a folded login name) at login: the file is
    /// first read again if it changed (looked at at most once a second, on
    /// a blocking thread).
    pub async fn settings_for(&self, user: &str) -> Effective {
        if let Some(file) = self.file.as_ref().filter(|file| file.refresh_due()) {
            let file = Arc::clone(file);
            let _ = tokio::task::spawn_blocking(move || file.refresh()).await;
        }
        self.resolve(user)
    }

    /// The settings of `user` (a folded login name) from the table in
    /// force.
    pub fn resolve(&self, user: &str) -> Effective {
        let table = self.file.as_ref().map(|file| file.table());
        effective::resolve(&self.defaults, table.as_deref(), user)
    }

    /// The global defaults.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }
}
