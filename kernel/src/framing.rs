//! Frame I/O on byte streams. The header is read and checked (version, size
//! cap, kind) before a single byte is allocated for the payload; the payload
//! lands in a 16-byte-aligned buffer.

use std::io;

use oi_ipc_schema::frame::{Frame, FrameError, FrameHeader, HEADER_LEN, Payload};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("bus I/O error: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("peer closed the connection in the middle of a frame ({got} of {expected} bytes read)")]
    TruncatedFrame { got: usize, expected: usize },
}

/// Reads exactly `buf.len()` bytes; returns how many arrived before EOF.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Reads one frame. `Ok(None)` is a clean EOF between frames; EOF inside a
/// frame is [`FramingError::TruncatedFrame`]. The payload is *not* validated
/// here: call [`Frame::validate`] or [`Frame::access`] before use.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_frame_bytes: u32,
) -> Result<Option<Frame>, FramingError> {
    let mut head = [0u8; HEADER_LEN];
    let got = read_full(r, &mut head).await?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(FramingError::TruncatedFrame {
            got,
            expected: HEADER_LEN,
        });
    }
    let header = FrameHeader::from_bytes(&head);
    let kind = header.check(max_frame_bytes)?;
    let len = header.len as usize;
    let mut payload = Payload::with_capacity(len);
    payload.resize(len, 0);
    let got = read_full(r, &mut payload).await?;
    if got < len {
        return Err(FramingError::TruncatedFrame {
            got: HEADER_LEN + got,
            expected: HEADER_LEN + len,
        });
    }
    Ok(Some(Frame {
        header,
        kind,
        payload,
    }))
}

/// Writes one frame (header then payload) without flushing.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> io::Result<()> {
    w.write_all(&frame.header.to_bytes()).await?;
    w.write_all(&frame.payload).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_ipc_schema::{DEFAULT_MAX_FRAME_BYTES, Heartbeat, Kind, PROTOCOL_VERSION, Request};
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Records the largest single allocation made on the current thread while
    /// tracking is on, so a test can prove that no payload buffer was made.
    struct TrackingAlloc;
    thread_local! {
        static TRACK: Cell<bool> = const { Cell::new(false) };
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }
    unsafe impl GlobalAlloc for TrackingAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = TRACK.try_with(|t| {
                if t.get() {
                    let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
                }
            });
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }
    #[global_allocator]
    static ALLOC: TrackingAlloc = TrackingAlloc;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn oversized_length_rejected_without_allocating() {
        let header = FrameHeader {
            len: u32::MAX,
            version: PROTOCOL_VERSION,
            kind: Kind::Request as u16,
            corr: 1,
        };
        let mut wire = header.to_bytes().to_vec();
        wire.extend_from_slice(&[0u8; 64]);
        let rt = rt();
        let mut reader = &wire[..];
        TRACK.with(|t| t.set(true));
        LARGEST.with(|l| l.set(0));
        let res = rt.block_on(read_frame(&mut reader, DEFAULT_MAX_FRAME_BYTES));
        TRACK.with(|t| t.set(false));
        let largest = LARGEST.with(|l| l.get());
        assert!(
            matches!(res, Err(FramingError::Frame(FrameError::TooLarge { .. }))),
            "{res:?}"
        );
        assert!(
            largest < 64 * 1024,
            "an allocation of {largest} bytes was made"
        );
    }

    #[test]
    fn clean_eof_between_frames_is_none() {
        let rt = rt();
        let mut reader: &[u8] = &[];
        assert!(
            rt.block_on(read_frame(&mut reader, 1024))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn eof_mid_header_and_mid_payload_are_truncation_errors() {
        let wire = oi_ipc_schema::encode_frame(
            3,
            &Request {
                destination: "x".into(),
                caller: String::new(),
                method: "y".into(),
                deadline_ms: 0,
                wait_for_service: false,
                stream: false,
                intent: String::new(),
                chat: String::new(),
                payload: vec![1; 100],
            },
        )
        .unwrap();
        let rt = rt();
        for cut in [1, 8, 15, 16, 17, wire.len() - 1] {
            let mut reader = &wire[..cut];
            let res = rt.block_on(read_frame(&mut reader, DEFAULT_MAX_FRAME_BYTES));
            assert!(
                matches!(res, Err(FramingError::TruncatedFrame { .. })),
                "cut {cut}: {res:?}"
            );
        }
    }

    #[test]
    fn frames_read_back_in_order_and_aligned() {
        let mut wire = Vec::new();
        for seq in 0..5u64 {
            wire.extend(oi_ipc_schema::encode_frame(seq, &Heartbeat { seq }).unwrap());
        }
        let rt = rt();
        let mut reader = &wire[..];
        for seq in 0..5u64 {
            let frame = rt.block_on(read_frame(&mut reader, 1024)).unwrap().unwrap();
            assert_eq!(frame.payload.as_ptr() as usize % 16, 0);
            assert_eq!(frame.access::<Heartbeat>().unwrap().seq.to_native(), seq);
        }
        assert!(
            rt.block_on(read_frame(&mut reader, 1024))
                .unwrap()
                .is_none()
        );
    }
}
