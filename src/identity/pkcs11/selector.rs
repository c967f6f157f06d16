//! `--cert-selector`: the Go helper's way of picking one certificate among many, applied
//! here to the certificates on a PKCS#11 token.
//!
//! Two spellings, as in the Go helper:
//! - `Key=x509Subject,Value=CN=leaf, O=Example Key=x509Serial,Value=1A2B`: pairs separated by
//!   white space; a value runs until the next `Key=` (so it may hold spaces and commas);
//! - `file://sel.json` naming a JSON file `[{"Key": "x509Subject", "Value": "CN=leaf"}]`
//!   (a JSON array given directly, starting with `[`, is accepted too).
//!
//! Keys are `x509Subject`, `x509Issuer` (distinguished names) and `x509Serial` (hex). Each
//! key may appear once; a certificate must match every key given.
//!
//! Names are compared with the certificate's subject or issuer as this tool prints it
//! (`Certificate::subject()`: RFC 4514-style `TYPE=value` pairs in certificate order joined
//! by `, `, e.g. `C=US, O=Example, CN=leaf`). The comparison splits both sides at unescaped
//! commas, ignores spaces around each pair and the case of attribute types, and also
//! accepts the pairs in reverse order, which is how the Go helper writes names
//! (`CN=leaf,O=Example,C=US`). Serials are hex, leading zeros, `0x`, `:` and spaces ignored.

use std::path::Path;

use crate::identity::Certificate;

/// Why a `--cert-selector` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    #[error("cannot read the selector file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the selector JSON is not a list of {{\"Key\": ..., \"Value\": ...}} objects: {detail}"
    )]
    Json { detail: String },
    #[error("cannot parse the selector near `{near}` (expected `Key=NAME,Value=VALUE` pairs)")]
    Syntax { near: String },
    #[error("`{key}` is not a selector key (use x509Subject, x509Issuer or x509Serial)")]
    UnknownKey { key: String },
    #[error("the selector key `{key}` is given twice")]
    Duplicate { key: String },
    #[error("x509Serial `{value}` is not a hex number")]
    BadSerial { value: String },
    #[error("the selector is empty")]
    Empty,
}

/// A parsed selector: every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertSelector {
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// The serial's magnitude, big-endian, without leading zero bytes.
    pub serial: Option<Vec<u8>>,
}

const KEYS: [&str; 3] = ["x509Subject", "x509Issuer", "x509Serial"];

impl CertSelector {
    /// Parses the flag's value, reading the file for `file://`.
    pub fn parse(raw: &str) -> Result<Self, SelectorError> {
        if let Some(path) = raw.strip_prefix("file://") {
            let read_error = |source| SelectorError::Read {
                path: path.to_string(),
                source,
            };
            let bytes = crate::files::read_regular(Path::new(path), crate::files::IDENTITY_CAP)
                .map_err(|e| read_error(e.into_io()))?;
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                read_error(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "it is not UTF-8 text",
                ))
            })?;
            return Self::from_json(&text);
        }
        if raw.trim_start().starts_with('[') {
            return Self::from_json(raw);
        }
        Self::from_pairs(&parse_pairs(raw)?)
    }

    /// Parses the JSON form.
    pub fn from_json(text: &str) -> Result<Self, SelectorError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            #[serde(rename = "Key")]
            key: String,
            #[serde(rename = "Value")]
            value: String,
        }
        let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| SelectorError::Json {
            detail: e.to_string(),
        })?;
        let pairs: Vec<(String, String)> = entries.into_iter().map(|e| (e.key, e.value)).collect();
        Self::from_pairs(&pairs)
    }

    fn from_pairs(pairs: &[(String, String)]) -> Result<Self, SelectorError> {
        if pairs.is_empty() {
            return Err(SelectorError::Empty);
        }
        let mut selector = CertSelector::default();
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in pairs {
            if !KEYS.contains(&key.as_str()) {
                return Err(SelectorError::UnknownKey { key: key.clone() });
            }
            if seen.contains(&key.as_str()) {
                return Err(SelectorError::Duplicate { key: key.clone() });
            }
            seen.push(key);
            match key.as_str() {
                "x509Subject" => selector.subject = Some(value.clone()),
                "x509Issuer" => selector.issuer = Some(value.clone()),
                _ => selector.serial = Some(parse_serial(value)?),
            }
        }
        Ok(selector)
    }

    /// Whether `cert` satisfies every field of the selector.
    pub fn matches(&self, cert: &Certificate) -> bool {
        self.subject
            .as_deref()
            .is_none_or(|s| names_match(s, cert.subject()))
            && self
                .issuer
                .as_deref()
                .is_none_or(|s| names_match(s, cert.issuer()))
            && self
                .serial
                .as_deref()
                .is_none_or(|s| s == crate::der::strip_leading_zeros(cert.serial_der()))
    }
}

