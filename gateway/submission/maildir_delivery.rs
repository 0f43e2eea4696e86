//! `relay = "maildir"`: delivery into local users' Maildirs, for one-host
//! setups (and the demo).
//!
//! A recipient is mapped to a user — its local part, or the whole address
//! with `maildir_recipient = "address"` — and the user to a Maildir with the
//! `[store] maildir` template, as POP3 logins are. Every recipient must have
//! an existing Maildir before anything is written (otherwise `550 5.1.1`).
//! Each copy is written under `tmp/`, synced, and renamed into `new/`
//! (the Maildir protocol), so a reader never sees half a message. Lines are
//! stored with LF endings, as local MTAs store them; POP3 sends them with
//! CRLF again.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use lettre::Address;
use popgate_auth::MaildirTemplate;

use super::session::RelayOutcome;
use crate::config::MaildirRecipient;

/// Where and how local deliveries go.
#[derive(Debug)]
pub struct MaildirDelivery {
    template: MaildirTemplate,
    recipient: MaildirRecipient,
    hostname: String,
    counter: AtomicU64,
}

impl MaildirDelivery {
    /// Delivery with the `[store] maildir` template.
    pub fn new(
        template: &str,
        recipient: MaildirRecipient,
        hostname: &str,
    ) -> Result<MaildirDelivery, (&'static str, String)> {
        let template =
            MaildirTemplate::parse(template).map_err(|e| ("store.maildir", e.to_string()))?;
        Ok(MaildirDelivery {
            template,
            recipient,
            hostname: hostname.to_owned(),
            counter: AtomicU64::new(0),
        })
    }

    /// The Maildir of `recipient`, if it is a local user with one.
    fn maildir(&self, recipient: &Address) -> Option<PathBuf> {
        let user = match self.recipient {
            MaildirRecipient::LocalPart => recipient.user(),
            MaildirRecipient::Address => recipient.as_ref(),
        };
        popgate_auth::validate_login_name(user).ok()?;
        let path = self.template.expand(user, None).ok()?;
        (path.join("tmp").is_dir() && path.join("new").is_dir()).then_some(path)
    }

    /// Delivers `data` to every recipient, or to none when one is unknown.
    pub async fn deliver(&self, to: Vec<Address>, data: Vec<u8>) -> RelayOutcome {
        let mut maildirs = Vec::with_capacity(to.len());
        for recipient in &to {
            match self.maildir(recipient) {
                Some(path) => maildirs.push(path),
                None => {
                    return RelayOutcome::Permanent(
                        550,
                        format!("5.1.1 <{recipient}>: no such local mailbox"),
                    )
                }
            }
        }
        let names: Vec<String> = maildirs.iter().map(|_| self.unique_name()).collect();
        let stored = crlf_to_lf(&data);
        let written = tokio::task::spawn_blocking(move || {
            maildirs
                .iter()
                .zip(&names)
                .try_for_each(|(maildir, name)| store(maildir, name, &stored))
        })
        .await;
        match written {
            Ok(Ok(())) => RelayOutcome::Accepted,
            Ok(Err(error)) => {
                tracing::warn!(target: "popgate::relay", error = %crate::log_text::LogText(&error), "local delivery failed");
                RelayOutcome::Temporary("Local delivery failed, try again later".into())
            }
            Err(_) => RelayOutcome::Temporary("Local delivery failed, try again later".into()),
        }
    }

    /// A Maildir unique name: time, a per-process counter, the pid, the host.
    fn unique_name(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.M{}P{}Q{n}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            self.hostname.replace(['/', ':'], "_"),
        )
    }
}

/// Writes `data` to `tmp/name`, syncs it, and renames it into `new/`.
fn store(maildir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = maildir.join("tmp").join(name);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, maildir.join("new").join(name))?;
        fs::File::open(maildir.join("new"))?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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

    #[tokio::test]
    async fn a_message_lands_in_new_for_known_recipients_only() {
        let dir = tempfile::tempdir().unwrap();
        let bob = dir.path().join("bob/Maildir");
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(bob.join(sub)).unwrap();
        }
        let template = format!("{}/%n/Maildir", dir.path().display());
        let delivery =
            MaildirDelivery::new(&template, MaildirRecipient::LocalPart, "host").unwrap();
        let bob_address: Address = "bob@example.com".parse().unwrap();
        let outcome = delivery
            .deliver(
                vec![bob_address.clone()],
                b"Subject: x\r\n\r\nhi\r\n".to_vec(),
            )
            .await;
        assert_eq!(outcome, RelayOutcome::Accepted);
        let files: Vec<_> = fs::read_dir(bob.join("new")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let path = files[0].as_ref().unwrap().path();
        assert_eq!(fs::read(path).unwrap(), b"Subject: x\n\nhi\n");
        assert_eq!(fs::read_dir(bob.join("tmp")).unwrap().count(), 0);

        let nobody: Address = "nobody@example.com".parse().unwrap();
        let outcome = delivery
            .deliver(vec![bob_address, nobody], b"x\r\n".to_vec())
            .await;
        assert!(
            matches!(outcome, RelayOutcome::Permanent(550, _)),
            "{outcome:?}"
        );
        assert_eq!(fs::read_dir(bob.join("new")).unwrap().count(), 1);
    }
}
