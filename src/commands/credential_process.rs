//! `credential-process`: one CreateSession, printed as `credential_process` JSON.

use std::io::Write as _;
use std::sync::Arc;

use secrecy::SecretString;

use crate::cli::CredentialArgs;
use crate::clock::Clock;
use crate::config::{EndpointSettings, RawSession, SessionSettings};
use crate::credentials::Credentials;
use crate::error::Error;
use crate::identity::{Identity, IdentitySpec};
use crate::session::SessionClient;

/// Everything needed to call CreateSession, validated.
pub struct PreparedSession {
    pub identity: Identity,
    pub settings: SessionSettings,
    pub endpoint: EndpointSettings,
}

impl PreparedSession {
    /// Validates the flags, loads the identity and runs the pre-flight checks. Sends nothing.
    pub fn from_args(args: &CredentialArgs, clock: &dyn Clock) -> Result<Self, Error> {
        super::refuse_unbuilt_features(args)?;
        let settings = SessionSettings::from_raw(&RawSession {
            trust_anchor_arn: args.trust_anchor_arn.as_deref(),
            profile_arn: args.profile_arn.as_deref(),
            role_arn: args.role_arn.as_deref(),
            region: args.region.as_deref(),
            duration_seconds: args.session_duration,
            role_session_name: args.role_session_name.as_deref(),
        })?;
        let mut ca_bundles = Vec::new();
        if let Some(path) = std::env::var("AWS_CA_BUNDLE")
            .ok()
            .filter(|p| !p.is_empty())
        {
            ca_bundles.push(("AWS_CA_BUNDLE", path));
        }
        if let Some(path) = &args.ca_bundle {
            ca_bundles.push(("--ca-bundle", path.clone()));
        }
        let endpoint = EndpointSettings {
            base_url: EndpointSettings::resolve(args.endpoint.as_deref(), &settings)?,
            no_verify_ssl: args.no_verify_ssl,
            with_proxy: args.with_proxy,
            ca_bundles,
        };
        let spec = IdentitySpec {
            certificate: args.certificate.clone(),
            private_key: args.private_key.clone(),
            intermediates: args.intermediates.clone(),
            pkcs8_password: args.pkcs8_password.clone().map(SecretString::from),
        };
        let identity = Identity::load(&spec)?;
        identity.check(args.certificate.as_deref().unwrap_or_default(), clock.now())?;
        tracing::debug!(
            certificate_serial = %identity.certificate.serial_decimal(),
            key = %identity.signer.key_kind(),
            chain = identity.chain.len(),
            endpoint = %endpoint.base_url,
            region = %settings.region,
            "pre-flight checks passed"
        );
        Ok(PreparedSession {
            identity,
            settings,
            endpoint,
        })
    }
}

/// Calls CreateSession once (with retries) for a prepared session.
pub async fn fetch_credentials(
    prepared: &PreparedSession,
    clock: Arc<dyn Clock>,
) -> Result<Credentials, Error> {
    let client = SessionClient::new(&prepared.endpoint, clock)?;
    Ok(client
        .create_session(&prepared.identity, &prepared.settings)
        .await?)
}

pub async fn run(args: &CredentialArgs, clock: Arc<dyn Clock>) -> Result<(), Error> {
    let prepared = PreparedSession::from_args(args, clock.as_ref())?;
    let credentials = fetch_credentials(&prepared, clock).await?;
    let json = credentials.to_process_json();
    // Like the Go helper: the JSON alone, no trailing newline.
    let mut out = std::io::stdout().lock();
    out.write_all(json.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))
}
