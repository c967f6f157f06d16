//! A `CredentialSource` that answers whatever the test last set: the server's tests use it in
//! place of the refreshing cache (`tests/it/server_endpoints.rs`, and the route unit tests in
//! `src/server/tests.rs` include this file). The includer's module has `Credentials`,
//! `CredentialSource` and `Unavailable` in scope, so the file names no crate path.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;

use super::{CredentialSource, Credentials, Unavailable};

pub struct FakeSource(Mutex<Result<Arc<Credentials>, Unavailable>>);

impl FakeSource {
    pub fn answering(value: Result<Arc<Credentials>, Unavailable>) -> Arc<Self> {
        Arc::new(FakeSource(Mutex::new(value)))
    }

    pub fn set(&self, value: Result<Arc<Credentials>, Unavailable>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

impl CredentialSource for FakeSource {
    fn current(&self, _now: OffsetDateTime) -> Result<Arc<Credentials>, Unavailable> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
