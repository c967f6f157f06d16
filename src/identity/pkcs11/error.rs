//! [`Pkcs11Error`]: everything that can go wrong finding a certificate and key on a token,
//! each with a hint that says what to do. URIs in messages are redacted (no `pin-value`),
//! and PINs never appear anywhere.

use cryptoki::error::{Error as CkError, RvError};

use super::selector::SelectorError;
use super::uri::UriError;

/// The command that lists a module's tokens, for hints.
fn list_tokens(module: &str) -> String {
    format!("list tokens with `p11tool --list-tokens` or `pkcs11-tool --module {module} -L`")
}

/// The command that lists a token's objects, for hints.
fn list_objects(module: &str, token: &str) -> String {
    format!(
        "list its objects with `p11tool --list-all 'pkcs11:token={}'` or `pkcs11-tool --module {module} --token-label '{token}' --login -O`",
        super::uri::percent_encode(token.as_bytes())
    )
}

/// Why a PKCS#11 identity cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    #[error("{flag} {uri} is not a valid PKCS#11 URI: {source}")]
    Uri {
        flag: &'static str,
        uri: String,
        #[source]
        source: UriError,
    },
    #[error("{flag} {uri} has type={found}, but {flag} needs type={expected}")]
    WrongType {
        flag: &'static str,
        uri: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("--cert-selector is not usable: {0}")]
    Selector(#[from] SelectorError),
    #[error("{flag} applies to certificates on a PKCS#11 token, but --certificate is a file")]
    TokenOnlyFlag { flag: &'static str },
    #[error(
        "--private-key {path} is a file, but --certificate is a pkcs11: URI (a token's certificate is used with its key on the token)"
    )]
    KeyFileWithTokenCertificate { path: String },
    #[error("--certificate is missing; a key on a token still needs its certificate")]
    NoCertificateGiven,
    #[error("cannot read {flag} file {path}: {detail}")]
    File {
        flag: &'static str,
        path: String,
        detail: String,
    },
    #[error(
        "no PKCS#11 module given, and p11-kit's proxy module is not installed (looked for {looked})"
    )]
    NoModule { looked: String },
    #[error("module-name={name}: no PKCS#11 module of that name is registered with p11-kit")]
    UnknownModuleName { name: String },
    #[error("the PKCS#11 modules {first} and {second} are both named; use one")]
    ModuleConflict { first: String, second: String },
    #[error("cannot load the PKCS#11 module {module}: {detail}")]
    ModuleLoad { module: String, detail: String },
    #[error("{action} failed in the PKCS#11 module {module}: {detail}")]
    Module {
        action: &'static str,
        module: String,
        detail: String,
    },
    #[error("no token in the PKCS#11 module {module} matches {uri} (tokens present: {present})")]
    NoToken {
        module: String,
        uri: String,
        present: String,
    },
    #[error("several tokens in the PKCS#11 module {module} match {uri}: {tokens}")]
    SeveralTokens {
        module: String,
        uri: String,
        tokens: String,
    },
    #[error("{action} failed on token {token}: {detail}")]
    Token {
        action: &'static str,
        module: String,
        token: String,
        detail: String,
    },
    #[error("token {token} needs a PIN and none was given")]
    PinNeeded { token: String },
    #[error("the PIN for token {token} is incorrect")]
    PinIncorrect { token: String },
    #[error("the user PIN of token {token} is locked")]
    PinLocked { token: String },
    #[error("cannot read the PIN from {source_name} (pin-source): {detail}")]
    PinSource { source_name: String, detail: String },
    #[error("no certificate on {tokens} matches {uri}{filtered}")]
    NoCertificate {
        module: String,
        tokens: String,
        /// The label of the one token searched, when there was one.
        label: Option<String>,
        uri: String,
        filtered: String,
    },
    #[error("several certificates match {uri}:\n{list}")]
    SeveralCertificates { uri: String, list: String },
    #[error("no private key on token {token} matches {wanted}")]
    NoKey {
        module: String,
        token: String,
        label: String,
        wanted: String,
    },
    #[error(
        "several private keys on token {token} match {wanted}, and none can be told to belong to the certificate"
    )]
    SeveralKeys {
        module: String,
        token: String,
        label: String,
        wanted: String,
    },
    #[error("the private key {key} does not belong to the certificate {certificate}")]
    KeyMismatch {
        module: String,
        label: String,
        key: String,
        certificate: String,
    },
    #[error("the private key {key} is {what}, which IAM Roles Anywhere does not accept")]
    UnsupportedKey { key: String, what: String },
    #[error(
        "the private key {key} needs its PIN again for every signature (CKA_ALWAYS_AUTHENTICATE), and no PIN for that was given"
    )]
    ContextPinNeeded { key: String },
    #[error(
        "the private key {key} needs a login for every signature (CKA_ALWAYS_AUTHENTICATE), which needs the token to offer {mechanism}, and it does not"
    )]
    ContextLoginUnsupported {
        key: String,
        mechanism: &'static str,
    },
}

