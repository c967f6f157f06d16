//! The production [`Loader`]: CreateSession with the current identity. The identity can be
//! swapped at run time (SIGHUP after a certificate rotation); the next session uses it.

use std::sync::{Arc, RwLock};

use super::cache::{LoadError, Loader};
use crate::config::SessionSettings;
use crate::error::Report;
use crate::identity::Identity;
use crate::session::SessionClient;

pub struct SessionLoader {
    client: SessionClient,
    identity: RwLock<Arc<Identity>>,
    settings: SessionSettings,
}

impl SessionLoader {
    pub fn new(client: SessionClient, identity: Identity, settings: SessionSettings) -> Self {
        crate::metrics::global()
            .set_certificate_not_after(identity.certificate.not_after().unix_timestamp());
        SessionLoader {
            client,
            identity: RwLock::new(Arc::new(identity)),
            settings,
        }
    }

    /// The identity the next CreateSession will use.
    pub fn identity(&self) -> Arc<Identity> {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the identity for the next CreateSession.
    pub fn set_identity(&self, identity: Identity) {
        let metrics = crate::metrics::global();
        metrics.set_certificate_not_after(identity.certificate.not_after().unix_timestamp());
        metrics.identity_reloaded();
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(identity);
    }
}

impl Loader for SessionLoader {
    fn load(
        &self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<crate::credentials::Credentials, LoadError>>
                + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            let identity = self.identity();
            self.client
                .create_session(&identity, &self.settings)
                .await
                .map_err(|e| {
                    LoadError(
                        Report(&e.into())
                            .to_string()
                            .trim_start_matches("error: ")
                            .to_string(),
                    )
                })
        })
    }
}
