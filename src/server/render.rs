//! Response bodies for one credential set, rendered once and reused until the source hands
//! out a different set.
//!
//! Credentials change about once an hour while the IMDS GET is the hot path, so every
//! request after the first one costs a pointer comparison and a reference-count increment.
//! The buffers hold secrets: they are sized up front (no reallocation leaves copies behind)
//! and wiped when the last response using them is dropped.

use std::sync::{Arc, PoisonError, RwLock};

use hyper::body::Bytes;
use secrecy::ExposeSecret;
use serde::Serialize;
use time::OffsetDateTime;

use super::body::secret;
use crate::credentials::{Credentials, format_expiration};

/// What the bodies need besides the credentials themselves.
pub struct RenderContext<'a> {
    pub role_arn: &'a str,
    /// Empty when unknown: then no `AccountId` is sent (an empty one would mislead SDKs that
    /// route by account).
    pub account_id: &'a str,
}

/// All bodies for one credential set.
pub struct Rendered {
    creds: Arc<Credentials>,
    /// `GET /latest/meta-data/iam/security-credentials/{role}`.
    pub imds: Bytes,
    /// The `-extended` form: `imds` plus `AccountId`; `None` when the account is unknown.
    pub imds_extended: Option<Bytes>,
    /// `GET /v1/credentials` (container endpoint).
    pub container: Bytes,
    /// `GET /v1/process-credentials` (unix socket): the credential_process JSON.
    pub process: Bytes,
    /// `GET /healthz`: no secrets.
    pub health: Bytes,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Imds<'a> {
    code: &'static str,
    last_updated: &'a str,
    #[serde(rename = "Type")]
    kind: &'static str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Container<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: &'a str,
    role_arn: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    expiration: &'a str,
}

/// Serialises into a buffer allocated once with room to spare, then makes it wipe-on-drop.
fn to_secret_json(value: &impl Serialize, estimate: usize) -> Bytes {
    let mut buf = Vec::with_capacity(estimate);
    // Serialising borrowed strings into a Vec cannot fail; an empty body would be answered as
    // a server error by the callers' status logic, never as empty keys with 200.
    if serde_json::to_writer(&mut buf, value).is_err() {
        buf.clear();
    }
    secret(buf)
}

impl Rendered {
    /// Renders every body for `creds`; `now` is the `LastUpdated` of the IMDS form (the time
    /// this agent first served this set).
    pub fn new(creds: Arc<Credentials>, ctx: &RenderContext<'_>, now: OffsetDateTime) -> Self {
        let expiration = format_expiration(creds.expiration);
        let last_updated = format_expiration(now);
        let secret_key = creds.secret_access_key.expose_secret();
        let token = creds.session_token.expose_secret();
        let account_id = (!ctx.account_id.is_empty()).then_some(ctx.account_id);
        let role_arn = creds.role_arn.as_deref().unwrap_or(ctx.role_arn);
        // JSON adds quotes, names and punctuation: well under 512 bytes, plus the values.
        let estimate = 512
            + creds.access_key_id.len()
            + secret_key.len()
            + token.len()
            + role_arn.len()
            + ctx.account_id.len();
        let mut imds = Imds {
            code: "Success",
            last_updated: &last_updated,
            kind: "AWS-HMAC",
            access_key_id: &creds.access_key_id,
            secret_access_key: secret_key,
            token,
            expiration: &expiration,
            account_id: None,
        };
        let imds_plain = to_secret_json(&imds, estimate);
        imds.account_id = account_id;
        let imds_extended = account_id.map(|_| to_secret_json(&imds, estimate));
        let container = to_secret_json(
            &Container {
                access_key_id: &creds.access_key_id,
                secret_access_key: secret_key,
                token,
                expiration: &expiration,
                role_arn,
                account_id,
            },
            estimate,
        );
        let process = {
            let json = creds.to_process_json();
            secret(json.as_bytes().to_vec())
        };
        let health = Bytes::from(
            serde_json::to_vec(&Health {
                status: "ok",
                expiration: &expiration,
            })
            .unwrap_or_default(),
        );
        Rendered {
            creds,
            imds: imds_plain,
            imds_extended,
            container,
            process,
            health,
        }
    }
}

/// The bodies for the credential set the source handed out last.
#[derive(Default)]
pub struct RenderCache {
    current: RwLock<Option<Arc<Rendered>>>,
}

