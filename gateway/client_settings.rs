//! `popgate settings`: what users type into their mail client.
//!
//! Exchange shows its users `Host:Port:SSL/TLS` lines; popgate derives the
//! same from its own configuration, so the help-desk page can never drift
//! from what the server really offers. Implicit TLS comes first (RFC 8314
//! prefers it), then the STARTTLS ports; a port where credentials are only
//! accepted after STLS/STARTTLS says so.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::config::{LoginPolicy, Settings};

/// The client settings for `settings`, as text for people.
pub fn describe(settings: &Settings) -> String {
    let mut text = String::new();
    let host = &settings.hostname;
    let tls = settings.tls.is_some();
    let _ = writeln!(
        text,
        "Incoming mail (POP3), user name: the login name, password: the user's password"
    );
    for addr in &settings.pop3.listen_tls {
        line(&mut text, host, addr, "SSL/TLS", "normal password");
    }
    for addr in &settings.pop3.listen {
        let (security, auth) = match (tls, settings.pop3.login) {
            (true, LoginPolicy::Secure) => ("STARTTLS (required)", "normal password"),
            (true, LoginPolicy::Plaintext) => ("STARTTLS", "normal password"),
            (false, _) => ("none (not for use over the internet)", "normal password"),
        };
        line(&mut text, host, addr, security, auth);
    }
    if let Some(submission) = &settings.submission {
        let _ = writeln!(
            text,
            "\nOutgoing mail (SMTP submission), same user name and password"
        );
        for addr in &submission.listen_tls {
            line(&mut text, host, addr, "SSL/TLS", "normal password");
        }
        for addr in &submission.listen {
            line(
                &mut text,
                host,
                addr,
                "STARTTLS (required)",
                "normal password",
            );
        }
    }
    text
}

/// PLACEHOLDER, to be replaced at the merge by `main`'s real generator
/// (branch w-certs, the same signature): Thunderbird's `config-v1.1.xml`
/// for `settings`, which the metrics listener serves
/// ([`crate::http_listener`]). This stand-in is an empty `clientConfig`.
pub fn autoconfig_xml(_settings: &Settings) -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\"/>\n".to_owned()
}

fn line(text: &mut String, host: &str, addr: &SocketAddr, security: &str, auth: &str) {
    let _ = writeln!(
        text,
        "  server {host}  port {port}  connection security: {security}  authentication: {auth}",
        port = addr.port()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_contract_offers_tls_first_and_starttls_as_required() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/popgate.toml");
        let settings = Settings::load(&path).unwrap();
        let text = describe(&settings);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "  server mail.example.com  port 995  connection security: SSL/TLS  authentication: normal password"
        );
        assert!(
            lines[2].contains("port 110  connection security: STARTTLS (required)"),
            "{text}"
        );
        assert!(
            text.contains("port 465  connection security: SSL/TLS"),
            "{text}"
        );
        assert!(
            text.contains("port 587  connection security: STARTTLS (required)"),
            "{text}"
        );
    }
}
