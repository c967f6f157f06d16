//! Request routing and answers: the IMDSv2-compatible routes, the container endpoint and the
//! health probe on TCP ([`Endpoints`]), and the process-credentials route on the unix socket
//! ([`UnixEndpoints`]).
//!
//! Handlers answer at once ([`Answer::Now`]): credentials come from memory
//! ([`CredentialSource`]) and bodies from [`RenderCache`], so a request never waits on the
//! network, a file lock or an await point while holding a lock. Only the container route
//! touches the disk (the token file, read per request so rotation takes effect at once), and
//! it does so on the blocking pool with a time bound ([`Answer::Later`]): a FIFO or a hung
//! network file system in its place must not stall the one runtime thread.
//!
//! Order of checks on every TCP request: `X-Forwarded-For` (403), `Host` (403, see
//! [`HostPolicy`]), route (404), method (405), authentication (401), then the answer. Header
//! values and tokens are never logged.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hyper::body::Bytes;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method, Response, StatusCode};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::body::Payload;
use super::files::{TokenFileError, TokenReader};
use super::host::{self, HostPolicy, Refusal};
use super::render::{RenderCache, RenderContext, Rendered};
use super::tokens::{MAX_TTL_SECONDS, TokenStore, ceil_seconds, parse_ttl};
use super::{IdentityKey, ServerConfig};
use crate::agent::{CredentialSource, Unavailable};

pub(crate) const TTL_HEADER: HeaderName =
    HeaderName::from_static("x-aws-ec2-metadata-token-ttl-seconds");
pub(crate) const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-aws-ec2-metadata-token");
pub(crate) const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const IDENTITY_HEADER: HeaderName = HeaderName::from_static("x-identity-key");

const TEXT: HeaderValue = HeaderValue::from_static("text/plain");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

const CREDS_PREFIX: &str = "/latest/meta-data/iam/security-credentials";
const CREDS_EXT_PREFIX: &str = "/latest/meta-data/iam/security-credentials-extended";

/// An answer: ready now (every route but one), or after a bounded wait off the runtime
/// thread (the container route's token file read).
pub(crate) enum Answer {
    Now(Response<Payload>),
    Later(Pin<Box<dyn Future<Output = Response<Payload>> + Send>>),
}

/// Something that answers a request from its head alone (no endpoint reads a body). An
/// associated function on `Arc<Self>` so a later answer can own the handler.
pub(crate) trait Handler: Send + Sync + 'static {
    fn respond(this: &Arc<Self>, head: &Parts) -> Answer;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Token,
    RoleList { extended: bool },
    RoleCredentials { extended: bool },
    Region,
    AvailabilityZone,
    Container,
    Health,
    Metrics,
    NotFound,
}

impl Route {
    fn allowed(self) -> Method {
        match self {
            Route::Token => Method::PUT,
            _ => Method::GET,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Route::Token => "imds-token",
            Route::RoleList { .. } => "imds-role-list",
            Route::RoleCredentials { .. } => "imds-credentials",
            Route::Region => "imds-region",
            Route::AvailabilityZone => "imds-az",
            Route::Container => "container-credentials",
            Route::Health => "healthz",
            Route::Metrics => "metrics",
            Route::NotFound => "not-found",
        }
    }
}

/// Errors on the IMDS paths are plain text like EC2's; everywhere else JSON.
fn is_imds_path(path: &str) -> bool {
    path.starts_with("/latest/")
}

fn response(status: StatusCode, content_type: HeaderValue, body: Payload) -> Response<Payload> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, content_type);
    r
}

fn text_error(status: StatusCode, text: &'static str) -> Response<Payload> {
    response(status, TEXT, Payload::from_static(text))
}

fn json_value(status: StatusCode, value: &serde_json::Value) -> Response<Payload> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    response(status, JSON, Payload::new(Bytes::from(body)))
}

/// `{"code","message"}`, the container endpoint's error shape.
fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Payload> {
    json_value(
        status,
        &serde_json::json!({ "code": code, "message": message }),
    )
}

fn forbidden(path: &str) -> Response<Payload> {
    tracing::info!(
        path,
        "server: refused a request that came through a proxy (X-Forwarded-For)"
    );
    if is_imds_path(path) {
        text_error(StatusCode::FORBIDDEN, "Forbidden")
    } else {
        json_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "requests forwarded by a proxy are refused",
        )
    }
}

