//! The value kept in a keyring entry: a PKCS#8 key. `import` turns any key file we can
//! sign with into PKCS#8 PEM (an encrypted PKCS#8 key stays encrypted unless asked
//! otherwise); reading accepts PKCS#8 PEM or DER, plain or encrypted, so that values put
//! there by other tools (`secret-tool store`, `keyctl padd`) work too. Every intermediate
//! copy of key material lives in a zeroizing buffer.

use aws_lc_rs::encoding::AsDer as _;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::identity::file::{FileKey, KeyProblem, PasswordSource, decrypt_pkcs8, sec1_to_pkcs8};
use crate::identity::pem;
use crate::signer::Signer as _;

/// A validated key, ready to store.
pub(super) struct Prepared {
    /// `-----BEGIN PRIVATE KEY-----` or `-----BEGIN ENCRYPTED PRIVATE KEY-----` PEM.
    pub pem: Zeroizing<String>,
    /// Whether `pem` is encrypted PKCS#8.
    pub encrypted: bool,
    /// The key itself, proof that the value is usable.
    pub key: FileKey,
}

/// Validates a key file (`FileKey::from_file_bytes`, with the usual password sources) and
/// re-encodes it as PKCS#8 PEM.
pub(super) fn prepare(
    data: &[u8],
    name: &str,
    passwords: &dyn PasswordSource,
    decrypt: bool,
) -> Result<Prepared, KeyProblem> {
    let key = FileKey::from_file_bytes(data, name, passwords)?;
    let (der, encrypted) = to_pkcs8(data, passwords, decrypt)?;
    if !encrypted {
        // The conversion must give back the very key that was validated; a mismatch would be
        // a bug here, and storing the wrong key is worse than refusing.
        let again = FileKey::from_pkcs8(&der, name)?;
        if again.public_key() != key.public_key() || again.key_kind() != key.key_kind() {
            return Err(KeyProblem::NotAKey(
                "it could not be re-encoded as PKCS#8".into(),
            ));
        }
    }
    let label = if encrypted {
        "ENCRYPTED PRIVATE KEY"
    } else {
        "PRIVATE KEY"
    };
    Ok(Prepared {
        pem: pem_encode(label, &der),
        encrypted,
        key,
    })
}

/// The PKCS#8 DER of the key in a key file (already validated by `FileKey`), and whether it
/// is encrypted. Picks the same block `FileKey::from_file_bytes` uses: the first key block.
fn to_pkcs8(
    data: &[u8],
    passwords: &dyn PasswordSource,
    decrypt: bool,
) -> Result<(Zeroizing<Vec<u8>>, bool), KeyProblem> {
    if !pem::looks_like_pem(data) {
        if pkcs8::PrivateKeyInfoRef::try_from(data).is_ok() {
            return Ok((Zeroizing::new(data.to_vec()), false));
        }
        return pkcs1_to_pkcs8(data)
            .or_else(|_| sec1_to_pkcs8(data))
            .map(|der| (der, false));
    }
    let blocks = pem::parse(data).map_err(|e| KeyProblem::NotAKey(e.to_string()))?;
    for block in &blocks {
        let der = match block.label.as_str() {
            "PRIVATE KEY" => Zeroizing::new(block.der.to_vec()),
            "RSA PRIVATE KEY" => pkcs1_to_pkcs8(&block.der)?,
            "EC PRIVATE KEY" => sec1_to_pkcs8(&block.der)?,
            "ENCRYPTED PRIVATE KEY" if decrypt => decrypt_pkcs8(&block.der, passwords)?,
            "ENCRYPTED PRIVATE KEY" => return Ok((Zeroizing::new(block.der.to_vec()), true)),
            _ => continue,
        };
        return Ok((der, false));
    }
    Err(KeyProblem::NotAKey("no private key block".into()))
}

fn pkcs1_to_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyProblem> {
    let pair = aws_lc_rs::rsa::KeyPair::from_der(der)
        .map_err(|_| KeyProblem::NotAKey("not a PKCS#1 RSA key".into()))?;
    let pkcs8 = pair
        .as_der()
        .map_err(|_| KeyProblem::NotAKey("the RSA key could not be re-encoded".into()))?;
    Ok(Zeroizing::new(pkcs8.as_ref().to_vec()))
}

/// PEM with 64-column lines, built in a buffer sized up front so that no reallocation
/// leaves a copy of the key behind.
fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(
        b64.len() + b64.len() / 64 + 2 * label.len() + 40,
    ));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Turns a stored value into a key. PEM goes through `FileKey::from_file_bytes`; DER may be
