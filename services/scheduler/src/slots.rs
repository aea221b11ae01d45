//! What happens to each slot of a job that has come due: the decision the
//! scheduler makes at every wake-up, pure, so that every missed-run policy
//! and a clock that jumps are tested on fixed instants.
//!
//! The rule: every slot after the last one with a row gets exactly one
//! outcome, run or missed (with the reason the caller gives), so `next`
//! never moves past a slot nobody recorded.

use jiff::{SignedDuration, Timestamp};

use crate::schedule::Schedule;
pub use oi_ipc_schema::scheduler::Missed;

/// How a wake-up treats the slots of one job.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub missed: Missed,
    /// How late a slot may be and still count as on time (the timer's own
    /// lateness, a busy machine).
    pub grace: SignedDuration,
    /// How old the latest missed slot may be for `RunOnce` to catch it up.
    pub catchup_window: SignedDuration,
    /// Slots `RunAll` runs at most in one wake-up.
    pub max_runs: usize,
    /// Slots looked at one by one at most; the rest are counted.
    pub max_slots: usize,
}

/// The outcome of every slot in `(after, now]`, and the next due time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Slots to run now, oldest first.
    pub run: Vec<Timestamp>,
    /// Slots to record as missed, oldest first.
    pub missed: Vec<Timestamp>,
    /// Slots past `max_slots`, recorded as one row with their count and
    /// the last of them.
    pub missed_more: Option<(u64, Timestamp)>,
    /// The first slot after `now`; `None` when none is left.
    pub next: Option<Timestamp>,
}

/// Decides every slot of `schedule` after `after` (the last slot with a
/// row, or the job's creation) up to `now`.
pub fn decide(
    schedule: &Schedule,
    anchor: Timestamp,
    after: Timestamp,
    now: Timestamp,
    rules: &Rules,
) -> Decision {
    let mut d = Decision::default();
    let mut counted = 0u64;
    let mut last_counted = None;
    let mut t = after;
    // An `every` that was down long has more slots than are worth walking:
    // the oldest are counted arithmetically.
    if let Schedule::Every(step) = schedule {
        let (first, last) = (
            index_after(anchor, *step, after),
            index_at_or_before(anchor, *step, now),
        );
        if let (Some(first), Some(last)) = (first, last)
            && last >= first
            && (last - first + 1) as usize > rules.max_slots
        {
            let skip = (last - first + 1) as u64 - rules.max_slots as u64;
            let last_skipped = first + skip as i128 - 1;
            counted = skip;
            let at = slot(anchor, *step, last_skipped);
            last_counted = at;
            t = at.unwrap_or(t);
        }
    }
    let mut due = std::collections::VecDeque::new();
    while let Some(s) = schedule.next_after(t, anchor).filter(|s| *s <= now) {
        due.push_back(s);
        if due.len() > rules.max_slots
            && let Some(old) = due.pop_front()
        {
            counted += 1;
            last_counted = Some(old);
        }
        t = s;
    }
    d.missed_more = last_counted.map(|l| (counted, l));
    d.next = schedule.next_after(now.max(t), anchor);
    let on_time = |s: Timestamp| now.duration_since(s) <= rules.grace;
    let latest = due.back().copied();
    for s in due {
        let run = if on_time(s) {
            // Several slots within the grace (a fast `every`): the newest.
            Some(s) == latest
        } else {
            match rules.missed {
                Missed::Skip => false,
                Missed::RunOnce => {
                    Some(s) == latest && now.duration_since(s) <= rules.catchup_window
                }
                Missed::RunAll => d.run.len() < rules.max_runs,
            }
        };
        if run {
            d.run.push(s);
        } else {
            d.missed.push(s);
        }
    }
    d
}

/// Slot `k` of an `every` (the anchor is slot 0).
fn slot(anchor: Timestamp, step: SignedDuration, k: i128) -> Option<Timestamp> {
    anchor
        .checked_add(SignedDuration::from_nanos_i128(
            k.checked_mul(step.as_nanos())?,
        ))
        .ok()
}

/// The first slot index strictly after `t`.
fn index_after(anchor: Timestamp, step: SignedDuration, t: Timestamp) -> Option<i128> {
    let n = step.as_nanos();
    if n <= 0 {
        return None;
    }
    let since = t.duration_since(anchor).as_nanos();
    Some(if since < 0 { 0 } else { since / n + 1 })
}

/// The last slot index at or before `t`; `None` before the anchor.
fn index_at_or_before(anchor: Timestamp, step: SignedDuration, t: Timestamp) -> Option<i128> {
    let n = step.as_nanos();
    let since = t.duration_since(anchor).as_nanos();
    (n > 0 && since >= 0).then(|| since / n)
}

#[cfg(test)]
mod tests;
