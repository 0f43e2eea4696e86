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
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn plain_without_authzid() {
        let credentials = decode_plain(&b64(b"\0alice\0s3cret")).unwrap();
        assert_eq!(credentials.user, "alice");
        assert_eq!(credentials.password.expose(), "s3cret");
    }

    #[test]
    fn plain_with_matching_authzid() {
        let credentials = decode_plain(&b64(b"bob@example.com\0bob@example.com\0pw")).unwrap();
        assert_eq!(credentials.user, "bob@example.com");
        assert_eq!(credentials.password.expose(), "pw");
    }

    #[test]
    fn plain_refuses_proxy_authorization() {
        assert_eq!(
            decode_plain(&b64(b"admin\0alice\0pw")).unwrap_err(),
            SaslError::ProxyAuthorization
        );
    }

    #[test]
    fn plain_keeps_utf8_and_spaces_in_password() {
        let credentials = decode_plain(&b64("\0alice\0pässwörd with spaces".as_bytes())).unwrap();
        assert_eq!(credentials.password.expose(), "pässwörd with spaces");
        let credentials = decode_plain(&b64(b"\0alice\0")).unwrap();
        assert!(credentials.password.is_empty());
    }

    #[test]
    fn plain_malformed_inputs() {
        assert_eq!(decode_plain("=").unwrap_err(), SaslError::Malformed);
        assert_eq!(
            decode_plain(&b64(b"alice")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            decode_plain(&b64(b"alice\0pw")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            decode_plain(&b64(b"\0alice\0pw\0x")).unwrap_err(),
            SaslError::Malformed
        );
        assert_eq!(
            decode_plain(&b64(b"\0\0pw")).unwrap_err(),
            SaslError::EmptyUser
        );
        assert_eq!(
            decode_plain(&b64(b"\0al\xffice\0pw")).unwrap_err(),
            SaslError::InvalidUtf8
        );
    }

    #[test]
    fn bad_base64() {
        assert_eq!(
            decode_plain("not base64!").unwrap_err(),
            SaslError::InvalidBase64
        );
        assert_eq!(
            decode_plain("AGFsaWNl=AHB3").unwrap_err(),
            SaslError::InvalidBase64
        );
        assert_eq!(decode_plain("A").unwrap_err(), SaslError::InvalidBase64);
        assert_eq!(decode_login_line("%%%%"), Err(SaslError::InvalidBase64));
        assert_eq!(decode_login_line(""), Ok(String::new()));
    }

    #[test]
    fn padding_is_optional_and_whitespace_trimmed() {
        assert_eq!(decode_login_line("YWxpY2U").unwrap(), "alice");
        assert_eq!(decode_login_line(" YWxpY2U= \r\n").unwrap(), "alice");
    }

    #[test]
    fn cancel() {
        assert_eq!(decode_plain("*").unwrap_err(), SaslError::Cancelled);
        assert_eq!(decode_login_line("*"), Err(SaslError::Cancelled));
    }

    #[test]
    fn oversize_is_refused_before_decoding() {
        let just_fits = b64(&[b'a'; 6 * 1024]);
        assert_eq!(just_fits.len(), MAX_RESPONSE_LEN);
        assert_eq!(decode_login_line(&just_fits).unwrap().len(), 6 * 1024);
        let too_long = "A".repeat(MAX_RESPONSE_LEN + 4);
        assert_eq!(decode_plain(&too_long).unwrap_err(), SaslError::TooLong);
        assert_eq!(decode_login_line(&too_long), Err(SaslError::TooLong));
    }

    #[test]
    fn login_lines_and_prompts() {
        assert_eq!(decode_login_line(LOGIN_USER_PROMPT).unwrap(), "Username:");
        assert_eq!(
            decode_login_line(LOGIN_PASSWORD_PROMPT).unwrap(),
            "Password:"
        );
        assert_eq!(decode_login_line("=").unwrap(), "");
        assert_eq!(
            decode_login_line(&b64(b"\xff\xfe")),
            Err(SaslError::InvalidUtf8)
        );
    }

    #[test]
    fn mechanisms() {
        assert_eq!(MECHANISMS, ["PLAIN", "LOGIN"]);
        for name in MECHANISMS {
            let mechanism = Mechanism::from_name(&name.to_ascii_lowercase()).unwrap();
            assert_eq!(mechanism.name(), *name);
        }
        assert_eq!(Mechanism::from_name("XOAUTH2"), None);
    }

    #[test]
    fn errors_do_not_echo_input() {
        let error = decode_plain(&b64(b"admin\0alice\0hunter2")).unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }

    /// Runs an exchange of `mechanism` over `initial` and `lines`: the
    /// challenges it sent and how it ended (`None` while still waiting).
    fn exchange(
        mechanism: Mechanism,
        initial: Option<&str>,
        lines: &[&str],
    ) -> (Vec<&'static str>, Option<Result<Credentials, SaslError>>) {
        let mut challenges = Vec::new();
        let mut progress = SaslExchange::start(mechanism, initial.map(str::as_bytes));
        let mut lines = lines.iter();
        loop {
            match progress {
                Progress::Challenge(exchange) => {
                    challenges.push(exchange.challenge());
                    let Some(line) = lines.next() else {
                        return (challenges, None);
                    };
                    progress = exchange.respond(line.as_bytes());
                }
                Progress::Done(credentials) => return (challenges, Some(Ok(credentials))),
                Progress::Failed(error) => return (challenges, Some(Err(error))),
            }
        }
    }

    fn user_and_password(ended: Option<Result<Credentials, SaslError>>) -> (String, String) {
        let credentials = ended.expect("ended").expect("credentials");
        (credentials.user, credentials.password.expose().to_owned())
    }

    fn failure(ended: Option<Result<Credentials, SaslError>>) -> SaslError {
        ended.expect("ended").expect_err("a failure")
    }

    #[test]
    fn every_mechanism_in_every_form_gives_the_credentials() {
        let plain = b64(b"\0alice\0s3cret");
        let alice = ("alice".to_owned(), "s3cret".to_owned());
        let (challenges, ended) = exchange(Mechanism::Plain, Some(&plain), &[]);
        assert!(challenges.is_empty());
        assert_eq!(user_and_password(ended), alice);
        let (challenges, ended) = exchange(Mechanism::Plain, None, &[&plain]);
        assert_eq!(challenges, [""]);
        assert_eq!(user_and_password(ended), alice);
        let (challenges, ended) = exchange(Mechanism::Login, None, &["YWxpY2U=", "czNjcmV0"]);
        assert_eq!(challenges, [LOGIN_USER_PROMPT, LOGIN_PASSWORD_PROMPT]);
        assert_eq!(user_and_password(ended), alice);
        let (challenges, ended) = exchange(Mechanism::Login, Some("YWxpY2U"), &["czNjcmV0"]);
        assert_eq!(challenges, [LOGIN_PASSWORD_PROMPT]);
        assert_eq!(user_and_password(ended), alice);
        // Surrounding white space (a CR left on the line) is no part of it.
        let (_, ended) = exchange(Mechanism::Login, None, &[" YWxpY2U=\r", "czNjcmV0\r"]);
        assert_eq!(user_and_password(ended), alice);
    }

    #[test]
    fn an_empty_response_is_an_equals_sign() {
        // LOGIN: an empty password is a password like any other.
        let (_, ended) = exchange(Mechanism::Login, Some("YWxpY2U="), &["="]);
        assert_eq!(user_and_password(ended), ("alice".into(), String::new()));
        // An empty user name is no login name; an empty PLAIN message has
        // no fields.
        let (challenges, ended) = exchange(Mechanism::Login, Some("="), &["cHc="]);
        assert!(challenges.is_empty());
        assert_eq!(failure(ended), SaslError::InvalidLoginName);
        let (_, ended) = exchange(Mechanism::Plain, Some("="), &[]);
        assert_eq!(failure(ended), SaslError::Malformed);
        let (_, ended) = exchange(Mechanism::Plain, None, &["="]);
        assert_eq!(failure(ended), SaslError::Malformed);
    }

    #[test]
    fn a_star_cancels_at_every_step() {
        for (mechanism, initial, lines) in [
            (Mechanism::Plain, Some("*"), &[][..]),
            (Mechanism::Plain, None, &["*"][..]),
            (Mechanism::Login, Some("*"), &[][..]),
            (Mechanism::Login, None, &["*"][..]),
            (Mechanism::Login, None, &["YWxpY2U=", "*"][..]),
            (Mechanism::Login, Some("YWxpY2U="), &[" *\r"][..]),
        ] {
            let (_, ended) = exchange(mechanism, initial, lines);
            assert_eq!(
                failure(ended),
                SaslError::Cancelled,
                "{mechanism:?} {lines:?}"
            );
        }
    }

    #[test]
    fn responses_are_bounded_at_every_step() {
        let just_fits = b64(&[b'a'; 6 * 1024]);
        assert_eq!(just_fits.len(), MAX_RESPONSE_LEN);
        let (_, ended) = exchange(Mechanism::Login, Some("YWxpY2U="), &[&just_fits]);
        assert_eq!(user_and_password(ended).1.len(), 6 * 1024);
        let too_long = "A".repeat(MAX_RESPONSE_LEN + 4);
        for (mechanism, initial, lines) in [
            (Mechanism::Plain, Some(too_long.as_str()), &[][..]),
            (Mechanism::Plain, None, &[too_long.as_str()][..]),
            (Mechanism::Login, None, &[too_long.as_str()][..]),
            (Mechanism::Login, None, &["YWxpY2U=", too_long.as_str()][..]),
        ] {
            let (_, ended) = exchange(mechanism, initial, lines);
            assert_eq!(failure(ended), SaslError::TooLong, "{mechanism:?}");
        }
    }

    /// The login-name rule is checked inside the exchange, for PLAIN and
    /// for LOGIN's user line alike, before any password is asked for.
    /// Caught: only POP3 checked names, each of its copies of the exchange
    /// on its own, and submission sent malformed names to the backend.
    #[test]
    fn a_malformed_name_is_refused_before_the_password() {
        for name in [
            "../etc",
            "a b",
            ".hidden",
            "x rip=192.0.2.9",
            &"a".repeat(65),
        ] {
            let plain = b64(format!("\0{name}\0pw").as_bytes());
            let (_, ended) = exchange(Mechanism::Plain, Some(&plain), &[]);
            assert_eq!(failure(ended), SaslError::InvalidLoginName, "{name}");
            let (_, ended) = exchange(Mechanism::Plain, None, &[&plain]);
            assert_eq!(failure(ended), SaslError::InvalidLoginName, "{name}");
            let user = b64(name.as_bytes());
            let (challenges, ended) = exchange(Mechanism::Login, None, &[&user, "cHc="]);
            assert_eq!(challenges, [LOGIN_USER_PROMPT], "{name}");
            assert_eq!(failure(ended), SaslError::InvalidLoginName, "{name}");
            let (challenges, ended) = exchange(Mechanism::Login, Some(&user), &["cHc="]);
            assert!(challenges.is_empty(), "{name}");
            assert_eq!(failure(ended), SaslError::InvalidLoginName, "{name}");
        }
        // The rule is the name's, not the password's.
        let (_, ended) = exchange(Mechanism::Login, Some("YWxpY2U="), &[&b64(b"../a b")]);
        assert_eq!(user_and_password(ended).1, "../a b");
    }

    /// Which failures are refusals (answered as a failed login) and which
    /// are malformed responses, each as an exchange produces it.
    #[test]
    fn failures_fall_into_their_classes() {
        let cases = [
            (Some("*"), SaslError::Cancelled, false),
            (Some("%%%%"), SaslError::InvalidBase64, false),
            (Some("/w=="), SaslError::InvalidUtf8, false),
            (Some("YWxpY2U="), SaslError::Malformed, false),
            (Some("AABwdw=="), SaslError::EmptyUser, false),
            (
                Some("Ym9iAGFsaWNlAHB3"),
                SaslError::ProxyAuthorization,
                true,
            ),
            (Some("AC4uAHB3"), SaslError::InvalidLoginName, true),
        ];
        for (initial, error, refusal) in cases {
            let (_, ended) = exchange(Mechanism::Plain, initial, &[]);
            assert_eq!(failure(ended), error, "{initial:?}");
            assert_eq!(error.is_refusal(), refusal, "{error:?}");
        }
        let Progress::Challenge(exchange) = SaslExchange::start(Mechanism::Plain, None) else {
            panic!("no challenge");
        };
        assert!(matches!(
            exchange.respond(b"\xff\xfe"),
            Progress::Failed(SaslError::InvalidBase64)
        ));
    }

    proptest! {
        #[test]
        fn decoding_never_panics(input in "\\PC{0,200}") {
            let _ = decode_plain(&input);
            let _ = decode_login_line(&input);
        }

        /// Any valid name and any password come through each mechanism
        /// and each place the response may go (initial or after the
        /// challenge) the same.
        #[test]
        fn every_form_of_the_exchange_agrees(
            user in "[a-z][a-z0-9._+-]{0,20}(@[a-z]{1,10}\\.[a-z]{2,3})?",
            password in "[^\0]{0,40}",
        ) {
            let plain = b64(format!("\0{user}\0{password}").as_bytes());
            let login_user = b64(user.as_bytes());
            let login_password = if password.is_empty() { "=".to_owned() } else { b64(password.as_bytes()) };
            let expected = (user.clone(), password.clone());
            for (mechanism, initial, lines) in [
                (Mechanism::Plain, Some(plain.as_str()), vec![]),
                (Mechanism::Plain, None, vec![plain.as_str()]),
                (Mechanism::Login, Some(login_user.as_str()), vec![login_password.as_str()]),
                (Mechanism::Login, None, vec![login_user.as_str(), login_password.as_str()]),
            ] {
                let (_, ended) = exchange(mechanism, initial, &lines);
                prop_assert_eq!(user_and_password(ended), expected.clone());
            }
        }

        #[test]
        fn plain_round_trips(user in "[a-z]{1,20}", password in "[^\0]{0,40}") {
            let raw = format!("\0{user}\0{password}");
            let credentials = decode_plain(&b64(raw.as_bytes())).unwrap();
            prop_assert_eq!(credentials.user, user);
            prop_assert_eq!(credentials.password.expose(), password);
        }
    }
}
