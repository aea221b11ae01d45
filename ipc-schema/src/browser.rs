//! Payloads of the browser adapter's own methods (destination `browser`),
//! besides its tools; used by `oictl browser ...`.

use crate::contract::Call;

pub mod methods {
    /// empty -> [`crate::Text`]: stops the browser and deletes its profile
    /// (cookies, logins, cache); says what it removed.
    pub const RESET: &str = "browser.reset";
}

/// The browser adapter's destination.
pub const SERVICE: &str = "browser";

pub const RESET: Call<(), crate::Text> = Call::new(SERVICE, methods::RESET);
