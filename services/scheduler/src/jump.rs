//! Jumps of the wall clock: the system was suspended, or its clock was
//! set. Found by comparing how far wall time and monotonic time moved
//! between two wake-ups (monotonic time stops while the system sleeps and
//! is never set).

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// A drift below this is the timer's own noise, not a jump.
pub const THRESHOLD: SignedDuration = SignedDuration::from_secs(2);

/// The last wake-up's wall and monotonic time.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    wall: Timestamp,
    mono: Instant,
}

impl Watch {
    pub fn new(wall: Timestamp, mono: Instant) -> Watch {
        Watch { wall, mono }
    }

    /// How far the wall clock moved beyond monotonic time since the last
    /// call (negative: it was set back), if that is a jump.
    pub fn jump(&mut self, wall: Timestamp, mono: Instant) -> Option<SignedDuration> {
        let walked = wall.duration_since(self.wall);
        let ran = SignedDuration::try_from(mono.saturating_duration_since(self.mono))
            .unwrap_or(SignedDuration::MAX);
        *self = Watch { wall, mono };
        let skew = walked - ran;
        (skew.abs() >= THRESHOLD).then_some(skew)
    }
}

/// A jump in words, for the rows of the slots it skipped.
pub fn in_words(skew: SignedDuration) -> String {
    let secs = Duration::from_secs(skew.as_secs().unsigned_abs());
    let d = SignedDuration::try_from(secs).unwrap_or(SignedDuration::ZERO);
    if skew.is_negative() {
        format!("the wall clock was set back by {d:#}")
    } else {
        format!(
            "the wall clock jumped ahead by {d:#} (the system was suspended, or its clock was set)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_forward_and_back_is_found_and_timer_noise_is_not() {
        let t0: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let m0 = Instant::now();
        let mut w = Watch::new(t0, m0);
        // 10 s later on both clocks, with 300 ms of noise: no jump.
        let (t1, m1) = (
            t0 + SignedDuration::from_millis(10_300),
            m0 + Duration::from_secs(10),
        );
        assert_eq!(w.jump(t1, m1), None);
        // Suspended for an hour: monotonic time moved 5 s, wall time 1 h 5 s.
        let (t2, m2) = (
            t1 + SignedDuration::from_secs(3605),
            m1 + Duration::from_secs(5),
        );
        assert_eq!(w.jump(t2, m2), Some(SignedDuration::from_secs(3600)));
        // The clock set back by 10 min.
        let (t3, m3) = (
            t2 - SignedDuration::from_secs(600) + SignedDuration::from_secs(1),
            m2 + Duration::from_secs(1),
        );
        assert_eq!(w.jump(t3, m3), Some(SignedDuration::from_secs(-600)));
        assert_eq!(
            in_words(SignedDuration::from_secs(-600)),
            "the wall clock was set back by 10m"
        );
        assert!(
            in_words(SignedDuration::from_secs(3600))
                .starts_with("the wall clock jumped ahead by 1h")
        );
    }
}
