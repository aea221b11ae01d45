//! The frame header and the one frame codec of the project.
//!
//! Layout of the 16-byte header, all little-endian:
//!
//! | bytes  | field            |
//! |--------|------------------|
//! | 0..4   | payload length   |
//! | 4..6   | protocol version |
//! | 6..8   | message kind     |
//! | 8..16  | correlation id   |

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

/// Size of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 16;

/// Version of the bus protocol spoken by this build. Peers with another
/// version are refused with an error that names both.
/// 3: `ChildState::Waiting` and the telegram methods.
/// 4: secrets carry the hosts they may be sent to.
/// 5: audit rows are one-way `Audit` frames.
/// 6: `AgentEvent::Started` carries the agent's limit of the intent;
///    `llm::StreamEvent::Waiting` says what the router waits for;
///    `llm::ModelStatus::unreachable`; `llm::ChatRequest::deltas`.
/// 7: `Request::chat`; the scheduler's methods; the gateways' `deliver`.
pub const PROTOCOL_VERSION: u16 = 7;

/// Default cap on a frame's payload (8 MiB); configurable in `[bus]`.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 8 * 1024 * 1024;

/// Alignment of every payload buffer.
pub const PAYLOAD_ALIGN: usize = 16;

/// A payload buffer with the alignment rkyv archives need.
pub type Payload = AlignedVec<PAYLOAD_ALIGN>;

/// What went wrong with a frame. Every variant says which frame and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error(
        "frame (kind {kind}, correlation {corr}) declares a payload of {len} bytes, over the maximum frame size of {max} bytes"
    )]
    TooLarge {
        kind: u16,
        corr: u64,
        len: u32,
        max: u32,
    },
    #[error(
        "protocol version mismatch: the peer speaks bus protocol version {peer}, this build speaks version {ours}; run the same release of openintentd and oictl"
    )]
    VersionMismatch { peer: u16, ours: u16 },
    #[error("frame (correlation {corr}) has unknown message kind {kind}")]
    UnknownKind { kind: u16, corr: u64 },
    #[error("frame (correlation {corr}) is a {got:?} where a {expected:?} was expected")]
    UnexpectedKind {
        expected: Kind,
        got: Kind,
        corr: u64,
    },
    #[error("invalid {kind:?} payload in frame (correlation {corr}, {len} bytes): {reason}")]
    Invalid {
        kind: Kind,
        corr: u64,
        len: usize,
        reason: String,
    },
    #[error("cannot encode {kind:?} message: {reason}")]
    Encode { kind: Kind, reason: String },
}

