//! PKCS#12 files in the shape OpenSSL 3 writes by default.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};

use super::{Issued, PBKDF2_ITERATIONS, PkiError};

/// Builds a PKCS#12 file holding `leaf`'s certificate and private key, followed by the `chain`
/// certificates (DER, leaf's issuer first; an [`Issued`] works as one through `AsRef<[u8]>`).
///
/// Like `openssl pkcs12 -export` in OpenSSL 3: the key bag and the certificate bags are
/// encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and the file is protected by an
/// HMAC-SHA256 MAC, all with [`PBKDF2_ITERATIONS`] iterations and `password`. The key and the
/// leaf certificate share a localKeyId (the SHA-1 of the leaf certificate, as OpenSSL does).
pub fn pkcs12<C: AsRef<[u8]>>(
    leaf: &Issued,
    chain: &[C],
    password: &str,
) -> Result<Vec<u8>, PkiError> {
    let p12 = |e: p12_keystore::error::Error| PkiError::encoding("PKCS#12", e);
    let mut certs = Vec::with_capacity(chain.len() + 1);
    certs.push(Certificate::from_der(&leaf.cert_der).map_err(p12)?);
    for cert in chain {
        certs.push(Certificate::from_der(cert.as_ref()).map_err(p12)?);
    }
    let key = PrivateKey::from_der(leaf.key.pkcs8_der()).map_err(p12)?;
    let local_key_id =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &leaf.cert_der);
    let entry = PrivateKeyChain::new(local_key_id.as_ref(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry("1", KeyStoreEntry::PrivateKeyChain(entry));
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(PBKDF2_ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(PBKDF2_ITERATIONS)
        .write()
        .map_err(p12)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, KeyType, LeafOptions, Validity};
    use p12_keystore::{Pkcs12Archive, Pkcs12ImportPolicy};
    use time::Duration;

    #[test]
    fn pkcs12_holds_key_leaf_and_chain() {
        let window = Validity::relative_to_now(Duration::hours(-1), Duration::hours(1));
        let root = Ca::new_root("R", KeyType::P256, window).unwrap();
        let inter = root.issue_intermediate("I", KeyType::P256, window).unwrap();
        let leaf = inter
            .issue_leaf("L", KeyType::P256, LeafOptions::new(window))
            .unwrap();
        let der = pkcs12(&leaf, &[inter.certificate()], "pw").unwrap();

        let archive = Pkcs12Archive::from_pkcs12(&der, "pw").unwrap();
        assert_eq!(archive.keys.len(), 1);
        assert_eq!(archive.keys[0].key.as_der(), leaf.key.pkcs8_der());
        let certs: Vec<&[u8]> = archive.certs.iter().map(|c| c.cert.as_der()).collect();
        assert_eq!(certs, [&leaf.cert_der[..], inter.cert_der()]);

        let store = KeyStore::from_pkcs12(&der, "pw", Pkcs12ImportPolicy::Strict).unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(chain.certs().len(), 2);
        assert!(Pkcs12Archive::from_pkcs12(&der, "wrong").is_err());

        // A chain given as raw DER works the same.
        let raw: &[&[u8]] = &[inter.cert_der()];
        assert!(pkcs12(&leaf, raw, "pw").is_ok());
    }
}
