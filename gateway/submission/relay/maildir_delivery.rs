//! `relay = "maildir"`: delivery into local users' Maildirs, for one-host
//! setups (and the demo). This is the gateway's glue around the store's
//! delivery:
//!
//! 1. a recipient is mapped to a user: its local part, or the whole address
//!    with `maildir_recipient = "address"`;
//! 2. auth looks the user up without a password ([`LoginGate::lookup`]):
//!    the same rules and the same Maildir as a login (the `[store] maildir`
//!    template, `~` from the passwd entry, the deny list, `min_uid`), and
//!    for a system user the uid and gid its files belong to;
//! 3. the store writes the copies ([`popgate_store::deliver`]) on a
//!    blocking thread, each step with the recipient's filesystem identity
//!    ([`run_as`]), as POP3's store calls are: the file belongs to the
//!    recipient, no symlink below the Maildir root is followed, the name
//!    carries `,S=` and `,W=`, and a Maildir that does not exist yet is
//!    created, as the recipient's.
//!
//! Unknown recipients are refused at RCPT already ([`MaildirDelivery::check`],
//! `550 5.1.1`); after DATA every copy is delivered or none is: `250`, or
//! `451` and nothing written, so a client's retry leaves no duplicates.
//! Recipients that come to the same Maildir get one copy. There is no
//! time limit on the writing: an answer given while it might still
//! finish could make the client send again.
//!
//! Lines are stored with LF endings, as local MTAs store them; POP3 sends
//! them with CRLF again.

use std::path::PathBuf;
use std::sync::Arc;

use lettre::Address;
use popgate_auth::UserLookup;
use tracing::warn;

use super::outcome::{RecipientCheck, RelayOutcome};
use crate::config::MaildirRecipient;
use crate::identity::{run_as, Identity};
use crate::log_text::LogText;
use crate::login::{loggable, LoginGate};

/// What a failed delivery tells the client.
const TRY_LATER: &str = "4.3.0 Local delivery failed, try again later";

/// Where and how local deliveries go.
#[derive(Debug)]
pub struct MaildirDelivery {
    login: Arc<LoginGate>,
    recipient: MaildirRecipient,
    hostname: String,
}

/// One Maildir a message goes to.
struct Target {
    user: String,
    maildir: PathBuf,
    identity: Option<Identity>,
}

impl MaildirDelivery {
    /// Delivery to the users `login` knows; `hostname` goes into file names.
    pub fn new(
        login: Arc<LoginGate>,
        recipient: MaildirRecipient,
        hostname: &str,
    ) -> MaildirDelivery {
        MaildirDelivery {
            login,
            recipient,
            hostname: hostname.to_owned(),
        }
    }

    /// The user that receives mail for `recipient`.
    fn user<'a>(&self, recipient: &'a Address) -> &'a str {
        match self.recipient {
            MaildirRecipient::LocalPart => recipient.user(),
            MaildirRecipient::Address => recipient.as_ref(),
        }
    }

    /// What RCPT answers for `recipient`: whether it is a local user.
    pub async fn check(&self, recipient: &Address) -> RecipientCheck {
        let user = self.user(recipient);
        match self.login.lookup(user).await {
            UserLookup::Found(_) => RecipientCheck::Accepted,
            UserLookup::Unknown => RecipientCheck::Unknown,
            UserLookup::TemporaryFailure(reason) => {
                warn!(target: "popgate::relay", "recipient not looked up: user={} reason={reason:?}", loggable(user));
                RecipientCheck::Unavailable
            }
        }
    }

    /// Delivers `data` to every recipient, or to none.
    pub async fn deliver(&self, to: Vec<Address>, data: Vec<u8>) -> RelayOutcome {
        let mut targets: Vec<Target> = Vec::with_capacity(to.len());
        for recipient in &to {
            let user = self.user(recipient);
            let account = match self.login.lookup(user).await {
                UserLookup::Found(account) => account,
                UserLookup::Unknown => {
                    return RelayOutcome::Permanent(
                        550,
                        format!("5.1.1 <{recipient}>: no such local mailbox"),
                    )
                }
                UserLookup::TemporaryFailure(reason) => {
                    warn!(target: "popgate::relay", "recipient not looked up: user={} reason={reason:?}", loggable(user));
                    return RelayOutcome::Temporary(TRY_LATER.into());
                }
            };
            if targets.iter().all(|t| t.maildir != account.maildir) {
                targets.push(Target {
                    identity: Identity::of(&account),
                    user: account.user,
                    maildir: account.maildir,
                });
            }
        }
        let stored = crlf_to_lf(&data);
        let host = self.hostname.clone();
        let maildirs: Vec<PathBuf> = targets.iter().map(|t| t.maildir.clone()).collect();
        let identities: Vec<Option<Identity>> = targets.iter().map(|t| t.identity).collect();
        let written = tokio::task::spawn_blocking(move || {
            popgate_store::deliver(&maildirs, &stored, &host, |index, step| {
                let identity = identities.get(index).copied().flatten();
                if let Err(error) = run_as(identity, step) {
                    warn!(target: "popgate::relay", %error, "local delivery step not run");
                }
            })
        })
        .await;
        let user = |index: usize| targets.get(index).map_or("-", |t| t.user.as_str());
        match written {
            Ok(Ok(())) => RelayOutcome::Accepted,
            Ok(Err(failed)) => {
                warn!(target: "popgate::relay", "local delivery failed, nothing delivered: user={} error={}", user(failed.index), LogText(&failed.error));
                for (index, error) in &failed.not_withdrawn {
                    warn!(target: "popgate::relay", "local delivery not taken back, a retry may deliver twice: user={} error={}", user(*index), LogText(error));
                }
                RelayOutcome::Temporary(TRY_LATER.into())
            }
            Err(error) => {
                warn!(target: "popgate::relay", error = %LogText(&error), "local delivery task failed");
                RelayOutcome::Temporary(TRY_LATER.into())
            }
        }
    }
}

