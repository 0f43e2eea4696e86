//! The CAPA response (RFC 2449): what this connection can do right now.
//!
//! What is listed depends on the connection: `STLS` only before TLS (RFC 2595
//! §4), `USER` and `SASL` only where credentials may be sent. Capabilities of
//! the AUTHORIZATION state stay listed after login, as RFC 2449 §5 requires.
//! The SASL mechanisms are popgate-auth's [`sasl::MECHANISMS`], the list
//! `AUTH` and submission's EHLO show too.

use popgate_auth::sasl;

use super::reply;

/// What decides the capability list of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// STLS can be offered now (plain listener, TLS configured, not yet TLS).
    pub stls: bool,
    /// Credentials may be sent on this connection now.
    pub credentials: bool,
}

impl Capabilities {
    /// Appends the whole multi-line CAPA response.
    pub fn write(&self, out: &mut Vec<u8>) {
        reply::ok(out, format_args!("Capability list follows"));
        for fixed in [
            "TOP",
            "UIDL",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "UTF8",
        ] {
            reply::body_line(out, format_args!("{fixed}"));
        }
        // EXPIRE (RFC 2449 §6.7) is the server's minimum retention period
        // for messages a client leaves on the server, i.e. retrieves and
        // does not DELE. `on_dele` decides only what happens to messages a
        // client did DELE (unlink, keep marked seen, mark seen, move to a
        // folder), so under every policy a message left on the server stays
        // until a client deletes it: NEVER is true for all four, and the
        // end-to-end test `leave_on_server` checks it for each. (`EXPIRE 0`
        // would promise the opposite: that retrieved mail is removed.)
        reply::body_line(out, format_args!("EXPIRE NEVER"));
        if self.stls {
            reply::body_line(out, format_args!("STLS"));
        }
        if self.credentials {
            reply::body_line(out, format_args!("USER"));
            out.extend_from_slice(b"SASL");
            for mechanism in sasl::MECHANISMS {
                out.push(b' ');
                out.extend_from_slice(mechanism.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        reply::end_multiline(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(caps: Capabilities) -> Vec<String> {
        let mut out = Vec::new();
        caps.write(&mut out);
        String::from_utf8(out)
            .unwrap()
            .split("\r\n")
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn credentials_are_offered_only_where_allowed() {
        let before_tls = lines(Capabilities {
            stls: true,
            credentials: false,
        });
        assert!(before_tls.contains(&"STLS".to_string()));
        assert!(!before_tls
            .iter()
            .any(|l| l == "USER" || l.starts_with("SASL")));
        let after_tls = lines(Capabilities {
            stls: false,
            credentials: true,
        });
        assert!(!after_tls.contains(&"STLS".to_string()));
        assert!(after_tls.contains(&"USER".to_string()));
        assert!(after_tls.contains(&"SASL PLAIN LOGIN".to_string()));
        assert_eq!(after_tls.first().unwrap(), "+OK Capability list follows");
        assert_eq!(after_tls[after_tls.len() - 2], ".");
    }
}
