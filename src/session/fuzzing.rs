//! Entry points for the fuzz targets under `fuzz/`: the CreateSession response parsers,
//! private to the client. Hidden from the docs and not an API.

use time::OffsetDateTime;

use super::SessionError;
use crate::credentials::Credentials;

/// A 2xx body, as the client reads it at `now` for a session of `duration_seconds`.
pub fn parse_success(
    body: &[u8],
    now: OffsetDateTime,
    duration_seconds: u32,
) -> Result<Credentials, SessionError> {
    super::parse_success(body, now, duration_seconds)
}

/// An error answer: its status, `x-amzn-ErrorType` header (when sent) and body, for a
/// request signed at `local_time`.
pub fn parse_failure(
    status: u16,
    error_type: Option<String>,
    body: &[u8],
    local_time: OffsetDateTime,
) -> SessionError {
    super::parse_failure(status, error_type, body, local_time)
}
