//! Where an account's mail lives: the `maildir` template.
//!
//! The `[store] maildir` setting names each user's Maildir with a template:
//!
//! | sequence | expands to | for `alice@example.com` | for `bob` |
//! | --- | --- | --- | --- |
//! | `%u` | the whole login name | `alice@example.com` | `bob` |
//! | `%n` | the local part, before the first `@` | `alice` | `bob` |
//! | `%d` | the domain, after the first `@` | `example.com` | (empty) |
//! | `%%` | a percent sign | `%` | `%` |
//!
//! A template is either an absolute path (`/var/vmail/%d/%n/Maildir`) or
//! starts at the user's home directory: `~` alone or `~/Maildir`. Home
//! directories come from the backend (PAM's passwd entry); htpasswd users
//! have none, so a `~` template is refused for them when the
//! [`Authenticator`](crate::Authenticator) is built.
//!
//! The template is parsed once, when the
//! [`Authenticator`](crate::Authenticator) is built, and expanded for every
//! login and every local-delivery lookup; it never leaves this crate, so
//! logins and deliveries cannot disagree about where a user's mail is.
//!
//! Expansion never leaves the intended tree: a value that contains `/` or NUL,
//! or a result with a `..` component, is an error.

use std::path::{Component, Path, PathBuf};

/// A parsed `maildir` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MaildirTemplate {
    source: String,
    from_home: bool,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    User,
    Local,
    Domain,
}

/// Why a `maildir` template is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template is neither an absolute path nor starts with `~` or `~/`.
    #[error("it must be an absolute path or start with \"~/\"")]
    NotAbsolute,
    /// A `%` is followed by something other than `u`, `n`, `d` or `%`.
    #[error("unknown sequence %{0} (use %u, %n, %d or %%)")]
    UnknownSequence(char),
    /// The template ends with a lone `%`.
    #[error("it ends with a lone %")]
    TrailingPercent,
    /// The template contains a `..` component or a NUL character.
    #[error("it contains a \"..\" component or a NUL character")]
    UnsafePath,
}

/// Why a template could not be expanded for a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExpandError {
    /// The template starts at the home directory, but the user has none.
    #[error("the maildir template needs a home directory, and the user has none")]
    NoHome,
    /// The home directory is not an absolute path.
    #[error("the user's home directory is not an absolute path")]
    RelativeHome,
    /// A substituted value holds `/` or NUL, or the result has a `..` component.
    #[error("the user name would make an unsafe maildir path")]
    UnsafeValue,
}

impl MaildirTemplate {
    /// Parses a template such as `/var/vmail/%d/%n/Maildir` or `~/Maildir`.
    pub fn parse(template: &str) -> Result<MaildirTemplate, TemplateError> {
        let (from_home, rest) = if template == "~" {
            (true, "")
        } else if let Some(rest) = template.strip_prefix("~/") {
            (true, rest)
        } else if template.starts_with('/') {
            (false, template)
        } else {
            return Err(TemplateError::NotAbsolute);
        };
        if template.contains('\0') || template.split('/').any(|segment| segment == "..") {
            return Err(TemplateError::UnsafePath);
        }
        Ok(MaildirTemplate {
            source: template.to_owned(),
            from_home,
            parts: parse_parts(rest)?,
        })
    }

    /// The template text as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template starts at the user's home directory (`~`).
    pub fn uses_home(&self) -> bool {
        self.from_home
    }

    /// Whether the path holds the login name's domain (`%d`).
    fn uses_domain(&self) -> bool {
        self.parts.contains(&Part::Domain)
    }

    /// Expands the template for `user`; `home` is the user's home directory,
    /// needed only by `~` templates.
    pub fn expand(&self, user: &str, home: Option<&Path>) -> Result<PathBuf, ExpandError> {
        let (local, domain) = user.split_once('@').unwrap_or((user, ""));
        let mut expanded = String::new();
        for part in &self.parts {
            let value = match part {
                Part::Literal(text) => {
                    expanded.push_str(text);
                    continue;
                }
                Part::User => user,
                Part::Local => local,
                Part::Domain => domain,
            };
            if value.contains(['/', '\0']) {
                return Err(ExpandError::UnsafeValue);
            }
            expanded.push_str(value);
        }
        let path = if self.from_home {
            let home = home.ok_or(ExpandError::NoHome)?;
            if !home.is_absolute() {
                return Err(ExpandError::RelativeHome);
            }
            home.join(&expanded)
        } else {
            PathBuf::from(expanded)
        };
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(ExpandError::UnsafeValue);
        }
        // Normalises doubled slashes (an empty %d) and "." components.
        Ok(path.components().collect())
    }
}

/// Whether the Maildir `template` puts the login name's domain (`%d`) into
/// the path: then login names are whole addresses, since a name without a
/// domain would leave that part of the path empty. `%%d` is a literal and
/// does not count. This is how `popgate settings` and Thunderbird's
/// autoconfig tell users which form of their name to type.
pub fn maildir_template_uses_domain(template: &str) -> Result<bool, TemplateError> {
    Ok(MaildirTemplate::parse(template)?.uses_domain())
}

