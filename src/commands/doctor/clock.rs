//! The clock group: the endpoint's `Date` header against this host's clock, read at the
//! middle of the request. The service refuses signatures more than 5 minutes off; a minute
//! already deserves a look (NTP is not keeping up).

use time::OffsetDateTime;

use super::endpoint::Reached;
use super::{Kind, NETWORK_TIMEOUT, Report};
use crate::clock::Clock;

const KIND: Kind = Kind::Runtime;
/// Past this, a warning.
const WARN_OVER: i64 = 60;
/// Past this, the service refuses every signature (its documented skew limit).
const FAIL_OVER: i64 = 300;

pub(super) fn skipped(report: &mut Report) {
    report.skip("clock", KIND, "needs an endpoint to ask the time");
}

pub(super) async fn check(reached: &Reached, clock: &dyn Clock, report: &mut Report) {
    if !reached.reachable {
        report.skip(
            "clock",
            KIND,
            "needs the endpoint to answer (see the endpoint lines)",
        );
        return;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(NETWORK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if !reached.settings.with_proxy {
        builder = builder.no_proxy();
    }
    let tls = match &reached.tls {
        Some(config) => Ok(config.clone()),
        None => crate::session::tls::plain_http_config(),
    };
    let client = match tls.map(|t| builder.tls_backend_preconfigured(t).build()) {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            return report.fail(
                "clock",
                KIND,
                format!("cannot set up an HTTP client: {e}"),
                "report this as a bug",
            );
        }
        Err(e) => return report.fail_maybe("clock", KIND, e.to_string(), e.hint()),
    };
    let url = format!("{}/", reached.settings.base_url);
    let sent = clock.now();
    let answer = client.get(&url).send().await;
    let received = clock.now();
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            return report.fail(
                "clock",
                KIND,
                format!(
                    "cannot ask {url} for its time: {}",
                    crate::chain::Chain::new(&e, None)
                ),
                "see the endpoint lines above",
            );
        }
    };
    let Some(date) = response
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return report.warn(
            "clock",
            KIND,
            "the endpoint sent no Date header: cannot compare clocks",
            "check this host's clock by hand (timedatectl status, chronyc tracking)",
        );
    };
    let Some(theirs) = parse_http_date(&date) else {
        return report.warn(
            "clock",
            KIND,
            format!(
                "the endpoint's Date header '{}' is not an HTTP date",
                date.escape_debug()
            ),
            "check this host's clock by hand (timedatectl status, chronyc tracking)",
        );
    };
    let ours = sent + (received - sent) / 2;
    judge(theirs, ours, report);
}

/// Reports the offset of `theirs` (the endpoint) from `ours`, whole seconds.
fn judge(theirs: OffsetDateTime, ours: OffsetDateTime, report: &mut Report) {
    // The header truncates to whole seconds: the endpoint's time is half a second later
    // on average, and a second of difference either way is noise.
    let offset = ((theirs - ours).as_seconds_f64() + 0.5).round() as i64;
    let side = match offset {
        o if o > 0 => format!("this host's clock is {o} s behind the endpoint's"),
        o if o < 0 => format!("this host's clock is {} s ahead of the endpoint's", -o),
        _ => "this host's clock agrees with the endpoint's".to_string(),
    };
    let saw = format!(
        "{side} (offset {offset:+} s; endpoint {}, here {})",
        crate::credentials::format_expiration(theirs),
        crate::credentials::format_expiration(ours)
    );
    let fix = "set this host's clock right: check NTP (timedatectl status, chronyc tracking); the service refuses signatures more than 5 minutes off";
    match offset.abs() {
        o if o > FAIL_OVER => report.fail("clock", KIND, saw, fix),
        o if o > WARN_OVER => report.warn("clock", KIND, saw, fix),
        _ => report.ok("clock", KIND, saw),
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110's IMF-fixdate, the form servers send).
fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(value.trim(), format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn reads_imf_fixdate() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(datetime!(1994-11-06 08:49:37 UTC))
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn skew_is_judged_by_its_size_and_names_the_side() {
        // The header has whole seconds; this host's clock has fractions.
        let whole = datetime!(2030-01-01 12:00:00 UTC);
        let here = datetime!(2030-01-01 12:00:00.25 UTC);
        let at = |s: i64| whole + time::Duration::seconds(s);
        let mut r = Report::default();
        judge(at(30), here, &mut r);
        judge(at(-90), here, &mut r);
        judge(at(600), here, &mut r);
        let got: Vec<_> = r.checks.iter().map(|c| c.status).collect();
        use super::super::Status::*;
        assert_eq!(got, vec![Ok, Warn, Fail]);
        assert!(
            r.checks[1].saw.contains("90 s ahead"),
            "{}",
            r.checks[1].saw
        );
        assert!(
            r.checks[2].saw.contains("600 s behind"),
            "{}",
            r.checks[2].saw
        );
        assert!(r.checks[2].saw.contains("+600"), "{}", r.checks[2].saw);
    }
}
