//! TPM 2.0 wire format: the constants, the big-endian marshaling of the few commands this
//! client sends (Startup, ReadPublic, CreatePrimary, Load, Sign, FlushContext), the parsing
//! of their responses, and the reading of a `TPMT_PUBLIC` into a public key. Pure functions
//! over byte slices, so every encoding is unit-tested without a TPM.
//!
//! Layouts follow TPM 2.0 Library Part 2 (structures) and Part 3 (commands).

use std::fmt;

pub const ST_NO_SESSIONS: u16 = 0x8001;
pub const ST_SESSIONS: u16 = 0x8002;
pub const ST_HASHCHECK: u16 = 0x8024;

pub const CC_CREATE_PRIMARY: u32 = 0x0000_0131;
pub const CC_STARTUP: u32 = 0x0000_0144;
pub const CC_LOAD: u32 = 0x0000_0157;
pub const CC_SIGN: u32 = 0x0000_015D;
pub const CC_FLUSH_CONTEXT: u32 = 0x0000_0165;
pub const CC_READ_PUBLIC: u32 = 0x0000_0173;

pub const RS_PW: u32 = 0x4000_0009;
pub const RH_OWNER: u32 = 0x4000_0001;
pub const RH_NULL: u32 = 0x4000_0007;
pub const RH_ENDORSEMENT: u32 = 0x4000_000B;
pub const RH_PLATFORM: u32 = 0x4000_000C;

pub const ALG_RSA: u16 = 0x0001;
pub const ALG_SHA1: u16 = 0x0004;
pub const ALG_HMAC: u16 = 0x0005;
pub const ALG_AES: u16 = 0x0006;
pub const ALG_KEYEDHASH: u16 = 0x0008;
pub const ALG_XOR: u16 = 0x000A;
pub const ALG_SHA256: u16 = 0x000B;
pub const ALG_SHA384: u16 = 0x000C;
pub const ALG_SHA512: u16 = 0x000D;
pub const ALG_NULL: u16 = 0x0010;
pub const ALG_RSASSA: u16 = 0x0014;
pub const ALG_RSAES: u16 = 0x0015;
pub const ALG_RSAPSS: u16 = 0x0016;
pub const ALG_ECDSA: u16 = 0x0018;
pub const ALG_ECDAA: u16 = 0x001A;
pub const ALG_ECC: u16 = 0x0023;
pub const ALG_SYMCIPHER: u16 = 0x0025;
pub const ALG_CFB: u16 = 0x0043;

pub const ECC_NIST_P256: u16 = 0x0003;
pub const ECC_NIST_P384: u16 = 0x0004;

pub const SU_CLEAR: u16 = 0x0000;

/// `TPMA_OBJECT` bits used here.
pub const ATTR_FIXED_TPM: u32 = 0x0000_0002;
pub const ATTR_FIXED_PARENT: u32 = 0x0000_0010;
pub const ATTR_SENSITIVE_DATA_ORIGIN: u32 = 0x0000_0020;
pub const ATTR_USER_WITH_AUTH: u32 = 0x0000_0040;
pub const ATTR_NO_DA: u32 = 0x0000_0400;
pub const ATTR_RESTRICTED: u32 = 0x0001_0000;
pub const ATTR_DECRYPT: u32 = 0x0002_0000;
pub const ATTR_SIGN: u32 = 0x0004_0000;

pub const RC_SUCCESS: u32 = 0x000;
pub const RC_INITIALIZE: u32 = 0x100;
pub const RC_FAILURE: u32 = 0x101;

/// The largest response accepted. TPMs answer in at most a few KiB (`TPM_MAX_COMMAND_SIZE`
/// is typically 4096); anything bigger is a confused peer, not something to allocate for.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// A response that does not parse. Says what was missing, never echoes the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn malformed(what: &str) -> Malformed {
    Malformed(what.to_string())
}

/// Appends big-endian values.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A `TPM2B_*`: a u16 size, then the bytes. Callers keep `v` under 64 KiB (every TPM2B
    /// this client sends is a digest, a password or a blob read from a TPM2B).
    pub fn tpm2b(&mut self, v: &[u8]) -> &mut Self {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.u16(len);
        self.0
            .extend_from_slice(v.get(..usize::from(len)).unwrap_or(v));
        self
    }
}

