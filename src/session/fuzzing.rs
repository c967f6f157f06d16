//! Entry points for the fuzz targets under `fuzz/`: the CreateSession response parsers,
//! private to the client. Hidden from the docs and not an API.

use time::OffsetDateTime;

use super::SessionError;
use crate::credentials::Credentials;

/// A 2xx body, as the client reads it at `now`.
pub fn parse_success(body: &[u8], now: OffsetDateTime) -> Result<Credentials, SessionError> {
    super::parse_success(body, now)
}

/// An error answer: its status, `x-amzn-ErrorType` header (when sent) and body.
pub fn parse_failure(status: u16, error_type: Option<String>, body: &[u8]) -> SessionError {
    super::parse_failure(status, error_type, body)
}