fn not_found(path: &str) -> Response<Payload> {
    if is_imds_path(path) {
        text_error(StatusCode::NOT_FOUND, "Not Found")
    } else {
        json_error(StatusCode::NOT_FOUND, "NotFound", "no such endpoint")
    }
}

fn method_not_allowed(path: &str, allowed: Method) -> Response<Payload> {
    let mut r = if is_imds_path(path) {
        text_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    } else {
        json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "method not allowed",
        )
    };
    let allow = if allowed == Method::PUT {
        HeaderValue::from_static("PUT")
    } else {
        HeaderValue::from_static("GET")
    };
    r.headers_mut().insert(ALLOW, allow);
    r
}

/// 503 with the IMDS error shape; SDKs treat it as "no credentials here right now".
fn imds_unavailable(why: &Unavailable) -> Response<Payload> {
    json_value(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({ "Code": "CredentialsUnavailable", "Message": why.to_string() }),
    )
}

/// A secret-bearing body that rendered empty would mean a serialisation bug: answer 500
/// rather than 200 with nothing in it.
fn credential_body(
    status_ok: StatusCode,
    content_type: HeaderValue,
    body: &Bytes,
) -> Response<Payload> {
    if body.is_empty() {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "credentials could not be rendered",
        );
    }
    response(status_ok, content_type, Payload::new(body.clone()))
}

/// Reads the current credentials and their rendered bodies; on `Unavailable` also drops
/// the bodies of the last set so its secrets do not outlive it.
fn current(
    source: &dyn CredentialSource,
    cache: &RenderCache,
    ctx: &RenderContext<'_>,
) -> Result<Arc<Rendered>, Unavailable> {
    let now = OffsetDateTime::now_utc();
    match source.current(now) {
        Ok(creds) => Ok(cache.get(creds, ctx, now)),
        Err(why) => {
            cache.clear();
            Err(why)
        }
    }
}

fn health(
    source: &dyn CredentialSource,
    cache: &RenderCache,
    ctx: &RenderContext<'_>,
) -> Response<Payload> {
    match current(source, cache, ctx) {
        // Near the certificate's expiry: still 200, but "degraded" with both dates.
        Ok(r) => match crate::agent::expiry::degraded_health(source, OffsetDateTime::now_utc()) {
            Some(body) => response(StatusCode::OK, JSON, Payload::new(Bytes::from(body))),
            None => response(StatusCode::OK, JSON, Payload::new(r.health.clone())),
        },
        Err(why) => json_value(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "unavailable", "message": why.to_string() }),
        ),
    }
}

/// `GET /metrics`: the Prometheus text format. Nothing in it is secret (counts, statuses,
/// timestamps), but it answers only after the same `Host` check as every other route.
fn metrics_page() -> Response<Payload> {
    response(
        StatusCode::OK,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        Payload::new(Bytes::from(crate::metrics::global().render())),
    )
}

/// Counts the answer in `rolesanywhere_http_requests_total` under its route's name (never
/// the path, which the client chose), once its status is known.
fn counted(route: &'static str, answer: Answer) -> Answer {
    let metrics = crate::metrics::global();
    match answer {
        Answer::Now(r) => {
            metrics.http_request(route, r.status().as_u16());
            Answer::Now(r)
        }
        Answer::Later(f) => Answer::Later(Box::pin(async move {
            let r = f.await;
            metrics.http_request(route, r.status().as_u16());
            r
        })),
    }
}

/// The listener of `serve --metrics-bind`: `GET /metrics` only, behind the `Host` rule, so
/// it may face a monitoring network without exposing anything else.
pub(crate) struct MetricsEndpoints {
    hosts: HostPolicy,
}

impl MetricsEndpoints {
    pub(crate) fn new(bound: Option<std::net::SocketAddr>, allowed: &[super::AllowedHost]) -> Self {
        MetricsEndpoints {
            hosts: HostPolicy::new(bound, allowed),
        }
    }
}

impl Handler for MetricsEndpoints {
    fn respond(this: &Arc<Self>, head: &Parts) -> Answer {
        let (route, r) = if let Err(why) = this.hosts.check(head) {
            tracing::debug!(rule = ?why, "metrics: refused a request whose Host does not name this listener");
            (
                "refused-host",
                json_error(StatusCode::FORBIDDEN, "Forbidden", why.message()),
            )
        } else if head.uri.path() != "/metrics" {
            ("not-found", not_found(head.uri.path()))
        } else if head.method != Method::GET {
            ("metrics", method_not_allowed("/metrics", Method::GET))
        } else {
            ("metrics", metrics_page())
        };
        counted(route, Answer::Now(r))
    }
}

