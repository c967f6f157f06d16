//! The few DER encodings the crate writes and reads by hand: a TLV with a definite length,
//! an unsigned INTEGER, and the two structures built from them (an ECDSA signature from a raw
//! `r || s`, a PKCS#1 RSA public key). Full certificate and key parsing is left to the
//! `x509-parser`, `pkcs8` and `der` crates; these cover what they do not offer.

/// Appends one DER TLV (`tag`, definite length, `content`) to `out`. Writing into the caller's
/// buffer lets secret content go straight into a `Zeroizing` vector with no copy left behind.
pub fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_length(out, content.len());
    out.extend_from_slice(content);
}

/// One DER TLV as a new vector.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    push_tlv(&mut out, tag, content);
    out
}

/// A definite length: short form below 128, else the long form with the fewest bytes.
fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let significant = strip_leading_zeros(&bytes);
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// An unsigned big-endian integer without its leading zero bytes (empty for zero).
pub fn strip_leading_zeros(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| *b != 0).unwrap_or(value.len());
    value.get(start..).unwrap_or_default()
}

/// A DER INTEGER holding the unsigned big-endian `value`: leading zero bytes dropped, one
/// added back when the top bit is set, and zero written as a single `00`.
pub fn unsigned_integer(value: &[u8]) -> Vec<u8> {
    let trimmed = match strip_leading_zeros(value) {
        [] => &[0][..],
        trimmed => trimmed,
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(0x02, &content)
}

/// A SEQUENCE of the given already-encoded elements.
pub fn sequence(elements: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &elements.concat())
}

/// Converts a raw `r || s` ECDSA signature (what PKCS#11 and the TPM return) to DER
/// `SEQUENCE { r INTEGER, s INTEGER }`, the form SigV4-X509 sends. `None` for an empty or
/// odd-length input, or one longer than P-521's.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 2 * 66 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(sequence(&[&unsigned_integer(r), &unsigned_integer(s)]))
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`: what a
/// certificate's subjectPublicKey holds for RSA, so a token's key can be compared with it.
pub fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    sequence(&[&unsigned_integer(modulus), &unsigned_integer(exponent)])
}

/// The size in bits of an unsigned big-endian integer (an RSA modulus), leading zero bytes
/// (DER's sign padding) ignored; 0 for zero.
pub fn bit_length(value: &[u8]) -> usize {
    match strip_leading_zeros(value) {
        [first, rest @ ..] => rest.len() * 8 + (8 - first.leading_zeros() as usize),
        [] => 0,
    }
}

/// Reads one DER TLV: the tag, the contents and what follows. `None` when it is malformed
/// or its length (at most three length bytes) runs past the input.
pub fn read_tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return None;
        }
        let (len_bytes, rest) = rest.split_at_checked(n)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    let (content, after) = rest.split_at_checked(len)?;
    Some((tag, content, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_short_and_long_form() {
        assert_eq!(tlv(0x04, &[7; 3]), [0x04, 3, 7, 7, 7]);
        assert_eq!(&tlv(0x04, &[0; 0x7f])[..2], [0x04, 0x7f]);
        assert_eq!(&tlv(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(&tlv(0x04, &[0; 0x100])[..4], [0x04, 0x82, 0x01, 0x00]);
        assert_eq!(
            &tlv(0x04, &[0; 0x1_0000])[..5],
            [0x04, 0x83, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn unsigned_integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0, 0, 0x01]), [0x02, 1, 0x01]);
        assert_eq!(unsigned_integer(&[0x80]), [0x02, 2, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), [0x02, 1, 0x00]);
        assert_eq!(unsigned_integer(&[]), [0x02, 1, 0x00]);
    }

    #[test]
    fn raw_ecdsa_becomes_der_with_minimal_integers() {
        // r with the top bit set needs a 00 pad; s with leading zeros is trimmed.
        let mut raw = vec![0x80; 32];
        raw.extend(std::iter::repeat_n(0u8, 31));
        raw.push(0x05);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        let mut expected = vec![0x30, 0x26, 0x02, 0x21, 0x00];
        expected.extend(vec![0x80; 32]);
        expected.extend([0x02, 0x01, 0x05]);
        assert_eq!(der, expected);
        // P-384 sized: two 49-byte integers still fit a short length.
        let der = ecdsa_raw_to_der(&[0xff; 96]).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x66, 0x02, 0x31]);
        // P-521 sized: the sequence needs the long length form.
        let der = ecdsa_raw_to_der(&[0xff; 132]).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x81, 0x8a, 0x02]);
        assert_eq!(der.len(), 3 + 0x8a);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
        assert!(ecdsa_raw_to_der(&[]).is_none());
        assert!(ecdsa_raw_to_der(&[1; 134]).is_none());
    }

    #[test]
    fn bit_length_ignores_leading_zeros_and_counts_partial_bytes() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01, 0x00]), 9);
        assert_eq!(bit_length(&[0x00, 0x00, 0x01]), 1);
        assert_eq!(bit_length(&[0xff; 256]), 2048);
        assert_eq!(bit_length(&[0x00, 0x00]), 0);
        assert_eq!(bit_length(&[]), 0);
    }

    #[test]
    fn reads_what_it_writes() {
        let inner = tlv(0x04, &[9; 300]);
        let outer = sequence(&[&inner, &unsigned_integer(&[1])]);
        let (tag, content, rest) = read_tlv(&outer).expect("well formed");
        assert_eq!((tag, rest.len()), (0x30, 0));
        let (tag, value, rest) = read_tlv(content).expect("inner");
        assert_eq!((tag, value.len()), (0x04, 300));
        assert_eq!(rest, [0x02, 1, 1]);
        assert!(read_tlv(&outer[..outer.len() - 1]).is_none());
        assert!(read_tlv(&[0x30, 0x84, 0, 0, 0, 1, 0]).is_none());
    }
}
