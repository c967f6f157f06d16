//! TPM 2.0 keys, through a small pure-Rust TPM client (no tpm2-tss C libraries, so the
//! crate still builds on a bare machine).
//!
//! This module owns everything between `--private-key handle:0x81000001` or a
//! `TSS2 PRIVATE KEY` file and a signature: which TPM to talk to ([`tcti`]), the command
//! encodings ([`proto`]), the key-file format ([`keyfile`]) and [`TpmKey`], the
//! [`Signer`](crate::signer::Signer) that loads and signs.
//!
//! Password rules are the Go helper's: with `handle:` either `--tpm-key-password` or
//! `--no-tpm-key-password` must be given; a key file whose `emptyAuth` is TRUE needs no
//! password; otherwise a key file uses the given password, or tries the empty one. Unlike
//! the Go helper, a password given for an `emptyAuth` key file is used rather than refused.
//! Opening a key signs a probe, so a wrong password or an unusable key is a configuration
//! error before any request is made.
//!
//! Each operation opens its own connection and closes it: the simulators serve one client
//! at a time and `/dev/tpm0` is exclusive, so a long-running agent must not hold them.
//! Key files are loaded for each signature and flushed right after (with their regenerated
//! primary), as the Go helper does, so no transient object outlives an operation.

pub mod keyfile;
pub mod proto;
pub mod tcti;

use std::fmt;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::signer::{Digest, KeyKind, SignError, Signer};
use proto::{Malformed, PublicArea, PublicKey, Rc};
pub use tcti::Tcti;
use tcti::{Connection, ExecError};

/// The `--private-key` prefix of a key that already lives in the TPM.
pub const HANDLE_PREFIX: &str = "handle:";

/// What `open_key` signs to prove the key and its password work before anything is sent.
const PROBE: &[u8] = b"rolesanywhere-agent TPM key check";

/// Storage-primary templates tried, in order, for key files whose parent is a hierarchy.
/// The key-file producers and the Go helper use the TCG SRK template with noDA; a plain
/// `tpm2_createprimary -C o -G ecc` leaves noDA out. Both give a different primary, and a
/// key loads only under the one it was made under.
const PRIMARY_TEMPLATES: [u32; 2] = [proto::SRK_ATTRIBUTES_NODA, proto::SRK_ATTRIBUTES_TPM2_TOOLS];

/// Everything that can go wrong with a TPM key. Messages name the handle, file or TCTI and
/// never carry a password.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error("--private-key {value} is not a TPM key handle")]
    BadHandle { value: String },
    #[error(
        "--private-key handle:{handle:#010x} needs --tpm-key-password PASSWORD, or --no-tpm-key-password for a key without one"
    )]
    PasswordFlagNeeded { handle: u32 },
    #[error("--tpm-key-password and --no-tpm-key-password cannot be used together")]
    ConflictingPasswordFlags,
    #[error("the TPM key in {name} needs a password")]
    PasswordNeeded { name: String },
    #[error("the TPM refused the password of {key}")]
    WrongPassword { key: String },
    #[error("cannot read TPM key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{name} is not a usable TPM key: {detail}")]
    NotAKeyFile { name: String, detail: String },
    #[error("{key} is {what}, which cannot sign for a certificate here")]
    Unsupported { key: String, what: String },
    #[error("invalid TCTI {value:?} in {var}: {detail}")]
    BadTcti {
        var: &'static str,
        value: String,
        detail: String,
    },
    #[error("cannot connect to the TPM at {tcti}: {source}")]
    Connect {
        tcti: String,
        #[source]
        source: io::Error,
    },
    #[error("talking to the TPM at {tcti} failed: {detail}")]
    Transport { tcti: String, detail: String },
    #[error("the TPM at {tcti} is in dictionary-attack lockout")]
    Lockout { tcti: String },
    #[error("no key at TPM handle {handle:#010x} in the TPM at {tcti}")]
    NoSuchHandle { handle: u32, tcti: String },
    #[error("TPM2_{command} for {key} failed: TPM error {rc}")]
    Tpm {
        command: &'static str,
        key: String,
        rc: String,
        code: u32,
    },
    #[error("the signature {key} made does not verify with its own public key")]
    BadSignature { key: String },
}

