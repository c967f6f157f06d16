//! What the emulated service answers: the CreateSession 201 body with freshly made-up
//! credentials, and the `{"message": ...}` error body. The credentials are random strings of
//! the real shapes (`ASIA...` key id, 40-character secret, long token); they are valid nowhere.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::verify::Accepted;

const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE64_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_from(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .filter_map(|_| fastrand::choice(alphabet).copied().map(char::from))
        .collect()
}

/// A random version-4 UUID string, for request ids and subject ARNs.
pub(crate) fn uuid_like() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The session the service issues for an accepted request, as the 201 JSON body. The
/// credentials live `lifetime` seconds when given (a test aid), else the requested duration.
pub fn session_body(
    accepted: &Accepted,
    now: OffsetDateTime,
    lifetime: Option<u32>,
) -> serde_json::Value {
    let role_name = accepted
        .role_arn
        .rsplit('/')
        .next()
        .unwrap_or(&accepted.role_arn);
    let session = &accepted.role_session_name;
    let lifetime = lifetime.unwrap_or(accepted.duration_seconds);
    let expiration = now + Duration::seconds(i64::from(lifetime));
    json!({
        "credentialSet": [{
            "assumedRoleUser": {
                "arn": format!("arn:{}:sts::{}:assumed-role/{role_name}/{session}", accepted.partition, accepted.account),
                "assumedRoleId": format!("AROA{}:{session}", random_from(UPPER_DIGITS, 17)),
            },
            "credentials": {
                "accessKeyId": format!("ASIA{}", random_from(UPPER_DIGITS, 16)),
                "expiration": crate::timefmt::iso8601(expiration),
                "secretAccessKey": random_from(BASE64_CHARS, 40),
                "sessionToken": random_from(BASE64_CHARS, 400),
            },
            "packedPolicySize": 0,
            "roleArn": accepted.role_arn,
            "sourceIdentity": accepted.source_identity,
        }],
        "subjectArn": format!(
            "arn:{}:rolesanywhere:{}:{}:subject/{}",
            accepted.partition,
            accepted.region,
            accepted.account,
            uuid_like()
        ),
    })
}

/// The service's error body.
pub fn error_body(message: &str) -> serde_json::Value {
    json!({ "message": message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::KeyKind;

    #[test]
    fn session_body_has_the_service_shape() {
        let accepted = Accepted {
            role_arn: "arn:aws:iam::111122223333:role/team/exam".into(),
            role_session_name: "9c2b".into(),
            duration_seconds: 3600,
            serial_decimal: "40236".into(),
            source_identity: "CN=leaf".into(),
            key: KeyKind::EcP256,
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "111122223333".into(),
        };
        let now = time::macros::datetime!(2026-11-24 12:33:52 UTC);
        let body = session_body(&accepted, now, None);
        let set = &body["credentialSet"][0];
        assert_eq!(
            set["assumedRoleUser"]["arn"],
            "arn:aws:sts::111122223333:assumed-role/exam/9c2b"
        );
        let id = set["assumedRoleUser"]["assumedRoleId"].as_str().unwrap();
        assert!(id.starts_with("AROA") && id.ends_with(":9c2b") && id.len() == 21 + 5);
        let creds = &set["credentials"];
        let key = creds["accessKeyId"].as_str().unwrap();
        assert!(key.starts_with("ASIA") && key.len() == 20);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        assert_eq!(creds["secretAccessKey"].as_str().unwrap().len(), 40);
        assert!(creds["sessionToken"].as_str().unwrap().len() >= 200);
        assert_eq!(creds["expiration"], "2026-11-24T13:33:52Z");
        assert_eq!(set["packedPolicySize"], 0);
        assert_eq!(set["sourceIdentity"], "CN=leaf");
        let subject = body["subjectArn"].as_str().unwrap();
        assert!(subject.starts_with("arn:aws:rolesanywhere:us-east-1:111122223333:subject/"));
        assert_eq!(subject.rsplit('/').next().unwrap().len(), 36);
    }
}
