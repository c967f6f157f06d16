//! RFC 7512 `pkcs11:` URIs: parsing, redaction and formatting.
//!
//! A PKCS#11 URI is a search term rather than a name: its path attributes (`;`-separated)
//! constrain the library, slot, token and object, its query attributes (`&`-separated,
//! after `?`) say how to get there (the PIN and the module). This parser is strict where a
//! silent mistake would select the wrong key and lenient where the intent is plain:
//!
//! - every standard path attribute is understood; an unknown path attribute (vendor ones
//!   included) is refused, because RFC 7512 section 3.3 makes such a URI match nothing;
//! - unknown query attributes are ignored, as the RFC allows (they never select anything);
//! - a path attribute, or a standard query attribute, given twice is refused, and so is
//!   `pin-value` together with `pin-source`;
//! - values are percent-decoded (`%` must be followed by two hex digits); characters the RFC
//!   wants percent-encoded but that cannot be misread (a space, `/` in a label) are accepted
//!   as they are; `id` and `object` are bytes, the other text attributes must be UTF-8;
//! - an empty segment (a trailing `;` or `&`) is skipped.
//!
//! The `pin-value` never appears in [`Pkcs11Uri`]'s `Display` or `Debug`.

use std::fmt;

use secrecy::SecretString;

/// The kinds of object `type=` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Public,
    Private,
    Cert,
    SecretKey,
    Data,
}

impl ObjectType {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "public" => ObjectType::Public,
            "private" => ObjectType::Private,
            "cert" => ObjectType::Cert,
            "secret-key" => ObjectType::SecretKey,
            "data" => ObjectType::Data,
            _ => return None,
        })
    }

    /// The name as written in a URI.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Public => "public",
            ObjectType::Private => "private",
            ObjectType::Cert => "cert",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Data => "data",
        }
    }
}

/// What is wrong with a `pkcs11:` URI. Messages name the attribute and never echo a PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("it does not start with `pkcs11:`")]
    Scheme,
    #[error("a fragment (`#...`) is not allowed")]
    Fragment,
    #[error("the path attribute `{segment}` has no `=` and value")]
    MissingValue { segment: String },
    #[error("`{attribute}` is not a PKCS#11 URI path attribute")]
    UnknownPathAttribute { attribute: String },
    #[error("`{attribute}` is given twice")]
    Duplicate { attribute: String },
    #[error("`{attribute}` has a `%` not followed by two hex digits")]
    BadPercent { attribute: String },
    #[error("`{attribute}` is not UTF-8 text once percent-decoded")]
    NotUtf8 { attribute: String },
    #[error("`{attribute}` {reason}")]
    BadValue {
        attribute: String,
        reason: &'static str,
    },
    #[error("`pin-value` and `pin-source` are both given")]
    PinValueAndSource,
}

impl UriError {
    /// The attribute the problem is about, when there is one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            UriError::UnknownPathAttribute { attribute }
            | UriError::Duplicate { attribute }
            | UriError::BadPercent { attribute }
            | UriError::NotUtf8 { attribute }
            | UriError::BadValue { attribute, .. } => Some(attribute),
            _ => None,
        }
    }
}