impl TpmError {
    /// The conversation with the TPM broke (I/O error or a malformed answer mid-command):
    /// a runtime failure, unlike a wrong handle, file, password or TCTI setting.
    pub fn is_runtime(&self) -> bool {
        matches!(self, TpmError::Transport { .. })
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        use TpmError::*;
        let tcti_hint = "choose the TPM with TPM2TOOLS_TCTI (device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321 or mssim:host=localhost,port=2321)";
        Some(match self {
            BadHandle { .. } => "use handle:0x81xxxxxx, a persistent key; list them with `tpm2_getcap handles-persistent`".into(),
            PasswordFlagNeeded { .. } => {
                "as with the Go helper, a handle needs one of the two flags".into()
            }
            ConflictingPasswordFlags => "keep only one of them".into(),
            PasswordNeeded { .. } => {
                "pass the key's password with --tpm-key-password (tpm2-tools 5.4's tpm2_encodeobject marks keys made with -p as having none)".into()
            }
            WrongPassword { .. } => {
                "pass the key's password (the one given to `tpm2_create -p`) with --tpm-key-password; each wrong try counts toward the TPM's dictionary-attack lockout unless the key has noDA".into()
            }
            Read { .. } => "check the path and that this user may read it".into(),
            NotAKeyFile { .. } => "expected a `-----BEGIN TSS2 PRIVATE KEY-----` file (tpm2_encodeobject, tpm2tss-genkey, the tpm2 OpenSSL provider)".into(),
            Unsupported { .. } => "use an unrestricted RSA (RSASSA) or ECDSA P-256/P-384 signing key without a policy".into(),
            BadTcti { .. } => tcti_hint.into(),
            Connect { tcti, source } => match source.kind() {
                io::ErrorKind::PermissionDenied => format!(
                    "this user may not open {tcti}: add it to the group owning the device (usually `tss`)"
                ),
                io::ErrorKind::NotFound => format!("{tcti} does not exist; {tcti_hint}"),
                io::ErrorKind::ConnectionRefused => {
                    format!("is the TPM simulator running? {tcti_hint}")
                }
                _ => tcti_hint.into(),
            },
            Transport { .. } => format!("is the TPM busy or the simulator gone? {tcti_hint}"),
            Lockout { .. } => "wait for the lockout to expire, or clear it with `tpm2_dictionarylockout -c` and the lockout password".into(),
            NoSuchHandle { .. } => format!(
                "list persistent keys with `tpm2_getcap handles-persistent`, or check that the right TPM is used: {tcti_hint}"
            ),
            Tpm { code, .. } => match Rc(*code).base() {
                0x09F | 0x095 | 0x084 => "the key file was made under another parent key or on another TPM".into(),
                0x902 => "free the TPM's transient object slots: `tpm2_flushcontext -t`".into(),
                0x092 | 0x083 => "the key's own scheme does not allow this signature; make the key with a NULL scheme or RSASSA/ECDSA".into(),
                _ => format!("decode it with `tpm2_rc_decode {code:#x}`"),
            },
            BadSignature { .. } => "the certificate and key cannot work; report this".into(),
        })
    }
}

/// Where the key is.
enum Location {
    /// A key already in the TPM (persistent, or transient on a shared simulator).
    Handle(u32),
    /// A key file, loaded under its parent for each operation.
    File {
        /// Where it came from, for messages (`file k.pem`).
        name: String,
        parent: u32,
        public: Vec<u8>,
        private: Zeroizing<Vec<u8>>,
    },
}

/// A TPM-resident key that signs for a certificate.
pub struct TpmKey {
    location: Location,
    tcti: Tcti,
    /// `None` is the empty password.
    password: Option<SecretString>,
    /// The key file said nothing about its password and none was given: an auth failure
    /// then means "a password is needed" rather than "wrong password".
    password_guessed: bool,
    kind: KeyKind,
    public_key: Vec<u8>,
    /// Byte size of the curve order, for ECC keys (0 for RSA).
    curve_len: usize,
    /// The key's own signing scheme, when not NULL.
    fixed_scheme: Option<(u16, u16)>,
    /// Which [`PRIMARY_TEMPLATES`] entry loaded the key file last, tried first next time.
    template: AtomicUsize,
    /// One operation at a time: the TPM serializes them anyway, and two concurrent key-file
    /// loads could exhaust its few transient object slots.
    lock: Mutex<()>,
}

// Security: no password and no key blob in logs.
impl fmt::Debug for TpmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpmKey")
            .field("key", &self.source())
            .field("kind", &self.kind)
            .field(
                "password",
                &if self.password.is_some() {
                    "<redacted>"
                } else {
                    "none"
                },
            )
            .finish()
    }
}

/// Whether `--private-key` names a key in the TPM rather than a file.
pub fn is_handle(private_key: &str) -> bool {
    private_key.starts_with(HANDLE_PREFIX)
}

/// Opens `--private-key` (`handle:0x81000001` or the path of a TSS2 key file) in the TPM
/// the environment names (`TPM2TOOLS_TCTI`, `TSS2_TCTI`, `TPM_DEVICE`, else
/// `/dev/tpmrm0`), and signs a probe to check the key and its password.
pub fn open_key(
    private_key: &str,
    password: Option<SecretString>,
    no_password: bool,
) -> Result<TpmKey, TpmError> {
    let (tcti, _) = Tcti::from_lookup(|k| std::env::var(k).ok())
        .map_err(|(var, value, detail)| TpmError::BadTcti { var, value, detail })?;
    open_key_with(private_key, password, no_password, tcti)
}