/// Reads big-endian values from a slice, failing with what was being read.
pub struct Reader<'a> {
    /// What is not read yet.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { rest: data }
    }
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let (out, rest) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| Malformed(format!("truncated {what}")))?;
        self.rest = rest;
        Ok(out)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Malformed> {
        let (out, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or_else(|| Malformed(format!("truncated {what}")))?;
        self.rest = rest;
        Ok(*out)
    }
    pub fn u8(&mut self, what: &str) -> Result<u8, Malformed> {
        self.array(what).map(u8::from_be_bytes)
    }
    pub fn u16(&mut self, what: &str) -> Result<u16, Malformed> {
        self.array(what).map(u16::from_be_bytes)
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, Malformed> {
        self.array(what).map(u32::from_be_bytes)
    }
    pub fn tpm2b(&mut self, what: &str) -> Result<&'a [u8], Malformed> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// A command: header, handles, an optional password authorization, parameters.
///
/// `auth` is the password of the one entity the command authorizes (the first handle):
/// `Some` makes it a `TPM_ST_SESSIONS` command with a single `TPM_RS_PW` session.
pub fn command(code: u32, handles: &[u32], auth: Option<&[u8]>, params: &[u8]) -> Vec<u8> {
    let tag = if auth.is_some() {
        ST_SESSIONS
    } else {
        ST_NO_SESSIONS
    };
    // Everything after the header's tag and size, so the size is known before writing it.
    let mut body = Writer::default();
    body.u32(code);
    for h in handles {
        body.u32(*h);
    }
    if let Some(password) = auth {
        let mut session = Writer::default();
        // continueSession is meaningless for the password session; tpm2-tools sets it too.
        session.u32(RS_PW).tpm2b(&[]).u8(0x01).tpm2b(password);
        body.u32(session.0.len() as u32).bytes(&session.0);
    }
    body.bytes(params);
    let mut w = Writer::default();
    // The size counts the whole command: the 2-byte tag and the 4-byte size itself too.
    w.u16(tag).u32((body.0.len() + 6) as u32).bytes(&body.0);
    w.0
}

/// A successful response, split: the handles it returns and its parameter area.
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub handles: Vec<u32>,
    pub params: &'a [u8],
}

/// The response code of a raw response, or `Malformed` when even the header is missing or
/// the size field disagrees with the bytes received.
pub fn response_code(resp: &[u8]) -> Result<u32, Malformed> {
    let mut r = Reader::new(resp);
    let _tag = r.u16("response header")?;
    let size = r.u32("response header")?;
    let rc = r.u32("response header")?;
    if size as usize != resp.len() {
        return Err(Malformed(format!(
            "response size field says {size} bytes, {} received",
            resp.len()
        )));
    }
    Ok(rc)
}

/// Splits a successful response to a command that returns `out_handles` handles.
/// Call only after [`response_code`] returned `RC_SUCCESS`.
pub fn parse_response(resp: &[u8], out_handles: usize) -> Result<Response<'_>, Malformed> {
    let mut r = Reader::new(resp);
    let tag = r.u16("response header")?;
    let _size = r.u32("response header")?;
    let _rc = r.u32("response header")?;
    let mut handles = Vec::with_capacity(out_handles);
    for _ in 0..out_handles {
        handles.push(r.u32("response handle")?);
    }
    let params = match tag {
        ST_SESSIONS => {
            let n = r.u32("parameter size")?;
            // The authorization area after the parameters is not needed: a password
            // session's response carries no HMAC to check.
            r.take(n as usize, "response parameters")?
        }
        ST_NO_SESSIONS => r.rest(),
        other => return Err(Malformed(format!("unknown response tag {other:#06x}"))),
    };
    Ok(Response { handles, params })
}

/// The hash algorithm ID for a digest length, and back.
pub fn hash_alg_size(alg: u16) -> Option<usize> {
    match alg {
        ALG_SHA1 => Some(20),
        ALG_SHA256 => Some(32),
        ALG_SHA384 => Some(48),
        ALG_SHA512 => Some(64),
        _ => None,
    }
}

