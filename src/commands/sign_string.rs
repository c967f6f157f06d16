//! `sign-string`: signs standard input with the key, as the Go helper does (hash with
//! `--digest`, then RSASSA-PKCS1-v1_5 or DER ECDSA), printed as `--format`. ML-DSA keys
//! sign the raw input (pure ML-DSA, empty context) and ignore `--digest`, as the Go helper
//! does; the output has no public-key digest suffix.

use std::io::{Read as _, Write as _};

use crate::cli::{SignDigest, SignFormat, SignStringArgs};
use crate::config::ConfigError;
use crate::error::Error;
use crate::identity::Identity;
use crate::signer::{Digest, Signer};

pub fn run(args: &SignStringArgs) -> Result<(), Error> {
    let id = &args.identity;
    super::refuse_unbuilt_features(id)?;
    if id.private_key.as_deref() == Some("-") || id.cert.certificate.as_deref() == Some("-") {
        return Err(ConfigError::NotSupported {
            flag: "--private-key -",
            why: "standard input carries the string to sign; pass the key as a file or env:NAME",
        }
        .into());
    }
    #[cfg(feature = "pkcs11")]
    if let Some(key) = id
        .private_key
        .as_deref()
        .filter(|k| crate::identity::pkcs11::Pkcs11Uri::is_uri(k))
    {
        let signer =
            crate::identity::pkcs11::load_signer(key, id.cert.pkcs11_lib.as_deref(), id.reuse_pin)
                .map_err(crate::identity::IdentityError::from)?;
        return sign_and_print(&signer, args);
    }
    let spec = id.spec();
    let signer: std::sync::Arc<dyn Signer> = match (&id.private_key, &id.cert.certificate) {
        (Some(key), _) => crate::identity::load_signer(&spec, key)?,
        (None, Some(_)) => Identity::load(&spec)?.signer,
        (None, None) => {
            return Err(ConfigError::Missing {
                flag: "--private-key",
            }
            .into());
        }
    };
    sign_and_print(signer.as_ref(), args)
}

/// Reads the string to sign from standard input, signs it and prints it in `--format`.
fn sign_and_print(signer: &dyn Signer, args: &SignStringArgs) -> Result<(), Error> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| Error::io("cannot read standard input", e))?;
    let digest = match args.digest {
        SignDigest::Sha256 => Digest::Sha256,
        SignDigest::Sha384 => Digest::Sha384,
        SignDigest::Sha512 => Digest::Sha512,
    };
    let signature = signer.sign(&input, digest)?;
    let hex = hex::encode(&signature);
    let output: Vec<u8> = match args.format {
        SignFormat::Text => hex.into_bytes(),
        SignFormat::Json => format!("\"{hex}\"").into_bytes(),
        SignFormat::Bin => signature,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&output)
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))
}
