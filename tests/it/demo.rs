//! The README's first command: `demo` runs the whole flow offline and shows no secret.

use crate::support::*;

#[test]
fn demo_runs_end_to_end_and_redacts_secrets() {
    let out = run(agent().arg("demo"));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for step in [
        "1. Made a throwaway CA",
        "2. Started `emulate`",
        "3. Pre-flight checks passed",
        "4. Signed CreateSession",
        "5. ",
    ] {
        assert!(text.contains(step), "missing step '{step}' in:\n{text}");
    }
    assert!(
        text.contains("https://127.0.0.1:"),
        "the demo goes over TLS:\n{text}"
    );
    assert!(text.contains("\"AccessKeyId\": \"ASIA"), "{text}");
    assert!(
        text.contains("\"SecretAccessKey\": \"<redacted>\""),
        "{text}"
    );
    assert!(text.contains("\"SessionToken\": \"<redacted>\""), "{text}");
}
