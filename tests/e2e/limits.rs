//! The broker's limits against the real daemon: a flood of idle
//! connections and of waiting requests, with openintentd's resident
//! memory measured before, during and after.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use oi_ipc_schema::frame::{Frame, Kind};
use oi_ipc_schema::{ErrorReply, Hello, PROTOCOL_VERSION, Request};

use crate::support::*;

fn rss_kb(pid: u32) -> u64 {
    oi_supervisor::process::rss_kb(pid).expect("openintentd's /proc status")
}

/// Reads one frame from a blocking stream.
fn read_one(s: &mut UnixStream) -> Option<Frame> {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    let mut all = head.to_vec();
    all.extend_from_slice(&body);
    Frame::parse(&all, 1 << 24).ok()
}

#[test]
fn floods_of_connections_and_waiting_requests_meet_limits_and_memory_comes_back() {
    let cfg = config(&chaos(
        "sleepy",
        "adapters",
        "start_timeout_secs = 600\nenv = { CHAOS_NEVER_READY = \"1\" }",
    ));
    let d = Daemon::start(&cfg);
    let sock = d.path("run/bus.sock");
    wait_for(Duration::from_secs(10), "sleepy connected", || {
        (d.state("sleepy") == "STARTING").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kb(d.pid());

    // 3,000 idle connections from one process: 32 are held, every other
    // one is refused at once with the reason.
    let mut socks = Vec::new();
    let mut refused = 0usize;
    for _ in 0..3000 {
        match UnixStream::connect(&sock) {
            Ok(s) => socks.push(s),
            Err(_) => refused += 1,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut held = Vec::new();
    let mut reason = String::new();
    for mut s in socks {
        s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        match read_one(&mut s) {
            Some(f) if f.kind == Kind::Error => {
                refused += 1;
                reason = f.decode::<ErrorReply>().unwrap().message;
            }
            _ => held.push(s),
        }
    }
    assert_eq!(held.len(), 32, "held connections");
    assert_eq!(refused, 3000 - 32);
    assert!(
        reason.contains("already holds 32 bus connections"),
        "{reason}"
    );
    let with_idle = rss_kb(d.pid());
    drop(held);

    // 100,000 requests on one connection, all asking to wait for a service
    // that never becomes ready: 256 wait, the rest are refused at once.
    let mut s = UnixStream::connect(&sock).unwrap();
    let hello = Frame::new(
        1,
        &Hello {
            service: None,
            pid: std::process::id(),
            protocol_version: PROTOCOL_VERSION,
            build_id: "limits".into(),
        },
    )
    .unwrap();
    s.write_all(&hello.to_bytes()).unwrap();
    assert_eq!(read_one(&mut s).unwrap().kind, Kind::Welcome);
    let mut reader = s.try_clone().unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let counter = std::thread::spawn(move || {
        let mut refusals = 0;
        let mut sample = String::new();
        while refusals < 100_000 - 256 {
            let Some(f) = read_one(&mut reader) else {
                break;
            };
            if f.kind == Kind::Error {
                refusals += 1;
                if sample.is_empty() {
                    sample = f.decode::<ErrorReply>().unwrap().message;
                }
            }
        }
        (refusals, sample)
    });
    let mut batch = Vec::new();
    for i in 0..100_000u64 {
        let req = Frame::new(
            10 + i,
            &Request {
                destination: "sleepy".into(),
                caller: String::new(),
                method: "echo".into(),
                deadline_ms: 60_000,
                wait_for_service: true,
                stream: false,
                intent: String::new(),
                chat: String::new(),
                payload: vec![0u8; 64],
            },
        )
        .unwrap();
        batch.extend_from_slice(&req.to_bytes());
        if batch.len() > 1 << 20 {
            s.write_all(&batch).unwrap();
            batch.clear();
        }
    }
    s.write_all(&batch).unwrap();
    let (refusals, sample) = counter.join().unwrap();
    assert_eq!(refusals, 100_000 - 256, "{sample}");
    assert!(
        sample.contains("this connection has 256 requests in flight"),
        "{sample}"
    );
    let with_waiting = rss_kb(d.pid());
    drop(s);

    // Everything closed: the broker gives the memory back (within 30 s: on
    // a loaded machine the release takes longer; the bound is the same).
    let after = wait_for(Duration::from_secs(30), "memory given back", || {
        std::thread::sleep(Duration::from_millis(300));
        let now = rss_kb(d.pid());
        (now <= before + 8 * 1024).then_some(now)
    });
    eprintln!(
        "openintentd rss_kb: before={before} idle_flood={with_idle} waiting_flood={with_waiting} after={after}"
    );
    assert!(
        with_idle < before + 16 * 1024,
        "{with_idle} kB with idle connections"
    );
    assert!(
        with_waiting < before + 32 * 1024,
        "{with_waiting} kB with waiting requests"
    );
    // The daemon still serves.
    assert_eq!(d.state("sleepy"), "STARTING");
}
