//! The one place a child's state changes, as Horust's
//! `handle_status_change`: a table of the moves the supervisor makes, and
//! [`Child::set_state`], which the event loop calls instead of assigning.
//! A move the table does not hold is refused and logged (and fails debug
//! builds, so the tests find it), leaving the child as it was.

use oi_ipc_schema::control::ChildState::{self, *};
use tracing::{debug, error};

use crate::tree::Child;

/// Whether a child may go from `from` to `to`.
pub fn allowed(from: ChildState, to: ChildState) -> bool {
    from == to
        || matches!(
            (from, to),
            // Spawned, or held back until what it needs is there.
            (Exited | Backoff, Starting | Waiting)
            // Its needs are met; or it is stopped while down, or could
            // not be spawned.
            | (Waiting | Backoff | Fatal, Exited)
            // Up, asked to stop or killed, or gone: to be restarted,
            // not, or never again (exit 78).
            | (Starting, Ready)
            | (Starting | Ready, Stopping)
            | (Starting | Ready | Stopping, Exited | Backoff | Fatal)
        )
}

impl Child {
    /// Moves the child to `to` if the table allows it; returns whether it
    /// did.
    pub fn set_state(&mut self, to: ChildState) -> bool {
        let from = self.state;
        if !allowed(from, to) {
            error!(service = %self.name, ?from, ?to, "state change refused: not in the table");
            debug_assert!(
                false,
                "{}: {from:?} -> {to:?} is not in the table",
                self.name
            );
            return false;
        }
        if from != to {
            debug!(service = %self.name, ?from, ?to, "state");
        }
        self.state = to;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ChildState; 7] = [Starting, Ready, Backoff, Stopping, Exited, Fatal, Waiting];

    #[test]
    fn the_table_holds_the_lifecycle_and_nothing_else() {
        let moves: Vec<(ChildState, ChildState)> = ALL
            .iter()
            .flat_map(|&f| ALL.iter().map(move |&t| (f, t)))
            .filter(|&(f, t)| f != t && allowed(f, t))
            .collect();
        // A running child never skips STOPPING or its exit to start again,
        // a down one is never READY without starting, and FATAL only
        // leaves to EXITED (oictl start, a group restart, a valid reload).
        for (f, t) in &moves {
            assert!(!(*f == Ready && *t == Starting), "{f:?} -> {t:?}");
            assert!(!matches!(f, Exited | Backoff | Waiting | Fatal) || *t != Ready);
            assert!(*f != Fatal || *t == Exited, "{f:?} -> {t:?}");
            assert!(*f != Waiting || *t == Exited, "{f:?} -> {t:?}");
        }
        assert_eq!(moves.len(), 19, "{moves:?}");
        assert!(ALL.iter().all(|&s| allowed(s, s)));
    }
}
