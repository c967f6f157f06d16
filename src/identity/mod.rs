//! Identities: the certificate, its chain and the key that signs for it, loaded from the
//! places the flags name and checked before any request leaves the machine.
//!
//! Loading keeps to the Go helper's rules (`--certificate` PEM or DER, `--private-key`, or a
//! PKCS#12 file in `--certificate` alone) and adds the pre-flight checks it lacks: the key
//! must match the certificate, and the certificate must be inside its validity window.

pub mod cert;
pub mod file;
#[cfg(feature = "keyring")]
pub mod keyring;
pub mod password;
pub mod pem;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod pkcs12;
pub mod source;
#[cfg(feature = "tpm")]
pub mod tpm;

use std::sync::Arc;

use secrecy::SecretString;
use time::OffsetDateTime;

pub use cert::Certificate;
use file::{FileKey, KeyProblem};
use password::Passwords;

use crate::signer::{Digest, Signer};

/// What the flags say about where the identity lives.
#[derive(Clone, Default)]
pub struct IdentitySpec {
    /// `--certificate`: a PEM or DER certificate, or a PKCS#12 bundle.
    pub certificate: Option<String>,
    /// `--private-key`.
    pub private_key: Option<String>,
    /// `--intermediates`: a PEM bundle sent as `X-Amz-X509-Chain`.
    pub intermediates: Option<String>,
    /// `--pkcs8-password`.
    pub pkcs8_password: Option<SecretString>,
    /// `--pkcs11-lib`: the PKCS#11 module (default: p11-kit's proxy where present).
    pub pkcs11_lib: Option<String>,
    /// `--reuse-pin`: use the user PIN for context-specific logins too.
    pub reuse_pin: bool,
    /// `--cert-selector`, raw (`Key=...,Value=...` pairs or `file://sel.json`).
    pub cert_selector: Option<String>,
    /// `--use-latest-expiring-certificate`.
    pub use_latest_expiring_certificate: bool,
    /// `--tpm-key-password`.
    pub tpm_key_password: Option<SecretString>,
    /// `--no-tpm-key-password`.
    pub no_tpm_key_password: bool,
}

/// A certificate with the key that signs for it.
#[derive(Clone, Debug)]
pub struct Identity {
    pub certificate: Certificate,
    /// Intermediates, leaf excluded, in the order they are sent.
    pub chain: Vec<Certificate>,
    pub signer: Arc<dyn Signer>,
}

