//! Making one folder name acceptable to a target, and matching plan globs.
//!
//! Exchange's folder-name rules are undocumented (docs/graph-facts.md, unknown 5), so the Graph
//! rule is conservative and every change is reported: `/` and `\` become `_`, control
//! characters go, leading/trailing white space and trailing dots are trimmed, and a name is cut
//! to [`MAX_NAME_UNITS`] UTF-16 code units (Exchange counts in UTF-16). IMAP targets only need
//! their delimiter replaced and control characters removed.

use super::TargetKind;

/// Longest name kept, in UTF-16 code units.
pub const MAX_NAME_UNITS: usize = 255;

/// Returns the name for `target` and, if it changed, the reasons.
pub fn sanitize(name: &str, target: TargetKind) -> (String, Vec<&'static str>) {
    let mut notes = Vec::new();
    let mut out = String::with_capacity(name.len());
    let mut replaced = false;
    let mut removed = false;
    for c in name.chars() {
        let bad_separator = match target {
            TargetKind::Graph => c == '/' || c == '\\',
            TargetKind::Imap { delimiter } => c == delimiter,
        };
        if bad_separator {
            out.push('_');
            replaced = true;
        } else if c.is_control() {
            removed = true;
        } else {
            out.push(c);
        }
    }
    if replaced {
        notes.push(match target {
            TargetKind::Graph => "'/' and '\\' inside a name become '_'",
            TargetKind::Imap { .. } => {
                "the destination's hierarchy delimiter inside a name becomes '_'"
            }
        });
    }
    if removed {
        notes.push("control characters removed");
    }
    if target == TargetKind::Graph {
        let trimmed = trim_edges(&out);
        if trimmed.len() != out.len() {
            notes.push("leading/trailing spaces and trailing dots removed");
            out = trimmed.to_owned();
        }
        if utf16_len(&out) > MAX_NAME_UNITS {
            out = trim_edges(cut_utf16(&out, MAX_NAME_UNITS)).to_owned();
            notes.push("cut to 255 characters");
        }
    }
    if out.is_empty() {
        out.push('_');
        notes.push("nothing usable was left; named '_'");
    }
    (out, notes)
}

/// `base` with `suffix` appended, `base` cut so the result stays within the length limit.
pub fn with_suffix(base: &str, suffix: &str, target: TargetKind) -> String {
    if target != TargetKind::Graph {
        return format!("{base}{suffix}");
    }
    let room = MAX_NAME_UNITS.saturating_sub(utf16_len(suffix));
    let mut cut = trim_edges(cut_utf16(base, room));
    if cut.is_empty() {
        cut = "_";
    }
    format!("{cut}{suffix}")
}

/// Trims white space on both ends and dots at the end, until neither is left.
fn trim_edges(s: &str) -> &str {
    let mut s = s.trim();
    loop {
        let t = s.trim_end_matches('.').trim();
        if t.len() == s.len() {
            return s;
        }
        s = t;
    }
}

/// Length in UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The longest prefix of `s` that fits in `max` UTF-16 code units, on a char boundary.
fn cut_utf16(s: &str, max: usize) -> &str {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &s[..i];
        }
    }
    s
}

/// Case-insensitive glob: `*` matches any run of characters (including `/`), everything else
/// matches itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // Classic wildcard matching with one backtrack point: linear in practice, never recursive.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_rules() {
        let g = TargetKind::Graph;
        assert_eq!(sanitize("Projects", g), ("Projects".into(), vec![]));
        assert_eq!(sanitize("a/b\\c", g).0, "a_b_c");
        assert_eq!(sanitize(" Tab\there. . ", g).0, "Tabhere");
        assert_eq!(sanitize("...", g).0, "_");
        let long = "é".repeat(300);
        let (cut, notes) = sanitize(&long, g);
        assert_eq!(cut.chars().count(), 255);
        assert_eq!(notes, ["cut to 255 characters"]);
        // A surrogate pair is never split.
        let emoji = "😀".repeat(200);
        assert_eq!(utf16_len(&sanitize(&emoji, g).0), 254);
    }

    #[test]
    fn imap_rules_touch_only_the_delimiter_and_controls() {
        let t = TargetKind::Imap { delimiter: '.' };
        assert_eq!(sanitize(" v1.2/x ", t).0, " v1_2/x ");
        assert_eq!(sanitize("a\r\nb", t).0, "ab");
    }

    #[test]
    fn suffix_keeps_the_limit() {
        let s = with_suffix(&"x".repeat(255), " (2)", TargetKind::Graph);
        assert_eq!(utf16_len(&s), 255);
        assert!(s.ends_with("x (2)"));
    }

    #[test]
    fn globs() {
        assert!(glob_matches("Junk/*", "junk/2019/old"));
        assert!(!glob_matches("Junk/*", "Junk"));
        assert!(glob_matches("Trash", "TRASH"));
        assert!(glob_matches("*backup*", "Old/Backup 2"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(glob_matches("*", ""));
    }
}
