//! The `TSS2 PRIVATE KEY` file format (tpm2-tss-engine, the tpm2 OpenSSL provider,
//! openssl_tpm2_engine, `tpm2_encodeobject`): a DER `TPMKey` holding a key pair wrapped by
//! a parent key, and the little DER reading and writing it needs.
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,            -- 2.23.133.10.1.3: loadable key
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//!     secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//!     authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//!     parent      INTEGER,
//!     pubkey      OCTET STRING,                  -- TPM2B_PUBLIC
//!     privkey     OCTET STRING }                 -- TPM2B_PRIVATE
//! ```

use zeroize::Zeroizing;

/// DER of OID 2.23.133.10.1.3 (loadable key).
const OID_LOADABLE: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x03];
/// 2.23.133.10.1.4: importable key (wrapped for a parent's seed, needs TPM2_Import).
const OID_IMPORTABLE: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x04];
/// 2.23.133.10.1.5: sealed data, not a key.
const OID_SEALED: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x05];

/// A parsed loadable TPM key file.
pub struct TssKey {
    /// `emptyAuth`: the key has no password.
    pub empty_auth: bool,
    /// The parent handle: a persistent key, or a hierarchy whose primary is regenerated.
    pub parent: u32,
    /// `TPM2B_PUBLIC`, size prefix included.
    pub public: Vec<u8>,
    /// `TPM2B_PRIVATE`, size prefix included. Encrypted by the TPM, but still kept in
    /// zeroizing memory: it is the key, for whoever holds the TPM.
    pub private: Zeroizing<Vec<u8>>,
}

/// Why a key file is not usable. Never includes the file's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyFileError {
    Invalid(String),
    Unsupported(String),
}

fn invalid(what: &str) -> KeyFileError {
    KeyFileError::Invalid(what.to_string())
}

/// One DER TLV.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
}

/// Reads one TLV from the front of `data` ([`crate::der::read_tlv`]); returns it and the
/// rest, or an error naming what was being read.
fn read_tlv<'a>(data: &'a [u8], what: &str) -> Result<(Tlv<'a>, &'a [u8]), KeyFileError> {
    let (tag, value, rest) = crate::der::read_tlv(data)
        .ok_or_else(|| KeyFileError::Invalid(format!("truncated or malformed {what}")))?;
    Ok((Tlv { tag, value }, rest))
}

/// Parses the DER of a `TSS2 PRIVATE KEY` block.
pub fn parse(der: &[u8]) -> Result<TssKey, KeyFileError> {
    let (seq, trailing) = read_tlv(der, "TPMKey SEQUENCE")?;
    if seq.tag != 0x30 || !trailing.is_empty() {
        return Err(invalid("not a single DER SEQUENCE"));
    }
    let (oid, mut rest) = read_tlv(seq.value, "key type")?;
    if oid.tag != 0x06 {
        return Err(invalid("no key type OID"));
    }
    match oid.value {
        OID_LOADABLE => {}
        OID_IMPORTABLE => {
            return Err(KeyFileError::Unsupported(
                "an importable TPM key (2.23.133.10.1.4); load it once with a TSS tool to make a loadable key".into(),
            ));
        }
        OID_SEALED => {
            return Err(KeyFileError::Unsupported(
                "sealed TPM data, not a key".into(),
            ));
        }
        _ => return Err(invalid("unknown key type OID")),
    }
    let mut empty_auth = false;
    // Context-tagged optional fields come first, in tag order.
    while let Some(&tag) = rest.first() {
        if tag & 0xE0 != 0xA0 {
            break;
        }
        let (field, after) = read_tlv(rest, "optional field")?;
        match field.tag {
            0xA0 => {
                let (b, inner_rest) = read_tlv(field.value, "emptyAuth")?;
                match (b.tag, b.value, inner_rest.is_empty()) {
                    // DER wants 0xFF for TRUE, but some engines wrote 0x01: any non-zero is TRUE.
                    (0x01, &[value], true) => empty_auth = value != 0,
                    _ => return Err(invalid("emptyAuth is not a BOOLEAN")),
                }
            }
            0xA1 | 0xA3 => {
                return Err(KeyFileError::Unsupported(
                    "a TPM key bound to a policy (policy sessions are not supported)".into(),
                ));
            }
            0xA2 => {
                return Err(KeyFileError::Unsupported(
                    "a TPM key with an imported secret".into(),
                ));
            }
            _ => return Err(invalid("unknown optional field")),
        }
        rest = after;
    }
    let (parent, rest) = read_tlv(rest, "parent")?;
    if parent.tag != 0x02 {
        return Err(invalid("no parent INTEGER"));
    }
    let parent = parse_u32(parent.value).ok_or_else(|| invalid("parent handle out of range"))?;
    let (public, rest) = read_tlv(rest, "pubkey")?;
    let (private, rest) = read_tlv(rest, "privkey")?;
    if public.tag != 0x04 || private.tag != 0x04 {
        return Err(invalid("pubkey and privkey must be OCTET STRINGs"));
    }
    if !rest.is_empty() {
        return Err(invalid("unexpected fields after privkey"));
    }
    for (name, blob) in [("pubkey", public.value), ("privkey", private.value)] {
        let sized = match blob {
            [hi, lo, body @ ..] => {
                !body.is_empty() && usize::from(u16::from_be_bytes([*hi, *lo])) == body.len()
            }
            _ => false,
        };
        if !sized {
            return Err(KeyFileError::Invalid(format!(
                "{name} is not a size-prefixed TPM2B"
            )));
        }
    }
    Ok(TssKey {
        empty_auth,
        parent,
        public: public.value.to_vec(),
        private: Zeroizing::new(private.value.to_vec()),
    })
}

