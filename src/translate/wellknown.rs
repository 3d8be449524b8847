//! Well-known folder names in common languages, for servers that do not announce RFC 6154
//! special-use attributes (older Courier, cPanel, hosted Dovecot without `special_use`). Names
//! come from the defaults of Thunderbird, Apple Mail, Outlook, Roundcube and Gmail in English,
//! German, French, Spanish, Italian, Dutch, Portuguese, Swedish, Danish/Norwegian and Polish.

use super::WellKnownFolder;

const TABLE: &[(WellKnownFolder, &[&str])] = &[
    // Only INBOX itself: a separate folder called "Posteingang" is the user's own folder.
    (WellKnownFolder::Inbox, &["inbox"]),
    (
        WellKnownFolder::SentItems,
        &[
            "sent",
            "sent items",
            "sent messages",
            "sent mail",
            "sent-mail",
            "gesendet",
            "gesendete objekte",
            "gesendete elemente",
            "envoyés",
            "éléments envoyés",
            "messages envoyés",
            "enviados",
            "elementos enviados",
            "itens enviados",
            "inviata",
            "posta inviata",
            "inviati",
            "elementi inviati",
            "verzonden",
            "verzonden items",
            "skickat",
            "skickade objekt",
            "sendt",
            "sendte elementer",
            "wysłane",
            "elementy wysłane",
        ],
    ),
    (
        WellKnownFolder::Drafts,
        &[
            "drafts",
            "draft",
            "entwürfe",
            "brouillons",
            "borradores",
            "rascunhos",
            "bozze",
            "concepten",
            "concepts",
            "utkast",
            "kladder",
            "wersje robocze",
        ],
    ),
    (
        WellKnownFolder::DeletedItems,
        &[
            "trash",
            "deleted items",
            "deleted messages",
            "deleted",
            "bin",
            "papierkorb",
            "gelöschte elemente",
            "gelöschte objekte",
            "corbeille",
            "éléments supprimés",
            "papelera",
            "elementos eliminados",
            "lixeira",
            "itens excluídos",
            "cestino",
            "posta eliminata",
            "elementi eliminati",
            "prullenbak",
            "verwijderde items",
            "papperskorgen",
            "borttagna objekt",
            "papirkurv",
            "slettede elementer",
            "kosz",
            "elementy usunięte",
        ],
    ),
    (
        WellKnownFolder::JunkEmail,
        &[
            "junk",
            "spam",
            "junk e-mail",
            "junk email",
            "junk mail",
            "bulk mail",
            "courrier indésirable",
            "unerwünscht",
            "junk-e-mail",
            "spamverdacht",
            "correo no deseado",
            "lixo eletrônico",
            "posta indesiderata",
            "ongewenste e-mail",
            "skräppost",
            "uønsket e-post",
            "wiadomości-śmieci",
        ],
    ),
    (
        WellKnownFolder::Archive,
        &[
            "archive", "archives", "archiv", "archivio", "archivo", "arquivo", "archief", "arkiv",
            "archiwum",
        ],
    ),
];

/// The well-known folder a top-level name stands for, compared case-insensitively.
pub(super) fn by_name(name: &str) -> Option<WellKnownFolder> {
    let lower = name.trim().to_lowercase();
    TABLE
        .iter()
        .find(|(_, names)| names.contains(&lower.as_str()))
        .map(|(w, _)| *w)
}

/// Exchange's own top-level folders that are not mail folders we import into (or that would
/// send mail, like Outbox). A source folder with one of these names at the top gets a suffix,
/// so nothing lands in the user's calendar or outbox. English names: other-locale mailboxes
/// show localised names, which Graph's lookup by name does not match anyway.
pub(super) const GRAPH_RESERVED_TOP_LEVEL: &[&str] = &[
    "calendar",
    "contacts",
    "tasks",
    "notes",
    "journal",
    "outbox",
    "conversation history",
    "sync issues",
    "conflicts",
    "local failures",
    "server failures",
    "rss feeds",
    "rss subscriptions",
    "clutter",
    "scheduled",
    "search folders",
    "recoverable items",
    "yammer root",
    "files",
    "social activity notifications",
    "quick step settings",
    "conversation action settings",
    "externalcontacts",
    "personmetadata",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_case_insensitively_in_many_languages() {
        assert_eq!(by_name("SENT ITEMS"), Some(WellKnownFolder::SentItems));
        assert_eq!(
            by_name("Gelöschte Elemente"),
            Some(WellKnownFolder::DeletedItems)
        );
        assert_eq!(
            by_name("ÉLÉMENTS ENVOYÉS"),
            Some(WellKnownFolder::SentItems)
        );
        assert_eq!(
            by_name("Courrier indésirable"),
            Some(WellKnownFolder::JunkEmail)
        );
        assert_eq!(by_name("Entwürfe"), Some(WellKnownFolder::Drafts));
        assert_eq!(by_name("Archiv"), Some(WellKnownFolder::Archive));
        assert_eq!(by_name("Projects"), None);
    }
}
