//! One connection: `Hello` and the checks on who is calling, the read
//! loop, and forgetting it when it closes.

use super::*;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("{0}")]
    Framing(#[from] FramingError),
    #[error("{0}")]
    Protocol(String),
}

pub(super) async fn refuse(half: OwnedWriteHalf, code: ErrorCode, message: String) {
    let sink = FrameSink::new(half);
    match error_frame(0, code, message) {
        Some(f) => sink.send_and_close(&f),
        None => sink.close(),
    }
}

pub(super) async fn serve_connection(shared: Arc<Shared>, stream: UnixStream) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot read peer credentials; closing connection");
            return;
        }
    };
    let peer_pid = cred.pid().map(|p| p as u32).unwrap_or(0);
    let (rd, wr) = stream.into_split();
    // Counted from accept, before Hello: idle sockets hold memory too.
    let is_service = shared.lock().expected.values().any(|p| *p == peer_pid);
    let _slot = match shared
        .admission
        .admit(peer_pid, is_service, &shared.cfg.limits)
    {
        Ok(slot) => slot,
        Err(why) => {
            warn!(peer_pid, "refusing bus connection: {why}");
            return refuse(wr, ErrorCode::Unavailable, why).await;
        }
    };
    if cred.uid() != shared.uid {
        warn!(
            peer_uid = cred.uid(),
            peer_pid, "refusing bus connection from another user"
        );
        refuse(
            wr,
            ErrorCode::Denied,
            format!(
                "the bus only accepts connections from uid {}, not uid {}",
                shared.uid,
                cred.uid()
            ),
        )
        .await;
        return;
    }
    // Small: most frames are small, and a large payload is read past the
    // buffer straight into its own allocation.
    let mut rd = BufReader::with_capacity(8 * 1024, rd);
    let hello = match tokio::time::timeout(
        shared.cfg.hello_timeout,
        read_frame(&mut rd, shared.cfg.max_frame_bytes),
    )
    .await
    {
        Err(_) => {
            warn!(peer_pid, "no Hello within the timeout; closing connection");
            return refuse(
                wr,
                ErrorCode::BadRequest,
                "no Hello received in time".into(),
            )
            .await;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            warn!(peer_pid, error = %e, "bad first frame; closing connection");
            return refuse(wr, ErrorCode::BadRequest, e.to_string()).await;
        }
        Ok(Ok(Some(f))) => f,
    };
    let identity = match check_hello(&shared, &hello, peer_pid) {
        Ok(identity) => identity,
        Err((code, message)) => {
            warn!(peer_pid, reason = %message, "refusing bus connection");
            return refuse(wr, code, message).await;
        }
    };
    // Clients' queues share the bus's budget; a service's is protected
    // instead by refusing requests while it is behind (`route_request`).
    let budget = identity.is_none().then(|| shared.budget.clone());
    let tx = FrameSink::with_budget(wr, budget);
    let registered = {
        let mut st = shared.lock();
        st.next_conn += 1;
        let conn_id = st.next_conn;
        let mut duplicate = false;
        if let Some(name) = &identity {
            let existing = st.registry.get(name).map(|e| (e.conn_id, e.pid));
            match existing {
                Some((_, old_pid)) if old_pid == peer_pid => duplicate = true,
                Some((old_conn, _)) => {
                    // The supervisor already started a replacement (it
                    // checked the pid); the old connection's EOF has not
                    // arrived yet.
                    st.registry.remove_conn(name, old_conn);
                    shared.tools_changed();
                }
                None => {}
            }
            if !duplicate {
                st.registry.insert(ServiceEntry {
                    name: name.clone(),
                    pid: peer_pid,
                    conn_id,
                    ready: false,
                    connected_at: Instant::now(),
                    last_heartbeat: None,
                    tools: Vec::new(),
                });
            }
        }
        if !duplicate {
            st.conns.insert(
                conn_id,
                Conn {
                    tx: tx.clone(),
                    service: identity.clone(),
                    pid: peer_pid,
                },
            );
        }
        (!duplicate).then_some(conn_id)
    };
    let Some(conn_id) = registered else {
        let msg = format!(
            "service '{}' is already connected to the bus",
            identity.as_deref().unwrap_or("")
        );
        warn!(peer_pid, "{msg}");
        match error_frame(0, ErrorCode::Denied, msg) {
            Some(f) => tx.send_and_close(&f),
            None => tx.close(),
        }
        return;
    };
    let span = info_span!(
        "bus_conn",
        service = "kernel",
        conn = conn_id,
        peer = identity.as_deref().unwrap_or("client"),
        pid = peer_pid
    );
    async {
        if let Some(name) = &identity {
            let _ = shared.events.send(BusEvent::Connected {
                name: name.clone(),
                pid: peer_pid,
            });
        }
        if let Ok(f) = Frame::new(
            hello.corr(),
            &Welcome {
                connection_id: conn_id,
                broker_pid: shared.pid,
                protocol_version: PROTOCOL_VERSION,
                build_id: crate::BUILD_ID.to_string(),
                heartbeat_interval_ms: u32::try_from(shared.cfg.heartbeat_interval.as_millis())
                    .unwrap_or(u32::MAX),
            },
        ) {
            let _ = tx.send(&f);
        }
        debug!("connected");
        let caller = Caller {
            conn_id,
            service: identity.clone(),
            pid: peer_pid,
            uid: cred.uid(),
        };
        let mut closing = shared.closing.subscribe();
        let reason = loop {
            let next = tokio::select! {
                r = read_frame(&mut rd, shared.cfg.max_frame_bytes) => r,
                _ = closing.wait_for(|c| *c) => break None,
            };
            match next {
                Ok(None) => break None,
                Ok(Some(frame)) => {
                    if let Err(e) = frame.validate() {
                        break Some(Refusal::Framing(e.into()));
                    }
                    if let Err(r) = dispatch(&shared, &caller, frame) {
                        break Some(r);
                    }
                }
                Err(e) => break Some(Refusal::Framing(e)),
            }
        };
        match &reason {
            None => debug!("peer closed the connection"),
            Some(r) => {
                warn!(reason = %r, "closing bus connection after a bad frame");
                if let Some(f) = error_frame(0, ErrorCode::BadRequest, r.to_string()) {
                    let _ = tx.send(&f);
                }
            }
        }
        disconnect(&shared, conn_id);
        tx.close();
    }
    .instrument(span)
    .await
}

