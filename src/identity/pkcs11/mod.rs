//! PKCS#11 tokens (HSMs, smart cards, SoftHSM): certificates and keys named by RFC 7512
//! `pkcs11:` URIs in `--certificate` and `--private-key`, as in the Go helper.
//!
//! This module owns finding the identity on the token; the pieces:
//! - [`uri`]: our own RFC 7512 parser (percent-decoding, `id` bytes, path and query
//!   attributes, errors naming the attribute) and PIN redaction for messages;
//! - [`selector`]: `--cert-selector` (the Go helper's `Key=...,Value=...` syntax and JSON);
//! - [`pin`]: where the user PIN comes from (URI, `ROLESANYWHERE_PKCS11_PIN`, a prompt);
//! - `module`: which module to load (`--pkcs11-lib`, `module-path`, `module-name`, else
//!   p11-kit's proxy) and loading it once per process;
//! - `token`: selecting tokens by label/serial/etc., reading certificates and keys, login;
//! - [`signer`]: [`Pkcs11Signer`], the [`crate::signer::Signer`] over a token key, which
//!   keeps its session and recovers when the token is removed and re-inserted;
//! - [`error`]: [`Pkcs11Error`] and its hints.
//!
//! How an identity is found (following draft-woodhouse-cert-best-practice section 8, as the
//! Go helper does):
//! 1. `--certificate pkcs11:...`: every token the URI selects is searched without logging
//!    in; when nothing matches and exactly one token was selected, it is searched again
//!    after login (certificates marked private). `--cert-selector` filters the matches;
//!    certificate-authority certificates are dropped when other matches remain; several
//!    left is an error listing them, unless `--use-latest-expiring-certificate` picks the
//!    one with the latest notAfter. The chain is `--intermediates` when given, else the CA
//!    certificates on the same token that issued the leaf (self-signed roots left out).
//!    `--certificate FILE` works too, with the key on a token.
//! 2. The key: `--private-key pkcs11:...` when given (on the certificate's token when the
//!    URI selects it among others), else the private key on the certificate's token with
//!    the certificate's CKA_ID (its label when it has no id). When several keys match, the
//!    one whose public key is the certificate's is taken (a probe signature decides when
//!    the token does not show the public key).

mod der;
pub mod error;
mod module;
pub mod pin;
pub mod selector;
pub mod signer;
mod token;
pub mod uri;

use std::sync::Arc;

pub use error::Pkcs11Error;
pub use pin::PIN_ENV;
pub use selector::CertSelector;
pub use signer::Pkcs11Signer;
pub use uri::{Pkcs11Uri, UriError, redact};

use super::{Certificate, Identity, IdentitySpec};
use crate::signer::{Digest, Signer as _};
use pin::Pins;
use signer::Opened;
use token::{KeyInfo, Module, TokenCert, TokenSlot, certificates, key_info, private_keys};
use uri::ObjectType;

/// Whether the flags name a PKCS#11 object.
pub fn is_pkcs11(spec: &IdentitySpec) -> bool {
    [&spec.certificate, &spec.private_key]
        .iter()
        .any(|v| v.as_deref().is_some_and(Pkcs11Uri::is_uri))
}

