//! Payloads of the browser adapter's own methods (destination `browser`),
//! besides its tools; used by `oictl browser ...`.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::Call;

pub mod methods {
    /// empty -> [`crate::Text`]: stops the browser and deletes its profile
    /// (cookies, logins, cache); says what it removed.
    pub const RESET: &str = "browser.reset";
    /// [`super::RenderRequest`] -> [`super::Rendered`]: a page loaded in the
    /// browser (scripts run, every request behind the SSRF guard) and its
    /// HTML as it then stands; for `web_fetch`'s rendering.
    pub const RENDER: &str = "browser.render";
}

/// The browser adapter's destination.
pub const SERVICE: &str = "browser";

pub const RESET: Call<(), crate::Text> = Call::new(SERVICE, methods::RESET);
pub const RENDER: Call<RenderRequest, Rendered> = Call::new(SERVICE, methods::RENDER);

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RenderRequest {
    pub url: String,
    pub timeout_secs: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub final_url: String,
    /// 0 when the browser does not know it.
    pub status: u16,
    pub html: String,
}