pub fn hash_alg_name(alg: u16) -> String {
    match alg {
        ALG_SHA1 => "SHA-1".into(),
        ALG_SHA256 => "SHA-256".into(),
        ALG_SHA384 => "SHA-384".into(),
        ALG_SHA512 => "SHA-512".into(),
        ALG_NULL => "no hash".into(),
        other => format!("hash {other:#06x}"),
    }
}

/// The public half of a key, as `TPMT_PUBLIC.unique` and its parameters describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa {
        /// The modulus, big-endian, as stored (no leading zero).
        modulus: Vec<u8>,
        /// The public exponent (the TPM's 0 already replaced by 65537).
        exponent: u32,
        bits: u16,
    },
    Ecc {
        curve: u16,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// A keyed-hash or symmetric object: cannot sign for a certificate.
    Other(u16),
}

/// The parts of a `TPMT_PUBLIC` a signer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicArea {
    pub name_alg: u16,
    pub attributes: u32,
    /// The key's own signing scheme and its hash, or `None` when it is `TPM_ALG_NULL`
    /// (then each TPM2_Sign names the scheme).
    pub scheme: Option<(u16, u16)>,
    pub key: PublicKey,
}

/// Parses a `TPM2B_PUBLIC` (size-prefixed `TPMT_PUBLIC`), checking that the size prefix
/// covers exactly the structure.
pub fn parse_tpm2b_public(data: &[u8]) -> Result<PublicArea, Malformed> {
    let mut r = Reader::new(data);
    let inner = r.tpm2b("TPM2B_PUBLIC")?;
    if !r.is_empty() {
        return Err(malformed("bytes after the TPM2B_PUBLIC"));
    }
    let mut r = Reader::new(inner);
    let area = parse_public(&mut r)?;
    if !r.is_empty() {
        return Err(malformed("bytes after the TPMT_PUBLIC"));
    }
    Ok(area)
}

/// Parses a `TPMT_PUBLIC`.
pub fn parse_public(r: &mut Reader<'_>) -> Result<PublicArea, Malformed> {
    let kind = r.u16("public area type")?;
    let name_alg = r.u16("public area nameAlg")?;
    let attributes = r.u32("public area attributes")?;
    let _auth_policy = r.tpm2b("public area authPolicy")?;
    match kind {
        ALG_RSA => {
            skip_sym_def_object(r)?;
            let scheme = read_scheme(r, "RSA scheme")?;
            let bits = r.u16("RSA keyBits")?;
            let exponent = match r.u32("RSA exponent")? {
                0 => 65537,
                e => e,
            };
            let modulus = r.tpm2b("RSA modulus")?;
            if modulus.is_empty() {
                return Err(malformed("empty RSA modulus"));
            }
            Ok(PublicArea {
                name_alg,
                attributes,
                scheme,
                key: PublicKey::Rsa {
                    modulus: modulus.to_vec(),
                    exponent,
                    bits,
                },
            })
        }
        ALG_ECC => {
            skip_sym_def_object(r)?;
            let scheme = read_scheme(r, "ECC scheme")?;
            let curve = r.u16("ECC curveID")?;
            let kdf = r.u16("ECC kdf")?;
            if kdf != ALG_NULL {
                r.u16("ECC kdf hash")?;
            }
            let x = r.tpm2b("ECC point x")?.to_vec();
            let y = r.tpm2b("ECC point y")?.to_vec();
            Ok(PublicArea {
                name_alg,
                attributes,
                scheme,
                key: PublicKey::Ecc { curve, x, y },
            })
        }
        ALG_KEYEDHASH => {
            let scheme = r.u16("keyed-hash scheme")?;
            match scheme {
                ALG_HMAC => {
                    r.u16("HMAC hash")?;
                }
                ALG_XOR => {
                    r.u16("XOR hash")?;
                    r.u16("XOR kdf")?;
                }
                _ => {}
            }
            r.tpm2b("keyed-hash unique")?;
            Ok(other(name_alg, attributes, kind))
        }
        ALG_SYMCIPHER => {
            skip_sym_def_object(r)?;
            r.tpm2b("symmetric unique")?;
            Ok(other(name_alg, attributes, kind))
        }
        other => Err(Malformed(format!("unknown public area type {other:#06x}"))),
    }
}

