//! The one frame writer of the bus, used by the broker for each connection
//! and by every client.
//!
//! A frame is written straight from the sending task when nothing is queued
//! (one non-blocking vectored write: header and payload, no copy and no task
//! switch). Only when the socket is full does the rest go to a queue that a
//! flusher task writes as the socket drains. Frames leave in the order they
//! were sent.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use oi_ipc_schema::frame::Frame;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Notify;

/// Most bytes a connection may have queued (its peer not reading) before
/// it is closed: a stalled peer must not make the sender buffer without
/// bound.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// Bytes queued across many sinks (the broker's connections), with a cap:
/// a sink whose queueing would pass it is closed instead, so that many
/// slow readers together cannot make the broker buffer without bound.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    max: usize,
    /// The most ever queued at once.
    peak: AtomicUsize,
}

impl Budget {
    pub fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            max,
            peak: AtomicUsize::new(0),
        })
    }

    /// Bytes queued now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes ever queued at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        match self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.max).then_some(u + n)
            }) {
            Ok(before) => {
                self.peak.fetch_max(before + n, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The connection is closed; nothing more can be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

#[derive(Default)]
struct State {
    /// Bytes waiting for the flusher, in order.
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// The flusher owns the socket until the queue is empty.
    busy: bool,
    closed: bool,
    /// Shut the write side down once the queue is written.
    close_when_flushed: bool,
    /// Every handle is gone: the flusher ends once the queue is written.
    abandoned: bool,
}

struct Inner {
    half: OwnedWriteHalf,
    state: Mutex<State>,
    wake: Notify,
    handles: AtomicUsize,
    budget: Option<Arc<Budget>>,
}

impl Inner {
    /// Drops whatever is queued, returning its bytes to the budget.
    fn clear(&self, st: &mut State) {
        if let Some(b) = &self.budget {
            b.give(st.queued_bytes);
        }
        st.queue.clear();
        st.queued_bytes = 0;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &self.budget {
            b.give(st.queued_bytes);
        }
    }
}

/// Cloneable handle to a connection's write side.
pub struct FrameSink {
    inner: Arc<Inner>,
}

impl Clone for FrameSink {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        FrameSink {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for FrameSink {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.lock().abandoned = true;
            self.inner.wake.notify_one();
        }
    }
}

impl FrameSink {
    /// Takes the write half and starts its flusher task.
    pub fn new(half: OwnedWriteHalf) -> FrameSink {
        Self::with_budget(half, None)
    }

    /// Like [`FrameSink::new`], with queued bytes counted against a budget
    /// shared with other sinks.
    pub fn with_budget(half: OwnedWriteHalf, budget: Option<Arc<Budget>>) -> FrameSink {
        let inner = Arc::new(Inner {
            half,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            handles: AtomicUsize::new(1),
            budget,
        });
        tokio::spawn(flusher(inner.clone()));
        FrameSink { inner }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Bytes waiting for the peer to read.
    pub fn queued(&self) -> usize {
        self.lock().queued_bytes
    }

    /// Sends one frame.
    pub fn send(&self, frame: &Frame) -> Result<(), Closed> {
        let mut st = self.lock();
        if st.closed || st.close_when_flushed {
            return Err(Closed);
        }
        let header = frame.header.to_bytes();
        let total = header.len() + frame.payload.len();
        let mut written = 0;
        if !st.busy {
            let bufs = [IoSlice::new(&header), IoSlice::new(&frame.payload)];
            match self.inner.half.try_write_vectored(&bufs) {
                Ok(n) if n == total => return Ok(()),
                Ok(n) => written = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    st.closed = true;
                    return Err(Closed);
                }
            }
        }
        let mut rest = Vec::with_capacity(total - written);
        if written < header.len() {
            rest.extend_from_slice(&header[written..]);
            rest.extend_from_slice(&frame.payload);
        } else {
            rest.extend_from_slice(&frame.payload[written - header.len()..]);
        }
        let over_budget = self
            .inner
            .budget
            .as_ref()
            .is_some_and(|b| !b.take(rest.len()));
        if over_budget || st.queued_bytes + rest.len() > MAX_QUEUED_BYTES {
            if over_budget {
                tracing::warn!(
                    queued = st.queued_bytes,
                    "peer not reading while the bus's queues are full; closing the connection"
                );
            } else {
                tracing::warn!(
                    queued = st.queued_bytes,
                    "peer stopped reading: over {MAX_QUEUED_BYTES} bytes queued; closing the connection"
                );
                if let Some(b) = &self.inner.budget {
                    b.give(rest.len());
                }
            }
            st.closed = true;
            self.inner.clear(&mut st);
            shutdown(&self.inner.half);
            return Err(Closed);
        }
        st.queued_bytes += rest.len();
        st.queue.push_back(rest);
        st.busy = true;
        drop(st);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Sends a last frame, then shuts the write side down.
    pub fn send_and_close(&self, frame: &Frame) {
        let _ = self.send(frame);
        self.close();
    }

    /// Shuts the write side down once everything queued is written.
    pub fn close(&self) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.close_when_flushed = true;
        if !st.busy {
            st.closed = true;
            shutdown(&self.inner.half);
        } else {
            drop(st);
            self.inner.wake.notify_one();
        }
    }
}

fn shutdown(half: &OwnedWriteHalf) {
    // SAFETY: shutdown(2) on a socket this half owns; no memory involved.
    unsafe {
        libc::shutdown(half.as_ref().as_raw_fd(), libc::SHUT_WR);
    }
}

async fn write_all(half: &OwnedWriteHalf, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        half.writable().await?;
        match half.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes queued bytes while the sink is busy; hands the socket back to
/// direct writes once the queue is empty.
async fn flusher(inner: Arc<Inner>) {
    loop {
        inner.wake.notified().await;
        loop {
            let next = {
                let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                match st.queue.pop_front() {
                    Some(b) => {
                        st.queued_bytes -= b.len();
                        if let Some(budget) = &inner.budget {
                            budget.give(b.len());
                        }
                        b
                    }
                    None => {
                        st.busy = false;
                        if st.close_when_flushed && !st.closed {
                            st.closed = true;
                            shutdown(&inner.half);
                        }
                        if st.abandoned {
                            return;
                        }
                        break;
                    }
                }
            };
            if write_all(&inner.half, &next).await.is_err() {
                let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                st.closed = true;
                inner.clear(&mut st);
                st.busy = false;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::read_frame;
    use oi_ipc_schema::{Heartbeat, Response};
    use tokio::net::UnixStream;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_arrive_in_order_through_backpressure() {
        let (a, b) = UnixStream::pair().unwrap();
        let (_ra, wa) = a.into_split();
        let sink = FrameSink::new(wa);
        // 64 frames of 256 KiB: far more than the socket buffer holds, so
        // most go through the queue while the reader is slow.
        let big = vec![0x5A; 256 * 1024];
        let writer = {
            let sink = sink.clone();
            tokio::spawn(async move {
                for seq in 0..64u64 {
                    sink.send(
                        &Frame::new(
                            seq,
                            &Response {
                                payload: big.clone(),
                            },
                        )
                        .unwrap(),
                    )
                    .unwrap();
                    sink.send(&Frame::new(seq, &Heartbeat { seq }).unwrap())
                        .unwrap();
                }
                sink.close();
            })
        };
        let (mut rb, _wb) = b.into_split();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for seq in 0..64u64 {
            let f = read_frame(&mut rb, 1 << 20).await.unwrap().unwrap();
            assert_eq!(f.corr(), seq);
            assert_eq!(f.access::<Response>().unwrap().payload.len(), 256 * 1024);
            let f = read_frame(&mut rb, 1 << 20).await.unwrap().unwrap();
            assert_eq!(f.access::<Heartbeat>().unwrap().seq.to_native(), seq);
        }
        // Closed after the last frame: clean EOF.
        assert!(read_frame(&mut rb, 1 << 20).await.unwrap().is_none());
        writer.await.unwrap();
        assert!(
            sink.send(&Frame::new(0, &Heartbeat { seq: 0 }).unwrap())
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_is_cut_off_at_the_cap() {
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        // What the kernel buffers for the peer besides the cap: this host's
        // send buffer (a fixed 60-70 MiB window failed where it is larger).
        let sndbuf = {
            use std::os::fd::AsRawFd;
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: a valid socket fd and an out-parameter of the right size.
            let r = unsafe {
                libc::getsockopt(
                    a.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    (&mut v as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(r, 0, "getsockopt(SO_SNDBUF)");
            usize::try_from(v).unwrap()
        };
        let (_ra, wa) = a.into_split();
        let sink = FrameSink::new(wa);
        let chunk = Frame::new(
            1,
            &Response {
                payload: vec![0; 1024 * 1024],
            },
        )
        .unwrap();
        let mut sent = 0usize;
        while sink.send(&chunk).is_ok() {
            sent += 1;
            assert!(sent < 200, "never cut off");
        }
        // The cap, plus what the socket buffer took (at most twice
        // SO_SNDBUF: the kernel counts overhead too), and one frame.
        let cap = MAX_QUEUED_BYTES >> 20;
        let buffered = (2 * sndbuf).div_ceil(1 << 20);
        assert!(
            (cap - 1..=cap + buffered + 1).contains(&sent),
            "cut off after {sent} MiB (cap {cap} MiB, socket buffer {sndbuf} bytes)"
        );
        assert!(sink.is_closed());
    }
}
