//! The emulated service's decision on one CreateSession request, as a pure function:
//! [`verify`] takes the request exactly as it arrived, the server's clock and the configured
//! trust anchor, profile and roles, and returns what the service would: the accepted
//! session parameters or a rejection with the service's error type and message. No I/O, so
//! the golden vectors can be replayed with the clock pinned.
//!
//! The canonical request and string to sign are rebuilt with `crate::signing`, the same
//! functions the client signs with; they are pinned to independent vectors, so a shared bug
//! would still be caught there.

use std::path::Path;

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;

use super::arn::{Arn, ArnKind};
use super::chain;
use super::error::EmulateError;
use crate::signer::{self, Digest, KeyKind};
use crate::signing::{self, Algorithm};
use crate::timefmt::parse_amz_date;

/// The service's limit on how far `X-Amz-Date` may be from its clock.
const MAX_SKEW: Duration = Duration::minutes(5);
/// The service's range for `durationSeconds`.
pub const MIN_DURATION: u32 = 900;
pub const MAX_DURATION: u32 = 43_200;
/// Used when the body has no `durationSeconds`.
pub const DEFAULT_DURATION: u32 = 3_600;
/// Largest certificate accepted in `X-Amz-X509` / `X-Amz-X509-Chain` (DER bytes).
const MAX_CERT_DER: usize = 16 * 1024;
/// Most intermediates accepted in `X-Amz-X509-Chain`.
const MAX_CHAIN: usize = 8;

/// One HTTP request as received, before any interpretation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestParts {
    /// `POST`.
    pub method: String,
    /// The path as sent, without the query (`/sessions`).
    pub path: String,
    /// The raw query string as sent, without `?` (empty when there is none).
    pub query: String,
    /// Every header in arrival order, names in any case, values as sent.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub body: Vec<u8>,
}

impl RequestParts {
    /// Values of a header, case-insensitively, in arrival order.
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A header that must appear at most once.
    fn single_header<'a>(&'a self, name: &str) -> Result<Option<&'a str>, Rejection> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(Rejection::invalid(format!(
                "The {name} header must not be sent more than once"
            )));
        }
        Ok(first)
    }
}

/// The `x-amzn-ErrorType` values the emulator answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// 403: authentication or authorisation failed.
    AccessDenied,
    /// 400: malformed request.
    Validation,
    /// 404: unknown trust anchor or profile.
    ResourceNotFound,
    /// 429.
    Throttling,
    /// 500.
    InternalServer,
    /// 503.
    ServiceUnavailable,
    /// 404 / 405: no such route.
    UnknownOperation,
}

impl ErrorType {
    /// The header value, e.g. `AccessDeniedException`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::AccessDenied => "AccessDeniedException",
            ErrorType::Validation => "ValidationException",
            ErrorType::ResourceNotFound => "ResourceNotFoundException",
            ErrorType::Throttling => "ThrottlingException",
            ErrorType::InternalServer => "InternalServerException",
            ErrorType::ServiceUnavailable => "ServiceUnavailableException",
            ErrorType::UnknownOperation => "UnknownOperationException",
        }
    }

    /// The HTTP status the service pairs with this type.
    pub fn status(self) -> u16 {
        match self {
            ErrorType::AccessDenied => 403,
            ErrorType::Validation => 400,
            ErrorType::ResourceNotFound | ErrorType::UnknownOperation => 404,
            ErrorType::Throttling => 429,
            ErrorType::InternalServer => 500,
            ErrorType::ServiceUnavailable => 503,
        }
    }

    /// The error type the service uses for a status, for `--fail-status`.
    pub fn for_status(status: u16) -> Self {
        match status {
            403 => ErrorType::AccessDenied,
            404 => ErrorType::ResourceNotFound,
            429 => ErrorType::Throttling,
            503 => ErrorType::ServiceUnavailable,
            500..=599 => ErrorType::InternalServer,
            _ => ErrorType::Validation,
        }
    }
}

/// What the verifier learnt about a request before deciding, for the request log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub role_arn: Option<String>,
    /// The leaf serial as decimal, as in `Credential=`.
    pub serial: Option<String>,
    pub duration_seconds: Option<u32>,
}

