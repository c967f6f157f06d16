//! The few DER shapes a token's attributes come in or must be turned into: the PKCS#1
//! `RSAPublicKey` a certificate holds (from CKA_MODULUS and CKA_PUBLIC_EXPONENT), the EC
//! point inside CKA_EC_POINT's OCTET STRING, the curve OID in CKA_EC_PARAMS, and the
//! `DigestInfo` that `CKM_RSA_PKCS` signs when a token lacks `CKM_SHA256_RSA_PKCS`.

use crate::signer::{Digest, KeyKind};

/// `06 08 2A8648CE3D030107`: the namedCurve OID of P-256.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `06 05 2B81040022`: the namedCurve OID of P-384.
const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The key kind of an EC key from its CKA_EC_PARAMS, or what it is instead.
pub fn ec_kind(params: &[u8]) -> Result<KeyKind, String> {
    match params {
        P256_PARAMS => Ok(KeyKind::EcP256),
        P384_PARAMS => Ok(KeyKind::EcP384),
        _ => Err(format!(
            "an EC key on another curve (CKA_EC_PARAMS {})",
            hex::encode(params)
        )),
    }
}

/// Whether two unsigned big-endian integers are equal, whatever their leading zero bytes.
pub fn same_unsigned(a: &[u8], b: &[u8]) -> bool {
    crate::der::strip_leading_zeros(a) == crate::der::strip_leading_zeros(b)
}

/// PKCS#1 `RSAPublicKey`, DER, from the token's CKA_MODULUS and CKA_PUBLIC_EXPONENT.
pub fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    crate::der::rsa_public_key(modulus, exponent)
}

/// The uncompressed point of CKA_EC_POINT. The standard wraps it in a DER OCTET STRING;
/// some tokens return it bare, which is told apart by its exact length.
pub fn ec_point(value: &[u8], kind: KeyKind) -> Option<Vec<u8>> {
    let point_len = match kind {
        KeyKind::EcP256 => 65,
        KeyKind::EcP384 => 97,
        KeyKind::Rsa { .. } | KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87 => {
            return None;
        }
    };
    if value.len() == point_len && value.first() == Some(&0x04) {
        return Some(value.to_vec());
    }
    let (tag, body, rest) = crate::der::read_tlv(value)?;
    (tag == 0x04 && rest.is_empty() && body.len() == point_len && body.first() == Some(&0x04))
        .then(|| body.to_vec())
}

/// `DigestInfo` of `hash` (RFC 8017 section 9.2, note 1): what `CKM_RSA_PKCS` must sign to
/// make an RSASSA-PKCS1-v1_5 signature.
pub fn digest_info(digest: Digest, hash: &[u8]) -> Vec<u8> {
    let prefix: &[u8] = match digest {
        Digest::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        Digest::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        Digest::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    };
    let mut out = prefix.to_vec();
    out.extend_from_slice(hash);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{GeneratedKey, KeyType};

    #[test]
    fn rsa_public_key_matches_what_a_certificate_holds() {
        use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
        let key = GeneratedKey::generate(KeyType::Rsa2048).unwrap();
        let pair = RsaKeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
        let expected = pair.public_key().as_ref().to_vec();
        // Take the components back out of the DER the way a token hands them over.
        let modulus: Vec<u8> = {
            let n_len = usize::from(expected[6]) << 8 | usize::from(expected[7]);
            expected[8..8 + n_len].to_vec()
        };
        assert_eq!(crate::der::bit_length(&modulus), 2048);
        // Tokens may or may not keep the sign byte; both must encode the same.
        let unsigned = &modulus[1..];
        assert_eq!(rsa_public_key(unsigned, &[0x01, 0x00, 0x01]), expected);
        assert_eq!(rsa_public_key(&modulus, &[0, 0x01, 0x00, 0x01]), expected);
        assert!(same_unsigned(&modulus, unsigned));
        assert!(!same_unsigned(&modulus, &unsigned[1..]));
    }

    #[test]
    fn ec_points_wrapped_or_bare() {
        let mut bare = vec![0x04];
        bare.extend_from_slice(&[7; 64]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&bare);
        assert_eq!(ec_point(&bare, KeyKind::EcP256), Some(bare.clone()));
        assert_eq!(ec_point(&wrapped, KeyKind::EcP256), Some(bare.clone()));
        assert_eq!(ec_point(&wrapped, KeyKind::EcP384), None);
        let mut bare384 = vec![0x04];
        bare384.extend_from_slice(&[9; 96]);
        let mut wrapped384 = vec![0x04, 0x61];
        wrapped384.extend_from_slice(&bare384);
        assert_eq!(ec_point(&wrapped384, KeyKind::EcP384), Some(bare384));
        assert_eq!(ec_point(&[0x04, 0x01, 0x04], KeyKind::EcP256), None);
        assert_eq!(ec_point(&[], KeyKind::EcP256), None);
    }

    #[test]
    fn curves_by_parameters() {
        assert_eq!(ec_kind(P256_PARAMS), Ok(KeyKind::EcP256));
        assert_eq!(ec_kind(P384_PARAMS), Ok(KeyKind::EcP384));
        let p521 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
        assert!(ec_kind(&p521).unwrap_err().contains("2b81040023"));
    }

    #[test]
    fn digest_info_is_what_rsa_pkcs1_signs() {
        // Signing DigestInfo with raw PKCS#1 v1.5 padding must verify as SHA-256 RSA.
        let info = digest_info(Digest::Sha256, &Digest::Sha256.hash(b"m"));
        assert_eq!(info.len(), 19 + 32);
        assert_eq!(digest_info(Digest::Sha384, &[0; 48]).len(), 19 + 48);
        assert_eq!(
            digest_info(Digest::Sha512, &[0; 64])[1] as usize,
            19 + 64 - 2
        );
    }
}
