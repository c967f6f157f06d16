//! `--config FILE` and `ROLESANYWHERE_CONFIG`, run as the built binary against `emulate` on
//! 127.0.0.1: every identity flag from the file, the command line and the environment over
//! the file, and the errors that name the file, the key and its line (exit 2, nothing sent).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::support::*;
use rolesanywhere_agent::pki::{KeyType, TEST_PASSWORD};

/// Writes `text` as a 0600 TOML file in `dir`.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("agent.toml");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

/// The TOML of everything `credential-process` and `serve` need for the P-256 leaf, its
/// key encrypted (so the password comes from the file too), against `emu`.
fn identity_toml(m: &rolesanywhere_agent::pki::TestMatrix, emu: &Emulator) -> String {
    let leaf = m.leaf(KeyType::P256).unwrap();
    format!(
        "# The identity\ncertificate = \"{}\"\nprivate-key = \"{}\"\npkcs8-password = \"{TEST_PASSWORD}\"\nintermediates = \"{}\"\ntrust-anchor-arn = \"{TA}\"\nprofile-arn = \"{PROFILE}\"\nrole-arn = \"{ROLE}\"\nendpoint = \"{}\"\nsession-duration = 1800\n",
        path(&leaf.cert_pem),
        path(&leaf.encrypted_key),
        path(&m.intermediates),
        emu.url,
    )
}

#[test]
fn serve_takes_every_identity_flag_from_the_file() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let token_file = d.path().join("container-token");
    let config = write_config(
        d.path(),
        &format!(
            "{}\n[serve]\nno-socket = true\nallow-host = [\"agent.test\"]\ncontainer-token-file = \"{}\"\n",
            identity_toml(&m, &emu),
            path(&token_file)
        ),
    );
    let agent = Agent::start(&["--config".into(), path(&config)], &[]);
    let token = imds_token(&agent.addr);
    let (status, body) = imds_credentials(&agent.addr, &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ASIA"), "{body}");
    let log = emu.requests();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["duration_seconds"], 1800, "from the file: {log:?}");
    // The [serve] section's flags took effect too.
    let container_token = std::fs::read_to_string(&token_file).unwrap();
    let (status, _, _) = http(
        &agent.addr,
        "GET",
        "/v1/credentials",
        &[
            ("Host", "agent.test"),
            ("Authorization", container_token.as_str()),
        ],
    );
    assert_eq!(
        status, 200,
        "allow-host and container-token-file from [serve]"
    );
}

#[test]
fn credential_process_with_config_against_emulate_and_the_command_line_wins() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    // Serve-only keys live in [serve]: the same file serves both subcommands.
    let config = write_config(
        d.path(),
        &format!(
            "{}[serve]\nport = 9911\n[credential-process]\nno-cache = true\n",
            identity_toml(&m, &emu)
        ),
    );
    let out = run(agent()
        .args(["credential-process", "--config"])
        .arg(&config));
    credentials(&out);
    let out = run(agent()
        .args([
            "credential-process",
            "--session-duration",
            "2700",
            "--config",
        ])
        .arg(&config));
    credentials(&out);
    let log = emu.requests();
    assert_eq!(log.len(), 2, "no cache: {log:?}");
    assert_eq!(log[0]["duration_seconds"], 1800, "the file's value");
    assert_eq!(log[1]["duration_seconds"], 2700, "the command line's value");
}

#[test]
fn rolesanywhere_config_names_the_file_and_clap_variables_beat_it() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    // A role the emulator refuses: only the variable's (right) role lets the call through.
    let text = identity_toml(&m, &emu).replace(ROLE, "arn:aws:iam::111122223333:role/other")
        + "no-cache = true\n";
    let config = write_config(d.path(), &text);
    let out = run(agent()
        .arg("credential-process")
        .env("ROLESANYWHERE_CONFIG", &config)
        .env("ROLESANYWHERE_ROLE_ARN", ROLE));
    credentials(&out);
    let out = run(agent()
        .arg("credential-process")
        .env("ROLESANYWHERE_CONFIG", &config)
        .env_remove("ROLESANYWHERE_ROLE_ARN"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "the file's role: {}",
        stderr(&out)
    );
    assert_eq!(emu.requests().len(), 2);
    // A broken file named by the variable says so.
    let broken = write_config(d.path(), "port = 1\n");
    let out = run(agent()
        .arg("credential-process")
        .env("ROLESANYWHERE_CONFIG", &broken));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("'port' is a flag of serve, doctor but not of credential-process"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_key_is_an_error_with_its_line_and_the_nearest_flag() {
    let d = tempfile::tempdir().unwrap();
    let config = write_config(
        d.path(),
        &format!("trust-anchor-arn = \"{TA}\"\n\n[serve]\nprot = 9911\n"),
    );
    let out = run(agent().args(["serve", "--config"]).arg(&config));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: config file {}, line 4: unknown key 'prot' for serve",
            path(&config)
        )),
        "{err}"
    );
    assert!(err.contains("hint: did you mean 'port'?"), "{err}");
}

