//! `--certificate`/`--private-key` values that are PKCS#11 URIs (RFC 7512), and the
//! `--cert-selector` flag (key=value pairs or JSON).
//! Oracle: the printable form of a parsed URI never shows its `pin-value`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent::identity::pkcs11::selector::CertSelector;
use rolesanywhere_agent::identity::pkcs11::uri::{Pkcs11Uri, redact};
use secrecy::ExposeSecret;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `file://` would read a file named by the input.
    if !text.starts_with("file://") {
        let _ = CertSelector::parse(text);
    }
    let redacted = redact(text);
    let _ = Pkcs11Uri::is_uri(text);
    let Ok(uri) = Pkcs11Uri::parse(text) else {
        return;
    };
    // The redaction's own `pin-value=REDACTED` may hold a short pin's letters: leave it out.
    let strip = |s: String| s.replace("pin-value=REDACTED", "");
    let (shown, debug, redacted) = (
        strip(uri.to_string()),
        strip(format!("{uri:?}")),
        strip(redacted),
    );
    if let Some(pin) = uri
        .pin_value
        .as_ref()
        .map(|p| p.expose_secret().to_string())
    {
        // The pin may legitimately appear elsewhere in the URI; only look for it when the
        // input holds it nowhere but in a pin-value. Debug output is escaped (`\0` for
        // NUL): compare it with the escaped input.
        let (path, query) = text.split_once('?').unwrap_or((text, ""));
        let without_pin = query
            .split('&')
            .filter(|segment| !segment.starts_with("pin-value="))
            .collect::<Vec<_>>()
            .join("&");
        let without_pin = format!("{path}?{without_pin}");
        let escape = |s: &str| s.escape_debug().to_string();
        if pin.len() >= 4 && !without_pin.contains(&pin) {
            assert!(
                !shown.contains(&pin),
                "a PKCS#11 URI's pin-value is printed"
            );
            assert!(!redacted.contains(&pin), "redact() leaves a pin-value");
        }
        if pin.len() >= 4 && !escape(&without_pin).contains(&escape(&pin)) {
            assert!(
                !debug.contains(&escape(&pin)),
                "a PKCS#11 URI's pin-value is in its Debug output"
            );
        }
    }
});
