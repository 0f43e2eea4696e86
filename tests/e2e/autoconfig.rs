//! `popgate settings --autoconfig`: Thunderbird's `config-v1.1.xml` from
//! the real binary, parsed back with an XML parser.

use std::process::Command;

use crate::harness::popgate_bin;

/// Runs `popgate settings ARGS -c` on a configuration `text`; returns its
/// exit success, standard output and standard error.
fn settings(text: &str, args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("popgate.toml");
    std::fs::write(&config, text).unwrap();
    let output = Command::new(popgate_bin())
        .arg("settings")
        .args(args)
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Each server of the file as `element type port socketType authentication username`.
fn servers(xml: &str) -> Vec<String> {
    let document = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "clientConfig", "{xml}");
    let provider = root
        .children()
        .find(|n| n.has_tag_name("emailProvider"))
        .unwrap();
    assert_eq!(provider.attribute("id"), Some("mail.example.com"));
    provider
        .children()
        .filter(|n| n.has_tag_name("incomingServer") || n.has_tag_name("outgoingServer"))
        .map(|server| {
            let text = |name: &str| {
                let child = server.children().find(|n| n.has_tag_name(name));
                child.and_then(|n| n.text()).unwrap_or("-").to_owned()
            };
            assert_eq!(text("hostname"), "mail.example.com", "{xml}");
            format!(
                "{} {} {} {} {} {}",
                server.tag_name().name(),
                server.attribute("type").unwrap_or("-"),
                text("port"),
                text("socketType"),
                text("authentication"),
                text("username")
            )
        })
        .collect()
}

const BASE: &str = "hostname = \"mail.example.com\"\n\
                    [tls]\ncert = \"/etc/popgate/fullchain.pem\"\nkey = \"/etc/popgate/privkey.pem\"\n\
                    [pop3]\nlisten = [\"0.0.0.0:110\"]\nlisten_tls = [\"0.0.0.0:995\"]\n";

/// Virtual users with `%d` in their Maildir path: every port, TLS first,
/// the address as user name; `settings` without the flag says the same.
/// Caught before this change: there was no `--autoconfig`.
#[test]
fn settings_autoconfig_prints_thunderbirds_file_for_the_configuration() {
    let config = format!(
        "{BASE}[store]\nmaildir = \"/var/vmail/%d/%n/Maildir\"\n\
         [submission]\nrelay = \"sendmail\"\n"
    );
    let (ok, xml, errors) = settings(&config, &["--autoconfig"]);
    assert!(ok, "{errors}");
    assert_eq!(errors, "");
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{xml}"
    );
    let password = "password-cleartext %EMAILADDRESS%";
    assert_eq!(
        servers(&xml),
        [
            format!("incomingServer pop3 995 SSL {password}"),
            format!("incomingServer pop3 110 STARTTLS {password}"),
            format!("outgoingServer smtp 465 SSL {password}"),
            format!("outgoingServer smtp 587 STARTTLS {password}"),
        ]
    );
    let (ok, text, _) = settings(&config, &[]);
    assert!(ok);
    assert!(
        text.contains("user name: the whole email address"),
        "{text}"
    );
}

/// System users through PAM without submission: the local part, no
/// outgoing server, and standard error says Thunderbird will not take it.
#[test]
fn settings_autoconfig_without_submission_says_what_is_missing() {
    let config = format!("{BASE}[auth]\nbackend = \"pam\"\n[store]\nmaildir = \"~/Maildir\"\n");
    let (ok, xml, errors) = settings(&config, &["--autoconfig"]);
    assert!(ok, "{errors}");
    assert_eq!(
        servers(&xml),
        [
            "incomingServer pop3 995 SSL password-cleartext %EMAILLOCALPART%",
            "incomingServer pop3 110 STARTTLS password-cleartext %EMAILLOCALPART%",
        ]
    );
    assert!(errors.contains("no submission port"), "{errors}");
}
