//! `doctor` end to end against `emulate`: a good setup passes, and each broken setup is
//! named with the exit code its kind calls for (2 configuration, 1 runtime).

use std::process::Output;

use crate::support::doctor_pki::{DoctorPki, Pair, doctor_pki};
use crate::support::*;

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `doctor --json` for `pair` against `endpoint`, isolated from the user's agent, IMDS port
/// and ~/.aws/config.
fn doctor(
    pki: &DoctorPki,
    pair: &Pair,
    intermediates: &std::path::Path,
    endpoint: &str,
    extra: &[&str],
) -> Output {
    let home = scratch_dir("home");
    let mut cmd = agent();
    cmd.env("HOME", &home)
        .env("AWS_CONFIG_FILE", home.join("absent-config"))
        .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .args(["doctor", "--json", "--certificate"])
        .arg(&pair.cert)
        .arg("--private-key")
        .arg(&pair.key)
        .arg("--intermediates")
        .arg(intermediates)
        .args(ARN_FLAGS)
        .args(["--endpoint", endpoint])
        .arg("--socket")
        .arg(home.join("absent.sock"))
        .args(["--port", &closed_port().to_string()])
        .args(extra);
    let _ = pki;
    run(&mut cmd)
}

fn checks(o: &Output) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&stdout(o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
        .as_array()
        .unwrap()
        .clone()
}

fn find<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks:#?}"))
}

fn failed(checks: &[serde_json::Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_good_setup_passes_every_check() {
    let pki = doctor_pki();
    let emu = Emulator::start(&pki.anchor, &[]);
    let o = doctor(&pki, &pki.good, &pki.intermediates, &emu.url, &[]);
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(0), "{all:#?}\nstderr: {}", stderr(&o));
    assert!(failed(&all).is_empty(), "{all:#?}");
    for name in [
        "flags.trust-anchor-arn",
        "flags.same-region-account",
        "certificate.not-ca",
        "certificate.key-usage",
        "certificate.validity",
        "key.matches",
        "chain.links",
        "endpoint.tcp",
        "clock",
        "session",
    ] {
        assert_eq!(find(&all, name)["status"], "ok", "{name}: {all:#?}");
    }
    assert!(
        find(&all, "session")["saw"]
            .as_str()
            .unwrap()
            .contains("access key id ASIA")
    );
    assert!(
        find(&all, "endpoint.url")["saw"]
            .as_str()
            .unwrap()
            .contains("--endpoint")
    );
    assert!(
        find(&all, "chain.anchor")["saw"]
            .as_str()
            .unwrap()
            .contains("Doctor Root CA")
    );
    // CreateSession was really made, once.
    assert_eq!(
        emu.requests().iter().filter(|r| r["status"] == 201).count(),
        1
    );

    // The text form: one line per check, then the summary.
    let home = scratch_dir("home");
    let text = run(agent()
        .env("AWS_CONFIG_FILE", home.join("absent"))
        .args(["doctor", "--no-session", "--certificate"])
        .arg(&pki.good.cert)
        .arg("--private-key")
        .arg(&pki.good.key)
        .args(ARN_FLAGS)
        .args(["--endpoint", &emu.url, "--port", &closed_port().to_string()]));
    assert_eq!(text.status.code(), Some(0), "{}", stdout(&text));
    let out = stdout(&text);
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok    certificate.validity")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("skip  session") && l.contains("--no-session")),
        "{out}"
    );
    assert!(
        out.trim_end().lines().last().unwrap().contains("0 FAIL"),
        "{out}"
    );
}

#[test]
fn an_expired_certificate_is_a_configuration_failure_that_names_it() {
    let pki = doctor_pki();
    let emu = Emulator::start(&pki.anchor, &[]);
    let o = doctor(&pki, &pki.expired, &pki.intermediates, &emu.url, &[]);
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(2), "{all:#?}");
    let v = find(&all, "certificate.validity");
    assert_eq!(v["status"], "fail");
    let saw = v["saw"].as_str().unwrap();
    assert!(
        saw.contains("doctor-expired") && saw.contains("expired at"),
        "{saw}"
    );
    assert!(v["fix"].as_str().unwrap().contains("renew"));
    // The service would refuse it: no CreateSession is sent (the clock check's GET is all).
    assert_eq!(find(&all, "session")["status"], "skip");
    assert!(
        emu.requests().iter().all(|r| r["method"] == "GET"),
        "{:?}",
        emu.requests()
    );
}

