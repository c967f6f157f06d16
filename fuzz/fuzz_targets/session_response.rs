//! CreateSession answers as the client reads them: a 2xx body, or an error status with its
//! optional `x-amzn-ErrorType` and body.
//! Input: two bytes of status, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent::session::fuzzing::{parse_failure, parse_success};
use rolesanywhere_agent_fuzz::NOW;

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*status);
    // The default session duration; an expiration past it (plus slack) is clamped to it.
    if let Ok(creds) = parse_success(body, NOW, 3600) {
        // What the caller relies on: usable, unexpired credentials, never beyond the
        // duration asked for.
        assert!(creds.expiration > NOW);
        assert!(creds.expiration <= NOW + time::Duration::seconds(3600 + 300));
        assert!(!creds.access_key_id.is_empty());
        let _ = (creds.to_process_json(), creds.to_redacted_json());
    }
    let error_type = (status % 2 == 0).then(|| "AccessDeniedException".to_string());
    let e = parse_failure(status, error_type, body, NOW);
    let _ = (e.to_string(), e.hint(), e.is_configuration());
});
