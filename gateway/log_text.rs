//! Text from outside, made fit for a log line.
//!
//! Much of what popgate logs is chosen by someone else: login names, EHLO
//! names and envelope addresses by clients, Maildir file names by local
//! users (and so every error text that quotes a path), replies by upstream
//! servers. Any of it can hold a line break, and a line break in a log
//! starts a new line: a file named
//! `x\n2026-01-01T00:00:00Z  WARN authentication failed: … rip=198.51.100.7 …`
//! would have fail2ban ban an innocent address. So it is escaped, in two
//! places that share one character mapping:
//!
//! - **At the log sites of the gateway.** Every field that carries such
//!   text is written as [`LogText`]: `warn!(error = %LogText(&error), …)`.
//!   It shows CR, LF and TAB as `\r`, `\n`, `\t`, every other control
//!   character (C0, DEL, C1) as `\x1b` or `\u{85}`, the Unicode line and
//!   paragraph separators and the bidirectional overrides as `\u{2028}` and
//!   the like, and the backslash itself as `\\`, so an escape seen in a log
//!   was made here and cannot be typed in; and it cuts the text after
//!   [`MAX_CHARS`] characters, marking the cut with `…`. The protocol log
//!   shows commands and replies through [`escaped`], the same escaping with
//!   its own bound.
//! - **In the log output itself.** [`EscapedFields`], which `main` installs
//!   as the formatter of every event's message and fields, escapes control
//!   characters and separators once more (leaving backslashes alone, so
//!   text that went through [`LogText`] passes unchanged). A log site that
//!   forgot [`LogText`], or a library's own log line, can then still not
//!   break a line; it only loses the unambiguous backslash and the bound.
//!
//! The crates' errors keep their texts as they are (`StoreError`'s Display
//! names the path as it is on disk): the gateway writes the log, so it
//! decides how text is shown there, at the log site.
//!
//! ```
//! use popgate::log_text::LogText;
//! let name = "cur/1700000000.x\nWARN authentication failed: rip=198.51.100.7";
//! assert_eq!(
//!     LogText(name).to_string(),
//!     r"cur/1700000000.x\nWARN authentication failed: rip=198.51.100.7"
//! );
//! assert_eq!(LogText("tab\there, \\ and \u{2028}").to_string(), r"tab\there, \\ and \u{2028}");
//! ```

use std::fmt::{self, Write};

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;

/// The most characters of one [`LogText`] that are shown.
pub const MAX_CHARS: usize = 1024;

/// Text a client, a user or the file system controls, as a log line may
/// show it: escaped and bounded (see the [module documentation](self)).
#[derive(Debug, Clone, Copy)]
pub struct LogText<T>(pub T);

impl<T: fmt::Display> fmt::Display for LogText<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.0, MAX_CHARS)
    }
}

/// `text` as [`LogText`] shows it, but cut after `max_chars` characters
/// (for logs with a bound of their own, like the protocol log's).
pub fn escaped(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    // Writing into a String cannot fail.
    let _ = write_escaped(&mut out, &text, max_chars);
    out
}

/// Writes `value` escaped into `out`, cut after `max_chars` characters.
fn write_escaped<W: Write + ?Sized>(
    out: &mut W,
    value: &dyn fmt::Display,
    max_chars: usize,
) -> fmt::Result {
    let mut escaper = Escaper {
        out: &mut *out,
        backslash: true,
        left: max_chars,
        cut: false,
    };
    write!(escaper, "{value}")?;
    if escaper.cut {
        out.write_char('…')?;
    }
    Ok(())
}

/// The formatter of every log event's message and fields: tracing-subscriber's
/// default layout, written through the escaping of control characters and
/// line separators (see the [module documentation](self)).
#[derive(Debug)]
pub struct EscapedFields(DefaultFields);

impl EscapedFields {
    /// The default field layout, escaped.
    pub fn new() -> EscapedFields {
        EscapedFields(DefaultFields::new())
    }
}

impl Default for EscapedFields {
    fn default() -> EscapedFields {
        EscapedFields::new()
    }
}

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut escaper = Escaper {
            out: &mut writer,
            backslash: false,
            left: usize::MAX,
            cut: false,
        };
        self.0.format_fields(Writer::new(&mut escaper), fields)
    }
}