/// Loads the certificate, chain and a signer from a token (and, for `--certificate FILE`
/// with a key on a token, from the file).
pub fn load_identity(spec: &IdentitySpec) -> Result<Identity, Pkcs11Error> {
    let cert_uri = parse_flag(
        "--certificate",
        spec.certificate.as_deref(),
        ObjectType::Cert,
    )?;
    let key_uri = parse_flag(
        "--private-key",
        spec.private_key.as_deref(),
        ObjectType::Private,
    )?;
    let cert_arg = spec
        .certificate
        .as_deref()
        .ok_or(Pkcs11Error::NoCertificateGiven)?;
    if let (Some(_), None, Some(path)) = (&cert_uri, &key_uri, spec.private_key.as_deref()) {
        return Err(Pkcs11Error::KeyFileWithTokenCertificate {
            path: path.to_string(),
        });
    }
    if cert_uri.is_none() {
        if spec.cert_selector.is_some() {
            return Err(Pkcs11Error::TokenOnlyFlag {
                flag: "--cert-selector",
            });
        }
        if spec.use_latest_expiring_certificate {
            return Err(Pkcs11Error::TokenOnlyFlag {
                flag: "--use-latest-expiring-certificate",
            });
        }
    }
    let selector = spec
        .cert_selector
        .as_deref()
        .map(CertSelector::parse)
        .transpose()?;
    // The key's URI first: its PIN and module are the ones that matter for signing.
    let uris: Vec<&Pkcs11Uri> = key_uri.iter().chain(cert_uri.iter()).collect();
    let module = open_module(spec.pkcs11_lib.as_deref(), &uris)?;
    let mut pins = Pins::new(&uris)?;

    let (certificate, on_token, file_chain) = match &cert_uri {
        Some(uri) => {
            let found = find_certificate(
                &module,
                uri,
                selector.as_ref(),
                spec.use_latest_expiring_certificate,
                &mut pins,
            )?;
            (found.cert.cert.clone(), Some(found), Vec::new())
        }
        None => {
            // A full-chain file carries the intermediates after the leaf.
            let mut certs = read_certificates("--certificate", cert_arg)?.into_iter();
            let leaf = certs.next().ok_or_else(|| Pkcs11Error::File {
                flag: "--certificate",
                path: cert_arg.to_string(),
                detail: "no certificate in it".into(),
            })?;
            (leaf, None, certs.collect())
        }
    };
    let chain = match (&spec.intermediates, &on_token) {
        (Some(path), _) => read_certificates("--intermediates", path)?,
        (None, Some(found)) => token_chain(&certificate, &found.others),
        (None, None) => file_chain,
    };

    let key_token = match (&key_uri, &on_token) {
        (Some(uri), found) => key_token(&module, uri, found.as_ref().map(|f| &f.token))?,
        (None, Some(found)) => found.token.clone(),
        (None, None) => return Err(Pkcs11Error::NoCertificateGiven),
    };
    let query = KeyQuery::new(key_uri.as_ref(), on_token.as_ref().map(|f| &f.cert));
    let cert_name = match &on_token {
        Some(found) => found
            .token
            .short_uri(&found.cert.id, &found.cert.label, "cert"),
        None => cert_arg.to_string(),
    };
    let signer = open_key(
        &module,
        &key_token,
        &query,
        Some((&certificate, &cert_name)),
        &mut pins,
        spec.reuse_pin,
    )?;
    tracing::debug!(
        module = %module.name,
        token = %key_token.describe(),
        key = %signer.source(),
        "PKCS#11 identity loaded"
    );
    Ok(Identity {
        certificate,
        chain,
        signer: Arc::new(signer),
    })
}

/// The certificate `--certificate pkcs11:...` selects now, looked up again on the token
/// (DER): the agent compares it with the one in use before each CreateSession, so a
/// certificate renewed on the token is picked up without a restart. Never prompts for a
/// PIN. `None` when the certificate is not on a token.
pub fn current_certificate_der(spec: &IdentitySpec) -> Result<Option<Vec<u8>>, Pkcs11Error> {
    let Some(uri) = parse_flag(
        "--certificate",
        spec.certificate.as_deref(),
        ObjectType::Cert,
    )?
    else {
        return Ok(None);
    };
    let selector = spec
        .cert_selector
        .as_deref()
        .map(CertSelector::parse)
        .transpose()?;
    let key_uri = parse_flag(
        "--private-key",
        spec.private_key.as_deref(),
        ObjectType::Private,
    )?;
    let uris: Vec<&Pkcs11Uri> = key_uri.iter().chain([&uri]).collect();
    let module = open_module(spec.pkcs11_lib.as_deref(), &uris)?;
    let mut pins = Pins::new(&uris)?.never_prompt();
    let found = find_certificate(
        &module,
        &uri,
        selector.as_ref(),
        spec.use_latest_expiring_certificate,
        &mut pins,
    )?;
    Ok(Some(found.cert.cert.der().to_vec()))
}