#[test]
fn three_days_left_warns_but_passes() {
    let pki = doctor_pki();
    let emu = Emulator::start(&pki.anchor, &[]);
    let o = doctor(&pki, &pki.three_days, &pki.intermediates, &emu.url, &[]);
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(0), "{all:#?}");
    let v = find(&all, "certificate.validity");
    assert_eq!(v["status"], "warn", "{all:#?}");
    assert!(
        v["saw"].as_str().unwrap().contains("2 days 23 hours left"),
        "{v}"
    );
    assert_eq!(find(&all, "session")["status"], "ok");
}

#[test]
fn a_ca_certificate_as_the_leaf_fails() {
    let pki = doctor_pki();
    let emu = Emulator::start(&pki.anchor, &[]);
    let o = doctor(&pki, &pki.ca_leaf, &pki.anchor, &emu.url, &[]);
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(2), "{all:#?}");
    let v = find(&all, "certificate.not-ca");
    assert_eq!(v["status"], "fail");
    assert!(
        v["saw"]
            .as_str()
            .unwrap()
            .contains("Doctor Intermediate CA"),
        "{v}"
    );
    assert_eq!(failed(&all), vec!["certificate.not-ca"], "{all:#?}");
}

#[test]
fn a_wrong_chain_names_the_link_that_breaks() {
    let pki = doctor_pki();
    let emu = Emulator::start(&pki.anchor, &[]);
    let o = doctor(
        &pki,
        &pki.good,
        &pki.wrong_intermediates,
        &emu.url,
        &["--no-session"],
    );
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(2), "{all:#?}");
    let v = find(&all, "chain.links");
    assert_eq!(v["status"], "fail");
    let saw = v["saw"].as_str().unwrap();
    assert!(
        saw.contains("Other Intermediate CA")
            && saw.contains("did not issue the leaf")
            && saw.contains("Doctor Intermediate CA"),
        "{saw}"
    );
    assert_eq!(failed(&all), vec!["chain.links"], "{all:#?}");
}

/// Seconds from the `Date` header of `emulate` at `url` to this host's clock.
fn date_offset(url: &str) -> i64 {
    let addr = url.trim_start_matches("http://");
    let (_, headers, _) = http(addr, "GET", "/", &[]);
    let date = &headers.iter().find(|(k, _)| k == "date").unwrap().1;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let theirs = time::PrimitiveDateTime::parse(date, format)
        .unwrap()
        .assume_utc();
    (theirs - time::OffsetDateTime::now_utc()).whole_seconds()
}

#[test]
fn a_clock_ten_minutes_off_is_named_with_its_offset() {
    let pki = doctor_pki();
    let emu = Emulator::start(&pki.anchor, &["--clock-offset", "600"]);
    // The emulator's Date header follows its clock.
    let offset = date_offset(&emu.url);
    assert!((598..=601).contains(&offset), "Date header offset {offset}");
    let o = doctor(&pki, &pki.good, &pki.intermediates, &emu.url, &[]);
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(1), "{all:#?}");
    let v = find(&all, "clock");
    assert_eq!(v["status"], "fail");
    let saw = v["saw"].as_str().unwrap();
    let n: i64 = saw
        .split("offset ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {saw}"));
    assert!((598..=602).contains(&n), "{saw}");
    assert!(saw.contains("behind the endpoint"), "{saw}");
    assert!(v["fix"].as_str().unwrap().contains("NTP"));
    // The service refuses the signature, and the hint blames the clock too.
    let s = find(&all, "session");
    assert_eq!(s["status"], "fail");
    assert!(s["fix"].as_str().unwrap().contains("clock"), "{s}");
    // And the plain system clock gives a Date header within a second or two of ours.
    let plain = Emulator::start(&pki.anchor, &[]);
    assert!(date_offset(&plain.url).abs() <= 2);
}

#[test]
fn an_unreachable_endpoint_is_a_runtime_failure() {
    let pki = doctor_pki();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let o = doctor(&pki, &pki.good, &pki.intermediates, &url, &[]);
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(1), "{all:#?}");
    assert_eq!(failed(&all), vec!["endpoint.tcp"], "{all:#?}");
    assert!(
        find(&all, "endpoint.tcp")["saw"]
            .as_str()
            .unwrap()
            .contains("refused")
    );
    assert_eq!(find(&all, "session")["status"], "skip");
    assert_eq!(find(&all, "clock")["status"], "skip");
}

