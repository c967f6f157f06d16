//! The HTTP side of the emulator: accepts loopback connections (optionally TLS), bounds them
//! (connection count, header size and time, body size and time, connection lifetime), turns
//! each request into [`RequestParts`] for the pure verifier, and answers in the service's
//! shape. It also owns the test hooks: `--fail-first`, `--stall-after` and the JSON-lines
//! request log.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::Clock;
use super::body::{Body, read_limited};
use super::response;
use super::verify::{self, ErrorType, RequestParts, Seen, VerifyConfig};

/// Largest request body accepted; CreateSession bodies are well under 1 KiB.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Largest request head (request line and headers): room for a leaf and a few intermediates.
const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BUF: usize = 128 * 1024;
const MAX_HEADERS: usize = 64;
const MAX_CONNECTIONS: usize = 128;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A keep-alive connection is closed after this long, so an idle client cannot hold a slot.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// How long in-flight requests get to finish after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Everything a request handler needs, shared by all connections.
pub(crate) struct State {
    pub verify: VerifyConfig,
    pub fail_first: u64,
    pub fail_status: u16,
    pub fail_after: Option<u64>,
    pub credential_lifetime: Option<u32>,
    pub oversized_body: Option<u64>,
    pub answer_expiration: Option<time::OffsetDateTime>,
    pub stall_after: Option<u64>,
    pub response_delay: Duration,
    pub clock: Clock,
    pub requests: Arc<AtomicU64>,
    pub log: Option<Mutex<std::fs::File>>,
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests finish
/// (bounded by [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "emulate: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!("emulate: too many connections, dropping one");
                    continue;
                };
                let (state, tls, stop) = (state.clone(), tls.clone(), stop_rx.clone());
                connections.spawn(async move {
                    connection(stream, tls, state, stop).await;
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    tracing::info!("emulate: stopped");
}

async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) {
    match tls {
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_http(TokioIo::new(stream), state, stop).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "emulate: TLS handshake failed"),
                Err(_) => tracing::debug!("emulate: TLS handshake timed out"),
            }
        }
        None => serve_http(TokioIo::new(stream), state, stop).await,
    }
}

