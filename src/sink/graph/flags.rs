//! IMAP flags and mailferry's identity stamp as Graph properties (docs/graph-facts.md, section 4).
//!
//! | IMAP | Graph |
//! |---|---|
//! | `\Seen` | `isRead` |
//! | `\Flagged` | `flag.flagStatus = flagged` |
//! | `\Answered` | `Integer 0x1081` (last verb) = 102, `Integer 0x1080` (icon) = 261 |
//! | `$Forwarded` | `Integer 0x1081` = 104, `Integer 0x1080` = 262 |
//! | keywords | `categories` |
//! | `\Draft` | only at creation (JSON route, PR_MESSAGE_FLAGS bit 0x08) |
//!
//! The stamp is a string named property under mailferry's own property-set GUID. A second one,
//! `MailferryIncomplete`, marks a JSON-route item whose attachments are still being added: such an
//! item is not a finished copy, and lookups treat it that way.

use serde_json::{Value, json};

use crate::model::Flags;

/// mailferry's own MAPI property-set GUID (fixed forever: items in the wild carry it).
pub const STAMP_GUID: &str = "7fe49df8-4d6c-4cba-8fab-457e0a400bcc";
/// The identity stamp's extended-property id.
pub const STAMP_PROPERTY: &str =
    "String {7fe49df8-4d6c-4cba-8fab-457e0a400bcc} Name MailferryIdentity";
/// Set to "1" while attachments are being added to a JSON-route item, "0" when complete.
pub const INCOMPLETE_PROPERTY: &str =
    "String {7fe49df8-4d6c-4cba-8fab-457e0a400bcc} Name MailferryIncomplete";
/// PR_LAST_VERB_EXECUTED.
pub const LAST_VERB: &str = "Integer 0x1081";
/// PR_ICON_INDEX.
pub const ICON_INDEX: &str = "Integer 0x1080";
/// PR_MESSAGE_FLAGS (creation only).
pub const MESSAGE_FLAGS: &str = "Integer 0x0E07";
/// PR_MESSAGE_DELIVERY_TIME.
pub const DELIVERY_TIME: &str = "SystemTime 0x0E06";
/// PR_CLIENT_SUBMIT_TIME.
pub const SUBMIT_TIME: &str = "SystemTime 0x0039";

const VERB_REPLY: &str = "102";
const VERB_FORWARD: &str = "104";
const ICON_REPLIED: &str = "261";
const ICON_FORWARDED: &str = "262";
/// No verb executed: what an item that was never replied to or forwarded holds. Graph has no
/// way to delete a single-value extended property, so a removed `\Answered` / `$Forwarded` is
/// written as this value.
const VERB_NONE: &str = "0";
/// PR_ICON_INDEX's "no particular icon" (0xFFFFFFFF as a signed Integer): Outlook then draws the
/// icon from the read state, as for mail never replied to.
const ICON_NONE: &str = "-1";

/// The extended properties for answered/forwarded. `\Answered` wins when both are set (Outlook
/// shows one icon).
pub(crate) fn verb_properties(flags: &Flags) -> Vec<Value> {
    let (verb, icon) = if flags.answered {
        (VERB_REPLY, ICON_REPLIED)
    } else if flags.forwarded {
        (VERB_FORWARD, ICON_FORWARDED)
    } else {
        return Vec::new();
    };
    vec![
        json!({"id": LAST_VERB, "value": verb}),
        json!({"id": ICON_INDEX, "value": icon}),
    ]
}

/// The verb properties for an update: set as [`verb_properties`] does, or cleared when the
/// message is neither answered nor forwarded (so a flag removed at the source goes away).
pub(crate) fn verb_update(flags: &Flags) -> Vec<Value> {
    let set = verb_properties(flags);
    if !set.is_empty() {
        return set;
    }
    vec![
        json!({"id": LAST_VERB, "value": VERB_NONE}),
        json!({"id": ICON_INDEX, "value": ICON_NONE}),
    ]
}

/// `flag` for a message.
pub(crate) fn flag_value(flags: &Flags) -> Value {
    json!({"flagStatus": if flags.flagged { "flagged" } else { "notFlagged" }})
}

/// Categories from keywords.
pub(crate) fn categories(flags: &Flags) -> Vec<String> {
    flags.keywords.iter().cloned().collect()
}

/// The PATCH body for a freshly written item: its flags, plus the stamp if given. A new item
/// has no verb to clear, so only a set verb is sent.
pub(crate) fn patch_body(flags: &Flags, stamp: Option<&str>) -> Value {
    body_with(flags, stamp, verb_properties(flags))
}

/// The PATCH body that brings an existing item's flags in line with `flags`: every state is
/// written, set or cleared (isRead, flag, categories, the answered/forwarded verb).
pub(crate) fn update_body(flags: &Flags) -> Value {
    body_with(flags, None, verb_update(flags))
}

