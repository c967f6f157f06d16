//! Request routing and answers: the IMDSv2-compatible routes, the container endpoint and the
//! health probe on TCP ([`Endpoints`]), and the process-credentials route on the unix socket
//! ([`UnixEndpoints`]).
//!
//! Handlers are synchronous: credentials come from memory ([`CredentialSource`]) and bodies
//! from [`RenderCache`], so a request never waits on the network, a file lock or an await
//! point while holding a lock. Only the container route touches the disk (the token file,
//! a few dozen bytes read per request so rotation takes effect at once).
//!
//! Order of checks on every request: `X-Forwarded-For` (403), route (404), method (405),
//! authentication (401), then the answer. Header values and tokens are never logged.

use std::sync::Arc;
use std::time::Instant;

use hyper::body::Bytes;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Response, StatusCode};
use time::OffsetDateTime;

use super::body::Payload;
use super::files::read_container_token;
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

/// Something that answers a request from its head alone (no endpoint reads a body).
pub(crate) trait Handler: Send + Sync + 'static {
    fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Payload>;
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

/// The TCP endpoints: IMDSv2, the container endpoint (when a token file is configured) and
/// `/healthz`.
pub(crate) struct Endpoints {
    source: Arc<dyn CredentialSource>,
    config: Arc<ServerConfig>,
    tokens: TokenStore,
    rendered: RenderCache,
    role_name: Bytes,
    region: Bytes,
    availability_zone: Bytes,
}

impl Endpoints {
    pub(crate) fn new(source: Arc<dyn CredentialSource>, config: Arc<ServerConfig>) -> Self {
        let role_name = Bytes::from(config.role_name.clone());
        let region = Bytes::from(config.region.clone());
        let availability_zone = Bytes::from(format!("{}a", config.region));
        Endpoints {
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

    fn container(&self, headers: &HeaderMap) -> Response<Payload> {
        let unauthorized =
            |message: &str| json_error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
        let Some(path) = self.config.container_token_file.as_deref() else {
            return not_found("/v1/credentials");
        };
        let Some(presented) = headers.get(AUTHORIZATION) else {
            return unauthorized("the Authorization header is missing");
        };
        let expected = match read_container_token(path) {
            Ok(t) if !t.is_empty() => t,
            Ok(_) => {
                tracing::warn!(path = %path.display(), "container: the authorization token file is empty; refusing every request");
                return unauthorized("the authorization token does not match");
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "container: cannot read the authorization token file");
                return unauthorized("the authorization token does not match");
            }
        };
        if aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), &expected)
            .is_err()
        {
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
}

impl Handler for Endpoints {
    fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Payload> {
        let (route, r) = if headers.contains_key(FORWARDED_FOR) {
            ("refused-proxied", forbidden(path))
        } else {
            let route = self.route(path);
            let r = if route == Route::NotFound {
                not_found(path)
            } else if *method != route.allowed() {
                method_not_allowed(path, route.allowed())
            } else {
                match route {
                    Route::Token => self.issue_token(headers),
                    Route::Container => self.container(headers),
                    Route::Health => health(self.source.as_ref(), &self.rendered, &self.ctx()),
                    _ => self.imds_get(route, headers),
                }
            };
            (route.name(), r)
        };
        // The route's name, not the path: it is what matters and cannot carry client data.
        tracing::trace!(%method, route, status = r.status().as_u16(), "server: answered");
        r
    }
}

/// The unix socket endpoints: `GET /v1/process-credentials` for the `credential-process`
/// client of this same agent, and `/healthz`.
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
    fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Payload> {
        let r = if headers.contains_key(FORWARDED_FOR) {
            forbidden(path)
        } else {
            match path {
                "/v1/process-credentials" if *method != Method::GET => {
                    method_not_allowed(path, Method::GET)
                }
                "/v1/process-credentials" => {
                    if !self.identity_matches(headers) {
                        json_value(
                            StatusCode::NOT_FOUND,
                            &serde_json::json!({ "message": "this agent serves another identity" }),
                        )
                    } else {
                        match current(self.source.as_ref(), &self.rendered, &self.ctx()) {
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
                "/healthz" => health(self.source.as_ref(), &self.rendered, &self.ctx()),
                _ => not_found(path),
            }
        };
        tracing::trace!(%method, path, status = r.status().as_u16(), "server: answered on the unix socket");
        r
    }
}
