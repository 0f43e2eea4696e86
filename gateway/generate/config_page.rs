//! `popgate.toml(5)`, made from the annotated configuration.
//!
//! `examples/popgate.toml` is the configuration contract: every key with
//! its default and a comment, and a test loads it. This module turns it into
//! a manual page so that the two cannot drift apart. It reads the file's
//! own layout, which is a few plain rules:
//!
//! - the comment block at the top is the page's DESCRIPTION;
//! - `[section]` starts a section; a comment after it on the same line, a
//!   comment block just before it, or one just after it (before its first
//!   key) describes the section;
//! - `key = value   # text` is a key, with its default; comment lines
//!   indented to continue that text, and a comment block just before the
//!   key, describe it;
//! - `# key = value   # text` is a key that is unset by default, shown with
//!   its example value.
//!
//! [`parse`] turns the text into a [`Page`]; [`render`] writes the roff.

use roff::{bold, italic, roman, Roff};

/// The annotated configuration as a manual page's content.
#[derive(Debug, Default, PartialEq)]
pub struct Page {
    /// The comment block at the top of the file.
    pub description: Vec<String>,
    /// The top-level keys first (a section without a name), then each
    /// `[section]` in file order.
    pub sections: Vec<Section>,
}

/// A `[section]` of the file, or the top level.
#[derive(Debug, Default, PartialEq)]
pub struct Section {
    /// `tls`, `submission.addresses`; empty for the top level.
    pub name: String,
    /// What the comments say of the section, one paragraph per block.
    pub text: Vec<String>,
    /// Its keys in file order.
    pub keys: Vec<Key>,
}

/// One key with its default (or example) value and its description.
#[derive(Debug, PartialEq)]
pub struct Key {
    /// The key's name within its section.
    pub name: String,
    /// The value as written in the file.
    pub value: String,
    /// The comment text describing it, joined into one paragraph.
    pub text: String,
    /// Commented out in the file: unset by default, the value an example.
    pub unset: bool,
}

/// A line of the annotated file, classified.
enum Line<'a> {
    Blank,
    /// `# text` at the start of a line.
    Comment(&'a str),
    /// An indented `# text`: it continues the previous key's comment.
    Continuation(&'a str),
    /// `[name]   # text`.
    Section {
        name: &'a str,
        text: &'a str,
    },
    /// `key = value   # text`, or the same after `# ` when `unset`.
    Key {
        name: &'a str,
        value: &'a str,
        text: &'a str,
        unset: bool,
    },
}

/// Splits `value # comment` at the first `#` outside a double-quoted string.
fn split_comment(text: &str) -> (&str, &str) {
    let mut in_string = false;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string => {
                return (text[..index].trim(), text[index + 1..].trim());
            }
            _ => {}
        }
    }
    (text.trim(), "")
}

/// `name = value # text` when `text` is a key line; `name` must look like a
/// TOML bare key, so prose that happens to contain `=` is not taken for one.
fn key_line(text: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = text.split_once('=')?;
    let name = name.trim();
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !text.starts_with(' ');
    if !bare {
        return None;
    }
    let (value, comment) = split_comment(rest);
    (!value.is_empty()).then_some((name, value, comment))
}

fn classify(line: &str) -> Line<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    if let Some(comment) = trimmed.strip_prefix('#') {
        if line.starts_with(char::is_whitespace) {
            return Line::Continuation(comment.trim());
        }
        let comment = comment.strip_prefix(' ').unwrap_or(comment);
        return match key_line(comment) {
            Some((name, value, text)) => Line::Key {
                name,
                value,
                text,
                unset: true,
            },
            None => Line::Comment(comment.trim_end()),
        };
    }
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((name, after)) = rest.split_once(']') {
            let (_, text) = split_comment(after);
            return Line::Section {
                name: name.trim(),
                text,
            };
        }
    }
    match key_line(trimmed) {
        Some((name, value, text)) => Line::Key {
            name,
            value,
            text,
            unset: false,
        },
        // Not something this layout has: shown as text rather than lost.
        None => Line::Comment(trimmed),
    }
}

/// Appends `text` to a paragraph, with a space between.
fn join(paragraph: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !paragraph.is_empty() {
        paragraph.push(' ');
    }
    paragraph.push_str(text);
}

