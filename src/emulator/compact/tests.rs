use serde_json::json;

use super::*;

fn round_trip(v: Value) {
    let props = v.as_object().cloned().unwrap();
    let bytes = encode(&props);
    assert_eq!(Value::Object(decode(&bytes)), v);
}

#[test]
fn every_kind_of_value_comes_back_exactly() {
    round_trip(json!({
        "subject": "café ☕ \u{0} quotes \" and \\",
        "isRead": true, "isDraft": false, "nothing": null,
        "numbers": [0, -1, 1.5, 18446744073709551615u64, -9223372036854775808i64, 1e300],
        "long": "x".repeat(300),
        "": "",
        "unknownKey": {"nested": [[], {}, [{"deep": "normal"}]]},
        "receivedDateTime": "2020-01-02T03:04:05Z",
        "sentDateTime": "1601-01-01T00:00:00Z",
        "fractional": "2020-01-02T03:04:05.5Z",
        "invalid": "2020-13-02T03:04:05Z",
        "offset": "2020-01-02T03:04:05+01:00",
        "body": {"contentType": "html", "content": "<p>hi</p>"},
        "flag": {"flagStatus": "notFlagged"},
        "from": {"emailAddress": {"name": "Ann", "address": "ann@example.org"}},
        "toRecipients": [], "categories": ["Red", "normal"],
    }));
    round_trip(json!({}));
}

#[test]
fn only_canonical_timestamps_are_packed() {
    assert_eq!(canonical_secs("1970-01-01T00:01:00Z"), Some(60));
    assert_eq!(canonical_secs("2020-01-02T03:04:05.0Z"), None);
    assert_eq!(canonical_secs("2020-1-02T03:04:05Z "), None);
    assert_eq!(canonical_secs("20200102T030405Z"), None);
}

#[test]
fn a_stored_item_rebuilds_to_the_same_message() {
    let mut names = Names::default();
    let m = Message {
        id: "AAMkADx".into(),
        folder_id: "AQMkADfolder".into(),
        seq: 7,
        props: json!({"subject": "s", "isRead": false, "receivedDateTime": "2021-05-06T07:08:09Z"})
            .as_object()
            .cloned()
            .unwrap(),
        ext: vec![ExtProp {
            id: "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name x".into(),
            value: "v".into(),
        }],
        raw_mime: Some(Blob::Digest {
            len: 3,
            sha256: [1; 32],
        }),
        attachments: Vec::new(),
        heavy: Some(Blob::Disk { offset: 5, len: 9 }),
        size: 42,
        change: 3,
    };
    let s = Stored::new(m.clone(), &mut names);
    let other = Stored::new(
        Message {
            id: "AAMkADy".into(),
            ..m.clone()
        },
        &mut names,
    );
    assert!(
        Arc::ptr_eq(&s.folder, &other.folder),
        "folder ids are shared"
    );
    assert!(Arc::ptr_eq(&s.ext[0].0, &other.ext[0].0));
    for back in [s.to_message(7), s.into_message(7)] {
        assert_eq!(back.id, m.id);
        assert_eq!(back.folder_id, m.folder_id);
        assert_eq!(back.seq, 7);
        assert_eq!(back.props, m.props);
        assert_eq!(back.ext[0].id, m.ext[0].id);
        assert_eq!(back.ext[0].value, "v");
        assert_eq!(back.raw_mime, m.raw_mime);
        assert_eq!(back.heavy, m.heavy);
        assert_eq!((back.size, back.change), (42, 3));
    }
}
