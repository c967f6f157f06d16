//! The CreateSession client: builds the request (`POST /sessions`, the three ARNs in the
//! query and `{"durationSeconds": N}` as the body, the shape AWS's Go helper sends; see the
//! Roles Anywhere user guide, authentication-create-session.html), signs it with the
//! identity's key, sends it over rustls, retries what the service says can be retried, and
//! turns the answer into [`Credentials`]. The agent calls it from a background task; it
//! holds no state between calls but the HTTP connection pool.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::config::{EndpointSettings, SessionSettings};
use crate::credentials::Credentials;
use crate::identity::Identity;
use crate::metrics::SessionOutcome;
use crate::signer::{Digest, SignError};
use crate::signing::UnsignedRequest;

mod material;
pub mod prepare;
pub mod tls;

// Fuzz targets only (fuzz/); not an API.
#[doc(hidden)]
pub mod fuzzing;
pub use prepare::{PreparedSession, SessionSpec, fetch_credentials};

/// Attempts per CreateSession call (the first try included).
pub const MAX_ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Largest CreateSession answer read: a real one is a few KiB. Anything past this is not
/// the service, and reading it whole would let an endpoint balloon our memory.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How far past the requested duration an `Expiration` may lie before it is distrusted (the
/// service's and our clocks may differ by up to the 5 minutes it accepts as skew).
pub const EXPIRATION_SLACK: time::Duration = time::Duration::minutes(5);
/// Longest a signature may take (a PKCS#11 token, a TPM or a keyring that stopped answering)
/// before the attempt fails.
pub const SIGN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("CreateSession failed: {error_type} ({status}): {message}")]
    Service {
        error_type: String,
        status: u16,
        message: String,
        /// This host's clock when the request was signed, shown in the clock hint.
        local_time: OffsetDateTime,
    },
    #[error("cannot reach {endpoint}: {detail}")]
    Transport { endpoint: String, detail: String },
    #[error("CreateSession answered something unexpected: {0}")]
    BadResponse(String),
    #[error("the answer of {endpoint} is larger than {limit} bytes; stopped reading it")]
    TooLarge { endpoint: String, limit: usize },
    #[error("cannot sign the request")]
    Sign(#[from] SignError),
    #[error("the signature by {key} did not finish within {after:?}")]
    SignTimeout { key: String, after: Duration },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("the endpoint {url} is not a usable URL: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl SessionError {
    /// Configuration problems (bad CA bundle) exit 2 like other usage errors.
    pub fn is_configuration(&self) -> bool {
        matches!(self, SessionError::Config(_) | SessionError::BadUrl { .. })
    }

    /// A short name for the kind of failure, from a fixed set (the metrics label it with
    /// this): the service's error type when it is one the service documents, else what
    /// went wrong on this side. Never the service's own words, which could be anything.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionError::Service {
                error_type, status, ..
            } => match error_type.as_str() {
                "AccessDeniedException" => "AccessDeniedException",
                "ValidationException" => "ValidationException",
                "ResourceNotFoundException" => "ResourceNotFoundException",
                "ThrottlingException" => "ThrottlingException",
                "InternalServerException" => "InternalServerException",
                _ if *status >= 500 => "server_error",
                _ => "other_service_error",
            },
            SessionError::Transport { .. } => "transport",
            SessionError::BadResponse(_) => "bad_response",
            SessionError::TooLarge { .. } => "too_large",
            SessionError::Sign(_) => "signing",
            SessionError::SignTimeout { .. } => "signing_timeout",
            SessionError::Tls(_) => "tls",
            SessionError::Client(_) => "client",
            SessionError::BadUrl { .. } => "configuration",
            SessionError::Config(_) => "configuration",
        }
    }

    /// Whether another attempt may succeed.
    fn is_retryable(&self) -> bool {
        match self {
            SessionError::Service { status, .. } => *status == 429 || *status >= 500,
            SessionError::Transport { .. } => true,
            _ => false,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            SessionError::Service {
                error_type,
                status,
                message,
                local_time,
            } => service_hint(error_type, *status, message, *local_time),
            SessionError::Transport { .. } => Some(
                "check --endpoint/--region and the network; behind a proxy pass --with-proxy with HTTPS_PROXY set; for a private CA set AWS_CA_BUNDLE or --ca-bundle".into(),
            ),
            SessionError::TooLarge { .. } => Some(
                "a CreateSession answer is a few KiB: check --endpoint, it does not look like an IAM Roles Anywhere endpoint".into(),
            ),
            SessionError::SignTimeout { .. } => Some(
                "the key store does not answer: check that the token is inserted and unlocked, that the TPM (or its resource manager) responds, or that the keyring is unlocked".into(),
            ),
            SessionError::Config(e) => e.hint(),
            SessionError::BadUrl { .. } => {
                Some("pass --endpoint as a URL such as https://rolesanywhere.us-east-1.amazonaws.com".into())
            }
            _ => None,
        }
    }
}

