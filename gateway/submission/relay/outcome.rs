//! What the relay answers, as values the session turns into replies: how a
//! relay attempt ended ([`RelayOutcome`]) and what it says about a
//! recipient at RCPT ([`RecipientCheck`]).
//!
//! A leaf module: the relay back ends produce these values and the session
//! reads them, so neither has to know the other.

/// How a relay attempt ended, as the client is to hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayOutcome {
    /// The upstream took the message.
    Accepted,
    /// Try again later (upstream down or 4xx): `451`, with the enhanced
    /// status code the text starts with (`4.3.0 …`), else `4.4.1`.
    Temporary(String),
    /// The upstream refused the message for good: its code and text (which
    /// may start with an enhanced status code, `5.1.1 …`).
    Permanent(u16, String),
}

/// What RCPT answers for a recipient the relay was asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientCheck {
    /// The relay takes mail for it: `250 2.1.5`.
    Accepted,
    /// No such local user: `550 5.1.1`, counted as an error, so a session
    /// cannot probe for user names without end.
    Unknown,
    /// The relay could not tell now: `451 4.3.0`.
    Unavailable,
}

/// Splits `5.1.1 text` into the enhanced status code and the text, when
/// the text starts with a well-formed code of `class` (`'4'` or `'5'`).
pub fn split_status(text: &str, class: char) -> Option<(&str, &str)> {
    let (status, rest) = text.split_once(' ')?;
    is_status_of_class(status, class).then_some((status, rest))
}

/// True for an enhanced status code (RFC 3463) of `class`, like `5.1.1`.
fn is_status_of_class(text: &str, class: char) -> bool {
    let mut parts = text.split('.');
    parts.next() == Some(class.encode_utf8(&mut [0; 4]))
        && parts
            .by_ref()
            .take(2)
            .filter(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            .count()
            == 2
        && parts.next().is_none()
}