/// CRLF line ends as LF (the message has no bare CR or LF: it was checked).
fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut bytes = data.iter().peekable();
    while let Some(&b) = bytes.next() {
        if b == b'\r' && bytes.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use popgate_auth::{AuthConfig, Authenticator, BackendConfig, Throttle};
    use std::time::Duration;

    /// Delivery to the htpasswd users `bob` and `carol`, whose Maildirs are
    /// `dir/<user>/Maildir` (none exists yet).
    fn delivery(dir: &std::path::Path) -> MaildirDelivery {
        let hash = popgate_auth::hash_password_bcrypt("pw", 4).unwrap();
        let path = dir.join("users.htpasswd");
        std::fs::write(&path, format!("bob:{hash}\ncarol:{hash}\n")).unwrap();
        let mut config = AuthConfig::new(BackendConfig::Htpasswd { path });
        config.maildir_template = format!("{}/%n/Maildir", dir.display());
        let auth = Arc::new(Authenticator::new(config).unwrap());
        let throttle = Arc::new(Throttle::new(Duration::ZERO));
        let login = Arc::new(LoginGate::new(auth, throttle, 2, Duration::from_secs(10)));
        MaildirDelivery::new(login, MaildirRecipient::LocalPart, "host")
    }

    fn new_files(dir: &std::path::Path, user: &str) -> Vec<PathBuf> {
        let new = dir.join(user).join("Maildir/new");
        std::fs::read_dir(new).map_or(Vec::new(), |d| d.map(|e| e.unwrap().path()).collect())
    }

    #[tokio::test]
    async fn known_users_get_one_copy_each_in_maildirs_made_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let delivery = delivery(dir.path());
        let address = |a: &str| a.parse::<Address>().unwrap();
        assert_eq!(
            delivery.check(&address("bob@x.org")).await,
            RecipientCheck::Accepted
        );
        assert_eq!(
            delivery.check(&address("root@x.org")).await,
            RecipientCheck::Unknown
        );
        assert_eq!(
            delivery.check(&address("eve@x.org")).await,
            RecipientCheck::Unknown
        );

        let to = vec![
            address("bob@x.org"),
            address("carol@x.org"),
            address("bob@y.org"),
        ];
        let outcome = delivery
            .deliver(to, b"Subject: x\r\n\r\nhi\r\n".to_vec())
            .await;
        assert_eq!(outcome, RelayOutcome::Accepted);
        for user in ["bob", "carol"] {
            let files = new_files(dir.path(), user);
            assert_eq!(files.len(), 1, "{user}");
            assert_eq!(std::fs::read(&files[0]).unwrap(), b"Subject: x\n\nhi\n");
        }

        // A recipient who became unknown after RCPT: nobody gets a copy.
        let to = vec![address("bob@x.org"), address("eve@x.org")];
        let outcome = delivery.deliver(to, b"x\r\n".to_vec()).await;
        assert!(
            matches!(outcome, RelayOutcome::Permanent(550, _)),
            "{outcome:?}"
        );
        assert_eq!(new_files(dir.path(), "bob").len(), 1);
    }

    #[test]
    fn crlf_becomes_lf_and_nothing_else_changes() {
        assert_eq!(crlf_to_lf(b"a\r\nb\r\n\r\nc"), b"a\nb\n\nc");
        assert_eq!(crlf_to_lf(b"no line end"), b"no line end");
        assert_eq!(crlf_to_lf(b""), b"");
    }
}
