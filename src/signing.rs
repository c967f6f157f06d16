//! SigV4 with X.509 (`AWS4-X509-*`): the pure canonicalisation and formatting rules of the
//! IAM Roles Anywhere signing process (SigV4's canonical request and string to sign, signed
//! with the certificate's key, the serial in decimal as the credential; AWS documents it in
//! the Roles Anywhere user guide, "Signing process", authentication-sign-process.html).
//! Nothing here touches a key, a clock or the network, so every function is pinned by the
//! golden vectors in `tests/data/vectors`.

use aws_lc_rs::digest;
use time::OffsetDateTime;

/// The signing name of IAM Roles Anywhere.
pub const SERVICE: &str = "rolesanywhere";

/// The `Authorization` algorithm, chosen by the certificate's key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 over SHA-256.
    RsaSha256,
    /// ECDSA over SHA-256, whatever the curve, DER-encoded.
    EcdsaSha256,
    /// Pure ML-DSA (44, 65 or 87) over the string to sign itself, empty context.
    MlDsa,
}

impl Algorithm {
    /// The name written into the string to sign and the `Authorization` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "AWS4-X509-RSA-SHA256",
            Algorithm::EcdsaSha256 => "AWS4-X509-ECDSA-SHA256",
            Algorithm::MlDsa => "AWS4-X509-MLDSA",
        }
    }

    /// Parses the algorithm named in an `Authorization` header.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AWS4-X509-RSA-SHA256" => Some(Algorithm::RsaSha256),
            "AWS4-X509-ECDSA-SHA256" => Some(Algorithm::EcdsaSha256),
            "AWS4-X509-MLDSA" => Some(Algorithm::MlDsa),
            _ => None,
        }
    }
}

/// `YYYYMMDDTHHMMSSZ`, the `X-Amz-Date` form.
pub use crate::timefmt::amz_date;

/// `YYYYMMDD/{region}/rolesanywhere/aws4_request`, taking the date from an `X-Amz-Date`.
pub fn credential_scope(amz_date: &str, region: &str) -> String {
    let day = amz_date.get(..8).unwrap_or(amz_date);
    format!("{day}/{region}/{SERVICE}/aws4_request")
}

/// Percent-encodes everything but the unreserved set `A-Z a-z 0-9 - _ . ~`, upper-case hex.
pub fn uri_encode(s: &str) -> String {
    crate::percent::encode(s.as_bytes())
}

/// The canonical query: each name and value encoded, then sorted by encoded name and,
/// for repeated names, by encoded value (byte order), joined with `&`.
pub fn canonical_query<N: AsRef<str>, V: AsRef<str>>(params: &[(N, V)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(n, v)| (uri_encode(n.as_ref()), uri_encode(v.as_ref())))
        .collect();
    encoded.sort();
    let pairs: Vec<String> = encoded
        .into_iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    pairs.join("&")
}

/// Trims a header value and folds every inner run of spaces or tabs to one space.
pub fn fold_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Canonical header lines (each `name:value\n`) and the `SignedHeaders` list, from the
/// headers to sign. Names are lower-cased and sorted; a name given twice has its values
/// joined by `,` in the order given.
pub fn canonical_headers<N: AsRef<str>, V: AsRef<str>>(headers: &[(N, V)]) -> (String, String) {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.as_ref().to_ascii_lowercase();
        let value = fold_header_value(value.as_ref());
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => merged.push((name, value)),
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = String::new();
    for (name, value) in &merged {
        lines.push_str(name);
        lines.push(':');
        lines.push_str(value);
        lines.push('\n');
    }
    let signed: Vec<&str> = merged.iter().map(|(n, _)| n.as_str()).collect();
    (lines, signed.join(";"))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// `METHOD\nPATH\nQUERY\nHEADERS\nSIGNED\nhex(sha256(body))`; `canonical_headers` already
/// ends with a newline, which gives the blank line SigV4 has there.
pub fn canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_sha256_hex: &str,
) -> String {
    format!(
        "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256_hex}"
    )
}

