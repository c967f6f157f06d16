//! Talking to tokens: which tokens a URI selects, the certificates and keys on them, and
//! logging in. Tokens are found by their label, serial and the other URI attributes, never
//! by position; a `slot-id` is honoured only when the URI gives one.

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::Pkcs11Error;
use super::der;
use super::error::{describe, rv};
use super::pin::Pins;
use super::uri::{Pkcs11Uri, format_uri};
use crate::identity::Certificate;
use crate::signer::KeyKind;

/// A loaded module and the name it was loaded by (for messages).
#[derive(Clone)]
pub struct Module {
    pub ctx: Pkcs11,
    pub name: String,
}

/// A slot with an initialised token, and what the URI attributes are matched against.
#[derive(Clone, Debug)]
pub struct TokenSlot {
    pub slot: Slot,
    pub label: String,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
    pub slot_description: String,
    pub slot_manufacturer: String,
    pub login_required: bool,
    pub protected_authentication_path: bool,
}

impl TokenSlot {
    /// `'label' (serial S)`, how tokens are named in messages.
    pub fn describe(&self) -> String {
        format!("'{}' (serial {})", self.label, self.serial)
    }

    /// Whether this is the same token as `other` (label and serial), whatever the slot.
    pub fn same_token(&self, other: &TokenSlot) -> bool {
        self.label == other.label && self.serial == other.serial
    }

    fn matches(&self, uri: &Pkcs11Uri) -> bool {
        let eq =
            |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
        eq(&uri.token, &self.label)
            && eq(&uri.serial, &self.serial)
            && eq(&uri.manufacturer, &self.manufacturer)
            && eq(&uri.model, &self.model)
            && eq(&uri.slot_description, &self.slot_description)
            && eq(&uri.slot_manufacturer, &self.slot_manufacturer)
            && uri.slot_id.is_none_or(|id| id == self.slot.id())
    }

    /// The URI path attributes that name this token.
    fn uri_attributes(&self) -> Vec<(&'static str, &[u8])> {
        vec![
            ("model", self.model.as_bytes()),
            ("manufacturer", self.manufacturer.as_bytes()),
            ("serial", self.serial.as_bytes()),
            ("token", self.label.as_bytes()),
        ]
    }

    /// A URI naming one object on this token.
    pub fn object_uri(&self, id: &[u8], label: &[u8], object_type: &str) -> String {
        let mut path = self.uri_attributes();
        if !id.is_empty() {
            path.push(("id", id));
        }
        if !label.is_empty() {
            path.push(("object", label));
        }
        path.push(("type", object_type.as_bytes()));
        format_uri(&path)
    }

    /// A short URI for messages: token, id, label.
    pub fn short_uri(&self, id: &[u8], label: &[u8], object_type: &str) -> String {
        let mut path: Vec<(&str, &[u8])> = vec![("token", self.label.as_bytes())];
        if !id.is_empty() {
            path.push(("id", id));
        }
        if !label.is_empty() {
            path.push(("object", label));
        }
        path.push(("type", object_type.as_bytes()));
        format_uri(&path)
    }
}

impl Module {
    fn error(&self, action: &'static str, e: &CkError) -> Pkcs11Error {
        Pkcs11Error::Module {
            action,
            module: self.name.clone(),
            detail: describe(e),
        }
    }

    pub fn token_error(&self, action: &'static str, token: &TokenSlot, e: &CkError) -> Pkcs11Error {
        Pkcs11Error::Token {
            action,
            module: self.name.clone(),
            token: token.describe(),
            detail: describe(e),
        }
    }

