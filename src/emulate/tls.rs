//! HTTPS for the emulator: a rustls server configuration from PEM files, or a throwaway CA
//! and server certificate made with rcgen for the loopback names. The CA, not a self-signed
//! server certificate, is what clients are given to trust, because WebPKI verifiers refuse a
//! certificate that is both the anchor and the end entity in some configurations.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::EmulateError;

/// Server certificate and key, built into a rustls configuration (HTTP/1.1 via ALPN).
fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, EmulateError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EmulateError::Tls {
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| EmulateError::Tls {
            reason: format!("the certificate and key do not form a usable pair: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS from `--tls-certificate` (PEM chain, server certificate first) and `--tls-key`.
pub fn from_files(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, EmulateError> {
    let cert_err = |reason: String| EmulateError::TlsFile {
        flag: "--tls-certificate",
        path: cert_path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(cert_path).map_err(|source| EmulateError::Read {
        flag: "--tls-certificate",
        path: cert_path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(cert_err("no PEM CERTIFICATE block".to_string()));
    }
    let key_pem = std::fs::read(key_path).map_err(|source| EmulateError::Read {
        flag: "--tls-key",
        path: key_path.to_path_buf(),
        source,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| EmulateError::TlsFile {
        flag: "--tls-key",
        path: key_path.to_path_buf(),
        reason: format!("no usable PEM private key: {e}"),
    })?;
    server_config(certs, key)
}

/// A throwaway CA and a server certificate for `localhost`, `127.0.0.1`, `::1` (and `bind`
/// when it is another loopback address). Returns the configuration and the CA as PEM.
pub fn generate(bind: IpAddr) -> Result<(Arc<rustls::ServerConfig>, String), EmulateError> {
    let generated = generate_kept(bind)?;
    Ok((generated.config, generated.ca_pem))
}

/// What [`generate_kept`] made: the configuration and, as PEM, what a later `emulate
/// --tls-certificate --tls-key` needs to serve with the same CA (`demo --keep-in` keeps them).
pub struct GeneratedTls {
    pub config: Arc<rustls::ServerConfig>,
    /// The throwaway CA certificate, for clients to trust.
    pub ca_pem: String,
    /// The server certificate followed by the CA.
    pub chain_pem: String,
    /// The server certificate's private key (PKCS#8). Throwaway, but still a key: not Debug.
    pub key_pem: zeroize::Zeroizing<String>,
}

/// [`generate`], keeping the server certificate and key as PEM.
pub fn generate_kept(bind: IpAddr) -> Result<GeneratedTls, EmulateError> {
    let tls_err = |e: rcgen::Error| EmulateError::Tls {
        reason: format!("cannot generate a certificate: {e}"),
    };
    let ca_key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "rolesanywhere-agent emulate throwaway CA",
    );
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !names.contains(&bind.to_string()) {
        names.push(bind.to_string());
    }
    let server_key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let mut params = rcgen::CertificateParams::new(names).map_err(tls_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rolesanywhere-agent emulate");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params.signed_by(&server_key, &issuer).map_err(tls_err)?;

    let key = PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let certs = vec![server_cert.der().clone(), ca_cert.der().clone()];
    Ok(GeneratedTls {
        config: server_config(certs, key)?,
        chain_pem: format!("{}{}", server_cert.pem(), ca_cert.pem()),
        ca_pem: ca_cert.pem(),
        key_pem: zeroize::Zeroizing::new(server_key.serialize_pem()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tls_yields_a_ca_pem() {
        let (config, ca_pem) = generate("127.0.0.1".parse().unwrap()).unwrap();
        assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn kept_tls_material_serves_again_with_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let kept = generate_kept("127.0.0.1".parse().unwrap()).unwrap();
        let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
        std::fs::write(&cert, &kept.chain_pem).unwrap();
        std::fs::write(&key, kept.key_pem.as_bytes()).unwrap();
        assert!(kept.chain_pem.ends_with(&kept.ca_pem));
        from_files(&cert, &key).unwrap();
    }

    #[test]
    fn missing_tls_files_name_the_flag() {
        let err = from_files(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("--tls-certificate"), "{err}");
    }
}
