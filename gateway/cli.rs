//! The command line of `popgate`, as clap definitions.
//!
//! They live in the library rather than in `main.rs` so that the manual
//! pages and shell completions are generated from them
//! ([`crate::generate`], `popgate generate man|completions DIR`): what
//! `scripts/package` ships always describes the binary it ships. `main.rs`
//! parses these types and dispatches; each variant's doc comment is its
//! `--help` text and the DESCRIPTION of its man page.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A POP3 gateway for existing Maildir folders.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each variant's doc comment is its help text and man page.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve POP3 (and submission, when configured) as the configuration file says.
    Serve {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
    },
    /// Set up a sandbox (certificate, user, Maildir) and serve it on loopback.
    Demo {
        /// Where to create the sandbox.
        #[arg(long, default_value = "popgate-demo")]
        dir: PathBuf,
        /// Plaintext POP3 port (STLS).
        #[arg(long, default_value_t = 2110)]
        pop3_port: u16,
        /// Implicit-TLS POP3 port.
        #[arg(long, default_value_t = 2995)]
        pop3s_port: u16,
        /// Submission port (STARTTLS).
        #[arg(long, default_value_t = 2587)]
        submission_port: u16,
        /// Implicit-TLS submission port.
        #[arg(long, default_value_t = 2465)]
        submissions_port: u16,
    },
    /// Check the running server as a mail client would, step by step;
    /// exits non-zero on any failure.
    ///
    /// `popgate check -c CONFIG` checks the certificate each TLS listener
    /// serves (POP3S, STLS on POP3, submission's TLS and STARTTLS ports) and
    /// prints its subject, issuer, names and days left. A certificate that
    /// expires within --warn-days, has expired, or does not name `hostname`
    /// fails.
    ///
    /// With --user USER it then logs in and looks at the mailbox (STAT,
    /// UIDL, TOP), changing nothing; with --round-trip USER it sends a
    /// message through submission and fetches it back over POP3. Both read
    /// USER's password from standard input.
    Check {
        /// The configuration file of the running server.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
        /// The light check as USER: login, STAT, UIDL, TOP; changes nothing.
        #[arg(long, value_name = "USER", conflicts_with = "round_trip")]
        user: Option<String>,
        /// Send a message as USER through submission and fetch it back over POP3.
        #[arg(long, value_name = "USER")]
        round_trip: Option<String>,
        /// How long to wait for the message to arrive.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        /// Fail when a served certificate expires within this many days
        /// (0: only an expired one fails). The server logs a warning daily
        /// within the default window.
        #[arg(long, value_name = "DAYS", default_value_t = crate::certificate::WARN_DAYS)]
        warn_days: u32,
    },
    /// Print what users type into their mail client (server, ports,
    /// security, the form of the user name).
    Settings {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
        /// Print Thunderbird's autoconfig file (config-v1.1.xml) instead, as
        /// served at autoconfig.DOMAIN/mail/config-v1.1.xml; what keeps
        /// Thunderbird from using it goes to standard error.
        #[arg(long)]
        autoconfig: bool,
    },
    /// Print the effective configuration (file plus environment overrides).
    Config {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
    },
    /// Print a mailbox's settings in force and where each comes from: the
    /// mailbox-settings file (`[auth] mailbox_settings`), the configuration,
    /// or popgate's default, as Exchange's Get-CASMailbox shows them.
    Mailbox {
        /// The configuration file.
        #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
        config: PathBuf,
        /// The login name.
        user: String,
    },
    /// Add or replace a user in an htpasswd file (bcrypt); reads the password
    /// from standard input. The name is stored in lower case, as servers
    /// with the default `[auth] login_name_case = "lower"` look it up; the
    /// file keeps its mode, owner and group (a new one is created 0640).
    Passwd {
        /// The htpasswd file (created if missing).
        #[arg(short, long)]
        file: PathBuf,
        /// The login name.
        user: String,
        /// bcrypt cost.
        #[arg(long, default_value_t = 12)]
        cost: u32,
        /// Store the name's local part as given, for servers with
        /// `[auth] login_name_case = "exact"` (the domain is still lowercased).
        #[arg(long)]
        keep_case: bool,
    },
    /// List the sessions of the running server, one a line: service, user,
    /// client address, TLS version, since when (UTC), state. Asks the
    /// control socket; run as root or as the user popgate runs as.
    Who {
        /// Where the running server's control socket is.
        #[command(flatten)]
        control: ControlArgs,
        /// Print the sessions as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// End every session of USER on the running server, without applying
    /// their deletions (the client hears that the administrator
    /// disconnected it). Waits a few seconds for them to end, so their
    /// mailbox is free when it returns; exits non-zero when USER had none.
    Kick {
        /// Where the running server's control socket is.
        #[command(flatten)]
        control: ControlArgs,
        /// The login name.
        user: String,
    },
    /// Reload the running server as SIGHUP does, and print what was
    /// reloaded; exits non-zero when something could not be.
    Reload {
        /// Where the running server's control socket is.
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Write the manual pages or the shell completions of this command
    /// into DIR (used by scripts/package, so they always match the CLI).
    #[command(hide = true)]
    Generate {
        /// What to write.
        #[arg(value_enum)]
        what: Generated,
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
}

/// Where the running server's control socket is.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The configuration file of the running server, for `[control] socket`.
    #[arg(short, long, default_value = "/etc/popgate/popgate.toml")]
    pub config: PathBuf,
    /// The control socket itself (then the configuration is not read).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// What `popgate generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    /// `popgate.1`, one `popgate-SUBCOMMAND.1` per subcommand, and
    /// `popgate.toml.5` from the annotated configuration.
    Man,
    /// Completions for bash (`popgate.bash`), zsh (`_popgate`) and fish
    /// (`popgate.fish`).
    Completions,
}