fn parse_parts(text: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        let part = match chars.next() {
            None => return Err(TemplateError::TrailingPercent),
            Some('%') => {
                literal.push('%');
                continue;
            }
            Some('u') => Part::User,
            Some('n') => Part::Local,
            Some('d') => Part::Domain,
            Some(other) => return Err(TemplateError::UnknownSequence(other)),
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(part);
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login_name::validate_login_name;
    use proptest::prelude::*;

    fn expand(template: &str, user: &str) -> PathBuf {
        MaildirTemplate::parse(template)
            .unwrap()
            .expand(user, None)
            .unwrap()
    }

    /// Caught: a text search for "%d" would take the literal `%%d` as the
    /// domain, and miss nothing else.
    #[test]
    fn the_domain_is_used_only_by_a_real_percent_d() {
        for (template, uses) in [
            ("/var/vmail/%d/%n/Maildir", true),
            ("/srv/mail/%n.%d", true),
            ("/srv/mail/%u", false),
            ("~/Maildir", false),
            ("/srv/100%%d/%n", false),
        ] {
            assert_eq!(
                maildir_template_uses_domain(template),
                Ok(uses),
                "{template}"
            );
        }
        assert!(maildir_template_uses_domain("/srv/%x").is_err());
    }

    #[test]
    fn sequences() {
        let t = "/var/vmail/%d/%n/Maildir";
        assert_eq!(
            expand(t, "alice@example.com"),
            Path::new("/var/vmail/example.com/alice/Maildir")
        );
        assert_eq!(expand(t, "bob"), Path::new("/var/vmail/bob/Maildir"));
        assert_eq!(
            expand("/srv/mail/%u", "alice@example.com"),
            Path::new("/srv/mail/alice@example.com")
        );
        assert_eq!(expand("/m/100%%/%n", "x@y"), Path::new("/m/100%/x"));
        assert_eq!(expand("/m/%n.%d", "x@y.org"), Path::new("/m/x.y.org"));
        assert_eq!(expand("/m/%d", "a@b@c"), Path::new("/m/b@c"));
        assert_eq!(expand("/m/%n", "a@b@c"), Path::new("/m/a"));
        assert_eq!(expand("/m/./x/%n/", "a"), Path::new("/m/x/a"));
    }

    #[test]
    fn home_templates() {
        let home = Some(Path::new("/home/bob"));
        let t = MaildirTemplate::parse("~/Maildir").unwrap();
        assert!(t.uses_home());
        assert_eq!(
            t.expand("bob", home).unwrap(),
            Path::new("/home/bob/Maildir")
        );
        assert_eq!(t.expand("bob", None), Err(ExpandError::NoHome));
        assert_eq!(
            t.expand("bob", Some(Path::new("home/bob"))),
            Err(ExpandError::RelativeHome)
        );
        let t = MaildirTemplate::parse("~").unwrap();
        assert_eq!(t.expand("bob", home).unwrap(), Path::new("/home/bob"));
        let t = MaildirTemplate::parse("~/mail/%n").unwrap();
        assert_eq!(
            t.expand("bob@x", home).unwrap(),
            Path::new("/home/bob/mail/bob")
        );
        assert!(!MaildirTemplate::parse("/var/%u").unwrap().uses_home());
    }

    #[test]
    fn invalid_templates() {
        use TemplateError::*;
        assert_eq!(MaildirTemplate::parse(""), Err(NotAbsolute));
        assert_eq!(MaildirTemplate::parse("Maildir"), Err(NotAbsolute));
        assert_eq!(MaildirTemplate::parse("~bob/Maildir"), Err(NotAbsolute));
        assert_eq!(MaildirTemplate::parse("%h/Maildir"), Err(NotAbsolute));
        assert_eq!(MaildirTemplate::parse("/var/%h"), Err(UnknownSequence('h')));
        assert_eq!(MaildirTemplate::parse("/var/%"), Err(TrailingPercent));
        assert_eq!(MaildirTemplate::parse("/var/../%u"), Err(UnsafePath));
        assert_eq!(MaildirTemplate::parse("/var/%u\0"), Err(UnsafePath));
        assert_eq!(
            MaildirTemplate::parse("/var/%u").unwrap().as_str(),
            "/var/%u"
        );
    }

    #[test]
    fn unsafe_values_are_refused() {
        let t = MaildirTemplate::parse("/var/vmail/%d/%n").unwrap();
        assert_eq!(t.expand("a/b", None), Err(ExpandError::UnsafeValue));
        assert_eq!(t.expand("x@..", None), Err(ExpandError::UnsafeValue));
        assert_eq!(t.expand("..", None), Err(ExpandError::UnsafeValue));
        assert_eq!(t.expand("a\0", None), Err(ExpandError::UnsafeValue));
    }

    proptest! {
        #[test]
        fn valid_names_stay_under_the_prefix(name in "[a-zA-Z0-9._+@-]{1,64}") {
            prop_assume!(validate_login_name(&name).is_ok());
            let t = MaildirTemplate::parse("/var/vmail/%d/%n/Maildir").unwrap();
            let path = t.expand(&name, None).unwrap();
            prop_assert!(path.starts_with("/var/vmail"));
            prop_assert!(path.ends_with("Maildir"));
            prop_assert!(!path.components().any(|c| c == Component::ParentDir));
        }
    }
}
