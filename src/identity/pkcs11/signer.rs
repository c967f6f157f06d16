//! [`Pkcs11Signer`]: a private key on a token behind [`crate::signer::Signer`].
//!
//! The session is opened once (at load) and reused: the agent signs from its refresh task,
//! so the signer is `Send + Sync` with the session behind a mutex. When the token went away
//! (removed, re-inserted, the session closed or logged out under us), the next signature
//! reports it, finds the token again by label and serial, opens a new session, logs in with
//! the PIN it was given, finds the key again by its CKA_ID and label, and retries once.
//!
//! Mechanisms: RSA signs the whole message with `CKM_SHA{256,384,512}_RSA_PKCS` (or, when a
//! token lacks those, `CKM_RSA_PKCS` over a host-made `DigestInfo`); ECDSA signs a host-side
//! digest with `CKM_ECDSA`, and the raw `r‖s` it returns is DER-encoded. A key with
//! CKA_ALWAYS_AUTHENTICATE needs `C_SignInit`, a context-specific `C_Login`, then the
//! signature: cryptoki offers that order only for multi-part signing, so such keys sign with
//! the hash-and-sign mechanisms (`CKM_SHA256_RSA_PKCS`, `CKM_ECDSA_SHA256`, ...).

use std::fmt;
use std::sync::Mutex;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use secrecy::SecretString;

use super::Pkcs11Error;
use super::error::{describe, rv};
use super::token::{KeyInfo, Module, TokenSlot, key_info, private_keys};
use crate::signer::{Digest, KeyKind, SignError, Signer};

/// A private key on a PKCS#11 token.
pub struct Pkcs11Signer {
    module: Module,
    key_id: Vec<u8>,
    key_label: Vec<u8>,
    kind: KeyKind,
    public_key: Option<Vec<u8>>,
    always_authenticate: bool,
    user_pin: Option<SecretString>,
    context_pin: Option<SecretString>,
    mechanisms: Vec<MechanismType>,
    source: String,
    state: Mutex<State>,
}

/// The token as last seen and the session on it, if one is open.
struct State {
    token: TokenSlot,
    live: Option<Live>,
    /// Set once the token refused our PIN: every further try would count towards locking
    /// it, so no login is attempted again in this process.
    pin_refused: Option<String>,
}

struct Live {
    session: Session,
    key: ObjectHandle,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("source", &self.source)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why one signing attempt failed.
enum Failure {
    Token(CkError),
    Other(String),
}

impl From<CkError> for Failure {
    fn from(e: CkError) -> Self {
        Failure::Token(e)
    }
}

/// Errors after which a fresh session may succeed: the token was removed or re-inserted,
/// the session or the login is gone, or the handles no longer name anything.
fn recoverable(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
        )
    )
}

/// What `new` needs: the session the key was found in and what is known about the key.
pub struct Opened {
    pub module: Module,
    pub token: TokenSlot,
    pub session: Session,
    pub key: KeyInfo,
    pub kind: KeyKind,
    pub user_pin: Option<SecretString>,
    pub context_pin: Option<SecretString>,
}

impl Pkcs11Signer {
    /// Wraps a key found at load time, keeping its session open.
    pub fn new(opened: Opened) -> Result<Self, Pkcs11Error> {
        let Opened {
            module,
            token,
            session,
            key,
            kind,
            user_pin,
            context_pin,
        } = opened;
        let mechanisms = module.mechanisms(&token);
        let source = token.short_uri(&key.id, &key.label, "private");
        if key.always_authenticate {
            let needed = match kind {
                KeyKind::Rsa { .. } => ("CKM_SHA256_RSA_PKCS", MechanismType::SHA256_RSA_PKCS),
                KeyKind::EcP256 | KeyKind::EcP384 => {
                    ("CKM_ECDSA_SHA256", MechanismType::ECDSA_SHA256)
                }
                KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87 => {
                    return Err(Pkcs11Error::UnsupportedKey {
                        key: source,
                        what: kind.to_string(),
                    });
                }
            };
            if !mechanisms.contains(&needed.1) {
                return Err(Pkcs11Error::ContextLoginUnsupported {
                    key: source,
                    mechanism: needed.0,
                });
            }
            if context_pin.is_none() {
                return Err(Pkcs11Error::ContextPinNeeded { key: source });
            }
        }
        Ok(Pkcs11Signer {
            module,
            key_id: key.id,
            key_label: key.label,
            kind,
            public_key: key.public_key,
            always_authenticate: key.always_authenticate,
            user_pin,
            context_pin,
            mechanisms,
            source,
            state: Mutex::new(State {
                token,
                live: Some(Live {
                    session,
                    key: key.handle,
                }),
                pin_refused: None,
            }),
        })
    }

