//! Streamed replies: the raw chunks in order, and the typed events of a
//! streamed method; dropping one unfinished cancels it.

use super::*;

/// The chunks of a streamed reply, in order. Ends with `End` or `Error`.
pub struct ReplyStream {
    pub(super) client: BusClient,
    pub(super) corr: u64,
    pub(super) rx: mpsc::UnboundedReceiver<StreamItem>,
    pub(super) done: bool,
}

impl ReplyStream {
    /// The next item; `None` after `End` or `Error`.
    pub async fn next(&mut self) -> Option<StreamItem> {
        if self.done {
            return None;
        }
        let item = self.rx.recv().await.unwrap_or_else(|| {
            StreamItem::Error(BusError::Disconnected("the connection closed".into()))
        });
        if !matches!(item, StreamItem::Chunk(_)) {
            self.done = true;
        }
        Some(item)
    }
}

/// The typed events of a streamed method, in order.
pub struct EventStream<Event> {
    pub(super) inner: ReplyStream,
    pub(super) decode: fn(&[u8]) -> Result<Event, oi_ipc_schema::FrameError>,
    pub(super) what: &'static str,
}

impl<Event> EventStream<Event> {
    /// The next event; `Ok(None)` once the stream has ended. An error
    /// reply, a lost connection or an undecodable chunk is an error.
    pub async fn next(&mut self) -> Result<Option<Event>, BusError> {
        match self.inner.next().await {
            None | Some(StreamItem::End(_)) => Ok(None),
            Some(StreamItem::Error(e)) => Err(e),
            Some(StreamItem::Chunk(bytes)) => (self.decode)(&bytes)
                .map(Some)
                .map_err(|e| BusError::Protocol(format!("{} event: {e}", self.what))),
        }
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        if !self.done {
            self.client.inner.pending().remove(&self.corr);
            self.client
                .cancel(self.corr, "stream dropped by the caller");
        }
    }
}
