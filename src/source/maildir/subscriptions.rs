//! The folders a Maildir user subscribed to, from the tree's `subscriptions` file (Dovecot):
//! version 2 (`V<TAB>2` header, then one name per line with TAB between hierarchy levels) or
//! the older one name per line with the folder delimiter (also Courier's `courierimapsubscribed`,
//! whose names start with `INBOX.`). No file: the source keeps no subscriptions.

use std::collections::HashSet;

use super::{MaildirError, MaildirSource};

/// Subscribed names as hierarchy segments, from the file's text.
fn parse(text: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut lines = text.lines().peekable();
    let v2 = lines.peek().is_some_and(|l| l.starts_with("V\t"));
    if v2 {
        lines.next();
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let segs: Vec<String> = if v2 {
                l.split('\t').map(str::to_owned).collect()
            } else {
                l.split(delimiter).map(str::to_owned).collect()
            };
            // Courier writes every folder under INBOX.
            match segs.as_slice() {
                [first, rest @ ..]
                    if !v2 && delimiter == '.' && !rest.is_empty() && first == "INBOX" =>
                {
                    rest.to_vec()
                }
                _ => segs,
            }
        })
        .collect()
}

impl MaildirSource {
    /// Raw names of the subscribed folders; `None` when the tree has no subscriptions file.
    pub fn subscriptions(&mut self) -> Result<Option<HashSet<String>>, MaildirError> {
        let mut text = None;
        for name in ["subscriptions", "courierimapsubscribed"] {
            let path = self.root.join(name);
            match std::fs::read_to_string(&path) {
                Ok(t) => {
                    text = Some(t);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(MaildirError::io("reading", path, e)),
            }
        }
        let Some(text) = text else {
            return Ok(None);
        };
        let mut out = HashSet::new();
        for f in self.list_folders()? {
            let d = f.delimiter.unwrap_or('/');
            let wanted = parse(&text, d);
            let segs: Vec<String> = f.raw_name.split(d).map(str::to_owned).collect();
            let inbox = f.raw_name.eq_ignore_ascii_case("INBOX");
            if wanted.iter().any(|w| {
                *w == segs || (inbox && w.len() == 1 && w[0].eq_ignore_ascii_case("INBOX"))
            }) {
                out.insert(f.raw_name.clone());
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn both_file_versions_and_courier_names() {
        assert_eq!(
            parse("V\t2\n\nINBOX\nWork\tClients\n", '.'),
            [vec!["INBOX"], vec!["Work", "Clients"]]
        );
        assert_eq!(
            parse("INBOX\nINBOX.Sent\nArchiv.2019\n", '.'),
            [vec!["INBOX"], vec!["Sent"], vec!["Archiv", "2019"]]
        );
        assert_eq!(parse("Work/Clients\n", '/'), [vec!["Work", "Clients"]]);
    }
}