/// [`open_key`] with an explicit TCTI.
pub fn open_key_with(
    private_key: &str,
    password: Option<SecretString>,
    no_password: bool,
    tcti: Tcti,
) -> Result<TpmKey, TpmError> {
    if password.is_some() && no_password {
        return Err(TpmError::ConflictingPasswordFlags);
    }
    let Some(value) = private_key.strip_prefix(HANDLE_PREFIX) else {
        let data = crate::files::read_regular(
            std::path::Path::new(private_key),
            crate::files::IDENTITY_CAP,
        )
        .map_err(|e| TpmError::Read {
            path: private_key.to_string(),
            source: e.into_io(),
        })?;
        return open_key_data_with(
            &data,
            &format!("file {private_key}"),
            password,
            no_password,
            tcti,
        );
    };
    let handle = parse_handle(value).ok_or_else(|| TpmError::BadHandle {
        value: private_key.to_string(),
    })?;
    if password.is_none() && !no_password {
        return Err(TpmError::PasswordFlagNeeded { handle });
    }
    let area = read_public(&tcti, handle)?;
    let key = TpmKey::new(Location::Handle(handle), tcti, password, false, area)?;
    key.probe()?;
    Ok(key)
}

/// Opens a `TSS2 PRIVATE KEY` already read from wherever `--private-key` pointed (a file,
/// `env:NAME`, standard input); `name` says where in messages (`file k.pem`,
/// `variable TPM_KEY`). The TPM is the one the environment names, as for [`open_key`].
pub fn open_key_data(
    data: &[u8],
    name: &str,
    password: Option<SecretString>,
    no_password: bool,
) -> Result<TpmKey, TpmError> {
    let (tcti, _) = Tcti::from_lookup(|k| std::env::var(k).ok())
        .map_err(|(var, value, detail)| TpmError::BadTcti { var, value, detail })?;
    open_key_data_with(data, name, password, no_password, tcti)
}

/// [`open_key_data`] with an explicit TCTI.
pub fn open_key_data_with(
    data: &[u8],
    name: &str,
    password: Option<SecretString>,
    no_password: bool,
    tcti: Tcti,
) -> Result<TpmKey, TpmError> {
    if password.is_some() && no_password {
        return Err(TpmError::ConflictingPasswordFlags);
    }
    let not_a_key = |detail: String| TpmError::NotAKeyFile {
        name: name.to_string(),
        detail,
    };
    let key = parse_key_file(data).map_err(not_a_key)?;
    let area = proto::parse_tpm2b_public(&key.public)
        .map_err(|e| not_a_key(format!("its public area does not parse: {e}")))?;
    let parent_ok = key.parent >> 24 == 0x81
        || matches!(
            key.parent,
            proto::RH_OWNER | proto::RH_NULL | proto::RH_ENDORSEMENT | proto::RH_PLATFORM
        );
    if !parent_ok {
        return Err(not_a_key(format!(
            "its parent {:#010x} is neither a persistent key nor a hierarchy",
            key.parent
        )));
    }
    // The Go helper refuses a password for an emptyAuth key; it is used here instead,
    // because tpm2-tools 5.4's tpm2_encodeobject writes emptyAuth inverted (TRUE for keys
    // made with a password), and a password the key does not need is harmless. Without a
    // password the empty one is tried, and a refusal then means "a password is needed".
    let password_guessed = password.is_none();
    let location = Location::File {
        name: name.to_string(),
        parent: key.parent,
        public: key.public,
        private: key.private,
    };
    let key = TpmKey::new(location, tcti, password, password_guessed, area)?;
    key.probe()?;
    Ok(key)
}

/// `0x81000001` or `81000001` (hex, as the Go helper reads it): a persistent (0x81) or
/// transient (0x80) object handle.
fn parse_handle(value: &str) -> Option<u32> {
    let hex = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .unwrap_or(value);
    // Hex digits only: `from_str_radix` alone would take a leading `+`.
    if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let handle = u32::from_str_radix(hex, 16).ok()?;
    matches!(handle >> 24, 0x80 | 0x81).then_some(handle)
}

/// The TSS2 block of a PEM file, parsed. Errors describe, never echo.
fn parse_key_file(data: &[u8]) -> Result<keyfile::TssKey, String> {
    let blocks = crate::identity::pem::parse(data).map_err(|e| e.to_string())?;
    let block = blocks
        .iter()
        .find(|b| b.label == "TSS2 PRIVATE KEY")
        .ok_or("no TSS2 PRIVATE KEY block")?;
    keyfile::parse(&block.der).map_err(|e| match e {
        keyfile::KeyFileError::Invalid(d) => d,
        keyfile::KeyFileError::Unsupported(d) => format!("it holds {d}"),
    })
}

