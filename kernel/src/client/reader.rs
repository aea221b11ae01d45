//! The connection's reader: replies matched to their waiters by
//! correlation id, heartbeats echoed, everything else handed to
//! [`Inbound`]; when the connection ends, every waiter learns why.

use super::*;

pub(super) async fn reader_loop(
    inner: Arc<Inner>,
    mut rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    inbound: mpsc::UnboundedSender<Inbound>,
    max_frame_bytes: u32,
) {
    let reason = loop {
        let frame = match read_frame(&mut rd, max_frame_bytes).await {
            Ok(Some(f)) => f,
            Ok(None) => break "the broker closed the connection".to_string(),
            Err(e) => break e.to_string(),
        };
        if let Err(e) = frame.validate() {
            break format!("invalid frame from the broker: {e}");
        }
        let corr = frame.corr();
        match frame.kind {
            Kind::Response => {
                if let Some(Waiter::Once(tx)) = inner.pending().remove(&corr) {
                    let payload = frame
                        .access::<Response>()
                        .map(|r| r.payload.as_slice().to_vec())
                        .map_err(BusError::from);
                    let _ = tx.send(payload);
                }
            }
            Kind::Error if corr == 0 => {
                let msg = frame
                    .decode::<ErrorReply>()
                    .map(|e| e.message)
                    .unwrap_or_default();
                break format!("the broker closed the connection: {msg}");
            }
            Kind::Error => {
                let err = match frame.decode::<ErrorReply>() {
                    Ok(e) => BusError::Remote {
                        code: e.code,
                        message: e.message,
                    },
                    Err(e) => BusError::from(e),
                };
                match inner.pending().remove(&corr) {
                    Some(Waiter::Once(tx)) => {
                        let _ = tx.send(Err(err));
                    }
                    Some(Waiter::Stream(tx)) => {
                        let _ = tx.send(StreamItem::Error(err));
                    }
                    None => {}
                }
            }
            Kind::StreamChunk => {
                if let Some(Waiter::Stream(tx)) = inner.pending().get(&corr)
                    && let Ok(c) = frame.access::<StreamChunk>()
                {
                    let _ = tx.send(StreamItem::Chunk(c.payload.as_slice().to_vec()));
                }
            }
            Kind::StreamEnd => {
                if let Some(Waiter::Stream(tx)) = inner.pending().remove(&corr)
                    && let Ok(c) = frame.access::<StreamEnd>()
                {
                    let _ = tx.send(StreamItem::End(c.payload.as_slice().to_vec()));
                }
            }
            Kind::Heartbeat => {
                // Echo at once: the broker measures liveness by these.
                let _ = inner.tx.send(&frame);
            }
            Kind::Request => {
                let _ = inbound.send(Inbound::Request(IncomingRequest { frame }));
            }
            Kind::Cancel => {
                let _ = inbound.send(Inbound::Cancel { corr });
            }
            Kind::Shutdown => {
                if let Ok(s) = frame.decode::<Shutdown>() {
                    let _ = inbound.send(Inbound::Shutdown {
                        reason: s.reason,
                        grace: Duration::from_millis(u64::from(s.grace_ms)),
                    });
                }
            }
            Kind::ConfigChanged => {
                if let Ok(c) = frame.decode::<ConfigChanged>() {
                    let _ = inbound.send(Inbound::ConfigChanged {
                        generation: c.generation,
                        config_toml: c.config_toml,
                    });
                }
            }
            other => debug!(kind = ?other, "ignoring unexpected frame from the broker"),
        }
    };
    debug!(%reason, "bus connection ended");
    inner.closed.store(true, Ordering::Release);
    let waiters: Vec<Waiter> = inner.pending().drain().map(|(_, w)| w).collect();
    for w in waiters {
        let err = BusError::Disconnected(reason.clone());
        match w {
            Waiter::Once(tx) => {
                let _ = tx.send(Err(err));
            }
            Waiter::Stream(tx) => {
                let _ = tx.send(StreamItem::Error(err));
            }
        }
    }
}
