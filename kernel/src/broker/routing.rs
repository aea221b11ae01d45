//! Routing frames: requests to their destination (or the wait for it),
//! replies and stream chunks back to the caller, cancellations, and the
//! audit of tool calls.

use super::*;

impl Shared {
    /// Appends a finished tool call to the audit log.
    pub(super) fn audit_end(&self, call: Option<Box<ToolCall>>, outcome: impl FnOnce() -> String) {
        if let (Some(log), Some(call)) = (self.audit.get(), call) {
            let mut entry = call.entry;
            entry.duration_ms = call.started.elapsed().as_millis() as u64;
            entry.outcome = outcome();
            log.record(entry);
        }
    }
}

/// How a reply frame ended a request, for the audit log.
pub(super) fn reply_outcome(frame: &Frame) -> String {
    match frame.kind {
        Kind::Error => match frame.decode::<ErrorReply>() {
            Ok(e) => format!("{}: {}", e.code.as_str(), e.message),
            Err(e) => format!("invalid error reply: {e}"),
        },
        _ => "ok".into(),
    }
}

pub(super) fn send_cancel(st: &State, conn: u64, corr: u64, reason: &str) {
    if let (Some(c), Ok(f)) = (
        st.conns.get(&conn),
        Frame::new(
            corr,
            &Cancel {
                reason: reason.to_string(),
            },
        ),
    ) {
        let _ = c.tx.send(&f);
    }
}

pub(super) fn reply_error(st: &State, conn: u64, corr: u64, code: ErrorCode, message: String) {
    if let (Some(c), Some(f)) = (st.conns.get(&conn), error_frame(corr, code, message)) {
        let _ = c.tx.send(&f);
    }
}

pub(super) fn forward(st: &State, conn: u64, mut frame: Frame, corr: u64) -> bool {
    frame.header.corr = corr;
    st.conns
        .get(&conn)
        .is_some_and(|c| c.tx.send(&frame).is_ok())
}

/// Handles one validated frame from `caller`. An error closes the
/// connection.
pub(super) fn dispatch(shared: &Arc<Shared>, caller: &Caller, frame: Frame) -> Result<(), Refusal> {
    let service = caller.service.as_deref();
    match (frame.kind, service) {
        (Kind::Ready, Some(name)) => {
            let queued = {
                let mut st = shared.lock();
                if let Some(e) = st.registry.get_mut(name) {
                    e.ready = true;
                    e.last_heartbeat = Some(Instant::now());
                }
                shared.tools_changed();
                let queued = st.waiting.remove(name).unwrap_or_default();
                for w in &queued {
                    // route_request counts each again.
                    st.in_flight.done(w.origin_conn);
                }
                queued
            };
            info!("service ready");
            let _ = shared.events.send(BusEvent::Ready {
                name: name.to_string(),
                pid: caller.pid,
            });
            for w in queued {
                route_request(shared, w.origin_conn, w.frame, Some(w.deadline));
            }
            Ok(())
        }
        (Kind::Heartbeat, Some(name)) => {
            if let Some(e) = shared.lock().registry.get_mut(name) {
                e.last_heartbeat = Some(Instant::now());
            }
            Ok(())
        }
        (Kind::RegisterTools, Some(name)) => {
            let tools = frame
                .decode::<RegisterTools>()
                .map_err(|e| Refusal::Framing(e.into()))?;
            let tools: Vec<ToolSpec> = tools.tools;
            info!(count = tools.len(), "tools registered");
            if let Some(e) = shared.lock().registry.get_mut(name) {
                e.tools = tools;
            }
            shared.tools_changed();
            Ok(())
        }
        (Kind::Audit, Some(name)) => {
            let r = frame
                .decode::<oi_ipc_schema::control::audit::AuditRecord>()
                .map_err(|e| Refusal::Framing(e.into()))?;
            match shared.audit.get() {
                Some(log) => log.record(audit::Entry {
                    ts_ms: audit::now_ms(),
                    intent: r.intent,
                    service: name.to_string(),
                    caller: name.to_string(),
                    action: r.action,
                    arguments: r.arguments,
                    outcome: r.outcome,
                    duration_ms: r.duration_ms,
                }),
                None => debug!(action = %r.action, "no audit log: row dropped"),
            }
            Ok(())
        }
        (Kind::Request, _) => {
            let req = frame
                .access::<Request>()
                .map_err(|e| Refusal::Framing(e.into()))?;
            if req.caller.as_str() != service.unwrap_or("") {
                reply_error(
                    &shared.lock(),
                    caller.conn_id,
                    frame.corr(),
                    ErrorCode::Denied,
                    format!(
                        "request claims caller '{}' but this connection is '{}'",
                        req.caller,
                        service.unwrap_or("")
                    ),
                );
                return Ok(());
            }
            if req.method.as_str() != methods::BUS_STATS {
                shared.lock().stats.count(req.method.as_str());
            }
            if req.destination.as_str() == KERNEL_DESTINATION {
                kernel_request(shared, caller, &frame);
                return Ok(());
            }
            route_request(shared, caller.conn_id, frame, None);
            Ok(())
        }
        (Kind::Response | Kind::StreamEnd | Kind::Error, _) => {
            let corr = frame.corr();
            let mut st = shared.lock();
            match st.pending.get(&corr) {
                Some(p) if p.target_conn == caller.conn_id => {
                    let Some(p) = st.pending.remove(&corr) else {
                        return Ok(());
                    };
                    st.by_origin.remove(&(p.origin_conn, p.origin_corr));
                    st.in_flight.done(p.origin_conn);
                    let outcome = p.audit.is_some().then(|| reply_outcome(&frame));
                    forward(&st, p.origin_conn, frame, p.origin_corr);
                    shared.audit_end(p.audit, || outcome.unwrap_or_default());
                }
                _ => {
                    debug!(corr, kind = ?frame.kind, "reply for an unknown or finished request dropped")
                }
            }
            Ok(())
        }
        (Kind::StreamChunk, _) => {
            let st = shared.lock();
            if let Some(p) = st.pending.get(&frame.corr())
                && p.target_conn == caller.conn_id
            {
                let (origin, corr) = (p.origin_conn, p.origin_corr);
                forward(&st, origin, frame, corr);
            }
            Ok(())
        }
        (Kind::Cancel, _) => {
            let mut st = shared.lock();
            let key = (caller.conn_id, frame.corr());
            if let Some(g) = st.by_origin.remove(&key) {
                if let Some(p) = st.pending.remove(&g) {
                    st.in_flight.done(p.origin_conn);
                    forward(&st, p.target_conn, frame, g);
                    shared.audit_end(p.audit, || "cancelled by the caller".into());
                }
            } else {
                let st = &mut *st;
                for queue in st.waiting.values_mut() {
                    let before = queue.len();
                    queue.retain(|w| !(w.origin_conn == caller.conn_id && w.frame.corr() == key.1));
                    for _ in queue.len()..before {
                        st.in_flight.done(caller.conn_id);
                    }
                }
            }
            Ok(())
        }
        (kind, _) => Err(Refusal::Protocol(format!(
            "a {} may not send a {kind:?} frame",
            if service.is_some() {
                "service"
            } else {
                "client"
            }
        ))),
    }
}

