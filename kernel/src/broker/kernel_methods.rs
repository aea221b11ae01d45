//! Requests to the kernel itself: the registry, the audit log, and the
//! supervisor's control plane.

use super::*;

pub(super) fn kernel_request(shared: &Arc<Shared>, caller: &Caller, frame: &Frame) {
    let Ok(req) = frame.access::<Request>() else {
        return;
    };
    let corr = frame.corr();
    let method = req.method.as_str().to_string();
    let conn = caller.conn_id;
    // Sends a reply frame; false once the caller's connection is gone.
    let send = {
        let shared = shared.clone();
        move |f: Option<Frame>| -> bool {
            let st = shared.lock();
            match (st.conns.get(&conn), f) {
                (Some(c), Some(f)) => c.tx.send(&f).is_ok(),
                (Some(_), None) => true,
                (None, _) => false,
            }
        }
    };
    if method == methods::REGISTRY_WATCH {
        watch_tools(shared.clone(), conn, corr, send);
        return;
    }
    let builtin = match method.as_str() {
        methods::REGISTRY_SERVICES => Some(oi_ipc_schema::encode_payload(
            &shared.lock().registry.snapshot(Instant::now()),
        )),
        methods::REGISTRY_TOOLS => Some(oi_ipc_schema::encode_payload(
            &shared.lock().registry.tools(),
        )),
        methods::BUS_STATS => Some(oi_ipc_schema::encode_payload(&{
            let st = shared.lock();
            BusStats {
                requests: st.stats.total,
                by_method: st
                    .stats
                    .by_method
                    .iter()
                    .map(|(m, n)| (m.clone(), *n))
                    .collect(),
            }
        })),
        _ => None,
    };
    if let Some(res) = builtin {
        let _ = send(match res {
            Ok(payload) => Frame::new(corr, &oi_ipc_schema::Response { payload }).ok(),
            Err(e) => error_frame(corr, ErrorCode::Internal, e.to_string()),
        });
        return;
    }
    if let Some(log) = shared.audit.get()
        && method.starts_with("audit.")
    {
        let log = log.clone();
        let payload = req.payload.as_slice().to_vec();
        tokio::spawn(async move {
            let frame = match audit_method(&log, &method, &payload).await {
                Ok(payload) => Frame::new(corr, &oi_ipc_schema::Response { payload }).ok(),
                Err((code, message)) => error_frame(corr, code, message),
            };
            send(frame);
        });
        return;
    }
    let handler = shared
        .handler
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some(handler) = handler else {
        let _ = send(error_frame(
            corr,
            ErrorCode::BadRequest,
            format!("the kernel has no method '{method}'"),
        ));
        return;
    };
    let fut = handler.handle(caller.clone(), method, req.payload.as_slice().to_vec());
    tokio::spawn(async move {
        match fut.await {
            Ok(KernelReply::Once(payload)) => {
                let _ = send(Frame::new(corr, &oi_ipc_schema::Response { payload }).ok());
            }
            Ok(KernelReply::Stream(mut rx)) => {
                let mut seq = 0u32;
                while let Some(payload) = rx.recv().await {
                    if !send(Frame::new(corr, &StreamChunk { seq, payload }).ok()) {
                        return;
                    }
                    seq = seq.wrapping_add(1);
                }
                send(
                    Frame::new(
                        corr,
                        &StreamEnd {
                            payload: Vec::new(),
                        },
                    )
                    .ok(),
                );
            }
            Err((code, message)) => {
                let _ = send(error_frame(corr, code, message));
            }
        }
    });
}

/// `registry.watch`: the tools now, then again after each change, until
/// the caller's connection is gone.
fn watch_tools(
    shared: Arc<Shared>,
    conn: u64,
    corr: u64,
    send: impl Fn(Option<Frame>) -> bool + Send + 'static,
) {
    let mut changed = shared.tools_changed.subscribe();
    tokio::spawn(async move {
        let mut seq = 0u32;
        loop {
            changed.mark_unchanged();
            let tools = shared.lock().registry.tools();
            let Ok(payload) = oi_ipc_schema::encode_payload(&tools) else {
                return;
            };
            if !send(Frame::new(corr, &StreamChunk { seq, payload }).ok()) {
                return;
            }
            seq = seq.wrapping_add(1);
            loop {
                tokio::select! {
                    r = changed.changed() => {
                        if r.is_err() {
                            return;
                        }
                        break;
                    }
                    // A caller that went away without a change is noticed
                    // here.
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {
                        if !shared.lock().conns.contains_key(&conn) {
                            return;
                        }
                    }
                }
            }
        }
    });
}

/// `audit.list` and `audit.verify` (rows arrive as `Audit` frames).
pub(super) async fn audit_method(
    log: &AuditLog,
    method: &str,
    payload: &[u8],
) -> Result<Vec<u8>, (ErrorCode, String)> {
    use oi_ipc_schema::control::audit::{AuditQuery, methods as audit_methods};
    let bad = |e: oi_ipc_schema::FrameError| (ErrorCode::BadRequest, format!("{method}: {e}"));
    let failed = |e: audit::AuditError| (ErrorCode::Internal, e.to_string());
    let encoded = |r: Result<Vec<u8>, oi_ipc_schema::FrameError>| {
        r.map_err(|e| (ErrorCode::Internal, e.to_string()))
    };
    match method {
        audit_methods::LIST => {
            let q: AuditQuery =
                oi_ipc_schema::decode_payload(payload, Kind::Request, 0).map_err(bad)?;
            encoded(oi_ipc_schema::encode_payload(
                &log.list(q).await.map_err(failed)?,
            ))
        }
        audit_methods::VERIFY => encoded(oi_ipc_schema::encode_payload(
            &log.verify().await.map_err(failed)?,
        )),
        other => Err((
            ErrorCode::BadRequest,
            format!("the kernel has no method '{other}'"),
        )),
    }
}
