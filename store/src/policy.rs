//! Session policies from the configuration: message order and what UPDATE
//! does with deleted messages ("leave on server").
//!
//! Both parse from the strings of the `[pop3]` configuration section and
//! print back to them, so `popgate config` can show what is in force:
//!
//! ```
//! use popgate_store::{OnDele, Order};
//!
//! let on_dele: OnDele = "move:Archive".parse()?;
//! assert_eq!(on_dele, OnDele::Move("Archive".to_string()));
//! assert_eq!(on_dele.to_string(), "move:Archive");
//! assert!("move:../etc".parse::<OnDele>().is_err());
//!
//! let order: Order = "newest-first".parse()?;
//! assert_eq!(order, Order::NewestFirst);
//! # Ok::<(), String>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// What UPDATE (after QUIT) does to the messages marked deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDele {
    /// Unlink the message file (RFC 1939).
    Delete,
    /// Leave the message, marking it seen (the `S` flag), so "delete" in a
    /// POP3 client never removes mail on the server. On disk this is the
    /// same as [`MarkSeen`](OnDele::MarkSeen).
    Keep,
    /// Add the `S` flag to the message file name.
    MarkSeen,
    /// Move the message, marked seen, into the Maildir++ folder `.NAME`
    /// (created with `cur/`, `new/`, `tmp/` and `maildirfolder` when
    /// missing). The name is checked by [`validate_folder`].
    Move(String),
}

impl FromStr for OnDele {
    type Err = String;

    /// Parses `delete`, `keep`, `mark-seen` or `move:FOLDER`.
    fn from_str(s: &str) -> Result<OnDele, String> {
        match s {
            "delete" => Ok(OnDele::Delete),
            "keep" => Ok(OnDele::Keep),
            "mark-seen" => Ok(OnDele::MarkSeen),
            _ => match s.strip_prefix("move:") {
                Some(folder) => {
                    validate_folder(folder)?;
                    Ok(OnDele::Move(folder.to_string()))
                }
                None => Err(format!(
                    "unknown on_dele {s:?}: expected \"delete\", \"keep\", \"mark-seen\" or \"move:FOLDER\""
                )),
            },
        }
    }
}

impl fmt::Display for OnDele {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnDele::Delete => f.write_str("delete"),
            OnDele::Keep => f.write_str("keep"),
            OnDele::MarkSeen => f.write_str("mark-seen"),
            OnDele::Move(folder) => write!(f, "move:{folder}"),
        }
    }
}

/// Checks a Maildir++ folder name for `move:`: not empty, printable ASCII
/// (space included), no `/`, no leading or trailing `.`, no `..`. The folder
/// on disk is `.NAME` in the Maildir root, so these rules keep it inside.
pub fn validate_folder(folder: &str) -> Result<(), String> {
    let problem = if folder.is_empty() {
        Some("is empty")
    } else if !folder.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Some("must be printable ASCII")
    } else if folder.contains('/') {
        Some("must not contain '/'")
    } else if folder.starts_with('.') || folder.ends_with('.') {
        Some("must not start or end with '.'")
    } else if folder.contains("..") {
        Some("must not contain \"..\"")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!(
            "folder name {folder:?} in \"move:FOLDER\" {problem}"
        )),
        None => Ok(()),
    }
}

/// The order messages are numbered in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Message 1 is the oldest delivery (the usual POP3 order).
    #[default]
    OldestFirst,
    /// Message 1 is the newest delivery (Exchange's
    /// `MessageRetrievalSortOrder`).
    NewestFirst,
}

impl FromStr for Order {
    type Err = String;

    /// Parses `oldest-first` or `newest-first`.
    fn from_str(s: &str) -> Result<Order, String> {
        match s {
            "oldest-first" => Ok(Order::OldestFirst),
            "newest-first" => Ok(Order::NewestFirst),
            _ => Err(format!(
                "unknown order {s:?}: expected \"oldest-first\" or \"newest-first\""
            )),
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::OldestFirst => "oldest-first",
            Order::NewestFirst => "newest-first",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_dele_round_trips() {
        for (text, value) in [
            ("delete", OnDele::Delete),
            ("keep", OnDele::Keep),
            ("mark-seen", OnDele::MarkSeen),
            ("move:Archive", OnDele::Move("Archive".into())),
            ("move:Old Mail.2024", OnDele::Move("Old Mail.2024".into())),
        ] {
            assert_eq!(text.parse::<OnDele>(), Ok(value.clone()));
            assert_eq!(value.to_string(), text);
        }
    }

    #[test]
    fn on_dele_rejects_unknown_forms() {
        let err = "remove".parse::<OnDele>().unwrap_err();
        assert!(err.contains("\"delete\", \"keep\", \"mark-seen\" or \"move:FOLDER\""));
        assert!("Delete".parse::<OnDele>().is_err());
        assert!("move".parse::<OnDele>().is_err());
    }

    #[test]
    fn unsafe_folders_are_refused() {
        for bad in [
            "",
            ".Archive",
            "Archive.",
            "a/b",
            "..",
            "a..b",
            "caf\u{e9}",
            "tab\t",
            "nl\n",
        ] {
            assert!(
                format!("move:{bad}").parse::<OnDele>().is_err(),
                "{bad:?} accepted"
            );
            assert!(validate_folder(bad).is_err());
        }
        assert_eq!(validate_folder("Archive"), Ok(()));
        assert_eq!(validate_folder("Archive.2024"), Ok(()));
    }

    #[test]
    fn order_round_trips() {
        for (text, value) in [
            ("oldest-first", Order::OldestFirst),
            ("newest-first", Order::NewestFirst),
        ] {
            assert_eq!(text.parse::<Order>(), Ok(value));
            assert_eq!(value.to_string(), text);
        }
        assert!("newest"
            .parse::<Order>()
            .unwrap_err()
            .contains("oldest-first"));
        assert_eq!(Order::default(), Order::OldestFirst);
    }
}
