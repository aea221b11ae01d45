//! What every chat gateway shares, whatever its chat: who gets answers
//! ([`access`]: the allowlist, pairing codes, one refusal per stranger per
//! window), the progress message an intent keeps up to date
//! ([`progress`]), and one ordered worker per chat ([`workers`]).
//! Telegram uses them; Discord and Feishu will.

pub mod access;
pub mod progress;
pub mod workers;

pub use access::{Access, REFUSAL_INTERVAL, Redeemed};
pub use progress::Progress;
pub use workers::Workers;
