//! CreateSession over TLS (system roots plus AWS_CA_BUNDLE / --ca-bundle, or --no-verify-ssl)
//! and through a proxy only with --with-proxy, all on 127.0.0.1.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::time::Duration;

use crate::support::*;

fn identity_args(m: &rolesanywhere_agent::pki::TestMatrix) -> Vec<String> {
    p256_identity_args(m)
}

#[test]
fn https_endpoints_are_verified_against_the_extra_ca_bundles() {
    let (d, m) = matrix();
    let ca = d.path().join("emulate-ca.pem");
    let emu = Emulator::start(&m.anchors, &["--generate-tls", "--tls-ca-out", &path(&ca)]);
    assert!(emu.url.starts_with("https://127.0.0.1:"));
    let args = identity_args(&m);

    // Unknown CA: the handshake fails, exit 1, with a hint naming AWS_CA_BUNDLE.
    let out = run(credential_process(&emu.url, &[]).args(&args));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("AWS_CA_BUNDLE"), "{}", stderr(&out));

    credentials(&run(credential_process(&emu.url, &[])
        .args(&args)
        .env("AWS_CA_BUNDLE", &ca)));
    credentials(&run(credential_process(
        &emu.url,
        &["--ca-bundle", &path(&ca)],
    )
    .args(&args)));

    // --no-verify-ssl works, and says what it costs.
    let out = run(credential_process(&emu.url, &["--no-verify-ssl"]).args(&args));
    credentials(&out);
    assert!(
        stderr(&out).contains("warning: --no-verify-ssl"),
        "{}",
        stderr(&out)
    );

    // A CA bundle that is not one is a configuration error.
    let out = run(credential_process(&emu.url, &["--ca-bundle", &path(&m.not_pem)]).args(&args));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca-bundle"), "{}", stderr(&out));
    assert_eq!(emu.requests().len(), 3);
}

/// A proxy stand-in on 127.0.0.1 that records the first request line and answers 502.
fn fake_proxy() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..3 {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut line = String::new();
            let _ = BufReader::new(&conn).read_line(&mut line);
            let _ = tx.send(line.trim().to_string());
            let _ = conn.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (url, rx)
}

#[test]
fn proxies_from_the_environment_are_used_only_with_with_proxy() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let (proxy, seen) = fake_proxy();
    let args = identity_args(&m);

    // Without --with-proxy (the Go helper's default) the proxy variables are ignored.
    let out = run(credential_process(&emu.url, &[])
        .args(&args)
        .env("HTTP_PROXY", &proxy)
        .env("NO_PROXY", ""));
    credentials(&out);
    assert!(
        seen.try_recv().is_err(),
        "the proxy was used without --with-proxy"
    );

    // With it, the request goes to the proxy (which answers 502, retried, then reported).
    let out = run(credential_process(&emu.url, &["--with-proxy"])
        .args(&args)
        .env("HTTP_PROXY", &proxy)
        .env("NO_PROXY", ""));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let first = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        first.starts_with(&format!("POST {}/sessions?", emu.url)),
        "{first}"
    );
    assert_eq!(
        emu.requests().len(),
        1,
        "only the direct request reached the service"
    );
}
