//! Identities: the certificate, its chain and the key that signs for it, loaded from the
//! places the flags name and checked before any request leaves the machine.
//!
//! Loading keeps to the Go helper's rules (`--certificate` PEM or DER, `--private-key`, or a
//! PKCS#12 file in `--certificate` alone) and adds the pre-flight checks it lacks: the key
//! must match the certificate, and the certificate must be inside its validity window.

pub mod cert;
pub mod file;
pub mod password;
pub mod pem;
pub mod pkcs12;

use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;
use time::OffsetDateTime;

pub use cert::Certificate;
use file::{FileKey, KeyProblem};
use password::Passwords;

use crate::signer::{Digest, Signer};

/// What the flags say about where the identity lives.
#[derive(Default)]
pub struct IdentitySpec {
    /// `--certificate`: a PEM or DER certificate, or a PKCS#12 bundle.
    pub certificate: Option<String>,
    /// `--private-key`.
    pub private_key: Option<String>,
    /// `--intermediates`: a PEM bundle sent as `X-Amz-X509-Chain`.
    pub intermediates: Option<String>,
    /// `--pkcs8-password`.
    pub pkcs8_password: Option<SecretString>,
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
    #[error("cannot read {flag} file {path}: {source}")]
    Read {
        flag: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag} file {path} is not a certificate: {detail}")]
    NotACertificate {
        flag: &'static str,
        path: String,
        detail: String,
    },
    #[error("--private-key file {path} holds a certificate, not a private key")]
    CertificateGivenAsKey { path: String },
    #[error("--private-key file {path} is not a private key: {detail}")]
    NotAKey { path: String, detail: String },
    #[error("--private-key file {path} is encrypted and no password was given")]
    PasswordNeeded { path: String },
    #[error("the password does not decrypt {path}")]
    WrongPassword { path: String },
    #[error("--private-key file {path} uses OpenSSL's legacy PEM encryption")]
    LegacyEncryption { path: String },
    #[error("--private-key file {path} is a TPM key, and TPM support is not built yet")]
    TpmKey { path: String },
    #[error("{what} in {path} is not supported")]
    UnsupportedKey { path: String, what: String },
    #[error("--certificate file {path} is PKCS#12 but {detail}")]
    Pkcs12 { path: String, detail: String },
    #[error(
        "--certificate file {path} is PKCS#12, which carries its own key and chain, but {flag} was also given"
    )]
    Pkcs12Conflict { path: String, flag: &'static str },
    #[error("--certificate file {path} is not PKCS#12, so --private-key is required")]
    MissingPrivateKey { path: String },
    #[error("the private key in {key} does not belong to the certificate in {certificate}")]
    KeyMismatch { key: String, certificate: String },
    #[error("certificate {path} expired at {not_after}")]
    Expired { path: String, not_after: String },
    #[error("certificate {path} is not valid until {not_before}")]
    NotYetValid { path: String, not_before: String },
    #[error("certificate {path} uses a {what}, which IAM Roles Anywhere does not accept")]
    UnsupportedCertificateKey { path: String, what: String },
}

impl IdentityError {
    pub fn hint(&self) -> Option<String> {
        use IdentityError::*;
        Some(match self {
            NoCertificate => "pass --certificate PATH (and --private-key PATH unless it is a PKCS#12 file)".into(),
            Read { .. } => "check the path and that this user may read it".into(),
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
            TpmKey { .. } => "use a file key or a PKCS#11 token until TPM support lands".into(),
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
        })
    }
}

impl Identity {
    /// Loads the certificate, chain and key named by `spec`. Nothing is checked against the
    /// clock here; call [`Identity::check`] for that.
    pub fn load(spec: &IdentitySpec) -> Result<Self, IdentityError> {
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
                    path: cert_path.to_string(),
                })?;
        let mut certs = certs.into_iter();
        let certificate = certs.next().ok_or_else(|| IdentityError::NotACertificate {
            flag: "--certificate",
            path: cert_path.to_string(),
            detail: "no certificate in it".into(),
        })?;
        // A full-chain file carries the intermediates after the leaf.
        let mut chain: Vec<Certificate> = certs.collect();
        if let Some(path) = &spec.intermediates {
            chain = parse_certificates(&read("--intermediates", path)?).map_err(|detail| {
                IdentityError::NotACertificate {
                    flag: "--intermediates",
                    path: path.clone(),
                    detail,
                }
            })?;
        }
        let key_passwords = Passwords::new(spec.pkcs8_password.clone(), key_path);
        let key = load_key_with(key_path, &key_passwords)?;
        Ok(Identity {
            certificate,
            chain,
            signer: Arc::new(key),
        })
    }

    fn from_pkcs12(
        spec: &IdentitySpec,
        path: &str,
        data: &[u8],
        passwords: &Passwords,
        cert_detail: String,
    ) -> Result<Self, IdentityError> {
        let bundle = match pkcs12::open(data, path, passwords, passwords.is_explicit()) {
            Ok(bundle) => bundle,
            Err(pkcs12::Pkcs12Problem::NotPkcs12) => {
                return Err(IdentityError::NotACertificate {
                    flag: "--certificate",
                    path: path.to_string(),
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
                    path: path.to_string(),
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
                    path: path.to_string(),
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
                path: cert_path.to_string(),
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
                certificate: cert_path.to_string(),
            });
        }
        if now > cert.not_after() {
            return Err(IdentityError::Expired {
                path: cert_path.to_string(),
                not_after: rfc3339(cert.not_after()),
            });
        }
        if now < cert.not_before() {
            return Err(IdentityError::NotYetValid {
                path: cert_path.to_string(),
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

fn read(flag: &'static str, path: &str) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(Path::new(path)).map_err(|source| IdentityError::Read {
        flag,
        path: path.to_string(),
        source,
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

/// Loads only a private key file (for `sign-string`).
pub fn load_key(path: &str, password: Option<SecretString>) -> Result<FileKey, IdentityError> {
    load_key_with(path, &Passwords::new(password, path))
}

fn load_key_with(path: &str, passwords: &Passwords) -> Result<FileKey, IdentityError> {
    let data = zeroize::Zeroizing::new(read("--private-key", path)?);
    FileKey::from_file_bytes(&data, path, passwords).map_err(|problem| {
        let path = path.to_string();
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
