//! `read-certificate-data`: the certificate facts an SDK needs to build a string to sign,
//! as the Go helper's JSON.

use serde::Serialize;

use crate::cli::{IdentityArgs, ReadCertificateArgs};
use crate::config::ConfigError;
use crate::error::Error;
use crate::identity::IdentityError;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateData {
    key_type: &'static str,
    certificate_data: String,
    serial_number: String,
    supported_algorithms: Vec<String>,
}

pub fn run(args: &ReadCertificateArgs) -> Result<(), Error> {
    super::refuse_unbuilt_features(&IdentityArgs {
        cert: args.cert.clone(),
        ..IdentityArgs::default()
    })?;
    let path = args
        .cert
        .certificate
        .as_deref()
        .ok_or(ConfigError::Missing {
            flag: "--certificate",
        })?;
    #[cfg(feature = "pkcs11")]
    if crate::identity::pkcs11::Pkcs11Uri::is_uri(path) {
        return list_token_certificates(path, args.cert.pkcs11_lib.as_deref());
    }
    let data = crate::files::read_regular(std::path::Path::new(path), crate::files::IDENTITY_CAP)
        .map_err(|e| IdentityError::Read {
        flag: "--certificate",
        path: path.to_string(),
        source: e.into_io(),
    })?;
    let certs = crate::identity::parse_certificates(&data).map_err(|detail| {
        IdentityError::NotACertificate {
            flag: "--certificate",
            path: path.to_string(),
            detail,
        }
    })?;
    let Some(cert) = certs.first() else {
        return Err(IdentityError::NoCertificate.into());
    };
    let kind = cert.key_kind().ok();
    let key_type = kind.map(|k| k.family()).unwrap_or("");
    // ML-DSA signs the message itself: there is no digest to choose, so the parameter set
    // (`ML-DSA-65`) is both the key type and the one algorithm.
    let supported_algorithms = if kind.is_some_and(|k| k.is_ml_dsa()) {
        vec![key_type.to_string()]
    } else {
        ["SHA256", "SHA384", "SHA512"]
            .iter()
            .map(|d| format!("{key_type}{d}"))
            .collect()
    };
    let out = CertificateData {
        key_type,
        certificate_data: cert.to_base64(),
        serial_number: cert.serial_decimal(),
        supported_algorithms,
    };
    let json = serde_json::to_string(&out).unwrap_or_default();
    print!("{json}");
    Ok(())
}

/// `--certificate pkcs11:...`: the Go helper's "Matching identities" list, one line per
/// certificate (SHA-1 fingerprint and subject) with a URI that selects it.
#[cfg(feature = "pkcs11")]
fn list_token_certificates(uri: &str, lib: Option<&str>) -> Result<(), Error> {
    let found =
        crate::identity::pkcs11::list_certificates(uri, lib).map_err(IdentityError::from)?;
    if found.is_empty() {
        println!("No matching identities");
        return Ok(());
    }
    println!("Matching identities");
    for (i, (cert, cert_uri)) in found.iter().enumerate() {
        println!(
            "{}) {} \"{}\"",
            i + 1,
            cert.sha1_fingerprint(),
            cert.subject()
        );
        println!("\tURI: {}", crate::identity::pkcs11::redact(cert_uri));
    }
    Ok(())
}