impl Pkcs11Error {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        use Pkcs11Error::*;
        Some(match self {
            Uri { .. } => "write it as in RFC 7512: pkcs11:token=LABEL;object=LABEL or pkcs11:token=LABEL;id=%01, with ?pin-value=PIN or ?pin-source=FILE after the path; percent-encode `;`, `?`, `%` and `#` in values".into(),
            WrongType { expected, .. } => format!("drop type= or set it to type={expected}"),
            Selector(_) => "write it as Key=x509Subject,Value=CN=name Key=x509Serial,Value=HEX (keys x509Subject, x509Issuer, x509Serial), or file://sel.json holding [{\"Key\":...,\"Value\":...}]".into(),
            TokenOnlyFlag { .. } => "give the certificate as --certificate pkcs11:token=LABEL, or drop the flag".into(),
            KeyFileWithTokenCertificate { .. } => "drop --private-key (the key with the certificate's CKA_ID is used), or give it as pkcs11:...".into(),
            NoCertificateGiven => "pass --certificate pkcs11:token=LABEL;id=... (or a certificate file) with the key's certificate".into(),
            File { .. } => "check the path and that this user may read it; it must be a PEM or DER certificate".into(),
            NoModule { .. } => "pass --pkcs11-lib /path/to/module.so (SoftHSM: /usr/lib/softhsm/libsofthsm2.so, OpenSC: /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so), add ?module-path=... to the URI, or install p11-kit".into(),
            UnknownModuleName { .. } => "use ?module-path=/path/to/module.so or --pkcs11-lib instead; `p11-kit list-modules` shows the registered names".into(),
            ModuleConflict { .. } => "give the module once: either --pkcs11-lib or module-path= in the URI".into(),
            ModuleLoad { .. } => "check the path, and that the module is built for this machine's architecture".into(),
            Module { module, .. } => format!("check the module's configuration; {}", list_tokens(module)),
            NoToken { module, .. } | SeveralTokens { module, .. } => format!(
                "select the token by token=LABEL or serial=SERIAL; {}",
                list_tokens(module)
            ),
            Token { module, .. } => format!("check that the token is present; {}", list_tokens(module)),
            PinNeeded { .. } => format!(
                "add ?pin-value=PIN or ?pin-source=/path/to/pin-file to the URI, set {}, or run from a terminal to be prompted",
                super::pin::PIN_ENV
            ),
            PinIncorrect { .. } => format!(
                "check pin-value/pin-source in the URI or {}; the token locks the PIN after a few wrong tries, so it was not retried",
                super::pin::PIN_ENV
            ),
            PinLocked { .. } => "unlock it with the security officer PIN (e.g. `pkcs11-tool --login --login-type so --init-pin`) or ask the token's administrator".into(),
            PinSource { .. } => "pin-source must name a readable file (a path or a file: URI) holding the PIN".into(),
            NoCertificate { module, label, .. } => format!(
                "check object= or id= in the URI and any --cert-selector; {}",
                match label {
                    Some(label) => list_objects(module, label),
                    None => list_tokens(module),
                }
            ),
            SeveralCertificates { .. } => "narrow it with object= or id= in the URI or with --cert-selector, or pass --use-latest-expiring-certificate".into(),
            NoKey { module, label, .. } => format!(
                "the key must have the certificate's CKA_ID, or be named with --private-key pkcs11:...;object=LABEL; {}",
                list_objects(module, label)
            ),
            SeveralKeys { module, label, .. } => format!(
                "name the key with --private-key pkcs11:...;id=... or object=...; {}",
                list_objects(module, label)
            ),
            KeyMismatch { module, label, .. } => format!(
                "give the key the certificate's CKA_ID, or name the right key with --private-key pkcs11:...;id=...; {}",
                list_objects(module, label)
            ),
            UnsupportedKey { .. } => "use an RSA (2048 bits or more) or EC P-256/P-384 key".into(),
            ContextPinNeeded { .. } => "pass --reuse-pin to use the user PIN for it too, or run from a terminal to be asked".into(),
            ContextLoginUnsupported { .. } => "use a key without CKA_ALWAYS_AUTHENTICATE, or an RSA key (signed with CKM_SHA256_RSA_PKCS)".into(),
        })
    }
}

/// The PKCS#11 return value of a failed call, if that is what failed.
pub fn rv(error: &CkError) -> Option<RvError> {
    match error {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// `C_Login: CKR_PIN_INCORRECT`-style text for a cryptoki error: the function and the
/// standard CKR_ name rather than the specification's paragraph.
pub fn describe(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, function) => format!("C_{function:?}: {}", ckr_name(*rv)),
        other => other.to_string(),
    }
}

/// `RvError::SessionHandleInvalid` -> `CKR_SESSION_HANDLE_INVALID`.
pub fn ckr_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn return_values_read_like_the_specification() {
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
        assert_eq!(
            describe(&CkError::Pkcs11(
                RvError::TokenNotPresent,
                Function::OpenSession
            )),
            "C_OpenSession: CKR_TOKEN_NOT_PRESENT"
        );
    }

    #[test]
    fn every_error_has_a_hint() {
        let e = Pkcs11Error::NoToken {
            module: "/m.so".into(),
            uri: "pkcs11:token=x".into(),
            present: "'a' (serial 1)".into(),
        };
        assert!(e.to_string().starts_with("no token"));
        assert!(e.hint().unwrap().contains("pkcs11-tool --module /m.so -L"));
        let e = Pkcs11Error::NoKey {
            module: "/m.so".into(),
            token: "'my token' (serial 1)".into(),
            label: "my token".into(),
            wanted: "id=%01".into(),
        };
        assert!(
            e.hint().unwrap().contains("--token-label 'my token'"),
            "{:?}",
            e.hint()
        );
    }
}
