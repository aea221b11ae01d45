//! What keeps the tool adapters inside their bounds: allowed roots opened
//! beneath by the kernel ([`roots`]), Landlock for commands ([`landlock`]),
//! the SSRF guard of the web tools ([`netguard`]), and bounded reading of
//! what they fetch ([`body`]).

pub mod body;
pub mod landlock;
pub mod netguard;
pub mod roots;
