//! `popgate settings`: what users type into their mail client, as text for
//! people and as Thunderbird's autoconfig file.
//!
//! Exchange shows its users `Host:Port:SSL/TLS` lines; popgate derives the
//! same from its own configuration, so the help-desk page can never drift
//! from what the server really offers. Both outputs come from one set of
//! facts, [`ClientSettings`]: the host, each port with its security, and the
//! form of the user name. Implicit TLS comes first (RFC 8314 prefers it),
//! then the STARTTLS ports; a port where credentials are only accepted after
//! STLS/STARTTLS says so. A port bound on several addresses is listed once.
//!
//! # The user name
//!
//! Clients fill the user name in from the email address the user typed,
//! whole (`%EMAILADDRESS%`) or the part before the `@`
//! (`%EMAILLOCALPART%`). Which one popgate's logins are is read from the
//! configuration ([`UserNameForm::of`]):
//!
//! 1. a Maildir template that uses the domain (`%d`, as the default
//!    `/var/vmail/%d/%n/Maildir`) needs it in the login name: the address;
//! 2. local delivery that finds recipients by their whole address
//!    (`[submission] relay = "maildir"`, `maildir_recipient = "address"`)
//!    means users are named by address: the address;
//! 3. otherwise (PAM's system users, htpasswd names without a domain) the
//!    local part, which is also how submission completes a login name to an
//!    address (`login@hostname`).
//!
//! # Thunderbird's autoconfig
//!
//! [`autoconfig_xml`] writes the `config-v1.1.xml` Thunderbird looks for at
//! `autoconfig.<domain>/mail/config-v1.1.xml` (format: Mozilla's
//! "Thunderbird:Autoconfiguration:ConfigFileFormat"): one `incomingServer`
//! of type `pop3` per POP3 port, one `outgoingServer` of type `smtp` per
//! submission port, socket type `SSL` for implicit TLS and `STARTTLS` for
//! the upgrade, authentication `password-cleartext` (USER/PASS and AUTH
//! PLAIN, always inside TLS). The provider's id and `<domain>` are the
//! configured `hostname`: Thunderbird requires them to be host names but
//! does not compare them with the address's domain, so one file serves
//! every domain whose `autoconfig` name points at popgate. Ports without TLS
//! are left out: a client set up automatically never sends a password in
//! the clear. Thunderbird rejects a file without an outgoing server or
//! without an incoming one; [`autoconfig_caveats`] says when that is so.

use std::fmt::Write as _;
use std::net::SocketAddr;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::config::{BackendKind, LoginPolicy, MaildirRecipient, Relay, Settings};

/// How a client connects to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (POP3S on 995, submissions on 465).
    Tls,
    /// Plaintext, then STLS/STARTTLS; `required` when no credentials are
    /// accepted before it.
    StartTls {
        /// Whether credentials need the upgrade first.
        required: bool,
    },
    /// No TLS at all (no `[tls]` section).
    None,
}

impl Security {
    /// The wording of Thunderbird's and Outlook's dialogs.
    fn for_people(self) -> &'static str {
        match self {
            Security::Tls => "SSL/TLS",
            Security::StartTls { required: true } => "STARTTLS (required)",
            Security::StartTls { required: false } => "STARTTLS",
            Security::None => "none (not for use over the internet)",
        }
    }

    /// The `socketType` of the autoconfig file; `None` for plaintext ports,
    /// which the file leaves out.
    fn socket_type(self) -> Option<&'static str> {
        match self {
            Security::Tls => Some("SSL"),
            Security::StartTls { .. } => Some("STARTTLS"),
            Security::None => None,
        }
    }
}

/// One port users may configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The port number.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
}

/// Which form of their name users log in with (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserNameForm {
    /// The whole email address, `alice@example.com`.
    Address,
    /// The part before the `@`, `alice`.
    LocalPart,
}