    /// Every slot holding an initialised token. A slot whose token cannot be read is
    /// skipped (a reader with a card being pulled out), as the Go helper does.
    pub fn tokens(&self) -> Result<Vec<TokenSlot>, Pkcs11Error> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| self.error("C_GetSlotList", &e))?;
        let mut tokens = Vec::new();
        for slot in slots {
            let (info, slot_info) = match (
                self.ctx.get_token_info(slot),
                self.ctx.get_slot_info(slot),
            ) {
                (Ok(i), Ok(s)) => (i, s),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(slot = slot.id(), error = %describe(&e), "skipping an unreadable PKCS#11 slot");
                    continue;
                }
            };
            if !info.token_initialized() {
                continue;
            }
            tokens.push(TokenSlot {
                slot,
                label: info.label().trim_end().to_string(),
                serial: info.serial_number().trim_end().to_string(),
                manufacturer: info.manufacturer_id().trim_end().to_string(),
                model: info.model().trim_end().to_string(),
                slot_description: slot_info.slot_description().trim_end().to_string(),
                slot_manufacturer: slot_info.manufacturer_id().trim_end().to_string(),
                login_required: info.login_required(),
                protected_authentication_path: info.protected_authentication_path(),
            });
        }
        Ok(tokens)
    }

    /// The tokens `uri` selects, or an error listing those present when none does.
    pub fn matching(&self, uri: &Pkcs11Uri) -> Result<Vec<TokenSlot>, Pkcs11Error> {
        let all = self.tokens()?;
        let library_matches = self.library_matches(uri)?;
        let matching: Vec<TokenSlot> = all
            .iter()
            .filter(|t| library_matches && t.matches(uri))
            .cloned()
            .collect();
        if matching.is_empty() {
            let present: Vec<String> = all.iter().map(TokenSlot::describe).collect();
            return Err(Pkcs11Error::NoToken {
                module: self.name.clone(),
                uri: uri.to_string(),
                present: if present.is_empty() {
                    "none".into()
                } else {
                    present.join(", ")
                },
            });
        }
        Ok(matching)
    }

    fn library_matches(&self, uri: &Pkcs11Uri) -> Result<bool, Pkcs11Error> {
        if uri.library_manufacturer.is_none()
            && uri.library_description.is_none()
            && uri.library_version.is_none()
        {
            return Ok(true);
        }
        let info = self
            .ctx
            .get_library_info()
            .map_err(|e| self.error("C_GetInfo", &e))?;
        let version = info.library_version();
        Ok(uri
            .library_manufacturer
            .as_deref()
            .is_none_or(|m| m == info.manufacturer_id().trim_end())
            && uri
                .library_description
                .as_deref()
                .is_none_or(|d| d == info.library_description().trim_end())
            && uri
                .library_version
                .is_none_or(|v| v == (version.major(), version.minor())))
    }

    /// A read-only session on `token`.
    pub fn open(&self, token: &TokenSlot) -> Result<Session, Pkcs11Error> {
        self.ctx
            .open_ro_session(token.slot)
            .map_err(|e| self.token_error("C_OpenSession", token, &e))
    }

    /// Logs the user in when the token wants it. The login belongs to the token, shared by
    /// all of this process's sessions on it, so "already logged in" is success. A wrong PIN
    /// is reported at once: retrying would count towards locking the token.
    pub fn login(
        &self,
        session: &Session,
        token: &TokenSlot,
        pins: &mut Pins,
    ) -> Result<(), Pkcs11Error> {
        if !token.login_required {
            return Ok(());
        }
        let pin = pins.get(&token.describe());
        self.relogin(session, token, pin.as_ref())
    }

    /// Logs in with a PIN already known (also the recovery after a token was re-inserted);
    /// without one, only a token with its own PIN pad or biometric reader can log in.
    pub fn relogin(
        &self,
        session: &Session,
        token: &TokenSlot,
        pin: Option<&SecretString>,
    ) -> Result<(), Pkcs11Error> {
        if !token.login_required {
            return Ok(());
        }
        let result = match pin {
            Some(pin) => session.login(UserType::User, Some(pin)),
            // A PIN pad or biometric reader asks the user itself.
            None if token.protected_authentication_path => session.login(UserType::User, None),
            None => {
                return Err(Pkcs11Error::PinNeeded {
                    token: token.describe(),
                });
            }
        };
        self.login_result(result, token)
    }

    fn login_result(
        &self,
        result: Result<(), CkError>,
        token: &TokenSlot,
    ) -> Result<(), Pkcs11Error> {
        match result {
            Ok(()) => Ok(()),
            Err(e) => match rv(&e) {
                Some(RvError::UserAlreadyLoggedIn) => Ok(()),
                Some(RvError::PinIncorrect) => Err(Pkcs11Error::PinIncorrect {
                    token: token.describe(),
                }),
                Some(RvError::PinLocked) => Err(Pkcs11Error::PinLocked {
                    token: token.describe(),
                }),
                _ => Err(self.token_error("C_Login", token, &e)),
            },
        }
    }

    /// The mechanisms the token offers (empty when it will not say).
    pub fn mechanisms(&self, token: &TokenSlot) -> Vec<MechanismType> {
        self.ctx.get_mechanism_list(token.slot).unwrap_or_default()
    }

    /// Finds `token` again after it went away: by label and serial, in whatever slot.
    pub fn find_again(&self, token: &TokenSlot) -> Result<TokenSlot, Pkcs11Error> {
        self.tokens()?
            .into_iter()
            .find(|t| t.same_token(token))
            .ok_or_else(|| Pkcs11Error::NoToken {
                module: self.name.clone(),
                uri: format_uri(&[
                    ("token", token.label.as_bytes()),
                    ("serial", token.serial.as_bytes()),
                ]),
                present: "it was there before".into(),
            })
    }
}

