//! popgate: a POP3 gateway for existing Maildir folders, with a submission
//! relay so the same users can send.
//!
//! The crate is the process around two libraries: `popgate-auth` decides who
//! may log in and where their mail lives; `popgate-store` reads and updates
//! Maildir mailboxes. What lives here is everything that touches the network:
//!
//! - [`config`]: the configuration contract as types, loaded from TOML and
//!   the environment;
//! - [`connection`]: the connection core every protocol runs on — reads
//!   under the idle timeout, the login deadline, the
//!   [request deadlines](request_deadline), shutdown and kicks, flushes,
//!   upgrades to TLS, taps the protocol log, keeps its entry in the
//!   [session registry](sessions), writes the summary line;
//! - [`pop3`]: the protocol — a pure parser and session state machine, and
//!   the driver that does the protocol's own I/O around them;
//! - [`submission`]: authenticated SMTP submission (ports 587 and 465) and
//!   the relay behind it, built the same way;
//! - [`server`]: listeners, limits, graceful shutdown; [`descriptors`]: the
//!   descriptor limit, listen backlog and accept backoff they size from
//!   `max_connections`; [`tls`]: certificates;
//!   [`certificate`]: what a certificate says (names, expiry) and what is
//!   wrong with it; [`expiry_watch`]: the log warning near its end;
//!   [`runtime`]: the snapshot of settings a connection runs with;
//!   [`reload`]: SIGHUP, the whole configuration reloaded while serving;
//!   [`control`]: the local socket of `popgate who`, `kick` and `reload`;
//!   [`proxy_protocol`]: client addresses from trusted load balancers;
//!   [`line_buffer`], [`stream`], [`limits`]: the pieces connections share;
//! - [`mailbox_settings`]: per-mailbox overrides of the configuration, and
//!   a mailbox's settings in force with where each comes from;
//! - [`login`]: the password check, throttle and failure log of every service,
//!   with [`address_share`] capping each client address's checks in flight;
//!   [`login_deadline`]: the total time a connection has to log in;
//! - [`protocol_log`]: the log of commands and replies, with what it must
//!   never show;
//!   [`log_text`]: text from clients, users and files escaped for any log line;
//! - [`metrics`]: what is counted for Prometheus, when `[metrics]` is
//!   configured; [`http_listener`]: the HTTP port that serves it and
//!   Thunderbird's autoconfig file;
//! - [`client_settings`]: what users type into their mail client, as text
//!   and as Thunderbird's autoconfig file;
//! - [`privileges`]: running as the mail user once the ports are bound;
//! - [`identity`]: system users' Maildirs touched with their own file rights;
//! - [`demo`]: a ready-to-try sandbox; [`check`]: the self-test, from the
//!   certificates served to a message's round trip;
//! - [`cli`]: the command line's definitions; [`generate`]: the man pages
//!   and shell completions made from them and from the annotated configuration.

#![forbid(unsafe_code)]

pub mod address_share;
pub mod certificate;
pub mod check;
pub mod cli;
pub mod client_settings;
pub mod config;
pub mod connection;
pub mod control;
pub mod demo;
pub mod descriptors;
pub mod expiry_watch;
pub mod generate;
pub mod http_listener;
pub mod identity;
pub mod limits;
pub mod line_buffer;
pub mod log_text;
pub mod login;
pub mod login_deadline;
pub mod mailbox_settings;
pub mod metrics;
pub mod pop3;
pub mod privileges;
pub mod protocol_log;
pub mod proxy_protocol;
pub mod reload;
pub mod request_deadline;
pub mod runtime;
pub mod server;
pub mod sessions;
pub mod shards;
pub mod stream;
pub mod submission;
pub mod tls;
