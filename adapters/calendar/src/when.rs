//! Times as tools give them: a date (all day), a wall time read in a zone
//! (the user's unless the call names one), or a time with an offset. A
//! time without a zone is never read as UTC; a wall time the clocks skip
//! is an error that says so.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// A whole day.
    Date(NaiveDate),
    /// A wall time in a zone.
    Local(NaiveDateTime, Tz),
}

const FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
];

/// Reads `s` for the field `what`; wall times are in `zone`.
pub fn parse(what: &str, s: &str, zone: Tz) -> Result<When, String> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(When::Date(d));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        // An instant: kept as the wall time it is in the zone, so the
        // event lives in that zone like every other.
        return Ok(When::Local(t.with_timezone(&zone).naive_local(), zone));
    }
    let naive = FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .ok_or_else(|| {
            format!(
                "{what}: '{s}' is not a time: use 2026-12-04T14:30 (in {}), 2026-12-04T14:30:00+01:00 or, for a whole day, 2026-12-04",
                zone.name()
            )
        })?;
    if let LocalResult::None = zone.from_local_datetime(&naive) {
        return Err(format!(
            "{what}: {} does not exist in {} (the clocks skip it)",
            naive.format("%Y-%m-%d %H:%M"),
            zone.name()
        ));
    }
    Ok(When::Local(naive, zone))
}

impl When {
    /// The instant it starts at (a date at midnight in `zone`).
    pub fn utc(&self, zone: Tz) -> DateTime<Utc> {
        let (naive, z) = match *self {
            When::Date(d) => (d.and_hms_opt(0, 0, 0).unwrap_or_default(), zone),
            When::Local(n, z) => (n, z),
        };
        // The earlier of two readings of a repeated hour; a skipped one
        // (only a date's midnight can be) moves on by the gap.
        match z.from_local_datetime(&naive) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => z
                .from_local_datetime(&(naive + chrono::TimeDelta::hours(1)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
        }
    }

    pub fn is_date(&self) -> bool {
        matches!(self, When::Date(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    #[test]
    fn times_are_read_in_the_zone_never_as_utc() {
        let w = parse("start", "2026-12-04T14:30", Berlin).unwrap();
        assert_eq!(w.utc(Berlin).to_rfc3339(), "2026-12-04T13:30:00+00:00");
        let w = parse("start", "2026-07-04 14:30", Berlin).unwrap();
        assert_eq!(w.utc(Berlin).to_rfc3339(), "2026-07-04T12:30:00+00:00");
        // An offset is an instant, kept as Berlin's wall time.
        let w = parse("start", "2026-12-04T14:30:00Z", Berlin).unwrap();
        assert_eq!(
            w,
            When::Local(
                NaiveDate::from_ymd_opt(2026, 12, 4)
                    .unwrap()
                    .and_hms_opt(15, 30, 0)
                    .unwrap(),
                Berlin
            )
        );
        let d = parse("start", "2026-12-24", Berlin).unwrap();
        assert!(d.is_date());
        assert_eq!(d.utc(Berlin).to_rfc3339(), "2026-12-23T23:00:00+00:00");
    }

    #[test]
    fn a_skipped_wall_time_and_nonsense_are_named() {
        let e = parse("start", "2026-03-29T02:30", Berlin).unwrap_err();
        assert!(
            e.contains("2026-03-29 02:30 does not exist in Europe/Berlin"),
            "{e}"
        );
        let e = parse("end", "next friday", Berlin).unwrap_err();
        assert!(e.starts_with("end: 'next friday' is not a time"), "{e}");
        // The repeated hour of October: the first reading.
        let w = parse("start", "2026-10-25T02:30", Berlin).unwrap();
        assert_eq!(w.utc(Berlin).to_rfc3339(), "2026-10-25T00:30:00+00:00");
    }
}