    /// Signs once with the open session, mapping a wrong context PIN to a clear error. Used
    /// at load for keys that need a login per signature, so a wrong PIN is a configuration
    /// error and not a failure at the first refresh.
    pub fn check_context_login(&self) -> Result<(), Pkcs11Error> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let token = state.token.clone();
        let Some(live) = state.live.take() else {
            return Ok(());
        };
        match self.sign_once(&live, b"rolesanywhere-agent login check", Digest::Sha256) {
            Ok(_) => {
                state.live = Some(live);
                Ok(())
            }
            Err(Failure::Token(e)) => Err(match rv(&e) {
                Some(RvError::PinIncorrect) => Pkcs11Error::PinIncorrect {
                    token: format!(
                        "{} (context-specific login for {})",
                        token.describe(),
                        self.source
                    ),
                },
                Some(RvError::PinLocked) => Pkcs11Error::PinLocked {
                    token: token.describe(),
                },
                _ => self.module.token_error("signing", &token, &e),
            }),
            Err(Failure::Other(reason)) => Err(Pkcs11Error::Token {
                action: "signing",
                module: self.module.name.clone(),
                token: token.describe(),
                detail: reason,
            }),
        }
    }

    fn backend(&self, reason: String) -> SignError {
        SignError::Backend {
            source_name: Signer::source(self),
            reason,
        }
    }

    /// A new session on the token, found again by label and serial, logged in, with the key.
    fn reopen(&self, token: &mut TokenSlot) -> Result<Live, Pkcs11Error> {
        let found = self.module.find_again(token)?;
        *token = found;
        let session = self.module.open(token)?;
        self.module
            .relogin(&session, token, self.user_pin.as_ref())?;
        let id = (!self.key_id.is_empty()).then_some(self.key_id.as_slice());
        let label = (!self.key_label.is_empty()).then_some(self.key_label.as_slice());
        let handles = private_keys(&session, id, label)
            .map_err(|e| self.module.token_error("C_FindObjects", token, &e))?;
        let mut fallback = None;
        for handle in handles {
            let info = key_info(&session, handle)
                .map_err(|e| self.module.token_error("C_GetAttributeValue", token, &e))?;
            if info.kind.as_ref().ok() != Some(&self.kind) {
                continue;
            }
            if self.public_key.is_some() && info.public_key == self.public_key {
                return Ok(Live {
                    session,
                    key: handle,
                });
            }
            fallback.get_or_insert(handle);
        }
        match fallback {
            Some(key) => Ok(Live { session, key }),
            None => Err(Pkcs11Error::NoKey {
                module: self.module.name.clone(),
                token: token.describe(),
                label: token.label.clone(),
                wanted: self.source.clone(),
            }),
        }
    }

    fn sign_once(&self, live: &Live, message: &[u8], digest: Digest) -> Result<Vec<u8>, Failure> {
        let session = &live.session;
        match self.kind {
            KeyKind::Rsa { bits } => {
                let (mechanism, mechanism_type) = match digest {
                    Digest::Sha256 => (Mechanism::Sha256RsaPkcs, MechanismType::SHA256_RSA_PKCS),
                    Digest::Sha384 => (Mechanism::Sha384RsaPkcs, MechanismType::SHA384_RSA_PKCS),
                    Digest::Sha512 => (Mechanism::Sha512RsaPkcs, MechanismType::SHA512_RSA_PKCS),
                };
                let signature = if self.always_authenticate {
                    self.sign_with_context_login(session, &mechanism, live.key, message)?
                } else if self.offers(mechanism_type) {
                    session.sign(&mechanism, live.key, message)?
                } else {
                    let info = super::der::digest_info(digest, &digest.hash(message));
                    session.sign(&Mechanism::RsaPkcs, live.key, &info)?
                };
                if signature.len() != bits.div_ceil(8) {
                    return Err(Failure::Other(format!(
                        "the token returned a {}-byte signature for a {bits}-bit RSA key",
                        signature.len()
                    )));
                }
                Ok(signature)
            }
            KeyKind::EcP256 | KeyKind::EcP384 => {
                let raw = if self.always_authenticate {
                    let mechanism = match digest {
                        Digest::Sha256 => Mechanism::EcdsaSha256,
                        Digest::Sha384 => Mechanism::EcdsaSha384,
                        Digest::Sha512 => Mechanism::EcdsaSha512,
                    };
                    self.sign_with_context_login(session, &mechanism, live.key, message)?
                } else {
                    session.sign(&Mechanism::Ecdsa, live.key, &digest.hash(message))?
                };
                let expected = if self.kind == KeyKind::EcP256 { 64 } else { 96 };
                if raw.len() != expected {
                    return Err(Failure::Other(format!(
                        "the token returned a {}-byte ECDSA signature, expected {expected} (r||s)",
                        raw.len()
                    )));
                }
                crate::der::ecdsa_raw_to_der(&raw).ok_or_else(|| {
                    Failure::Other("the token returned a malformed ECDSA signature".into())
                })
            }
            // Never loaded from a token (see `Pkcs11Signer::new` and the key lookup).
            KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87 => Err(Failure::Other(format!(
                "{} keys are not supported on PKCS#11 tokens",
                self.kind
            ))),
        }
    }

    /// `C_SignInit`, `C_Login(CKU_CONTEXT_SPECIFIC)`, then the signature, in that order as
    /// PKCS#11 requires for CKA_ALWAYS_AUTHENTICATE keys.
    fn sign_with_context_login(
        &self,
        session: &Session,
        mechanism: &Mechanism<'_>,
        key: ObjectHandle,
        message: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        let pin = self
            .context_pin
            .as_ref()
            .ok_or_else(|| Failure::Other("no PIN for the context-specific login".into()))?;
        session.sign_init(mechanism, key)?;
        session.login(UserType::ContextSpecific, Some(pin))?;
        session.sign_update(message)?;
        Ok(session.sign_final()?)
    }

    /// Whether the token lists `mechanism`; a token that lists nothing is trusted to have it.
    fn offers(&self, mechanism: MechanismType) -> bool {
        self.mechanisms.is_empty() || self.mechanisms.contains(&mechanism)
    }
}

