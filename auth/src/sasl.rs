//! SASL `PLAIN` and `LOGIN`, sans I/O: the whole exchange, for every
//! protocol popgate speaks.
//!
//! POP3 (RFC 5034) and SMTP (RFC 4954) carry SASL exchanges the same way:
//! the server sends a base64 challenge after `+ ` (POP3) or `334 ` (SMTP),
//! the client answers with one base64 line. A lone `=` stands for an empty
//! response and a lone `*` cancels the exchange. [`SaslExchange`] is that
//! conversation as a value: [`SaslExchange::start`] takes the mechanism and
//! the initial response, if the command carried one, and each
//! [`respond`](SaslExchange::respond) takes the client's next line, until
//! the exchange is [`Progress::Done`] with [`Credentials`] or
//! [`Progress::Failed`]. The sessions only frame the challenges and word
//! the failures; what is decided, is decided here, once.
//!
//! * **PLAIN** (RFC 4616) sends everything at once, either as the initial
//!   response (`AUTH PLAIN AGFsaWNlAHMzY3JldA==`) or after an empty challenge:
//!   `[authzid] NUL authcid NUL passwd`. Acting for another user (an authzid
//!   different from the authcid) is refused, as an authentication failure
//!   rather than a malformed response ([`SaslError::is_refusal`]).
//! * **LOGIN** (no RFC; what Outlook and Thunderbird fall back to) asks for the
//!   user with [`LOGIN_USER_PROMPT`], then for the password with
//!   [`LOGIN_PASSWORD_PROMPT`]; the user may come as the initial response.
//!
//! Either way the user name must pass [`validate_login_name`] before the
//! exchange ends: a name that breaks the rule is refused
//! ([`SaslError::InvalidLoginName`], a refusal) without asking for a
//! password, so it never reaches a backend, a path or a log line.
//!
//! ```
//! use popgate_auth::sasl::{Mechanism, Progress, SaslError, SaslExchange};
//!
//! // AUTH LOGIN, then the user and the password, each in base64.
//! let Progress::Challenge(exchange) = SaslExchange::start(Mechanism::Login, None) else {
//!     unreachable!()
//! };
//! assert_eq!(exchange.challenge(), "VXNlcm5hbWU6");
//! let Progress::Challenge(exchange) = exchange.respond(b"YWxpY2U=") else { unreachable!() };
//! assert_eq!(exchange.challenge(), "UGFzc3dvcmQ6");
//! let Progress::Done(credentials) = exchange.respond(b"czNjcmV0") else { unreachable!() };
//! assert_eq!((credentials.user.as_str(), credentials.password.expose()), ("alice", "s3cret"));
//!
//! // "\0alice\0s3cret" at once; a cancelled exchange.
//! let done = SaslExchange::start(Mechanism::Plain, Some(b"AGFsaWNlAHMzY3JldA=="));
//! assert!(matches!(done, Progress::Done(c) if c.user == "alice"));
//! let Progress::Challenge(exchange) = SaslExchange::start(Mechanism::Plain, None) else {
//!     unreachable!()
//! };
//! assert!(matches!(exchange.respond(b"*"), Progress::Failed(SaslError::Cancelled)));
//! ```
//!
//! Every response is bounded by [`MAX_RESPONSE_LEN`]; decoded bytes that
//! held a password are wiped when they are dropped. The lower-level
//! decoders, [`decode_plain`] and [`decode_login_line`], are public for
//! fuzzing and tests.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::login_name::validate_login_name;
use crate::password::{Credentials, Password};

/// The mechanisms popgate offers, in order of preference.
pub const MECHANISMS: &[&str] = &["PLAIN", "LOGIN"];

/// The base64 prompt `Username:` of the LOGIN mechanism.
pub const LOGIN_USER_PROMPT: &str = "VXNlcm5hbWU6";

/// The base64 prompt `Password:` of the LOGIN mechanism.
pub const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// The longest base64 response accepted, in bytes (8 KiB).
pub const MAX_RESPONSE_LEN: usize = 8 * 1024;

