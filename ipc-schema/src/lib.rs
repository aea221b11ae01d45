//! The OpenIntentOS bus protocol.
//!
//! Every message on the bus is one *frame*: a fixed 16-byte [`FrameHeader`]
//! followed by a payload that is an rkyv 0.8 archive of the message type the
//! header's [`Kind`] names. Receivers read the payload into a 16-byte-aligned
//! buffer and validate it (bytecheck) before touching it; the broker routes by
//! the header and the archived destination without deserializing anything.
//!
//! Tool arguments and results travel as JSON *text* inside the archive (they
//! come from LLMs); everything the kernel itself reads is archived.

pub mod agent;
pub mod browser;
pub mod contract;
pub mod control;
pub mod frame;
pub mod gateway;
pub mod llm;
pub mod memory;
pub mod messages;
pub mod scheduler;
pub mod shell;
pub mod telegram;
pub mod vault;
pub mod web;

pub use contract::{Body, Call, Json, Stream, Text};
pub use frame::{
    DEFAULT_MAX_FRAME_BYTES, Decode, Encode, Frame, FrameError, FrameHeader, HEADER_LEN, Kind,
    Message, PROTOCOL_VERSION, Payload, access, decode, decode_payload, encode_frame,
    encode_payload,
};
pub use messages::*;

/// The destination name under which the kernel process itself (registry,
/// supervisor control) answers requests.
pub const KERNEL_DESTINATION: &str = "kernel";

#[cfg(test)]
mod tests;

#[cfg(test)]
mod contract_tests;
