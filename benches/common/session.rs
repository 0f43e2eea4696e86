//! The POP3 session the benchmarks time, one copy for all of them
//! (`#[path]`-included by `metrics.rs` and `pop3_parse.rs`).

/// What a mail client sends in one session (login, check, fetch, delete).
pub const SESSION: &[&str] = &[
    "CAPA",
    "USER alice@example.com",
    "PASS correct horse battery staple",
    "STAT",
    "UIDL",
    "LIST",
    "UIDL 17",
    "LIST 17",
    "TOP 17 0",
    "RETR 17",
    "DELE 17",
    "RETR 18",
    "DELE 18",
    "NOOP",
    "QUIT",
];
