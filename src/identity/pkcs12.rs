//! PKCS#12 (`.p12`/`.pfx`) bundles: the leaf certificate, its key and the chain in one file.

use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use secrecy::{ExposeSecret, SecretString};

use super::cert::Certificate;
use super::file::{FileKey, PasswordSource};
use crate::signer::Signer;

/// What a PKCS#12 file held.
pub struct Bundle {
    pub certificate: Certificate,
    pub chain: Vec<Certificate>,
    pub key: FileKey,
}

/// Why a PKCS#12 file could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum Pkcs12Problem {
    /// Not PKCS#12 at all.
    NotPkcs12,
    /// The password (or its absence) does not open it.
    WrongPassword,
    /// It opened but holds no key with a certificate.
    NoKey,
    /// Its key or certificate is unusable.
    Invalid(String),
}

/// Opens `data`, trying the given password, then (when none was given) the empty password
/// that many tools use, then a prompt.
pub fn open(
    data: &[u8],
    source: &str,
    passwords: &dyn PasswordSource,
    explicit: bool,
) -> Result<Bundle, Pkcs12Problem> {
    let store = if explicit {
        let p = passwords
            .password()
            .unwrap_or_else(|| SecretString::from(String::new()));
        try_open(data, &p)?
    } else {
        match try_open(data, &SecretString::from(String::new())) {
            Ok(store) => store,
            Err(Pkcs12Problem::WrongPassword) => {
                let p = passwords.password().ok_or(Pkcs12Problem::WrongPassword)?;
                try_open(data, &p)?
            }
            Err(e) => return Err(e),
        }
    };
    let (_, chain) = store.private_key_chain().ok_or(Pkcs12Problem::NoKey)?;
    let key = FileKey::from_pkcs8(chain.key().as_der(), source)
        .map_err(|e| Pkcs12Problem::Invalid(format!("its private key is unusable ({e:?})")))?;
    let mut certs = Vec::new();
    for c in chain.certs() {
        certs.push(Certificate::from_der(c.as_der()).map_err(Pkcs12Problem::Invalid)?);
    }
    // The leaf is the certificate of the key; the rest is the chain, in the file's order.
    let public = key.public_key().unwrap_or_default();
    let leaf_index = certs
        .iter()
        .position(|c| c.public_key() == public)
        .ok_or(Pkcs12Problem::NoKey)?;
    let certificate = certs.remove(leaf_index);
    let chain = certs
        .into_iter()
        .filter(|c| c.subject() != c.issuer())
        .collect();
    Ok(Bundle {
        certificate,
        chain,
        key,
    })
}

fn try_open(data: &[u8], password: &SecretString) -> Result<KeyStore, Pkcs12Problem> {
    match KeyStore::from_pkcs12(data, password.expose_secret(), Pkcs12ImportPolicy::Relaxed) {
        Ok(store) => Ok(store),
        Err(p12_keystore::error::Error::MacError(_)) => Err(Pkcs12Problem::WrongPassword),
        Err(
            p12_keystore::error::Error::DerError(_) | p12_keystore::error::Error::InvalidVersion,
        ) => Err(Pkcs12Problem::NotPkcs12),
        Err(e) => Err(Pkcs12Problem::Invalid(e.to_string())),
    }
}
