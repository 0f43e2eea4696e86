//! popgate: a POP3 gateway for existing Maildir folders, with a submission
//! relay so the same users can send.
//!
//! The crate is the process around two libraries: `popgate-auth` decides who
//! may log in and where their mail lives; `popgate-store` reads and updates
//! Maildir mailboxes. What lives here is everything that touches the network:
//!
//! - [`config`]: the configuration contract as types, loaded from TOML and
//!   the environment;
//! - [`pop3`]: the protocol — a pure parser and session state machine, and
//!   the connection driver that does the I/O around them;
//! - [`submission`]: authenticated SMTP submission (ports 587 and 465) and
//!   the relay behind it, built the same way;
//! - [`server`]: listeners, limits, graceful shutdown; [`descriptors`]: the
//!   descriptor limit, listen backlog and accept backoff they size from
//!   `max_connections`; [`tls`]: certificates;
//!   [`proxy_protocol`]: client addresses from trusted load balancers;
//!   [`line_buffer`], [`stream`], [`limits`]: the pieces connections share;
//! - [`login`]: the password check, throttle and failure log of every service;
//! - [`protocol_log`]: the per-command log, with what it must never show;
//! - [`client_settings`]: what users type into their mail client;
//! - [`privileges`]: running as the mail user once the ports are bound;
//! - [`identity`]: system users' Maildirs touched with their own file rights;
//! - [`demo`]: a ready-to-try sandbox; [`check`]: the round-trip self-test.

pub mod check;
pub mod client_settings;
pub mod config;
pub mod demo;
pub mod descriptors;
pub mod identity;
pub mod limits;
pub mod line_buffer;
pub mod login;
pub mod pop3;
pub mod privileges;
pub mod protocol_log;
pub mod proxy_protocol;
pub mod server;
pub mod stream;
pub mod submission;
pub mod tls;
