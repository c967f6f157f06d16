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

/// `demo --keep-in` keeps what a later `emulate` needs to serve under the kept TLS CA, and
/// prints the exact `emulate` and `credential-process` commands: run as printed (on a free
/// port instead of the fixed one), they give credentials.
#[test]
fn kept_demo_files_serve_again_with_the_printed_commands() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept");
    let out = run(agent().arg("demo").arg("--keep-in").arg(&kept));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let printed = |prefix: &str| -> Vec<String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' line in:\n{text}"));
        line.split_whitespace().skip(1).map(String::from).collect()
    };
    let mut emulate_args = printed("rolesanywhere-agent emulate");
    let mut cp_args = printed("rolesanywhere-agent credential-process --certificate");
    assert!(emulate_args.iter().any(|a| a == "--tls-key"), "{text}");
    assert!(cp_args.iter().any(|a| a == "--ca-bundle"), "{text}");

    // The fixed port may be taken on a test machine: ask for any free one.
    let port = emulate_args.iter().position(|a| a == "--port").unwrap();
    emulate_args[port + 1] = "0".into();
    let ready = dir.path().join("ready");
    let mut child = agent()
        .args(&emulate_args)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let addr = loop {
        if let Ok(addr) = std::fs::read_to_string(&ready) {
            break addr.trim().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "emulate did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let endpoint = cp_args.iter().position(|a| a == "--endpoint").unwrap();
    assert!(cp_args[endpoint + 1].starts_with("https://127.0.0.1:"));
    cp_args[endpoint + 1] = format!("https://{addr}");
    let out = run(agent().args(&cp_args).arg("--no-cache"));
    let _ = child.kill();
    let _ = child.wait();
    credentials(&out);
}