/// A refused request: the service's error type, status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub error: ErrorType,
    pub status: u16,
    /// The `message` of the JSON error body.
    pub message: String,
    pub seen: Seen,
}

impl Rejection {
    fn new(error: ErrorType, message: impl Into<String>) -> Self {
        Rejection {
            error,
            status: error.status(),
            message: message.into(),
            seen: Seen::default(),
        }
    }
    fn denied(message: impl Into<String>) -> Self {
        Rejection::new(ErrorType::AccessDenied, message)
    }
    fn invalid(message: impl Into<String>) -> Self {
        Rejection::new(ErrorType::Validation, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Rejection::new(ErrorType::ResourceNotFound, message)
    }
}

/// An accepted request: everything needed to issue the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub role_arn: String,
    /// `roleSessionName`, or the leaf serial in lower-case hex.
    pub role_session_name: String,
    pub duration_seconds: u32,
    /// The leaf serial as unsigned decimal.
    pub serial_decimal: String,
    /// `CN=<leaf subject CN>`.
    pub source_identity: String,
    pub key: KeyKind,
    /// Partition, region and account of the trust anchor.
    pub partition: String,
    pub region: String,
    pub account: String,
}

/// What the emulated account holds: one trust anchor (a bundle of CA certificates), one
/// profile, and the roles that profile allows.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    anchors: Vec<Vec<u8>>,
    trust_anchor_arn: String,
    partition: String,
    region: String,
    account: String,
    profile_arn: String,
    role_arns: Vec<String>,
    max_duration: u32,
}

impl VerifyConfig {
    /// Checks and stores the configuration. `anchors_pem` is the trust anchor bundle (PEM,
    /// or a single DER certificate) read from `anchors_path`, which is only used in messages.
    /// An empty `role_arns` allows any role in the trust anchor's account.
    pub fn new(
        anchors_pem: &[u8],
        anchors_path: &Path,
        trust_anchor_arn: &str,
        profile_arn: &str,
        role_arns: Vec<String>,
        max_duration: u32,
    ) -> Result<Self, EmulateError> {
        const FLAG: &str = "--trust-anchor-certificate";
        let anchors = load_certificates(anchors_pem, FLAG, anchors_path)?;
        for (i, der) in anchors.iter().enumerate() {
            let bad = |reason: String| EmulateError::BadCertificate {
                flag: FLAG,
                path: anchors_path.to_path_buf(),
                index: i + 1,
                reason,
            };
            let cert = chain::parse_der(der).map_err(bad)?;
            if !cert.is_ca() {
                return Err(EmulateError::NotCa {
                    flag: FLAG,
                    path: anchors_path.to_path_buf(),
                    index: i + 1,
                    subject: cert.subject().to_string(),
                });
            }
            chain::key_kind(&cert).map_err(bad)?;
        }
        let ta = Arn::parse(trust_anchor_arn, ArnKind::TrustAnchor).map_err(|reason| {
            EmulateError::BadArn {
                flag: "--trust-anchor-arn",
                value: trust_anchor_arn.to_string(),
                what: "trust anchor",
                reason,
            }
        })?;
        let profile =
            Arn::parse(profile_arn, ArnKind::Profile).map_err(|reason| EmulateError::BadArn {
                flag: "--profile-arn",
                value: profile_arn.to_string(),
                what: "profile",
                reason,
            })?;
        if (profile.partition, profile.region, profile.account)
            != (ta.partition, ta.region, ta.account)
        {
            return Err(EmulateError::ArnMismatch {
                flag: "--profile-arn",
                value: profile_arn.to_string(),
                anchor: trust_anchor_arn.to_string(),
            });
        }
        for role_arn in &role_arns {
            let role =
                Arn::parse(role_arn, ArnKind::Role).map_err(|reason| EmulateError::BadArn {
                    flag: "--role-arn",
                    value: role_arn.clone(),
                    what: "role",
                    reason,
                })?;
            if (role.partition, role.account) != (ta.partition, ta.account) {
                return Err(EmulateError::ArnMismatch {
                    flag: "--role-arn",
                    value: role_arn.clone(),
                    anchor: trust_anchor_arn.to_string(),
                });
            }
        }
        if !(MIN_DURATION..=MAX_DURATION).contains(&max_duration) {
            return Err(EmulateError::MaxDuration {
                value: max_duration,
            });
        }
        Ok(VerifyConfig {
            anchors,
            trust_anchor_arn: trust_anchor_arn.to_string(),
            partition: ta.partition.to_string(),
            region: ta.region.to_string(),
            account: ta.account.to_string(),
            profile_arn: profile_arn.to_string(),
            role_arns,
            max_duration,
        })
    }