#[test]
fn each_profile_of_the_aws_config_running_this_binary_is_checked() {
    let pki = doctor_pki();
    let home = scratch_dir("home");
    let config = home.join("config");
    let line = |cert: &std::path::Path| {
        format!(
            "credential_process = {} credential-process --certificate {} --private-key {} --trust-anchor-arn {TA} --profile-arn {PROFILE} --role-arn {ROLE} --pkcs8-password hunter2\n",
            bin(),
            cert.display(),
            pki.good.key.display()
        )
    };
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = us-east-1\n\n[profile good]\n{}\n[profile gone]\n{}\n[profile other]\ncredential_process = /bin/echo hi\n[profile typo]\ncredential_process = rolesanywhere-agent credential-process --certifcate x\n",
            line(&pki.good.cert),
            line(&home.join("missing.pem")),
        ),
    )
    .unwrap();
    let o = run(agent()
        .env("AWS_CONFIG_FILE", &config)
        .args(["doctor", "--json", "--port", &closed_port().to_string()])
        .arg("--socket")
        .arg(home.join("absent.sock")));
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(2), "{all:#?}");
    assert_eq!(find(&all, "aws-config.good")["status"], "ok", "{all:#?}");
    let gone = find(&all, "aws-config.gone");
    assert_eq!(gone["status"], "fail");
    assert!(
        gone["saw"].as_str().unwrap().contains("missing.pem"),
        "{gone}"
    );
    assert_eq!(find(&all, "aws-config.typo")["status"], "fail");
    assert!(!all.iter().any(|c| c["check"] == "aws-config.other"));
    assert!(!stdout(&o).contains("hunter2"), "{}", stdout(&o));
}

#[test]
fn a_proxy_variable_without_with_proxy_is_named_when_the_direct_way_fails() {
    let pki = doctor_pki();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let proxy = format!("http://user:hunter2@127.0.0.1:{}", closed_port());
    let home = scratch_dir("home");
    let mut cmd = agent();
    cmd.env("HTTP_PROXY", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("AWS_CONFIG_FILE", home.join("absent"))
        .args(["doctor", "--json", "--no-session", "--certificate"])
        .arg(&pki.good.cert)
        .arg("--private-key")
        .arg(&pki.good.key)
        .args(ARN_FLAGS)
        .args(["--endpoint", &url, "--port", &closed_port().to_string()]);
    let o = run(&mut cmd);
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(1), "{all:#?}");
    let p = find(&all, "endpoint.proxy");
    assert_eq!(p["status"], "fail", "{all:#?}");
    assert!(p["fix"].as_str().unwrap().contains("--with-proxy"), "{p}");
    assert!(
        p["saw"]
            .as_str()
            .unwrap()
            .contains("HTTP_PROXY=http://127.0.0.1:"),
        "{p}"
    );
    assert!(!stdout(&o).contains("hunter2"), "{}", stdout(&o));
    // With --with-proxy the proxy is what is dialled.
    let o = run(cmd.arg("--with-proxy"));
    let all = checks(&o);
    assert_eq!(find(&all, "endpoint.proxy")["status"], "ok", "{all:#?}");
    assert!(
        find(&all, "endpoint.dns")["saw"]
            .as_str()
            .unwrap()
            .starts_with("the proxy ")
    );
    assert_eq!(find(&all, "endpoint.tcp")["status"], "fail");
}

#[test]
fn a_key_of_another_certificate_is_a_configuration_failure() {
    let pki = doctor_pki();
    let mismatched = Pair {
        cert: pki.good.cert.clone(),
        key: pki.three_days.key.clone(),
        common_name: pki.good.common_name.clone(),
    };
    let url = format!("http://127.0.0.1:{}", closed_port());
    let o = doctor(
        &pki,
        &mismatched,
        &pki.intermediates,
        &url,
        &["--no-session"],
    );
    let all = checks(&o);
    assert_eq!(o.status.code(), Some(2), "{all:#?}");
    let k = find(&all, "key.matches");
    assert_eq!(k["status"], "fail");
    assert!(
        k["saw"].as_str().unwrap().contains("does not belong"),
        "{k}"
    );
    assert!(k["fix"].as_str().unwrap().contains("openssl"), "{k}");
    assert_eq!(find(&all, "key.load")["status"], "ok");
    // The certificate itself is fine; the chain is still checked.
    assert_eq!(find(&all, "certificate.validity")["status"], "ok");
    assert_eq!(find(&all, "chain.links")["status"], "ok");
}