fn body_with(flags: &Flags, stamp: Option<&str>, mut props: Vec<Value>) -> Value {
    if let Some(s) = stamp {
        props.push(json!({"id": STAMP_PROPERTY, "value": s}));
    }
    let mut body = json!({
        "isRead": flags.seen,
        "flag": flag_value(flags),
        "categories": categories(flags),
    });
    if !props.is_empty() {
        body["singleValueExtendedProperties"] = Value::Array(props);
    }
    body
}

/// Reads flags back from a listed message (with the verb property expanded when available).
pub(crate) fn flags_from_item(item: &Value) -> Flags {
    let mut f = Flags {
        seen: item["isRead"].as_bool().unwrap_or(false),
        flagged: item["flag"]["flagStatus"].as_str() == Some("flagged"),
        draft: item["isDraft"].as_bool().unwrap_or(false),
        ..Flags::default()
    };
    if let Some(cats) = item["categories"].as_array() {
        f.keywords = cats
            .iter()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
    }
    match extended(item, LAST_VERB).as_deref() {
        Some(VERB_REPLY) => f.answered = true,
        Some(VERB_FORWARD) => f.forwarded = true,
        _ => {}
    }
    f
}

/// The value of one expanded single-value extended property (ids compare case-insensitively,
/// as Exchange returns them in its own spelling).
pub(crate) fn extended(item: &Value, id: &str) -> Option<String> {
    item["singleValueExtendedProperties"]
        .as_array()?
        .iter()
        .find_map(|p| {
            let pid = p["id"].as_str()?;
            pid.eq_ignore_ascii_case(id)
                .then(|| p["value"].as_str().map(str::to_owned))
                .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_carries_every_flag_and_the_stamp() {
        let f = Flags::from_atoms(["\\Seen", "\\Flagged", "\\Answered", "Work", "$label1"]);
        let b = patch_body(&f, Some("v1;1;2;ab;m;INBOX"));
        assert_eq!(b["isRead"], true);
        assert_eq!(b["flag"]["flagStatus"], "flagged");
        assert_eq!(b["categories"], json!(["$label1", "Work"]));
        let props = b["singleValueExtendedProperties"].as_array().unwrap();
        assert!(props.contains(&json!({"id": "Integer 0x1081", "value": "102"})));
        assert!(props.contains(&json!({"id": "Integer 0x1080", "value": "261"})));
        assert!(props.contains(&json!({"id": STAMP_PROPERTY, "value": "v1;1;2;ab;m;INBOX"})));
    }

    #[test]
    fn forwarded_maps_to_its_own_verb_and_plain_has_none() {
        let f = Flags::from_atoms(["$Forwarded"]);
        assert!(verb_properties(&f).contains(&json!({"id": "Integer 0x1081", "value": "104"})));
        let b = patch_body(&Flags::default(), None);
        assert_eq!(b["isRead"], false);
        assert_eq!(b["flag"]["flagStatus"], "notFlagged");
        assert!(b.get("singleValueExtendedProperties").is_none());
    }

    #[test]
    fn an_update_clears_a_removed_verb() {
        let b = update_body(&Flags::default());
        let props = b["singleValueExtendedProperties"].as_array().unwrap();
        assert!(props.contains(&json!({"id": LAST_VERB, "value": "0"})));
        assert!(props.contains(&json!({"id": ICON_INDEX, "value": "-1"})));
        assert_eq!(b["isRead"], false);
        assert_eq!(b["categories"], json!([]));
        let cleared = json!({"singleValueExtendedProperties": props});
        assert_eq!(flags_from_item(&cleared), Flags::default());
        let replied = update_body(&Flags::from_atoms(["\\Answered"]));
        assert!(
            replied["singleValueExtendedProperties"]
                .as_array()
                .unwrap()
                .contains(&json!({"id": LAST_VERB, "value": "102"}))
        );
    }

    #[test]
    fn flags_read_back_from_an_item() {
        let item = json!({
            "isRead": true, "isDraft": false, "flag": {"flagStatus": "flagged"}, "categories": ["Work"],
            "singleValueExtendedProperties": [{"id": "Integer 0x1081", "value": "104"}]
        });
        let f = flags_from_item(&item);
        assert_eq!(
            f,
            Flags::from_atoms(["\\Seen", "\\Flagged", "$Forwarded", "Work"])
        );
        let stamped = json!({"singleValueExtendedProperties": [{"id": STAMP_PROPERTY.to_lowercase(), "value": "x"}]});
        assert_eq!(extended(&stamped, STAMP_PROPERTY).as_deref(), Some("x"));
    }
}
