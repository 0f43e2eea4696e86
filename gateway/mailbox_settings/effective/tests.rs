use std::path::Path;
use std::sync::Arc;

use popgate_auth::LoginNameCase;
use popgate_store::{OnDele, Order};

use super::super::table::MailboxTable;
use super::{describe, resolve, Defaults, Effective, SenderAddresses, Source, Sourced};
use crate::config::Settings;

const FILE: &str = r#"[alice]
pop3 = false
[reply-bot]
on_dele = "delete"
order = "newest-first"
max_connections = 2
[bob]
on_dele = "keep"
submission = false
addresses = ["bob@example.com", "sales@example.com"]
[Carol]
pop3 = true
"#;

const SETTINGS: &str = r#"
hostname = "mail.example.com"
[pop3]
on_dele = "mark-seen"
max_connections_per_user = 5
[auth]
disabled_users = ["CAROL"]
[submission]
relay = "maildir"
[submission.addresses]
Bob = ["bob@corp.example"]
"#;

fn defaults(settings: &str) -> Defaults {
    let settings: Settings = toml::from_str(settings).unwrap();
    Defaults::new(&settings).unwrap()
}

fn table() -> MailboxTable {
    MailboxTable::parse(Path::new("/etc/m.toml"), FILE, LoginNameCase::Lower).unwrap()
}

fn file(line: usize) -> Source {
    Source::File {
        path: Arc::from(Path::new("/etc/m.toml")),
        line,
    }
}

fn sourced<T>(value: T, source: Source) -> Sourced<T> {
    Sourced { value, source }
}

fn addresses(effective: &Effective) -> Vec<(String, String)> {
    let SenderAddresses::Only(list) = &effective.senders else {
        panic!("{:?}", effective.senders);
    };
    list.iter()
        .map(|a| (a.value.clone(), a.source.to_string()))
        .collect()
}

#[test]
fn a_key_the_file_sets_wins_and_each_value_says_where_it_comes_from() {
    let defaults = defaults(SETTINGS);
    let table = table();
    let alice = resolve(&defaults, Some(&table), "alice");
    assert_eq!(alice.pop3, sourced(false, file(2)));
    assert_eq!(alice.submission, sourced(true, Source::Default));
    assert_eq!(
        alice.on_dele,
        sourced(OnDele::MarkSeen, Source::Setting("[pop3] on_dele"))
    );
    assert_eq!(
        alice.order,
        sourced(Order::OldestFirst, Source::Setting("[pop3] order"))
    );
    assert_eq!(
        alice.max_connections,
        sourced(5, Source::Setting("[pop3] max_connections_per_user"))
    );
    assert!(!alice.denied);

    let bot = resolve(&defaults, Some(&table), "reply-bot");
    assert_eq!(bot.pop3, sourced(true, Source::Default));
    assert_eq!(bot.on_dele, sourced(OnDele::Delete, file(4)));
    assert_eq!(bot.order, sourced(Order::NewestFirst, file(5)));
    assert_eq!(bot.max_connections, sourced(2, file(6)));
    assert_eq!(
        addresses(&bot),
        [("reply-bot@mail.example.com".into(), "the login name".into())]
    );

    let bob = resolve(&defaults, Some(&table), "bob");
    assert_eq!(bob.on_dele, sourced(OnDele::Keep, file(8)));
    assert_eq!(bob.submission, sourced(false, file(9)));
    assert_eq!(
        addresses(&bob),
        [
            ("bob@mail.example.com".into(), "the login name".into()),
            ("bob@corp.example".into(), "[submission.addresses]".into()),
            ("bob@example.com".into(), "/etc/m.toml line 10".into()),
            ("sales@example.com".into(), "/etc/m.toml line 10".into()),
        ]
    );
}

/// `disabled_users` stays off whatever the file says, on both services,
/// as popgate-auth refuses the user on both.
#[test]
fn disabled_users_wins_over_the_file() {
    let carol = resolve(&defaults(SETTINGS), Some(&table()), "carol");
    let disabled = Source::Setting("[auth] disabled_users");
    assert_eq!(carol.pop3, sourced(false, disabled.clone()));
    assert_eq!(carol.submission, sourced(false, disabled));
}

#[test]
fn without_a_table_everything_comes_from_the_configuration() {
    let defaults = defaults(SETTINGS);
    for table in [None, Some(&table())] {
        let dave = resolve(&defaults, table, "dave");
        assert_eq!(dave.pop3, sourced(true, Source::Default));
        assert_eq!(dave.submission, sourced(true, Source::Default));
        assert_eq!(dave.on_dele.source, Source::Setting("[pop3] on_dele"));
        assert_eq!(
            addresses(&dave),
            [("dave@mail.example.com".into(), "the login name".into())]
        );
    }
    let alice = resolve(&defaults, None, "alice");
    assert_eq!(alice.pop3, sourced(true, Source::Default));
}

#[test]
fn senders_follow_the_submission_section() {
    let none = defaults("[pop3]\n[auth]\ndeny_users = [\"Root\"]\n");
    let alice = resolve(&none, Some(&table()), "alice");
    assert_eq!(alice.submission, sourced(false, Source::NoSubmission));
    assert_eq!(alice.senders, SenderAddresses::NotServed);
    assert!(resolve(&none, None, "root").denied);

    let any = defaults("[submission]\nrelay = \"maildir\"\nsender_policy = \"any\"\n");
    assert_eq!(
        resolve(&any, Some(&table()), "bob").senders,
        SenderAddresses::Any
    );
    let own = defaults("[submission]\nrelay = \"maildir\"\n");
    assert_eq!(
        addresses(&resolve(&own, None, "eve@example.org")),
        [("eve@example.org".into(), "the login name".into())]
    );
}

/// What `popgate mailbox` prints: the file's syntax, sources in comments.
#[test]
fn described_as_the_file_would_write_it() {
    let defaults = defaults(SETTINGS);
    let table = table();
    let bob = resolve(&defaults, Some(&table), "bob");
    assert_eq!(
        describe(&bob, Some((Path::new("/etc/m.toml"), true))),
        "# bob: settings in force and where each comes from\n\
         # [bob] in /etc/m.toml\n\
         pop3 = true                  # default\n\
         submission = false           # /etc/m.toml line 9\n\
         on_dele = \"keep\"             # /etc/m.toml line 8\n\
         order = \"oldest-first\"       # [pop3] order\n\
         max_connections = 5          # [pop3] max_connections_per_user\n\
         addresses = [\n    \
             \"bob@mail.example.com\",  # the login name\n    \
             \"bob@corp.example\",      # [submission.addresses]\n    \
             \"bob@example.com\",       # /etc/m.toml line 10\n    \
             \"sales@example.com\",     # /etc/m.toml line 10\n\
         ]\n"
    );
    let dave = resolve(&defaults, Some(&table), "dave");
    let text = describe(&dave, Some((Path::new("/etc/m.toml"), false)));
    assert!(
        text.contains("# /etc/m.toml has no [dave] table\n"),
        "{text}"
    );
    assert!(text.contains("on_dele = \"mark-seen\"  "), "{text}");
    let any = Defaults::new(
        &toml::from_str::<Settings>("[submission]\nrelay = \"maildir\"\nsender_policy = \"any\"\n")
            .unwrap(),
    )
    .unwrap();
    let text = describe(&resolve(&any, None, "dave"), None);
    assert!(
        text.contains("# no [auth] mailbox_settings file\n"),
        "{text}"
    );
    assert!(
        text.ends_with("# sends as any address: [submission] sender_policy = \"any\"\n"),
        "{text}"
    );
}
