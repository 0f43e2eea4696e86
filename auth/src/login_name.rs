//! The login-name rule.
//!
//! Every name is checked before any backend sees it, because names end up in
//! file paths (the Maildir template), log lines and PAM calls. A valid name:
//!
//! * is 1 to [`MAX_LOGIN_NAME_LEN`] characters long;
//! * contains only ASCII letters, digits and `. _ - + @`;
//! * does not start with a dot, and no `@` is followed by a dot;
//! * does not start or end with `@`.
//!
//! So a name never holds `/`, NUL, a control character or a space, and neither
//! its local part nor its domain (`%n`, `%d` in the Maildir template) can be
//! empty, `.` or `..`.
//!
//! # Case
//!
//! A valid name is then *folded* by [`LoginNameCase::fold`] into the name
//! the user is known by: the backend's lookup, the login cache, the policy
//! lists, the failure throttle, the Maildir template, per-user limits and
//! the logs all see the folded name, never the one sent. By default
//! ([`LoginNameCase::Lower`]) the whole name is lowercased, as Dovecot does
//! with its default `auth_username_format = %Lu`: phones capitalise the first
//! letter of the user field, and `Alice` is `alice`. [`LoginNameCase::Exact`]
//! keeps the local part as sent. The domain part of an address-form name
//! (after the first `@`, as `%d` in the Maildir template) is case-insensitive
//! in both, as DNS names are (RFC 4343). Valid names are ASCII, so ASCII
//! lowercasing is the whole of folding.
//!
//! ```
//! use popgate_auth::{validate_login_name, LoginNameError};
//!
//! assert!(validate_login_name("alice.smith+pop@example.com").is_ok());
//! assert_eq!(validate_login_name(".hidden"), Err(LoginNameError::LeadingDot));
//! assert_eq!(validate_login_name("../etc"), Err(LoginNameError::InvalidCharacter));
//! assert_eq!(validate_login_name("a b"), Err(LoginNameError::InvalidCharacter));
//! ```

/// How login names are folded (`[auth] login_name_case`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoginNameCase {
    /// The whole name lowercased (`Alice@Example.COM` is `alice@example.com`).
    #[default]
    Lower,
    /// The local part kept as sent, the domain part lowercased
    /// (`Alice@Example.COM` is `Alice@example.com`).
    Exact,
}

impl LoginNameCase {
    /// The name a user sending `name` is known by.
    ///
    /// ```
    /// use popgate_auth::LoginNameCase;
    ///
    /// assert_eq!(LoginNameCase::Lower.fold("Alice@Example.COM"), "alice@example.com");
    /// assert_eq!(LoginNameCase::Exact.fold("Alice@Example.COM"), "Alice@example.com");
    /// assert_eq!(LoginNameCase::Exact.fold("Alice"), "Alice");
    /// ```
    pub fn fold(self, name: &str) -> String {
        match self {
            LoginNameCase::Lower => name.to_ascii_lowercase(),
            LoginNameCase::Exact => match name.split_once('@') {
                Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
                None => name.to_owned(),
            },
        }
    }
}

/// The longest login name accepted, in characters (and bytes: names are ASCII).
pub const MAX_LOGIN_NAME_LEN: usize = 64;

/// Why a login name was refused. The messages never repeat the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginNameError {
    /// The name is empty.
    #[error("the login name is empty")]
    Empty,
    /// The name is longer than [`MAX_LOGIN_NAME_LEN`].
    #[error("the login name is longer than 64 characters")]
    TooLong,
    /// The name contains something other than ASCII letters, digits and `. _ - + @`.
    #[error("the login name contains a character that is not allowed")]
    InvalidCharacter,
    /// The name starts with a dot.
    #[error("the login name starts with a dot")]
    LeadingDot,
    /// A dot follows an `@`, so the domain part would start with a dot.
    #[error("the domain part of the login name starts with a dot")]
    DotAfterAt,
    /// The name starts or ends with `@`, so its local part or domain is empty.
    #[error("the login name starts or ends with @")]
    EmptyPart,
}

/// Checks a login name before any backend sees it: ASCII letters, digits and
/// `. _ - + @`, 1..=64 characters, no leading dot, no dot right after `@`, no
/// `@` at either end (hence no `/`, NUL, control characters or spaces).
pub fn validate_login_name(name: &str) -> Result<(), LoginNameError> {
    if name.is_empty() {
        return Err(LoginNameError::Empty);
    }
    if !name.bytes().all(is_allowed) {
        return Err(LoginNameError::InvalidCharacter);
    }
    if name.len() > MAX_LOGIN_NAME_LEN {
        return Err(LoginNameError::TooLong);
    }
    if name.starts_with('.') {
        return Err(LoginNameError::LeadingDot);
    }
    if name.contains("@.") {
        return Err(LoginNameError::DotAfterAt);
    }
    if name.starts_with('@') || name.ends_with('@') {
        return Err(LoginNameError::EmptyPart);
    }
    Ok(())
}