fn read_public(tcti: &Tcti, handle: u32) -> Result<PublicArea, TpmError> {
    let describe = || format!("TPM handle {handle:#010x} via {tcti}");
    let mut last = None;
    // Reopen once on an I/O error, as for every operation.
    for _ in 0..2 {
        let mut conn = Connection::open(tcti).map_err(|source| TpmError::Connect {
            tcti: tcti.to_string(),
            source,
        })?;
        match run(&mut conn, &proto::read_public(handle), "ReadPublic", 0) {
            Ok((_, params)) => {
                return proto::parse_read_public(&params).map_err(|e| TpmError::Transport {
                    tcti: tcti.to_string(),
                    detail: format!("unreadable public area: {e}"),
                });
            }
            Err(Fail::Io(e)) => last = Some(e),
            Err(Fail::Rc(_, rc)) if rc.is_missing_handle() => {
                return Err(TpmError::NoSuchHandle {
                    handle,
                    tcti: tcti.to_string(),
                });
            }
            Err(fail) => return Err(to_error(fail, tcti, &describe(), false, None)),
        }
    }
    Err(to_error(
        Fail::Io(last.unwrap_or_else(|| io::Error::other("no answer"))),
        tcti,
        &describe(),
        false,
        None,
    ))
}

/// Why one TPM operation failed, before it is given context.
enum Fail {
    Io(io::Error),
    Malformed(Malformed),
    Rc(&'static str, Rc),
}

impl From<ExecError> for Fail {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Io(e) => Fail::Io(e),
            ExecError::Malformed(m) => Fail::Malformed(m),
        }
    }
}

impl From<Malformed> for Fail {
    fn from(m: Malformed) -> Self {
        Fail::Malformed(m)
    }
}

/// Runs one command; a non-success response code is an error. Returns the handles and a
/// copy of the parameter area.
fn run(
    conn: &mut Connection,
    cmd: &[u8],
    name: &'static str,
    out_handles: usize,
) -> Result<(Vec<u32>, Vec<u8>), Fail> {
    let resp = conn.execute(cmd)?;
    let rc = proto::response_code(&resp)?;
    if rc != proto::RC_SUCCESS {
        return Err(Fail::Rc(name, Rc(rc)));
    }
    let parsed = proto::parse_response(&resp, out_handles)?;
    Ok((parsed.handles, parsed.params.to_vec()))
}

fn flush(conn: &mut Connection, handle: u32) {
    // Best effort: a failed flush leaves a slot the resource manager frees on close.
    let _ = conn.execute(&proto::flush_context(handle));
}

fn to_error(
    fail: Fail,
    tcti: &Tcti,
    key: &str,
    password_guessed: bool,
    name: Option<&str>,
) -> TpmError {
    match fail {
        Fail::Io(e) => TpmError::Transport {
            tcti: tcti.to_string(),
            detail: e.to_string(),
        },
        Fail::Malformed(m) => TpmError::Transport {
            tcti: tcti.to_string(),
            detail: format!("malformed response: {m}"),
        },
        Fail::Rc(_, rc) if rc.is_auth_failure() => match (password_guessed, name) {
            (true, Some(name)) => TpmError::PasswordNeeded {
                name: name.to_string(),
            },
            _ => TpmError::WrongPassword {
                key: key.to_string(),
            },
        },
        Fail::Rc(_, rc) if rc.is_lockout() => TpmError::Lockout {
            tcti: tcti.to_string(),
        },
        Fail::Rc(command, rc) => TpmError::Tpm {
            command,
            key: key.to_string(),
            rc: rc.to_string(),
            code: rc.0,
        },
    }
}

/// Why a signature was not made.
enum SignFail {
    Digest(Digest),
    Tpm(TpmError),
}

