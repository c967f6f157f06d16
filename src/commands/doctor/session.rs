//! The session group: one real CreateSession with the identity and flags under test, its
//! failure translated by the session layer's hints. `--no-session` skips it.
//!
//! Security: the credentials obtained are dropped at once; only their access key id and
//! expiry are reported.

use std::sync::Arc;

use super::{Found, Kind, Report};
use crate::chain::Chain;
use crate::cli::DoctorArgs;
use crate::clock::Clock;
use crate::session::SessionClient;

const KIND: Kind = Kind::Runtime;
const NAME: &str = "session";

pub(super) async fn check(
    args: &DoctorArgs,
    found: &Found,
    clock: Arc<dyn Clock>,
    report: &mut Report,
) {
    if args.no_session {
        return report.skip(NAME, KIND, "--no-session: CreateSession not called");
    }
    let (Some(identity), Some(settings), Some(endpoint)) =
        (&found.identity, &found.settings, &found.endpoint)
    else {
        return report.skip(
            NAME,
            KIND,
            "needs the flags, the certificate, the key and the endpoint",
        );
    };
    if !found.identity_usable {
        return report.skip(
            NAME,
            KIND,
            "the certificate or key checks failed: the service would refuse it",
        );
    }
    if !found.reachable {
        return report.skip(
            NAME,
            KIND,
            "the endpoint cannot be reached (see the endpoint lines)",
        );
    }
    let client = match SessionClient::new(endpoint, clock) {
        Ok(client) => client,
        Err(e) => {
            let kind = if e.is_configuration() {
                Kind::Config
            } else {
                KIND
            };
            return report.fail_maybe(NAME, kind, e.to_string(), e.hint());
        }
    };
    match client.create_session(identity, settings).await {
        Ok(credentials) => report.ok(
            NAME,
            KIND,
            format!(
                "CreateSession issued credentials for {}: access key id {}, expiring {}",
                settings.role_arn,
                credentials.access_key_id,
                crate::credentials::format_expiration(credentials.expiration)
            ),
        ),
        Err(e) => {
            let kind = if e.is_configuration() {
                Kind::Config
            } else {
                KIND
            };
            report.fail_maybe(NAME, kind, Chain::new(&e, None).to_string(), e.hint());
        }
    }
}