/// Writes text through to `out`, escaped, stopping after `left` characters.
struct Escaper<'a, W: Write + ?Sized> {
    out: &'a mut W,
    /// Show `\` as `\\` (for [`LogText`]; the output-wide net leaves it).
    backslash: bool,
    /// Characters still to be shown.
    left: usize,
    /// Some text was left out.
    cut: bool,
}

impl<W: Write + ?Sized> Write for Escaper<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            if self.left == 0 {
                self.cut = true;
                return Ok(());
            }
            self.left -= 1;
            match c {
                '\n' => self.out.write_str("\\n")?,
                '\r' => self.out.write_str("\\r")?,
                '\t' => self.out.write_str("\\t")?,
                '\\' if self.backslash => self.out.write_str("\\\\")?,
                c if u32::from(c) < 0x80 && c.is_control() => {
                    write!(self.out, "\\x{:02x}", u32::from(c))?;
                }
                c if c.is_control() || breaks_or_reorders(c) => {
                    write!(self.out, "\\u{{{:x}}}", u32::from(c))?;
                }
                c => self.out.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Characters that are not controls but still end a line for some readers
/// (line and paragraph separator) or make a viewer show text in another
/// order than it was written (bidirectional embeddings, overrides and
/// isolates).
fn breaks_or_reorders(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        LogText(text).to_string()
    }

    #[test]
    fn line_breaks_and_controls_are_escaped() {
        assert_eq!(shown("a\r\nb"), r"a\r\nb");
        assert_eq!(shown("\x1b[31mred\x07\x00\x7f"), r"\x1b[31mred\x07\x00\x7f");
        assert_eq!(shown("nel\u{85}csi\u{9b}"), r"nel\u{85}csi\u{9b}");
        assert_eq!(shown("ls\u{2028}ps\u{2029}"), r"ls\u{2028}ps\u{2029}");
        assert_eq!(shown("rlo\u{202e}fsi\u{2068}"), r"rlo\u{202e}fsi\u{2068}");
        assert_eq!(shown(r"C:\new"), r"C:\\new");
        assert_eq!(
            shown("plain text, ümlauts and 日本"),
            "plain text, ümlauts and 日本"
        );
    }

    #[test]
    fn nothing_shown_can_break_a_line() {
        let every: String = (0..=0x3000u32).filter_map(char::from_u32).collect();
        let out = shown(&every);
        assert!(!out.chars().any(|c| c.is_control() || breaks_or_reorders(c)));
    }

    #[test]
    fn long_text_is_cut_and_marked() {
        let long = "x".repeat(5000);
        let out = shown(&long);
        assert_eq!(out.chars().count(), MAX_CHARS + 1);
        assert!(out.ends_with('…'));
        assert_eq!(shown(&"y".repeat(MAX_CHARS)), "y".repeat(MAX_CHARS));
        assert_eq!(escaped("a\nbcdef", 4), r"a\nbc…");
    }

    #[test]
    fn any_display_value_is_escaped() {
        let path = std::path::Path::new("/m/cur/x\ny");
        assert_eq!(
            LogText(format_args!("opening {}", path.display())).to_string(),
            r"opening /m/cur/x\ny"
        );
    }

    #[test]
    fn the_output_net_escapes_controls_but_not_backslashes() {
        let mut out = String::new();
        let mut escaper = Escaper {
            out: &mut out,
            backslash: false,
            left: usize::MAX,
            cut: false,
        };
        escaper.write_str("a\nb \\n \u{2028}").unwrap();
        assert_eq!(out, r"a\nb \n \u{2028}");
        // Text already escaped by LogText passes unchanged.
        let escaped = shown("x\ny\\z");
        let mut again = String::new();
        Escaper {
            out: &mut again,
            backslash: false,
            left: usize::MAX,
            cut: false,
        }
        .write_str(&escaped)
        .unwrap();
        assert_eq!(again, escaped);
    }

    /// A log writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_site_that_forgot_log_text_still_writes_one_line() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields::new())
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let forged = "x\n2026-01-01T00:00:00Z  WARN authentication failed: rip=198.51.100.7";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(name = %forged, debug = ?forged, "message {forged}\u{2028}");
        });
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        let log = String::from_utf8_lossy(&bytes);
        assert_eq!(log.matches('\n').count(), 1, "{log}");
        assert!(log.ends_with('\n'), "{log}");
        assert!(!log.contains('\u{2028}'), "{log}");
        assert_eq!(log.matches(r"x\n2026").count(), 3, "{log}");
    }
}
