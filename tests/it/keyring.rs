//! Keys in the OS keyring, for real: a throwaway D-Bus session with an unlocked GNOME Keyring
//! (`dbus-run-session`, `gnome-keyring-daemon`), and a throwaway kernel session keyring
//! (`keyctl session`). The built binary imports a key, `credential-process` uses it against
//! `emulate` on 127.0.0.1, `keyring delete` removes it, and `secret-tool` / `keyctl show`
//! confirm what is really stored. Missing tools fail the tests; every session is bounded in
//! time and killed (its process group) when it overruns.

#![cfg(feature = "keyring")]

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use rolesanywhere_agent::pki::{KeyType, TEST_PASSWORD};

/// The longest a whole scripted session may take.
const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// A value stored in the keyring that is not a key; it must never show up in any output.
const JUNK: &str = "not-a-key-5f3a9c-SECRET-MARKER";

/// Shell helpers every session script starts with. `step NAME CMD...` records the
/// command's stdout, stderr and exit code as `$WORK/NAME.{out,err,rc}`; `creds CERT KEY`
/// runs `credential-process` against the emulator; `creds_pw` does it with the password
/// in the environment.
const PRELUDE: &str = r#"
set -u
step() {
    name=$1; shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null
    echo $? >"$WORK/$name.rc"
}
creds() {
    cert=$1; key=$2; shift 2
    "$BIN" credential-process --no-cache --certificate "$cert" --private-key "$key" \
        --trust-anchor-arn "$TA" --profile-arn "$PROFILE" --role-arn "$ROLE" --endpoint "$URL" \
        --intermediates "$INTERMEDIATES" "$@"
}
# Kernel keys our binary touched are linked into the user's persistent keyring too, which
# outlives the session: invalidate whatever a failed step may have left.
forget() {
    for account in "$@"; do keyctl invalidate "%user:keyring-rs:$account@$SVC" >/dev/null 2>&1; done
}
creds_pw() {
    (export ROLESANYWHERE_PKCS8_PASSWORD="$PASSWORD"; creds "$@")
}
"#;

/// Starts an unlocked GNOME Keyring in the current D-Bus session and waits (at most 20 s)
/// until it owns `org.freedesktop.secrets`, so that D-Bus activation cannot start a second,
/// locked one first. `--foreground` keeps it in the session's process group.
const START_GNOME_KEYRING: &str = r#"
echo -n "$KEYRING_PASSWORD" | gnome-keyring-daemon --foreground --unlock --components=secrets >"$WORK/gnome-keyring.log" 2>&1 &
GKD=$!
i=0
until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; do
    i=$((i + 1))
    if [ "$i" -gt 200 ]; then echo "gnome-keyring-daemon did not take org.freedesktop.secrets" >&2; exit 3; fi
    sleep 0.1
done
"#;

/// Fails (never skips) when a tool the tests drive is not installed.
fn require(tools: &[&str]) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        assert!(
            std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()),
            "{tool} is required by the keyring tests; scripts/test.sh installs gnome-keyring, \
             dbus-daemon, keyutils and libsecret-tools"
        );
    }
}

/// A unique service name per test and run, so nothing collides with the user's entries or
/// a previous run's.
fn service(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "rolesanywhere-agent-test-{test}-{}-{nanos}",
        std::process::id()
    )
}

/// The outcome of one scripted session: each step's output, read back from its files.
struct Session {
    work: tempfile::TempDir,
    status: ExitStatus,
    stderr: String,
}

impl Session {
    /// Runs `wrapper... sh -c PRELUDE+script` with a clean environment plus `env`, a
    /// throwaway HOME and XDG_RUNTIME_DIR, and no D-Bus session of the caller's.
    fn run(wrapper: &[&str], script: &str, env: &[(&str, String)]) -> Session {
        let work = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let runtime = tempfile::tempdir().unwrap();
        let full = format!("{PRELUDE}\n{script}");
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .args(["sh", "-c", &full])
            .env("WORK", work.path())
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("XDG_CACHE_HOME", scratch_dir("cache"))
            .env("BIN", bin())
            .env("TA", TA)
            .env("PROFILE", PROFILE)
            .env("ROLE", ROLE)
            .env("PASSWORD", TEST_PASSWORD)
            .env("KEYRING_PASSWORD", "keyring-test-password")
            .env("JUNK", JUNK)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("ROLESANYWHERE_PKCS8_PASSWORD")
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("RUST_LOG")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(work.path().join("session.out")).unwrap())
            .stderr(std::fs::File::create(work.path().join("session.err")).unwrap())
            // Its own process group, so that everything it started can be killed at once.
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", wrapper[0]));
        let group = child.id();
        let deadline = Instant::now() + SESSION_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                kill_group(group);
                let _ = child.wait();
                let err =
                    std::fs::read_to_string(work.path().join("session.err")).unwrap_or_default();
                panic!(
                    "the {wrapper:?} session did not finish within {SESSION_LIMIT:?}\nstderr: {err}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Anything still running in the group (a daemon that outlived its bus) goes too.
        kill_group(group);
        let stderr = std::fs::read_to_string(work.path().join("session.err")).unwrap_or_default();
        drop((home, runtime));
        Session {
            work,
            status,
            stderr,
        }
    }

