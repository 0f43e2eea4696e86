//! Passwords that do not leak.
//!
//! A [`Password`] holds the text the client sent. Its `Debug` output is
//! `<redacted>`, it has no `Display`, and its memory is wiped when it is
//! dropped. The text is reached only through [`Password::expose`], which makes
//! every use easy to find. [`Credentials`] pairs it with the user name, so a
//! whole login attempt can be logged with `{:?}` safely.
//!
//! ```
//! use popgate_auth::Credentials;
//!
//! let credentials = Credentials::new("alice", "hunter2");
//! assert_eq!(
//!     format!("{credentials:?}"),
//!     r#"Credentials { user: "alice", password: <redacted> }"#
//! );
//! assert_eq!(credentials.password.expose(), "hunter2");
//! ```

use std::fmt;

use zeroize::Zeroizing;

/// A password as received from a client: redacted in `Debug`, wiped on drop.
#[derive(Clone, Default)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(Zeroizing::new(password.into()))
    }

    /// The password text. Never log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the password is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Password {
    fn from(password: String) -> Password {
        Password::new(password)
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Password {
        Password::new(password)
    }
}

/// A user name and password as received (the password is redacted in `Debug`).
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The login name, exactly as the client sent it.
    pub user: String,
    /// The password.
    pub password: Password,
}

impl Credentials {
    /// Pairs a user name with a password.
    pub fn new(user: impl Into<String>, password: impl Into<Password>) -> Credentials {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let password = Password::new("top secret");
        assert_eq!(format!("{password:?}"), "<redacted>");
        assert_eq!(format!("{password:#?}"), "<redacted>");
        let credentials = Credentials::new("bob", password);
        let debug = format!("{credentials:#?}");
        assert!(!debug.contains("top secret"), "{debug}");
        assert!(debug.contains("bob"));
    }

    #[test]
    fn expose_and_empty() {
        assert!(Password::default().is_empty());
        let password = Password::from(String::from("x"));
        assert!(!password.is_empty());
        assert_eq!(password.clone().expose(), "x");
    }
}