impl TpmKey {
    fn new(
        location: Location,
        tcti: Tcti,
        password: Option<SecretString>,
        password_guessed: bool,
        area: PublicArea,
    ) -> Result<Self, TpmError> {
        let mut key = TpmKey {
            location,
            tcti,
            password,
            password_guessed,
            kind: KeyKind::EcP256,
            public_key: Vec::new(),
            curve_len: 0,
            fixed_scheme: area.scheme,
            template: AtomicUsize::new(0),
            lock: Mutex::new(()),
        };
        let unsupported = |key: &TpmKey, what: String| TpmError::Unsupported {
            key: key.source(),
            what,
        };
        if area.attributes & proto::ATTR_SIGN == 0 {
            return Err(unsupported(&key, "not a signing key".into()));
        }
        if area.attributes & proto::ATTR_RESTRICTED != 0 {
            // A restricted key signs only digests the TPM hashed itself (with a ticket).
            return Err(unsupported(&key, "a restricted signing key".into()));
        }
        match &area.key {
            PublicKey::Rsa {
                modulus, exponent, ..
            } => {
                if let Some((scheme, _)) = area.scheme
                    && scheme != proto::ALG_RSASSA
                {
                    return Err(unsupported(
                        &key,
                        format!("an RSA key fixed to scheme {scheme:#06x}, not RSASSA"),
                    ));
                }
                let modulus = crate::der::strip_leading_zeros(modulus);
                if modulus.is_empty() {
                    return Err(unsupported(&key, "an RSA key with a zero modulus".into()));
                }
                let bits = crate::der::bit_length(modulus);
                key.kind = KeyKind::Rsa { bits };
                key.public_key = keyfile::rsa_public_key_der(modulus, *exponent);
            }
            PublicKey::Ecc { curve, x, y } => {
                let (kind, len) = match *curve {
                    proto::ECC_NIST_P256 => (KeyKind::EcP256, 32),
                    proto::ECC_NIST_P384 => (KeyKind::EcP384, 48),
                    other => {
                        return Err(unsupported(
                            &key,
                            format!("an EC key on TPM curve {other:#06x}"),
                        ));
                    }
                };
                if let Some((scheme, _)) = area.scheme
                    && scheme != proto::ALG_ECDSA
                {
                    return Err(unsupported(
                        &key,
                        format!("an EC key fixed to scheme {scheme:#06x}, not ECDSA"),
                    ));
                }
                let (Some(x), Some(y)) = (left_pad(x, len), left_pad(y, len)) else {
                    return Err(unsupported(&key, "an EC key with a malformed point".into()));
                };
                key.kind = kind;
                key.curve_len = len;
                key.public_key = [&[0x04][..], &x, &y].concat();
            }
            PublicKey::Other(kind) => {
                return Err(unsupported(
                    &key,
                    format!("a TPM object of type {kind:#06x}"),
                ));
            }
        }
        Ok(key)
    }

    /// Signs a probe and verifies it, so a wrong password or an unusable key shows up as a
    /// configuration error before any request.
    fn probe(&self) -> Result<(), TpmError> {
        let digest = match self.fixed_scheme {
            Some((_, proto::ALG_SHA384)) if self.curve_len == 0 => Digest::Sha384,
            Some((_, proto::ALG_SHA512)) if self.curve_len == 0 => Digest::Sha512,
            _ => Digest::Sha256,
        };
        let sig = self.sign_inner(PROBE, digest).map_err(|e| match e {
            SignFail::Tpm(e) => e,
            SignFail::Digest(_) => TpmError::Unsupported {
                key: self.source(),
                what: "a key whose scheme allows no supported digest".into(),
            },
        })?;
        if !crate::signer::verify(self.kind, &self.public_key, PROBE, digest, &sig) {
            return Err(TpmError::BadSignature { key: self.source() });
        }
        Ok(())
    }

    /// The digest to hand the TPM and the scheme to name, for `message` under `digest`.
    fn prepare(&self, message: &[u8], digest: Digest) -> Result<(Vec<u8>, u16, u16), SignFail> {
        let hashed = digest.hash(message);
        let wanted = match digest {
            Digest::Sha256 => proto::ALG_SHA256,
            Digest::Sha384 => proto::ALG_SHA384,
            Digest::Sha512 => proto::ALG_SHA512,
        };
        if self.curve_len == 0 {
            if let Some((_, fixed)) = self.fixed_scheme
                && fixed != wanted
            {
                return Err(SignFail::Digest(digest));
            }
            return Ok((hashed, proto::ALG_RSASSA, wanted));
        }
        // ECDSA signs the digest truncated to the curve order's size, so any digest can be
        // carried in whichever hash size the TPM expects, as long as the value it ends up
        // using is the same: see `fit_ecdsa_digest`.
        let hash = match self.fixed_scheme {
            Some((_, fixed)) => fixed,
            None if self.curve_len == 48 => proto::ALG_SHA384,
            None => proto::ALG_SHA256,
        };
        let size = proto::hash_alg_size(hash).ok_or(SignFail::Digest(digest))?;
        let fitted =
            fit_ecdsa_digest(&hashed, self.curve_len, size).ok_or(SignFail::Digest(digest))?;
        Ok((fitted, proto::ALG_ECDSA, hash))
    }

    fn password_bytes(&self) -> &[u8] {
        self.password
            .as_ref()
            .map(|p| p.expose_secret().as_bytes())
            .unwrap_or_default()
    }

