//! `emulate`'s CreateSession verifier: any request, judged against the test vectors' trust
//! anchors (tests/data/vectors/pki) at the vectors' date, so the seeds (real signed
//! requests) pass and mutations reach every check down to the signature.
//! Input: `METHOD PATH[?QUERY]`, `Name: value` lines, an empty line, the body.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent::emulate::{RequestParts, VerifyConfig, route, verify};
use rolesanywhere_agent_fuzz::NOW;

fn config() -> &'static VerifyConfig {
    static CONFIG: OnceLock<VerifyConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let anchors = [
            include_str!("../../tests/data/vectors/pki/root-ca.pem"),
            include_str!("../../tests/data/vectors/pki/intermediate-ca.pem"),
        ]
        .concat();
        VerifyConfig::new(
            anchors.as_bytes(),
            Path::new("anchors.pem"),
            "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1",
            "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1",
            vec!["arn:aws:iam::111122223333:role/exam".into()],
            43_200,
        )
        .unwrap_or_else(|e| panic!("fuzz: the verifier's configuration: {e}"))
    })
}

fn request(data: &[u8]) -> Option<RequestParts> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    Some(RequestParts {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: body.to_vec(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = request(data) else {
        return;
    };
    let _ = route(&req.method, &req.path);
    let verdict = verify(&req, NOW, config());
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("{verdict:?}");
    }
});
