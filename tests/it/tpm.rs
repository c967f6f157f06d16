//! TPM 2.0 keys against a real software TPM: each test starts its own `swtpm` on free
//! 127.0.0.1 ports, makes keys in it with tpm2-tools (persistent handles and TSS2 key files,
//! RSA-2048 and P-256, with and without a password), issues certificates for their public
//! keys, and signs through the crate's TPM client. Nothing is mocked; `swtpm`, `swtpm_setup`
//! and `tpm2-tools` must be installed (scripts/test.sh does it).

#![cfg(feature = "tpm")]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use rolesanywhere_agent::identity::tpm::{self, Tcti, TpmError, TpmKey};
use rolesanywhere_agent::signer::{Digest, KeyKind, Signer, verify};
use secrecy::SecretString;

const PASSWORD: &str = "tpm-key-pass";

/// A swtpm process, killed on drop, with its state in a temporary directory.
struct Swtpm {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two consecutive free ports on 127.0.0.1 (server and control).
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let port = addr.port();
        if port < u16::MAX - 1 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of ports on 127.0.0.1");
}

impl Swtpm {
    /// Starts swtpm; `initialized` adds `--flags not-need-init,startup-clear` (else the
    /// TPM waits to be powered on and started by its first client).
    fn start(initialized: bool) -> Swtpm {
        let Ok(which) = Command::new("swtpm").arg("--version").output() else {
            panic!("swtpm is not installed: apt-get install -y swtpm swtpm-tools tpm2-tools");
        };
        assert!(which.status.success(), "swtpm --version failed");
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port_pair();
            let mut cmd = Command::new("swtpm");
            cmd.args(["socket", "--tpm2", "--server"])
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", dir.path().display()));
            if initialized {
                cmd.args(["--flags", "not-need-init,startup-clear"]);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut tpm = Swtpm { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return tpm;
                }
                if let Ok(Some(_)) = tpm.child.try_wait() {
                    break; // a port was taken meanwhile: try others
                }
                assert!(Instant::now() < deadline, "swtpm did not listen in 10 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("swtpm did not start");
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs a tpm2-tools command against this TPM, asserting success, and frees the
    /// transient objects and sessions it may leave (swtpm has only three slots of each).
    fn tool(&self, args: &[&str]) -> String {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", self.tcti())
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{} (tpm2-tools installed?): {e}", args[0]));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for what in ["-t", "-l", "-s"] {
            let _ = Command::new("tpm2_flushcontext")
                .arg(what)
                .env("TPM2TOOLS_TCTI", self.tcti())
                .output();
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A storage primary in the owner hierarchy: tpm2-tools' default ECC template, or the
    /// TCG SRK template with noDA that key-file producers and the Go helper use.
    fn primary(&self, name: &str, nod_a: bool) -> String {
        let ctx = format!("{name}.ctx");
        let mut args = vec![
            "tpm2_createprimary",
            "-C",
            "o",
            "-g",
            "sha256",
            "-G",
            "ecc",
            "-c",
            &ctx,
        ];
        if nod_a {
            args.extend([
                "-a",
                "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt",
            ]);
        }
        self.tool(&args);
        ctx
    }

    /// A child key of `parent` (`rsa2048`, `ecc256`, or with a scheme such as
    /// `ecc256:ecdsa-sha256`); returns the names of its public and private blobs.
    fn child_key(
        &self,
        parent: &str,
        alg: &str,
        name: &str,
        password: Option<&str>,
    ) -> [String; 2] {
        let (public, private) = (format!("{name}.pub"), format!("{name}.priv"));
        let mut args = vec![
            "tpm2_create",
            "-C",
            parent,
            "-G",
            alg,
            "-u",
            &public,
            "-r",
            &private,
        ];
        if let Some(pw) = password {
            args.extend(["-p", pw]);
        }
        self.tool(&args);
        [public, private]
    }

    /// A persistent key at `handle`; returns its public key as `tpm2_readpublic` writes it
    /// (PEM SubjectPublicKeyInfo).
    fn persistent_key(&self, alg: &str, handle: &str, password: Option<&str>) -> Vec<u8> {
        let parent = self.primary(&format!("p{handle}"), false);
        let name = format!("k{handle}");
        let [public, private] = self.child_key(&parent, alg, &name, password);
        let ctx = format!("{name}.ctx");
        self.tool(&[
            "tpm2_load",
            "-C",
            &parent,
            "-u",
            &public,
            "-r",
            &private,
            "-c",
            &ctx,
        ]);
        self.tool(&["tpm2_evictcontrol", "-C", "o", "-c", &ctx, handle]);
        self.public_pem(handle)
    }

    fn public_pem(&self, object: &str) -> Vec<u8> {
        let out = format!("{}.pem", object.replace(['/', '.'], "_"));
        self.tool(&["tpm2_readpublic", "-c", object, "-f", "pem", "-o", &out]);
        std::fs::read(self.file(&out)).unwrap()
    }
}

/// The subjectPublicKey bits of a PEM SubjectPublicKeyInfo, and the key kind.
fn spki_bits(pem: &[u8]) -> (Vec<u8>, &'static rcgen::SignatureAlgorithm) {
    use x509_parser::prelude::FromDer as _;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&block.contents).unwrap();
    let alg = match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => &rcgen::PKCS_RSA_SHA256,
        "1.2.840.10045.2.1" => &rcgen::PKCS_ECDSA_P256_SHA256,
        other => panic!("unexpected key algorithm {other}"),
    };
    (spki.subject_public_key.data.to_vec(), alg)
}

/// A public key that is not ours to hold: what a certificate is issued for.
struct ForeignKey {
    bits: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for ForeignKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// A throwaway CA (written to `dir/ca.pem`) that issues client certificates for TPM keys.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    anchor: PathBuf,
}

impl TestCa {
    fn new(dir: &Path) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tpm test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(1);
        let cert = params.self_signed(&key).unwrap();
        let anchor = dir.join("ca.pem");
        std::fs::write(&anchor, cert.pem()).unwrap();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            anchor,
        }
    }