    fn sign_inner(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, SignFail> {
        let (tpm_digest, scheme, hash) = self.prepare(message, digest)?;
        let sig = self
            .with_tpm(|conn| self.sign_once(conn, &tpm_digest, scheme, hash))
            .map_err(SignFail::Tpm)?;
        self.encode(sig).map_err(SignFail::Tpm)
    }

    /// Runs `op` on a fresh connection, once more on a new one after an I/O error.
    fn with_tpm<T>(&self, op: impl Fn(&mut Connection) -> Result<T, Fail>) -> Result<T, TpmError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = Connection::open(&self.tcti).map_err(|source| TpmError::Connect {
                tcti: self.tcti.to_string(),
                source,
            })?;
            match op(&mut conn) {
                Ok(v) => return Ok(v),
                Err(Fail::Io(_)) if attempt == 1 => continue,
                Err(fail) => {
                    let name = match &self.location {
                        Location::File { name, .. } => Some(name.as_str()),
                        Location::Handle(_) => None,
                    };
                    return Err(match (&self.location, &fail) {
                        (Location::Handle(handle), Fail::Rc(_, rc)) if rc.is_missing_handle() => {
                            TpmError::NoSuchHandle {
                                handle: *handle,
                                tcti: self.tcti.to_string(),
                            }
                        }
                        (Location::File { parent, .. }, Fail::Rc("Load", rc))
                            if rc.is_missing_handle() =>
                        {
                            TpmError::NoSuchHandle {
                                handle: *parent,
                                tcti: self.tcti.to_string(),
                            }
                        }
                        _ => to_error(
                            fail,
                            &self.tcti,
                            &self.source(),
                            self.password_guessed,
                            name,
                        ),
                    });
                }
            }
        }
    }

    fn sign_once(
        &self,
        conn: &mut Connection,
        digest: &[u8],
        scheme: u16,
        hash: u16,
    ) -> Result<proto::Signature, Fail> {
        let sign = |conn: &mut Connection, handle: u32| {
            let cmd = proto::sign(handle, self.password_bytes(), digest, scheme, hash);
            let (_, params) = run(conn, &cmd, "Sign", 0)?;
            Ok(proto::parse_signature(&params)?)
        };
        let (parent, public, private) = match &self.location {
            Location::Handle(handle) => return sign(conn, *handle),
            Location::File {
                parent,
                public,
                private,
                ..
            } => (*parent, public, private),
        };
        let load = |conn: &mut Connection, parent: u32| {
            let cmd = Zeroizing::new(proto::load(parent, &[], private, public));
            run(conn, &cmd, "Load", 1).and_then(|(handles, _)| {
                handles
                    .first()
                    .copied()
                    .ok_or_else(|| Fail::Malformed(Malformed("no handle from TPM2_Load".into())))
            })
        };
        let sign_loaded = |conn: &mut Connection, handle: u32| {
            let result = sign(conn, handle);
            flush(conn, handle);
            result
        };
        if parent >> 24 == 0x81 {
            let handle = load(conn, parent)?;
            return sign_loaded(conn, handle);
        }
        // A hierarchy: regenerate its storage primary (deterministic for a template), trying
        // the template that worked last time first.
        let first = self.template.load(Ordering::Relaxed) % PRIMARY_TEMPLATES.len();
        let mut first_failure = None;
        let in_order = PRIMARY_TEMPLATES.iter().enumerate().cycle().skip(first);
        for (i, &attributes) in in_order.take(PRIMARY_TEMPLATES.len()) {
            let template = proto::ecc_storage_template(attributes);
            let (handles, _) = run(
                conn,
                &proto::create_primary(parent, &template),
                "CreatePrimary",
                1,
            )?;
            let primary = handles.first().copied().ok_or_else(|| {
                Fail::Malformed(Malformed("no handle from TPM2_CreatePrimary".into()))
            })?;
            let loaded = load(conn, primary);
            flush(conn, primary);
            match loaded {
                Ok(handle) => {
                    self.template.store(i, Ordering::Relaxed);
                    return sign_loaded(conn, handle);
                }
                // Under the wrong primary the blob fails its integrity check: try the next.
                Err(Fail::Rc(name, rc)) if !rc.is_auth_failure() && !rc.is_lockout() => {
                    first_failure.get_or_insert(Fail::Rc(name, rc));
                }
                Err(other) => return Err(other),
            }
        }
        Err(first_failure.unwrap_or_else(|| Fail::Malformed(Malformed("no template".into()))))
    }

    /// The signature in the protocol's encoding.
    fn encode(&self, sig: proto::Signature) -> Result<Vec<u8>, TpmError> {
        let bad = |what: &str| TpmError::Transport {
            tcti: self.tcti.to_string(),
            detail: format!("malformed response: {what}"),
        };
        match (sig, self.kind) {
            (proto::Signature::Rsa(s), KeyKind::Rsa { bits }) => {
                left_pad(&s, bits.div_ceil(8)).ok_or_else(|| bad("RSA signature too long"))
            }
            (proto::Signature::Ecdsa { r, s }, KeyKind::EcP256 | KeyKind::EcP384) => {
                let (Some(r), Some(s)) =
                    (left_pad(&r, self.curve_len), left_pad(&s, self.curve_len))
                else {
                    return Err(bad("ECDSA signature too long"));
                };
                crate::der::ecdsa_raw_to_der(&[r, s].concat()).ok_or_else(|| bad("ECDSA signature"))
            }
            _ => Err(bad("signature of another algorithm than the key's")),
        }
    }
}