impl UserNameForm {
    /// The form the configuration implies, by the rule of the module docs.
    /// A Maildir template that does not parse counts as one without `%d`
    /// (`popgate serve` refuses it anyway).
    pub fn of(settings: &Settings) -> UserNameForm {
        let template_has_domain =
            popgate_auth::maildir_template_uses_domain(&settings.store.maildir).unwrap_or(false);
        let delivers_by_address = settings.submission.as_ref().is_some_and(|submission| {
            submission.relay == Relay::Maildir
                && submission.maildir_recipient == MaildirRecipient::Address
        });
        if template_has_domain || delivers_by_address {
            UserNameForm::Address
        } else {
            UserNameForm::LocalPart
        }
    }

    /// Thunderbird's placeholder for it.
    pub fn placeholder(self) -> &'static str {
        match self {
            UserNameForm::Address => "%EMAILADDRESS%",
            UserNameForm::LocalPart => "%EMAILLOCALPART%",
        }
    }

    fn for_people(self, backend: BackendKind) -> &'static str {
        match (self, backend) {
            (UserNameForm::Address, _) => "the whole email address (alice@example.com)",
            (UserNameForm::LocalPart, BackendKind::Pam) => {
                "the system user name, the email address's part before @ (alice)"
            }
            (UserNameForm::LocalPart, BackendKind::Htpasswd) => {
                "the email address's part before @ (alice)"
            }
        }
    }
}

/// What users type into their client, as facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The server name (`hostname`).
    pub host: String,
    /// Which form of their name users log in with.
    pub user_name: UserNameForm,
    /// POP3 ports, implicit TLS first.
    pub incoming: Vec<Endpoint>,
    /// Submission ports, implicit TLS first; empty without `[submission]`.
    pub outgoing: Vec<Endpoint>,
}

impl ClientSettings {
    /// The facts of `settings`.
    pub fn of(settings: &Settings) -> ClientSettings {
        let starttls = match (settings.tls.is_some(), settings.pop3.login) {
            (true, LoginPolicy::Secure) => Security::StartTls { required: true },
            (true, LoginPolicy::Plaintext) => Security::StartTls { required: false },
            (false, _) => Security::None,
        };
        let mut incoming = Vec::new();
        add(&mut incoming, &settings.pop3.listen_tls, Security::Tls);
        add(&mut incoming, &settings.pop3.listen, starttls);
        let mut outgoing = Vec::new();
        if let Some(submission) = &settings.submission {
            add(&mut outgoing, &submission.listen_tls, Security::Tls);
            // Submission never takes credentials before STARTTLS.
            let required = Security::StartTls { required: true };
            add(&mut outgoing, &submission.listen, required);
        }
        ClientSettings {
            host: settings.hostname.clone(),
            user_name: UserNameForm::of(settings),
            incoming,
            outgoing,
        }
    }
}

/// Adds one endpoint per port of `addrs`, skipping ports already listed.
fn add(endpoints: &mut Vec<Endpoint>, addrs: &[SocketAddr], security: Security) {
    for addr in addrs {
        let endpoint = Endpoint {
            port: addr.port(),
            security,
        };
        if !endpoints.contains(&endpoint) {
            endpoints.push(endpoint);
        }
    }
}

/// The client settings for `settings`, as text for people.
pub fn describe(settings: &Settings) -> String {
    let facts = ClientSettings::of(settings);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Incoming mail (POP3), user name: {}, password: the user's password",
        facts.user_name.for_people(settings.auth.backend)
    );
    for endpoint in &facts.incoming {
        line(&mut text, &facts.host, endpoint);
    }
    if !facts.outgoing.is_empty() {
        let _ = writeln!(
            text,
            "\nOutgoing mail (SMTP submission), same user name and password"
        );
        for endpoint in &facts.outgoing {
            line(&mut text, &facts.host, endpoint);
        }
    }
    text
}

fn line(text: &mut String, host: &str, endpoint: &Endpoint) {
    let _ = writeln!(
        text,
        "  server {host}  port {port}  connection security: {security}  authentication: normal password",
        port = endpoint.port,
        security = endpoint.security.for_people(),
    );
}

