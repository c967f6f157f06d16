//! TLS for the CreateSession client: rustls on aws-lc-rs (the one crypto backend), trusting
//! the system roots plus `AWS_CA_BUNDLE` and `--ca-bundle`, or nothing at all with
//! `--no-verify-ssl` (which warns on stderr).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::SessionError;
use crate::config::{ConfigError, EndpointSettings};

/// Builds the rustls client configuration for `endpoint`.
pub fn client_config(endpoint: &EndpointSettings) -> Result<rustls::ClientConfig, SessionError> {
    let builder = builder()?;
    if endpoint.no_verify_ssl {
        eprintln!(
            "warning: --no-verify-ssl: the endpoint's TLS certificate is not verified; anyone on the network path can read the credentials"
        );
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A malformed system certificate is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    for (flag, path) in &endpoint.ca_bundles {
        let bundle_error = |detail: String| {
            SessionError::Config(ConfigError::CaBundle {
                flag,
                path: path.clone(),
                detail,
            })
        };
        // A bundle of every public CA is a few hundred KiB; the identity cap (1 MiB) fits it.
        let data = crate::files::read_regular(path.as_ref(), crate::files::IDENTITY_CAP)
            .map_err(|e| bundle_error(e.to_string()))?;
        let certs = crate::identity::parse_certificates(&data).map_err(bundle_error)?;
        for cert in certs {
            roots
                .add(CertificateDer::from(cert.der().to_vec()))
                .map_err(|e| bundle_error(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(SessionError::Tls(
            "no trusted CA certificates: install the system CA bundle (ca-certificates) or set AWS_CA_BUNDLE".into(),
        ));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn builder()
-> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, SessionError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SessionError::Tls(e.to_string()))
}

/// For a plain-http (loopback) endpoint: no TLS happens, so no trust roots are loaded.
/// Given to reqwest all the same, so it never builds a platform verifier of its own (which
/// fails where there are no system certificates, as in an empty container).
pub fn plain_http_config() -> Result<rustls::ClientConfig, SessionError> {
    Ok(builder()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// Accepts any server certificate: only behind `--no-verify-ssl`.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
