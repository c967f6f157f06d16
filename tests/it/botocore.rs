//! A real client: botocore resolves credentials through a `credential_process` line that runs
//! the built binary against `emulate`. botocore must be importable (`.ci/run` installs it).

use crate::support::*;
use rolesanywhere_agent::pki::KeyType;

#[test]
fn botocore_resolves_credentials_through_credential_process() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::P256).unwrap();
    let config = d.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile ra]\ncredential_process = {} credential-process --certificate {} --private-key {} --intermediates {} --trust-anchor-arn {TA} --profile-arn {PROFILE} --role-arn {ROLE} --endpoint {}\nregion = us-east-1\n",
            bin(),
            path(&leaf.cert_pem),
            path(&leaf.key),
            path(&m.intermediates),
            emu.url
        ),
    )
    .unwrap();
    let script = "import botocore.session\n\
        s = botocore.session.Session(profile='ra')\n\
        c = s.get_credentials()\n\
        f = c.get_frozen_credentials()\n\
        print(c.method, f.access_key, len(f.secret_key) > 0, len(f.token) > 0, c._expiry_time.isoformat())\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", d.path().join("absent"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("XDG_CACHE_HOME", scratch_dir("cache"))
        .env("XDG_RUNTIME_DIR", scratch_dir("run"))
        .output()
        .expect("python3 must be installed (.ci/run installs it)");
    let text = stdout(&out);
    assert!(out.status.success(), "botocore failed: {}", stderr(&out));
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields[0], "custom-process", "{text}");
    assert!(fields[1].starts_with("ASIA"), "{text}");
    assert_eq!(&fields[2..4], ["True", "True"], "{text}");
    let log = emu.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], 201);
}