/// Reads the annotated configuration's layout (see the module docs).
pub fn parse(annotated: &str) -> Page {
    let mut page = Page::default();
    // The section being read: the top level first, then each `[section]`.
    let mut section = Section::default();
    // The comment block being read, not yet given to a section or key.
    let mut pending = String::new();
    let mut in_description = true;
    // Whether the last line was a key (so an indented comment continues it).
    let mut after_key = false;
    for line in annotated.lines() {
        match classify(line) {
            Line::Blank => {
                if in_description && !pending.is_empty() {
                    page.description.push(std::mem::take(&mut pending));
                    in_description = false;
                } else if !pending.is_empty() {
                    section.text.push(std::mem::take(&mut pending));
                }
                after_key = false;
            }
            Line::Comment(text) => {
                join(&mut pending, text);
                after_key = false;
            }
            Line::Continuation(text) => match section.keys.last_mut() {
                Some(key) if after_key => join(&mut key.text, text),
                _ => join(&mut pending, text),
            },
            Line::Section { name, text } => {
                in_description = false;
                let mut text_of_section = Vec::new();
                if !pending.is_empty() {
                    text_of_section.push(std::mem::take(&mut pending));
                }
                if !text.is_empty() {
                    text_of_section.push(text.to_owned());
                }
                let next = Section {
                    name: name.to_owned(),
                    text: text_of_section,
                    keys: Vec::new(),
                };
                page.sections.push(std::mem::replace(&mut section, next));
                after_key = false;
            }
            Line::Key {
                name,
                value,
                text,
                unset,
            } => {
                in_description = false;
                let mut description = String::new();
                if section.keys.is_empty() && !section.name.is_empty() {
                    // Right after `[section]`: the comment is the section's.
                    if !pending.is_empty() {
                        section.text.push(std::mem::take(&mut pending));
                    }
                } else {
                    description = std::mem::take(&mut pending);
                }
                join(&mut description, text);
                section.keys.push(Key {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    text: description,
                    unset,
                });
                after_key = true;
            }
        }
    }
    if !pending.is_empty() {
        section.text.push(pending);
    }
    page.sections.push(section);
    page
}