/// `ALGORITHM\nX-Amz-Date\nSCOPE\nhex(sha256(canonical request))`.
pub fn string_to_sign(
    algorithm: Algorithm,
    amz_date: &str,
    scope: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{}\n{amz_date}\n{scope}\n{}",
        algorithm.as_str(),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// `ALGORITHM Credential={serial}/{scope}, SignedHeaders={signed}, Signature={hex}`.
pub fn authorization(
    algorithm: Algorithm,
    serial_decimal: &str,
    scope: &str,
    signed_headers: &str,
    signature: &[u8],
) -> String {
    format!(
        "{} Credential={serial_decimal}/{scope}, SignedHeaders={signed_headers}, Signature={}",
        algorithm.as_str(),
        hex::encode(signature)
    )
}

/// The parts of an `Authorization` header, as a verifier reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub algorithm: String,
    pub serial_decimal: String,
    pub scope: String,
    pub signed_headers: String,
    pub signature: Vec<u8>,
}

/// Splits an `Authorization` header into its parts; `None` when it is malformed.
pub fn parse_authorization(header: &str) -> Option<ParsedAuthorization> {
    let (algorithm, rest) = header.split_once(' ')?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    let (serial, scope) = credential?.split_once('/')?;
    Some(ParsedAuthorization {
        algorithm: algorithm.to_string(),
        serial_decimal: serial.to_string(),
        scope: scope.to_string(),
        signed_headers: signed?.to_string(),
        signature: hex::decode(signature?).ok()?,
    })
}

