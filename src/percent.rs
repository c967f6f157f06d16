//! Percent-encoding (RFC 3986 section 2.1), for the two grammars that use it here: PKCS#11
//! URIs (RFC 7512) and the SigV4 canonical query. Encoding is the `percent-encoding` crate's;
//! decoding checks the escapes first, because the crate passes a malformed one (`%zz`, a
//! final `%`) through as text, and both grammars define an escape as `%` and two hex digits.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters `A-Z a-z 0-9 - . _ ~` (which is also
/// SigV4's set of characters left as they are).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A `%` not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// `value` with every byte outside the unreserved set written `%XX` (upper-case hex).
pub fn encode(value: &[u8]) -> String {
    percent_encoding::percent_encode(value, NOT_UNRESERVED).to_string()
}

/// Every byte written `%XX`, the way PKCS#11 ids are usually given (`%01%A2`).
pub fn encode_all(value: &[u8]) -> String {
    value
        .iter()
        .map(|b| percent_encoding::percent_encode_byte(*b))
        .collect()
}

/// Decodes the `%XX` escapes of `raw`; every other byte stands for itself (a `+` included:
/// a query's `+`-for-space is the caller's rule). A `%` must be followed by two ASCII hex
/// digits: `%+1` is refused, as `u8::from_str_radix` would have read the sign as part of a
/// number.
pub fn decode(raw: &str) -> Result<Vec<u8>, Malformed> {
    let mut rest = raw.as_bytes();
    while let Some(at) = rest.iter().position(|b| *b == b'%') {
        match rest.get(at + 1..) {
            Some([high, low, after @ ..])
                if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() =>
            {
                rest = after;
            }
            _ => return Err(Malformed),
        }
    }
    Ok(percent_encoding::percent_decode(raw.as_bytes()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_everything_else_stands_for_itself() {
        assert_eq!(decode("%41").unwrap(), b"A");
        assert_eq!(decode("%e2%82%AC").unwrap(), "€".as_bytes());
        assert_eq!(decode("a+b c/%25").unwrap(), b"a+b c/%");
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("%00%ff").unwrap(), [0x00, 0xff]);
    }

    #[test]
    fn only_a_percent_and_two_hex_digits_is_an_escape() {
        for bad in [
            "%+1", "%-1", "% 1", "%1", "%zz", "%", "a%", "%4", "%G1", "%%41", "%41%",
        ] {
            assert_eq!(decode(bad), Err(Malformed), "{bad}");
        }
    }

    #[test]
    fn encoding_keeps_the_unreserved_set_and_uses_upper_case_hex() {
        assert_eq!(encode(b"Az09-._~"), "Az09-._~");
        assert_eq!(encode(b"a/b c+\xff"), "a%2Fb%20c%2B%FF");
        assert_eq!(encode_all(b"\x01\xa2A"), "%01%A2%41");
        for value in [&b"a/b c"[..], b"\x00\xff%", b"plain"] {
            assert_eq!(decode(&encode(value)).unwrap(), value);
            assert_eq!(decode(&encode_all(value)).unwrap(), value);
        }
    }
}
