//! Pins our SigV4-X509 signer to golden vectors computed by an independent implementation
//! (tests/data/vectors, see its README): canonical request, string to sign, RSA signature and
//! Authorization byte for byte; ECDSA signatures verified, never compared.

use std::path::{Path, PathBuf};

use rolesanywhere_agent::identity::file::{FileKey, PasswordSource};
use rolesanywhere_agent::identity::{self, Certificate};
use rolesanywhere_agent::signer::{self, Digest, Signer};
use rolesanywhere_agent::signing::{self, Algorithm, UnsignedRequest};
use serde_json::Value;

const DIR: &str = "tests/data/vectors";

struct NoPassword;
impl PasswordSource for NoPassword {
    fn password(&self) -> Option<secrecy::SecretString> {
        None
    }
}

fn load(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(Path::new(DIR).join(rel)).unwrap()).unwrap()
}

fn files(sub: &str, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(DIR).join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn cert(rel: &str) -> Certificate {
    let data = std::fs::read(Path::new(DIR).join(rel)).unwrap();
    identity::parse_certificates(&data).unwrap().remove(0)
}

fn key(rel: &str) -> FileKey {
    let data = std::fs::read(Path::new(DIR).join(rel)).unwrap();
    FileKey::from_file_bytes(&data, rel, &NoPassword).unwrap()
}

fn at() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-24 12:33:52 UTC)
}

fn header<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
}

/// Checks the signature and Authorization header of `v` made with `key` over `sts`.
fn check_signature(
    v: &Value,
    name: &str,
    leaf: &Certificate,
    key: &FileKey,
    sts: &str,
    signed_headers: &str,
    scope: &str,
) {
    let expected = &v["expected"];
    let ours = key.sign(sts.as_bytes(), Digest::Sha256).unwrap();
    let algorithm = key.key_kind().algorithm();
    let authorization = signing::authorization(
        algorithm,
        &leaf.serial_decimal(),
        scope,
        signed_headers,
        &ours,
    );
    let kind = leaf.key_kind().unwrap();
    match algorithm {
        Algorithm::RsaSha256 => {
            assert_eq!(
                hex::encode(&ours),
                expected["signature"].as_str().unwrap(),
                "{name}: RSA signature"
            );
            assert_eq!(
                authorization,
                expected["authorization"].as_str().unwrap(),
                "{name}: Authorization"
            );
        }
        Algorithm::EcdsaSha256 => {
            let theirs = hex::decode(expected["signature"].as_str().unwrap()).unwrap();
            for (who, sig) in [("theirs", &theirs), ("ours", &ours)] {
                assert!(
                    signer::verify(kind, leaf.public_key(), sts.as_bytes(), Digest::Sha256, sig),
                    "{name}: {who} ECDSA signature does not verify"
                );
            }
            let exp = expected["authorization"].as_str().unwrap();
            let prefix = &exp[..exp.find("Signature=").unwrap()];
            assert!(
                authorization.starts_with(prefix),
                "{name}: {authorization} vs {prefix}"
            );
        }
        Algorithm::MlDsa => unreachable!("{name}: the vectors hold no ML-DSA keys"),
    }
}

