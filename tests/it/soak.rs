//! Soak: `serve` through 20+ credential refreshes and three certificate renewals (a
//! Kubernetes `..data` swap, an in-place overwrite, a rename into place), with botocore and a
//! raw IMDS client polling all along. Nothing may go wrong: no non-200 answer, no empty or
//! expired credentials, no request rejected by `emulate`, and the agent's RSS flat (under
//! 1 MiB of growth after the first renewal).
//!
//! About three minutes, so it is ignored by a plain `cargo test`; scripts/test.sh runs it
//! (`cargo test --test soak -- --ignored`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::rotation::{
    Pki, SecretVolume, Serve, key_pem, overwrite, rename_into_place, serial,
};
use crate::support::{self, BOTOCORE_WHO, Emulator, botocore, http, imds_credentials};

/// Credentials live 16 s at emulate: a refresh about every 8 s.
const LIFETIME: &str = "16";
const REFRESHES: usize = 20;
const LIMIT: Duration = Duration::from_secs(240);

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A token as the SDKs ask for one (botocore and aws-config: 6 hours).
fn sdk_token(addr: &str) -> String {
    let (status, _, body) = http(
        addr,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls the IMDS endpoint as an SDK would until `stop`: (answers, failures). Like the SDKs,
/// it asks for a new token once when the agent no longer knows its own: botocore takes a
/// new 6-hour token on every lookup, so once 256 of those are live the agent evicts the
/// soonest-expiring tokens, which can be this client's.
fn raw_client(addr: String, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let (mut answers, mut failures) = (0, Vec::new());
    let mut token = sdk_token(&addr);
    let mut token_at = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if token_at.elapsed() > Duration::from_secs(30) {
            token = sdk_token(&addr);
            token_at = Instant::now();
        }
        let (mut status, mut body) = imds_credentials(&addr, &token);
        if status == 401 {
            token = sdk_token(&addr);
            token_at = Instant::now();
            (status, body) = imds_credentials(&addr, &token);
        }
        answers += 1;
        if status != 200 {
            failures.push(format!("{status}: {body}"));
        } else {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            for k in ["AccessKeyId", "SecretAccessKey", "Token"] {
                if v[k].as_str().is_none_or(str::is_empty) {
                    failures.push(format!("empty {k}"));
                }
            }
            let exp = time::OffsetDateTime::parse(
                v["Expiration"].as_str().unwrap_or_default(),
                &time::format_description::well_known::Rfc3339,
            );
            if !exp.is_ok_and(|e| e > time::OffsetDateTime::now_utc()) {
                failures.push(format!("expired or unreadable Expiration: {body}"));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (answers, failures)
}

#[test]
#[ignore = "soak: about three minutes; scripts/test.sh runs it"]
fn serve_survives_refreshes_and_renewals_under_load() {
    let pki = Pki::new();
    let emu = Emulator::start(&pki.anchor, &["--credential-lifetime", LIFETIME]);
    let dir = tempfile::tempdir().unwrap();
    let leaves: Vec<_> = (0..4).map(|_| pki.leaf()).collect();
    let mut volume = SecretVolume::new(dir.path(), &leaves[0]);
    let (cert, key) = (volume.cert(), volume.key());
    let serve = Serve::start(&cert, &key, &emu, &["--no-socket"]);
    let pid = serve.child.id();
    let started = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let raw = {
        let (addr, stop) = (serve.addr.clone(), stop.clone());
        std::thread::spawn(move || raw_client(addr, stop))
    };
    // botocore: a fresh session each round, so each round asks the agent again.
    let boto = {
        let (endpoint, seconds) = (format!("http://{}/", serve.addr), LIMIT.as_secs());
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::thread::spawn(move || {
            let script = format!(
                "import time, os\n\
                 n = 0\n\
                 end = time.time() + {seconds}\n\
                 while time.time() < end and not os.path.exists('{stop}'):\n\
                 \x20   exec({who:?})\n\
                 \x20   n += 1\n\
                 \x20   time.sleep(0.5)\n\
                 print('rounds', n)\n",
                stop = home.join("stop").display(),
                who = BOTOCORE_WHO,
            );
            let out = botocore(
                &script,
                &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)],
                &home,
            );
            (out, home)
        })
    };

    let renewals: [(&str, Duration); 3] = [
        ("symlink swap", Duration::from_secs(30)),
        ("in-place overwrite", Duration::from_secs(70)),
        ("rename into place", Duration::from_secs(110)),
    ];
    let mut rss_after_first = None;
    for (i, (style, at)) in renewals.iter().enumerate() {
        std::thread::sleep(at.saturating_sub(started.elapsed()));
        let next = &leaves[i + 1];
        match i {
            0 => volume.publish(next),
            // Through the symlinks, into the files the volume holds now.
            1 => {
                overwrite(&key, &key_pem(next));
                overwrite(&cert, &next.cert_pem);
            }
            // Regular files renamed over the symlinks.
            _ => {
                rename_into_place(&key, &key_pem(next));
                rename_into_place(&cert, &next.cert_pem);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !emu
            .requests()
            .iter()
            .any(|r| r["serial"].as_str() == Some(&serial(next)))
        {
            assert!(
                Instant::now() < deadline,
                "{style}: the new certificate was not used\n{}",
                serve.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        if i == 0 {
            // Let the renewal's allocations settle: one more refresh first.
            let seen = emu.requests().len();
            while emu.requests().len() == seen {
                std::thread::sleep(Duration::from_millis(200));
            }
            rss_after_first = Some(rss_kib(pid));
        }
    }
    while emu.requests().len() < REFRESHES + 1 {
        assert!(
            started.elapsed() < LIMIT,
            "{} sessions",
            emu.requests().len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let rss_end = rss_kib(pid);
    stop.store(true, Ordering::SeqCst);
    let (answers, failures) = raw.join().unwrap();
    std::fs::write(dir.path().join("home").join("stop"), "").unwrap();
    let (out, _) = boto.join().unwrap();

    let requests = emu.requests();
    let rejected: Vec<_> = requests.iter().filter(|r| r["status"] != 201).collect();
    assert!(rejected.is_empty(), "rejected at emulate: {rejected:?}");
    assert!(
        failures.is_empty(),
        "{} bad answers: {failures:?}",
        failures.len()
    );
    let text = support::stdout(&out);
    assert!(out.status.success(), "botocore: {}", support::stderr(&out));
    assert!(
        !text.contains("Traceback"),
        "botocore: {text}{}",
        support::stderr(&out)
    );
    let rounds: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("rounds "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let growth = rss_end.saturating_sub(rss_after_first.unwrap());
    eprintln!(
        "soak: {} sessions, {answers} raw answers, {rounds} botocore rounds, RSS {} KiB after the first renewal, {rss_end} KiB at the end (+{growth} KiB), {:?}",
        requests.len(),
        rss_after_first.unwrap(),
        started.elapsed()
    );
    assert!(rounds > 100, "botocore polled throughout: {text}");
    assert!(growth < 1024, "RSS grew {growth} KiB");
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));
}