/// The key `--private-key pkcs11:...` names, alone (for `sign-string`, which needs no
/// certificate): the URI must select exactly one token and one private key on it.
pub fn load_signer(
    private_key: &str,
    lib: Option<&str>,
    reuse_pin: bool,
) -> Result<Pkcs11Signer, Pkcs11Error> {
    let uri =
        parse_flag("--private-key", Some(private_key), ObjectType::Private)?.ok_or_else(|| {
            Pkcs11Error::Uri {
                flag: "--private-key",
                uri: redact(private_key),
                source: UriError::Scheme,
            }
        })?;
    let module = open_module(lib, &[&uri])?;
    let mut pins = Pins::new(&[&uri])?;
    let token = key_token(&module, &uri, None)?;
    let query = KeyQuery::new(Some(&uri), None);
    open_key(&module, &token, &query, None, &mut pins, reuse_pin)
}

/// The certificates on the tokens `uri` selects that match its object attributes, each
/// with a URI naming it: what `read-certificate-data` lists as "Matching identities".
pub fn list_certificates(
    uri: &str,
    lib: Option<&str>,
) -> Result<Vec<(Certificate, String)>, Pkcs11Error> {
    let parsed = parse_flag("--certificate", Some(uri), ObjectType::Cert)?.ok_or_else(|| {
        Pkcs11Error::Uri {
            flag: "--certificate",
            uri: redact(uri),
            source: UriError::Scheme,
        }
    })?;
    let module = open_module(lib, &[&parsed])?;
    let tokens = module.matching(&parsed)?;
    let mut listed = Vec::new();
    for token in &tokens {
        let session = match module.open(token) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "skipping a token that will not open a session");
                continue;
            }
        };
        let certs =
            certificates(&session).map_err(|e| module.token_error("C_FindObjects", token, &e))?;
        listed.extend(
            certs
                .into_iter()
                .filter(|c| c.matches(&parsed))
                .map(|c| (c.cert, token.object_uri(&c.id, &c.label, "cert"))),
        );
    }
    if let ([token], true) = (tokens.as_slice(), listed.is_empty()) {
        // Private certificates show only after login, and only when one token is selected.
        let mut pins = Pins::new(&[&parsed])?;
        if token.login_required && pins.without_prompt().is_some() {
            let session = module.open(token)?;
            module.login(&session, token, &mut pins)?;
            let certs = certificates(&session)
                .map_err(|e| module.token_error("C_FindObjects", token, &e))?;
            listed.extend(
                certs
                    .into_iter()
                    .filter(|c| c.matches(&parsed))
                    .map(|c| (c.cert, token.object_uri(&c.id, &c.label, "cert"))),
            );
        }
    }
    Ok(listed)
}

/// Parses a flag's value when it is a `pkcs11:` URI; `None` for a file path.
fn parse_flag(
    flag: &'static str,
    value: Option<&str>,
    allowed: ObjectType,
) -> Result<Option<Pkcs11Uri>, Pkcs11Error> {
    let Some(text) = value.filter(|v| Pkcs11Uri::is_uri(v)) else {
        return Ok(None);
    };
    let uri = Pkcs11Uri::parse(text).map_err(|source| Pkcs11Error::Uri {
        flag,
        uri: redact(text),
        source,
    })?;
    if let Some(found) = uri.object_type.filter(|t| *t != allowed) {
        return Err(Pkcs11Error::WrongType {
            flag,
            uri: uri.to_string(),
            found: found.as_str(),
            expected: allowed.as_str(),
        });
    }
    if !uri.ignored_query_attributes.is_empty() {
        tracing::debug!(
            attributes = ?uri.ignored_query_attributes,
            "ignoring unknown PKCS#11 URI query attributes"
        );
    }
    Ok(Some(uri))
}

fn open_module(flag: Option<&str>, uris: &[&Pkcs11Uri]) -> Result<Module, Pkcs11Error> {
    let name = module::resolve(flag, uris)?;
    let ctx = module::load(&name)?;
    Ok(Module { ctx, name })
}

fn read_certificates(flag: &'static str, path: &str) -> Result<Vec<Certificate>, Pkcs11Error> {
    let file_error = |detail: String| Pkcs11Error::File {
        flag,
        path: path.to_string(),
        detail,
    };
    let data = crate::files::read_regular(std::path::Path::new(path), crate::files::IDENTITY_CAP)
        .map_err(|e| file_error(e.to_string()))?;
    let certs = super::parse_certificates(&data).map_err(file_error)?;
    if certs.is_empty() {
        return Err(file_error("no certificate in it".into()));
    }
    Ok(certs)
}