/// Left-pads a big-endian number to `len` bytes (dropping leading zeros if longer);
/// `None` when it does not fit.
fn left_pad(v: &[u8], len: usize) -> Option<Vec<u8>> {
    let v = crate::der::strip_leading_zeros(v);
    if v.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - v.len()];
    out.extend_from_slice(v);
    Some(out)
}

/// Re-encodes `digest` so that a TPM signing with ECDSA on a curve of `curve_len` bytes
/// and a scheme hash of `hash_len` bytes uses the same integer host-side ECDSA would: the
/// leftmost `min(len, curve_len)` bytes of the digest. The TPM truncates what it is given to
/// the curve's size and insists on `hash_len` bytes, so the value is placed where that
/// truncation keeps it. `None` when that cannot be done (the TPM would drop needed bytes).
fn fit_ecdsa_digest(digest: &[u8], curve_len: usize, hash_len: usize) -> Option<Vec<u8>> {
    let used = digest.get(..curve_len).unwrap_or(digest);
    let mut out = Vec::with_capacity(hash_len);
    if hash_len >= curve_len {
        out.resize(curve_len - used.len(), 0);
        out.extend_from_slice(used);
        out.resize(hash_len, 0);
    } else if used.len() <= hash_len {
        out.resize(hash_len - used.len(), 0);
        out.extend_from_slice(used);
    } else {
        return None;
    }
    Some(out)
}

impl Signer for TpmKey {
    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, SignError> {
        self.sign_inner(message, digest).map_err(|e| match e {
            SignFail::Digest(digest) => SignError::UnsupportedDigest {
                key: self.kind,
                digest,
            },
            SignFail::Tpm(e) => SignError::Backend {
                source_name: self.source(),
                reason: match e.hint() {
                    Some(hint) => format!("{e} ({hint})"),
                    None => e.to_string(),
                },
            },
        })
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        Some(self.public_key.clone())
    }