fn other(name_alg: u16, attributes: u32, kind: u16) -> PublicArea {
    PublicArea {
        name_alg,
        attributes,
        scheme: None,
        key: PublicKey::Other(kind),
    }
}

/// `TPMT_SYM_DEF_OBJECT`: an algorithm, then key bits and mode unless it is NULL.
fn skip_sym_def_object(r: &mut Reader<'_>) -> Result<(), Malformed> {
    if r.u16("symmetric algorithm")? != ALG_NULL {
        r.u16("symmetric keyBits")?;
        r.u16("symmetric mode")?;
    }
    Ok(())
}

/// An asymmetric scheme (`TPMT_RSA_SCHEME` / `TPMT_ECC_SCHEME`). Every scheme but NULL and
/// RSAES carries a hash algorithm; ECDAA also a commit count.
fn read_scheme(r: &mut Reader<'_>, what: &str) -> Result<Option<(u16, u16)>, Malformed> {
    let scheme = r.u16(what)?;
    match scheme {
        ALG_NULL => Ok(None),
        ALG_RSAES => Ok(Some((scheme, ALG_NULL))),
        _ => {
            let hash = r.u16(what)?;
            if scheme == ALG_ECDAA {
                r.u16(what)?;
            }
            Ok(Some((scheme, hash)))
        }
    }
}

/// A `TPM2B_PUBLIC` template for a storage primary key on NIST P-256: restricted decrypt,
/// AES-128-CFB, NULL scheme and KDF, empty `unique`. `attributes` picks between the variants
/// in use (with or without noDA), which produce different keys from the same seed.
pub fn ecc_storage_template(attributes: u32) -> Vec<u8> {
    let mut t = Writer::default();
    t.u16(ALG_ECC)
        .u16(ALG_SHA256)
        .u32(attributes)
        .tpm2b(&[])
        .u16(ALG_AES)
        .u16(128)
        .u16(ALG_CFB)
        .u16(ALG_NULL)
        .u16(ECC_NIST_P256)
        .u16(ALG_NULL)
        .tpm2b(&[])
        .tpm2b(&[]);
    let mut w = Writer::default();
    w.tpm2b(&t.0);
    w.0
}

/// The attributes of the storage primary the TSS2 key-file producers (tpm2-tss-engine,
/// the tpm2 OpenSSL provider, openssl_tpm2_engine) and the Go helper regenerate under the
/// owner hierarchy: the TCG SRK template, with noDA.
pub const SRK_ATTRIBUTES_NODA: u32 = ATTR_FIXED_TPM
    | ATTR_FIXED_PARENT
    | ATTR_SENSITIVE_DATA_ORIGIN
    | ATTR_USER_WITH_AUTH
    | ATTR_NO_DA
    | ATTR_RESTRICTED
    | ATTR_DECRYPT;

/// What `tpm2_createprimary -C o -G ecc` uses by default: the same without noDA.
pub const SRK_ATTRIBUTES_TPM2_TOOLS: u32 = SRK_ATTRIBUTES_NODA & !ATTR_NO_DA;

pub fn startup_clear() -> Vec<u8> {
    command(CC_STARTUP, &[], None, &SU_CLEAR.to_be_bytes())
}

pub fn read_public(handle: u32) -> Vec<u8> {
    command(CC_READ_PUBLIC, &[handle], None, &[])
}

/// Parses TPM2_ReadPublic's parameters: the public area (names are not needed).
pub fn parse_read_public(params: &[u8]) -> Result<PublicArea, Malformed> {
    let mut r = Reader::new(params);
    let public = r.tpm2b("outPublic")?;
    let mut inner = Reader::new(public);
    parse_public(&mut inner)
}

pub fn flush_context(handle: u32) -> Vec<u8> {
    command(CC_FLUSH_CONTEXT, &[], None, &handle.to_be_bytes())
}