/// Standard base64 that accepts the padding either present or left out.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A SASL mechanism popgate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `LOGIN` (the de-facto `Username:`/`Password:` exchange).
    Login,
}

impl Mechanism {
    /// Looks a mechanism up by the name a client sent, ignoring ASCII case.
    /// Returns `None` for mechanisms popgate does not offer.
    ///
    /// ```
    /// use popgate_auth::sasl::Mechanism;
    /// assert_eq!(Mechanism::from_name("plain"), Some(Mechanism::Plain));
    /// assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// The mechanism's name as it appears in [`MECHANISMS`].
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// Why a SASL response could not be decoded. The messages never repeat the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client sent `*`: it cancels the exchange.
    #[error("the client cancelled the authentication")]
    Cancelled,
    /// The response is longer than [`MAX_RESPONSE_LEN`].
    #[error("the SASL response is too long")]
    TooLong,
    /// The response is not valid base64.
    #[error("the SASL response is not valid base64")]
    InvalidBase64,
    /// The decoded response is not UTF-8.
    #[error("the SASL response is not valid UTF-8")]
    InvalidUtf8,
    /// A PLAIN response without exactly two NUL separators.
    #[error("the PLAIN response is malformed")]
    Malformed,
    /// A PLAIN response with an empty user name.
    #[error("the PLAIN response has no user name")]
    EmptyUser,
    /// A PLAIN response asking to act as another user (proxy authorization).
    #[error("acting as another user is not supported")]
    ProxyAuthorization,
    /// A user name that breaks the login-name rule
    /// ([`validate_login_name`]).
    #[error("the user name is not a valid login name")]
    InvalidLoginName,
}

impl SaslError {
    /// True for a response that is well-formed but asks for something the
    /// server refuses without consulting any backend: acting as another
    /// user, or a user name that breaks the login-name rule. The protocols
    /// answer it as a failed authentication (SMTP `535 5.7.8`, POP3
    /// `-ERR [AUTH]`); a cancel ([`SaslError::Cancelled`]) is answered as
    /// such, and every other error is a malformed response (`501`, a plain
    /// `-ERR`).
    ///
    /// ```
    /// use popgate_auth::sasl::SaslError;
    /// assert!(SaslError::ProxyAuthorization.is_refusal());
    /// assert!(SaslError::InvalidLoginName.is_refusal());
    /// assert!(!SaslError::InvalidBase64.is_refusal());
    /// assert!(!SaslError::Cancelled.is_refusal());
    /// ```
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            SaslError::ProxyAuthorization | SaslError::InvalidLoginName
        )
    }
}

/// Where an exchange stands after the command or the client's last line.
#[derive(Debug)]
pub enum Progress {
    /// Send [`SaslExchange::challenge`] (after `+ ` or `334 `) and hand the
    /// client's next line to [`SaslExchange::respond`].
    Challenge(SaslExchange),
    /// The client sent these credentials, its name a valid login name:
    /// check them.
    Done(Credentials),
    /// The exchange is over without credentials; the error says which
    /// answer is due (see [`SaslError::is_refusal`]).
    Failed(SaslError),
}

/// A SASL exchange waiting for the client's next line.
#[derive(Debug)]
pub struct SaslExchange {
    waiting: Waiting,
}

/// What the client's next line is.
#[derive(Debug)]
enum Waiting {
    /// The whole PLAIN message.
    PlainMessage,
    /// The LOGIN user name.
    LoginUser,
    /// The LOGIN password of `user`.
    LoginPassword { user: String },
}

impl SaslExchange {
    /// Starts an exchange of `mechanism`, with the `initial_response` the
    /// command carried, if any (RFC 4954 §4, RFC 5034 §4: `=` is an empty
    /// one). Look a client's mechanism name up with
    /// [`Mechanism::from_name`]; one popgate does not offer never gets here.
    pub fn start(mechanism: Mechanism, initial_response: Option<&[u8]>) -> Progress {
        let waiting = match mechanism {
            Mechanism::Plain => Waiting::PlainMessage,
            Mechanism::Login => Waiting::LoginUser,
        };
        let exchange = SaslExchange { waiting };
        match initial_response {
            Some(response) => exchange.respond(response),
            None => Progress::Challenge(exchange),
        }
    }

