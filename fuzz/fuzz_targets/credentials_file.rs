//! The shared credentials file rewriter (`update`): any existing file text and profile name.
//! Input: the profile name, a newline, then the file.
//! Oracles: the result holds the new keys, and rewriting the result again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent::credentials_file::render;
use rolesanywhere_agent_fuzz::{SECRET_ACCESS_KEY, credentials};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (profile, existing) = text.split_once('\n').unwrap_or((text, ""));
    // Only names `update_profile` lets through (it refuses the rest before rendering).
    let valid = !profile.is_empty()
        && profile.trim() == profile
        && !profile.contains(['[', ']'])
        && !profile.chars().any(char::is_control);
    if !valid {
        return;
    }
    let creds = credentials();
    let once = render(existing, profile, &creds);
    assert!(
        once.contains(SECRET_ACCESS_KEY),
        "the new secret key is missing"
    );
    let twice = render(&once, profile, &creds);
    assert_eq!(*once, *twice, "rewriting a rewritten file changed it");
});
