//! What every chat gateway shares, whatever its chat: the [`Surface`] a
//! chat service implements (send, edit, typing, buttons, its message
//! size), what a message of an allowed chat becomes ([`conversation`]:
//! command or intent, the throttled status edits, `/cancel`), who gets
//! answers ([`access`]: the allowlist, pairing codes, one refusal per
//! stranger per window), the connection's health ([`link`]), the status
//! message's text ([`progress`]), and one
//! ordered worker per chat ([`workers`]). Telegram uses them; Discord and
//! Feishu will.

pub mod access;
pub mod conversation;
pub mod link;
pub mod progress;
pub mod surface;
pub mod workers;

pub use access::{Access, REFUSAL_INTERVAL, Redeemed};
pub use conversation::Running;
pub use link::Link;
pub use progress::Progress;
pub use surface::Surface;
pub use workers::Workers;