    /// Issues a leaf for the public key in `pem`, writes it to `dir/name.crt`.
    fn issue(&self, dir: &Path, name: &str, pem: &[u8]) -> (PathBuf, Vec<u8>) {
        let (bits, alg) = spki_bits(pem);
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(1);
        let key = ForeignKey {
            bits: bits.clone(),
            alg,
        };
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, cert.pem()).unwrap();
        (path, bits)
    }
}

fn tcti(tpm: &Swtpm) -> Tcti {
    Tcti::parse(&tpm.tcti()).unwrap()
}

fn pw(s: &str) -> Option<SecretString> {
    Some(SecretString::from(s.to_string()))
}

/// Signs with every digest and verifies against `public` (the certificate's key bits).
fn assert_signs(key: &TpmKey, public: &[u8], kind: KeyKind) {
    assert_eq!(key.key_kind(), kind);
    assert_eq!(key.public_key().as_deref(), Some(public), "{key:?}");
    for digest in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
        let message = format!("AWS4-X509 string to sign {digest:?}");
        let sig = key.sign(message.as_bytes(), digest).unwrap();
        assert!(
            verify(kind, public, message.as_bytes(), digest, &sig),
            "{key:?} {digest:?} signature does not verify"
        );
    }
}

/// Encodes a TSS2 PRIVATE KEY file the way the engines do (correct emptyAuth, unlike
/// tpm2-tools 5.4's tpm2_encodeobject).
fn tss2_pem(empty_auth: bool, parent: u32, public: &[u8], private: &[u8]) -> String {
    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match value.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n <= 0xFF => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(value);
        out
    }
    let mut body = tlv(0x06, &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x03]);
    if empty_auth {
        body.extend(tlv(0xA0, &tlv(0x01, &[0xFF])));
    }
    let mut parent_int = vec![0];
    parent_int.extend(parent.to_be_bytes());
    body.extend(tlv(0x02, &parent_int));
    body.extend(tlv(0x04, public));
    body.extend(tlv(0x04, private));
    let der = tlv(0x30, &body);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
    let mut pem = String::from("-----BEGIN TSS2 PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END TSS2 PRIVATE KEY-----\n");
    pem
}