/// Whether a service message blames the request's time: the signature not yet current or
/// expired, or the request time too skewed (the forms SigV4 services use).
fn is_clock_message(m: &str) -> bool {
    m.contains("signature") && (m.contains("not yet current") || m.contains("expired"))
        || m.contains("skew")
}

fn service_hint(
    error_type: &str,
    status: u16,
    message: &str,
    local_time: OffsetDateTime,
) -> Option<String> {
    let m = message.to_ascii_lowercase();
    Some(
        // Checked first: the service's clock message may also name the certificate.
        if is_clock_message(&m) {
            format!(
                "this host's clock read {} when signing; the service accepts at most 5 minutes of difference: check the system clock and NTP (timedatectl status, chronyc tracking) and retry",
                crate::credentials::format_expiration(local_time)
            )
        } else if m.contains("untrusted") || m.contains("trust anchor") {
            "the certificate does not chain to the trust anchor: check --trust-anchor-arn, and pass intermediate CAs with --intermediates".into()
        } else if m.contains("certificate")
            && (m.contains("expired") || m.contains("not yet valid"))
        {
            "renew the certificate, or check the system clock".into()
        } else if m.contains("scoped to a valid region") {
            // SigV4's answer to a request signed for another region than the endpoint's.
            "the request was signed for a region this endpoint does not serve: drop --region (it defaults to the trust anchor's region), or make --region and --endpoint name the trust anchor's region".into()
        } else if error_type == "AccessDeniedException" || status == 403 {
            "check that the role's trust policy lets rolesanywhere.amazonaws.com call sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity (with any conditions on the certificate's subject), that the profile lists --role-arn, and that the trust anchor and profile are enabled".into()
        } else if error_type == "ResourceNotFoundException" || status == 404 {
            "check --trust-anchor-arn and --profile-arn, and that --region matches them".into()
        } else if error_type == "ValidationException" {
            "check --session-duration against the profile's and role's maximum session duration, and --role-session-name".into()
        } else if status == 429 || error_type == "ThrottlingException" {
            "too many CreateSession calls (about 10 per second per account): let `serve` cache credentials for your processes".into()
        } else if status >= 500 {
            "the service failed; retry later".into()
        } else {
            return None;
        },
    )
}

/// Sends CreateSession requests to one endpoint.
pub struct SessionClient {
    http: reqwest::Client,
    base_url: String,
    host: String,
    clock: Arc<dyn Clock>,
    sign_timeout: Duration,
}

