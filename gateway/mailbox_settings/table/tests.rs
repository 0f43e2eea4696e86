use std::path::Path;

use popgate_auth::LoginNameCase;
use popgate_store::{OnDele, Order};

use super::{Lined, MailboxTable};

const ISSUE_EXAMPLE: &str = r#"[alice]
pop3 = false                 # POP3 off for this mailbox
[reply-bot]
on_dele = "delete"           # the poller's mailbox is emptied ...
order = "newest-first"
max_connections = 2
[bob]
on_dele = "keep"             # ... while a person's keeps its copies
submission = false           # may read but not send
addresses = ["bob@example.com", "sales@example.com"]
"#;

fn parse(text: &str) -> MailboxTable {
    MailboxTable::parse(Path::new("m.toml"), text, LoginNameCase::Lower).unwrap()
}

/// The error's line and text for `text`.
fn refused(text: &str) -> (Option<usize>, String) {
    let error = MailboxTable::parse(Path::new("m.toml"), text, LoginNameCase::Lower).unwrap_err();
    (error.line, error.to_string())
}

fn lined<T>(value: T, line: usize) -> Option<Lined<T>> {
    Some(Lined { value, line })
}

#[test]
fn every_key_of_the_issue_example_is_read_with_its_line() {
    let table = parse(ISSUE_EXAMPLE);
    assert_eq!(table.len(), 3);
    let alice = table.get("alice").unwrap();
    assert_eq!(alice.pop3, lined(false, 2));
    assert_eq!(alice.submission, None);
    assert_eq!(alice.on_dele, None);
    assert!(alice.addresses.is_empty());
    let bot = table.get("reply-bot").unwrap();
    assert_eq!(bot.on_dele, lined(OnDele::Delete, 4));
    assert_eq!(bot.order, lined(Order::NewestFirst, 5));
    assert_eq!(bot.max_connections, lined(2, 6));
    let bob = table.get("bob").unwrap();
    assert_eq!(bob.on_dele, lined(OnDele::Keep, 8));
    assert_eq!(bob.submission, lined(false, 9));
    assert_eq!(bob.pop3, None);
    assert_eq!(
        bob.addresses,
        [
            Lined {
                value: "bob@example.com".to_owned(),
                line: 10
            },
            Lined {
                value: "sales@example.com".to_owned(),
                line: 10
            }
        ]
    );
    assert_eq!(table.get("carol"), None);
    assert!(parse("# nobody yet\n").is_empty());
}

#[test]
fn the_other_values_of_on_dele_and_order_are_read() {
    let table = parse(
        "[a]\non_dele = \"mark-seen\"\norder = \"oldest-first\"\n\
         [b]\non_dele = \"move:Archive\"\npop3 = true\nsubmission = true\n",
    );
    assert_eq!(table.get("a").unwrap().on_dele, lined(OnDele::MarkSeen, 2));
    assert_eq!(table.get("a").unwrap().order, lined(Order::OldestFirst, 3));
    let b = table.get("b").unwrap();
    assert_eq!(b.on_dele, lined(OnDele::Move("Archive".into()), 5));
    assert_eq!(
        (b.pop3.clone(), b.submission.clone()),
        (lined(true, 6), lined(true, 7))
    );
}

#[test]
fn names_are_folded_as_logins_are() {
    let text = "[Bob]\non_dele = \"keep\"\n[\"Alice@Example.COM\"]\npop3 = false\n";
    let lower = parse(text);
    assert!(lower.get("bob").is_some());
    assert!(lower.get("alice@example.com").is_some());
    assert!(lower.get("Bob").is_none());
    let exact = MailboxTable::parse(Path::new("m.toml"), text, LoginNameCase::Exact).unwrap();
    assert!(exact.get("Bob").is_some());
    assert!(exact.get("bob").is_none());
    assert!(exact.get("Alice@example.com").is_some());

    let (line, error) = refused("[bob]\npop3 = false\n\n[BOB]\nsubmission = false\n");
    assert_eq!(line, Some(4));
    assert!(
        error.contains("[BOB] is the user of [bob] on line 1"),
        "{error}"
    );
    // Under "exact" the two spellings are two users.
    let both = "[bob]\npop3 = false\n[BOB]\npop3 = true\n";
    let exact = MailboxTable::parse(Path::new("m.toml"), both, LoginNameCase::Exact).unwrap();
    assert_eq!(exact.len(), 2);
}

