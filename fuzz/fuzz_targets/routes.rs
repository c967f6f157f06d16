//! The routes alone (method, path, headers -> answer), without hyper in front: the IMDS,
//! container and health routes on TCP, and the unix socket's routes.
//!
//! Input: one byte picking the listener (bit 0: TCP or unix) and whether to supply `Host`
//! (bit 1), then lines: the method, the
//! path, then `name: value` headers. `@TOKEN@` is replaced by a valid IMDS token.
//! Oracle: the answer carries the credentials only if the request had a credential.
#![no_main]

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method};
use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent_fuzz::{
    TOKEN_MARKER, assert_no_secret_unless, authorised, body_bytes, listener, replace, respond,
};

fuzz_target!(|data: &[u8]| {
    let Some((&which, raw)) = data.split_first() else {
        return;
    };
    let (listener, token) = listener(which & 1 == 1);
    let input = replace(raw, TOKEN_MARKER, &token);
    let mut lines = input.split(|&b| b == b'\n');
    let (Some(method), Some(path)) = (lines.next(), lines.next()) else {
        return;
    };
    // Only what hyper would hand over: a method token and a UTF-8 path.
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    // Bit 1 of the first byte: leave `Host` as the input has it (often missing, so refused);
    // otherwise add the agent's own name when the input sends none, so the routes behind the
    // `Host` rule are reached.
    if which & 2 == 0 && !headers.contains_key("host") {
        headers.insert("host", HeaderValue::from_static("localhost"));
    }
    let Some(response) = respond(&listener, &method, path, &headers) else {
        return;
    };
    let status = response.status();
    let body = body_bytes(response.into_body());
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("{status} {}", String::from_utf8_lossy(&body));
    }
    assert_no_secret_unless(authorised(raw), &body);
});
