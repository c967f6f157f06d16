//! The two ways instants are written here, each a `time` format description used both ways:
//! ISO 8601 in UTC to the second (`2026-12-05T01:02:03Z`: credential expirations, logs, the
//! cache) and SigV4's `X-Amz-Date` (`20261205T010203Z`).

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// `YYYY-MM-DDTHH:MM:SSZ`: the one form every SDK parses (botocore reads expirations with a
/// fixed pattern that has no fractional seconds; the JS SDK's parser needs the `Z`).
const ISO8601: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `YYYYMMDDTHHMMSSZ`, SigV4's basic format.
const AMZ_DATE: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// `t` in UTC, `YYYY-MM-DDTHH:MM:SSZ` (any fraction dropped, never `+00:00`).
pub fn iso8601(t: OffsetDateTime) -> String {
    format_utc(t, ISO8601)
}

/// `t` in UTC, `YYYYMMDDTHHMMSSZ`: the `X-Amz-Date` form.
pub fn amz_date(t: OffsetDateTime) -> String {
    format_utc(t, AMZ_DATE)
}

/// An `X-Amz-Date` value to an instant; `None` for anything but exactly `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    // The parser would take a year of more than four digits; the header has exactly 16.
    if s.len() != 16 {
        return None;
    }
    PrimitiveDateTime::parse(s, AMZ_DATE)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn format_utc(t: OffsetDateTime, description: &[BorrowedFormatItem<'_>]) -> String {
    // An instant near the end of the supported range may not be expressible in UTC when it
    // carries an offset; it is then written with its own clock time rather than panicking.
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    // Cannot fail: every component these descriptions name is in an `OffsetDateTime`, and a
    // `String` takes any output.
    t.format(description).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn iso8601_is_utc_to_the_second_with_a_z() {
        assert_eq!(
            iso8601(datetime!(2026-12-05 01:02:03 UTC)),
            "2026-12-05T01:02:03Z"
        );
        // Converted to UTC, the fraction dropped (not rounded).
        assert_eq!(
            iso8601(datetime!(2026-01-02 03:04:05.999 +02:00)),
            "2026-01-02T01:04:05Z"
        );
        assert_eq!(
            iso8601(datetime!(0999-01-01 00:00:00 UTC)),
            "0999-01-01T00:00:00Z"
        );
    }

    #[test]
    fn amz_date_is_the_basic_format_in_utc() {
        assert_eq!(
            amz_date(datetime!(2026-12-05 01:02:03 UTC)),
            "20261205T010203Z"
        );
        assert_eq!(
            amz_date(datetime!(2026-12-05 01:02:03.75 -05:00)),
            "20261205T060203Z"
        );
    }

    #[test]
    fn amz_dates_parse_back_and_nothing_else_does() {
        let t = datetime!(2026-11-24 12:33:52 UTC);
        assert_eq!(parse_amz_date(&amz_date(t)), Some(t));
        for bad in [
            "2026-11-24T12:33:52Z",
            "20261124T123352",
            "20261124T123352z",
            "20261124T123352+0000",
            "20261324T123352Z",
            "020261124T12335Z",
            "20261124T123352Z ",
            "",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }
}
