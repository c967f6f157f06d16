//! `status` against a running agent: what it shows (text and JSON), and that no secret the
//! agent holds appears in either. Also `doctor`'s agent checks against the same agent.

use crate::support::doctor_pki::doctor_pki;
use crate::support::*;

#[test]
fn status_shows_a_running_agent_without_its_secrets() {
    let pki = doctor_pki();
    let emu = Emulator::start(&pki.anchor, &[]);
    let run_dir = scratch_dir("run");
    let socket = run_dir.join("agent.sock");
    let args: Vec<String> = [
        "--certificate",
        &path(&pki.good.cert),
        "--private-key",
        &path(&pki.good.key),
        "--intermediates",
        &path(&pki.intermediates),
        "--endpoint",
        &emu.url,
    ]
    .into_iter()
    .chain(ARN_FLAGS)
    // Last: doctor below takes every flag but these two.
    .chain(["--socket", &path(&socket)])
    .map(String::from)
    .collect();
    let served = Agent::start(&args, &[]);

    // The secrets the agent holds, as an SDK gets them.
    let token = imds_token(&served.addr);
    let (code, body) = imds_credentials(&served.addr, &token);
    assert_eq!(code, 200, "{body}");
    let creds: serde_json::Value = serde_json::from_str(&body).unwrap();
    let secret = creds["SecretAccessKey"].as_str().unwrap().to_string();
    let session_token = creds["Token"].as_str().unwrap().to_string();
    let key_id = creds["AccessKeyId"].as_str().unwrap().to_string();
    assert!(secret.len() >= 40 && session_token.len() >= 100);

    let text = run(agent().arg("status").arg("--socket").arg(&socket));
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let out = stdout(&text);
    for expected in [
        "CN=doctor-good",
        &format!("access key id      {key_id}"),
        &format!("file {}", path(&pki.good.key)),
        "last refresh",
        "(ok)",
        "next refresh",
        "reloads            0 (0 rotated)",
        &format!("imds {}/", served.url),
        &format!("socket {}", path(&socket)),
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }

    let json = run(agent().args(["status", "--json", "--socket"]).arg(&socket));
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["identity"]["subject"], "CN=doctor-good");
    assert_eq!(v["credentials"]["access_key_id"], key_id.as_str());
    assert_eq!(v["credentials"]["expiration"], creds["Expiration"]);
    assert_eq!(v["last_refresh"]["ok"], true);
    assert!(v["next_refresh"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["reloads"]["count"], 0);
    assert_eq!(v["endpoints"].as_array().unwrap().len(), 2, "{v}");

    for (what, output) in [("text", &text), ("json", &json)] {
        let all = format!("{}{}", stdout(output), stderr(output));
        assert!(
            !all.contains(&secret),
            "the secret access key in the {what} output"
        );
        assert!(
            !all.contains(&session_token),
            "the session token in the {what} output"
        );
    }

    // SIGHUP reloads the identity: counted, with its result.
    served.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let o = run(agent().args(["status", "--json", "--socket"]).arg(&socket));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        if v["reloads"]["count"] == 1 {
            assert_eq!(v["reloads"]["last"]["ok"], true, "{v}");
            assert_eq!(v["reloads"]["last"]["result"], "unchanged", "{v}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload counted: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // doctor sees the agent on the socket and on the IMDS port.
    let home = scratch_dir("home");
    let port = served.addr.rsplit(':').next().unwrap().to_string();
    let o = run(agent()
        .env("AWS_CONFIG_FILE", home.join("absent"))
        .args([
            "doctor",
            "--json",
            "--no-session",
            "--port",
            &port,
            "--socket",
        ])
        .arg(&socket)
        .args(&args[..args.len() - 2]));
    let checks: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let find = |name: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(o.status.code(), Some(0), "{checks:#}");
    let socket_check = find("agent.socket");
    assert_eq!(socket_check["status"], "ok", "{checks:#}");
    assert!(
        socket_check["saw"]
            .as_str()
            .unwrap()
            .contains("serves this identity")
    );
    assert!(
        find("agent.imds")["saw"]
            .as_str()
            .unwrap()
            .contains("our agent answers")
    );
}

#[test]
fn status_without_an_agent_says_so() {
    let dir = scratch_dir("run");
    let o = run(agent()
        .arg("status")
        .arg("--socket")
        .arg(dir.join("none.sock")));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("no agent listens at") && err.contains("none.sock"),
        "{err}"
    );
    assert!(err.contains("serve"), "{err}");
}

#[test]
fn doctor_tells_a_foreign_service_on_the_imds_port_from_our_agent() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    let home = scratch_dir("home");
    let o = run(agent()
        .env("AWS_CONFIG_FILE", home.join("absent"))
        .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .args(["doctor", "--json", "--port", &port.to_string(), "--socket"])
        .arg(home.join("absent.sock")));
    server.join().unwrap();
    let checks: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let imds = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "agent.imds")
        .unwrap();
    assert_eq!(imds["status"], "warn", "{checks:#}");
    assert!(
        imds["saw"]
            .as_str()
            .unwrap()
            .contains("something else listens"),
        "{imds}"
    );
    assert_eq!(o.status.code(), Some(0), "{checks:#}");
}