/// A parsed `pkcs11:` URI. Absent attributes are `None` and match anything.
#[derive(Clone, Default)]
pub struct Pkcs11Uri {
    /// `token`: the token label (CK_TOKEN_INFO.label).
    pub token: Option<String>,
    /// `manufacturer`: CK_TOKEN_INFO.manufacturerID.
    pub manufacturer: Option<String>,
    /// `serial`: CK_TOKEN_INFO.serialNumber.
    pub serial: Option<String>,
    /// `model`: CK_TOKEN_INFO.model.
    pub model: Option<String>,
    /// `library-manufacturer`: CK_INFO.manufacturerID.
    pub library_manufacturer: Option<String>,
    /// `library-description`: CK_INFO.libraryDescription.
    pub library_description: Option<String>,
    /// `library-version`: CK_INFO.libraryVersion, `major` or `major.minor` (minor 0 if absent).
    pub library_version: Option<(u8, u8)>,
    /// `slot-description`: CK_SLOT_INFO.slotDescription.
    pub slot_description: Option<String>,
    /// `slot-manufacturer`: CK_SLOT_INFO.manufacturerID.
    pub slot_manufacturer: Option<String>,
    /// `slot-id`: the CK_SLOT_ID, decimal. Only used when given explicitly.
    pub slot_id: Option<u64>,
    /// `object`: CKA_LABEL, as bytes.
    pub object: Option<Vec<u8>>,
    /// `type`: the object class.
    pub object_type: Option<ObjectType>,
    /// `id`: CKA_ID, as bytes.
    pub id: Option<Vec<u8>>,
    /// `pin-value`: the user PIN.
    pub pin_value: Option<SecretString>,
    /// `pin-source`: a file path or `file:` URI holding the PIN.
    pub pin_source: Option<String>,
    /// `module-name`: a module registered with p11-kit, without path or suffix.
    pub module_name: Option<String>,
    /// `module-path`: the module's file.
    pub module_path: Option<String>,
    /// Query attributes that were not understood and are ignored.
    pub ignored_query_attributes: Vec<String>,
    /// The URI as given, with the `pin-value` replaced.
    redacted: String,
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pkcs11Uri").field(&self.redacted).finish()
    }
}

/// What the value of a pin-value is replaced with in messages.
const REDACTED: &str = "REDACTED";