/// A certificate object on a token.
#[derive(Clone, Debug)]
pub struct TokenCert {
    pub cert: Certificate,
    pub id: Vec<u8>,
    pub label: Vec<u8>,
}

impl TokenCert {
    /// Whether the URI's object attributes (`object`, `id`) select this certificate.
    pub fn matches(&self, uri: &Pkcs11Uri) -> bool {
        uri.object
            .as_deref()
            .is_none_or(|l| l == self.label.as_slice())
            && uri.id.as_deref().is_none_or(|i| i == self.id.as_slice())
    }
}

/// Every X.509 certificate visible in `session`. Objects that do not parse are skipped
/// (with a debug line): they cannot be the one wanted.
pub fn certificates(session: &Session) -> Result<Vec<TokenCert>, CkError> {
    let template = [
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
    ];
    let mut certs = Vec::new();
    for handle in session.find_objects(&template)? {
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::Value,
                AttributeType::Id,
                AttributeType::Label,
            ],
        )?;
        let mut value = None;
        let mut id = Vec::new();
        let mut label = Vec::new();
        for attr in attrs {
            match attr {
                Attribute::Value(v) => value = Some(v),
                Attribute::Id(v) => id = v,
                Attribute::Label(v) => label = v,
                _ => {}
            }
        }
        let Some(der) = value else { continue };
        match Certificate::from_der(&der) {
            Ok(cert) => certs.push(TokenCert { cert, id, label }),
            Err(detail) => {
                tracing::debug!(%detail, "skipping a certificate object that does not parse")
            }
        }
    }
    Ok(certs)
}

/// What the signer needs to know about a private key object.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub handle: ObjectHandle,
    pub id: Vec<u8>,
    pub label: Vec<u8>,
    pub kind: Result<KeyKind, String>,
    /// The subjectPublicKey bits, when the token shows them.
    pub public_key: Option<Vec<u8>>,
    pub always_authenticate: bool,
}

/// The private keys in `session` with the given CKA_ID and CKA_LABEL (each when given).
pub fn private_keys(
    session: &Session,
    id: Option<&[u8]>,
    label: Option<&[u8]>,
) -> Result<Vec<ObjectHandle>, CkError> {
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    if let Some(label) = label {
        template.push(Attribute::Label(label.to_vec()));
    }
    session.find_objects(&template)
}

/// Reads a private key's type, size, public half and flags. RSA private keys carry the
/// modulus and exponent; for EC the point comes from the key itself when the token shows it,
/// else from the public key object with the same CKA_ID.
pub fn key_info(session: &Session, handle: ObjectHandle) -> Result<KeyInfo, CkError> {
    let attrs = session.get_attributes(
        handle,
        &[
            AttributeType::KeyType,
            AttributeType::Id,
            AttributeType::Label,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
            AttributeType::EcParams,
            AttributeType::EcPoint,
            AttributeType::AlwaysAuthenticate,
        ],
    )?;
    let mut key_type = None;
    let (mut id, mut label) = (Vec::new(), Vec::new());
    let (mut modulus, mut exponent, mut params, mut point) = (None, None, None, None);
    let mut always_authenticate = false;
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Id(v) => id = v,
            Attribute::Label(v) => label = v,
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            Attribute::AlwaysAuthenticate(b) => always_authenticate = b,
            _ => {}
        }
    }
    let (kind, public_key) = match key_type {
        Some(KeyType::RSA) => match &modulus {
            Some(n) => {
                let public = match exponent.as_deref() {
                    Some(e) => Some(der::rsa_public_key(n, e)),
                    // The exponent is optional on a private key; the public key has it.
                    None if !id.is_empty() => public_rsa_key(session, &id, n)?,
                    None => None,
                };
                (
                    Ok(KeyKind::Rsa {
                        bits: crate::der::bit_length(n),
                    }),
                    public,
                )
            }
            None => (
                Err("an RSA key without a readable modulus".to_string()),
                None,
            ),
        },
        Some(KeyType::EC) => {
            let kind = match &params {
                Some(p) => der::ec_kind(p),
                None => Err("an EC key without readable curve parameters".to_string()),
            };
            let public = match (&kind, point) {
                (Ok(k), Some(p)) => der::ec_point(&p, *k),
                (Ok(k), None) if !id.is_empty() => public_ec_point(session, &id, *k)?,
                _ => None,
            };
            (kind, public)
        }
        Some(other) => (Err(format!("a {other} key")), None),
        None => (Err("a key of unknown type".to_string()), None),
    };
    Ok(KeyInfo {
        handle,
        id,
        label,
        kind,
        public_key,
        always_authenticate,
    })
}

