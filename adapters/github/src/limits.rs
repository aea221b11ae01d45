//! GitHub's rate limits, as pure decisions: what a response's headers say
//! is left, whether a refused call is waited out or fails, and the words
//! for when the limit resets.
//!
//! - Primary limit: `x-ratelimit-remaining: 0` on a 403 or 429; it resets
//!   at `x-ratelimit-reset` (Unix seconds).
//! - Secondary limit: a 403 or 429 with `retry-after` (seconds), or one
//!   whose message says "secondary rate limit" without it (GitHub asks
//!   for at least a minute then).

use std::time::Duration;

/// What a response said about the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub remaining: Option<u64>,
    /// Unix seconds.
    pub reset: Option<u64>,
    pub retry_after: Option<u64>,
}

/// A refused call: wait this long and send it again, or give up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Wait(Duration),
    Fail(String),
}

/// The wait GitHub asks for after a secondary limit without `retry-after`.
pub const SECONDARY_WAIT: Duration = Duration::from_secs(60);

/// Whether a response is a rate-limit refusal, and what to do: `None` if
/// it is not one. `left` is what remains of the call's deadline.
pub fn refused(
    status: u16,
    seen: Seen,
    message: &str,
    now: u64,
    left: Duration,
) -> Option<Verdict> {
    if status != 403 && status != 429 {
        return None;
    }
    let secondary = message
        .to_ascii_lowercase()
        .contains("secondary rate limit");
    let wait = if let Some(s) = seen.retry_after {
        Duration::from_secs(s)
    } else if seen.remaining == Some(0) {
        Duration::from_secs(seen.reset.unwrap_or(now).saturating_sub(now) + 1)
    } else if secondary || status == 429 {
        SECONDARY_WAIT
    } else {
        // A 403 for want of permission.
        return None;
    };
    Some(decide(wait, seen, secondary, now, left))
}

/// Before sending: the last response said nothing is left until `reset`.
pub fn exhausted(seen: Seen, now: u64, left: Duration) -> Option<Verdict> {
    match (seen.remaining, seen.reset) {
        (Some(0), Some(reset)) if reset > now => Some(decide(
            Duration::from_secs(reset - now + 1),
            seen,
            false,
            now,
            left,
        )),
        _ => None,
    }
}

fn decide(wait: Duration, seen: Seen, secondary: bool, now: u64, left: Duration) -> Verdict {
    if wait <= left {
        return Verdict::Wait(wait);
    }
    let which = if secondary {
        "secondary rate limit"
    } else {
        "rate limit"
    };
    let when = match seen
        .reset
        .filter(|_| seen.retry_after.is_none() && !secondary)
    {
        Some(reset) => format!(
            "it resets at {} (in {} s)",
            clock(reset),
            reset.saturating_sub(now)
        ),
        None => format!(
            "it lifts at {} (in {} s)",
            clock(now + wait.as_secs()),
            wait.as_secs()
        ),
    };
    Verdict::Fail(format!(
        "GitHub's {which} is reached and {when}, past this call's deadline ({} s left); try again then",
        left.as_secs()
    ))
}

/// Unix seconds as `HH:MM:SS UTC`.
fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_700_000;

    fn seen(remaining: Option<u64>, reset: Option<u64>, retry_after: Option<u64>) -> Seen {
        Seen {
            remaining,
            reset,
            retry_after,
        }
    }

    #[test]
    fn retry_after_is_waited_out_when_it_fits_and_named_when_not() {
        let s = seen(Some(10), Some(NOW + 900), Some(2));
        assert_eq!(
            refused(429, s, "", NOW, Duration::from_secs(30)),
            Some(Verdict::Wait(Duration::from_secs(2)))
        );
        let Some(Verdict::Fail(m)) = refused(
            403,
            s,
            "You have exceeded a secondary rate limit",
            NOW,
            Duration::from_secs(1),
        ) else {
            panic!()
        };
        assert!(m.contains("secondary rate limit"), "{m}");
        assert!(m.contains("(in 2 s)"), "{m}");
    }

    #[test]
    fn the_primary_limit_waits_until_its_reset() {
        let s = seen(Some(0), Some(NOW + 5), None);
        assert_eq!(
            refused(
                403,
                s,
                "API rate limit exceeded",
                NOW,
                Duration::from_secs(30)
            ),
            Some(Verdict::Wait(Duration::from_secs(6)))
        );
        let Some(Verdict::Fail(m)) = refused(403, s, "", NOW, Duration::from_secs(3)) else {
            panic!()
        };
        let reset = NOW + 5;
        let hms = format!(
            "{:02}:{:02}:{:02} UTC",
            reset % 86_400 / 3600,
            reset % 3600 / 60,
            reset % 60
        );
        assert!(m.contains(&format!("resets at {hms} (in 5 s)")), "{m}");
        // Known before sending, from the last response.
        assert_eq!(
            exhausted(s, NOW, Duration::from_secs(30)),
            Some(Verdict::Wait(Duration::from_secs(6)))
        );
        assert_eq!(exhausted(s, NOW + 10, Duration::from_secs(30)), None);
        assert_eq!(
            exhausted(seen(Some(1), Some(NOW + 5), None), NOW, Duration::ZERO),
            None
        );
    }

    #[test]
    fn a_permission_403_is_not_a_limit_and_a_bare_secondary_waits_a_minute() {
        let s = seen(Some(4000), Some(NOW + 900), None);
        assert_eq!(
            refused(
                403,
                s,
                "Resource not accessible by integration",
                NOW,
                Duration::from_secs(90)
            ),
            None
        );
        assert_eq!(refused(404, s, "", NOW, Duration::from_secs(90)), None);
        assert_eq!(
            refused(
                403,
                s,
                "You have exceeded a secondary rate limit.",
                NOW,
                Duration::from_secs(90)
            ),
            Some(Verdict::Wait(SECONDARY_WAIT))
        );
    }
}
