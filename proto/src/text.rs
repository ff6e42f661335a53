//! Text the ledger can store. PostgreSQL refuses the NUL character in `text` and in `jsonb`
//! strings (`\u0000`), so a message carrying one is refused up front, naming where it is, and a
//! vendor answer carrying one is stored with it replaced — never left to fail a statement that
//! other executions' rows share.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The most characters a request's `source` holds: a label (`flow:onboarding`), shown beside
/// each execution — not a payload every page of executions would carry.
pub const SOURCE_MAX: usize = 200;

/// Whether `c` has no place in a one-line label (a name, a `source`): a control character (a
/// line break forges a line in what the console, the logs and the audit trail show), a line or
/// paragraph separator, or a bidirectional control (U+202E before `cod.exe` shows it to a
/// reader as `exe.doc`).
pub fn breaks_a_label(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` shows nothing where it stands: white space, or an invisible character — a
/// zero-width space or joiner, a soft hyphen, a variation selector, a Hangul or Braille blank
/// (the characters the database's `name_key` drops, migration V24, and U+2800). A name of
/// these alone is an empty tile.
pub fn shows_nothing(c: char) -> bool {
    c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}'
            | '\u{17b5}' | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{2800}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
            | '\u{ffa0}')
}

/// An optional `source`: at most [`SOURCE_MAX`] characters, none of them one that
/// [`breaks_a_label`].
pub fn source<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let source = Option::<String>::deserialize(d)?;
    if let Some(s) = &source {
        let count = s.chars().count();
        if count > SOURCE_MAX {
            return Err(serde::de::Error::custom(format!(
                "source is {count} characters long; at most {SOURCE_MAX} are accepted"
            )));
        }
        if let Some(c) = s.chars().find(|c| breaks_a_label(*c)) {
            return Err(serde::de::Error::custom(format!(
                "source must not hold control characters (U+{:04X})",
                c as u32
            )));
        }
    }
    Ok(source)
}

/// Whether a JSON text may hold a NUL character: JSON can only spell it as the escape
/// `\u0000`, so a text without that sequence holds none (one with it may still mean a
/// backslash followed by `u0000`; [`nul_path`] then tells).
pub fn may_hold_nul(json: &[u8]) -> bool {
    // Searched with memchr's vectorised substring search: every request, vendor answer and
    // result is scanned, and a byte-by-byte window compare was ~1% of a worker's instructions.
    // The searcher is built once: `memmem::find` builds one per call, most of a short scan.
    static ESCAPE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\\u0000"));
    ESCAPE.find(json).is_some()
}

/// The path (`parameters.Name`, `parameters.Tags[2]`) of the first string or key in `v`
/// holding a NUL character, if any. `root` prefixes the path.
pub fn nul_path(v: &Value, root: &str) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(root.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, &format!("{root}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let path = if root.is_empty() {
                k.replace('\0', "\\u0000")
            } else {
                format!("{root}.{}", k.replace('\0', "\\u0000"))
            };
            if k.contains('\0') {
                Some(path)
            } else {
                nul_path(item, &path)
            }
        }),
        _ => None,
    }
}

/// Replaces every NUL character in the strings and keys of `v` with U+FFFD.
pub fn replace_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (k, mut item) in old {
                    replace_nul(&mut item);
                    map.insert(k.replace('\0', "\u{FFFD}"), item);
                }
            } else {
                map.values_mut().for_each(replace_nul);
            }
        }
        _ => {}
    }
}

/// `s` with every NUL character replaced with U+FFFD.
pub fn without_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_nul_and_names_its_path() {
        let v = json!({"parameters": {"LastName": "ok", "Tags": ["a", "b\u{0}c"]}});
        assert_eq!(nul_path(&v, "").as_deref(), Some("parameters.Tags[1]"));
        assert_eq!(
            nul_path(&json!({"a\u{0}": 1}), "x").as_deref(),
            Some("x.a\\u0000")
        );
        assert_eq!(nul_path(&json!({"a": [1, "two", {"b": null}]}), ""), None);
    }

    #[test]
    fn only_a_text_with_the_escape_may_hold_a_nul() {
        assert!(may_hold_nul(br#"{"a":"x\u0000y"}"#));
        assert!(!may_hold_nul(br#"{"a":"x\u0001y","b":"u0000"}"#));
        // The escape spelled out as text is a candidate, and the walk says there is none.
        let text = br#"{"a":"\\u0000"}"#;
        assert!(may_hold_nul(text));
        let v: Value = serde_json::from_slice(text).expect("json");
        assert_eq!(nul_path(&v, ""), None);
        // Every way serde_json reads a NUL comes from the escape.
        let v: Value = serde_json::from_slice(br#"{"k\u0000":"\u0000"}"#).expect("json");
        assert!(nul_path(&v, "").is_some());
        assert!(serde_json::from_slice::<Value>(b"{\"a\":\"\0\"}").is_err());
    }

    #[test]
    fn replaces_every_nul() {
        let mut v = json!({"k\u{0}": ["x\u{0}y", {"z": "\u{0}"}], "n": 1});
        replace_nul(&mut v);
        assert_eq!(nul_path(&v, ""), None);
        assert_eq!(
            v,
            json!({"k\u{FFFD}": ["x\u{FFFD}y", {"z": "\u{FFFD}"}], "n": 1})
        );
        assert_eq!(without_nul("a\u{0}b"), "a\u{FFFD}b");
        assert!(matches!(
            without_nul("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
