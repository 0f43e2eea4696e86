//! The htpasswd parser (`popgate_auth::check_htpasswd`) on arbitrary files.
//!
//! Invariants: every non-blank, non-comment line is either an entry, a
//! skipped line, with the reason the documented rules give, or a case clash
//! (checked against a line-by-line model, names folded to lower case); the
//! first entry of a user wins; line numbers are in order; and unsupported
//! hashes are a subset of the entries.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use popgate_auth::{check_htpasswd, validate_login_name, LoginNameCase, SkipReason, SkippedLine};

fuzz_target!(|data: &[u8]| {
    let report = check_htpasswd(data, LoginNameCase::Lower);

    let mut skipped = Vec::new();
    let mut clashes = Vec::new();
    let mut entry_lines = Vec::new();
    // The first spelling of each folded name.
    let mut users: HashMap<String, &str> = HashMap::new();
    for (index, raw) in data.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.trim_ascii();
        if raw.is_empty() || raw.starts_with(b"#") {
            continue;
        }
        match classify(raw) {
            Err(reason) => skipped.push(SkippedLine { line, reason }),
            Ok(user) => match users.get(&user.to_ascii_lowercase()) {
                Some(&first) if first == user => skipped.push(SkippedLine {
                    line,
                    reason: SkipReason::DuplicateUser,
                }),
                Some(_) => clashes.push(line),
                None => {
                    users.insert(user.to_ascii_lowercase(), user);
                    entry_lines.push(line);
                }
            },
        }
    }
    assert_eq!(report.skipped, skipped);
    let clash_lines: Vec<usize> = report.case_clashes.iter().map(|c| c.line).collect();
    assert_eq!(clash_lines, clashes);
    assert_eq!(report.entries, entry_lines.len());
    assert!(report.unsupported.windows(2).all(|w| w[0] < w[1]));
    assert!(
        report
            .unsupported
            .iter()
            .all(|line| entry_lines.binary_search(line).is_ok()),
        "an unsupported line that is not an entry"
    );
    assert_eq!(
        report.has_warnings(),
        !skipped.is_empty() || !report.unsupported.is_empty() || !clashes.is_empty()
    );
});

/// The documented rules for one line: `user:hash[:anything]`, a valid login
/// name, a non-empty hash.
fn classify(raw: &[u8]) -> Result<&str, SkipReason> {
    let text = std::str::from_utf8(raw).map_err(|_| SkipReason::NotUtf8)?;
    let (user, rest) = text.split_once(':').ok_or(SkipReason::NoSeparator)?;
    if validate_login_name(user).is_err() {
        return Err(SkipReason::InvalidUserName);
    }
    if rest.split(':').next().unwrap_or_default().is_empty() {
        return Err(SkipReason::EmptyHash);
    }
    Ok(user)
}