impl Signer for Pkcs11Signer {
    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, SignError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = &state.pin_refused {
            return Err(self.backend(format!(
                "{reason}; not trying again, so the token does not lock (fix the PIN and restart or reload)"
            )));
        }
        let mut retried = false;
        loop {
            let live = match state.live.take() {
                Some(live) => live,
                None => match self.reopen(&mut state.token) {
                    Ok(live) => live,
                    Err(e) => {
                        if matches!(
                            e,
                            Pkcs11Error::PinIncorrect { .. } | Pkcs11Error::PinLocked { .. }
                        ) {
                            state.pin_refused = Some(e.to_string());
                        }
                        return Err(self.backend(e.to_string()));
                    }
                },
            };
            // On any failure the session is dropped rather than put back: it may hold a
            // half-done operation, or be dead; the next attempt opens a fresh one.
            match self.sign_once(&live, message, digest) {
                Ok(signature) => {
                    state.live = Some(live);
                    return Ok(signature);
                }
                Err(Failure::Token(e)) if !retried && recoverable(&e) => {
                    tracing::warn!(
                        token = %state.token.describe(),
                        error = %describe(&e),
                        "the PKCS#11 token was removed, re-inserted or logged out; opening a new session and retrying once"
                    );
                    retried = true;
                }
                Err(Failure::Token(e)) => {
                    // A context-specific login refused.
                    if matches!(rv(&e), Some(RvError::PinIncorrect | RvError::PinLocked)) {
                        state.pin_refused = Some(format!(
                            "token {} refused the PIN ({})",
                            state.token.describe(),
                            describe(&e)
                        ));
                    }
                    return Err(self.backend(describe(&e)));
                }
                Err(Failure::Other(reason)) => return Err(self.backend(reason)),
            }
        }
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        self.public_key.clone()
    }

    fn source(&self) -> String {
        format!("PKCS#11 object {}", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_signer_can_be_shared_with_the_refresh_task() {
        assert_send_sync::<Pkcs11Signer>();
    }

    #[test]
    fn which_errors_reopen_the_session() {
        use cryptoki::context::Function;
        for rv in [
            RvError::SessionHandleInvalid,
            RvError::DeviceRemoved,
            RvError::TokenNotPresent,
            RvError::SessionClosed,
            RvError::UserNotLoggedIn,
        ] {
            assert!(recoverable(&CkError::Pkcs11(rv, Function::Sign)), "{rv:?}");
        }
        for rv in [
            RvError::PinIncorrect,
            RvError::MechanismInvalid,
            RvError::GeneralError,
        ] {
            assert!(!recoverable(&CkError::Pkcs11(rv, Function::Sign)), "{rv:?}");
        }
    }
}
