//! The web adapter (destination `web`): its tools only, named in its
//! crate; other services know it by this name (the browser renders pages
//! for it).

/// The web adapter's destination.
pub const SERVICE: &str = "web";
