//! What a reply-by-email integration needs from one message: who wrote it,
//! which ticket it answers, and what they wrote above the quoted original.
//!
//! The ticket reference is looked for, in this order, where the user cannot
//! easily break it:
//!
//! 1. the plus-address the reply was sent to, `reply+TICKET@…` (the
//!    notification's `Reply-To`), in `To`, `Cc`, `Delivered-To` or
//!    `X-Original-To`;
//! 2. `In-Reply-To` and `References`, when the notification's Message-ID
//!    was `<ticket-TICKET@…>` or `<ticket-TICKET.anything@…>`;
//! 3. `[#TICKET]` in the Subject, which a user can edit.
//!
//! A TICKET is 1–64 letters, digits, `-` or `_`.
//!
//! The reply text is the first `text/plain` part that is not an attachment
//! (RFC 3676 `format=flowed` joined back into paragraphs, as Thunderbird
//! sends it), else the first `text/html` part as text (Outlook may send
//! HTML only), cut at the first line that starts the quoted original:
//!
//! - a `>` quote;
//! - an attribution, `On <date>, <name> wrote:`, also when a client wrapped
//!   it over two lines (Gmail, Thunderbird, Apple Mail);
//! - `-----Original Message-----` (Outlook, plain text);
//! - a `From:` line followed within four lines by `Sent:` or `Date:`
//!   (Outlook's header block, in plain text or HTML);
//! - the signature separator `-- `.
//!
//! Blank lines and separator rules (`____`, `----`, `────`) left at the end
//! of what remains are dropped. Outlook in other languages (`Von:`,
//! `Gesendet:`) and other attribution wordings are not recognised: their
//! quote is kept, never the reply lost.

use mailparse::{addrparse_header, DispositionType, MailAddr, MailHeaderMap, ParsedMail};

/// One reply, as the integration sees it.
#[derive(Debug, PartialEq)]
pub struct Reply {
    /// The sender's address (`From`), empty when there is none.
    pub from: String,
    /// The ticket the reply is for, when the message names one.
    pub ticket: Option<String>,
    /// What the sender wrote, without the quoted original.
    pub text: String,
}

/// Reads a whole message (headers and body).
pub fn read(raw: &[u8]) -> Result<Reply, mailparse::MailParseError> {
    let mail = mailparse::parse_mail(raw)?;
    Ok(Reply {
        from: sender(&mail),
        ticket: ticket(&mail),
        text: above_the_quote(&body_text(&mail)?),
    })
}

fn single_addresses(mail: &ParsedMail, header: &str) -> Vec<String> {
    let mut addresses = Vec::new();
    for header in mail.headers.get_all_headers(header) {
        let Ok(list) = addrparse_header(header) else {
            continue;
        };
        for address in list.iter() {
            match address {
                MailAddr::Single(single) => addresses.push(single.addr.clone()),
                MailAddr::Group(group) => {
                    addresses.extend(group.addrs.iter().map(|single| single.addr.clone()))
                }
            }
        }
    }
    addresses
}

fn sender(mail: &ParsedMail) -> String {
    single_addresses(mail, "From")
        .into_iter()
        .next()
        .unwrap_or_default()
}

fn is_ticket(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `TICKET` from `reply+TICKET@host`.
fn ticket_of_plus_address(address: &str) -> Option<String> {
    let (local, _) = address.rsplit_once('@')?;
    let (base, tag) = local.split_once('+')?;
    (base.eq_ignore_ascii_case("reply") && is_ticket(tag)).then(|| tag.to_owned())
}

/// `TICKET` from each `<ticket-TICKET@…>` or `<ticket-TICKET.x@…>` in a
/// message-id list.
fn tickets_of_message_ids(ids: &str) -> impl Iterator<Item = String> + '_ {
    ids.split(['<', '>', ' ', '\t', '\r', '\n', ','])
        .filter_map(|id| {
            let (local, _) = id.rsplit_once('@')?;
            let rest = local.strip_prefix("ticket-")?;
            let ticket = rest.split('.').next()?;
            is_ticket(ticket).then(|| ticket.to_owned())
        })
}

/// `TICKET` from the first `[#TICKET]` in a subject.
fn ticket_of_subject(subject: &str) -> Option<String> {
    subject.match_indices("[#").find_map(|(start, _)| {
        let rest = &subject[start + 2..];
        let ticket = &rest[..rest.find(']')?];
        is_ticket(ticket).then(|| ticket.to_owned())
    })
}

/// The ticket reference, by the rules of the module docs.
pub fn ticket(mail: &ParsedMail) -> Option<String> {
    let headers = &mail.headers;
    ["To", "Cc", "Delivered-To", "X-Original-To"]
        .into_iter()
        .flat_map(|header| single_addresses(mail, header))
        .find_map(|address| ticket_of_plus_address(&address))
        .or_else(|| {
            ["In-Reply-To", "References"]
                .into_iter()
                .filter_map(|header| headers.get_first_value(header))
                .find_map(|ids| tickets_of_message_ids(&ids).next())
        })
        .or_else(|| {
            headers
                .get_first_value("Subject")
                .and_then(|subject| ticket_of_subject(&subject))
        })
}