/// Thunderbird's `config-v1.1.xml` for `settings` (see the module docs);
/// what `popgate settings --autoconfig` prints. (It is written into
/// memory from UTF-8 text: the errors are the XML writer's, which has
/// none to give there.)
pub fn autoconfig_xml(settings: &Settings) -> std::io::Result<String> {
    let facts = ClientSettings::of(settings);
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_autoconfig(&mut writer, &facts)?;
    let mut xml = String::from_utf8(writer.into_inner()).map_err(std::io::Error::other)?;
    xml.push('\n');
    Ok(xml)
}

fn write_autoconfig(writer: &mut Writer<Vec<u8>>, facts: &ClientSettings) -> std::io::Result<()> {
    let host = facts.host.as_str();
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    writer
        .create_element("clientConfig")
        .with_attribute(("version", "1.1"))
        .write_inner_content(|writer| {
            writer
                .create_element("emailProvider")
                .with_attribute(("id", host))
                .write_inner_content(|writer| {
                    for element in ["domain", "displayName", "displayShortName"] {
                        writer
                            .create_element(element)
                            .write_text_content(BytesText::new(host))?;
                    }
                    servers(writer, facts, "incomingServer", "pop3", &facts.incoming)?;
                    servers(writer, facts, "outgoingServer", "smtp", &facts.outgoing)
                })?;
            Ok(())
        })?;
    Ok(())
}

/// One `element` of `kind` per endpoint that has TLS.
fn servers(
    writer: &mut Writer<Vec<u8>>,
    facts: &ClientSettings,
    element: &str,
    kind: &str,
    endpoints: &[Endpoint],
) -> std::io::Result<()> {
    for endpoint in endpoints {
        let Some(socket_type) = endpoint.security.socket_type() else {
            continue;
        };
        let port = endpoint.port.to_string();
        writer
            .create_element(element)
            .with_attribute(("type", kind))
            .write_inner_content(|writer| {
                for (name, value) in [
                    ("hostname", facts.host.as_str()),
                    ("port", &port),
                    ("socketType", socket_type),
                    ("authentication", "password-cleartext"),
                    ("username", facts.user_name.placeholder()),
                ] {
                    writer
                        .create_element(name)
                        .write_text_content(BytesText::new(value))?;
                }
                Ok(())
            })?;
    }
    Ok(())
}