macro_rules! kinds {
    ($($name:ident = $value:literal),* $(,)?) => {
        /// The message kind carried in the frame header.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Kind { $($name = $value),* }

        impl Kind {
            /// Every kind, in wire-value order.
            pub const ALL: &'static [Kind] = &[$(Kind::$name),*];

            /// The kind for a wire value, if there is one.
            pub fn from_u16(value: u16) -> Option<Kind> {
                match value {
                    $($value => Some(Kind::$name),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    Hello = 1,
    Welcome = 2,
    Ready = 3,
    Heartbeat = 4,
    Request = 5,
    Response = 6,
    StreamChunk = 7,
    StreamEnd = 8,
    Error = 9,
    Shutdown = 10,
    ConfigChanged = 11,
    RegisterTools = 12,
    Cancel = 13,
    Audit = 14,
}

/// The fixed 16-byte header in front of every payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub version: u16,
    pub kind: u16,
    pub corr: u64,
}

impl FrameHeader {
    pub fn new(kind: Kind, corr: u64, len: u32) -> Self {
        FrameHeader {
            len,
            version: PROTOCOL_VERSION,
            kind: kind as u16,
            corr,
        }
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.len.to_le_bytes());
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        out[6..8].copy_from_slice(&self.kind.to_le_bytes());
        out[8..16].copy_from_slice(&self.corr.to_le_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Self {
        FrameHeader {
            len: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            version: u16::from_le_bytes([bytes[4], bytes[5]]),
            kind: u16::from_le_bytes([bytes[6], bytes[7]]),
            corr: u64::from_le_bytes([
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14],
                bytes[15],
            ]),
        }
    }

    /// Checks a freshly read header before anything is allocated for its
    /// payload: protocol version, size cap, known kind.
    pub fn check(&self, max_frame_bytes: u32) -> Result<Kind, FrameError> {
        if self.version != PROTOCOL_VERSION {
            return Err(FrameError::VersionMismatch {
                peer: self.version,
                ours: PROTOCOL_VERSION,
            });
        }
        if self.len > max_frame_bytes {
            return Err(FrameError::TooLarge {
                kind: self.kind,
                corr: self.corr,
                len: self.len,
                max: max_frame_bytes,
            });
        }
        Kind::from_u16(self.kind).ok_or(FrameError::UnknownKind {
            kind: self.kind,
            corr: self.corr,
        })
    }
}

/// A value rkyv can archive into a payload.
pub trait Encode:
    for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
{
}

impl<T> Encode for T where
    T: ?Sized + for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
{
}

/// A value whose archive can be validated (bytecheck) and read back.
pub trait Decode:
    Archive<
        Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
                      + Deserialize<Self, HighDeserializer<rancor::Error>>,
    > + Sized
{
}

impl<T> Decode for T where
    T: Archive<
            Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
                          + Deserialize<T, HighDeserializer<rancor::Error>>,
        > + Sized
{
}

/// A message type that travels in a frame of one [`Kind`].
pub trait Message: Encode + Decode {
    const KIND: Kind;

    /// Archives the message into an aligned payload buffer.
    fn to_payload(&self) -> Result<Payload, FrameError> {
        rkyv::to_bytes::<rancor::Error>(self).map_err(|e| FrameError::Encode {
            kind: Self::KIND,
            reason: e.to_string(),
        })
    }
}

/// Validates `bytes` as an archived `M` and returns a reference into them.
///
/// `bytes` must start at a 16-byte boundary (a [`Payload`] does); a
/// misaligned or corrupted buffer is an error, never undefined behaviour.
pub fn access<M: Message>(bytes: &[u8], corr: u64) -> Result<&M::Archived, FrameError> {
    rkyv::access::<M::Archived, rancor::Error>(bytes).map_err(|e| FrameError::Invalid {
        kind: M::KIND,
        corr,
        len: bytes.len(),
        reason: e.to_string(),
    })
}

/// Validates and deserializes an owned `M` from `bytes`.
pub fn decode<M: Message>(bytes: &[u8], corr: u64) -> Result<M, FrameError> {
    let archived = access::<M>(bytes, corr)?;
    rkyv::deserialize::<M, rancor::Error>(archived).map_err(|e| FrameError::Invalid {
        kind: M::KIND,
        corr,
        len: bytes.len(),
        reason: e.to_string(),
    })
}

/// Encodes a message as one contiguous frame (header + payload).
pub fn encode_frame<M: Message>(corr: u64, msg: &M) -> Result<Vec<u8>, FrameError> {
    Frame::new(corr, msg).map(|f| f.to_bytes())
}

/// A received frame: its checked header and its aligned payload.
#[derive(Debug)]
pub struct Frame {
    pub header: FrameHeader,
    pub kind: Kind,
    pub payload: Payload,
}

impl Frame {
    /// Builds a frame around a message (used by senders that keep header and
    /// payload apart, and by tests).
    pub fn new<M: Message>(corr: u64, msg: &M) -> Result<Frame, FrameError> {
        let payload = msg.to_payload()?;
        let len = u32::try_from(payload.len()).map_err(|_| FrameError::Encode {
            kind: M::KIND,
            reason: format!("payload of {} bytes does not fit a frame", payload.len()),
        })?;
        Ok(Frame {
            header: FrameHeader::new(M::KIND, corr, len),
            kind: M::KIND,
            payload,
        })
    }

    pub fn corr(&self) -> u64 {
        self.header.corr
    }

    /// Checks that the frame is of `M`'s kind and validates its payload.
    pub fn access<M: Message>(&self) -> Result<&M::Archived, FrameError> {
        if self.kind != M::KIND {
            return Err(FrameError::UnexpectedKind {
                expected: M::KIND,
                got: self.kind,
                corr: self.header.corr,
            });
        }
        access::<M>(&self.payload, self.header.corr)
    }

    /// Like [`Frame::access`], then deserializes into an owned value.
    pub fn decode<M: Message>(&self) -> Result<M, FrameError> {
        let archived = self.access::<M>()?;
        rkyv::deserialize::<M, rancor::Error>(archived).map_err(|e| FrameError::Invalid {
            kind: M::KIND,
            corr: self.header.corr,
            len: self.payload.len(),
            reason: e.to_string(),
        })
    }

    /// Validates the payload against the type its header names, whatever
    /// that kind is. The broker calls this on every inbound frame.
    pub fn validate(&self) -> Result<(), FrameError> {
        use crate::messages::*;
        match self.kind {
            Kind::Hello => self.access::<Hello>().map(drop),
            Kind::Welcome => self.access::<Welcome>().map(drop),
            Kind::Ready => self.access::<Ready>().map(drop),
            Kind::Heartbeat => self.access::<Heartbeat>().map(drop),
            Kind::Request => self.access::<Request>().map(drop),
            Kind::Response => self.access::<Response>().map(drop),
            Kind::StreamChunk => self.access::<StreamChunk>().map(drop),
            Kind::StreamEnd => self.access::<StreamEnd>().map(drop),
            Kind::Error => self.access::<ErrorReply>().map(drop),
            Kind::Shutdown => self.access::<Shutdown>().map(drop),
            Kind::ConfigChanged => self.access::<ConfigChanged>().map(drop),
            Kind::RegisterTools => self.access::<RegisterTools>().map(drop),
            Kind::Cancel => self.access::<Cancel>().map(drop),
            Kind::Audit => self
                .access::<crate::control::audit::AuditRecord>()
                .map(drop),
        }
    }

    /// The frame as contiguous bytes (header + payload).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Parses one whole frame from a byte slice (header + payload), copying
    /// the payload into an aligned buffer. Used by the fuzz target and tests;
    /// the async reader in the kernel applies the same checks.
    pub fn parse(bytes: &[u8], max_frame_bytes: u32) -> Result<Frame, FrameError> {
        let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Invalid {
                kind: Kind::Hello,
                corr: 0,
                len: bytes.len(),
                reason: format!("{} bytes is shorter than the 16-byte header", bytes.len()),
            });
        };
        let header = FrameHeader::from_bytes(head);
        let kind = header.check(max_frame_bytes)?;
        let body = &bytes[HEADER_LEN..];
        if body.len() != header.len as usize {
            return Err(FrameError::Invalid {
                kind,
                corr: header.corr,
                len: body.len(),
                reason: format!(
                    "header declares {} payload bytes but {} follow",
                    header.len,
                    body.len()
                ),
            });
        }
        let mut payload = Payload::with_capacity(body.len());
        payload.extend_from_slice(body);
        let frame = Frame {
            header,
            kind,
            payload,
        };
        frame.validate()?;
        Ok(frame)
    }
}

/// Archives a value that travels *inside* another message (a request or
/// response payload), such as the kernel's control-plane types.
pub fn encode_payload<T: Encode>(value: &T) -> Result<Vec<u8>, FrameError> {
    rkyv::to_bytes::<rancor::Error>(value)
        .map(|bytes| bytes.to_vec())
        .map_err(|e| FrameError::Encode {
            kind: Kind::Request,
            reason: e.to_string(),
        })
}

/// Validates and deserializes a nested payload. The bytes are copied into an
/// aligned buffer first: a payload inside an archive has no alignment.
pub fn decode_payload<T: Decode>(bytes: &[u8], kind: Kind, corr: u64) -> Result<T, FrameError> {
    let mut aligned = Payload::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| FrameError::Invalid {
        kind,
        corr,
        len: bytes.len(),
        reason: e.to_string(),
    })
}
