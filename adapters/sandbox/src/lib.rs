//! What keeps the tool adapters inside their bounds: allowed roots opened
//! beneath by the kernel ([`roots`]), Landlock for commands ([`landlock`])
//! and a mount namespace that hides the bus from them ([`namespace`]),
//! the SSRF guard of the web tools ([`netguard`]), bounded reading of
//! what they fetch ([`body`]), and TLS for clients that open their own
//! connections ([`tls`]).

pub mod body;
pub mod landlock;
pub mod namespace;
pub mod netguard;
pub mod pidns;
pub mod roots;
pub mod tls;
