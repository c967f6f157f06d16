//! Session preparation: from validated settings and the identity's sources to a
//! [`PreparedSession`] whose key matches its certificate, and the one CreateSession call
//! ([`fetch_credentials`]) every command and the agent make with it. Nothing here knows the
//! command line: the commands turn flags into a [`SessionSpec`] first.

use std::sync::Arc;

use super::{SessionClient, SessionError, material};
use crate::clock::Clock;
use crate::config::{EndpointSettings, SessionSettings};
use crate::credentials::Credentials;
use crate::disk_cache::CacheKey;
use crate::identity::{Certificate, Identity, IdentityError, IdentitySpec};

/// What a session is prepared from: where the identity lives and the validated session and
/// endpoint settings. Kept by the agent to load the identity again after a renewal.
#[derive(Clone)]
pub struct SessionSpec {
    pub identity: IdentitySpec,
    pub settings: SessionSettings,
    pub endpoint: EndpointSettings,
}

/// Everything needed to call CreateSession, validated.
pub struct PreparedSession {
    pub identity: Identity,
    pub settings: SessionSettings,
    pub endpoint: EndpointSettings,
    /// The key's and intermediates' sources and bytes as loaded (see [`material`]).
    key_material: String,
}

impl PreparedSession {
    /// Loads the identity of `spec` and runs the pre-flight checks. Sends nothing.
    pub fn load(spec: &SessionSpec, clock: &dyn Clock) -> Result<Self, IdentityError> {
        let identity = Identity::load(&spec.identity)?;
        // Read again right after loading; should that fail, nothing can match this key.
        let key_material =
            material::fingerprint(&spec.identity).unwrap_or_else(|| "unreadable".to_string());
        identity.check(
            spec.identity.certificate.as_deref().unwrap_or_default(),
            clock.now(),
        )?;
        tracing::debug!(
            certificate_serial = %identity.certificate.serial_decimal(),
            key = %identity.signer.key_kind(),
            chain = identity.chain.len(),
            endpoint = %spec.endpoint.base_url,
            region = %spec.settings.region,
            "pre-flight checks passed"
        );
        Ok(PreparedSession {
            identity,
            settings: spec.settings.clone(),
            endpoint: spec.endpoint.clone(),
            key_material,
        })
    }

    /// Names this identity, role and session for the disk cache and the agent socket.
    pub fn cache_key(&self) -> CacheKey {
        cache_key(
            &self.identity.certificate,
            &self.key_material,
            &self.settings,
            &self.endpoint,
        )
    }
}

/// The fingerprint of the key and intermediates named by `spec`, read without opening a key
/// store, or `None` when one cannot be read cheaply (the rules are in `session/material.rs`).
pub fn key_material(spec: &IdentitySpec) -> Option<String> {
    material::fingerprint(spec)
}

/// Names an identity, role and session for the disk cache and the agent socket: a hash of
/// the certificate fingerprint, the key material's fingerprint, the ARNs, region, endpoint,
/// duration and session name. No secret can be recovered from it.
pub fn cache_key(
    certificate: &Certificate,
    key_material: &str,
    settings: &SessionSettings,
    endpoint: &EndpointSettings,
) -> CacheKey {
    CacheKey::new(
        &certificate.sha256_fingerprint(),
        key_material,
        settings.trust_anchor_arn.as_str(),
        settings.profile_arn.as_str(),
        settings.role_arn.as_str(),
        &settings.region,
        &endpoint.base_url,
        settings.duration_seconds,
        settings.role_session_name.as_deref(),
    )
}

/// Calls CreateSession once (with retries) for a prepared session.
pub async fn fetch_credentials(
    prepared: &PreparedSession,
    clock: Arc<dyn Clock>,
) -> Result<Credentials, SessionError> {
    let client = SessionClient::new(&prepared.endpoint, clock)?;
    client
        .create_session(&prepared.identity, &prepared.settings)
        .await
}
