//! The production [`Loader`]: CreateSession with the current identity. The identity can be
//! swapped at run time (a renewal noticed by the rotation, or SIGHUP); the next session
//! uses it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock, Weak};

use super::cache::{LoadError, LoadErrorKind, Loader};
use crate::config::SessionSettings;
use crate::identity::Identity;
use crate::session::{SessionClient, SessionError};

/// What runs before each CreateSession: the rotation's check for a renewal that inotify did
/// not see. A trait, so that the loader does not name the rotation that drives it (the
/// rotation depends on the loader, not the other way round).
pub trait BeforeSession: Send + Sync {
    fn before_session(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

pub struct SessionLoader {
    client: SessionClient,
    identity: RwLock<Arc<Identity>>,
    settings: SessionSettings,
    /// Run before each CreateSession. Weak: the rotation holds the loader.
    before: OnceLock<Weak<dyn BeforeSession>>,
}

impl SessionLoader {
    pub fn new(client: SessionClient, identity: Identity, settings: SessionSettings) -> Self {
        crate::metrics::global()
            .set_certificate_not_after(identity.certificate.not_after().unix_timestamp());
        SessionLoader {
            client,
            identity: RwLock::new(Arc::new(identity)),
            settings,
            before: OnceLock::new(),
        }
    }

    /// Runs `hook` before each CreateSession (the first one set stays).
    pub fn follow(&self, hook: Weak<dyn BeforeSession>) {
        let _ = self.before.set(hook);
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
            if let Some(hook) = self.before.get().and_then(Weak::upgrade) {
                hook.before_session().await;
            }
            let identity = self.identity();
            self.client
                .create_session(&identity, &self.settings)
                .await
                .map_err(load_error)
        })
    }
}

/// Keeps the session's typed error, its kind and its hint for the cache and `/healthz`.
fn load_error(e: SessionError) -> LoadError {
    let kind = if e.is_configuration() {
        LoadErrorKind::Configuration
    } else {
        LoadErrorKind::Retryable
    };
    let hint = e.hint();
    LoadError::new(kind, e, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    #[test]
    fn the_kind_and_cause_stay_typed_and_print_as_main_would() {
        let e = load_error(SessionError::Transport {
            endpoint: "https://127.0.0.1:1".into(),
            detail: "connection refused".into(),
        });
        assert_eq!(e.kind(), LoadErrorKind::Retryable);
        assert!(matches!(
            e.cause().downcast_ref::<SessionError>(),
            Some(SessionError::Transport { .. })
        ));
        let report = crate::error::Report(
            &SessionError::Transport {
                endpoint: "https://127.0.0.1:1".into(),
                detail: "connection refused".into(),
            }
            .into(),
        )
        .to_string();
        assert_eq!(format!("error: {e}"), report);
        assert!(e.to_string().contains("\n  hint: "), "{e}");

        let e = load_error(SessionError::Config(ConfigError::Missing {
            flag: "--ca-bundle",
        }));
        assert_eq!(e.kind(), LoadErrorKind::Configuration);
    }
}