/// Requests queued for a service past this are refused as busy.
pub(super) const SERVICE_BUSY_BYTES: usize = 16 * 1024 * 1024;

/// Forwards a request to its destination, queues it until the destination is
/// ready (when the caller asked to wait), or fails it with `unavailable`.
pub(super) fn route_request(
    shared: &Arc<Shared>,
    origin_conn: u64,
    frame: Frame,
    deadline: Option<Instant>,
) {
    let Ok(req) = frame.access::<Request>() else {
        return;
    };
    let destination = req.destination.as_str().to_string();
    let wait = req.wait_for_service;
    let deadline = deadline.unwrap_or_else(|| {
        let ms = req.deadline_ms.to_native();
        Instant::now()
            + if ms == 0 {
                shared.cfg.default_deadline
            } else {
                Duration::from_millis(u64::from(ms))
            }
    });
    let origin_corr = frame.corr();
    let mut st = shared.lock();
    let max = shared.cfg.limits.max_requests_per_connection;
    let in_flight = st.in_flight.count(origin_conn);
    if in_flight >= max {
        reply_error(
            &st,
            origin_conn,
            origin_corr,
            ErrorCode::Unavailable,
            format!(
                "this connection has {in_flight} requests in flight, its limit ([bus] max_requests_per_connection = {max}); wait for some to finish"
            ),
        );
        return;
    }
    let entry = st.registry.get(&destination);
    let target = entry.filter(|e| e.ready).map(|e| e.conn_id);
    // A tool call: the method is a tool the destination registered.
    let tool_call = shared.audit.get().is_some()
        && entry.is_some_and(|e| e.tools.iter().any(|t| t.name == req.method.as_str()));
    let audit = tool_call.then(|| {
        Box::new(ToolCall {
            entry: audit::Entry {
                ts_ms: audit::now_ms(),
                intent: req.intent.as_str().to_string(),
                service: destination.clone(),
                caller: req.caller.as_str().to_string(),
                action: format!("tool:{}", req.method.as_str()),
                arguments: String::from_utf8_lossy(req.payload.as_slice()).into_owned(),
                outcome: String::new(),
                duration_ms: 0,
            },
            started: Instant::now(),
        })
    });
    // A service that is not reading its requests is not sent more: the
    // caller is told it is busy, and the service is not cut off.
    let behind = target
        .and_then(|t| st.conns.get(&t))
        .map_or(0, |c| c.tx.queued());
    let busy = (behind > SERVICE_BUSY_BYTES).then(|| {
        format!(
            "service '{destination}' is busy ({behind} bytes of requests not yet read); try again"
        )
    });
    match (target, busy) {
        (Some(target_conn), None) => {
            st.next_corr += 1;
            let g = st.next_corr;
            st.pending.insert(
                g,
                Pending {
                    origin_conn,
                    origin_corr,
                    target_conn,
                    target: destination,
                    deadline,
                    audit,
                },
            );
            st.by_origin.insert((origin_conn, origin_corr), g);
            st.in_flight.add(origin_conn);
            forward(&st, target_conn, frame, g);
        }
        (None, None)
            if wait
                && (entry.is_some()
                    || st.wanted.as_ref().is_none_or(|w| w.contains(&destination))) =>
        {
            st.in_flight.add(origin_conn);
            st.waiting.entry(destination).or_default().push(Waiting {
                origin_conn,
                frame,
                deadline,
            });
        }
        (_, busy) => {
            let why = busy.unwrap_or_else(|| {
                let why = if st.registry.get(&destination).is_some() {
                    "is starting and not ready yet"
                } else if st.expected.contains_key(&destination) {
                    "is restarting"
                } else if wait {
                    "is not running, and nothing is starting it"
                } else {
                    "is not running"
                };
                format!("service '{destination}' {why}")
            });
            reply_error(
                &st,
                origin_conn,
                origin_corr,
                ErrorCode::Unavailable,
                why.clone(),
            );
            drop(st);
            shared.audit_end(audit, || format!("unavailable: {why}"));
        }
    }
}