/// Everything about an identity a user can get wrong. All are configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no certificate given")]
    NoCertificate,
    #[error("cannot read {flag} {path}: {source}")]
    Read {
        flag: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {flag} {path}: {source}")]
    Refused {
        flag: &'static str,
        path: String,
        #[source]
        source: crate::files::ReadError,
    },
    #[error("{flag} env:{name}: the environment variable {name} is not set")]
    MissingVariable { flag: &'static str, name: String },
    #[error("{flag} {path} is empty")]
    EmptySource { flag: &'static str, path: String },
    #[error("{flag} {path} is not a certificate: {detail}")]
    NotACertificate {
        flag: &'static str,
        path: String,
        detail: String,
    },
    #[error("--private-key {path} holds a certificate, not a private key")]
    CertificateGivenAsKey { path: String },
    #[error("--private-key {path} is not a private key: {detail}")]
    NotAKey { path: String, detail: String },
    #[error("--private-key {path} is encrypted and no password was given")]
    PasswordNeeded { path: String },
    #[error("the password does not decrypt {path}")]
    WrongPassword { path: String },
    #[error("--private-key {path} uses OpenSSL's legacy PEM encryption")]
    LegacyEncryption { path: String },
    #[error("--private-key {path} is a TPM key, and this build has no TPM support")]
    TpmKey { path: String },
    #[error("{what} in {path} is not supported")]
    UnsupportedKey { path: String, what: String },
    #[error("--certificate {path} is PKCS#12 but {detail}")]
    Pkcs12 { path: String, detail: String },
    #[error(
        "--certificate {path} is PKCS#12, which carries its own key and chain, but {flag} was also given"
    )]
    Pkcs12Conflict { path: String, flag: &'static str },
    #[error("--certificate {path} is not PKCS#12, so --private-key is required")]
    MissingPrivateKey { path: String },
    #[error("the private key in {key} does not belong to the certificate in {certificate}")]
    KeyMismatch { key: String, certificate: String },
    #[error("the certificate in {path} expired at {not_after}")]
    Expired { path: String, not_after: String },
    #[error("the certificate in {path} is not valid until {not_before}")]
    NotYetValid { path: String, not_before: String },
    #[error("the certificate in {path} uses a {what}, which IAM Roles Anywhere does not accept")]
    UnsupportedCertificateKey { path: String, what: String },
    #[cfg(feature = "pkcs11")]
    #[error(transparent)]
    Pkcs11(#[from] pkcs11::Pkcs11Error),
    #[cfg(feature = "keyring")]
    #[error(transparent)]
    Keyring(#[from] keyring::KeyringError),
    #[cfg(feature = "tpm")]
    #[error(transparent)]
    Tpm(#[from] tpm::TpmError),
}

impl IdentityError {
    /// A failure of the device, not of what the flags or files say (exit 1, not 2): the
    /// TPM stopped answering in the middle of a command.
    pub fn is_runtime(&self) -> bool {
        match self {
            #[cfg(feature = "tpm")]
            IdentityError::Tpm(e) => e.is_runtime(),
            _ => false,
        }
    }

    pub fn hint(&self) -> Option<String> {
        use IdentityError::*;
        Some(match self {
            NoCertificate => "pass --certificate PATH (and --private-key PATH unless it is a PKCS#12 file)".into(),
            Read { .. } => "check the path and that this user may read it".into(),
            Refused { source: crate::files::ReadError::TooLarge { .. }, .. } => {
                "certificates, keys and PKCS#12 bundles are a few KiB: check that the path names the right file".into()
            }
            Refused { .. } => {
                "check the path: it must name a regular file (to pass PEM text through a pipe, use '-' for standard input or env:NAME)".into()
            }
            MissingVariable { name, .. } => format!("export {name} with the PEM text, or give a file path instead"),
            EmptySource { .. } => "pass the PEM text (certificate and key may share one stream when both are '-')".into(),
            NotACertificate { .. } => {
                "expected a PEM file with a CERTIFICATE block, a DER certificate, or a PKCS#12 bundle".into()
            }
            CertificateGivenAsKey { .. } => "did you swap --certificate and --private-key?".into(),
            NotAKey { .. } => "expected a PEM or DER key: PKCS#8 (PRIVATE KEY), PKCS#1 (RSA PRIVATE KEY), SEC1 (EC PRIVATE KEY) or encrypted PKCS#8".into(),
            PasswordNeeded { .. } => format!(
                "pass --pkcs8-password, set {}, or run from a terminal to be prompted",
                password::PASSWORD_ENV
            ),
            WrongPassword { .. } => format!("check --pkcs8-password or {}", password::PASSWORD_ENV),
            LegacyEncryption { path } => format!(
                "convert it to encrypted PKCS#8: openssl pkcs8 -topk8 -v2 aes-256-cbc -in {path} -out key.p8.pem"
            ),
            TpmKey { .. } => "build with the `tpm` feature (on by default), or use a file key or a PKCS#11 token".into(),
            UnsupportedKey { .. } | UnsupportedCertificateKey { .. } => {
                "use an RSA (2048, 3072 or 4096 bit) or EC P-256/P-384 key".into()
            }
            Pkcs12 { .. } => format!(
                "check the file, and give its password with --pkcs8-password or {}",
                password::PASSWORD_ENV
            ),
            Pkcs12Conflict { .. } => "drop the extra flag: the chain and key come from the PKCS#12 file".into(),
            MissingPrivateKey { .. } => "pass --private-key PATH with the certificate's key".into(),
            KeyMismatch { .. } => {
                "pair the right files: `openssl x509 -noout -pubkey -in CERT` and `openssl pkey -pubout -in KEY` must print the same key".into()
            }
            Expired { .. } => "renew the certificate with your CA".into(),
            NotYetValid { .. } => "check the system clock, or wait until the certificate becomes valid".into(),
            #[cfg(feature = "pkcs11")]
            Pkcs11(e) => return e.hint(),
            #[cfg(feature = "keyring")]
            Keyring(e) => return e.hint(),
            #[cfg(feature = "tpm")]
            Tpm(e) => return e.hint(),
        })
    }
}

impl Identity {
    /// Loads the certificate, chain and key named by `spec`. Nothing is checked against the
    /// clock here; call [`Identity::check`] for that.
    pub fn load(spec: &IdentitySpec) -> Result<Self, IdentityError> {
        #[cfg(feature = "pkcs11")]
        if pkcs11::is_pkcs11(spec) {
            return Ok(pkcs11::load_identity(spec)?);
        }
        let cert_path = spec
            .certificate
            .as_deref()
            .ok_or(IdentityError::NoCertificate)?;
        let cert_bytes = read("--certificate", cert_path)?;
        let passwords = Passwords::new(spec.pkcs8_password.clone(), cert_path);

        let certs = match parse_certificates(&cert_bytes) {
            Ok(certs) => certs,
            Err(detail) => {
                // Not a certificate: a PKCS#12 bundle is the only other thing it may be.
                return Self::from_pkcs12(spec, cert_path, &cert_bytes, &passwords, detail);
            }
        };
        let key_path =
            spec.private_key
                .as_deref()
                .ok_or_else(|| IdentityError::MissingPrivateKey {
                    path: source::describe(cert_path),
                })?;
        let mut certs = certs.into_iter();
        let certificate = certs.next().ok_or_else(|| IdentityError::NotACertificate {
            flag: "--certificate",
            path: source::describe(cert_path),
            detail: "no certificate in it".into(),
        })?;
        // A full-chain file carries the intermediates after the leaf.
        let mut chain: Vec<Certificate> = certs.collect();
        if let Some(path) = &spec.intermediates {
            chain = parse_certificates(&read("--intermediates", path)?).map_err(|detail| {
                IdentityError::NotACertificate {
                    flag: "--intermediates",
                    path: source::describe(path),
                    detail,
                }
            })?;
        }
        let signer = load_signer(spec, key_path)?;
        Ok(Identity {
            certificate,
            chain,
            signer,
        })
    }

    /// The leaf certificate alone, when `spec` names one in a file, a variable or standard
    /// input, together with a private key: enough to name the cached credentials without
    /// touching the key (no file read, no PIN, no TPM or D-Bus round trip). `None` for the
    /// sources that need the key store or a password to show the certificate (PKCS#11,
    /// PKCS#12) and for anything [`Identity::load`] would refuse; that path reports it.
    pub fn peek_certificate(spec: &IdentitySpec) -> Option<Certificate> {
        #[cfg(feature = "pkcs11")]
        if pkcs11::is_pkcs11(spec) {
            return None;
        }
        spec.private_key.as_ref()?;
        let cert_bytes = read("--certificate", spec.certificate.as_deref()?).ok()?;
        parse_certificates(&cert_bytes).ok()?.into_iter().next()
    }

    fn from_pkcs12(
        spec: &IdentitySpec,
        path: &str,
        data: &[u8],
        passwords: &Passwords,
        cert_detail: String,
    ) -> Result<Self, IdentityError> {
        let bundle = match pkcs12::open(
            data,
            &source::describe(path),
            passwords,
            passwords.is_explicit(),
        ) {
            Ok(bundle) => bundle,
            Err(pkcs12::Pkcs12Problem::NotPkcs12) => {
                return Err(IdentityError::NotACertificate {
                    flag: "--certificate",
                    path: source::describe(path),
                    detail: cert_detail,
                });
            }
            Err(problem) => {
                let detail = match problem {
                    pkcs12::Pkcs12Problem::WrongPassword => {
                        "the password does not open it".to_string()
                    }
                    pkcs12::Pkcs12Problem::NoKey => {
                        "it holds no private key with its certificate".to_string()
                    }
                    pkcs12::Pkcs12Problem::Invalid(d) => d,
                    pkcs12::Pkcs12Problem::NotPkcs12 => String::new(),
                };
                return Err(IdentityError::Pkcs12 {
                    path: source::describe(path),
                    detail,
                });
            }
        };
        for (flag, given) in [
            ("--private-key", spec.private_key.is_some()),
            ("--intermediates", spec.intermediates.is_some()),
        ] {
            if given {
                return Err(IdentityError::Pkcs12Conflict {
                    path: source::describe(path),
                    flag,
                });
            }
        }
        Ok(Identity {
            certificate: bundle.certificate,
            chain: bundle.chain,
            signer: Arc::new(bundle.key),
        })
    }

    /// Pre-flight: the certificate's key type is one the service accepts, the key belongs to
    /// the certificate, and `now` is inside the certificate's validity window.
    pub fn check(&self, cert_path: &str, now: OffsetDateTime) -> Result<(), IdentityError> {
        let cert = &self.certificate;
        let kind = cert
            .key_kind()
            .map_err(|what| IdentityError::UnsupportedCertificateKey {
                path: source::describe(cert_path),
                what: what.to_string(),
            })?;
        let matches = match self.signer.public_key() {
            Some(public) => public == cert.public_key(),
            // Stores that cannot export the public key prove possession instead.
            None => {
                let probe = b"rolesanywhere-agent key check";
                self.signer.sign(probe, Digest::Sha256).is_ok_and(|s| {
                    crate::signer::verify(kind, cert.public_key(), probe, Digest::Sha256, &s)
                })
            }
        };
        if !matches || self.signer.key_kind().algorithm() != kind.algorithm() {
            return Err(IdentityError::KeyMismatch {
                key: self.signer.source(),
                certificate: source::describe(cert_path),
            });
        }
        if now > cert.not_after() {
            return Err(IdentityError::Expired {
                path: source::describe(cert_path),
                not_after: rfc3339(cert.not_after()),
            });
        }
        if now < cert.not_before() {
            return Err(IdentityError::NotYetValid {
                path: source::describe(cert_path),
                not_before: rfc3339(cert.not_before()),
            });
        }
        Ok(())
    }

    /// The `X-Amz-X509-Chain` header value, when there are intermediates.
    pub fn chain_header(&self) -> Option<String> {
        if self.chain.is_empty() {
            return None;
        }
        let parts: Vec<String> = self.chain.iter().map(Certificate::to_base64).collect();
        Some(parts.join(","))
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    crate::credentials::format_expiration(t)
}

fn read(flag: &'static str, value: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, IdentityError> {
    let src = source::Source::parse(value);
    src.read().map_err(|e| match e {
        source::SourceError::Io(source) => IdentityError::Read {
            flag,
            path: src.describe(),
            source,
        },
        source::SourceError::Refused(source) => IdentityError::Refused {
            flag,
            path: src.describe(),
            source,
        },
        source::SourceError::MissingVariable => IdentityError::MissingVariable {
            flag,
            name: value.trim_start_matches("env:").to_string(),
        },
        source::SourceError::Empty => IdentityError::EmptySource {
            flag,
            path: src.describe(),
        },
    })
}

/// Reads every certificate in a PEM file, or the one DER certificate. The error describes
/// the problem without echoing the contents.
pub fn parse_certificates(data: &[u8]) -> Result<Vec<Certificate>, String> {
    if !pem::looks_like_pem(data) {
        return Certificate::from_der(data).map(|c| vec![c]);
    }
    let blocks = pem::parse(data).map_err(|e| e.to_string())?;
    let mut certs = Vec::new();
    for block in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
        certs.push(Certificate::from_der(&block.der)?);
    }
    if certs.is_empty() {
        let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
        return Err(format!(
            "no CERTIFICATE block (found {})",
            labels.join(", ")
        ));
    }
    Ok(certs)
}

/// The signer for `key_path` (`--private-key`): a TPM key (`handle:` or a `TSS2 PRIVATE
/// KEY` file) or a key file, with the passwords `spec` carries.
pub fn load_signer(spec: &IdentitySpec, key_path: &str) -> Result<Arc<dyn Signer>, IdentityError> {
    let passwords = &Passwords::new(spec.pkcs8_password.clone(), key_path);
    #[cfg(feature = "tpm")]
    {
        let (tpm_password, no_tpm_password) =
            (spec.tpm_key_password.clone(), spec.no_tpm_key_password);
        if tpm::is_handle(key_path) {
            return Ok(Arc::new(tpm::open_key(
                key_path,
                tpm_password,
                no_tpm_password,
            )?));
        }
        match load_key_with(key_path, passwords) {
            // A TSS2 PRIVATE KEY: read again (files and env: re-read, stdin is cached).
            Err(IdentityError::TpmKey { .. }) => {
                let data = read("--private-key", key_path)?;
                let name = source::describe(key_path);
                Ok(Arc::new(tpm::open_key_data(
                    &data,
                    &name,
                    tpm_password,
                    no_tpm_password,
                )?))
            }
            other => Ok(Arc::new(other?)),
        }
    }
    #[cfg(not(feature = "tpm"))]
    Ok(Arc::new(load_key_with(key_path, passwords)?))
}

fn load_key_with(path: &str, passwords: &Passwords) -> Result<FileKey, IdentityError> {
    #[cfg(feature = "keyring")]
    if keyring::is_reference(path) {
        return Ok(keyring::load_key_with(path, passwords)?);
    }
    let data = read("--private-key", path)?;
    let described = source::describe(path);
    FileKey::from_file_bytes(&data, &described, passwords).map_err(|problem| {
        let path = described.clone();
        match problem {
            KeyProblem::IsCertificate => IdentityError::CertificateGivenAsKey { path },
            KeyProblem::NotAKey(detail) => IdentityError::NotAKey { path, detail },
            KeyProblem::NeedsPassword => IdentityError::PasswordNeeded { path },
            KeyProblem::WrongPassword => IdentityError::WrongPassword { path },
            KeyProblem::LegacyEncrypted => IdentityError::LegacyEncryption { path },
            KeyProblem::Tpm => IdentityError::TpmKey { path },
            KeyProblem::Unsupported(what) => IdentityError::UnsupportedKey { path, what },
        }
    })
}

#[cfg(test)]
mod tests {
    //! The pre-flight checks, on a throwaway P-256 PKI: the key must belong to the
    //! certificate (by its public key, or by a probe signature when the store cannot show
    //! it), and the certificate must be valid at that moment, both ends included.

    use super::*;
    use crate::pki::{Ca, Issued, KeyType, LeafOptions, Validity};
    use crate::signer::{KeyKind, SignError};
    use time::macros::datetime;

    const NOT_BEFORE: OffsetDateTime = datetime!(2030-01-01 00:00:00 UTC);
    const NOT_AFTER: OffsetDateTime = datetime!(2030-02-01 00:00:00 UTC);

    fn two_leaves() -> (Issued, Issued) {
        let ca = Ca::new_root(
            "pre-flight test root",
            KeyType::P256,
            Validity::new(
                datetime!(2029-01-01 00:00:00 UTC),
                datetime!(2031-01-01 00:00:00 UTC),
            ),
        )
        .unwrap();
        let options = LeafOptions::new(Validity::new(NOT_BEFORE, NOT_AFTER));
        let a = ca.issue_leaf("a", KeyType::P256, options.clone()).unwrap();
        let b = ca.issue_leaf("b", KeyType::P256, options).unwrap();
        (a, b)
    }

    fn key_of(leaf: &Issued) -> file::FileKey {
        file::FileKey::from_pkcs8(leaf.key.pkcs8_der(), "file key.pem").unwrap()
    }

    fn identity(cert: &Issued, signer: Arc<dyn Signer>) -> Identity {
        Identity {
            certificate: Certificate::from_der(&cert.cert_der).unwrap(),
            chain: Vec::new(),
            signer,
        }
    }

    /// A store that cannot export its public key (as some tokens), so the check must sign a
    /// probe and verify it.
    #[derive(Debug)]
    struct NoPublicKey(file::FileKey);

    impl Signer for NoPublicKey {
        fn key_kind(&self) -> KeyKind {
            self.0.key_kind()
        }
        fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, SignError> {
            self.0.sign(message, digest)
        }
        fn public_key(&self) -> Option<Vec<u8>> {
            None
        }
        fn source(&self) -> String {
            self.0.source()
        }
    }

    #[test]
    fn the_certificate_is_accepted_from_not_before_to_not_after_inclusive() {
        let (a, _) = two_leaves();
        let id = identity(&a, Arc::new(key_of(&a)));
        let second = time::Duration::SECOND;
        id.check("cert.pem", NOT_BEFORE).unwrap();
        id.check("cert.pem", NOT_AFTER).unwrap();
        match id.check("cert.pem", NOT_BEFORE - second) {
            Err(IdentityError::NotYetValid { not_before, .. }) => {
                assert_eq!(not_before, "2030-01-01T00:00:00Z");
            }
            other => panic!("{other:?}"),
        }
        match id.check("cert.pem", NOT_AFTER + second) {
            Err(IdentityError::Expired { not_after, .. }) => {
                assert_eq!(not_after, "2030-02-01T00:00:00Z");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (a, b) = two_leaves();
        let now = NOT_BEFORE + time::Duration::DAY;
        match identity(&a, Arc::new(key_of(&b))).check("cert.pem", now) {
            Err(IdentityError::KeyMismatch { key, .. }) => assert_eq!(key, "file key.pem"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_a_public_key_a_probe_signature_decides() {
        let (a, b) = two_leaves();
        let now = NOT_BEFORE + time::Duration::DAY;
        identity(&a, Arc::new(NoPublicKey(key_of(&a))))
            .check("cert.pem", now)
            .unwrap();
        assert!(matches!(
            identity(&a, Arc::new(NoPublicKey(key_of(&b)))).check("cert.pem", now),
            Err(IdentityError::KeyMismatch { .. })
        ));
    }
}