/// The first part of `mimetype` that is not an attachment, depth first.
fn first_part<'a>(mail: &'a ParsedMail<'a>, mimetype: &str) -> Option<&'a ParsedMail<'a>> {
    if mail.subparts.is_empty() {
        let attachment = mail.get_content_disposition().disposition == DispositionType::Attachment;
        return (!attachment && mail.ctype.mimetype.eq_ignore_ascii_case(mimetype)).then_some(mail);
    }
    mail.subparts
        .iter()
        .find_map(|part| first_part(part, mimetype))
}

/// The body as plain text (see the module docs for which part).
fn body_text(mail: &ParsedMail) -> Result<String, mailparse::MailParseError> {
    if let Some(plain) = first_part(mail, "text/plain") {
        let text = plain.get_body()?;
        let params = &plain.ctype.params;
        let flowed = params
            .get("format")
            .is_some_and(|format| format.eq_ignore_ascii_case("flowed"));
        let delete_space = params
            .get("delsp")
            .is_some_and(|delsp| delsp.eq_ignore_ascii_case("yes"));
        return Ok(if flowed {
            unflow(&text, delete_space)
        } else {
            text
        });
    }
    if let Some(html) = first_part(mail, "text/html") {
        let html = html.get_body()?;
        // Wide enough that no line is wrapped: the cut rules read lines.
        return Ok(html2text::config::plain_no_decorate()
            .string_from_read(html.as_bytes(), 10_000)
            .unwrap_or_default());
    }
    Ok(String::new())
}

/// Joins RFC 3676 `format=flowed` text back into its paragraphs: a line
/// ending in a space continues on the next line of the same quote depth;
/// a leading space added for stuffing is removed; `-- ` stays a line.
pub fn unflow(text: &str, delete_space: bool) -> String {
    let mut lines: Vec<String> = Vec::new();
    // The depth of the last line, if it was flowed (it continues).
    let mut open: Option<usize> = None;
    for line in text.lines() {
        let depth = line.bytes().take_while(|&b| b == b'>').count();
        let content = &line[depth..];
        let content = content.strip_prefix(' ').unwrap_or(content);
        let continues = open == Some(depth);
        let flowed = content.ends_with(' ') && content != "-- ";
        let content = if flowed && delete_space {
            &content[..content.len() - 1]
        } else {
            content
        };
        match lines.last_mut() {
            Some(last) if continues => last.push_str(content),
            _ => {
                let quote = ">".repeat(depth);
                let separator = if depth > 0 { " " } else { "" };
                lines.push(format!("{quote}{separator}{content}"));
            }
        }
        open = flowed.then_some(depth);
    }
    let mut joined = lines.join("\n");
    joined.push('\n');
    joined
}

/// Whether `line` is only a separator rule.
fn is_rule(line: &str) -> bool {
    let line = line.trim();
    line.chars().count() >= 4 && line.chars().all(|c| matches!(c, '_' | '-' | '─' | '='))
}

/// Whether `line` starts Outlook's header block: `From:` here, and `Sent:`
/// or `Date:` among the next four lines.
fn is_outlook_header(line: &str, next: &[&str]) -> bool {
    let field = |line: &str, name: &str| {
        line.trim_start_matches([' ', '*'])
            .get(..name.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(name))
    };
    field(line, "From:")
        && next
            .iter()
            .take(4)
            .any(|line| field(line, "Sent:") || field(line, "Date:"))
}

/// Whether `line` (or `line` and `next` together) is an attribution,
/// `On … wrote:`.
fn is_attribution(line: &str, next: Option<&str>) -> bool {
    let line = line.trim();
    if !line.starts_with("On ") {
        return false;
    }
    line.ends_with("wrote:")
        || next.is_some_and(|next| {
            let next = next.trim();
            !next.is_empty() && format!("{line} {next}").ends_with("wrote:")
        })
}