    fn source(&self) -> String {
        match &self.location {
            Location::Handle(h) => format!("TPM handle {h:#010x} via {}", self.tcti),
            Location::File { name, .. } => format!("TPM key in {name} via {}", self.tcti),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_parse_as_the_go_helper_reads_them() {
        assert_eq!(parse_handle("0x81000001"), Some(0x8100_0001));
        assert_eq!(parse_handle("81000001"), Some(0x8100_0001));
        assert_eq!(parse_handle("0X8100000A"), Some(0x8100_000A));
        assert_eq!(parse_handle("0x80000002"), Some(0x8000_0002));
        for bad in [
            "",
            "0x",
            "0x40000001",
            "0x1500016",
            "zz",
            "0x810000011",
            "-1",
        ] {
            assert_eq!(parse_handle(bad), None, "{bad}");
        }
        assert!(is_handle("handle:0x81000001"));
        assert!(!is_handle("/etc/key.pem"));
    }

    #[test]
    fn password_rules_come_before_the_tpm() {
        let nowhere = Tcti::Swtpm {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let e = open_key_with("handle:0x81000001", None, false, nowhere.clone()).unwrap_err();
        assert!(matches!(
            e,
            TpmError::PasswordFlagNeeded {
                handle: 0x8100_0001
            }
        ));
        assert!(e.to_string().contains("--tpm-key-password"), "{e}");
        let e = open_key_with(
            "handle:0x81000001",
            Some(SecretString::from("x")),
            true,
            nowhere.clone(),
        )
        .unwrap_err();
        assert!(matches!(e, TpmError::ConflictingPasswordFlags));
        let e = open_key_with("handle:0x40000001", None, true, nowhere.clone()).unwrap_err();
        assert!(matches!(e, TpmError::BadHandle { .. }));
        // Nothing listens on port 1: the error names the TCTI and hints at TPM2TOOLS_TCTI.
        let e = open_key_with("handle:0x81000001", None, true, nowhere).unwrap_err();
        assert!(matches!(e, TpmError::Connect { .. }), "{e:?}");
        assert!(e.to_string().contains("swtpm:host=127.0.0.1,port=1"), "{e}");
        assert!(e.hint().unwrap().contains("TPM2TOOLS_TCTI"));
    }

    #[test]
    fn key_files_are_checked_before_the_tpm() {
        let dir = tempfile::tempdir().unwrap();
        let nowhere = Tcti::Device(dir.path().join("no-tpm"));
        let plain = dir.path().join("plain.pem");
        std::fs::write(
            &plain,
            "-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = open_key_with(plain.to_str().unwrap(), None, false, nowhere.clone()).unwrap_err();
        assert!(matches!(e, TpmError::NotAKeyFile { .. }), "{e:?}");
        assert!(e.to_string().starts_with("file "), "{e}");
        assert!(e.to_string().contains("no TSS2 PRIVATE KEY block"), "{e}");
        let e =
            open_key_data_with(b"junk", "variable K", None, false, nowhere.clone()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "variable K is not a usable TPM key: no PEM block found"
        );
        let e = open_key_with("/nonexistent/k.pem", None, false, nowhere.clone()).unwrap_err();
        assert!(matches!(e, TpmError::Read { .. }), "{e:?}");

        // A minimal emptyAuth key file that parses: it gets as far as the (missing) TPM.
        let mut tpm2b_public = proto::Writer::default();
        tpm2b_public.tpm2b(&hex::decode("0023000b000400720000001000100003001000000000").unwrap());
        let mut body = vec![0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x03];
        body.extend_from_slice(&[0xA0, 0x03, 0x01, 0x01, 0xFF, 0x02, 0x04, 0x40, 0, 0, 1]);
        body.extend_from_slice(&[0x04, tpm2b_public.0.len() as u8]);
        body.extend_from_slice(&tpm2b_public.0);
        body.extend_from_slice(&[0x04, 0x03, 0x00, 0x01, 0xCC]);
        let mut der = vec![0x30, body.len() as u8];
        der.extend(body);
        let pem = format!(
            "-----BEGIN TSS2 PRIVATE KEY-----\n{}\n-----END TSS2 PRIVATE KEY-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        let file = dir.path().join("tss.pem");
        std::fs::write(&file, pem).unwrap();
        let path = file.to_str().unwrap();
        let e = open_key_with(path, None, false, nowhere).unwrap_err();
        assert!(matches!(e, TpmError::Connect { .. }), "{e:?}");
        assert!(e.hint().unwrap().contains("does not exist"));
    }

    #[test]
    fn ecdsa_digests_keep_their_value() {
        let d32 = [0x11u8; 32];
        let d64 = [0x22u8; 64];
        // The natural pairings pass through.
        assert_eq!(fit_ecdsa_digest(&d32, 32, 32), Some(d32.to_vec()));
        // SHA-512 on P-256: the leftmost 32 bytes.
        assert_eq!(fit_ecdsa_digest(&d64, 32, 32), Some(d64[..32].to_vec()));
        // SHA-256 on P-384 with a SHA-384 scheme: zero-extended on the left.
        let got = fit_ecdsa_digest(&d32, 48, 48).unwrap();
        assert_eq!(&got[..16], &[0u8; 16]);
        assert_eq!(&got[16..], &d32);
        // A SHA-512 scheme on P-256: the TPM keeps the leftmost 32 of the 64 bytes.
        let got = fit_ecdsa_digest(&d32, 32, 64).unwrap();
        assert_eq!(&got[..32], &d32);
        assert_eq!(&got[32..], &[0u8; 32]);
        // A SHA-256 scheme cannot carry 48 meaningful bytes for P-384.
        assert_eq!(fit_ecdsa_digest(&[1u8; 48], 48, 32), None);
    }

    #[test]
    fn a_zero_rsa_modulus_is_refused() {
        let area = |modulus: Vec<u8>| PublicArea {
            name_alg: proto::ALG_SHA256,
            attributes: proto::ATTR_SIGN,
            scheme: None,
            key: PublicKey::Rsa {
                modulus,
                exponent: 65537,
                bits: 2048,
            },
        };
        let tcti = Tcti::Swtpm {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let new = |modulus| {
            TpmKey::new(
                Location::Handle(0x8100_0001),
                tcti.clone(),
                None,
                false,
                area(modulus),
            )
        };
        let e = new(vec![0, 0]).err().unwrap();
        assert!(e.to_string().contains("zero modulus"), "{e}");
        let key = new(vec![0, 0x01, 0x00]).unwrap();
        assert_eq!(key.kind, KeyKind::Rsa { bits: 9 });
    }

    #[test]
    fn left_pad_strips_and_pads() {
        assert_eq!(left_pad(&[0, 0, 1], 2), Some(vec![0, 1]));
        assert_eq!(left_pad(&[1, 2, 3], 2), None);
        assert_eq!(left_pad(&[], 2), Some(vec![0, 0]));
    }
}