/// The TCP endpoints: IMDSv2, the container endpoint (when a token file is configured) and
/// `/healthz`.
pub(crate) struct Endpoints {
    source: Arc<dyn CredentialSource>,
    config: Arc<ServerConfig>,
    hosts: HostPolicy,
    token_file: Option<TokenReader>,
    tokens: TokenStore,
    rendered: RenderCache,
    role_name: Bytes,
    region: Bytes,
    availability_zone: Bytes,
}

impl Endpoints {
    /// `bound` is the listener's address, for the `Host` rule (`None` when unknown).
    pub(crate) fn new(
        source: Arc<dyn CredentialSource>,
        config: Arc<ServerConfig>,
        bound: Option<std::net::SocketAddr>,
    ) -> Self {
        let role_name = Bytes::from(config.role_name.clone());
        let region = Bytes::from(config.region.clone());
        let availability_zone = Bytes::from(format!("{}a", config.region));
        Endpoints {
            hosts: HostPolicy::new(bound, &config.allowed_hosts),
            token_file: config.container_token_file.as_deref().map(TokenReader::new),
            source,
            config,
            tokens: TokenStore::default(),
            rendered: RenderCache::default(),
            role_name,
            region,
            availability_zone,
        }
    }

    fn ctx(&self) -> RenderContext<'_> {
        RenderContext {
            role_arn: &self.config.role_arn,
            account_id: &self.config.account_id,
        }
    }

    fn route(&self, path: &str) -> Route {
        match path {
            "/latest/api/token" => return Route::Token,
            "/latest/meta-data/placement/region" => return Route::Region,
            "/latest/meta-data/placement/availability-zone" => return Route::AvailabilityZone,
            "/healthz" => return Route::Health,
            "/metrics" => return Route::Metrics,
            "/v1/credentials" if self.config.container_token_file.is_some() => {
                return Route::Container;
            }
            _ => {}
        }
        // Check the longer prefix first: the legacy prefix is a prefix of the extended one.
        let (rest, extended) = if let Some(rest) = path.strip_prefix(CREDS_EXT_PREFIX) {
            (rest, true)
        } else if let Some(rest) = path.strip_prefix(CREDS_PREFIX) {
            (rest, false)
        } else {
            return Route::NotFound;
        };
        // Without an account id there is nothing to add: answer the extended paths 404, the
        // one status on which SDKs fall back to the legacy path.
        if extended && self.config.account_id.is_empty() {
            return Route::NotFound;
        }
        match rest {
            "" | "/" => Route::RoleList { extended },
            _ => match rest.strip_prefix('/') {
                Some(role) if role == self.config.role_name => Route::RoleCredentials { extended },
                _ => Route::NotFound,
            },
        }
    }

    fn issue_token(&self, headers: &HeaderMap) -> Response<Payload> {
        let Some(ttl) = headers
            .get(&TTL_HEADER)
            .and_then(|v| parse_ttl(v.as_bytes()))
        else {
            return text_error(
                StatusCode::BAD_REQUEST,
                "Bad Request: X-aws-ec2-metadata-token-ttl-seconds must be 1..21600",
            );
        };
        debug_assert!(ttl <= MAX_TTL_SECONDS);
        let Some(token) = self
            .tokens
            .issue(std::time::Duration::from_secs(ttl), Instant::now())
        else {
            tracing::error!("imds: the system random generator failed");
            return text_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        };
        tracing::debug!(ttl, "imds: issued a session token");
        let body = super::body::secret(token.as_bytes().to_vec());
        let mut r = response(StatusCode::OK, TEXT, Payload::new(body));
        r.headers_mut().insert(TTL_HEADER, HeaderValue::from(ttl));
        r
    }

    fn imds_get(&self, route: Route, headers: &HeaderMap) -> Response<Payload> {
        let left = headers
            .get(&TOKEN_HEADER)
            .and_then(|t| self.tokens.check(t.as_bytes(), Instant::now()));
        let Some(left) = left else {
            return text_error(StatusCode::UNAUTHORIZED, "Unauthorized");
        };
        let mut r = match route {
            Route::RoleList { .. } => {
                response(StatusCode::OK, TEXT, Payload::new(self.role_name.clone()))
            }
            Route::RoleCredentials { extended } => {
                match current(self.source.as_ref(), &self.rendered, &self.ctx()) {
                    Ok(rendered) => {
                        let body = if extended {
                            rendered.imds_extended.as_ref()
                        } else {
                            Some(&rendered.imds)
                        };
                        match body {
                            // EC2 answers credentials as text/plain; SDKs parse the body only.
                            Some(body) => credential_body(StatusCode::OK, TEXT, body),
                            None => text_error(StatusCode::NOT_FOUND, "Not Found"),
                        }
                    }
                    Err(why) => {
                        tracing::debug!(reason = %why, "imds: no credentials to serve");
                        imds_unavailable(&why)
                    }
                }
            }
            Route::Region => response(StatusCode::OK, TEXT, Payload::new(self.region.clone())),
            Route::AvailabilityZone => response(
                StatusCode::OK,
                TEXT,
                Payload::new(self.availability_zone.clone()),
            ),
            _ => not_found("/latest/"),
        };
        r.headers_mut()
            .insert(TTL_HEADER, HeaderValue::from(ceil_seconds(left)));
        r
    }

    /// The container route: the Authorization header is taken now, the token file is read
    /// off the runtime thread (bounded), then the answer comes from memory.
    fn container(this: &Arc<Self>, headers: &HeaderMap) -> Answer {
        let Some(reader) = this.token_file.clone() else {
            return Answer::Now(not_found("/v1/credentials"));
        };
        let Some(presented) = headers.get(AUTHORIZATION) else {
            return Answer::Now(unauthorized("the Authorization header is missing"));
        };
        let presented = Zeroizing::new(presented.as_bytes().to_vec());
        let this = this.clone();
        Answer::Later(Box::pin(async move {
            let expected = match reader.read().await {
                Ok(t) if !t.is_empty() => t,
                Ok(_) => {
                    tracing::warn!(path = %reader.path().display(), "container: the authorization token file is empty; refusing every request");
                    return unauthorized("the authorization token does not match");
                }
                Err(e @ TokenFileError::TimedOut) => {
                    tracing::warn!(path = %reader.path().display(), error = %e, "container: the authorization token file could not be read in time");
                    return json_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        "the authorization token file could not be read in time",
                    );
                }
                Err(e) => {
                    tracing::warn!(path = %reader.path().display(), error = %e, "container: cannot read the authorization token file");
                    return unauthorized("the authorization token does not match");
                }
            };
            this.container_answer(&presented, &expected)
        }))
    }

    fn container_answer(&self, presented: &[u8], expected: &[u8]) -> Response<Payload> {
        if aws_lc_rs::constant_time::verify_slices_are_equal(presented, expected).is_err() {
            tracing::debug!("container: refused a request with a wrong authorization token");
            return unauthorized("the authorization token does not match");
        }
        match current(self.source.as_ref(), &self.rendered, &self.ctx()) {
            Ok(rendered) => credential_body(StatusCode::OK, JSON, &rendered.container),
            Err(why) => {
                tracing::debug!(reason = %why, "container: no credentials to serve");
                json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "CredentialsUnavailable",
                    &why.to_string(),
                )
            }
        }
    }

    /// The `Host` rule (DNS rebinding): refused requests are counted, and logged with the
    /// client's value escaped (a few at info, the rest at debug, so a page cannot flood the
    /// log).
    fn refuse_host(&self, why: Refusal, head: &Parts) -> Response<Payload> {
        let n = self
            .config
            .stats
            .refused_host
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        let host = host::loggable(&head.headers);
        if n <= 10 || n.is_power_of_two() {
            tracing::info!(refused = n, host = %host, rule = ?why, "server: refused a request whose Host does not name the agent (DNS rebinding protection)");
        } else {
            tracing::debug!(refused = n, host = %host, rule = ?why, "server: refused a request whose Host does not name the agent");
        }
        json_error(StatusCode::FORBIDDEN, "Forbidden", why.message())
    }
}