    /// The base64 challenge the client is waiting for, without its framing.
    pub fn challenge(&self) -> &'static str {
        match self.waiting {
            Waiting::PlainMessage => "",
            Waiting::LoginUser => LOGIN_USER_PROMPT,
            Waiting::LoginPassword { .. } => LOGIN_PASSWORD_PROMPT,
        }
    }

    /// Takes the client's answer to [`challenge`](Self::challenge): one line,
    /// without its line ending (surrounding white space is ignored), at
    /// most [`MAX_RESPONSE_LEN`] octets. A line that is not even ASCII is
    /// not base64.
    pub fn respond(self, line: &[u8]) -> Progress {
        if line.len() > MAX_RESPONSE_LEN {
            return Progress::Failed(SaslError::TooLong);
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Progress::Failed(SaslError::InvalidBase64);
        };
        let refused = |user: &str| validate_login_name(user).is_err();
        match self.waiting {
            Waiting::PlainMessage => match decode_plain(line) {
                Ok(credentials) if refused(&credentials.user) => {
                    Progress::Failed(SaslError::InvalidLoginName)
                }
                Ok(credentials) => Progress::Done(credentials),
                Err(error) => Progress::Failed(error),
            },
            Waiting::LoginUser => match decode_login_line(line) {
                Ok(user) if refused(&user) => Progress::Failed(SaslError::InvalidLoginName),
                Ok(user) => Progress::Challenge(SaslExchange {
                    waiting: Waiting::LoginPassword { user },
                }),
                Err(error) => Progress::Failed(error),
            },
            Waiting::LoginPassword { user } => match decode_login_line(line) {
                Ok(password) => Progress::Done(Credentials {
                    user,
                    password: Password::new(password),
                }),
                Err(error) => Progress::Failed(error),
            },
        }
    }
}

/// Decodes a base64 SASL PLAIN response (RFC 4616: `[authzid] NUL authcid NUL
/// passwd`). `=` means an empty response (which is malformed for PLAIN). An
/// authzid that differs from the authcid is refused: no proxy authorization.
/// Input over [`MAX_RESPONSE_LEN`] is refused before decoding.
pub fn decode_plain(b64: &str) -> Result<Credentials, SaslError> {
    let bytes = decode(b64)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SaslError::InvalidUtf8)?;
    let mut fields = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Malformed);
    };
    if authcid.is_empty() {
        return Err(SaslError::EmptyUser);
    }
    if !authzid.is_empty() && authzid != authcid {
        return Err(SaslError::ProxyAuthorization);
    }
    Ok(Credentials {
        user: authcid.to_owned(),
        password: Password::new(password),
    })
}

/// Decodes one base64 line of the LOGIN mechanism (the user name or the
/// password). `=` decodes to the empty string; UTF-8 is required.
///
/// The result may be a password: wrap it in a [`Password`] right away.
pub fn decode_login_line(b64: &str) -> Result<String, SaslError> {
    let bytes = decode(b64)?;
    std::str::from_utf8(&bytes)
        .map(str::to_owned)
        .map_err(|_| SaslError::InvalidUtf8)
}

/// Base64-decodes one response line into memory that is wiped on drop.
fn decode(b64: &str) -> Result<Zeroizing<Vec<u8>>, SaslError> {
    if b64.len() > MAX_RESPONSE_LEN {
        return Err(SaslError::TooLong);
    }
    let b64 = b64.trim_matches(|c: char| c.is_ascii_whitespace());
    match b64 {
        "*" => Err(SaslError::Cancelled),
        "=" => Ok(Zeroizing::new(Vec::new())),
        _ => BASE64
            .decode(b64)
            .map(Zeroizing::new)
            .map_err(|_| SaslError::InvalidBase64),
    }
}

#[cfg(test)]
mod tests;