/// The certificate chosen on a token, and the token's other certificates (for the chain).
struct FoundCert {
    token: TokenSlot,
    cert: TokenCert,
    others: Vec<Certificate>,
}

fn find_certificate(
    module: &Module,
    uri: &Pkcs11Uri,
    selector: Option<&CertSelector>,
    latest: bool,
    pins: &mut Pins,
) -> Result<FoundCert, Pkcs11Error> {
    let tokens = module.matching(uri)?;
    let mut on_tokens: Vec<(TokenSlot, Vec<TokenCert>)> = Vec::new();
    for token in &tokens {
        let session = match module.open(token) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "skipping a token that will not open a session");
                continue;
            }
        };
        let certs =
            certificates(&session).map_err(|e| module.token_error("C_FindObjects", token, &e))?;
        on_tokens.push((token.clone(), certs));
    }
    let any_match = on_tokens
        .iter()
        .any(|(_, certs)| certs.iter().any(|c| c.matches(uri)));
    let mut unseen_private = false;
    // Certificates marked private show only after login; log in only when exactly one
    // token is selected, never to tokens the user did not mean.
    if let ([token], false) = (tokens.as_slice(), any_match)
        && token.login_required
    {
        let session = module.open(token)?;
        match module.login(&session, token, pins) {
            Ok(()) => {
                let certs = certificates(&session)
                    .map_err(|e| module.token_error("C_FindObjects", token, &e))?;
                on_tokens = vec![(token.clone(), certs)];
            }
            // Without a PIN, "no certificate" (with a note) says more than "no PIN".
            Err(Pkcs11Error::PinNeeded { .. }) => unseen_private = true,
            Err(e) => return Err(e),
        }
    }

    let by_uri: Vec<(&TokenSlot, &TokenCert)> = on_tokens
        .iter()
        .flat_map(|(t, certs)| certs.iter().filter(|c| c.matches(uri)).map(move |c| (t, c)))
        .collect();
    let mut chosen: Vec<(&TokenSlot, &TokenCert)> = by_uri
        .iter()
        .copied()
        .filter(|(_, c)| selector.is_none_or(|s| s.matches(&c.cert)))
        .collect();
    // A token usually holds the issuing CAs next to the workload certificate.
    if chosen.len() > 1 && chosen.iter().any(|(_, c)| !c.cert.is_ca()) {
        chosen.retain(|(_, c)| !c.cert.is_ca());
    }
    let (token, cert) = match chosen.as_slice() {
        [] => {
            let filtered = match (selector, by_uri.len()) {
                (Some(_), n) if n > 0 => format!(
                    " and --cert-selector ({n} certificate(s) match the URI, none the selector)"
                ),
                _ if unseen_private => {
                    " (certificates marked private are seen only after login, and no PIN was given)"
                        .to_string()
                }
                _ => String::new(),
            };
            let names: Vec<String> = tokens.iter().map(TokenSlot::describe).collect();
            return Err(Pkcs11Error::NoCertificate {
                module: module.name.clone(),
                tokens: format!("token {}", names.join(", token ")),
                label: match tokens.as_slice() {
                    [t] => Some(t.label.clone()),
                    _ => None,
                },
                uri: uri.to_string(),
                filtered,
            });
        }
        [one] => *one,
        // The latest expiry; on a tie the later one, as `max_by_key` would pick.
        [first, rest @ ..] if latest => rest.iter().copied().fold(*first, |best, next| {
            if next.1.cert.not_after() >= best.1.cert.not_after() {
                next
            } else {
                best
            }
        }),
        several => {
            let lines: Vec<String> = several
                .iter()
                .map(|(t, c)| {
                    format!(
                        "  {} (serial {}, expires {}): {}",
                        c.cert.subject(),
                        c.cert.serial_hex(),
                        super::rfc3339(c.cert.not_after()),
                        t.short_uri(&c.id, &c.label, "cert")
                    )
                })
                .collect();
            return Err(Pkcs11Error::SeveralCertificates {
                uri: uri.to_string(),
                list: lines.join("\n"),
            });
        }
    };
    tracing::debug!(
        token = %token.describe(),
        subject = %cert.cert.subject(),
        serial = %cert.cert.serial_hex(),
        "certificate found on the token"
    );
    let others = on_tokens
        .iter()
        .filter(|(t, _)| t.same_token(token))
        .flat_map(|(_, certs)| certs.iter())
        .filter(|c| c.cert.der() != cert.cert.der())
        .map(|c| c.cert.clone())
        .collect();
    Ok(FoundCert {
        token: token.clone(),
        cert: cert.clone(),
        others,
    })
}