fn unauthorized(message: &str) -> Response<Payload> {
    json_error(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

impl Handler for Endpoints {
    fn respond(this: &Arc<Self>, head: &Parts) -> Answer {
        let (method, path, headers) = (&head.method, head.uri.path(), &head.headers);
        let (route, answer) = if headers.contains_key(FORWARDED_FOR) {
            ("refused-proxied", Answer::Now(forbidden(path)))
        } else if let Err(why) = this.hosts.check(head) {
            ("refused-host", Answer::Now(this.refuse_host(why, head)))
        } else {
            let route = this.route(path);
            let answer = if route == Route::NotFound {
                Answer::Now(not_found(path))
            } else if *method != route.allowed() {
                Answer::Now(method_not_allowed(path, route.allowed()))
            } else {
                match route {
                    Route::Token => Answer::Now(this.issue_token(headers)),
                    Route::Container => Endpoints::container(this, headers),
                    Route::Health => {
                        Answer::Now(health(this.source.as_ref(), &this.rendered, &this.ctx()))
                    }
                    Route::Metrics => Answer::Now(metrics_page()),
                    _ => Answer::Now(this.imds_get(route, headers)),
                }
            };
            (route.name(), answer)
        };
        let answer = counted(route, answer);
        // The route's name, not the path: it is what matters and cannot carry client data.
        if let Answer::Now(r) = &answer {
            tracing::trace!(%method, route, status = r.status().as_u16(), "server: answered");
        } else {
            tracing::trace!(%method, route, "server: answering off the runtime thread");
        }
        answer
    }
}

/// The unix socket endpoints: `GET /v1/process-credentials` for the `credential-process`
/// client of this same agent, `GET /v1/status` for `status`, and `/healthz`.
pub(crate) struct UnixEndpoints {
    source: Arc<dyn CredentialSource>,
    identity_key: IdentityKey,
    rendered: RenderCache,
}

impl UnixEndpoints {
    pub(crate) fn new(source: Arc<dyn CredentialSource>, identity_key: IdentityKey) -> Self {
        UnixEndpoints {
            source,
            identity_key,
            rendered: RenderCache::default(),
        }
    }

    fn identity_matches(&self, headers: &HeaderMap) -> bool {
        headers
            .get(&IDENTITY_HEADER)
            .is_some_and(|v| self.identity_key.matches(v.as_bytes()))
    }

    fn ctx(&self) -> RenderContext<'static> {
        // Only the process JSON and health bodies are served here; they use neither field.
        RenderContext {
            role_arn: "",
            account_id: "",
        }
    }
}

impl Handler for UnixEndpoints {
    // Security: no `Host` rule here. A unix socket is not reachable by a browser (no page can
    // make a request to it, rebinding or not), and its clients are this agent's own
    // `credential-process`, which checks the socket's owner.
    fn respond(this: &Arc<Self>, head: &Parts) -> Answer {
        let (method, path, headers) = (&head.method, head.uri.path(), &head.headers);
        let r = if headers.contains_key(FORWARDED_FOR) {
            forbidden(path)
        } else {
            match path {
                "/v1/process-credentials" if *method != Method::GET => {
                    method_not_allowed(path, Method::GET)
                }
                "/v1/process-credentials" => {
                    if !this.identity_matches(headers) {
                        json_value(
                            StatusCode::NOT_FOUND,
                            &serde_json::json!({ "message": "this agent serves another identity" }),
                        )
                    } else {
                        match current(this.source.as_ref(), &this.rendered, &this.ctx()) {
                            Ok(rendered) => {
                                credential_body(StatusCode::OK, JSON, &rendered.process)
                            }
                            Err(why) => json_error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "CredentialsUnavailable",
                                &why.to_string(),
                            ),
                        }
                    }
                }
                "/healthz" if *method != Method::GET => method_not_allowed(path, Method::GET),
                "/healthz" => health(this.source.as_ref(), &this.rendered, &this.ctx()),
                // `status`: what the agent holds, for people; nothing secret in it, so it
                // needs no identity key (the socket is this user's already).
                "/v1/status" if *method != Method::GET => method_not_allowed(path, Method::GET),
                "/v1/status" => match this.source.status(OffsetDateTime::now_utc()) {
                    Some(status) => match serde_json::to_value(&status) {
                        Ok(value) => json_value(StatusCode::OK, &value),
                        Err(_) => json_error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            "the status could not be rendered",
                        ),
                    },
                    None => not_found(path),
                },
                _ => not_found(path),
            }
        };
        tracing::trace!(%method, path, status = r.status().as_u16(), "server: answered on the unix socket");
        Answer::Now(r)
    }
}
