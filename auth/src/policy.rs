//! Who may not use POP3, whatever the password says.
//!
//! Two lists, both compared ignoring ASCII case:
//!
//! * **deny** (`deny_users`, e.g. `root`, `admin`): these names are refused
//!   exactly like an unknown user. Their password is never even checked, so a
//!   denied name tells an attacker nothing.
//! * **disabled** (`disabled_users`): POP3 is switched off for these
//!   mailboxes (Exchange's `PopEnabled = $false`). A *correct* password gets
//!   [`Verdict::Disabled`](crate::Verdict::Disabled), so the user learns why;
//!   a wrong one is just rejected.

use std::collections::HashSet;

/// The deny list and the per-user POP3 switch; the gateway's
/// per-mailbox settings ask the same one what `popgate mailbox` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    denied: HashSet<String>,
    disabled: HashSet<String>,
}

impl Policy {
    /// Builds the policy from the configured lists.
    pub fn new(deny_users: &[String], disabled_users: &[String]) -> Policy {
        let fold = |names: &[String]| names.iter().map(|n| n.to_ascii_lowercase()).collect();
        Policy {
            denied: fold(deny_users),
            disabled: fold(disabled_users),
        }
    }

    /// Whether `user` is on the deny list.
    pub fn is_denied(&self, user: &str) -> bool {
        self.denied.contains(&user.to_ascii_lowercase())
    }

    /// Whether POP3 is switched off for `user`.
    pub fn is_disabled(&self, user: &str) -> bool {
        self.disabled.contains(&user.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ignore_case() {
        let policy = Policy::new(
            &["root".into(), "Admin".into()],
            &["Carol@Example.com".into()],
        );
        assert!(policy.is_denied("root"));
        assert!(policy.is_denied("ROOT"));
        assert!(policy.is_denied("admin"));
        assert!(!policy.is_denied("rooter"));
        assert!(policy.is_disabled("carol@example.com"));
        assert!(!policy.is_disabled("carol"));
        assert!(!Policy::default().is_denied("root"));
    }
}