/// Each way a file can be wrong is refused with the line at fault, so
/// the admin's next step is to open the file there.
#[test]
fn a_broken_file_is_refused_with_its_line() {
    for (text, want_line, want) in [
        (
            "[bob]\non_dele = \"keep\"\non_del = \"delete\"\n",
            3,
            "unknown field `on_del`",
        ),
        ("[bob]\npop3 = \"no\"\n", 2, "invalid type"),
        (
            "[bob]\n\non_dele = \"shred\"\n",
            3,
            "on_dele: unknown on_dele \"shred\"",
        ),
        ("[bob]\non_dele = \"move:../x\"\n", 2, "on_dele"),
        ("[bob]\norder = \"random\"\n", 2, "order"),
        (
            "[bob]\nmax_connections = 0\n",
            2,
            "max_connections: must be at least 1",
        ),
        ("[bob]\nmax_connections = -1\n", 2, "invalid value"),
        ("[bob]\nmax_connections = \"2\"\n", 2, "invalid type"),
        (
            "[bob]\naddresses = [\n  \"bob@example.com\",\n  \"not an address\",\n]\n",
            4,
            "`not an address` (for bob) is not an RFC 5321 email address",
        ),
        (
            "[bob]\naddresses = \"bob@example.com\"\n",
            2,
            "invalid type",
        ),
        (
            "[alice]\npop3 = false\n[\".hidden\"]\n",
            3,
            "is not a login name",
        ),
        (
            "[alice]\npop3 = false\n[\"a b\"]\n",
            3,
            "is not a login name",
        ),
        ("alice = 3\n", 1, "invalid type"),
        ("[bob]\npop3 = false\n[bob]\n", 3, "duplicate"),
        ("[bob]\npop3 = = false\n", 2, ""),
        (
            "[alice]\npop3 = false\n[alice.smith]\npop3 = false\n",
            3,
            "a name with `.` or `@` is written in quotes: [\"alice.smith\"]",
        ),
        (
            "[alice@example.com]\n",
            1,
            "a name with `.` or `@` is written in quotes: [\"alice@example.com\"]",
        ),
    ] {
        let (line, error) = refused(text);
        assert_eq!(line, Some(want_line), "{text:?}: {error}");
        assert!(
            error.starts_with(&format!("m.toml line {want_line}: ")),
            "{error}"
        );
        assert!(error.contains(want), "{text:?}: {error}");
    }
}

/// The annotated example in `examples/` is a file popgate takes, and says
/// what its comments say.
#[test]
fn the_example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mailboxes.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let table = MailboxTable::parse(&path, &text, LoginNameCase::Lower).unwrap();
    assert_eq!(table.len(), 4);
    assert!(!table.get("alice").unwrap().pop3.as_ref().unwrap().value);
    let bot = table.get("reply-bot").unwrap();
    assert_eq!(bot.on_dele.as_ref().unwrap().value, OnDele::Delete);
    assert_eq!(bot.max_connections.as_ref().unwrap().value, 2);
    let bob = table.get("bob").unwrap();
    assert!(!bob.submission.as_ref().unwrap().value);
    assert_eq!(bob.addresses.len(), 2);
    assert_eq!(
        table
            .get("carol@example.com")
            .unwrap()
            .on_dele
            .as_ref()
            .unwrap()
            .value,
        OnDele::Move("Fetched".into())
    );
}
