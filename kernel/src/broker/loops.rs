//! The broker's tasks: accepting connections, heartbeats, deadlines.

use super::*;

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move { serve_connection(shared, stream).await });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept on bus socket failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

pub(super) async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.cfg.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tick.tick().await;
        seq += 1;
        // A burst of connections is over: give its memory back.
        if shared.admission.trim_after_burst(64) {
            debug!("gave memory back after a burst of connections");
        }
        let Ok(frame) = Frame::new(0, &Heartbeat { seq }) else {
            continue;
        };
        let st = shared.lock();
        for e in st.registry.iter() {
            if let Some(c) = st.conns.get(&e.conn_id) {
                let _ = c.tx.send(&frame);
            }
        }
    }
}

/// Fails requests whose deadline passed, both forwarded and waiting ones.
pub(super) async fn deadline_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let mut st = shared.lock();
        let expired: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(g, _)| *g)
            .collect();
        for g in expired {
            if let Some(p) = st.pending.remove(&g) {
                st.by_origin.remove(&(p.origin_conn, p.origin_corr));
                st.in_flight.done(p.origin_conn);
                reply_error(
                    &st,
                    p.origin_conn,
                    p.origin_corr,
                    ErrorCode::Timeout,
                    format!("service '{}' did not answer before the deadline", p.target),
                );
                send_cancel(&st, p.target_conn, g, "deadline passed");
                shared.audit_end(p.audit, || "timeout: the deadline passed".into());
            }
        }
        let st = &mut *st;
        let mut timed_out = Vec::new();
        for (service, queue) in st.waiting.iter_mut() {
            let (expired, keep): (Vec<_>, Vec<_>) =
                queue.drain(..).partition(|w| w.deadline <= now);
            *queue = keep;
            for w in expired {
                st.in_flight.done(w.origin_conn);
                timed_out.push((w.origin_conn, w.frame.corr(), service.clone()));
            }
        }
        st.waiting.retain(|_, q| !q.is_empty());
        for (conn, corr, service) in timed_out {
            reply_error(
                st,
                conn,
                corr,
                ErrorCode::Timeout,
                format!("service '{service}' did not become available before the deadline"),
            );
        }
    }
}