async fn serve_http<I>(io: I, state: Arc<State>, mut stop: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move {
            let mut response = handle(req, &state).await;
            // The service's clock, not the system's: hyper would send the system time, and
            // `--clock-offset` must show in the header clients read the time from.
            if let Ok(date) = HeaderValue::from_str(&http_date(state.clock.now())) {
                response.headers_mut().insert(hyper::header::DATE, date);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUF)
        .max_headers(MAX_HEADERS);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
    tokio::pin!(lifetime);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "emulate: connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = &mut lifetime => return,
        }
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`: RFC 9110's IMF-fixdate.
fn http_date(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default()
}

/// One request: the fail-first hook, routing, bounded body read, then the verifier.
async fn handle(req: Request<Incoming>, state: &State) -> Response<Body> {
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();

    if state.stall_after.is_some_and(|after| n > after) {
        // Logged as status 0 (no answer), then held until shutdown ends the connection.
        tracing::info!(n, "emulate: stalling (--stall-after)");
        state.log_request(
            n,
            &method,
            &path,
            0,
            None,
            &Seen::default(),
            Some("stalled"),
        );
        std::future::pending::<()>().await;
    }
    if !state.response_delay.is_zero() {
        tokio::time::sleep(state.response_delay).await;
    }
    if n <= state.fail_first || state.fail_after.is_some_and(|after| n > after) {
        let error = ErrorType::for_status(state.fail_status);
        // Name the flag that injected this failure, so a log reader knows which one to drop.
        let flag = if n <= state.fail_first {
            "--fail-first"
        } else {
            "--fail-after"
        };
        let message = match error {
            ErrorType::Throttling => "Rate exceeded".to_string(),
            ErrorType::ServiceUnavailable => format!("Service unavailable (emulate {flag})"),
            ErrorType::InternalServer => format!("Internal server error (emulate {flag})"),
            ErrorType::AccessDenied => format!("Access denied (emulate {flag})"),
            _ => format!("Injected failure {} (emulate {flag})", state.fail_status),
        };
        tracing::info!(
            n,
            status = state.fail_status,
            error_type = error.as_str(),
            "emulate: injected failure"
        );
        state.log_request(
            n,
            &method,
            &path,
            state.fail_status,
            Some(error),
            &Seen::default(),
            Some(&message),
        );
        return error_response(state.fail_status, error, &message);
    }

    if let Err(r) = verify::route(&method, &path) {
        tracing::info!(n, %method, %path, status = r.status, "emulate: no such operation");
        state.log_request(
            n,
            &method,
            &path,
            r.status,
            Some(r.error),
            &r.seen,
            Some(&r.message),
        );
        let mut response = error_response(r.status, r.error, &r.message);
        if r.status == 405 {
            response
                .headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
        }
        return response;
    }

    let (head, body) = req.into_parts();
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_limited(body, MAX_BODY)).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) | Err(_) => {
            let message = format!(
                "The request body could not be read within {BODY_TIMEOUT:?} or exceeds {MAX_BODY} bytes"
            );
            tracing::info!(n, status = 400, "emulate: unreadable body");
            state.log_request(
                n,
                &method,
                &path,
                400,
                Some(ErrorType::Validation),
                &Seen::default(),
                Some(&message),
            );
            return error_response(400, ErrorType::Validation, &message);
        }
    };
    let parts = RequestParts {
        method: method.clone(),
        path: path.clone(),
        query: head.uri.query().unwrap_or("").to_string(),
        headers: head
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let now = state.clock.now();
    match verify::verify(&parts, now, &state.verify) {
        Ok(accepted) => {
            // Never log the credentials themselves: only who got which role for how long.
            tracing::info!(
                n,
                status = 201,
                role_arn = %accepted.role_arn,
                serial = %accepted.serial_decimal,
                source_identity = %accepted.source_identity,
                duration_seconds = accepted.duration_seconds,
                "emulate: CreateSession accepted"
            );
            let seen = Seen {
                role_arn: Some(accepted.role_arn.clone()),
                serial: Some(accepted.serial_decimal.clone()),
                duration_seconds: Some(accepted.duration_seconds),
            };
            state.log_request(n, &method, &path, 201, None, &seen, None);
            if let Some(bytes) = state.oversized_body {
                return oversized_response(bytes);
            }
            let mut body = response::session_body(&accepted, now, state.credential_lifetime);
            if let Some(at) = state.answer_expiration
                && let Some(slot) = body.pointer_mut("/credentialSet/0/credentials/expiration")
            {
                *slot = serde_json::Value::String(crate::timefmt::iso8601(at));
            }
            json_response(201, &body)
        }
        Err(r) => {
            tracing::info!(
                n,
                status = r.status,
                error_type = r.error.as_str(),
                reason = %r.message,
                role_arn = r.seen.role_arn.as_deref().unwrap_or("-"),
                serial = r.seen.serial.as_deref().unwrap_or("-"),
                "emulate: CreateSession rejected"
            );
            state.log_request(
                n,
                &method,
                &path,
                r.status,
                Some(r.error),
                &r.seen,
                Some(&r.message),
            );
            error_response(r.status, r.error, &r.message)
        }
    }
}

impl State {
    /// Appends one JSON line to the request log. A failed write is logged, not fatal: the
    /// answer to the client matters more than the test log.
    #[allow(clippy::too_many_arguments)]
    fn log_request(
        &self,
        n: u64,
        method: &str,
        path: &str,
        status: u16,
        error: Option<ErrorType>,
        seen: &Seen,
        message: Option<&str>,
    ) {
        let Some(log) = &self.log else { return };
        let line = serde_json::json!({
            "n": n,
            "method": method,
            "path": path,
            "status": status,
            "error_type": error.map(ErrorType::as_str),
            "role_arn": seen.role_arn,
            "serial": seen.serial,
            "duration_seconds": seen.duration_seconds,
            "message": message,
        });
        let mut text = line.to_string();
        text.push('\n');
        let result = match log.lock() {
            // One write_all per line under the lock keeps lines whole with concurrent requests.
            Ok(mut file) => file.write_all(text.as_bytes()).and_then(|()| file.flush()),
            Err(_) => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "emulate: cannot write the request log");
        }
    }
}

/// `--oversized-body`: a 201 of `bytes` bytes, made as it is sent (the emulator never holds
/// it) and sent chunked, so a client must notice the size while reading.
fn oversized_response(bytes: u64) -> Response<Body> {
    let mut response = Response::new(Body::Filler { left: bytes });
    *response.status_mut() = StatusCode::CREATED;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn json_response(status: u16, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::full(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(&response::uuid_like()) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    response
}

/// The service's error shape: status, `x-amzn-ErrorType`, `{"message": ...}`.
fn error_response(status: u16, error: ErrorType, message: &str) -> Response<Body> {
    let mut response = json_response(status, &response::error_body(message));
    response.headers_mut().insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static(error.as_str()),
    );
    response
}

#[cfg(test)]
mod date_tests {
    #[test]
    fn the_date_header_is_an_imf_fixdate() {
        let t = time::macros::datetime!(1994-11-06 08:49:37 UTC);
        assert_eq!(super::http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