/// Validates `Hello` and the peer's claim; returns the service name the
/// connection may act as (None for a plain client).
pub(super) fn check_hello(
    shared: &Shared,
    frame: &Frame,
    peer_pid: u32,
) -> Result<Option<String>, (ErrorCode, String)> {
    let hello = frame.access::<Hello>().map_err(|e| {
        (
            ErrorCode::BadRequest,
            format!("the first frame must be a valid Hello: {e}"),
        )
    })?;
    let version = hello.protocol_version.to_native();
    if version != PROTOCOL_VERSION {
        return Err((
            ErrorCode::BadRequest,
            format!(
                "protocol version mismatch: the peer speaks bus protocol version {version}, the broker speaks version {PROTOCOL_VERSION}; run the same release of openintentd and oictl"
            ),
        ));
    }
    if hello.pid.to_native() != peer_pid {
        return Err((
            ErrorCode::Denied,
            format!(
                "Hello claims pid {} but the socket peer is pid {peer_pid}",
                hello.pid.to_native()
            ),
        ));
    }
    let Some(name) = hello.service.as_ref() else {
        // A client gets the user's rights, so it must not be anything a
        // service started (see `lineage`).
        let services: HashSet<u32> = shared.lock().expected.values().copied().collect();
        let lineage = lineage::of_peer(peer_pid, shared.pid, &services);
        if let Some(why) = lineage.refusal(peer_pid) {
            return Err((ErrorCode::Denied, why));
        }
        return Ok(None);
    };
    let name = name.as_str();
    if name.is_empty() || name == KERNEL_DESTINATION {
        return Err((
            ErrorCode::Denied,
            format!("'{name}' is not a valid service name"),
        ));
    }
    match shared.lock().expected.get(name) {
        Some(&pid) if pid == peer_pid => Ok(Some(name.to_string())),
        Some(&pid) => Err((
            ErrorCode::Denied,
            format!(
                "pid {peer_pid} claims to be service '{name}', but the supervisor started that service as pid {pid}"
            ),
        )),
        None => Err((
            ErrorCode::Denied,
            format!(
                "pid {peer_pid} claims to be service '{name}', which the supervisor did not start"
            ),
        )),
    }
}

/// Forgets a closed connection: its registry entry, the requests it was
/// serving (their callers get `unavailable`), and the requests it made (their
/// services get `Cancel`).
pub(super) fn disconnect(shared: &Arc<Shared>, conn_id: u64) {
    let mut st = shared.lock();
    let Some(conn) = st.conns.remove(&conn_id) else {
        return;
    };
    let served: Vec<u64> = st
        .pending
        .iter()
        .filter(|(_, p)| p.target_conn == conn_id || p.origin_conn == conn_id)
        .map(|(g, _)| *g)
        .collect();
    st.in_flight.forget(conn_id);
    for g in served {
        let Some(p) = st.pending.remove(&g) else {
            continue;
        };
        st.by_origin.remove(&(p.origin_conn, p.origin_corr));
        if p.origin_conn != conn_id {
            st.in_flight.done(p.origin_conn);
        }
        if p.target_conn == conn_id {
            let why = format!("service '{}' exited while handling the request", p.target);
            reply_error(
                &st,
                p.origin_conn,
                p.origin_corr,
                ErrorCode::Unavailable,
                why.clone(),
            );
            shared.audit_end(p.audit, || format!("unavailable: {why}"));
        } else {
            send_cancel(&st, p.target_conn, g, "caller disconnected");
            shared.audit_end(p.audit, || "cancelled: the caller disconnected".into());
        }
    }
    for queue in st.waiting.values_mut() {
        queue.retain(|w| w.origin_conn != conn_id);
    }
    if let Some(name) = conn.service
        && st.registry.remove_conn(&name, conn_id).is_some()
    {
        info!(service = %name, pid = conn.pid, "service left the bus");
        shared.tools_changed();
        let _ = shared.events.send(BusEvent::Disconnected {
            name,
            pid: conn.pid,
        });
    }
}