/// The certificate serial (the DER INTEGER's content bytes, a leading `00` allowed) as an
/// unsigned decimal integer, of any length.
pub fn serial_to_decimal(der_content: &[u8]) -> String {
    let mut bytes: Vec<u8> = der_content
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    if bytes.is_empty() {
        return "0".to_string();
    }
    // Repeated division of a big-endian base-256 number by 10.
    let mut digits = Vec::new();
    while !bytes.is_empty() {
        let mut remainder: u32 = 0;
        let mut quotient = Vec::with_capacity(bytes.len());
        for b in &bytes {
            let acc = remainder * 256 + u32::from(*b);
            let q = acc / 10;
            remainder = acc % 10;
            if !(quotient.is_empty() && q == 0) {
                quotient.push(q as u8);
            }
        }
        digits.push(b'0' + remainder as u8);
        bytes = quotient;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// A CreateSession request ready to be signed: what goes on the wire, minus `Authorization`.
#[derive(Debug, Clone)]
pub struct UnsignedRequest {
    /// The `Host` header: host, plus `:port` when it is not the scheme's default.
    pub host: String,
    /// Query parameters, raw (not encoded).
    pub query: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
    /// `X-Amz-X509`: base64 of the leaf certificate's DER.
    pub x509: String,
    /// `X-Amz-X509-Chain`: base64 DER of each intermediate, joined by `,`.
    pub x509_chain: Option<String>,
}

/// The signing material for one request at one instant.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub amz_date: String,
    pub scope: String,
    /// Headers to send, in this order, besides `Authorization`.
    pub headers: Vec<(&'static str, String)>,
    pub canonical_query: String,
    pub canonical_request: String,
    pub signed_headers: String,
    pub string_to_sign: String,
}

impl UnsignedRequest {
    /// Builds the canonical request and the string to sign for `POST /sessions`.
    pub fn prepare(&self, algorithm: Algorithm, region: &str, at: OffsetDateTime) -> Prepared {
        let amz_date = amz_date(at);
        let scope = credential_scope(&amz_date, region);
        let mut headers: Vec<(&'static str, String)> = vec![
            ("Host", self.host.clone()),
            ("Content-Type", self.content_type.clone()),
            ("X-Amz-Date", amz_date.clone()),
            ("X-Amz-X509", self.x509.clone()),
        ];
        if let Some(chain) = &self.x509_chain {
            headers.push(("X-Amz-X509-Chain", chain.clone()));
        }
        let (canon_headers, signed_headers) = canonical_headers(&headers);
        let canonical_query = canonical_query(&self.query);
        let canonical_request = canonical_request(
            "POST",
            "/sessions",
            &canonical_query,
            &canon_headers,
            &signed_headers,
            &sha256_hex(&self.body),
        );
        let string_to_sign = string_to_sign(algorithm, &amz_date, &scope, &canonical_request);
        Prepared {
            amz_date,
            scope,
            headers,
            canonical_query,
            canonical_request,
            signed_headers,
            string_to_sign,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_unreserved_and_escapes_the_rest_upper_case() {
        assert_eq!(uri_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(
            uri_encode("a b/c:d+e%f=g&h"),
            "a%20b%2Fc%3Ad%2Be%25f%3Dg%26h"
        );
        assert_eq!(uri_encode("é"), "%C3%A9");
    }

    #[test]
    fn query_sorts_encoded_names_then_values() {
        let q = canonical_query(&[("b", "2"), ("a", "z"), ("a", "10"), ("a", "9"), ("e", "")]);
        assert_eq!(q, "a=10&a=9&a=z&b=2&e=");
        // `a:` encodes to `a%3A`, which sorts before `a1` ('%' < '1').
        assert_eq!(canonical_query(&[("a1", "x"), ("a:", "y")]), "a%3A=y&a1=x");
    }

    #[test]
    fn header_values_are_trimmed_and_folded_names_lowered_and_sorted() {
        let (lines, signed) = canonical_headers(&[
            ("X-B", "  one   two\t three "),
            ("x-a", "   "),
            ("Host", "h"),
        ]);
        assert_eq!(lines, "host:h\nx-a:\nx-b:one two three\n");
        assert_eq!(signed, "host;x-a;x-b");
    }

    #[test]
    fn repeated_header_values_are_joined_with_commas() {
        let (lines, signed) = canonical_headers(&[("X-A", "1"), ("x-a", " 2 ")]);
        assert_eq!(lines, "x-a:1,2\n");
        assert_eq!(signed, "x-a");
    }

    #[test]
    fn serial_to_decimal_handles_small_zero_and_top_bit_serials() {
        assert_eq!(serial_to_decimal(&[0x12, 0x34]), "4660");
        assert_eq!(serial_to_decimal(&[0x00]), "0");
        assert_eq!(serial_to_decimal(&[]), "0");
        // A 20-byte serial with the top bit set arrives as 21 DER bytes, `00` first.
        let der = hex::decode("009c2b8f4e1d7a6053c4b2e19f8d7c6b5a4f3e2d1c").unwrap();
        assert_eq!(
            serial_to_decimal(&der),
            "891573975930151669966565662908810063541989944604"
        );
        assert_eq!(serial_to_decimal(&der[1..]), serial_to_decimal(&der));
        assert_eq!(
            serial_to_decimal(&[0xff; 20]),
            "1461501637330902918203684832716283019655932542975"
        );
    }

    #[test]
    fn amz_date_and_scope() {
        let at = time::macros::datetime!(2026-11-24 12:33:52 UTC);
        assert_eq!(amz_date(at), "20261124T123352Z");
        assert_eq!(
            credential_scope("20261124T123352Z", "eu-west-1"),
            "20261124/eu-west-1/rolesanywhere/aws4_request"
        );
    }

    #[test]
    fn authorization_round_trips_through_the_parser() {
        let header = authorization(
            Algorithm::RsaSha256,
            "4660",
            "20261124/us-east-1/rolesanywhere/aws4_request",
            "host;x-amz-date",
            &[0xab, 0x01],
        );
        assert_eq!(
            header,
            "AWS4-X509-RSA-SHA256 Credential=4660/20261124/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab01"
        );
        let parsed = parse_authorization(&header).unwrap();
        assert_eq!(parsed.serial_decimal, "4660");
        assert_eq!(parsed.signature, vec![0xab, 0x01]);
        assert!(parse_authorization("AWS4-X509-RSA-SHA256 Credential=1").is_none());
    }

    #[test]
    fn algorithm_names_round_trip_and_unknown_names_are_refused() {
        for (alg, name) in [
            (Algorithm::RsaSha256, "AWS4-X509-RSA-SHA256"),
            (Algorithm::EcdsaSha256, "AWS4-X509-ECDSA-SHA256"),
            (Algorithm::MlDsa, "AWS4-X509-MLDSA"),
        ] {
            assert_eq!(alg.as_str(), name);
            assert_eq!(Algorithm::from_name(name), Some(alg));
        }
        for unknown in ["", "AWS4-HMAC-SHA256", "aws4-x509-rsa-sha256"] {
            assert_eq!(Algorithm::from_name(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn sha256_hex_is_lower_case_hex_of_the_digest() {
        // FIPS 180-2's vectors.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// The whole `POST /sessions` canonicalisation, with the expected hashes computed
    /// independently of this code (Python's hashlib over the strings written out here).
    #[test]
    fn prepare_builds_the_canonical_request_and_string_to_sign() {
        let body = br#"{"durationSeconds":3600,"profileArn":"arn:aws:rolesanywhere:us-east-1:123456789012:profile/p","roleArn":"arn:aws:iam::123456789012:role/r","trustAnchorArn":"arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/t"}"#;
        let request = UnsignedRequest {
            host: "rolesanywhere.us-east-1.amazonaws.com".into(),
            query: vec![("b".into(), "2".into()), ("a".into(), "1 x".into())],
            content_type: "application/json".into(),
            body: body.to_vec(),
            x509: "MIIBleaf".into(),
            x509_chain: Some("MIIBone,MIIBtwo".into()),
        };
        let at = time::macros::datetime!(2026-11-24 12:33:52 UTC);
        let p = request.prepare(Algorithm::EcdsaSha256, "us-east-1", at);
        assert_eq!(p.amz_date, "20261124T123352Z");
        assert_eq!(p.scope, "20261124/us-east-1/rolesanywhere/aws4_request");
        assert_eq!(p.canonical_query, "a=1%20x&b=2");
        assert_eq!(
            p.signed_headers,
            "content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain"
        );
        assert_eq!(
            p.canonical_request,
            "POST\n/sessions\na=1%20x&b=2\n\
             content-type:application/json\n\
             host:rolesanywhere.us-east-1.amazonaws.com\n\
             x-amz-date:20261124T123352Z\n\
             x-amz-x509:MIIBleaf\n\
             x-amz-x509-chain:MIIBone,MIIBtwo\n\
             \n\
             content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain\n\
             f650f9d51af95a5dc131b51ee8084df85e6af8eb0bdd48ffa20e98ffbb5f238f"
        );
        assert_eq!(
            p.string_to_sign,
            "AWS4-X509-ECDSA-SHA256\n20261124T123352Z\n\
             20261124/us-east-1/rolesanywhere/aws4_request\n\
             17a582b0efd57608bfa7d7bf5180cd481a43cb02606b4475838f9574a2fa081d"
        );
        // The headers sent are the ones signed, in the order given.
        let names: Vec<&str> = p.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "Host",
                "Content-Type",
                "X-Amz-Date",
                "X-Amz-X509",
                "X-Amz-X509-Chain"
            ]
        );
        // Without intermediates the chain header is neither sent nor signed.
        let p = UnsignedRequest {
            x509_chain: None,
            ..request
        }
        .prepare(Algorithm::RsaSha256, "us-east-1", at);
        assert_eq!(p.signed_headers, "content-type;host;x-amz-date;x-amz-x509");
        assert!(p.string_to_sign.starts_with("AWS4-X509-RSA-SHA256\n"));
    }

    #[test]
    fn authorization_parsing_refuses_unknown_and_missing_parts() {
        let good = "AWS4-X509-ECDSA-SHA256 Credential=7/20261124/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host, Signature=00ff";
        let parsed = parse_authorization(good).unwrap();
        assert_eq!(
            parsed,
            ParsedAuthorization {
                algorithm: "AWS4-X509-ECDSA-SHA256".into(),
                serial_decimal: "7".into(),
                scope: "20261124/us-east-1/rolesanywhere/aws4_request".into(),
                signed_headers: "host".into(),
                signature: vec![0x00, 0xff],
            }
        );
        for bad in [
            good.replace(
                "Credential=7/20261124/us-east-1/rolesanywhere/aws4_request",
                "Credential=7",
            ),
            good.replace(", SignedHeaders=host", ""),
            good.replace(", Signature=00ff", ""),
            good.replace("Signature=00ff", "Signature=0g"),
            format!("{good}, Extra=1"),
            good.replace(' ', ""),
        ] {
            assert_eq!(parse_authorization(&bad), None, "{bad}");
        }
    }
}