/// The intermediates from `others` that issued `leaf`, nearest first, up to (not
/// including) a self-signed root. Each link is checked by its signature, not only by name.
fn token_chain(leaf: &Certificate, others: &[Certificate]) -> Vec<Certificate> {
    let mut chain: Vec<Certificate> = Vec::new();
    let mut current = leaf.clone();
    // A bound, in case a token holds a cycle of cross-signed CAs.
    for _ in 0..8 {
        let next = others.iter().find(|c| {
            c.is_ca()
                && c.subject() == current.issuer()
                && c.subject() != c.issuer()
                && !chain.iter().any(|seen| seen.der() == c.der())
                && issued_by(&current, c)
        });
        match next {
            Some(issuer) => {
                chain.push(issuer.clone());
                current = issuer.clone();
            }
            None => break,
        }
    }
    chain
}

fn issued_by(child: &Certificate, issuer: &Certificate) -> bool {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    match (
        X509Certificate::from_der(child.der()),
        X509Certificate::from_der(issuer.der()),
    ) {
        (Ok((_, child)), Ok((_, issuer))) => {
            child.verify_signature(Some(issuer.public_key())).is_ok()
        }
        _ => false,
    }
}

/// The token the key is on, for `--private-key pkcs11:...`: the certificate's token when
/// the key's URI selects it, else the one token it selects.
fn key_token(
    module: &Module,
    uri: &Pkcs11Uri,
    cert_token: Option<&TokenSlot>,
) -> Result<TokenSlot, Pkcs11Error> {
    let tokens = module.matching(uri)?;
    if let Some(t) = cert_token.and_then(|c| tokens.iter().find(|t| t.same_token(c))) {
        return Ok(t.clone());
    }
    match tokens.as_slice() {
        [one] => Ok(one.clone()),
        several => Err(Pkcs11Error::SeveralTokens {
            module: module.name.clone(),
            uri: uri.to_string(),
            tokens: several
                .iter()
                .map(TokenSlot::describe)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Which private keys to consider.
struct KeyQuery {
    id: Option<Vec<u8>>,
    label: Option<Vec<u8>>,
    wanted: String,
}

impl KeyQuery {
    fn new(key_uri: Option<&Pkcs11Uri>, cert: Option<&TokenCert>) -> Self {
        let (id, label, what) = match (key_uri, cert) {
            (Some(uri), _) => (uri.id.clone(), uri.object.clone(), "--private-key"),
            (None, Some(c)) if !c.id.is_empty() => {
                (Some(c.id.clone()), None, "the certificate's CKA_ID")
            }
            (None, Some(c)) if !c.label.is_empty() => {
                (None, Some(c.label.clone()), "the certificate's label")
            }
            _ => (None, None, "any private key"),
        };
        let mut parts = Vec::new();
        if let Some(id) = &id {
            parts.push(format!("id={}", uri::percent_encode_all(id)));
        }
        if let Some(label) = &label {
            parts.push(format!("object={}", uri::percent_encode(label)));
        }
        let wanted = if parts.is_empty() {
            what.to_string()
        } else {
            format!("{what} ({})", parts.join(";"))
        };
        KeyQuery { id, label, wanted }
    }
}

/// What a probe signature signs when the token does not show a key's public half.
const PROBE: &[u8] = b"rolesanywhere-agent PKCS#11 key match";

/// Opens the key for `certificate` (with its name for messages), logged in, and checks
/// that it belongs to the certificate. Without a certificate (`sign-string` with a key
/// alone) the query must select exactly one key.
fn open_key(
    module: &Module,
    token: &TokenSlot,
    query: &KeyQuery,
    certificate: Option<(&Certificate, &str)>,
    pins: &mut Pins,
    reuse_pin: bool,
) -> Result<Pkcs11Signer, Pkcs11Error> {
    let session = module.open(token)?;
    module.login(&session, token, pins)?;
    let handles = private_keys(&session, query.id.as_deref(), query.label.as_deref())
        .map_err(|e| module.token_error("C_FindObjects", token, &e))?;
    let mut infos: Vec<KeyInfo> = handles
        .into_iter()
        .map(|h| key_info(&session, h))
        .collect::<Result<_, _>>()
        .map_err(|e| module.token_error("C_GetAttributeValue", token, &e))?;
    let no_key = || Pkcs11Error::NoKey {
        module: module.name.clone(),
        token: token.describe(),
        label: token.label.clone(),
        wanted: query.wanted.clone(),
    };
    if infos.is_empty() {
        return Err(no_key());
    }
    let user_pin = pins.without_prompt();
    let several = || Pkcs11Error::SeveralKeys {
        module: module.name.clone(),
        token: token.describe(),
        label: token.label.clone(),
        wanted: query.wanted.clone(),
    };
    let index = match certificate {
        _ if infos.len() == 1 => 0,
        None => return Err(several()),
        Some((certificate, _)) => match infos
            .iter()
            .position(|k| k.public_key.as_deref() == Some(certificate.public_key()))
        {
            Some(i) => i,
            None => {
                probe_keys(module, token, &infos, certificate, &user_pin)?.ok_or_else(several)?
            }
        },
    };
    let key = infos.swap_remove(index);
    let kind = key
        .kind
        .clone()
        .map_err(|what| Pkcs11Error::UnsupportedKey {
            key: token.short_uri(&key.id, &key.label, "private"),
            what,
        })?;
    let context_pin = match (key.always_authenticate, reuse_pin) {
        (false, _) => None,
        (true, true) => user_pin.clone(),
        (true, false) => pin::prompt(&format!(
            "PIN for {} (asked for every signature): ",
            token.short_uri(&key.id, &key.label, "private")
        )),
    };
    let always_authenticate = key.always_authenticate;
    let signer = Pkcs11Signer::new(Opened {
        module: module.clone(),
        token: token.clone(),
        session,
        key,
        kind,
        user_pin,
        context_pin,
    })?;
    if always_authenticate {
        signer.check_context_login()?;
    }
    let Some((certificate, cert_name)) = certificate else {
        return Ok(signer);
    };
    // Checked here as well as in the pre-flight, so the message names the token objects.
    let belongs = match signer.public_key() {
        Some(public) => public == certificate.public_key(),
        None => {
            let signature = signer
                .sign(PROBE, Digest::Sha256)
                .map_err(|e| Pkcs11Error::Token {
                    action: "a test signature",
                    module: module.name.clone(),
                    token: token.describe(),
                    detail: e.to_string(),
                })?;
            certificate.key_kind().is_ok_and(|kind| {
                crate::signer::verify(
                    kind,
                    certificate.public_key(),
                    PROBE,
                    Digest::Sha256,
                    &signature,
                )
            })
        }
    };
    if !belongs {
        return Err(Pkcs11Error::KeyMismatch {
            module: module.name.clone(),
            label: token.label.clone(),
            key: signer.source(),
            certificate: redact(cert_name),
        });
    }
    Ok(signer)
}

/// Among keys whose public half the token does not show, the one whose probe signature
/// verifies with the certificate's key.
fn probe_keys(
    module: &Module,
    token: &TokenSlot,
    infos: &[KeyInfo],
    certificate: &Certificate,
    user_pin: &Option<secrecy::SecretString>,
) -> Result<Option<usize>, Pkcs11Error> {
    let Ok(cert_kind) = certificate.key_kind() else {
        return Ok(None);
    };
    for (i, info) in infos.iter().enumerate() {
        // Keys that want a PIN per signature are not probed: that would prompt for each.
        let Ok(kind) = info.kind.clone() else {
            continue;
        };
        if info.public_key.is_some()
            || info.always_authenticate
            || kind.algorithm() != cert_kind.algorithm()
        {
            continue;
        }
        let probe = Pkcs11Signer::new(Opened {
            module: module.clone(),
            token: token.clone(),
            // The login is the token's, shared by this new session.
            session: module.open(token)?,
            key: info.clone(),
            kind,
            user_pin: user_pin.clone(),
            context_pin: None,
        })?;
        let verified = probe.sign(PROBE, Digest::Sha256).is_ok_and(|signature| {
            crate::signer::verify(
                cert_kind,
                certificate.public_key(),
                PROBE,
                Digest::Sha256,
                &signature,
            )
        });
        if verified {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, KeyType, LeafOptions, Validity};

    #[test]
    fn a_token_chain_follows_signatures_and_leaves_out_the_root() {
        let validity =
            Validity::relative_to_now(-time::Duration::hours(1), time::Duration::days(1));
        let root = Ca::new_root("root", KeyType::P256, validity).unwrap();
        let inter = root
            .issue_intermediate("inter", KeyType::P256, validity)
            .unwrap();
        // Same name as the real intermediate, different key: must not be taken.
        let impostor = root
            .issue_intermediate("inter", KeyType::P256, validity)
            .unwrap();
        let leaf = inter
            .issue_leaf("leaf", KeyType::P256, LeafOptions::new(validity))
            .unwrap();
        let cert = |der: &[u8]| Certificate::from_der(der).unwrap();
        let others = vec![
            cert(impostor.cert_der()),
            cert(root.cert_der()),
            cert(inter.cert_der()),
        ];
        let chain = token_chain(&cert(&leaf.cert_der), &others);
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].der(), inter.cert_der());
        assert!(token_chain(&cert(&leaf.cert_der), &[]).is_empty());
    }

    #[test]
    fn key_queries_follow_the_certificate() {
        let cert = |id: &[u8], label: &[u8]| TokenCert {
            cert: {
                let pem = std::fs::read("tests/data/vectors/pki/p256-leaf.pem").unwrap();
                crate::identity::parse_certificates(&pem).unwrap().remove(0)
            },
            id: id.to_vec(),
            label: label.to_vec(),
        };
        let q = KeyQuery::new(None, Some(&cert(&[1], b"x")));
        assert_eq!(
            (q.id.as_deref(), q.label.as_deref()),
            (Some(&[1u8][..]), None)
        );
        assert!(q.wanted.contains("id=%01"), "{}", q.wanted);
        let q = KeyQuery::new(None, Some(&cert(&[], b"x")));
        assert_eq!(q.label.as_deref(), Some(&b"x"[..]));
        let uri = Pkcs11Uri::parse("pkcs11:token=t;object=k").unwrap();
        let q = KeyQuery::new(Some(&uri), Some(&cert(&[1], b"x")));
        assert_eq!((q.id, q.label.as_deref()), (None, Some(&b"k"[..])));
    }

    #[test]
    fn flags_are_checked_before_any_module_is_loaded() {
        let spec = |cert: &str, key: Option<&str>| IdentitySpec {
            certificate: Some(cert.into()),
            private_key: key.map(str::to_string),
            pkcs11_lib: Some("/nonexistent/module.so".into()),
            ..IdentitySpec::default()
        };
        let err = |s: IdentitySpec| {
            load_identity(&s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(spec("pkcs11:token=a;nope=1", None)).contains("`nope`"));
        assert!(err(spec("pkcs11:token=a;type=private", None)).contains("type=cert"));
        assert!(
            err(spec("pkcs11:token=a", Some("/k.pem"))).contains("--private-key /k.pem is a file")
        );
        let mut s = spec("/c.pem", Some("pkcs11:token=a"));
        s.cert_selector = Some("Key=x509Subject,Value=CN=a".into());
        assert!(err(s).contains("--cert-selector applies"));
        let mut s = spec("pkcs11:token=a", None);
        s.cert_selector = Some("bogus".into());
        assert!(err(s).contains("--cert-selector is not usable"));
        // The PIN never shows in a message.
        let e = err(spec("pkcs11:token=a;bad=1?pin-value=s3cret", None));
        assert!(!e.contains("s3cret") && e.contains("REDACTED"), "{e}");
        // Only then the module.
        assert!(err(spec("pkcs11:token=a", None)).contains("cannot load the PKCS#11 module"));
    }
}