#[test]
fn persistent_keys_sign_and_match_their_certificates() {
    let tpm = Swtpm::start(true);
    let ca = TestCa::new(tpm.dir.path());
    let cases = [
        ("rsa2048", "0x81000001", None, KeyKind::Rsa { bits: 2048 }),
        ("ecc256", "0x81000002", None, KeyKind::EcP256),
        (
            "rsa2048",
            "0x81000003",
            Some(PASSWORD),
            KeyKind::Rsa { bits: 2048 },
        ),
        ("ecc256", "0x81000004", Some(PASSWORD), KeyKind::EcP256),
        // Keys whose own scheme is fixed (not NULL).
        ("ecc256:ecdsa-sha256", "0x81000005", None, KeyKind::EcP256),
    ];
    for (alg, handle, password, kind) in cases {
        let pem = tpm.persistent_key(alg, handle, password);
        let (_cert, bits) = ca.issue(tpm.dir.path(), &format!("leaf{handle}"), &pem);
        let spec = format!("handle:{handle}");
        let key = match password {
            Some(p) => tpm::open_key_with(&spec, pw(p), false, tcti(&tpm)),
            None => tpm::open_key_with(&spec, None, true, tcti(&tpm)),
        }
        .unwrap_or_else(|e| panic!("{spec}: {e} ({:?})", e.hint()));
        assert_signs(&key, &bits, kind);
        assert!(key.source().contains(handle), "{}", key.source());
        let debug = format!("{key:?}");
        assert!(!debug.contains(PASSWORD), "{debug}");
    }
    // An RSA key fixed to RSASSA-SHA256 signs SHA-256 and says plainly it cannot do SHA-384.
    let pem = tpm.persistent_key("rsa2048:rsassa-sha256", "0x81000006", None);
    let (bits, _) = spki_bits(&pem);
    let key = tpm::open_key_with("handle:0x81000006", None, true, tcti(&tpm)).unwrap();
    let sig = key.sign(b"m", Digest::Sha256).unwrap();
    assert!(verify(key.key_kind(), &bits, b"m", Digest::Sha256, &sig));
    let err = key.sign(b"m", Digest::Sha384).unwrap_err();
    assert!(err.to_string().contains("cannot sign with Sha384"), "{err}");
}