/// TPM2_CreatePrimary under `hierarchy` with an empty hierarchy password, no user auth, no
/// sensitive data, no outside info and no PCRs. `template` is a full `TPM2B_PUBLIC`.
pub fn create_primary(hierarchy: u32, template: &[u8]) -> Vec<u8> {
    let mut p = Writer::default();
    // TPM2B_SENSITIVE_CREATE { userAuth: empty, data: empty }
    p.u16(4).u16(0).u16(0);
    p.bytes(template);
    p.tpm2b(&[]); // outsideInfo
    p.u32(0); // creationPCR: an empty TPML_PCR_SELECTION
    command(CC_CREATE_PRIMARY, &[hierarchy], Some(&[]), &p.0)
}

/// TPM2_Load of a key pair under `parent` (whose password is `parent_auth`). `private` and
/// `public` are the size-prefixed `TPM2B_PRIVATE` and `TPM2B_PUBLIC` of a key file.
pub fn load(parent: u32, parent_auth: &[u8], private: &[u8], public: &[u8]) -> Vec<u8> {
    let mut p = Writer::default();
    p.bytes(private).bytes(public);
    command(CC_LOAD, &[parent], Some(parent_auth), &p.0)
}

/// TPM2_Sign of a host-computed digest with an explicit scheme and a NULL hash-check ticket
/// (allowed because the keys used here are not restricted).
pub fn sign(key: u32, auth: &[u8], digest: &[u8], scheme: u16, hash: u16) -> Vec<u8> {
    let mut p = Writer::default();
    p.tpm2b(digest).u16(scheme).u16(hash);
    p.u16(ST_HASHCHECK).u32(RH_NULL).tpm2b(&[]);
    command(CC_SIGN, &[key], Some(auth), &p.0)
}

/// A signature as TPM2_Sign returns it.
#[derive(Debug, PartialEq, Eq)]
pub enum Signature {
    Rsa(Vec<u8>),
    Ecdsa { r: Vec<u8>, s: Vec<u8> },
}

pub fn parse_signature(params: &[u8]) -> Result<Signature, Malformed> {
    let mut r = Reader::new(params);
    let alg = r.u16("signature algorithm")?;
    match alg {
        ALG_RSASSA | ALG_RSAPSS => {
            r.u16("signature hash")?;
            Ok(Signature::Rsa(r.tpm2b("RSA signature")?.to_vec()))
        }
        ALG_ECDSA => {
            r.u16("signature hash")?;
            let sr = r.tpm2b("ECDSA r")?.to_vec();
            let ss = r.tpm2b("ECDSA s")?.to_vec();
            Ok(Signature::Ecdsa { r: sr, s: ss })
        }
        other => Err(Malformed(format!(
            "unexpected signature algorithm {other:#06x}"
        ))),
    }
}

/// A response code reduced to what it means, with the handle, session or parameter it
/// points at stripped (they only say *which* argument was bad).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rc(pub u32);

impl Rc {
    /// The code without the TSS layer byte and without the position bits of format-one
    /// codes, e.g. 0x98E (AUTH_FAIL on session 1) -> 0x08E.
    pub fn base(self) -> u32 {
        let rc = self.0 & 0xFFFF;
        if rc & 0x080 != 0 {
            0x080 | (rc & 0x03F)
        } else {
            rc
        }
    }

    /// The layer that produced the code (0 = the TPM; 11 = a resource manager, ...).
    pub fn layer(self) -> u32 {
        self.0 >> 16
    }

    pub fn is_auth_failure(self) -> bool {
        self.layer() == 0 && matches!(self.base(), 0x08E | 0x0A2)
    }

    pub fn is_lockout(self) -> bool {
        self.layer() == 0 && self.base() == 0x921
    }

    /// A handle that does not exist (TPM_RC_HANDLE on a handle, or TPM_RC_REFERENCE_H0).
    pub fn is_missing_handle(self) -> bool {
        let rc = self.0 & 0xFFFF;
        self.layer() == 0
            && ((self.base() == 0x08B && rc & 0x040 == 0 && rc & 0x800 == 0)
                || (0x910..=0x916).contains(&rc))
    }