/// A non-negative DER INTEGER that fits in 32 bits (handles are written with a leading
/// zero byte when their top bit is set, e.g. 0x81000001).
fn parse_u32(value: &[u8]) -> Option<u32> {
    let (&first, _) = value.split_first()?;
    if first & 0x80 != 0 {
        return None;
    }
    let trimmed = crate::der::strip_leading_zeros(value);
    if trimmed.len() > 4 {
        return None;
    }
    Some(
        trimmed
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)),
    )
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (PKCS#1),
/// what a certificate's subjectPublicKey holds for RSA.
pub fn rsa_public_key_der(modulus: &[u8], exponent: u32) -> Vec<u8> {
    crate::der::rsa_public_key(modulus, &exponent.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TPMKey with the given optional-field bytes and parent INTEGER bytes.
    fn key(optional: &[u8], parent: &[u8]) -> Vec<u8> {
        let mut body = vec![0x06, 0x06];
        body.extend_from_slice(OID_LOADABLE);
        body.extend_from_slice(optional);
        body.push(0x02);
        body.push(parent.len() as u8);
        body.extend_from_slice(parent);
        body.extend_from_slice(&[0x04, 0x04, 0x00, 0x02, 0xAA, 0xBB]);
        body.extend_from_slice(&[0x04, 0x03, 0x00, 0x01, 0xCC]);
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn parses_a_loadable_key_under_the_owner_hierarchy() {
        let k = parse(&key(&[0xA0, 0x03, 0x01, 0x01, 0xFF], &[0x40, 0, 0, 1])).unwrap();
        assert!(k.empty_auth);
        assert_eq!(k.parent, 0x4000_0001);
        assert_eq!(k.public, vec![0x00, 0x02, 0xAA, 0xBB]);
        assert_eq!(&k.private[..], &[0x00, 0x01, 0xCC]);
    }

    #[test]
    fn reads_a_persistent_parent_and_a_missing_or_odd_empty_auth() {
        let k = parse(&key(&[], &[0x00, 0x81, 0, 0, 1])).unwrap();
        assert!(!k.empty_auth);
        assert_eq!(k.parent, 0x8100_0001);
        // The engines' historical 0x01 TRUE.
        let k = parse(&key(&[0xA0, 0x03, 0x01, 0x01, 0x01], &[0x40, 0, 0, 1])).unwrap();
        assert!(k.empty_auth);
        let k = parse(&key(&[0xA0, 0x03, 0x01, 0x01, 0x00], &[0x40, 0, 0, 1])).unwrap();
        assert!(!k.empty_auth);
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        // A policy.
        let policy = parse(&key(&[0xA1, 0x02, 0x30, 0x00], &[0x40, 0, 0, 1]));
        assert!(matches!(policy, Err(KeyFileError::Unsupported(_))));
        // A negative or oversized parent.
        assert!(parse(&key(&[], &[0x81, 0, 0, 1])).is_err());
        assert!(parse(&key(&[], &[0x01, 0, 0, 0, 1])).is_err());
        // Another OID.
        let mut k = key(&[], &[0x40, 0, 0, 1]);
        k[9] = 0x04;
        assert!(matches!(parse(&k), Err(KeyFileError::Unsupported(_))));
        k[9] = 0x09;
        assert!(matches!(parse(&k), Err(KeyFileError::Invalid(_))));
        // Truncation anywhere, and trailing bytes.
        let good = key(&[], &[0x40, 0, 0, 1]);
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(parse(&long).is_err());
        // A TPM2B whose size prefix lies.
        let mut lying = good.clone();
        let at = lying.len() - 8;
        lying[at] = 0x05;
        assert!(parse(&lying).is_err());
    }

    #[test]
    fn long_form_lengths() {
        let mut body = vec![0x06, 0x06];
        body.extend_from_slice(OID_LOADABLE);
        body.extend_from_slice(&[0x02, 0x04, 0x40, 0, 0, 1]);
        let blob: Vec<u8> = [&[0x01, 0x00][..], &[7u8; 256][..]].concat();
        body.extend_from_slice(&[0x04, 0x82, 0x01, 0x02]);
        body.extend_from_slice(&blob);
        body.extend_from_slice(&[0x04, 0x03, 0x00, 0x01, 0xCC]);
        let mut der = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        der.extend(body);
        let k = parse(&der).unwrap();
        assert_eq!(k.public.len(), 258);
    }

    #[test]
    fn rsa_public_key_encoding() {
        assert_eq!(
            rsa_public_key_der(&[0x80, 0x01], 65537),
            vec![
                0x30, 0x0A, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01
            ]
        );
        let n = vec![0xC5u8; 256];
        let der = rsa_public_key_der(&n, 3);
        assert_eq!(&der[..8], &[0x30, 0x82, 0x01, 0x08, 0x02, 0x82, 0x01, 0x01]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x03]);
    }
}