impl Pkcs11Uri {
    /// Whether `text` is a PKCS#11 URI (the scheme is case-insensitive, as in RFC 3986).
    pub fn is_uri(text: &str) -> bool {
        text.get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("pkcs11:"))
    }

    /// Parses a `pkcs11:` URI.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        if !Self::is_uri(text) {
            return Err(UriError::Scheme);
        }
        let rest = &text[7..];
        if rest.contains('#') {
            return Err(UriError::Fragment);
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri {
            redacted: redact(text),
            ..Pkcs11Uri::default()
        };
        let mut seen: Vec<String> = Vec::new();
        for segment in path.split(';').filter(|s| !s.is_empty()) {
            let (name, raw) = segment
                .split_once('=')
                .ok_or_else(|| UriError::MissingValue {
                    segment: segment.to_string(),
                })?;
            if seen.iter().any(|s| s == name) {
                return Err(UriError::Duplicate {
                    attribute: name.to_string(),
                });
            }
            seen.push(name.to_string());
            uri.set_path_attribute(name, raw)?;
        }
        if let Some(query) = query {
            for segment in query.split('&').filter(|s| !s.is_empty()) {
                // A query attribute without `=` carries nothing; treat it as an empty value.
                let (name, raw) = segment.split_once('=').unwrap_or((segment, ""));
                let known = matches!(
                    name,
                    "pin-value" | "pin-source" | "module-name" | "module-path"
                );
                if known && seen.iter().any(|s| s == name) {
                    return Err(UriError::Duplicate {
                        attribute: name.to_string(),
                    });
                }
                seen.push(name.to_string());
                match name {
                    "pin-value" => {
                        uri.pin_value = Some(SecretString::from(text_value(name, raw)?));
                    }
                    "pin-source" => uri.pin_source = Some(text_value(name, raw)?),
                    "module-name" => uri.module_name = Some(text_value(name, raw)?),
                    "module-path" => uri.module_path = Some(text_value(name, raw)?),
                    _ => uri.ignored_query_attributes.push(name.to_string()),
                }
            }
        }
        if uri.pin_value.is_some() && uri.pin_source.is_some() {
            return Err(UriError::PinValueAndSource);
        }
        Ok(uri)
    }

    fn set_path_attribute(&mut self, name: &str, raw: &str) -> Result<(), UriError> {
        match name {
            "token" => self.token = Some(text_value(name, raw)?),
            "manufacturer" => self.manufacturer = Some(text_value(name, raw)?),
            "serial" => self.serial = Some(text_value(name, raw)?),
            "model" => self.model = Some(text_value(name, raw)?),
            "library-manufacturer" => self.library_manufacturer = Some(text_value(name, raw)?),
            "library-description" => self.library_description = Some(text_value(name, raw)?),
            "library-version" => {
                self.library_version = Some(parse_version(&text_value(name, raw)?).ok_or(
                    UriError::BadValue {
                        attribute: name.to_string(),
                        reason: "must be a version such as `2` or `2.40`",
                    },
                )?);
            }
            "slot-description" => self.slot_description = Some(text_value(name, raw)?),
            "slot-manufacturer" => self.slot_manufacturer = Some(text_value(name, raw)?),
            "slot-id" => {
                let value = text_value(name, raw)?;
                let bad = UriError::BadValue {
                    attribute: name.to_string(),
                    reason: "must be a decimal number",
                };
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad);
                }
                self.slot_id = Some(value.parse().map_err(|_| bad)?);
            }
            "object" => self.object = Some(percent_decode(name, raw)?),
            "type" => {
                self.object_type = Some(ObjectType::parse(&text_value(name, raw)?).ok_or(
                    UriError::BadValue {
                        attribute: name.to_string(),
                        reason: "must be one of public, private, cert, secret-key, data",
                    },
                )?);
            }
            "id" => self.id = Some(percent_decode(name, raw)?),
            _ => {
                return Err(UriError::UnknownPathAttribute {
                    attribute: name.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether the URI names an object (by label or id), not only a token.
    pub fn names_object(&self) -> bool {
        self.object.is_some() || self.id.is_some()
    }
}

/// `text` with the value of every `pin-value` query attribute replaced, for messages.
/// Anything that is not a PKCS#11 URI is returned unchanged.
pub fn redact(text: &str) -> String {
    if !Pkcs11Uri::is_uri(text) {
        return text.to_string();
    }
    let Some((path, query)) = text.split_once('?') else {
        return text.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|segment| match segment.split_once('=') {
            Some(("pin-value", _)) => format!("pin-value={REDACTED}"),
            _ => segment.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

fn text_value(attribute: &str, raw: &str) -> Result<String, UriError> {
    String::from_utf8(percent_decode(attribute, raw)?).map_err(|_| UriError::NotUtf8 {
        attribute: attribute.to_string(),
    })
}

/// Decodes `%XX` escapes (RFC 7512's `pct-encoded`); every other byte stands for itself.
pub fn percent_decode(attribute: &str, raw: &str) -> Result<Vec<u8>, UriError> {
    crate::percent::decode(raw).map_err(|crate::percent::Malformed| UriError::BadPercent {
        attribute: attribute.to_string(),
    })
}

fn parse_version(value: &str) -> Option<(u8, u8)> {
    let (major, minor) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Percent-encodes a path attribute value: RFC 3986 unreserved characters stay, everything
/// else becomes `%XX`.
pub fn percent_encode(value: &[u8]) -> String {
    crate::percent::encode(value)
}

/// Percent-encodes every byte, the way `id` values are usually written (`%01%A2`).
pub fn percent_encode_all(value: &[u8]) -> String {
    crate::percent::encode_all(value)
}

/// Builds a URI from `(attribute, value)` path pairs, in order.
pub fn format_uri(path: &[(&str, &[u8])]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|(name, value)| {
            let encoded = if *name == "id" {
                percent_encode_all(value)
            } else {
                percent_encode(value)
            };
            format!("{name}={encoded}")
        })
        .collect();
    format!("pkcs11:{}", parts.join(";"))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn parse(text: &str) -> Pkcs11Uri {
        Pkcs11Uri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> UriError {
        match Pkcs11Uri::parse(text) {
            Ok(_) => panic!("{text} should not parse"),
            Err(e) => e,
        }
    }

    #[test]
    fn rfc7512_examples_parse() {
        // The examples of RFC 7512 section 3.
        let empty = parse("pkcs11:");
        assert!(empty.token.is_none() && !empty.names_object());

        let u = parse("pkcs11:object=my-pubkey;type=public");
        assert_eq!(u.object.as_deref(), Some(&b"my-pubkey"[..]));
        assert_eq!(u.object_type, Some(ObjectType::Public));

        let u = parse("pkcs11:object=my-key;type=private?pin-source=file:/etc/token");
        assert_eq!(u.object_type, Some(ObjectType::Private));
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token"));

        let u = parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
        );
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.model.as_deref(), Some("1.0"));
        assert_eq!(u.serial.as_deref(), Some(""));
        assert_eq!(
            u.id.as_deref(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        assert_eq!(u.object_type, Some(ObjectType::Cert));

        let u = parse("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11");
        assert_eq!(u.module_name.as_deref(), Some("mypkcs11"));

        let u = parse("pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1");
        assert_eq!(u.module_path.as_deref(), Some("/mnt/libmypkcs11.so.1"));

        let u = parse(
            "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
        );
        assert_eq!(
            u.pin_value.as_ref().map(|p| p.expose_secret().to_string()),
            Some("the-pin".to_string())
        );

        let u = parse("pkcs11:slot-description=Sun%20Metaslot");
        assert_eq!(u.slot_description.as_deref(), Some("Sun Metaslot"));

        let u = parse(
            "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
        );
        assert_eq!(u.library_manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.library_description.as_deref(), Some("Soft Token Library"));
        assert_eq!(u.library_version, Some((1, 23)));

        let u = parse("pkcs11:object=my-token%2Fkey;type=private");
        assert_eq!(u.object.as_deref(), Some(&b"my-token/key"[..]));

        let u = parse(
            "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
        );
        assert_eq!(u.token.as_deref(), Some("A name with a substring %;"));

        let u = parse(
            "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
        );
        assert_eq!(
            u.token.as_deref(),
            Some("Name with a small A with acute: \u{e1}")
        );

        // The RFC's last example carries a vendor path attribute (`vendor-aaa`): see the
        // next test.
    }

    #[test]
    fn vendor_path_attributes_are_refused_and_query_ones_ignored() {
        assert_eq!(
            err("pkcs11:token=my-token;vendor-aaa=value-a"),
            UriError::UnknownPathAttribute {
                attribute: "vendor-aaa".into()
            }
        );
        let u = parse("pkcs11:token=t?vendor-bbb=value-b&x-other");
        assert_eq!(u.ignored_query_attributes, ["vendor-bbb", "x-other"]);
    }

    #[test]
    fn slot_id_and_versions() {
        assert_eq!(parse("pkcs11:slot-id=0").slot_id, Some(0));
        assert_eq!(parse("pkcs11:slot-id=697716156").slot_id, Some(697716156));
        assert_eq!(
            parse("pkcs11:library-version=3").library_version,
            Some((3, 0))
        );
        for bad in ["pkcs11:slot-id=", "pkcs11:slot-id=0x1", "pkcs11:slot-id=-1"] {
            assert!(
                matches!(err(bad), UriError::BadValue { ref attribute, .. } if attribute == "slot-id"),
                "{bad}"
            );
        }
        assert!(matches!(
            err("pkcs11:library-version=1.x"),
            UriError::BadValue { .. }
        ));
        assert!(matches!(
            err("pkcs11:library-version=1.300"),
            UriError::BadValue { .. }
        ));
    }

    #[test]
    fn percent_decoding_and_id_bytes() {
        let u = parse("pkcs11:id=%00%ff%A0;object=a%2fb+c");
        assert_eq!(u.id.as_deref(), Some(&[0x00, 0xff, 0xa0][..]));
        assert_eq!(u.object.as_deref(), Some(&b"a/b+c"[..]));
        assert_eq!(
            parse("pkcs11:object=%41").object.as_deref(),
            Some(&b"A"[..])
        );
        // A literal byte in an id is itself (p11tool writes printable ids that way).
        assert_eq!(parse("pkcs11:id=AB").id.as_deref(), Some(&b"AB"[..]));
        // Raw spaces are accepted: the intent is plain.
        assert_eq!(
            parse("pkcs11:token=my token").token.as_deref(),
            Some("my token")
        );
        // RFC 7512 pct-encoded is `%` HEXDIG HEXDIG: a sign is not a digit (`%+1` once
        // decoded as 0x01), and neither is anything short of two.
        for bad in [
            "pkcs11:id=%0",
            "pkcs11:id=%1",
            "pkcs11:id=%zz",
            "pkcs11:object=%",
            "pkcs11:id=%+1",
            "pkcs11:object=a%+1b",
            "pkcs11:token=%-1",
        ] {
            assert!(matches!(err(bad), UriError::BadPercent { .. }), "{bad}");
        }
        assert_eq!(
            err("pkcs11:token=%FF"),
            UriError::NotUtf8 {
                attribute: "token".into()
            }
        );
        // Labels are bytes: no UTF-8 requirement on `object`.
        assert_eq!(
            parse("pkcs11:object=%FF").object.as_deref(),
            Some(&[0xff][..])
        );
    }

    #[test]
    fn structural_errors_name_the_attribute() {
        assert_eq!(err("file:/x"), UriError::Scheme);
        assert_eq!(err("pkcs11:token=a#b"), UriError::Fragment);
        assert_eq!(
            err("pkcs11:token=a;token=b"),
            UriError::Duplicate {
                attribute: "token".into()
            }
        );
        assert_eq!(
            err("pkcs11:token=a;id"),
            UriError::MissingValue {
                segment: "id".into()
            }
        );
        assert_eq!(
            err("pkcs11:type=key"),
            UriError::BadValue {
                attribute: "type".into(),
                reason: "must be one of public, private, cert, secret-key, data"
            }
        );
        assert_eq!(
            err("pkcs11:?pin-value=1&pin-value=2"),
            UriError::Duplicate {
                attribute: "pin-value".into()
            }
        );
        assert_eq!(
            err("pkcs11:?pin-value=1&pin-source=/f"),
            UriError::PinValueAndSource
        );
        let e = err("pkcs11:token=a;bogus=1");
        assert_eq!(e.attribute(), Some("bogus"));
        assert!(e.to_string().contains("`bogus`"));
    }

    #[test]
    fn scheme_case_and_empty_segments() {
        assert_eq!(parse("PKCS11:token=a").token.as_deref(), Some("a"));
        let u = parse("pkcs11:token=a;;object=b;?&pin-value=1&");
        assert_eq!(u.object.as_deref(), Some(&b"b"[..]));
        assert!(u.pin_value.is_some());
        assert!(Pkcs11Uri::is_uri("pkcs11:"));
        assert!(!Pkcs11Uri::is_uri("pkcs11"));
        assert!(!Pkcs11Uri::is_uri("/path/pkcs11:x"));
    }

    #[test]
    fn the_pin_never_shows() {
        let text = "pkcs11:token=t;object=k?pin-value=s3cret&module-path=/m.so";
        let u = parse(text);
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("pin-value=REDACTED"), "{shown}");
        assert!(shown.contains("module-path=/m.so"), "{shown}");
        assert_eq!(redact("/etc/pki/cert.pem"), "/etc/pki/cert.pem");
        assert_eq!(redact("pkcs11:token=t"), "pkcs11:token=t");
        // Even an unparsable URI is redacted in messages.
        assert!(!redact("pkcs11:bogus=1?pin-value=s3cret").contains("s3cret"));
    }

    #[test]
    fn formatting_round_trips() {
        let uri = format_uri(&[
            ("token", b"My Token; 1".as_slice()),
            ("id", &[0x01, 0xab]),
            ("object", b"leaf/p256"),
            ("type", b"cert"),
        ]);
        assert_eq!(
            uri,
            "pkcs11:token=My%20Token%3B%201;id=%01%AB;object=leaf%2Fp256;type=cert"
        );
        let u = parse(&uri);
        assert_eq!(u.token.as_deref(), Some("My Token; 1"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xab][..]));
        assert_eq!(u.object.as_deref(), Some(&b"leaf/p256"[..]));
    }
}