    /// The TPM's name for the code, when it is one this client expects to meet.
    pub fn name(self) -> &'static str {
        if self.layer() != 0 {
            return "from the TPM software stack";
        }
        match self.base() {
            0x100 => "TPM_RC_INITIALIZE: the TPM has not been started",
            0x101 => "TPM_RC_FAILURE: the TPM is in failure mode",
            0x143 => "TPM_RC_COMMAND_CODE: command not supported",
            0x082 => "TPM_RC_ATTRIBUTES",
            0x083 => "TPM_RC_HASH: hash algorithm not supported or not allowed",
            0x084 => "TPM_RC_VALUE",
            0x08B => "TPM_RC_HANDLE: no such handle",
            0x08E => "TPM_RC_AUTH_FAIL: wrong password",
            0x092 => "TPM_RC_SCHEME: the key does not allow this signing scheme",
            0x095 => "TPM_RC_SIZE",
            0x096 => "TPM_RC_SYMMETRIC",
            0x09C => "TPM_RC_KEY",
            0x09F => "TPM_RC_INTEGRITY: the key blob does not belong under this parent",
            0x0A2 => "TPM_RC_BAD_AUTH: wrong password",
            0x0A4 => "TPM_RC_TICKET",
            0x0A6 => "TPM_RC_POLICY_FAIL",
            0x902 => "TPM_RC_OBJECT_MEMORY: no free transient object slot",
            0x903 => "TPM_RC_SESSION_MEMORY",
            0x904 => "TPM_RC_MEMORY",
            0x908 => "TPM_RC_YIELDED",
            0x909 => "TPM_RC_CANCELED",
            0x90A => "TPM_RC_TESTING: the TPM is self-testing",
            0x921 => "TPM_RC_LOCKOUT: dictionary-attack lockout",
            0x922 => "TPM_RC_RETRY",
            0x923 => "TPM_RC_NV_UNAVAILABLE",
            0x910..=0x916 => "TPM_RC_REFERENCE: the handle is not loaded",
            _ => "see tpm2_rc_decode",
        }
    }
}