    /// The recorded outcome of step `name`.
    fn step(&self, name: &str) -> Output {
        let read = |ext: &str| std::fs::read(self.work.path().join(format!("{name}.{ext}")));
        let Ok(rc) = read("rc") else {
            panic!(
                "step {name} did not run (session {}):\n{}",
                self.status, self.stderr
            );
        };
        let code: i32 = String::from_utf8_lossy(&rc).trim().parse().unwrap();
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: read("out").unwrap_or_default(),
            stderr: read("err").unwrap_or_default(),
        }
    }
}

fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

/// Asserts `o` is a configuration error (exit 2, nothing on stdout) whose message contains
/// every one of `needles`, and never the junk value.
fn assert_fails_with(what: &str, o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{what}: exit 2 expected\nstderr: {err}"
    );
    assert!(
        o.stdout.is_empty(),
        "{what}: stdout must stay empty: {}",
        stdout(o)
    );
    for needle in needles {
        assert!(err.contains(needle), "{what}: {needle:?} missing in\n{err}");
    }
    assert!(
        !err.contains(JUNK),
        "{what}: the stored value was echoed:\n{err}"
    );
}

fn assert_ok(what: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn leaf_env(
    m: &rolesanywhere_agent::pki::TestMatrix,
    emu: &Emulator,
    svc: &str,
) -> Vec<(&'static str, String)> {
    let p256 = m.leaf(KeyType::P256).unwrap();
    let p384 = m.leaf(KeyType::P384).unwrap();
    let rsa = m.leaf(KeyType::Rsa2048).unwrap();
    vec![
        ("URL", emu.url.clone()),
        ("INTERMEDIATES", path(&m.intermediates)),
        ("SVC", svc.to_string()),
        ("CERT_P256", path(&p256.cert_pem)),
        ("KEY_P256", path(&p256.key)),
        ("CERT_P384", path(&p384.cert_pem)),
        ("KEY_P384", path(&p384.key)),
        ("CERT_RSA", path(&rsa.cert_pem)),
        ("KEY_RSA", path(&rsa.key)),
        ("PKCS1_RSA", path(rsa.pkcs1_key.as_ref().unwrap())),
        ("ENC_RSA", path(&rsa.encrypted_key)),
        ("NOT_PEM", path(&m.not_pem)),
    ]
}

#[test]
fn secret_service_import_use_delete() {
    require(&[
        "dbus-run-session",
        "dbus-send",
        "gnome-keyring-daemon",
        "secret-tool",
    ]);
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let svc = service("ss");
    let script = format!(
        r#"{START_GNOME_KEYRING}
step import "$BIN" keyring import --service "$SVC" --account p256 "$KEY_P256"
step search secret-tool search service "$SVC" username p256
step again "$BIN" keyring import --service "$SVC" --account p256 "$KEY_P256"
step use creds "$CERT_P256" "keyring:$SVC/p256"
step import_pkcs1 "$BIN" keyring import --backend secret-service --service "$SVC" --account rsa "$PKCS1_RSA"
step lookup_pkcs1 secret-tool lookup service "$SVC" username rsa
step use_rsa creds "$CERT_RSA" "keyring:$SVC/rsa"
step import_enc "$BIN" keyring import --service "$SVC" --account enc --pkcs8-password "$PASSWORD" "$ENC_RSA"
step lookup_enc secret-tool lookup service "$SVC" username enc
step use_enc_without_password creds "$CERT_RSA" "keyring:$SVC/enc"
step use_enc creds_pw "$CERT_RSA" "keyring:$SVC/enc"
step store_junk sh -c 'printf %s "$JUNK" | secret-tool store --label=junk service "$SVC" username junk'
step use_junk creds "$CERT_P256" "keyring:$SVC/junk"
step delete "$BIN" keyring delete --service "$SVC" --account p256
step search_after secret-tool search service "$SVC" username p256
step use_after creds "$CERT_P256" "keyring:$SVC/p256"
step delete_again "$BIN" keyring delete --service "$SVC" --account p256
step lock dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
    org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login
step use_locked creds "$CERT_RSA" "keyring:$SVC/rsa"
kill "$GKD"
"#
    );
    let s = Session::run(
        &["dbus-run-session", "--"],
        &script,
        &leaf_env(&m, &emu, &svc),
    );

    let out = assert_ok("import", &s.step("import"));
    assert!(
        out.contains("EC P-256")
            && out.contains("Secret Service")
            && out.contains(&format!("keyring:{svc}/p256")),
        "{out}"
    );
    // secret-tool (libsecret) sees the item: it is really in the Secret Service, as PKCS#8.
    // secret-tool prints the attributes on stderr and the rest on stdout.
    let search = s.step("search");
    let found = assert_ok("secret-tool search", &search) + &stderr(&search);
    assert!(
        found.contains(&format!("attribute.service = {svc}")),
        "{found}"
    );
    assert!(found.contains("attribute.username = p256"), "{found}");
    assert!(found.contains("-----BEGIN PRIVATE KEY-----"), "{found}");
    assert_fails_with(
        "import over an existing entry",
        &s.step("again"),
        &["already an entry", "Secret Service", "--replace"],
    );
    credentials(&s.step("use"));

    // PKCS#1 in, PKCS#8 stored.
    assert_ok("import PKCS#1", &s.step("import_pkcs1"));
    let stored = assert_ok("secret-tool lookup", &s.step("lookup_pkcs1"));
    assert!(
        stored.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{stored}"
    );
    credentials(&s.step("use_rsa"));

    // Encrypted PKCS#8 stays encrypted and needs its password at each use.
    let out = assert_ok("import encrypted", &s.step("import_enc"));
    assert!(out.contains("encrypted PKCS#8"), "{out}");
    let stored = assert_ok("secret-tool lookup", &s.step("lookup_enc"));
    assert!(
        stored.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        "{stored}"
    );
    assert_fails_with(
        "encrypted key without a password",
        &s.step("use_enc_without_password"),
        &[
            "encrypted and no password",
            "Secret Service",
            "ROLESANYWHERE_PKCS8_PASSWORD",
        ],
    );
    credentials(&s.step("use_enc"));

    // A value that is not a key: described, never echoed.
    assert_ok("secret-tool store", &s.step("store_junk"));
    assert_fails_with(
        "a stored value that is not a key",
        &s.step("use_junk"),
        &[
            "is not a private key",
            "Secret Service",
            "username=\"junk\"",
            "keyring import --replace",
        ],
    );

    let out = assert_ok("delete", &s.step("delete"));
    assert!(
        out.contains("deleted") && out.contains("Secret Service"),
        "{out}"
    );
    let search = s.step("search_after");
    let after = stdout(&search) + &stderr(&search);
    assert!(
        !after.contains("attribute.username = p256"),
        "still there: {after}"
    );
    assert_fails_with(
        "use after delete",
        &s.step("use_after"),
        &[
            &format!("no key stored for service \"{svc}\", account \"p256\""),
            &format!("the Secret Service (item service=\"{svc}\" username=\"p256\")"),
            "keyring import --service",
        ],
    );
    assert_fails_with("delete again", &s.step("delete_again"), &["no key stored"]);

    // A locked collection whose unlock prompt cannot be shown.
    assert_ok("lock the login collection", &s.step("lock"));
    assert_fails_with(
        "locked collection",
        &s.step("use_locked"),
        &[
            "Secret Service collection holding the key is locked",
            "hint: unlock",
        ],
    );

    assert_eq!(
        emu.requests().len(),
        3,
        "only the successful uses reach the service"
    );
}

#[test]
fn keyutils_import_use_delete() {
    require(&["keyctl"]);
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let svc = service("keyutils");
    // No D-Bus session here: `keyring:` falls back to the kernel keyring.
    let script = r#"
step import "$BIN" keyring import --service "$SVC" --account p384 "$KEY_P384"
step show keyctl show @s
step use creds "$CERT_P384" "keyring:$SVC/p384"
step mismatch creds "$CERT_RSA" "keyring:$SVC/p384"
step sign sh -c 'printf hello | "$BIN" sign-string --format text --private-key "keyring:$SVC/p384"'
step import_rsa "$BIN" keyring import --backend keyutils --service "$SVC" --account rsa "$PKCS1_RSA"
step use_rsa creds "$CERT_RSA" "keyring:$SVC/rsa"
step import_wrong_password "$BIN" keyring import --backend keyutils --service "$SVC" --account wrong --pkcs8-password nope "$ENC_RSA"
step store_junk sh -c 'printf %s "$JUNK" | keyctl padd user "keyring-rs:junk@$SVC" @s'
step use_junk creds "$CERT_P384" "keyring:$SVC/junk"
step delete "$BIN" keyring delete --backend keyutils --service "$SVC" --account p384
step delete_rsa "$BIN" keyring delete --service "$SVC" --account rsa
# An invalidated key leaves the keyring's listing when the kernel's collector runs.
i=0
while keyctl show @s | grep -q "keyring-rs:p384@$SVC" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
step show_after keyctl show @s
step use_after creds "$CERT_P384" "keyring:$SVC/p384"
forget junk p384 rsa wrong
"#;
    let s = Session::run(
        &["keyctl", "session", "-"],
        script,
        &leaf_env(&m, &emu, &svc),
    );

    let out = assert_ok("import", &s.step("import"));
    assert!(
        out.contains("EC P-384") && out.contains("kernel keyring"),
        "{out}"
    );
    let shown = assert_ok("keyctl show", &s.step("show"));
    assert!(
        shown.contains(&format!("user: keyring-rs:p384@{svc}")),
        "{shown}"
    );
    credentials(&s.step("use"));
    assert_fails_with(
        "key of another certificate",
        &s.step("mismatch"),
        &[&format!(
            "the private key in kernel keyring (keyutils) entry keyring:{svc}/p384 does not belong"
        )],
    );
    let sig = assert_ok("sign-string", &s.step("sign"));
    assert!(
        sig.len() > 100 && sig.chars().all(|c| c.is_ascii_hexdigit()),
        "{sig}"
    );

    let out = assert_ok("import PKCS#1 into keyutils", &s.step("import_rsa"));
    assert!(
        out.contains("RSA-2048") && out.contains("kernel keyring"),
        "{out}"
    );
    credentials(&s.step("use_rsa"));

    assert_fails_with(
        "import with the wrong password",
        &s.step("import_wrong_password"),
        &["the password does not decrypt"],
    );
    assert!(!stdout(&s.step("show_after")).contains("keyring-rs:wrong@"));

    assert_ok("keyctl padd", &s.step("store_junk"));
    assert_fails_with(
        "a stored value that is not a key",
        &s.step("use_junk"),
        &[
            "is not a private key",
            "kernel keyring",
            &format!("keyring-rs:junk@{svc}"),
        ],
    );

    let out = assert_ok("delete", &s.step("delete"));
    assert!(
        out.contains("deleted") && out.contains("kernel keyring"),
        "{out}"
    );
    assert_ok("delete (auto)", &s.step("delete_rsa"));
    let shown = assert_ok("keyctl show", &s.step("show_after"));
    assert!(
        !shown.contains(&format!("keyring-rs:p384@{svc}")),
        "{shown}"
    );
    assert!(!shown.contains(&format!("keyring-rs:rsa@{svc}")), "{shown}");
    assert_fails_with(
        "use after delete",
        &s.step("use_after"),
        &[
            &format!("no key stored for service \"{svc}\", account \"p384\""),
            &format!("keyring-rs:p384@{svc}"),
            "skipped the Secret Service",
        ],
    );
    assert_eq!(emu.requests().len(), 2);
}

#[test]
fn without_a_dbus_session_the_secret_service_error_says_so() {
    let (_d, m) = matrix();
    let key = path(&m.leaf(KeyType::P256).unwrap().key);
    let no_bus = scratch_dir("no-bus");
    let run_without_bus = |args: &[&str], address: Option<&str>| {
        let mut cmd = agent();
        cmd.args(args)
            .env("XDG_RUNTIME_DIR", &no_bus)
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        if let Some(a) = address {
            cmd.env("DBUS_SESSION_BUS_ADDRESS", a);
        }
        run(&mut cmd)
    };
    let import = [
        "keyring",
        "import",
        "--backend",
        "secret-service",
        "--service",
        "s",
        "--account",
        "a",
        &key,
    ];
    let needles = [
        "Secret Service backend needs a D-Bus session bus",
        "DBUS_SESSION_BUS_ADDRESS is unset",
        "hint:",
        "dbus-run-session",
        "--backend keyutils",
    ];
    assert_fails_with("import", &run_without_bus(&import, None), &needles);
    let delete = [
        "keyring",
        "delete",
        "--backend",
        "secret-service",
        "--service",
        "s",
        "--account",
        "a",
    ];
    assert_fails_with("delete", &run_without_bus(&delete, None), &needles);

    // A stale address is told apart from no session at all.
    let stale = run_without_bus(
        &import,
        Some("unix:path=/nonexistent/rolesanywhere-agent-test-bus"),
    );
    assert_fails_with(
        "stale bus address",
        &stale,
        &[
            "cannot reach the D-Bus session bus",
            "/nonexistent/rolesanywhere-agent-test-bus",
            "hint:",
        ],
    );

    // The key file is checked before any backend is touched; its content is not echoed.
    let not_a_key = run_without_bus(
        &[
            "keyring",
            "import",
            "--service",
            "s",
            "--account",
            "a",
            &path(&m.not_pem),
        ],
        None,
    );
    assert_fails_with(
        "import of a non-key",
        &not_a_key,
        &["is not a usable private key"],
    );
    assert!(!stderr(&not_a_key).contains("this is not a certificate"));
    let bad_name = run_without_bus(
        &[
            "keyring",
            "import",
            "--service",
            "a/b",
            "--account",
            "a",
            &key,
        ],
        None,
    );
    assert_fails_with("service with a slash", &bad_name, &["contains '/'"]);
}

#[test]
fn secret_service_without_a_default_collection() {
    require(&["dbus-run-session", "gnome-keyring-daemon"]);
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let svc = service("nocollection");
    // No unlocked login keyring: D-Bus activation starts a GNOME Keyring with no collection.
    let script = r#"
step import "$BIN" keyring import --backend secret-service --service "$SVC" --account a "$KEY_P256"
"#;
    let s = Session::run(
        &["dbus-run-session", "--"],
        script,
        &leaf_env(&m, &emu, &svc),
    );
    assert_fails_with(
        "import without a collection",
        &s.step("import"),
        &[
            "Secret Service has no usable default collection",
            "gnome-keyring-daemon --unlock",
        ],
    );
}

/// `keyring+keyutils:` and `keyring+secret-service:` use that backend and no other, and
/// `--pkcs8-password` opens an encrypted stored key. (Both rely on `identity::load_key_with`
/// routing every `keyring::is_reference` to `keyring::load_key_with` with its passwords.)
#[test]
fn explicit_backend_references_and_the_password_flag() {
    require(&["keyctl"]);
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let svc = service("explicit");
    let script = r#"
step import "$BIN" keyring import --backend keyutils --service "$SVC" --account a "$KEY_P256"
step use creds "$CERT_P256" "keyring+keyutils:$SVC/a"
step use_ss creds "$CERT_P256" "keyring+secret-service:$SVC/a"
step use_bogus creds "$CERT_P256" "keyring+kwallet:$SVC/a"
step use_no_account creds "$CERT_P256" "keyring+keyutils:$SVC"
step delete "$BIN" keyring delete --backend keyutils --service "$SVC" --account a
step import_enc "$BIN" keyring import --backend keyutils --service "$SVC" --account enc --pkcs8-password "$PASSWORD" "$ENC_RSA"
step use_enc creds "$CERT_RSA" "keyring+keyutils:$SVC/enc" --pkcs8-password "$PASSWORD"
step use_enc_wrong creds "$CERT_RSA" "keyring+keyutils:$SVC/enc" --pkcs8-password wrong
step delete_enc "$BIN" keyring delete --service "$SVC" --account enc
forget a enc
"#;
    let s = Session::run(
        &["keyctl", "session", "-"],
        script,
        &leaf_env(&m, &emu, &svc),
    );
    assert_ok("import", &s.step("import"));
    credentials(&s.step("use"));
    // No fallback from an explicit Secret Service reference, even though keyutils has it.
    assert_fails_with(
        "explicit Secret Service without a bus",
        &s.step("use_ss"),
        &["Secret Service backend needs a D-Bus session bus"],
    );
    assert_fails_with(
        "unknown backend",
        &s.step("use_bogus"),
        &["is not a keyring reference", "secret-service or keyutils"],
    );
    assert_fails_with(
        "no account",
        &s.step("use_no_account"),
        &["no '/' between SERVICE and ACCOUNT"],
    );
    assert_ok("delete", &s.step("delete"));
    let out = assert_ok("import encrypted", &s.step("import_enc"));
    assert!(out.contains("encrypted PKCS#8"), "{out}");
    credentials(&s.step("use_enc"));
    assert_fails_with(
        "wrong password flag",
        &s.step("use_enc_wrong"),
        &["the password does not decrypt the key stored in the kernel keyring"],
    );
    assert_ok("delete encrypted", &s.step("delete_enc"));
    assert_eq!(emu.requests().len(), 2);
}
