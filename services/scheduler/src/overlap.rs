//! What a wake-up does with the slots it would run while the job's last
//! run is still going: pure, one function per policy.

use oi_ipc_schema::scheduler::Overlap;

/// The fate of the slots a wake-up would run (indices into them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Starts now.
    pub start: Option<usize>,
    /// Wait, in order, for the run before them to end.
    pub queue: Vec<usize>,
    /// Recorded as missed, with the reason.
    pub missed: Vec<(usize, &'static str)>,
    /// The running run is cancelled first.
    pub cancel_running: bool,
}

pub const STILL_RUNNING: &str = "overlap: the previous run was still going (overlap = skip)";
pub const ALREADY_QUEUED: &str =
    "overlap: the previous run was still going and a slot already waited for it (overlap = queue)";
pub const REPLACED: &str = "overlap: a newer slot replaced it (overlap = cancel_previous)";

/// `n` slots to run, oldest first; `running`: the job's last run is going;
/// `queued`: slots wait behind it already. Slots of one catch-up run one
/// after another whatever the policy.
pub fn plan(policy: Overlap, running: bool, queued: usize, n: usize) -> Plan {
    let mut p = Plan::default();
    if n == 0 {
        return p;
    }
    if !running {
        p.start = Some(0);
        p.queue = (1..n).collect();
        return p;
    }
    match policy {
        Overlap::Skip => p.missed = (0..n).map(|i| (i, STILL_RUNNING)).collect(),
        Overlap::Queue if queued == 0 => p.queue = (0..n).collect(),
        Overlap::Queue => p.missed = (0..n).map(|i| (i, ALREADY_QUEUED)).collect(),
        Overlap::CancelPrevious => {
            p.cancel_running = true;
            p.start = Some(n - 1);
            p.missed = (0..n - 1).map(|i| (i, REPLACED)).collect();
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_overlap_policy() {
        // Nothing running: the first starts, a catch-up's others wait.
        for policy in [Overlap::Skip, Overlap::Queue, Overlap::CancelPrevious] {
            let p = plan(policy, false, 0, 3);
            assert_eq!(
                (p.start, p.queue.clone()),
                (Some(0), vec![1, 2]),
                "{policy:?}"
            );
            assert!(p.missed.is_empty() && !p.cancel_running);
        }
        let skip = plan(Overlap::Skip, true, 0, 1);
        assert_eq!((skip.start, skip.missed), (None, vec![(0, STILL_RUNNING)]));
        let queue = plan(Overlap::Queue, true, 0, 1);
        assert_eq!((queue.start, queue.queue), (None, vec![0]));
        let full = plan(Overlap::Queue, true, 1, 1);
        assert_eq!(full.missed, [(0, ALREADY_QUEUED)]);
        let cancel = plan(Overlap::CancelPrevious, true, 0, 2);
        assert!(cancel.cancel_running);
        assert_eq!(
            (cancel.start, cancel.missed),
            (Some(1), vec![(0, REPLACED)])
        );
        assert_eq!(plan(Overlap::Skip, true, 0, 0), Plan::default());
    }
}
