//! `credential-process`: one CreateSession, printed as `credential_process` JSON.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::agent::cache::RefreshPolicy;
use crate::agent::client::{self, AgentAnswer};
use crate::cli::{CredentialArgs, CredentialProcessArgs};
use crate::clock::Clock;
use crate::config::{EndpointSettings, RawSession, SessionSettings};
use crate::credentials::Credentials;
use crate::disk_cache::{CacheKey, DiskCache};
use crate::error::Error;
use crate::identity::{Certificate, Identity, IdentitySpec};
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
        let (settings, endpoint) = Self::settings(args)?;
        Self::with_settings(args, settings, endpoint, clock)
    }

    /// The session and endpoint settings of the flags, validated; no file is read.
    pub fn settings(args: &CredentialArgs) -> Result<(SessionSettings, EndpointSettings), Error> {
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
        Ok((settings, endpoint))
    }

    /// Loads the identity of the flags and runs the pre-flight checks.
    fn with_settings(
        args: &CredentialArgs,
        settings: SessionSettings,
        endpoint: EndpointSettings,
        clock: &dyn Clock,
    ) -> Result<Self, Error> {
        let spec = identity_spec(args);
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

impl PreparedSession {
    /// Names this identity, role and session for the disk cache and the agent socket.
    pub fn cache_key(&self) -> CacheKey {
        cache_key(&self.identity.certificate, &self.settings, &self.endpoint)
    }

    /// The refresh policy of `--refresh-before`.
    pub fn policy(args: &CredentialArgs) -> RefreshPolicy {
        RefreshPolicy {
            refresh_before: args.refresh_before,
            ..RefreshPolicy::default()
        }
    }
}

/// The identity flags, as the loaders take them.
fn identity_spec(args: &CredentialArgs) -> IdentitySpec {
    IdentitySpec {
        certificate: args.certificate.clone(),
        private_key: args.private_key.clone(),
        intermediates: args.intermediates.clone(),
        pkcs8_password: args.pkcs8_password.clone(),
        pkcs11_lib: args.pkcs11_lib.clone(),
        reuse_pin: args.reuse_pin,
        cert_selector: args.cert_selector.clone(),
        use_latest_expiring_certificate: args.use_latest_expiring_certificate,
        tpm_key_password: args.tpm_key_password.clone(),
        no_tpm_key_password: args.no_tpm_key_password,
    }
}

/// Names an identity, role and session for the disk cache and the agent socket: a hash of
/// the certificate fingerprint, the ARNs, region, endpoint, duration and session name. No
/// secret goes into it.
fn cache_key(
    certificate: &Certificate,
    settings: &SessionSettings,
    endpoint: &EndpointSettings,
) -> CacheKey {
    CacheKey::new(
        &certificate.sha256_fingerprint(),
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
) -> Result<Credentials, Error> {
    let client = SessionClient::new(&prepared.endpoint, clock)?;
    Ok(client
        .create_session(&prepared.identity, &prepared.settings)
        .await?)
}

/// Answers from a running agent, else from the disk cache while it is fresh, else with a
/// new CreateSession (stored in the cache for the next call). The cached answers need only
/// the certificate, so the private key is loaded (and its PIN or password asked for) only
/// when a CreateSession is due.
pub async fn run(args: &CredentialProcessArgs, clock: Arc<dyn Clock>) -> Result<(), Error> {
    let (settings, endpoint) = PreparedSession::settings(&args.creds)?;
    let cache = if args.no_cache {
        None
    } else {
        DiskCache::open_default()
    };
    let lifetime = Duration::from_secs(u64::from(settings.duration_seconds));
    let window = PreparedSession::policy(&args.creds).window(lifetime);
    let now = clock.now();

    // A certificate outside its validity window takes the full path, which says so.
    let peeked = Identity::peek_certificate(&identity_spec(&args.creds))
        .filter(|cert| cert.not_before() <= now && now <= cert.not_after());
    let asked = match &peeked {
        Some(cert) => {
            let key = cache_key(cert, &settings, &endpoint);
            if let Some(json) = cached(args, &key, cache.as_ref(), now, window) {
                return print(&json);
            }
            Some(key)
        }
        None => None,
    };

    let prepared = PreparedSession::with_settings(&args.creds, settings, endpoint, clock.as_ref())?;
    let key = prepared.cache_key();
    // Without the peek (PKCS#11, PKCS#12, a certificate out of its validity), ask now.
    if asked.as_ref() != Some(&key)
        && let Some(json) = cached(args, &key, cache.as_ref(), now, window)
    {
        return print(&json);
    }
    let credentials = fetch_credentials(&prepared, clock).await?;
    if let Some(cache) = &cache
        && let Err(e) = cache.store(&key, &credentials)
    {
        // The credentials are good; a cache that cannot be written only costs speed.
        tracing::warn!(error = %e, "cannot write the credentials cache");
    }
    print(&credentials.to_process_json())
}

/// Credentials for `key` from a running agent, else from the disk cache while they are
/// fresh (more than `window` left).
fn cached(
    args: &CredentialProcessArgs,
    key: &CacheKey,
    cache: Option<&DiskCache>,
    now: OffsetDateTime,
    window: Duration,
) -> Option<Zeroizing<String>> {
    if let Some(socket) = args.socket.clone().or_else(client::default_socket_path) {
        match client::ask(&socket, key.as_str(), now) {
            Some(AgentAnswer::Credentials(json)) => {
                tracing::debug!(socket = %socket.display(), "credentials from the agent");
                return Some(json);
            }
            Some(AgentAnswer::Declined(status)) => {
                tracing::debug!(socket = %socket.display(), status, "the agent declined; going on without it");
            }
            None => {}
        }
    }
    let creds = cache?.load(key, now)?;
    if creds.remaining(now) > window {
        tracing::debug!("credentials from the disk cache");
        return Some(creds.to_process_json());
    }
    None
}

/// Like the Go helper: the JSON alone on stdout, no trailing newline.
fn print(json: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(json.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))
}
