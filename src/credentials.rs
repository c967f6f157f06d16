//! Temporary AWS credentials: a type whose secrets cannot be printed by accident, and the
//! output shapes the SDKs read.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// A set of STS credentials from CreateSession.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub expiration: OffsetDateTime,
    /// The role the credentials belong to (`credentialSet[0].roleArn`).
    pub role_arn: Option<String>,
}

// Security: the secret key and the session token never appear in Debug output.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expiration", &format_expiration(self.expiration))
            .field("role_arn", &self.role_arn)
            .finish()
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`: the one form every SDK parses (no fraction, no `+00:00`).
pub use crate::timefmt::iso8601 as format_expiration;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: String,
}

impl Credentials {
    /// The `credential_process` JSON (`Version: 1`), exactly the Go helper's field order.
    /// The string holds secrets and is wiped when dropped.
    pub fn to_process_json(&self) -> Zeroizing<String> {
        let out = ProcessOutput {
            version: 1,
            access_key_id: &self.access_key_id,
            secret_access_key: self.secret_access_key.expose_secret(),
            session_token: self.session_token.expose_secret(),
            expiration: format_expiration(self.expiration),
        };
        // Serialising plain strings into a String cannot fail.
        Zeroizing::new(serde_json::to_string(&out).unwrap_or_default())
    }

    /// The same JSON with the secret key and token replaced, for showing to people.
    pub fn to_redacted_json(&self) -> String {
        let out = ProcessOutput {
            version: 1,
            access_key_id: &self.access_key_id,
            secret_access_key: "<redacted>",
            session_token: "<redacted>",
            expiration: format_expiration(self.expiration),
        };
        serde_json::to_string_pretty(&out).unwrap_or_default()
    }

    /// Time left before expiry at `now` (zero when expired).
    pub fn remaining(&self, now: OffsetDateTime) -> time::Duration {
        (self.expiration - now).max(time::Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI-secret".to_string()),
            session_token: SecretString::from("IQoJb3JpZ2luX2VjE-token".to_string()),
            expiration: time::macros::datetime!(2026-11-24 13:33:52.5 UTC),
            role_arn: None,
        }
    }

    #[test]
    fn process_json_matches_the_go_helper_shape() {
        assert_eq!(
            sample().to_process_json().as_str(),
            r#"{"Version":1,"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"wJalrXUtnFEMI-secret","SessionToken":"IQoJb3JpZ2luX2VjE-token","Expiration":"2026-11-24T13:33:52Z"}"#
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_redacted_output() {
        let c = sample();
        for text in [format!("{c:?}"), c.to_redacted_json()] {
            assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
            assert!(!text.contains("IQoJb3JpZ2lu"), "{text}");
            assert!(text.contains("ASIAEXAMPLE"));
        }
    }
}