#[test]
fn password_and_handle_errors_are_clear() {
    let tpm = Swtpm::start(true);
    tpm.persistent_key("ecc256", "0x81000001", Some(PASSWORD));
    let t = tcti(&tpm);

    let e =
        tpm::open_key_with("handle:0x81000001", pw("Xyzzy-bad-pw"), false, t.clone()).unwrap_err();
    assert!(matches!(e, TpmError::WrongPassword { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("password") && msg.contains("0x81000001"),
        "{msg}"
    );
    assert!(e.hint().unwrap().contains("--tpm-key-password"));
    assert!(
        !msg.contains("Xyzzy"),
        "the password is never echoed: {msg}"
    );

    let e = tpm::open_key_with("handle:0x81000001", None, true, t.clone()).unwrap_err();
    assert!(matches!(e, TpmError::WrongPassword { .. }), "{e:?}");

    let e = tpm::open_key_with("handle:0x81000001", None, false, t.clone()).unwrap_err();
    assert!(matches!(e, TpmError::PasswordFlagNeeded { .. }), "{e:?}");

    let e = tpm::open_key_with("handle:0x81000077", None, true, t.clone()).unwrap_err();
    assert!(
        matches!(
            e,
            TpmError::NoSuchHandle {
                handle: 0x8100_0077,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(&tpm.tcti()), "{e}");

    // The right password still works after the failures (the key is not locked out yet).
    tpm::open_key_with("handle:0x81000001", pw(PASSWORD), false, t.clone()).unwrap();

    // With a one-try dictionary-attack limit, failures end in lockout, which is named.
    tpm.tool(&[
        "tpm2_dictionarylockout",
        "-s",
        "-n",
        "1",
        "-t",
        "600",
        "-l",
        "600",
    ]);
    let mut locked = None;
    for _ in 0..3 {
        match tpm::open_key_with("handle:0x81000001", pw("Xyzzy-bad-pw"), false, t.clone()) {
            Err(e @ TpmError::Lockout { .. }) => {
                locked = Some(e);
                break;
            }
            Err(TpmError::WrongPassword { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    let e = locked.expect("the TPM never reported lockout");
    assert!(e.to_string().contains("lockout"), "{e}");
    assert!(e.hint().unwrap().contains("tpm2_dictionarylockout"));
}

#[test]
fn tss2_key_files_load_under_either_owner_primary() {
    let tpm = Swtpm::start(true);
    let ca = TestCa::new(tpm.dir.path());
    let t = tcti(&tpm);
    let dir = tpm.dir.path();

    // Made entirely by tpm2-tools: tpm2_create under `tpm2_createprimary -C o -G ecc`, then
    // tpm2_encodeobject (parent written as the owner hierarchy, 0x40000001).
    let tools_primary = tpm.primary("tools", false);
    for (alg, name, password, kind) in [
        ("ecc256", "tools-ec", None, KeyKind::EcP256),
        ("rsa2048", "tools-rsa", None, KeyKind::Rsa { bits: 2048 }),
        ("ecc256", "tools-ec-pw", Some(PASSWORD), KeyKind::EcP256),
    ] {
        let [public, private] = tpm.child_key(&tools_primary, alg, name, password);
        let out = format!("{name}.pem");
        let mut args = vec![
            "tpm2_encodeobject",
            "-C",
            &tools_primary,
            "-u",
            &public,
            "-r",
            &private,
            "-o",
            &out,
        ];
        if password.is_some() {
            args.push("-p");
        }
        tpm.tool(&args);
        let file = dir.join(&out);
        let path = file.to_str().unwrap();
        let key = tpm::open_key_with(path, password.and_then(pw), false, t.clone())
            .unwrap_or_else(|e| panic!("{name}: {e} ({:?})", e.hint()));
        let blob_public = std::fs::read(dir.join(&public)).unwrap();
        // The certificate is made from the TPM's own view of the key.
        tpm.tool(&[
            "tpm2_loadexternal",
            "-C",
            "o",
            "-u",
            &public,
            "-c",
            "ext.ctx",
        ]);
        let pem = tpm.public_pem("ext.ctx");
        let (_cert, bits) = ca.issue(dir, name, &pem);
        assert!(!blob_public.is_empty());
        assert_signs(&key, &bits, kind);
        if password.is_some() {
            let e = tpm::open_key_with(path, None, false, t.clone()).unwrap_err();
            assert!(matches!(e, TpmError::PasswordNeeded { .. }), "{e:?}");
            let e = tpm::open_key_with(path, pw("nope"), false, t.clone()).unwrap_err();
            assert!(matches!(e, TpmError::WrongPassword { .. }), "{e:?}");
        }
    }

    // Under the TCG SRK template with noDA (tpm2-tss-engine, the OpenSSL provider, the Go
    // helper), encoded with a correct emptyAuth.
    let srk = tpm.primary("srk", true);
    let [public, private] = tpm.child_key(&srk, "ecc256", "engine-ec", None);
    let public = std::fs::read(dir.join(public)).unwrap();
    let private = std::fs::read(dir.join(private)).unwrap();
    let file = dir.join("engine-ec.pem");
    std::fs::write(&file, tss2_pem(true, 0x4000_0001, &public, &private)).unwrap();
    let key = tpm::open_key_with(file.to_str().unwrap(), None, false, t.clone()).unwrap();
    assert_eq!(key.key_kind(), KeyKind::EcP256);
    key.sign(b"twice, to use the remembered template", Digest::Sha256)
        .unwrap();

    // Under a persistent parent.
    tpm.tool(&["tpm2_evictcontrol", "-C", "o", "-c", &srk, "0x81000100"]);
    let [public, private] = tpm.child_key("0x81000100", "rsa2048", "persist-rsa", Some(PASSWORD));
    let public = std::fs::read(dir.join(public)).unwrap();
    let private = std::fs::read(dir.join(private)).unwrap();
    let file = dir.join("persist-rsa.pem");
    std::fs::write(&file, tss2_pem(false, 0x8100_0100, &public, &private)).unwrap();
    let key = tpm::open_key_with(file.to_str().unwrap(), pw(PASSWORD), false, t.clone()).unwrap();
    assert_eq!(key.key_kind(), KeyKind::Rsa { bits: 2048 });

    // A key file whose parent is not in this TPM.
    std::fs::write(&file, tss2_pem(false, 0x8100_0101, &public, &private)).unwrap();
    let e = tpm::open_key_with(file.to_str().unwrap(), pw(PASSWORD), false, t).unwrap_err();
    assert!(
        matches!(
            e,
            TpmError::NoSuchHandle {
                handle: 0x8100_0101,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_tpm_that_was_never_started_is_powered_on_and_started() {
    let tpm = Swtpm::start(false);
    let e = tpm::open_key_with("handle:0x81000001", None, true, tcti(&tpm)).unwrap_err();
    // Getting "no such handle" means ReadPublic ran: the TPM was brought up first.
    assert!(
        matches!(e, TpmError::NoSuchHandle { .. }),
        "{e:?} ({:?})",
        e.hint()
    );
}

/// A key made over TCP, then used through swtpm's Unix socket server: the
/// `device:PATH` / `TPM_DEVICE=PATH` form for a socket (raw TPM commands, no framing).
#[test]
fn a_unix_socket_device_path_carries_raw_commands() {
    let mut tpm = Swtpm::start(true);
    let pem = tpm.persistent_key("ecc256", "0x81000001", None);
    let (bits, _) = spki_bits(&pem);
    // Stop it gracefully (its state, with the persistent key, stays in the directory).
    let status = Command::new("kill")
        .arg(tpm.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let _ = tpm.child.wait();

    let dir = tpm.dir.path();
    let sock = dir.join("tpm.sock");
    let mut child = Command::new("swtpm")
        .args(["socket", "--tpm2", "--server"])
        .arg(format!("type=unixio,path={}", sock.display()))
        .arg("--ctrl")
        .arg(format!(
            "type=unixio,path={}",
            dir.join("ctrl.sock").display()
        ))
        .arg("--tpmstate")
        .arg(format!("dir={}", dir.display()))
        .args(["--flags", "not-need-init,startup-clear"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "swtpm did not listen on {sock:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = tpm::open_key_with("handle:0x81000001", None, true, Tcti::Device(sock.clone()));
    let _ = child.kill();
    let _ = child.wait();
    let key = result.unwrap();
    assert_eq!(key.public_key(), Some(bits));
    assert!(key.source().contains("device:"), "{}", key.source());
}

#[test]
fn connection_refused_names_the_tcti() {
    let port = free_port_pair();
    let t = Tcti::parse(&format!("mssim:host=127.0.0.1,port={port}")).unwrap();
    let e = tpm::open_key_with("handle:0x81000001", None, true, t).unwrap_err();
    assert!(e.to_string().contains(&format!("port={port}")), "{e}");
    assert!(
        e.hint().unwrap().contains("TPM2TOOLS_TCTI"),
        "{:?}",
        e.hint()
    );
}

/// The built binary end to end: `credential-process --private-key handle:...` against
/// `emulate`, with the TPM chosen by `TPM2TOOLS_TCTI`.
#[test]
fn credential_process_with_tpm_keys() {
    let tpm = Swtpm::start(true);
    let dir = tpm.dir.path();
    let ca = TestCa::new(dir);
    let emu = Emulator::start(&ca.anchor, &[]);

    let rsa = tpm.persistent_key("rsa2048", "0x81000001", Some(PASSWORD));
    let (rsa_cert, _) = ca.issue(dir, "bin-rsa", &rsa);
    let ec = tpm.persistent_key("ecc256", "0x81000002", None);
    let (ec_cert, _) = ca.issue(dir, "bin-ec", &ec);

    let run_with = |cert: &Path, extra: &[&str]| {
        let mut args = vec!["--certificate", cert.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut cmd = credential_process(&emu.url, &args);
        cmd.env("TPM2TOOLS_TCTI", tpm.tcti());
        run(&mut cmd)
    };
    credentials(&run_with(
        &rsa_cert,
        &[
            "--private-key",
            "handle:0x81000001",
            "--tpm-key-password",
            PASSWORD,
        ],
    ));
    credentials(&run_with(
        &ec_cert,
        &[
            "--private-key",
            "handle:0x81000002",
            "--no-tpm-key-password",
        ],
    ));

    // A TSS2 key file made by tpm2-tools.
    let primary = tpm.primary("bin", false);
    let [public, private] = tpm.child_key(&primary, "ecc256", "bin-file", None);
    tpm.tool(&[
        "tpm2_encodeobject",
        "-C",
        &primary,
        "-u",
        &public,
        "-r",
        &private,
        "-o",
        "bin-file.pem",
    ]);
    tpm.tool(&[
        "tpm2_loadexternal",
        "-C",
        "o",
        "-u",
        &public,
        "-c",
        "ext.ctx",
    ]);
    let (file_cert, _) = ca.issue(dir, "bin-file", &tpm.public_pem("ext.ctx"));
    let key_file = dir.join("bin-file.pem");
    credentials(&run_with(
        &file_cert,
        &["--private-key", key_file.to_str().unwrap()],
    ));
    assert_eq!(emu.requests().len(), 3);

    // sign-string with a TPM key, checked against the certificate's public key.
    let (ec_bits, _) = spki_bits(&ec);
    let mut cmd = agent();
    cmd.args([
        "sign-string",
        "--private-key",
        "handle:0x81000002",
        "--no-tpm-key-password",
        "--format",
        "text",
    ])
    .env("TPM2TOOLS_TCTI", tpm.tcti())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"sign me").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sig = hex::decode(stdout(&out).trim()).unwrap();
    assert!(verify(
        KeyKind::EcP256,
        &ec_bits,
        b"sign me",
        Digest::Sha256,
        &sig
    ));

    // A wrong password: exit 2, a clear message, nothing on stdout, nothing sent.
    let out = run_with(
        &rsa_cert,
        &[
            "--private-key",
            "handle:0x81000001",
            "--tpm-key-password",
            "Xyzzy-bad-pw",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("password") && err.contains("0x81000001"),
        "{err}"
    );
    assert!(!err.contains("Xyzzy"), "{err}");
    // A handle without either password flag.
    let out = run_with(&ec_cert, &["--private-key", "handle:0x81000002"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--no-tpm-key-password"),
        "{}",
        stderr(&out)
    );
    assert_eq!(emu.requests().len(), 3);
}