fn is_allowed(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b'+' | b'@')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accept_and_reject_table() {
        let long_ok = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases: &[(&str, Result<(), LoginNameError>)] = &[
            ("alice", Ok(())),
            ("Alice.Smith", Ok(())),
            ("a", Ok(())),
            ("0", Ok(())),
            ("alice@example.com", Ok(())),
            ("alice+pop@example.com", Ok(())),
            ("first_last-2", Ok(())),
            ("a.b.c", Ok(())),
            ("a..b", Ok(())),
            ("a@@b", Ok(())),
            ("@example.com", Err(LoginNameError::EmptyPart)),
            ("alice@", Err(LoginNameError::EmptyPart)),
            ("@", Err(LoginNameError::EmptyPart)),
            ("a@b@c", Ok(())),
            (&long_ok, Ok(())),
            ("", Err(LoginNameError::Empty)),
            (&too_long, Err(LoginNameError::TooLong)),
            (".alice", Err(LoginNameError::LeadingDot)),
            (".", Err(LoginNameError::LeadingDot)),
            ("..", Err(LoginNameError::LeadingDot)),
            ("alice@.", Err(LoginNameError::DotAfterAt)),
            ("alice@..", Err(LoginNameError::DotAfterAt)),
            ("alice@.example.com", Err(LoginNameError::DotAfterAt)),
            ("al/ice", Err(LoginNameError::InvalidCharacter)),
            ("../etc/passwd", Err(LoginNameError::InvalidCharacter)),
            ("al ice", Err(LoginNameError::InvalidCharacter)),
            ("alice\0", Err(LoginNameError::InvalidCharacter)),
            ("alice\r\n", Err(LoginNameError::InvalidCharacter)),
            ("alice\t", Err(LoginNameError::InvalidCharacter)),
            ("al\\ice", Err(LoginNameError::InvalidCharacter)),
            ("al:ice", Err(LoginNameError::InvalidCharacter)),
            ("al%ice", Err(LoginNameError::InvalidCharacter)),
            ("al*ice", Err(LoginNameError::InvalidCharacter)),
            ("müller", Err(LoginNameError::InvalidCharacter)),
            ("alice\u{202e}", Err(LoginNameError::InvalidCharacter)),
            ("\u{7f}", Err(LoginNameError::InvalidCharacter)),
        ];
        for (name, expected) in cases {
            assert_eq!(validate_login_name(name), *expected, "{name:?}");
        }
    }

    #[test]
    fn folding() {
        let cases = [
            ("alice", "alice", "alice"),
            ("Alice", "alice", "Alice"),
            (
                "ALICE@EXAMPLE.COM",
                "alice@example.com",
                "ALICE@example.com",
            ),
            ("a@B@C", "a@b@c", "a@b@c"),
            (
                "x+Tag@Sub.Example.org",
                "x+tag@sub.example.org",
                "x+Tag@sub.example.org",
            ),
        ];
        for (name, lower, exact) in cases {
            assert_eq!(LoginNameCase::Lower.fold(name), lower, "{name}");
            assert_eq!(LoginNameCase::Exact.fold(name), exact, "{name}");
        }
        assert_eq!(LoginNameCase::default(), LoginNameCase::Lower);
    }

    #[test]
    fn errors_do_not_echo_the_name() {
        let error = validate_login_name("secret password").unwrap_err();
        assert!(!error.to_string().contains("secret"));
    }

    proptest! {
        #[test]
        fn accepted_names_are_path_safe(name in "\\PC{0,80}|[a-zA-Z0-9._+@/ -]{0,70}") {
            if validate_login_name(&name).is_ok() {
                prop_assert!(!name.is_empty() && name.len() <= MAX_LOGIN_NAME_LEN);
                prop_assert!(!name.contains('/'));
                prop_assert!(!name.contains('\0'));
                prop_assert!(!name.chars().any(char::is_control));
                prop_assert!(!name.chars().any(char::is_whitespace));
                prop_assert!(!name.starts_with('.'));
                let (local, domain) = name.split_once('@').unwrap_or((&name, "x"));
                for part in [local, domain] {
                    prop_assert!(!part.is_empty() && part != "." && part != "..");
                }
            }
        }

        #[test]
        fn folding_keeps_a_name_valid_and_is_idempotent(name in "[a-zA-Z0-9._+@-]{1,64}") {
            for case in [LoginNameCase::Lower, LoginNameCase::Exact] {
                let folded = case.fold(&name);
                prop_assert_eq!(validate_login_name(&folded).is_ok(), validate_login_name(&name).is_ok());
                prop_assert_eq!(case.fold(&folded), folded.clone());
                prop_assert!(folded.eq_ignore_ascii_case(&name));
            }
        }

        #[test]
        fn names_of_allowed_characters_are_accepted(name in "[a-zA-Z0-9_+-][a-zA-Z0-9._+-]{0,63}") {
            prop_assert_eq!(validate_login_name(&name), Ok(()));
        }
    }
}
