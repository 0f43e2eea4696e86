//! The message text the RETR benchmarks serve, one copy for all of them
//! (`#[path]`-included by `retr.rs` and `retr_loopback.rs`).

/// `size` octets of a message as mkmaildir writes them: a `Subject` line,
/// then 72-character LF lines, one in fifty starting with a dot (so the
/// encoder stuffs it). `seed` shifts the letters, so messages differ.
pub fn mkmaildir_message(size: usize, seed: usize) -> Vec<u8> {
    let mut text = format!("Subject: bench {seed}\n\n").into_bytes();
    let mut line = 0usize;
    while text.len() < size {
        if line % 50 == 0 {
            text.push(b'.');
        }
        text.extend((0..71).map(|i| b'a' + ((seed + line + i) % 26) as u8));
        text.push(b'\n');
        line += 1;
    }
    text.truncate(size);
    text
}