impl fmt::Display for Rc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#05x} ({})", self.0, self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    #[test]
    fn read_public_bytes() {
        // tag NO_SESSIONS, size 14, TPM_CC_ReadPublic, handle 0x81000001
        assert_eq!(
            read_public(0x8100_0001),
            h("8001 0000000e 00000173 81000001")
        );
    }

    #[test]
    fn startup_and_flush_bytes() {
        assert_eq!(startup_clear(), h("8001 0000000c 00000144 0000"));
        assert_eq!(
            flush_context(0x8000_0000),
            h("8001 0000000e 00000165 80000000")
        );
    }

    #[test]
    fn sign_bytes_with_password_session() {
        let digest = [0xAB; 32];
        let got = sign(0x8100_0002, b"pw", &digest, ALG_RSASSA, ALG_SHA256);
        let expected = [
            "8002",                       // TPM_ST_SESSIONS
            "0000004b",                   // size: 10 + 4 + 4 + 11 + 34 + 4 + 8 = 75
            "0000015d",                   // TPM_CC_Sign
            "81000002",                   // keyHandle
            "0000000b",                   // authorizationSize: 4 + 2 + 1 + 2 + 2
            "40000009 0000 01 0002 7077", // TPM_RS_PW, empty nonce, continueSession, "pw"
            "0020",
            &"ab".repeat(32),
            "0014 000b",          // RSASSA, SHA-256
            "8024 40000007 0000", // NULL TPMT_TK_HASHCHECK
        ]
        .concat();
        assert_eq!(got, h(&expected));
        assert_eq!(got.len(), 75);
    }

    #[test]
    fn create_primary_template_matches_the_tcg_srk() {
        let t = ecc_storage_template(SRK_ATTRIBUTES_NODA);
        assert_eq!(
            t,
            h("001a 0023 000b 00030472 0000 0006 0080 0043 0010 0003 0010 0000 0000")
        );
        assert_eq!(SRK_ATTRIBUTES_TPM2_TOOLS, 0x0003_0072);
        let cmd = create_primary(RH_OWNER, &t);
        assert_eq!(&cmd[..10], &h("8002 00000043 00000131")[..]);
        assert_eq!(&cmd[10..14], &RH_OWNER.to_be_bytes());
        // empty password session, then sensitive-create, template, outsideInfo, PCRs.
        assert_eq!(&cmd[14..27], &h("00000009 40000009 0000 01 0000")[..]);
        assert_eq!(&cmd[27..33], &h("0004 0000 0000")[..]);
        assert_eq!(&cmd[33..33 + t.len()], &t[..]);
        assert_eq!(&cmd[33 + t.len()..], &h("0000 00000000")[..]);
    }

    #[test]
    fn parses_an_rsa_public_area() {
        // RSA, SHA-256, attributes, empty policy, NULL symmetric, NULL scheme, 2048 bits,
        // exponent 0 (= 65537), 4-byte modulus (shortened for the test).
        let area = h("0001 000b 00060072 0000 0010 0010 0800 00000000 0004 c0ffee01");
        let mut r = Reader::new(&area);
        let p = parse_public(&mut r).unwrap();
        assert!(r.is_empty());
        assert_eq!(p.scheme, None);
        assert_eq!(
            p.key,
            PublicKey::Rsa {
                modulus: vec![0xc0, 0xff, 0xee, 0x01],
                exponent: 65537,
                bits: 2048
            }
        );
    }

    #[test]
    fn parses_an_ecc_public_area_with_a_fixed_scheme() {
        let area = h("0023 000b 00040072 0000 0010 0018 000b 0003 0010 0002 0102 0002 0304");
        let mut wrapped = Writer::default();
        wrapped.tpm2b(&area);
        let p = parse_tpm2b_public(&wrapped.0).unwrap();
        assert_eq!(p.scheme, Some((ALG_ECDSA, ALG_SHA256)));
        assert_eq!(
            p.key,
            PublicKey::Ecc {
                curve: ECC_NIST_P256,
                x: vec![1, 2],
                y: vec![3, 4]
            }
        );
        // A size prefix that does not cover the structure exactly is refused.
        let mut bad = wrapped.0.clone();
        bad.push(0);
        assert!(parse_tpm2b_public(&bad).is_err());
        assert!(parse_tpm2b_public(&wrapped.0[..wrapped.0.len() - 1]).is_err());
    }

    #[test]
    fn splits_responses_with_and_without_sessions() {
        let no_sess = h("8001 0000000e 00000000 deadbeef");
        assert_eq!(response_code(&no_sess), Ok(0));
        let r = parse_response(&no_sess, 0).unwrap();
        assert_eq!(r.params, &h("deadbeef")[..]);

        // Load: one handle, parameterSize 4, params, then the auth response.
        let sess = h("8002 0000001b 00000000 80000001 00000004 00020102 0000 01 0000");
        let r = parse_response(&sess, 1).unwrap();
        assert_eq!(r.handles, vec![0x8000_0001]);
        assert_eq!(r.params, &h("00020102")[..]);

        assert!(response_code(&h("8001 00000010 00000000")).is_err());
        assert!(response_code(&h("8001 0000")).is_err());
        assert!(parse_response(&h("8002 0000000e 00000000 0000"), 0).is_err());
    }

    #[test]
    fn parses_signatures() {
        let rsa = h("0014 000b 0003 010203");
        assert_eq!(parse_signature(&rsa), Ok(Signature::Rsa(vec![1, 2, 3])));
        let ec = h("0018 000b 0001 05 0002 0607");
        assert_eq!(
            parse_signature(&ec),
            Ok(Signature::Ecdsa {
                r: vec![5],
                s: vec![6, 7]
            })
        );
        assert!(parse_signature(&h("0018 000b 0005 01")).is_err());
    }

    #[test]
    fn response_codes_are_classified_whatever_the_position() {
        assert!(Rc(0x98E).is_auth_failure()); // AUTH_FAIL, session 1
        assert!(Rc(0x9A2).is_auth_failure()); // BAD_AUTH, session 1
        assert!(!Rc(0x0B098E).is_auth_failure()); // same code from another layer
        assert!(Rc(0x921).is_lockout());
        assert!(Rc(0x18B).is_missing_handle()); // HANDLE, handle 1
        assert!(!Rc(0x1CB).is_missing_handle()); // HANDLE as parameter 1
        assert!(Rc(0x910).is_missing_handle());
        assert_eq!(Rc(0x2D2).base(), 0x092);
        assert!(Rc(0x98E).to_string().contains("AUTH_FAIL"));
    }
}