/// The `RSAPublicKey` of the one RSA public key object with this CKA_ID and modulus, if
/// there is exactly one.
fn public_rsa_key(
    session: &Session,
    id: &[u8],
    modulus: &[u8],
) -> Result<Option<Vec<u8>>, CkError> {
    let template = [
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Id(id.to_vec()),
    ];
    let handles = session.find_objects(&template)?;
    let [handle] = handles.as_slice() else {
        return Ok(None);
    };
    let attrs = session.get_attributes(
        *handle,
        &[AttributeType::Modulus, AttributeType::PublicExponent],
    )?;
    let (mut n, mut e) = (None, None);
    for attr in attrs {
        match attr {
            Attribute::Modulus(v) => n = Some(v),
            Attribute::PublicExponent(v) => e = Some(v),
            _ => {}
        }
    }
    Ok(match (n, e) {
        (Some(n), Some(e)) if der::same_unsigned(&n, modulus) => Some(der::rsa_public_key(&n, &e)),
        _ => None,
    })
}

/// The EC point of the one public key object with this CKA_ID, if there is exactly one.
fn public_ec_point(
    session: &Session,
    id: &[u8],
    kind: KeyKind,
) -> Result<Option<Vec<u8>>, CkError> {
    let template = [
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Id(id.to_vec()),
    ];
    let handles = session.find_objects(&template)?;
    let [handle] = handles.as_slice() else {
        return Ok(None);
    };
    let attrs = session.get_attributes(*handle, &[AttributeType::EcPoint])?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::EcPoint(p) => der::ec_point(&p, kind),
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(label: &str, serial: &str) -> TokenSlot {
        TokenSlot {
            slot: Slot::try_from(7u64).unwrap(),
            label: label.into(),
            serial: serial.into(),
            manufacturer: "SoftHSM project".into(),
            model: "SoftHSM v2".into(),
            slot_description: "SoftHSM slot ID 0x7".into(),
            slot_manufacturer: "SoftHSM project".into(),
            login_required: true,
            protected_authentication_path: false,
        }
    }

    #[test]
    fn tokens_match_by_label_serial_and_explicit_slot_only() {
        let t = slot("my token", "abc");
        let uri = |s: &str| Pkcs11Uri::parse(s).unwrap();
        assert!(t.matches(&uri("pkcs11:")));
        assert!(t.matches(&uri("pkcs11:token=my%20token")));
        assert!(t.matches(&uri("pkcs11:serial=abc;manufacturer=SoftHSM%20project")));
        assert!(t.matches(&uri("pkcs11:slot-id=7")));
        assert!(!t.matches(&uri("pkcs11:slot-id=0")));
        assert!(!t.matches(&uri("pkcs11:token=my")));
        assert!(!t.matches(&uri("pkcs11:model=other")));
        // Object attributes do not select tokens.
        assert!(t.matches(&uri("pkcs11:token=my%20token;object=x;id=%01")));
    }

    #[test]
    fn object_uris_name_the_token_and_object() {
        let t = slot("my token", "abc");
        assert_eq!(
            t.object_uri(&[1], b"leaf", "cert"),
            "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=abc;token=my%20token;id=%01;object=leaf;type=cert"
        );
        assert_eq!(
            t.short_uri(&[], b"k", "private"),
            "pkcs11:token=my%20token;object=k;type=private"
        );
        assert!(t.same_token(&slot("my token", "abc")));
        assert!(!t.same_token(&slot("my token", "abd")));
    }
}