/// The text above the quoted original (the cut rules of the module docs).
pub fn above_the_quote(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let cut = (0..lines.len())
        .find(|&index| {
            let line = lines[index];
            line.trim_start().starts_with('>')
                || line == "-- "
                || line
                    .trim()
                    .eq_ignore_ascii_case("-----Original Message-----")
                || is_attribution(line, lines.get(index + 1).copied())
                || is_outlook_header(line, &lines[index + 1..])
        })
        .unwrap_or(lines.len());
    let mut kept = &lines[..cut];
    while let Some((last, rest)) = kept.split_last() {
        if last.trim().is_empty() || is_rule(last) {
            kept = rest;
        } else {
            break;
        }
    }
    while let Some((first, rest)) = kept.split_first() {
        if first.trim().is_empty() {
            kept = rest;
        } else {
            break;
        }
    }
    kept.iter()
        .map(|line| line.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replies the end-to-end test delivers, as Outlook, Gmail and
    /// Thunderbird write them.
    fn sample(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/e2e/replies")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Caught: Outlook's "-----Original Message-----" block kept, the
    /// plus-address not read.
    #[test]
    fn outlook_plain_text_is_cut_at_original_message() {
        assert_eq!(
            read(&sample("outlook-plain.eml")).unwrap(),
            Reply {
                from: "carol@client.example".into(),
                ticket: Some("4711".into()),
                text: "It works again, thank you.\n\nCarol".into(),
            }
        );
    }

    /// Caught: an HTML-only body read as nothing, windows-1252 mangled, the
    /// From:/Sent: block (after an <hr>) kept, the Subject's [#…] missed.
    #[test]
    fn outlook_html_only_is_converted_and_cut_at_its_header_block() {
        assert_eq!(
            read(&sample("outlook-html.eml")).unwrap(),
            Reply {
                from: "dave@client.example".into(),
                ticket: Some("4712".into()),
                text: "Thanks, the VPN works from the café now.\n\nDave".into(),
            }
        );
    }

    /// Caught: the wrapped "On … <\naddr> wrote:" kept, the HTML part taken
    /// over the plain one, In-Reply-To not read.
    #[test]
    fn gmail_is_cut_at_its_wrapped_attribution() {
        assert_eq!(
            read(&sample("gmail.eml")).unwrap(),
            Reply {
                from: "erik@mail.example".into(),
                ticket: Some("4713".into()),
                text: "Sounds good, Tuesday works for me.\n\nGrüße, Erik".into(),
            }
        );
    }

    /// Caught: format=flowed lines left broken, the attribution kept.
    #[test]
    fn thunderbird_flowed_text_is_joined_and_cut() {
        assert_eq!(
            read(&sample("thunderbird.eml")).unwrap(),
            Reply {
                from: "frank@client.example".into(),
                ticket: Some("4714".into()),
                text: "The new monitor arrived and it is installed, but the cable is a little \
                       short; could you send a longer one?\n\nFrank"
                    .into(),
            }
        );
    }

    #[test]
    fn tickets_come_from_the_plus_address_then_the_thread_then_the_subject() {
        assert_eq!(
            ticket_of_plus_address("reply+A-1@x.example"),
            Some("A-1".into())
        );
        assert_eq!(ticket_of_plus_address("someone+A-1@x.example"), None);
        assert_eq!(ticket_of_plus_address("reply+a b@x.example"), None);
        assert_eq!(
            tickets_of_message_ids("<a@b> <ticket-77.3@t.example>").collect::<Vec<_>>(),
            ["77"]
        );
        assert_eq!(ticket_of_subject("Re: [#x y] [#42] hi"), Some("42".into()));
        assert_eq!(ticket_of_subject("Re: [#] [#42"), None);
        let mail = mailparse::parse_mail(
            b"To: reply+1@t.example\r\nIn-Reply-To: <ticket-2@t.example>\r\nSubject: [#3]\r\n\r\nx",
        )
        .unwrap();
        assert_eq!(ticket(&mail), Some("1".into()));
        let mail =
            mailparse::parse_mail(b"In-Reply-To: <ticket-2@t.example>\r\nSubject: [#3]\r\n\r\nx")
                .unwrap();
        assert_eq!(ticket(&mail), Some("2".into()));
        let mail = mailparse::parse_mail(b"Subject: Re: nothing\r\n\r\nx").unwrap();
        assert_eq!(ticket(&mail), None);
    }

    #[test]
    fn flowed_text_joins_soft_breaks_only_within_one_quote_depth() {
        assert_eq!(
            unflow(
                "a \r\nb\r\n> c \r\n> d\r\ne \r\n> f\r\n-- \r\nsig\r\n",
                false
            ),
            "a b\n> c d\ne \n> f\n-- \nsig\n"
        );
        assert_eq!(unflow("a \r\nb\r\n", true), "ab\n");
        assert_eq!(unflow(" From me\r\n", false), "From me\n");
    }

    #[test]
    fn a_reply_without_a_quote_is_kept_whole_and_a_signature_dropped() {
        assert_eq!(above_the_quote("\n\nJust this.\n\n"), "Just this.");
        assert_eq!(above_the_quote("Yes.\n-- \nAnn\n"), "Yes.");
        assert_eq!(
            above_the_quote("From: me, happily\nno header block follows\n"),
            "From: me, happily\nno header block follows"
        );
        assert_eq!(
            above_the_quote("On time, as usual.\nBye\n"),
            "On time, as usual.\nBye"
        );
    }
}
