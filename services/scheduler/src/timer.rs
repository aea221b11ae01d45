//! The scheduler's one timer, armed to a wall-clock instant.
//!
//! On Linux it is a `timerfd` on `CLOCK_REALTIME` with an absolute time and
//! `TFD_TIMER_CANCEL_ON_SET`: it fires at that wall time even across a
//! suspend (monotonic timers stop while the system sleeps), and it wakes at
//! once when the clock is set, so the scheduler re-arms. Between due times
//! it does not wake at all. Elsewhere a monotonic sleep, capped so that a
//! jump is noticed within a minute.

use jiff::Timestamp;

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rang {
    /// The time came.
    Due,
    /// The wall clock was set: every due time must be looked at again.
    ClockSet,
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};

    use jiff::Timestamp;
    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    use super::Rang;

    /// The timerfd, owned: its fd stays open and the same while it lives.
    struct Owned(TimerFd);

    impl AsRawFd for Owned {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    pub struct Timer {
        fd: AsyncFd<Owned>,
    }

    impl Timer {
        pub fn new() -> io::Result<Timer> {
            let fd = TimerFd::new(
                ClockId::CLOCK_REALTIME,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )
            .map_err(io::Error::from)?;
            // SAFETY: `Owned` owns the timerfd, which stays open and is the
            // same descriptor until the AsyncFd (and with it `Owned`) drops.
            let fd = unsafe { AsyncFd::register_with_interest(Owned(fd), Interest::READABLE)? };
            Ok(Timer { fd })
        }

        /// Waits until wall time `at` (at once if it has passed), or
        /// forever when `None`; either way a clock that is set ends it.
        pub async fn until(&mut self, at: Option<Timestamp>) -> io::Result<Rang> {
            // A far time for "never", so that setting the clock still wakes.
            let at =
                at.unwrap_or_else(|| Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365));
            let secs = at.as_second();
            let nanos = i64::from(at.subsec_nanosecond());
            // 0 disarms a timerfd: the epoch itself becomes 1 ns after it.
            let spec = if secs <= 0 && nanos <= 0 {
                TimeSpec::new(0, 1)
            } else {
                TimeSpec::new(secs, nanos)
            };
            self.fd
                .get_ref()
                .0
                .set(
                    Expiration::OneShot(spec),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME
                        | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
                )
                .map_err(io::Error::from)?;
            loop {
                let mut ready = self.fd.readable().await?;
                let mut buf = [0u8; 8];
                match nix::unistd::read(self.fd.get_ref().0.as_fd(), &mut buf) {
                    Ok(_) => return Ok(Rang::Due),
                    Err(nix::errno::Errno::ECANCELED) => return Ok(Rang::ClockSet),
                    Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::time::Duration;

    use jiff::Timestamp;

    use super::Rang;

    /// Jumps are found by the caller's wall/monotonic check within this.
    const CAP: Duration = Duration::from_secs(60);

    pub struct Timer;

    impl Timer {
        pub fn new() -> io::Result<Timer> {
            Ok(Timer)
        }

        pub async fn until(&mut self, at: Option<Timestamp>) -> io::Result<Rang> {
            let wait = at
                .map(|t| t.duration_since(Timestamp::now()))
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(CAP)
                .min(CAP);
            tokio::time::sleep(wait).await;
            Ok(Rang::Due)
        }
    }
}

pub use imp::Timer;

/// The wall time now.
pub fn now() -> Timestamp {
    Timestamp::now()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn the_timer_fires_at_its_wall_time_and_at_once_for_a_past_one() {
        let mut t = Timer::new().unwrap();
        let t0 = Instant::now();
        let at = now() + jiff::SignedDuration::from_millis(150);
        assert_eq!(t.until(Some(at)).await.unwrap(), Rang::Due);
        assert!(now() >= at, "not before its time");
        assert!(t0.elapsed() >= Duration::from_millis(100));
        // A time that has passed (the epoch too) fires at once.
        for past in [
            now() - jiff::SignedDuration::from_secs(5),
            Timestamp::UNIX_EPOCH,
        ] {
            let r = tokio::time::timeout(Duration::from_secs(2), t.until(Some(past))).await;
            assert_eq!(r.unwrap().unwrap(), Rang::Due);
        }
        // None waits (until a clock change, which a test cannot make).
        let r = tokio::time::timeout(Duration::from_millis(100), t.until(None)).await;
        assert!(r.is_err());
    }
}