impl RenderCache {
    /// The bodies for `creds`, rendering them if `creds` is not the set rendered last.
    pub fn get(
        &self,
        creds: Arc<Credentials>,
        ctx: &RenderContext<'_>,
        now: OffsetDateTime,
    ) -> Arc<Rendered> {
        {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = current.as_ref()
                && Arc::ptr_eq(&r.creds, &creds)
            {
                return r.clone();
            }
        }
        let rendered = Arc::new(Rendered::new(creds, ctx, now));
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Two requests may race to render a new set: either result is correct; keep one.
        *current = Some(rendered.clone());
        rendered
    }

    /// Forgets the rendered bodies (when the source has nothing valid), so expired secrets
    /// do not linger in memory longer than the responses that carried them.
    pub fn clear(&self) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn creds(secret: &str) -> Arc<Credentials> {
        Arc::new(Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretString::from(secret.to_string()),
            session_token: SecretString::from("session/token+==".to_string()),
            expiration: time::macros::datetime!(2030-01-02 03:04:05.678 UTC),
            role_arn: None,
        })
    }

    const CTX: RenderContext<'static> = RenderContext {
        role_arn: "arn:aws:iam::123456789012:role/app",
        account_id: "123456789012",
    };

    fn json(b: &Bytes) -> serde_json::Value {
        serde_json::from_slice(b).expect("valid JSON")
    }

    #[test]
    fn bodies_have_the_shapes_sdks_read() {
        let now = time::macros::datetime!(2030-01-02 02:00:00.5 UTC);
        let r = Rendered::new(creds("s3cr3t"), &CTX, now);
        let imds = std::str::from_utf8(&r.imds).expect("utf8");
        assert_eq!(
            imds,
            r#"{"Code":"Success","LastUpdated":"2030-01-02T02:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s3cr3t","Token":"session/token+==","Expiration":"2030-01-02T03:04:05Z"}"#
        );
        let ext = json(r.imds_extended.as_ref().expect("account known"));
        assert_eq!(ext["AccountId"], "123456789012");
        assert_eq!(ext["Token"], "session/token+==");
        let c = json(&r.container);
        assert_eq!(c["AccessKeyId"], "ASIAEXAMPLE");
        assert_eq!(c["SecretAccessKey"], "s3cr3t");
        assert_eq!(c["Token"], "session/token+==");
        assert_eq!(c["Expiration"], "2030-01-02T03:04:05Z");
        assert_eq!(c["RoleArn"], CTX.role_arn);
        assert_eq!(c["AccountId"], "123456789012");
        let p = json(&r.process);
        assert_eq!(p["Version"], 1);
        assert_eq!(p["SessionToken"], "session/token+==");
        let h = std::str::from_utf8(&r.health).expect("utf8");
        assert_eq!(h, r#"{"status":"ok","expiration":"2030-01-02T03:04:05Z"}"#);
    }

    #[test]
    fn unknown_account_means_no_extended_body_and_no_account_id() {
        let ctx = RenderContext {
            role_arn: "arn:aws:iam::123456789012:role/app",
            account_id: "",
        };
        let r = Rendered::new(creds("x"), &ctx, OffsetDateTime::now_utc());
        assert!(r.imds_extended.is_none());
        assert!(json(&r.container).get("AccountId").is_none());
    }

    #[test]
    fn the_role_arn_of_the_session_wins_over_the_configured_one() {
        let mut c = (*creds("x")).clone();
        c.role_arn = Some("arn:aws:iam::123456789012:role/other".into());
        let r = Rendered::new(Arc::new(c), &CTX, OffsetDateTime::now_utc());
        assert_eq!(
            json(&r.container)["RoleArn"],
            "arn:aws:iam::123456789012:role/other"
        );
    }

    #[test]
    fn cache_renders_once_per_credential_set() {
        let cache = RenderCache::default();
        let now = OffsetDateTime::now_utc();
        let a = creds("first");
        let r1 = cache.get(a.clone(), &CTX, now);
        let r2 = cache.get(a.clone(), &CTX, now + time::Duration::minutes(5));
        assert!(Arc::ptr_eq(&r1, &r2));
        let b = creds("second");
        let r3 = cache.get(b, &CTX, now);
        assert!(!Arc::ptr_eq(&r1, &r3));
        assert_eq!(json(&r3.imds)["SecretAccessKey"], "second");
        cache.clear();
        let r4 = cache.get(a, &CTX, now);
        assert!(!Arc::ptr_eq(&r1, &r4));
    }
}
