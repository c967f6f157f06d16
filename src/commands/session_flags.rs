//! From the credential flags to the session layer's inputs: the validated [`SessionSpec`]
//! (checked before any file is read), the loaded [`PreparedSession`] and the refresh policy.
//! `credential-process`, `serve`, `update` and `demo` share these.

use crate::agent::cache::RefreshPolicy;
use crate::cli::CredentialArgs;
use crate::clock::Clock;
use crate::config::{EndpointSettings, RawSession, SessionSettings};
use crate::endpoint::{self, EndpointChoice};
use crate::error::Error;
use crate::session::{PreparedSession, SessionSpec};

/// The session flags as given, before validation.
pub fn raw_session(args: &CredentialArgs) -> RawSession<'_> {
    RawSession {
        trust_anchor_arn: args.trust_anchor_arn.as_deref(),
        profile_arn: args.profile_arn.as_deref(),
        role_arn: args.role_arn.as_deref(),
        region: args.region.as_deref(),
        duration_seconds: args.session_duration,
        role_session_name: args.role_session_name.as_deref(),
    }
}

/// The session and endpoint settings of the flags, validated; no file is read.
pub fn spec(args: &CredentialArgs) -> Result<SessionSpec, Error> {
    super::refuse_unbuilt_features(&args.identity)?;
    let settings = SessionSettings::from_raw(&raw_session(args))?;
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
    let choice = endpoint_choice(args, &settings)?;
    tracing::debug!(endpoint = %choice.url, why = %choice.why, "endpoint chosen");
    let endpoint = EndpointSettings {
        base_url: EndpointSettings::validate(&choice.from, &choice.url)?,
        no_verify_ssl: args.no_verify_ssl,
        with_proxy: args.with_proxy,
        ca_bundles,
    };
    Ok(SessionSpec {
        identity: args.identity.spec(),
        settings,
        endpoint,
    })
}

/// The CreateSession endpoint for `settings` and why (`--endpoint`, a variable,
/// `~/.aws/config`, the partition's default), as the SDKs choose it.
pub fn endpoint_choice(
    args: &CredentialArgs,
    settings: &SessionSettings,
) -> Result<EndpointChoice, Error> {
    let inputs = endpoint::Inputs::gather(args.endpoint.as_deref());
    Ok(endpoint::choose_endpoint(
        &inputs,
        &settings.trust_anchor_arn.partition,
        &settings.region,
    )?)
}

/// Validates the flags, loads the identity and runs the pre-flight checks. Sends nothing.
pub fn prepare(args: &CredentialArgs, clock: &dyn Clock) -> Result<PreparedSession, Error> {
    Ok(PreparedSession::load(&spec(args)?, clock)?)
}

/// The refresh policy of `--refresh-before`.
pub fn policy(args: &CredentialArgs) -> RefreshPolicy {
    RefreshPolicy {
        refresh_before: args.refresh_before,
        ..RefreshPolicy::default()
    }
}