/// The roff source of `popgate.toml(5)` for the annotated configuration.
pub fn render(annotated: &str, version: Option<&str>) -> String {
    let page = parse(annotated);
    let mut roff = Roff::new();
    let source = format!("popgate {}", version.unwrap_or_default());
    roff.control(
        "TH",
        ["POPGATE.TOML", "5", "", source.trim(), "popgate manual"],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "popgate.toml - configuration of the popgate POP3 gateway",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([bold("/etc/popgate/popgate.toml")]);
    roff.control("SH", ["DESCRIPTION"]);
    for paragraph in &page.description {
        roff.control("PP", []).text([roman(paragraph.as_str())]);
    }
    roff.control("PP", []).text([roman(
        "Each key below is shown with its default value; a key shown as unset \
         has no default, and its value is an example. `popgate config` prints \
         the configuration in effect.",
    )]);
    for section in &page.sections {
        if section.name.is_empty() && section.keys.is_empty() {
            continue;
        }
        let title = match section.name.as_str() {
            "" => "TOP-LEVEL KEYS".to_owned(),
            name => format!("[{name}]"),
        };
        roff.control("SH", [title.as_str()]);
        for paragraph in &section.text {
            roff.control("PP", []).text([roman(paragraph.as_str())]);
        }
        for key in &section.keys {
            roff.control("TP", []);
            roff.text([
                bold(key.name.as_str()),
                roman(" = "),
                italic(key.value.as_str()),
                roman(if key.unset {
                    "  (unset by default)"
                } else {
                    ""
                }),
            ]);
            roff.text([roman(key.text.as_str())]);
        }
    }
    roff.control("SH", ["FILES"]);
    roff.control("TP", [])
        .text([bold("/etc/popgate/popgate.toml")]);
    roff.text([roman("The configuration read by default.")]);
    roff.control("TP", [])
        .text([bold("/usr/share/doc/popgate/")]);
    roff.text([roman(
        "The annotated example (examples/popgate.toml) and the guides, one per kind of setup.",
    )]);
    roff.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::ANNOTATED_CONFIG;

    const SAMPLE: &str = "\
# Demo configuration.
# Second line of the description.

# The name.
hostname = \"mail.example.com\"

[tls]
# PEM files.
cert = \"/etc/cert.pem\"     # the chain
key  = \"/etc/key.pem\"

[pop3]
on_dele = \"delete\"           # \"delete\" | \"keep\"
                             #   continued here
banner = \"a # inside\"        # quoted hash

# About the proxy,
# two lines.
[proxy_protocol]
trusted = []

[store]
# mail_user = \"vmail\"        # unset: example
                             # and more

[submission.addresses]         # more addresses
# alice = [\"a@example.com\"]
";

    fn key(name: &str, value: &str, text: &str, unset: bool) -> Key {
        Key {
            name: name.into(),
            value: value.into(),
            text: text.into(),
            unset,
        }
    }

    /// Caught: continuation lines lost, a `#` in a string taken for a
    /// comment, prose before `[section]` given to the previous section,
    /// commented-out keys taken for prose.
    #[test]
    fn the_layout_rules_give_each_comment_to_its_key_or_section() {
        let page = parse(SAMPLE);
        assert_eq!(
            page.description,
            ["Demo configuration. Second line of the description."]
        );
        let names: Vec<&str> = page.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "",
                "tls",
                "pop3",
                "proxy_protocol",
                "store",
                "submission.addresses"
            ]
        );
        let [top, tls, pop3, proxy, store, addresses] = &page.sections[..] else {
            panic!("six sections: {names:?}")
        };
        assert_eq!(
            top.keys,
            [key("hostname", "\"mail.example.com\"", "The name.", false)]
        );
        assert_eq!(tls.text, ["PEM files."]);
        assert_eq!(
            tls.keys,
            [
                key("cert", "\"/etc/cert.pem\"", "the chain", false),
                key("key", "\"/etc/key.pem\"", "", false)
            ]
        );
        assert_eq!(
            pop3.keys,
            [
                key(
                    "on_dele",
                    "\"delete\"",
                    "\"delete\" | \"keep\" continued here",
                    false
                ),
                key("banner", "\"a # inside\"", "quoted hash", false)
            ]
        );
        assert!(pop3.text.is_empty());
        assert_eq!(proxy.text, ["About the proxy, two lines."]);
        assert_eq!(
            store.keys,
            [key(
                "mail_user",
                "\"vmail\"",
                "unset: example and more",
                true
            )]
        );
        assert_eq!(addresses.text, ["more addresses"]);
        assert_eq!(
            addresses.keys,
            [key("alice", "[\"a@example.com\"]", "", true)]
        );
    }

    /// Caught: text starting with `.` or holding `\` read as roff requests
    /// or escapes.
    #[test]
    fn roff_control_characters_in_comments_are_escaped() {
        let page = render(
            "[pop3]\nbanner = \"x\"   # .ne 5 and a \\ backslash\n",
            None,
        );
        assert!(!page.lines().any(|line| line.starts_with(".ne")), "{page}");
        assert!(page.contains("a \\\\ backslash"), "{page}");
    }

    /// Caught: a key that `popgate config` knows but the page does not
    /// document (the annotated example fell behind the code).
    #[test]
    fn every_key_of_the_effective_configuration_is_on_the_page() {
        let page = parse(ANNOTATED_CONFIG);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), ANNOTATED_CONFIG).unwrap();
        let settings = crate::config::Settings::load(file.path()).unwrap();
        let effective = toml::Value::try_from(&settings).unwrap();
        let documented = |section: &str, name: &str| {
            page.sections
                .iter()
                .any(|s| s.name == section && s.keys.iter().any(|k| k.name == name))
        };
        let mut missing = Vec::new();
        for (name, value) in effective.as_table().unwrap() {
            match value.as_table() {
                Some(table) => {
                    for key in table.keys() {
                        if !documented(name, key) && !table[key].is_table() {
                            missing.push(format!("{name}.{key}"));
                        }
                    }
                }
                None if !documented("", name) => missing.push(name.clone()),
                None => {}
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:?}");
        let roff = render(ANNOTATED_CONFIG, Some("1.0"));
        assert!(roff.contains("\n.TH POPGATE.TOML 5 "), "{roff}");
        assert!(roff.contains("\\fBon_dele\\fR"), "{roff}");
    }
}
