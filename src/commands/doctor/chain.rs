//! The chain group: each intermediate issued the certificate below it (name and signature),
//! and the top of what is sent is self-signed or issued by a CA the trust anchor must hold.
//! The trust anchor's own certificate is in AWS, not here: the line says what to compare.

use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Kind, Report};
use crate::cli::CredentialArgs;
use crate::config::SessionSettings;
use crate::identity::{Certificate, Identity};

const KIND: Kind = Kind::Config;

/// Checks the chain of the loaded identity, or, when the key did not load, of the files.
pub(super) fn check(
    identity: Option<&Identity>,
    files: Option<(&Certificate, Vec<Certificate>)>,
    args: &CredentialArgs,
    settings: Option<&SessionSettings>,
    report: &mut Report,
) {
    let (leaf, chain) = match (identity, files) {
        (Some(identity), _) => (&identity.certificate, identity.chain.clone()),
        (None, Some((leaf, chain))) => (leaf, chain),
        (None, None) => {
            report.skip(
                "chain.links",
                KIND,
                "needs the certificate and the intermediates to load",
            );
            report.skip("chain.anchor", KIND, "needs the certificate to load");
            return;
        }
    };
    let chain = &chain;
    let mut below = leaf;
    let mut broken = None;
    for (i, ca) in chain.iter().enumerate() {
        let what = if i == 0 {
            "the leaf".to_string()
        } else {
            format!("intermediate {i}")
        };
        if let Err(why) = issued(ca, below) {
            broken = Some(format!(
                "intermediate {} ({}) did not issue {what} ({}): {why}",
                i + 1,
                ca.subject(),
                below.subject()
            ));
            break;
        }
        below = ca;
    }
    let source = if args.identity.intermediates.is_some() {
        "--intermediates"
    } else {
        "the certificate file"
    };
    match broken {
        Some(saw) => report.fail(
            "chain.links",
            KIND,
            saw,
            format!(
                "put the CA that issued the certificate first in {source}, each further CA after the one it issued (or leave out CAs that are not on the path)"
            ),
        ),
        None if chain.is_empty() => report.ok(
            "chain.links",
            KIND,
            "no intermediates sent (the leaf alone)",
        ),
        None => {
            let names: Vec<&str> = chain.iter().map(Certificate::subject).collect();
            report.ok(
                "chain.links",
                KIND,
                format!(
                    "{} intermediate(s) from {source}, each issued the one below: {}",
                    chain.len(),
                    names.join(" <- ")
                ),
            );
        }
    }
    anchor(chain.last().unwrap_or(leaf), settings, report);
}

/// Whether `ca` issued `child`: by name, and by signature.
fn issued(ca: &Certificate, child: &Certificate) -> Result<(), String> {
    if child.issuer() != ca.subject() {
        return Err(format!("its issuer is {}", child.issuer()));
    }
    let (_, ca_x509) =
        X509Certificate::from_der(ca.der()).map_err(|e| format!("the CA does not parse: {e}"))?;
    let (_, child_x509) = X509Certificate::from_der(child.der())
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    child_x509
        .verify_signature(Some(ca_x509.public_key()))
        .map_err(|e| format!("the names match but the signature does not verify ({e})"))
}

/// The top of what is sent: self-signed (then it must be the trust anchor's CA itself), or
/// issued by a CA that must be the trust anchor's.
fn anchor(top: &Certificate, settings: Option<&SessionSettings>, report: &mut Report) {
    let compare = match settings {
        Some(s) => format!(
            "aws rolesanywhere get-trust-anchor --trust-anchor-id {} --region {}",
            s.trust_anchor_arn.resource_name(),
            s.trust_anchor_arn.region
        ),
        None => "aws rolesanywhere get-trust-anchor --trust-anchor-id ID".to_string(),
    };
    let self_signed = top.issuer() == top.subject() && issued(top, top).is_ok();
    let saw = if self_signed {
        format!(
            "the top ({}) is self-signed: it must be the trust anchor's CA certificate; this cannot be checked locally, compare it with the certificate `{compare}` shows",
            top.subject()
        )
    } else {
        let key_id = authority_key_id(top)
            .map(|id| format!(" (authority key id {id})"))
            .unwrap_or_default();
        format!(
            "the top ({}) is issued by {}{key_id}, which must be the trust anchor's CA; this cannot be checked locally, compare its subject and key id with the certificate `{compare}` shows",
            top.subject(),
            top.issuer()
        )
    };
    report.ok("chain.anchor", KIND, saw);
}

fn authority_key_id(cert: &Certificate) -> Option<String> {
    let (_, x509) = X509Certificate::from_der(cert.der()).ok()?;
    x509.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref().map(|k| {
                k.0.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }),
            _ => None,
        })
}