/// Splits `Key=A,Value=B Key=C,Value=D` into pairs. A value ends where white space (or
/// nothing) is followed by `Key=`, or at the end; it is trimmed on the right.
fn parse_pairs(raw: &str) -> Result<Vec<(String, String)>, SelectorError> {
    let mut pairs = Vec::new();
    let mut rest = raw.trim_start();
    while !rest.is_empty() {
        let syntax = |near: &str| SelectorError::Syntax {
            near: near.chars().take(40).collect(),
        };
        let body = rest.strip_prefix("Key=").ok_or_else(|| syntax(rest))?;
        let (key, after) = body.split_once(",Value=").ok_or_else(|| syntax(rest))?;
        if key.is_empty() {
            return Err(syntax(rest));
        }
        // The value is at least one character, then runs to the next `Key=` or the end.
        let mut end = after.len();
        for (i, _) in after.char_indices().skip(1) {
            if after[i..].trim_start().starts_with("Key=") {
                end = i;
                break;
            }
        }
        let value = after[..end].trim_end();
        if value.is_empty() {
            return Err(syntax(rest));
        }
        pairs.push((key.to_string(), value.to_string()));
        rest = after[end..].trim_start();
    }
    Ok(pairs)
}

fn parse_serial(value: &str) -> Result<Vec<u8>, SelectorError> {
    let bad = || SelectorError::BadSerial {
        value: value.to_string(),
    };
    let trimmed = value.trim();
    let digits: String = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed)
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    let bytes = hex::decode(padded).map_err(|_| bad())?;
    Ok(crate::der::strip_leading_zeros(&bytes).to_vec())
}

