//! PKCS#12 bundles: tried with the empty password, then with the seeds' password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent::identity::file::PasswordSource;
use rolesanywhere_agent::identity::pkcs12;
use rolesanywhere_agent::signer::Signer;
use secrecy::SecretString;

struct Password;

impl PasswordSource for Password {
    fn password(&self) -> Option<SecretString> {
        Some(SecretString::from("fuzz"))
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = pkcs12::open(data, "fuzz input", &Password, false) {
        let _ = (bundle.certificate.subject(), bundle.chain.len());
        let _ = bundle.key.key_kind();
    }
});