impl SessionClient {
    /// Builds the HTTP client: rustls on aws-lc-rs, the system roots plus any extra bundles,
    /// proxies only with `--with-proxy` (as the Go helper does).
    pub fn new(endpoint: &EndpointSettings, clock: Arc<dyn Clock>) -> Result<Self, SessionError> {
        // reqwest needs a process-wide provider even for plain http; ours is aws-lc-rs. An
        // error only means one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let url = reqwest::Url::parse(&endpoint.base_url).map_err(|e| SessionError::BadUrl {
            url: endpoint.base_url.clone(),
            detail: e.to_string(),
        })?;
        let host = host_header(&url);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("rolesanywhere-agent/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if !endpoint.with_proxy {
            builder = builder.no_proxy();
        }
        let tls = if url.scheme() == "https" {
            tls::client_config(endpoint)?
        } else {
            tls::plain_http_config()?
        };
        builder = builder.tls_backend_preconfigured(tls);
        let http = builder
            .build()
            .map_err(|e| SessionError::Client(e.to_string()))?;
        Ok(SessionClient {
            http,
            base_url: endpoint.base_url.clone(),
            host,
            clock,
            sign_timeout: SIGN_TIMEOUT,
        })
    }

    /// Replaces [`SIGN_TIMEOUT`] (tests use a short one).
    pub fn with_sign_timeout(mut self, timeout: Duration) -> Self {
        self.sign_timeout = timeout;
        self
    }

    /// Calls CreateSession, retrying throttling, 5xx and connection failures with
    /// exponential backoff and full jitter; each attempt is signed afresh.
    pub async fn create_session(
        &self,
        identity: &Identity,
        settings: &SessionSettings,
    ) -> Result<Credentials, SessionError> {
        let started = std::time::Instant::now();
        let result = self.create_session_with_retries(identity, settings).await;
        let outcome = match &result {
            Ok(_) => SessionOutcome::Ok,
            Err(e) => SessionOutcome::Error(e.kind()),
        };
        crate::metrics::global().create_session(outcome, started.elapsed());
        result
    }

    async fn create_session_with_retries(
        &self,
        identity: &Identity,
        settings: &SessionSettings,
    ) -> Result<Credentials, SessionError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(identity, settings).await {
                Ok(creds) => return Ok(creds),
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    let delay = backoff(attempt);
                    tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %e, "CreateSession attempt failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt(
        &self,
        identity: &Identity,
        settings: &SessionSettings,
    ) -> Result<Credentials, SessionError> {
        let request = build_request(&self.host, identity, settings);
        let now = self.clock.now();
        let algorithm = identity.signer.key_kind().algorithm();
        let prepared = request.prepare(algorithm, &settings.region, now);
        tracing::debug!(canonical_request = %prepared.canonical_request, "signing CreateSession");
        let signature = self
            .sign_off_runtime(identity, prepared.string_to_sign.into_bytes())
            .await?;
        let authorization = crate::signing::authorization(
            algorithm,
            &identity.certificate.serial_decimal(),
            &prepared.scope,
            &prepared.signed_headers,
            &signature,
        );
        let mut url = format!("{}/sessions", self.base_url);
        if !prepared.canonical_query.is_empty() {
            // The canonical encoding is also what goes on the wire (space as %20, never +).
            url.push('?');
            url.push_str(&prepared.canonical_query);
        }
        let mut req = self.http.post(&url);
        for (name, value) in &prepared.headers {
            req = req.header(*name, value);
        }
        let response = req
            .header("Authorization", authorization)
            .body(request.body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            // The header may carry a `:namespace` suffix.
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let body = self.read_capped(response).await?;
        if (200..300).contains(&status) {
            parse_success(&body, now, settings.duration_seconds)
        } else {
            Err(parse_failure(status, error_type, &body, now))
        }
    }

    /// Signs on the blocking pool: a PKCS#11 token, a TPM or a keyring may take seconds (or
    /// never answer), and the runtime thread also serves every endpoint. Bounded by
    /// [`SIGN_TIMEOUT`]; a signature still running then is abandoned to its thread.
    async fn sign_off_runtime(
        &self,
        identity: &Identity,
        string_to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, SessionError> {
        let signer = identity.signer.clone();
        let task =
            tokio::task::spawn_blocking(move || signer.sign(&string_to_sign, Digest::Sha256));
        match tokio::time::timeout(self.sign_timeout, task).await {
            Ok(Ok(result)) => Ok(result?),
            // The signer panicked: report it as a failed signature rather than crash.
            Ok(Err(join)) => Err(SessionError::Sign(SignError::Backend {
                source_name: identity.signer.source(),
                reason: format!("the signing task failed: {join}"),
            })),
            Err(_) => Err(SessionError::SignTimeout {
                key: identity.signer.source(),
                after: self.sign_timeout,
            }),
        }
    }

    /// The response body, read chunk by chunk and abandoned past [`MAX_RESPONSE_BYTES`].
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, SessionError> {
        let too_large = || SessionError::TooLarge {
            endpoint: self.base_url.clone(),
            limit: MAX_RESPONSE_BYTES,
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport(&self, e: reqwest::Error) -> SessionError {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        SessionError::Transport {
            endpoint: self.base_url.clone(),
            detail,
        }
    }
}

/// The `Host` header exactly as the HTTP stack sends it: the port only when not default.
fn host_header(url: &reqwest::Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// The request the Go helper sends: ARNs in the query, duration (and session name) in the body.
pub fn build_request(
    host: &str,
    identity: &Identity,
    settings: &SessionSettings,
) -> UnsignedRequest {
    let mut body = serde_json::Map::new();
    body.insert("durationSeconds".into(), settings.duration_seconds.into());
    if let Some(name) = &settings.role_session_name {
        body.insert("roleSessionName".into(), name.clone().into());
    }
    let body = serde_json::Value::Object(body);
    UnsignedRequest {
        host: host.to_string(),
        query: vec![
            ("profileArn".into(), settings.profile_arn.to_string()),
            ("roleArn".into(), settings.role_arn.to_string()),
            (
                "trustAnchorArn".into(),
                settings.trust_anchor_arn.to_string(),
            ),
        ],
        content_type: "application/json".into(),
        body: body.to_string().into_bytes(),
        x509: identity.certificate.to_base64(),
        x509_chain: identity.chain_header(),
    }
}

fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    // Full jitter: spread retries from many hosts over the whole window.
    ceiling.mul_f64(fastrand::f64().max(0.1))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionResponse {
    #[serde(default)]
    credential_set: Vec<CredentialSetEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialSetEntry {
    credentials: RawCredentials,
    #[serde(default)]
    role_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// Parses a 201 answer to a request signed at `now` for `duration_seconds`. An `Expiration`
/// later than the duration allows (plus [`EXPIRATION_SLACK`]) is not believed: it is
/// clamped to `now + duration`, so a broken or hostile endpoint cannot hand out
/// credentials that a cache would keep serving for years.
fn parse_success(
    body: &[u8],
    now: OffsetDateTime,
    duration_seconds: u32,
) -> Result<Credentials, SessionError> {
    let parsed: SessionResponse = serde_json::from_slice(body)
        .map_err(|e| SessionError::BadResponse(format!("invalid JSON ({e})")))?;
    let entry = parsed
        .credential_set
        .into_iter()
        .next()
        .ok_or_else(|| SessionError::BadResponse("an empty credentialSet".into()))?;
    let c = entry.credentials;
    let expiration = OffsetDateTime::parse(
        &c.expiration,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| {
        SessionError::BadResponse(format!("expiration '{}' is not RFC 3339", c.expiration))
    })?;
    if c.access_key_id.is_empty() || c.secret_access_key.is_empty() || c.session_token.is_empty() {
        return Err(SessionError::BadResponse(
            "credentials with empty fields".into(),
        ));
    }
    if expiration <= now {
        return Err(SessionError::BadResponse(format!(
            "credentials that expired at {}",
            crate::credentials::format_expiration(expiration)
        )));
    }
    let allowed = now + time::Duration::seconds(i64::from(duration_seconds));
    let expiration = if expiration > allowed + EXPIRATION_SLACK {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                expiration = %crate::credentials::format_expiration(expiration),
                clamped_to = %crate::credentials::format_expiration(allowed),
                duration_seconds,
                "CreateSession answered an expiration beyond the requested duration; treating the credentials as expiring at the end of the requested duration"
            );
        });
        allowed
    } else {
        expiration
    };
    Ok(Credentials {
        access_key_id: c.access_key_id,
        secret_access_key: SecretString::from(c.secret_access_key),
        session_token: SecretString::from(c.session_token),
        expiration,
        role_arn: entry.role_arn,
    })
}

fn parse_failure(
    status: u16,
    error_type: Option<String>,
    body: &[u8],
    local_time: OffsetDateTime,
) -> SessionError {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(alias = "Message")]
        message: Option<String>,
        #[serde(alias = "__type")]
        r#type: Option<String>,
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|b| b.message.clone())
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body.get(..200).unwrap_or(body))
                .trim()
                .to_string()
        });
    let error_type = error_type
        .or_else(|| parsed.and_then(|b| b.r#type))
        .unwrap_or_else(|| format!("HTTP {status}"));
    SessionError::Service {
        error_type,
        status,
        message,
        local_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsable_endpoint_is_a_configuration_error_not_tls() {
        let endpoint = EndpointSettings {
            base_url: "not a url".into(),
            no_verify_ssl: false,
            with_proxy: false,
            ca_bundles: Vec::new(),
        };
        let Err(e) = SessionClient::new(&endpoint, Arc::new(crate::clock::SystemClock)) else {
            panic!("a client for an unparsable URL");
        };
        assert!(matches!(e, SessionError::BadUrl { .. }), "{e:?}");
        assert!(e.is_configuration() && e.hint().is_some());
        assert_eq!(e.kind(), "configuration");
        assert!(e.to_string().contains("not a url"), "{e}");
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-24 12:00:00 UTC);

    fn answer(expiration: &str) -> Vec<u8> {
        format!(
            r#"{{"credentialSet":[{{"credentials":{{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"{expiration}"}}}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn an_expiration_beyond_the_duration_is_clamped_to_it() {
        // 2099: clamped to the signing time plus the 900 s asked for.
        let c = parse_success(&answer("2099-01-01T00:00:00Z"), NOW, 900).unwrap();
        assert_eq!(c.expiration, NOW + time::Duration::seconds(900));
        // Just past the 5-minute slack: clamped too.
        let c = parse_success(&answer("2026-11-24T12:20:01Z"), NOW, 900).unwrap();
        assert_eq!(c.expiration, NOW + time::Duration::seconds(900));
        // Within the slack (the service's clock may run ahead of ours): kept as answered.
        let c = parse_success(&answer("2026-11-24T12:20:00Z"), NOW, 900).unwrap();
        assert_eq!(
            c.expiration,
            time::macros::datetime!(2026-11-24 12:20:00 UTC)
        );
        // Shorter than asked (a profile's cap): kept.
        let c = parse_success(&answer("2026-11-24T12:16:40Z"), NOW, 3600).unwrap();
        assert_eq!(
            c.expiration,
            time::macros::datetime!(2026-11-24 12:16:40 UTC)
        );
    }

    #[test]
    fn clock_skew_errors_get_the_clock_hint_with_the_local_time() {
        for message in [
            "Signature not yet current: 20261124T120000Z is still later than 20261124T114000Z (20261124T113500Z + 5 min.)",
            "Signature expired: 20261124T120000Z is now earlier than 20261124T122000Z (20261124T122500Z - 5 min.)",
            "Request time too skewed",
        ] {
            let body = serde_json::json!({ "message": message }).to_string();
            let e = parse_failure(
                403,
                Some("AccessDeniedException".into()),
                body.as_bytes(),
                NOW,
            );
            let hint = e.hint().unwrap();
            assert!(
                hint.contains("clock") && hint.contains("NTP"),
                "{message}: {hint}"
            );
            assert!(hint.contains("2026-11-24T12:00:00Z"), "{message}: {hint}");
            assert!(!hint.contains("trust"), "{message}: {hint}");
        }
        // A trust failure keeps the trust hints.
        let e = parse_failure(
            403,
            Some("AccessDeniedException".into()),
            br#"{"message":"Access denied"}"#,
            NOW,
        );
        assert!(e.hint().unwrap().contains("trust policy"));
    }

    #[test]
    fn an_oversized_answer_is_a_runtime_error_with_a_hint() {
        let e = SessionError::TooLarge {
            endpoint: "http://127.0.0.1:1".into(),
            limit: MAX_RESPONSE_BYTES,
        };
        assert!(!e.is_configuration() && !e.is_retryable());
        assert!(e.to_string().contains("65536 bytes"), "{e}");
        assert!(e.hint().unwrap().contains("Roles Anywhere endpoint"));
    }

    #[test]
    fn parses_the_service_response_and_refuses_empty_sets() {
        let now = time::macros::datetime!(2026-11-24 12:00:00 UTC);
        let body = br#"{"credentialSet":[{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"2026-11-24T13:00:00Z"},"roleArn":"arn:aws:iam::111122223333:role/r"}],"subjectArn":"x"}"#;
        let c = parse_success(body, now, 3600).unwrap();
        assert_eq!(c.access_key_id, "ASIA1");
        assert_eq!(
            c.expiration,
            time::macros::datetime!(2026-11-24 13:00:00 UTC)
        );
        assert!(matches!(
            parse_success(br#"{"credentialSet":[]}"#, now, 3600),
            Err(SessionError::BadResponse(_))
        ));
        let expired = br#"{"credentialSet":[{"credentials":{"accessKeyId":"A","secretAccessKey":"s","sessionToken":"t","expiration":"2026-11-24T11:00:00Z"}}]}"#;
        assert!(parse_success(expired, now, 3600).is_err());
    }

    #[test]
    fn service_errors_read_like_the_issue_asks_with_hints() {
        let e = parse_failure(
            403,
            Some("AccessDeniedException".into()),
            br#"{"message":"Untrusted signing certificate"}"#,
            NOW,
        );
        assert_eq!(
            e.to_string(),
            "CreateSession failed: AccessDeniedException (403): Untrusted signing certificate"
        );
        assert!(e.hint().unwrap().contains("--intermediates"));
        assert!(!e.is_retryable());
        let e = parse_failure(503, None, b"oops", NOW);
        assert!(e.is_retryable());
        assert!(e.to_string().contains("HTTP 503 (503): oops"));
        assert!(parse_failure(429, Some("ThrottlingException".into()), b"{}", NOW).is_retryable());
        let skew = parse_failure(
            403,
            Some("AccessDeniedException".into()),
            br#"{"message":"Signature expired: 20261124T120000Z is now earlier than ..."}"#,
            NOW,
        );
        assert!(skew.hint().unwrap().contains("clock"));
    }

    #[test]
    fn metric_labels_come_from_a_fixed_set_whatever_the_service_says() {
        let kind = |status, ty: Option<&str>| {
            parse_failure(status, ty.map(str::to_string), b"{}", NOW).kind()
        };
        assert_eq!(
            kind(403, Some("AccessDeniedException")),
            "AccessDeniedException"
        );
        assert_eq!(
            kind(429, Some("ThrottlingException")),
            "ThrottlingException"
        );
        // A type the service does not document (or a hostile endpoint's invention) must not
        // become a label: the series would grow without bound.
        assert_eq!(kind(400, Some("Evil\"} 1\nfake")), "other_service_error");
        assert_eq!(kind(502, Some("Whatever")), "server_error");
        assert_eq!(kind(503, None), "server_error");
    }

    #[test]
    fn host_header_keeps_only_non_default_ports() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            host_header(&u("https://rolesanywhere.us-east-1.amazonaws.com")),
            "rolesanywhere.us-east-1.amazonaws.com"
        );
        assert_eq!(host_header(&u("https://h:443")), "h");
        assert_eq!(host_header(&u("http://127.0.0.1:8080")), "127.0.0.1:8080");
        assert_eq!(host_header(&u("http://[::1]:9")), "[::1]:9");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            assert!(d <= BACKOFF_CAP);
            assert!(d <= BACKOFF_BASE * (1 << attempt.min(10)));
        }
    }
}