/// Splits a distinguished name string into normalised `type=value` pairs: split at commas
/// not escaped by a backslash, spaces around each pair and around `=` dropped, the type
/// upper-cased.
fn name_parts(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in name.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
        .iter()
        .map(|p| match p.trim().split_once('=') {
            Some((t, v)) => format!("{}={}", t.trim().to_ascii_uppercase(), v.trim()),
            None => p.trim().to_string(),
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether the selector's name equals the certificate's, in either order.
pub fn names_match(wanted: &str, actual: &str) -> bool {
    let wanted = name_parts(wanted);
    let mut actual = name_parts(actual);
    if wanted == actual {
        return true;
    }
    actual.reverse();
    wanted == actual
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &str) -> Vec<(String, String)> {
        parse_pairs(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn key_value_pairs_like_the_go_helper() {
        assert_eq!(
            pairs("Key=x509Subject,Value=CN=leaf"),
            [p("x509Subject", "CN=leaf")]
        );
        assert_eq!(
            pairs("Key=x509Subject,Value=CN=leaf, O=Example Corp Key=x509Serial,Value=1A2B"),
            [
                p("x509Subject", "CN=leaf, O=Example Corp"),
                p("x509Serial", "1A2B")
            ]
        );
        assert_eq!(
            pairs("  Key=x509Issuer,Value=CN=ca   Key=x509Subject,Value=CN=x  "),
            [p("x509Issuer", "CN=ca"), p("x509Subject", "CN=x")]
        );
        // Like the Go helper's regular expression, `Key=` ends a value even without a space.
        assert_eq!(
            pairs("Key=x509Serial,Value=01Key=x509Subject,Value=CN=y"),
            [p("x509Serial", "01"), p("x509Subject", "CN=y")]
        );
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "x509Subject=CN=leaf",
            "Key=x509Subject",
            "Key=x509Subject,Value=",
            "Key=,Value=x",
            "junk Key=x509Subject,Value=CN=a",
        ] {
            let result = CertSelector::parse(bad);
            assert!(result.is_err(), "{bad} parsed as {result:?}");
        }
        // Spaces inside a value are part of it.
        assert_eq!(
            pairs("Key=x509Subject,Value=CN=a junk"),
            [p("x509Subject", "CN=a junk")]
        );
        assert!(matches!(
            CertSelector::parse("Key=x509Subject,Value=CN=a Key=x509Subject,Value=CN=b"),
            Err(SelectorError::Duplicate { .. })
        ));
        assert!(matches!(
            CertSelector::parse("Key=subject,Value=CN=a"),
            Err(SelectorError::UnknownKey { .. })
        ));
        assert!(matches!(
            CertSelector::parse("Key=x509Serial,Value=xyz"),
            Err(SelectorError::BadSerial { .. })
        ));
        assert!(matches!(CertSelector::parse(""), Err(SelectorError::Empty)));
        assert!(matches!(
            CertSelector::parse("[]"),
            Err(SelectorError::Empty)
        ));
    }

    #[test]
    fn serials_are_hex_magnitudes() {
        let s = CertSelector::parse("Key=x509Serial,Value=00:1a:2B").unwrap();
        assert_eq!(s.serial, Some(vec![0x1a, 0x2b]));
        let s = CertSelector::parse("Key=x509Serial,Value=0x123").unwrap();
        assert_eq!(s.serial, Some(vec![0x01, 0x23]));
    }

    #[test]
    fn json_forms() {
        let s = CertSelector::parse(
            r#"[{"Key":"x509Subject","Value":"CN=leaf"},{"Key":"x509Serial","Value":"1234"}]"#,
        )
        .unwrap();
        assert_eq!(s.subject.as_deref(), Some("CN=leaf"));
        assert_eq!(s.serial, Some(vec![0x12, 0x34]));
        assert!(matches!(
            CertSelector::parse(r#"[{"Key":"x509Subject"}]"#),
            Err(SelectorError::Json { .. })
        ));
        assert!(matches!(
            CertSelector::parse(r#"[{"Key":"bogus","Value":"x"}]"#),
            Err(SelectorError::UnknownKey { .. })
        ));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sel.json");
        std::fs::write(&file, r#"[{"Key":"x509Issuer","Value":"CN=ca"}]"#).unwrap();
        let s = CertSelector::parse(&format!("file://{}", file.display())).unwrap();
        assert_eq!(s.issuer.as_deref(), Some("CN=ca"));
        let missing = CertSelector::parse(&format!("file://{}/none.json", dir.path().display()));
        assert!(matches!(missing, Err(SelectorError::Read { .. })));
    }

    #[test]
    fn names_match_in_either_order_and_spacing() {
        let ours = "C=US, O=Example Corp, CN=leaf";
        assert!(names_match("C=US, O=Example Corp, CN=leaf", ours));
        assert!(names_match("CN=leaf,O=Example Corp,C=US", ours));
        assert!(names_match("cn = leaf , o=Example Corp, c=US", ours));
        assert!(!names_match("CN=leaf", ours));
        assert!(!names_match("CN=Leaf,O=Example Corp,C=US", ours));
        assert!(names_match(r"CN=a\, b", r"CN=a\, b"));
        assert!(!names_match(r"CN=a\, b", "CN=a, b"));
    }

    #[test]
    fn matches_real_certificates() {
        let pem = std::fs::read("tests/data/vectors/pki/p384-leaf.pem").unwrap();
        let cert = crate::identity::parse_certificates(&pem).unwrap().remove(0);
        let by_serial = CertSelector::parse("Key=x509Serial,Value=1234").unwrap();
        assert!(by_serial.matches(&cert));
        let subject = cert.subject().to_string();
        let by_subject = CertSelector::parse(&format!("Key=x509Subject,Value={subject}")).unwrap();
        assert!(by_subject.matches(&cert), "{subject}");
        let wrong = CertSelector::parse("Key=x509Serial,Value=1235").unwrap();
        assert!(!wrong.matches(&cert));
        let both = CertSelector {
            subject: Some(subject),
            issuer: Some("CN=someone else".into()),
            serial: None,
        };
        assert!(!both.matches(&cert));
    }
}