#[test]
fn query_and_body_cases_match_byte_for_byte() {
    let mut seen = 0;
    for path in files("cases", "") {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let v = load(&format!("cases/{name}"));
        let inputs = &v["inputs"];
        let req = &v["request"];
        let leaf = cert(inputs["certificate"].as_str().unwrap());
        let chain: Vec<Certificate> = inputs["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| cert(c.as_str().unwrap()))
            .collect();
        let key = key(inputs["private_key"].as_str().unwrap());
        assert_eq!(
            leaf.serial_decimal(),
            v["expected"]["serial_decimal"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            hex::encode(leaf.serial_der()),
            v["expected"]["serial_der_hex"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            key.key_kind().algorithm().as_str(),
            v["expected"]["algorithm"].as_str().unwrap(),
            "{name}"
        );

        // The query as it arrived, decoded into the raw pairs our builder takes.
        let query: Vec<(String, String)> = req["query"]
            .as_str()
            .unwrap()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap();
                (decode(n), decode(v))
            })
            .collect();
        let chain_header = (!chain.is_empty()).then(|| {
            chain
                .iter()
                .map(Certificate::to_base64)
                .collect::<Vec<_>>()
                .join(",")
        });
        assert_eq!(
            chain_header.as_deref(),
            header(&v, "X-Amz-X509-Chain"),
            "{name}: chain header"
        );
        let unsigned = UnsignedRequest {
            host: inputs["host"].as_str().unwrap().to_string(),
            query,
            content_type: header(&v, "Content-Type").unwrap().to_string(),
            body: req["body"].as_str().unwrap().as_bytes().to_vec(),
            x509: leaf.to_base64(),
            x509_chain: chain_header,
        };
        assert_eq!(
            Some(unsigned.x509.as_str()),
            header(&v, "X-Amz-X509"),
            "{name}: X-Amz-X509"
        );
        let prepared = unsigned.prepare(
            key.key_kind().algorithm(),
            inputs["region"].as_str().unwrap(),
            at(),
        );
        let expected = &v["expected"];
        assert_eq!(
            prepared.canonical_request,
            expected["canonical_request"].as_str().unwrap(),
            "{name}: canonical request"
        );
        assert_eq!(
            prepared.string_to_sign,
            expected["string_to_sign"].as_str().unwrap(),
            "{name}: string to sign"
        );
        assert_eq!(
            prepared.signed_headers,
            expected["signed_headers"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            prepared.scope,
            expected["credential_scope"].as_str().unwrap(),
            "{name}"
        );
        check_signature(
            &v,
            &name,
            &leaf,
            &key,
            &prepared.string_to_sign,
            &prepared.signed_headers,
            &prepared.scope,
        );
        seen += 1;
    }
    assert_eq!(seen, 8, "all eight cases were checked");
}

#[test]
fn query_cases_are_what_our_session_client_builds() {
    // The exact request the CreateSession client sends, not a hand-built one.
    use rolesanywhere_agent::config::{RawSession, SessionSettings};
    for path in files("cases", "query-") {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let v = load(&format!("cases/{name}"));
        let inputs = &v["inputs"];
        let settings = SessionSettings::from_raw(&RawSession {
            trust_anchor_arn: inputs["trust_anchor_arn"].as_str(),
            profile_arn: inputs["profile_arn"].as_str(),
            role_arn: inputs["role_arn"].as_str(),
            region: None,
            duration_seconds: inputs["duration_seconds"].as_i64().unwrap(),
            role_session_name: None,
        })
        .unwrap();
        let leaf = cert(inputs["certificate"].as_str().unwrap());
        let chain = inputs["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| cert(c.as_str().unwrap()))
            .collect();
        let identity = identity::Identity {
            certificate: leaf.clone(),
            chain,
            signer: std::sync::Arc::new(key(inputs["private_key"].as_str().unwrap())),
        };
        let unsigned = rolesanywhere_agent::session::build_request(
            inputs["host"].as_str().unwrap(),
            &identity,
            &settings,
        );
        assert_eq!(
            String::from_utf8_lossy(&unsigned.body),
            v["request"]["body"].as_str().unwrap(),
            "{name}: body"
        );
        let prepared = unsigned.prepare(
            identity.signer.key_kind().algorithm(),
            &settings.region,
            at(),
        );
        assert_eq!(
            prepared.canonical_query,
            v["request"]["query"].as_str().unwrap(),
            "{name}: query on the wire"
        );
        assert_eq!(
            prepared.canonical_request,
            v["expected"]["canonical_request"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            prepared.string_to_sign,
            v["expected"]["string_to_sign"].as_str().unwrap(),
            "{name}"
        );
        let key = key(inputs["private_key"].as_str().unwrap());
        check_signature(
            &v,
            &name,
            &leaf,
            &key,
            &prepared.string_to_sign,
            &prepared.signed_headers,
            &prepared.scope,
        );
    }
}

#[test]
fn edge_cases_pin_canonicalisation() {
    let mut seen = 0;
    for path in files("edge", "") {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let v = load(&format!("edge/{name}"));
        let req = &v["request"];
        let expected = &v["expected"];
        let params: Vec<(String, String)> = req["query_params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let query = signing::canonical_query(&params);
        assert_eq!(
            query,
            expected["canonical_query"].as_str().unwrap(),
            "{name}: canonical query"
        );
        let headers: Vec<(String, String)> = req["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| !h[0].as_str().unwrap().eq_ignore_ascii_case("authorization"))
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let (lines, signed) = signing::canonical_headers(&headers);
        assert_eq!(
            lines,
            expected["canonical_headers"].as_str().unwrap(),
            "{name}: canonical headers"
        );
        assert_eq!(
            signed,
            expected["signed_headers"].as_str().unwrap(),
            "{name}"
        );
        let canonical = signing::canonical_request(
            req["method"].as_str().unwrap(),
            req["path"].as_str().unwrap(),
            &query,
            &lines,
            &signed,
            &signing::sha256_hex(req["body"].as_str().unwrap().as_bytes()),
        );
        assert_eq!(
            canonical,
            expected["canonical_request"].as_str().unwrap(),
            "{name}: canonical request"
        );
        let scope = signing::credential_scope("20261124T123352Z", "us-east-1");
        let sts =
            signing::string_to_sign(Algorithm::RsaSha256, "20261124T123352Z", &scope, &canonical);
        assert_eq!(
            sts,
            expected["string_to_sign"].as_str().unwrap(),
            "{name}: string to sign"
        );
        let leaf = cert(v["inputs"]["certificate"].as_str().unwrap());
        let key = key(v["inputs"]["private_key"].as_str().unwrap());
        check_signature(&v, &name, &leaf, &key, &sts, &signed, &scope);
        seen += 1;
    }
    assert_eq!(seen, 7);
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