    /// Reads the trust anchor bundle from a file, then as [`VerifyConfig::new`].
    pub fn from_file(
        anchors_path: &Path,
        trust_anchor_arn: &str,
        profile_arn: &str,
        role_arns: Vec<String>,
        max_duration: u32,
    ) -> Result<Self, EmulateError> {
        let pem = std::fs::read(anchors_path).map_err(|source| EmulateError::Read {
            flag: "--trust-anchor-certificate",
            path: anchors_path.to_path_buf(),
            source,
        })?;
        VerifyConfig::new(
            &pem,
            anchors_path,
            trust_anchor_arn,
            profile_arn,
            role_arns,
            max_duration,
        )
    }

    /// The region of the trust anchor, which is the region requests must be scoped to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The configured trust anchor ARN.
    pub fn trust_anchor_arn(&self) -> &str {
        &self.trust_anchor_arn
    }

    /// The configured profile ARN.
    pub fn profile_arn(&self) -> &str {
        &self.profile_arn
    }
}

/// PEM `CERTIFICATE` blocks, or the whole input as one DER certificate when it has none.
pub(crate) fn load_certificates(
    data: &[u8],
    flag: &'static str,
    path: &Path,
) -> Result<Vec<Vec<u8>>, EmulateError> {
    let mut out = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(data).enumerate() {
        match item {
            Ok(der) => out.push(der.to_vec()),
            Err(e) => {
                return Err(EmulateError::BadCertificate {
                    flag,
                    path: path.to_path_buf(),
                    index: i + 1,
                    reason: format!("invalid PEM: {e}"),
                });
            }
        }
    }
    // A DER file starts with a SEQUENCE tag; accept it rather than say "no certificate".
    if out.is_empty() && data.first() == Some(&0x30) {
        out.push(data.to_vec());
    }
    if out.is_empty() {
        return Err(EmulateError::NoCertificate {
            flag,
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Decides one CreateSession request the way IAM Roles Anywhere does, at instant `now`.
pub fn verify(
    req: &RequestParts,
    now: OffsetDateTime,
    config: &VerifyConfig,
) -> Result<Accepted, Rejection> {
    let mut seen = Seen::default();
    verify_inner(req, now, config, &mut seen).map_err(|mut rejection| {
        rejection.seen = seen;
        rejection
    })
}

/// Routing, shared with the HTTP layer: only `POST /sessions` exists.
pub fn route(method: &str, path: &str) -> Result<(), Rejection> {
    if path != "/sessions" {
        return Err(Rejection::new(
            ErrorType::UnknownOperation,
            format!("No operation at {path}"),
        ));
    }
    if method != "POST" {
        let mut r = Rejection::new(
            ErrorType::UnknownOperation,
            format!("Method {method} is not allowed on /sessions; use POST"),
        );
        r.status = 405;
        return Err(r);
    }
    Ok(())
}

fn verify_inner(
    req: &RequestParts,
    now: OffsetDateTime,
    config: &VerifyConfig,
    seen: &mut Seen,
) -> Result<Accepted, Rejection> {
    route(&req.method, &req.path)?;

    // 1. Authentication headers.
    let auth_header = req
        .single_header("authorization")?
        .ok_or_else(|| Rejection::denied("Missing Authentication Token"))?;
    let auth = signing::parse_authorization(auth_header).ok_or_else(|| {
        Rejection::invalid(
            "Authorization header is malformed: expected 'ALGORITHM Credential=SERIAL/DATE/REGION/rolesanywhere/aws4_request, \
             SignedHeaders=NAMES, Signature=HEX'",
        )
    })?;
    let algorithm = Algorithm::from_name(&auth.algorithm).ok_or_else(|| {
        Rejection::invalid(format!(
            "Unsupported algorithm '{}' in the Authorization header",
            auth.algorithm
        ))
    })?;
    let amz_date = req.single_header("x-amz-date")?.ok_or_else(|| {
        Rejection::invalid("Authorization header requires existence of a 'X-Amz-Date' header.")
    })?;
    let date = parse_amz_date(amz_date).ok_or_else(|| {
        Rejection::invalid(format!(
            "X-Amz-Date '{amz_date}' is not a date in the form YYYYMMDDTHHMMSSZ"
        ))
    })?;
    check_skew(amz_date, date, now)?;

    // 2. Certificates.
    let x509 = req.single_header("x-amz-x509")?.ok_or_else(|| {
        Rejection::invalid("Missing X-Amz-X509 header: the signing certificate is required")
    })?;
    let leaf_der = decode_cert("X-Amz-X509", x509)?;
    let leaf = chain::parse_der(&leaf_der).map_err(|e| {
        Rejection::invalid(format!(
            "X-Amz-X509 does not hold a DER X.509 certificate: {e}"
        ))
    })?;
    let serial_decimal = signing::serial_to_decimal(leaf.raw_serial());
    seen.serial = Some(serial_decimal.clone());
    let chain_header = req.single_header("x-amz-x509-chain")?;
    let chain_ders = match chain_header {
        Some(value) => decode_chain(value)?,
        None => Vec::new(),
    };
    let intermediates = chain_ders
        .iter()
        .enumerate()
        .map(|(i, der)| {
            chain::parse_der(der).map_err(|e| {
                Rejection::invalid(format!(
                    "X-Amz-X509-Chain entry {} is not a DER X.509 certificate: {e}",
                    i + 1
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // 3. Parameters (query first, then body), shape-checked like the service's input model.
    let params = Params::from_request(req)?;
    seen.role_arn = Some(params.role_arn.clone());
    seen.duration_seconds = params.duration_seconds;

    // 4. The trust anchor the request names must exist before its certificates mean anything.
    if params.trust_anchor_arn != config.trust_anchor_arn {
        return Err(Rejection::not_found(format!(
            "Trust anchor {} was not found",
            params.trust_anchor_arn
        )));
    }

    // 5. Signature.
    check_scope(&auth.scope, amz_date, config)?;
    if auth.serial_decimal != serial_decimal {
        return Err(Rejection::denied(
            "Invalid certificate serial number in Credential",
        ));
    }
    let key = chain::key_kind(&leaf)
        .map_err(|why| Rejection::denied(format!("Untrusted signing certificate: {why}")))?;
    if key.algorithm() != algorithm {
        return Err(Rejection::denied(format!(
            "Unable to verify signature: {} does not match the {key} key of the signing certificate",
            algorithm.as_str()
        )));
    }
    let string_to_sign = rebuild_string_to_sign(
        req,
        &auth.signed_headers,
        algorithm,
        amz_date,
        &auth.scope,
        chain_header.is_some(),
    )?;
    let public_key = &leaf.public_key().subject_public_key.data;
    if !signer::verify(
        key,
        public_key,
        string_to_sign.as_bytes(),
        Digest::Sha256,
        &auth.signature,
    ) {
        return Err(Rejection::denied("Unable to verify signature"));
    }

    // 6. Trust: leaf -> intermediates -> trust anchor, at the server's time.
    let anchors = config
        .anchors
        .iter()
        .filter_map(|der| chain::parse_der(der).ok())
        .collect::<Vec<X509Certificate<'_>>>();
    chain::verify_path(&leaf, &intermediates, &anchors, now.unix_timestamp())
        .map_err(|why| Rejection::denied(format!("Untrusted signing certificate: {why}")))?;

    // 7. Authorisation: profile, role, duration.
    if params.profile_arn != config.profile_arn {
        return Err(Rejection::not_found(format!(
            "Profile {} was not found",
            params.profile_arn
        )));
    }
    let role = Arn::parse(&params.role_arn, ArnKind::Role).map_err(Rejection::invalid)?;
    if config.role_arns.is_empty() {
        if (role.partition, role.account) != (config.partition.as_str(), config.account.as_str()) {
            return Err(Rejection::denied(format!(
                "Role {} is not in account {}, the account of profile {}",
                params.role_arn, config.account, config.profile_arn
            )));
        }
    } else if !config.role_arns.contains(&params.role_arn) {
        return Err(Rejection::denied(format!(
            "Role {} is not one of the roles of profile {}",
            params.role_arn, config.profile_arn
        )));
    }
    let cap = config.max_duration.min(MAX_DURATION);
    let duration_seconds = params.duration_seconds.unwrap_or(DEFAULT_DURATION.min(cap));
    if duration_seconds > cap {
        return Err(Rejection::invalid(format!(
            "Requested DurationSeconds {duration_seconds} exceeds the maximum of {cap} seconds set on profile {}",
            config.profile_arn
        )));
    }
    seen.duration_seconds = Some(duration_seconds);

    let role_session_name = params
        .role_session_name
        .unwrap_or_else(|| serial_hex(leaf.raw_serial()));
    Ok(Accepted {
        role_arn: params.role_arn,
        role_session_name,
        duration_seconds,
        serial_decimal,
        source_identity: chain::source_identity(&leaf),
        key,
        partition: config.partition.clone(),
        region: config.region.clone(),
        account: config.account.clone(),
    })
}

/// The service's 5-minute window, with its messages.
fn check_skew(raw: &str, date: OffsetDateTime, now: OffsetDateTime) -> Result<(), Rejection> {
    if date < now - MAX_SKEW {
        return Err(Rejection::denied(format!(
            "Signature expired: {raw} is now earlier than {} ({} - 5 min.)",
            signing::amz_date(now - MAX_SKEW),
            signing::amz_date(now)
        )));
    }
    if date > now + MAX_SKEW {
        return Err(Rejection::denied(format!(
            "Signature not yet current: {raw} is still later than {} ({} + 5 min.)",
            signing::amz_date(now + MAX_SKEW),
            signing::amz_date(now)
        )));
    }
    Ok(())
}

/// Base64 DER of one certificate, bounded.
fn decode_cert(header: &str, value: &str) -> Result<Vec<u8>, Rejection> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| Rejection::invalid(format!("{header} is not valid base64: {e}")))?;
    if der.len() > MAX_CERT_DER {
        return Err(Rejection::invalid(format!(
            "{header} holds a certificate of {} bytes; the limit is {MAX_CERT_DER}",
            der.len()
        )));
    }
    Ok(der)
}

/// `X-Amz-X509-Chain`: base64 DER certificates joined by `,`.
fn decode_chain(value: &str) -> Result<Vec<Vec<u8>>, Rejection> {
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.len() > MAX_CHAIN {
        return Err(Rejection::invalid(format!(
            "X-Amz-X509-Chain holds {} certificates; the limit is {MAX_CHAIN}",
            entries.len()
        )));
    }
    entries
        .into_iter()
        .map(|entry| {
            if entry.is_empty() {
                Err(Rejection::invalid("X-Amz-X509-Chain has an empty entry"))
            } else {
                decode_cert("X-Amz-X509-Chain", entry)
            }
        })
        .collect()
}

/// `DATE/REGION/rolesanywhere/aws4_request`, with SigV4's messages for each mismatch.
fn check_scope(scope: &str, amz_date: &str, config: &VerifyConfig) -> Result<(), Rejection> {
    let parts: Vec<&str> = scope.split('/').collect();
    let [day, region, service, terminator] = parts.as_slice() else {
        return Err(Rejection::invalid(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. serial/date/region/service/term, got '{scope}'"
        )));
    };
    let expected_day = amz_date.get(..8).unwrap_or(amz_date);
    if *day != expected_day {
        return Err(Rejection::denied(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{day}' != '{expected_day}', from '{amz_date}'."
        )));
    }
    if *region != config.region {
        return Err(Rejection::denied(format!(
            "Credential should be scoped to a valid region, not '{region}'."
        )));
    }
    if *service != signing::SERVICE {
        return Err(Rejection::denied(
            "Credential should be scoped to correct service: 'rolesanywhere'.",
        ));
    }
    if *terminator != "aws4_request" {
        return Err(Rejection::denied(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    Ok(())
}

/// The string to sign of the request as received: its method, path, re-encoded query, the
/// headers listed in `SignedHeaders` with their received values, and the body hash.
fn rebuild_string_to_sign(
    req: &RequestParts,
    signed_headers: &str,
    algorithm: Algorithm,
    amz_date: &str,
    scope: &str,
    chain_sent: bool,
) -> Result<String, Rejection> {
    let listed: Vec<String> = signed_headers
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    let mut required = vec!["content-type", "host", "x-amz-date", "x-amz-x509"];
    if chain_sent {
        required.push("x-amz-x509-chain");
    }
    for name in required {
        if !listed.iter().any(|l| l == name) {
            return Err(Rejection::invalid(format!(
                "SignedHeaders must include '{name}'"
            )));
        }
    }
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for name in &listed {
        if name.is_empty() {
            return Err(Rejection::invalid("SignedHeaders has an empty header name"));
        }
        let before = pairs.len();
        pairs.extend(req.header_values(name).map(|v| (name.as_str(), v)));
        if pairs.len() == before {
            return Err(Rejection::invalid(format!(
                "Header '{name}' is listed in SignedHeaders but is not in the request"
            )));
        }
    }
    let query = decode_query(&req.query).map_err(Rejection::invalid)?;
    let (canonical_headers, canonical_signed) = signing::canonical_headers(&pairs);
    let canonical_request = signing::canonical_request(
        &req.method,
        &req.path,
        &signing::canonical_query(&query),
        &canonical_headers,
        &canonical_signed,
        &signing::sha256_hex(&req.body),
    );
    Ok(signing::string_to_sign(
        algorithm,
        amz_date,
        scope,
        &canonical_request,
    ))
}

/// The raw query as name/value pairs: split on `&` and the first `=`, `+` as space,
/// percent-decoded, UTF-8.
pub(crate) fn decode_query(raw: &str) -> Result<Vec<(String, String)>, String> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, String> {
    // `+` is a space in a form-encoded query; a literal plus arrives as `%2B`.
    let bytes = crate::percent::decode(&s.replace('+', " "))
        .map_err(|_| format!("The query string has an invalid percent-encoding in '{s}'"))?;
    String::from_utf8(bytes).map_err(|_| format!("The query string parameter '{s}' is not UTF-8"))
}

/// Lower-case hex of a DER serial without its sign-padding zero: the session name the
/// service uses when none is given.
fn serial_hex(der_content: &[u8]) -> String {
    let trimmed: Vec<u8> = der_content
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    if trimmed.is_empty() {
        "00".to_string()
    } else {
        hex::encode(trimmed)
    }
}

/// CreateSession's parameters, from the query (the Go helper) or the JSON body (others).
struct Params {
    trust_anchor_arn: String,
    profile_arn: String,
    role_arn: String,
    duration_seconds: Option<u32>,
    role_session_name: Option<String>,
}

impl Params {
    fn from_request(req: &RequestParts) -> Result<Self, Rejection> {
        let query = decode_query(&req.query).map_err(Rejection::invalid)?;
        let body = parse_body(&req.body)?;
        let text = |name: &str| -> Result<Option<String>, Rejection> {
            let mut in_query = query
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone());
            if let Some(v) = in_query.next() {
                if in_query.next().is_some() {
                    return Err(Rejection::invalid(format!(
                        "The query parameter '{name}' is given more than once"
                    )));
                }
                return Ok(Some(v));
            }
            match body.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Rejection::invalid(format!(
                    "Value at '{name}' must be a string"
                ))),
            }
        };
        let arn = |name: &str, kind: ArnKind| -> Result<String, Rejection> {
            let value = text(name)?.ok_or_else(|| {
                Rejection::invalid(format!(
                    "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
                ))
            })?;
            Arn::parse(&value, kind).map_err(|why| {
                Rejection::invalid(format!(
                    "1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: \
                     Member must be a {} ARN ({why})",
                    kind.what()
                ))
            })?;
            Ok(value)
        };
        let trust_anchor_arn = arn("trustAnchorArn", ArnKind::TrustAnchor)?;
        let profile_arn = arn("profileArn", ArnKind::Profile)?;
        let role_arn = arn("roleArn", ArnKind::Role)?;
        let duration_seconds = match body.get("durationSeconds") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => {
                let d = v.as_u64().ok_or_else(|| {
                    Rejection::invalid(format!(
                        "Value '{v}' at 'durationSeconds' must be a whole number of seconds"
                    ))
                })?;
                if d < u64::from(MIN_DURATION) {
                    return Err(Rejection::invalid(format!(
                        "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: \
                         Member must have value greater than or equal to {MIN_DURATION}"
                    )));
                }
                if d > u64::from(MAX_DURATION) {
                    return Err(Rejection::invalid(format!(
                        "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: \
                         Member must have value less than or equal to {MAX_DURATION}"
                    )));
                }
                u32::try_from(d).ok()
            }
        };
        let role_session_name = text("roleSessionName")?;
        if let Some(name) = &role_session_name {
            let ok_chars = name.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
            });
            if !(2..=64).contains(&name.len()) || !ok_chars {
                return Err(Rejection::invalid(format!(
                    "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: \
                     Member must be 2 to 64 characters of [\\w+=,.@-]"
                )));
            }
        }
        Ok(Params {
            trust_anchor_arn,
            profile_arn,
            role_arn,
            duration_seconds,
            role_session_name,
        })
    }
}

/// The JSON body as an object; an empty body counts as `{}`.
fn parse_body(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Rejection::invalid("The request body must be a JSON object")),
        Err(e) => Err(Rejection::invalid(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_handles_plus_percent_and_bare_names() {
        let q = decode_query("a=b+c&x%3Ay=%E2%82%AC&flag&&e=").unwrap();
        assert_eq!(
            q,
            vec![
                ("a".into(), "b c".into()),
                ("x:y".into(), "€".into()),
                ("flag".into(), "".into()),
                ("e".into(), "".into())
            ]
        );
        // Literal plus arrives as %2B and stays a plus.
        assert_eq!(
            decode_query("v=%2B").unwrap(),
            vec![("v".into(), "+".into())]
        );
        assert!(decode_query("a=%G1").is_err());
        assert!(decode_query("a=%4").is_err());
        assert!(decode_query("a=%FF").is_err());
        // SigV4's canonical query escapes are `%` and two hex digits: a sign is neither
        // (`%+1` once decoded as 0x01), and a lone or final `%` is malformed.
        for bad in ["a=%+1", "a=%+F", "%+1=b", "a=%-1", "a=%1", "a=%", "a=%zz"] {
            assert!(decode_query(bad).is_err(), "{bad}");
        }
        assert_eq!(
            decode_query("a=%41").unwrap(),
            vec![("a".into(), "A".into())]
        );
    }

    #[test]
    fn skew_window_is_five_minutes_either_way() {
        let now = time::macros::datetime!(2026-11-24 12:33:52 UTC);
        assert!(check_skew("x", now - Duration::minutes(5), now).is_ok());
        assert!(check_skew("x", now + Duration::minutes(5), now).is_ok());
        let past = check_skew("20261124T122752Z", now - Duration::minutes(6), now).unwrap_err();
        assert_eq!(past.error, ErrorType::AccessDenied);
        assert_eq!(
            past.message,
            "Signature expired: 20261124T122752Z is now earlier than 20261124T122852Z (20261124T123352Z - 5 min.)"
        );
        let future = check_skew("x", now + Duration::minutes(6), now).unwrap_err();
        assert!(
            future.message.starts_with("Signature not yet current"),
            "{}",
            future.message
        );
    }

    #[test]
    fn serial_hex_drops_the_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0x9c, 0x2b]), "9c2b");
        assert_eq!(serial_hex(&[0x12, 0x34]), "1234");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn error_types_map_to_statuses() {
        assert_eq!(ErrorType::for_status(429), ErrorType::Throttling);
        assert_eq!(ErrorType::for_status(503), ErrorType::ServiceUnavailable);
        assert_eq!(ErrorType::for_status(502), ErrorType::InternalServer);
        assert_eq!(ErrorType::for_status(403).status(), 403);
        assert_eq!(route("GET", "/sessions").unwrap_err().status, 405);
        assert_eq!(route("POST", "/other").unwrap_err().status, 404);
    }

    #[test]
    fn body_must_be_a_json_object_or_empty() {
        assert!(parse_body(b"").unwrap().is_empty());
        assert!(parse_body(b" \n").unwrap().is_empty());
        assert!(parse_body(b"[1]").is_err());
        assert!(parse_body(b"{").is_err());
    }
}
