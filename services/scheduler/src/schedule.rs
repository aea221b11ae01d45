//! When a job runs: a cron expression in an explicit IANA time zone,
//! `every <duration>`, or once (`at <RFC 3339 time>`, `in <duration>`).
//! Pure: every answer is a function of the schedule and the instant asked
//! about, so DST, `L`/`W`/`#` and leap days are tested on fixed instants.
//!
//! Cron follows the OCPS rules (croner): a daily job in a spring-forward gap
//! runs at the first instant after it, one in a fall-back repeat runs once,
//! and an interval job (`*/15 2 * * *`) runs in both repeated hours.

use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// The shortest `every`.
pub const MIN_EVERY: SignedDuration = SignedDuration::from_secs(1);

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron {
        /// As written (`30 2 * * *`, `@daily`).
        expr: String,
        cron: Box<Cron>,
        tz: TimeZone,
        /// The zone's IANA name, shown with every time.
        zone: String,
    },
    /// Slots at the anchor (the job's creation) plus whole multiples.
    Every(SignedDuration),
    /// One slot.
    At(Timestamp),
}

/// Why a schedule is refused, naming the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "the schedule is empty; write a cron expression (`0 9 * * 1-5`, `@daily`), `every 10m`, `at 2026-12-24T09:00:00+01:00` or `in 2h`"
    )]
    Empty,
    #[error(
        "cron expression `{expr}`: {why} (5 or 6 fields: [second] minute hour day-of-month month day-of-week; or @yearly, @monthly, @weekly, @daily, @hourly)"
    )]
    Cron { expr: String, why: String },
    #[error("cron expression `{expr}` can never fire (no date matches it)")]
    NeverFires { expr: String },
    #[error("time zone `{zone}`: {why} (an IANA name such as Europe/Berlin or America/New_York)")]
    TimeZone { zone: String, why: String },
    #[error("duration `{text}`: {why} (like 30s, 10m, 1h30m, 2d)")]
    Duration { text: String, why: String },
    #[error("`every {text}` is shorter than the shortest interval, 1 s")]
    TooShort { text: String },
    #[error("time `{text}`: {why} (RFC 3339, like 2026-12-24T09:00:00+01:00)")]
    At { text: String, why: String },
    #[error("`at {text}` is in the past")]
    Past { text: String },
}

impl Schedule {
    /// Parses `text` as of `now`; a cron expression runs in `zone` (by
    /// default the host's).
    pub fn parse(
        text: &str,
        zone: Option<&str>,
        now: Timestamp,
    ) -> Result<Schedule, ScheduleError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let rest = rest.trim();
        match word.to_ascii_lowercase().as_str() {
            "every" => {
                let every = duration(rest)?;
                if every < MIN_EVERY {
                    return Err(ScheduleError::TooShort { text: rest.into() });
                }
                Ok(Schedule::Every(every))
            }
            "in" => Ok(Schedule::At(to_ms(now + duration(rest)?))),
            "at" => {
                let at = Timestamp::from_str(rest).map_err(|e| ScheduleError::At {
                    text: rest.into(),
                    why: e.to_string(),
                })?;
                if at <= now {
                    return Err(ScheduleError::Past { text: rest.into() });
                }
                Ok(Schedule::At(to_ms(at)))
            }
            _ => cron(text, zone, now),
        }
    }

    /// The first slot strictly after `t`. `anchor` is where an `every`
    /// counts from. `None`: no slot is left (a one-shot that has passed).
    pub fn next_after(&self, t: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron
                .find_next_occurrence(&t.to_zoned(tz.clone()), false)
                .ok()
                .map(|z| z.timestamp()),
            Schedule::Every(every) => {
                if t < anchor {
                    return Some(anchor);
                }
                let step = every.as_nanos();
                let since = t.duration_since(anchor).as_nanos();
                let k = since / step + 1;
                anchor
                    .checked_add(SignedDuration::from_nanos_i128(k * step))
                    .ok()
            }
            Schedule::At(at) => (*at > t).then_some(*at),
        }
    }

    /// The schedule in words, with its zone ("At 09:00, Monday through
    /// Friday (Europe/Berlin)").
    pub fn describe(&self) -> String {
        match self {
            Schedule::Cron { cron, zone, .. } => format!("{} ({zone})", cron.describe()),
            Schedule::Every(d) => format!("every {}", friendly(*d)),
            Schedule::At(t) => format!("once, at {t}"),
        }
    }

    /// The text to store, which parses back to the same schedule at any
    /// later time (`in 2h` becomes the `at` it means).
    pub fn canonical(&self) -> String {
        match self {
            Schedule::Cron { expr, .. } => expr.clone(),
            Schedule::Every(d) => format!("every {}", friendly(*d)),
            Schedule::At(t) => format!("at {t}"),
        }
    }

    /// What to store to parse it back: the text, and the zone of a cron.
    pub fn zone(&self) -> Option<&str> {
        match self {
            Schedule::Cron { zone, .. } => Some(zone),
            _ => None,
        }
    }
}

/// Slots are kept in milliseconds: a finer one would never match its row.
fn to_ms(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

fn cron(expr: &str, zone: Option<&str>, now: Timestamp) -> Result<Schedule, ScheduleError> {
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(expr).map_err(|e| ScheduleError::Cron {
        expr: expr.into(),
        why: e.to_string(),
    })?;
    let (tz, zone) = match zone {
        Some(name) => (
            TimeZone::get(name).map_err(|e| ScheduleError::TimeZone {
                zone: name.into(),
                why: e.to_string(),
            })?,
            name.to_string(),
        ),
        // The host's, by its name, so that what is stored means the same
        // when read back; a host whose zone has no name runs in UTC, and
        // says so.
        None => match TimeZone::system().iana_name() {
            Some(name) => (TimeZone::system(), name.to_string()),
            None => (TimeZone::UTC, "UTC".to_string()),
        },
    };
    let s = Schedule::Cron {
        expr: expr.into(),
        cron: Box::new(cron),
        tz,
        zone,
    };
    if s.next_after(now, now).is_none() {
        return Err(ScheduleError::NeverFires { expr: expr.into() });
    }
    Ok(s)
}

fn duration(text: &str) -> Result<SignedDuration, ScheduleError> {
    let fail = |why: String| ScheduleError::Duration {
        text: text.into(),
        why,
    };
    // Days are accepted as 24 hours (a duration, not a calendar unit).
    let d = match text
        .strip_suffix('d')
        .and_then(|n| n.trim().parse::<i64>().ok())
    {
        Some(days) => SignedDuration::from_hours(days.saturating_mul(24)),
        None => SignedDuration::from_str(text).map_err(|e| fail(e.to_string()))?,
    };
    if d.is_negative() || d.is_zero() {
        return Err(fail("it must be positive".into()));
    }
    Ok(d)
}

/// `1h 30m`, `10s`.
fn friendly(d: SignedDuration) -> String {
    format!("{d:#}")
}

#[cfg(test)]
mod tests;