/// Why Thunderbird would not use the autoconfig file of `settings`, if it
/// would not: it needs an incoming and an outgoing server.
pub fn autoconfig_caveats(settings: &Settings) -> Vec<String> {
    let facts = ClientSettings::of(settings);
    let with_tls =
        |endpoints: &[Endpoint]| endpoints.iter().any(|e| e.security.socket_type().is_some());
    let mut caveats = Vec::new();
    if !with_tls(&facts.incoming) {
        caveats.push(
            "no POP3 port with TLS: the file names no incoming server, and Thunderbird \
             ignores it (set [tls] and a POP3 listener)"
                .to_owned(),
        );
    }
    if !with_tls(&facts.outgoing) {
        caveats.push(
            "no submission port: the file names no outgoing server, and Thunderbird \
             ignores it (add [submission], or give users the file with another SMTP server)"
                .to_owned(),
        );
    }
    caveats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Settings {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        Settings::load(file.path()).unwrap()
    }

    /// One server of an autoconfig file, as Thunderbird reads it.
    #[derive(Debug, PartialEq, Eq)]
    struct Server {
        kind: String,
        hostname: String,
        port: u16,
        socket_type: String,
        authentication: String,
        username: String,
    }

    /// The incoming and outgoing servers of `xml`, parsed back with an XML
    /// parser that is not the writer's, checking the document's frame too.
    fn parse(xml: &str) -> (Vec<Server>, Vec<Server>) {
        let document = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let root = document.root_element();
        assert_eq!(root.tag_name().name(), "clientConfig", "{xml}");
        assert_eq!(root.attribute("version"), Some("1.1"), "{xml}");
        let provider = root
            .children()
            .find(|n| n.has_tag_name("emailProvider"))
            .unwrap_or_else(|| panic!("no emailProvider\n{xml}"));
        let child_text = |node: roxmltree::Node, name: &str| -> String {
            node.children()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .unwrap_or_else(|| panic!("no <{name}> text\n{xml}"))
                .to_owned()
        };
        assert_eq!(provider.attribute("id"), Some("mail.example.com"), "{xml}");
        assert_eq!(child_text(provider, "domain"), "mail.example.com");
        let servers = |element: &str| -> Vec<Server> {
            provider
                .children()
                .filter(|n| n.has_tag_name(element))
                .map(|n| Server {
                    kind: n.attribute("type").unwrap_or_default().to_owned(),
                    hostname: child_text(n, "hostname"),
                    port: child_text(n, "port").parse().unwrap(),
                    socket_type: child_text(n, "socketType"),
                    authentication: child_text(n, "authentication"),
                    username: child_text(n, "username"),
                })
                .collect()
        };
        (servers("incomingServer"), servers("outgoingServer"))
    }

    /// What each server of the file must be but for port, socket type and user name.
    fn server(kind: &str, port: u16, socket_type: &str, username: &str) -> Server {
        Server {
            kind: kind.into(),
            hostname: "mail.example.com".into(),
            port,
            socket_type: socket_type.into(),
            authentication: "password-cleartext".into(),
            username: username.into(),
        }
    }

    const TLS: &str = "hostname = \"mail.example.com\"\n[tls]\ncert = \"c\"\nkey = \"k\"\n";

    /// System users through PAM log in with their local part. Caught: a
    /// file without ports or socket types, or one that is not XML at all.
    #[test]
    fn pam_users_get_their_local_part_and_every_tls_port() {
        let settings = load(&format!(
            "{TLS}[pop3]\nlisten = [\"0.0.0.0:110\", \"[::]:110\"]\nlisten_tls = [\"0.0.0.0:995\"]\n\
             [auth]\nbackend = \"pam\"\n[store]\nmaildir = \"~/Maildir\"\n\
             [submission]\nrelay = \"sendmail\"\n"
        ));
        let (incoming, outgoing) = parse(&autoconfig_xml(&settings).unwrap());
        let local = "%EMAILLOCALPART%";
        assert_eq!(
            incoming,
            [
                server("pop3", 995, "SSL", local),
                server("pop3", 110, "STARTTLS", local)
            ]
        );
        assert_eq!(
            outgoing,
            [
                server("smtp", 465, "SSL", local),
                server("smtp", 587, "STARTTLS", local)
            ]
        );
        assert!(autoconfig_caveats(&settings).is_empty());
        assert!(
            describe(&settings).contains("user name: the system user name"),
            "{}",
            describe(&settings)
        );
    }

    /// Virtual users whose Maildirs are found by domain log in with their
    /// address, and `settings` says the same. Caught: one placeholder for all.
    #[test]
    fn htpasswd_users_with_a_domain_in_the_path_get_their_address() {
        let settings = load(&format!(
            "{TLS}[pop3]\nlisten = [\"0.0.0.0:110\"]\nlisten_tls = [\"0.0.0.0:995\"]\n\
             [auth]\nbackend = \"htpasswd\"\n[store]\nmaildir = \"/var/vmail/%d/%n/Maildir\"\n\
             [submission]\nlisten = [\"0.0.0.0:587\"]\nlisten_tls = []\nrelay = \"sendmail\"\n"
        ));
        let (incoming, outgoing) = parse(&autoconfig_xml(&settings).unwrap());
        let address = "%EMAILADDRESS%";
        assert_eq!(
            incoming,
            [
                server("pop3", 995, "SSL", address),
                server("pop3", 110, "STARTTLS", address)
            ]
        );
        assert_eq!(outgoing, [server("smtp", 587, "STARTTLS", address)]);
        assert!(
            describe(&settings).contains("user name: the whole email address"),
            "{}",
            describe(&settings)
        );
    }

    /// Local delivery by whole address names users by address even with a
    /// template without `%d`; a template with only `%u` and no such
    /// delivery gives the local part. Caught: a rule that read the backend
    /// or the template alone.
    #[test]
    fn delivery_by_address_means_users_are_addresses() {
        let base = format!(
            "{TLS}[pop3]\nlisten_tls = [\"0.0.0.0:995\"]\n[store]\nmaildir = \"/srv/mail/%u\"\n"
        );
        let by_address = load(&format!(
            "{base}[submission]\nrelay = \"maildir\"\nmaildir_recipient = \"address\"\n"
        ));
        assert_eq!(UserNameForm::of(&by_address), UserNameForm::Address);
        let by_local_part = load(&format!("{base}[submission]\nrelay = \"maildir\"\n"));
        assert_eq!(UserNameForm::of(&by_local_part), UserNameForm::LocalPart);
        assert_eq!(UserNameForm::of(&load(&base)), UserNameForm::LocalPart);
    }

    /// Without a plaintext POP3 listener the file has no STARTTLS server.
    /// Caught: servers written from the defaults rather than the listeners.
    #[test]
    fn no_starttls_listener_means_no_starttls_server() {
        let settings = load(&format!(
            "{TLS}[pop3]\nlisten = []\nlisten_tls = [\"0.0.0.0:995\"]\n[submission]\nlisten = []\n"
        ));
        let (incoming, outgoing) = parse(&autoconfig_xml(&settings).unwrap());
        let address = "%EMAILADDRESS%";
        assert_eq!(incoming, [server("pop3", 995, "SSL", address)]);
        assert_eq!(outgoing, [server("smtp", 465, "SSL", address)]);
    }

    /// Without submission there is no outgoing server, and the caveat says
    /// Thunderbird will not take the file; a POP3 port without TLS is never
    /// offered for automatic set-up.
    #[test]
    fn no_submission_and_no_tls_are_left_out_and_said() {
        let settings = load(&format!(
            "{TLS}[pop3]\nlisten = [\"0.0.0.0:110\"]\nlisten_tls = [\"0.0.0.0:995\"]\n"
        ));
        let (incoming, outgoing) = parse(&autoconfig_xml(&settings).unwrap());
        assert_eq!(incoming.len(), 2);
        assert!(outgoing.is_empty());
        let caveats = autoconfig_caveats(&settings);
        assert_eq!(caveats.len(), 1);
        assert!(caveats[0].contains("no submission port"), "{caveats:?}");

        let plaintext = load(
            "hostname = \"mail.example.com\"\n[pop3]\nlisten = [\"0.0.0.0:110\"]\nlisten_tls = []\n\
             login = \"plaintext\"\n",
        );
        let (incoming, _) = parse(&autoconfig_xml(&plaintext).unwrap());
        assert!(incoming.is_empty());
        assert!(autoconfig_caveats(&plaintext)[0].contains("no POP3 port with TLS"));
        assert!(describe(&plaintext).contains("connection security: none"));
    }

    /// A host name is any printable ASCII to the configuration: whatever it
    /// holds stays text in the file. Caught: hand-built XML without escaping.
    #[test]
    fn markup_in_the_host_name_is_escaped() {
        let settings = load(&format!(
            "{}[pop3]\nlisten_tls = [\"0.0.0.0:995\"]\n",
            TLS.replace("mail.example.com", "a<b>&\\\"c")
        ));
        let xml = autoconfig_xml(&settings).unwrap();
        let document = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let hostname = document
            .descendants()
            .find(|n| n.has_tag_name("hostname"))
            .and_then(|n| n.text());
        assert_eq!(hostname, Some("a<b>&\"c"));
    }

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