#[test]
fn a_wrong_type_is_an_error_with_its_line() {
    let d = tempfile::tempdir().unwrap();
    let config = write_config(d.path(), "# agent\nport = \"9911\"\n");
    let out = run(agent().args(["serve", "--config"]).arg(&config));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "config file {}, line 2: 'port' takes an integer, not a string",
            path(&config)
        )),
        "{err}"
    );
    assert!(err.contains("hint: write it as port = 9911"), "{err}");
    // A TOML syntax error: the position, never the line (it may hold a password).
    std::fs::write(&config, "pkcs8-password = \"hunter2\nport = 1\n").unwrap();
    let out = run(agent().args(["update", "--config"]).arg(&config));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("line 1, column") && err.contains("invalid TOML"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_password_in_a_group_readable_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let config = write_config(d.path(), "pkcs8-password = \"hunter2\"\n");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(agent()
        .args(["credential-process", "--config"])
        .arg(&config));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(
            "holds a secret ('pkcs8-password', line 1) but is readable by other users (mode 0644)"
        ),
        "{err}"
    );
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// Without `--endpoint`, the endpoint comes from the variables and `~/.aws/config` as the
/// SDKs read them: the service's variable first, then the profile's `services` section.
#[test]
fn the_endpoint_comes_from_aws_endpoint_url_rolesanywhere_and_the_services_section() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let text = identity_toml(&m, &emu)
        .lines()
        .filter(|l| !l.starts_with("endpoint ="))
        .collect::<Vec<_>>()
        .join("\n")
        + "\nno-cache = true\n";
    let config = write_config(d.path(), &text);
    let aws_config = d.path().join("aws-config");
    std::fs::write(
        &aws_config,
        format!(
            "[profile web]\nendpoint_url = https://unreachable.invalid\nservices = local\n\n[services local]\nrolesanywhere =\n  endpoint_url = {}\n",
            emu.url
        ),
    )
    .unwrap();
    let base = || {
        let mut cmd = agent();
        cmd.args(["credential-process", "--debug", "--config"])
            .arg(&config)
            .env("AWS_CONFIG_FILE", &aws_config)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_USE_FIPS_ENDPOINT")
            .env_remove("AWS_USE_DUALSTACK_ENDPOINT")
            .env_remove("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
        cmd
    };
    let out = run(base()
        .env("AWS_ENDPOINT_URL_ROLESANYWHERE", &emu.url)
        .env("AWS_PROFILE", "absent"));
    credentials(&out);
    assert!(
        stderr(&out).contains("AWS_ENDPOINT_URL_ROLESANYWHERE"),
        "the debug log says why: {}",
        stderr(&out)
    );
    let out = run(base()
        .env_remove("AWS_ENDPOINT_URL_ROLESANYWHERE")
        .env("AWS_PROFILE", "web"));
    credentials(&out);
    assert!(
        stderr(&out).contains("[services local] of profile 'web'"),
        "{}",
        stderr(&out)
    );
    assert_eq!(emu.requests().len(), 2);
    // A bad value is a configuration error naming the variable.
    let out = run(base()
        .env("AWS_USE_FIPS_ENDPOINT", "yes")
        .env("AWS_PROFILE", "absent"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("AWS_USE_FIPS_ENDPOINT is 'yes', not true or false"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn doctor_reads_the_same_file_and_its_own_section() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // The identity at the top level, doctor's own flags in its section.
    let config = write_config(
        d.path(),
        &format!(
            "{}\n[doctor]\nsocket = \"{}\"\njson = true\n",
            identity_toml(&m, &emu),
            path(&home.join("absent.sock"))
        ),
    );
    let out = run(agent()
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", home.join("absent-config"))
        .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .args(["doctor", "--config"])
        .arg(&config));
    let checks: serde_json::Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&out), stderr(&out)));
    let status = |name: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} in {checks:#}"))["status"]
            .clone()
    };
    // The file's certificate, key and ARNs were all seen, and its endpoint was reached.
    assert_eq!(status("key.matches"), "ok", "{checks:#}");
    assert_eq!(status("session"), "ok", "{checks:#}");
    let log = emu.requests();
    assert!(
        log.iter().any(|r| r["duration_seconds"] == 1800),
        "the file's session-duration reached the service: {log:?}"
    );
    let endpoint = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "endpoint.url")
        .unwrap()["saw"]
        .to_string();
    assert!(endpoint.contains(&emu.url), "{endpoint}");
}
