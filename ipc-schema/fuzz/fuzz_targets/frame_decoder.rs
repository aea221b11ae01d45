//! Fuzzes the frame decoder: arbitrary bytes as a whole frame (header check,
//! length check, bytecheck validation of the kind's payload), and the same
//! bytes as the payload of every message kind. Every input must give an
//! error or a valid frame; a panic or undefined behaviour is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oi_ipc_schema::frame::{Frame, FrameHeader, Kind, Payload};
use oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::parse(data, DEFAULT_MAX_FRAME_BYTES) {
        // A frame that parsed must re-encode to the same bytes.
        assert_eq!(frame.to_bytes(), data);
    }
    // The same bytes behind a well-formed header of every kind.
    let Ok(len) = u32::try_from(data.len()) else { return };
    for kind in Kind::ALL {
        let mut payload = Payload::with_capacity(data.len());
        payload.extend_from_slice(data);
        let frame = Frame { header: FrameHeader::new(*kind, 1, len), kind: *kind, payload };
        let _ = frame.validate();
    }
});