/// plain or encrypted PKCS#8 (and, leniently, PKCS#1 or SEC1).
pub(super) fn decode(
    stored: &[u8],
    source: &str,
    passwords: &dyn PasswordSource,
) -> Result<FileKey, KeyProblem> {
    if !pem::looks_like_pem(stored) && pkcs8::EncryptedPrivateKeyInfoRef::try_from(stored).is_ok() {
        let der = decrypt_pkcs8(stored, passwords)?;
        return FileKey::from_pkcs8(&der, source);
    }
    FileKey::from_file_bytes(stored, source, passwords).map_err(|problem| match problem {
        // The file reader's wording speaks of blocks and files; say what the value is not.
        KeyProblem::NotAKey(_) => {
            KeyProblem::NotAKey("it is neither a PEM private key nor a DER PKCS#8 key".into())
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::pki::{GeneratedKey, KeyType, TEST_PASSWORD};

    struct Fixed(Option<&'static str>);
    impl PasswordSource for Fixed {
        fn password(&self) -> Option<SecretString> {
            self.0.map(|p| SecretString::from(p.to_string()))
        }
    }

    fn same_key(a: &FileKey, b: &FileKey) -> bool {
        a.key_kind() == b.key_kind() && a.public_key() == b.public_key()
    }

    #[test]
    fn every_format_becomes_the_same_pkcs8() {
        for t in KeyType::ALL {
            let key = GeneratedKey::generate(t).unwrap();
            let original = FileKey::from_pkcs8(key.pkcs8_der(), "k").unwrap();
            let mut inputs: Vec<Zeroizing<Vec<u8>>> = vec![
                Zeroizing::new(key.pkcs8_pem().unwrap().as_bytes().to_vec()),
                Zeroizing::new(key.pkcs8_der().to_vec()),
            ];
            if t.is_rsa() {
                inputs.push(Zeroizing::new(key.pkcs1_pem().unwrap().as_bytes().to_vec()));
                inputs.push(key.pkcs1_der().unwrap());
            } else {
                inputs.push(Zeroizing::new(key.sec1_pem().unwrap().as_bytes().to_vec()));
                inputs.push(key.sec1_der().unwrap());
            }
            for input in &inputs {
                let p = prepare(input, "k", &Fixed(None), false).unwrap();
                assert!(!p.encrypted);
                assert!(p.pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{t:?}");
                assert!(p.pem.lines().all(|l| l.len() <= 64));
                let back = decode(p.pem.as_bytes(), "k", &Fixed(None)).unwrap();
                assert!(same_key(&back, &original), "{t:?}");
                assert!(same_key(&p.key, &original), "{t:?}");
            }
        }
    }

    #[test]
    fn encrypted_pkcs8_stays_encrypted_unless_asked() {
        let key = GeneratedKey::generate(KeyType::P256).unwrap();
        let original = FileKey::from_pkcs8(key.pkcs8_der(), "k").unwrap();
        let enc = key.encrypted_pkcs8_pem(TEST_PASSWORD).unwrap();
        let pw = Fixed(Some(TEST_PASSWORD));

        let kept = prepare(enc.as_bytes(), "k", &pw, false).unwrap();
        assert!(kept.encrypted);
        assert!(
            kept.pem
                .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
        );
        assert_eq!(
            decode(kept.pem.as_bytes(), "k", &Fixed(None)).err(),
            Some(KeyProblem::NeedsPassword)
        );
        assert_eq!(
            decode(kept.pem.as_bytes(), "k", &Fixed(Some("wrong"))).err(),
            Some(KeyProblem::WrongPassword)
        );
        assert!(same_key(
            &decode(kept.pem.as_bytes(), "k", &pw).unwrap(),
            &original
        ));

        let plain = prepare(enc.as_bytes(), "k", &pw, true).unwrap();
        assert!(!plain.encrypted);
        assert!(same_key(
            &decode(plain.pem.as_bytes(), "k", &Fixed(None)).unwrap(),
            &original
        ));

        // Import validates first: no password, or the wrong one, stores nothing.
        assert_eq!(
            prepare(enc.as_bytes(), "k", &Fixed(None), false).err(),
            Some(KeyProblem::NeedsPassword)
        );
        assert_eq!(
            prepare(enc.as_bytes(), "k", &Fixed(Some("nope")), false).err(),
            Some(KeyProblem::WrongPassword)
        );
    }

    #[test]
    fn reads_der_values_put_there_by_other_tools() {
        let key = GeneratedKey::generate(KeyType::P384).unwrap();
        let original = FileKey::from_pkcs8(key.pkcs8_der(), "k").unwrap();
        assert!(same_key(
            &decode(key.pkcs8_der(), "k", &Fixed(None)).unwrap(),
            &original
        ));
        let enc = key.encrypted_pkcs8_der(TEST_PASSWORD).unwrap();
        assert_eq!(
            decode(&enc, "k", &Fixed(None)).err(),
            Some(KeyProblem::NeedsPassword)
        );
        let back = decode(&enc, "k", &Fixed(Some(TEST_PASSWORD))).unwrap();
        assert!(same_key(&back, &original));
    }

    #[test]
    fn values_that_are_not_keys_are_described_not_echoed() {
        let secret = b"hunter2-correct-horse-battery-staple";
        let problem = decode(secret, "k", &Fixed(None)).err().unwrap();
        let KeyProblem::NotAKey(detail) = &problem else {
            panic!("{problem:?}");
        };
        assert!(!detail.contains("hunter2"), "{detail}");
        let cert = crate::pki::Ca::new_root(
            "root",
            KeyType::P256,
            crate::pki::Validity::relative_to_now(
                time::Duration::hours(-1),
                time::Duration::hours(1),
            ),
        )
        .unwrap();
        assert_eq!(
            decode(cert.cert_pem().as_bytes(), "k", &Fixed(None)).err(),
            Some(KeyProblem::IsCertificate)
        );
        assert!(prepare(secret, "k", &Fixed(None), false).is_err());
    }
}
