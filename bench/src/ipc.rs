//! `oi-bench ipc`: the bus against the physical floor, measured in one run.
//!
//! - `raw_uds_rtt_p50_us`: a 64-byte ping-pong over a Unix socket between
//!   this process and an echo process, blocking I/O on both ends.
//! - `async_uds_rtt_p50_us`: the same against an echo process on a tokio
//!   current-thread runtime (epoll): the floor of any async endpoint.
//! - `async_pair_rtt_p50_us`: a tokio client against that tokio echo: two
//!   async endpoints, no bus code.
//! - `bus_kernel_rtt_p50_us`: a request the broker answers itself (client →
//!   broker → client).
//! - `bus_rtt_p50_us` / `bus_rtt_p99_us`: a 64-byte request and its
//!   response through the broker (client → broker → service → broker →
//!   client), with the broker and the service each in their own process,
//!   on the same runtime settings as openintentd.
//! - `bus_msgs_per_s`: frames forwarded by the broker per second (requests
//!   plus responses) with 8 concurrent clients; `bus_requests_per_s` is half.
//! - `rkyv_access_200b_ns` / `rkyv_access_4k_ns`: validated access to a
//!   `Request` archive of that size.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use oi_ipc_schema::{DEFAULT_MAX_FRAME_BYTES, Request};
use oi_kernel::broker::{Broker, BrokerConfig, BusEvent};
use oi_kernel::client::{BusClient, CallOptions, IncomingRequest};
use oi_kernel::harness::{self, Reply, Service, ServiceError};

use crate::figure;
use crate::stats::Samples;

const MSG: usize = 64;

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_socket(p: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while !p.exists() {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("{} did not appear", p.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let iters = if quick { 3_000 } else { 30_000 };
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;

    // Physical floor (raw ping-pong) and the bus, sampled in alternating
    // batches so both see the same machine noise.
    let raw_path = dir.path().join("raw.sock");
    let _echo = KillOnDrop(
        Command::new(&exe)
            .arg("__raw-echo")
            .arg(&raw_path)
            .spawn()?,
    );
    wait_socket(&raw_path)?;
    let async_path = dir.path().join("async.sock");
    let _async_echo = KillOnDrop(
        Command::new(&exe)
            .arg("__async-echo")
            .arg(&async_path)
            .spawn()?,
    );
    wait_socket(&async_path)?;
    let bus_path = dir.path().join("bus.sock");
    let mut broker = KillOnDrop(
        Command::new(&exe)
            .arg("__broker")
            .arg(&bus_path)
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut line = String::new();
    BufReader::new(broker.0.stdout.take().context("broker stdout")?).read_line(&mut line)?;
    if line.trim() != "ready" {
        bail!("broker process did not get ready: {line:?}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = rt
        .block_on(BusClient::connect(&bus_path, None, DEFAULT_MAX_FRAME_BYTES))?
        .0;
    let mut s = UnixStream::connect(&raw_path)?;
    let mut a = UnixStream::connect(&async_path)?;
    let mut buf = [7u8; MSG];
    let body = vec![7u8; MSG];
    let pair_path = dir.path().join("pair.sock");
    let _pair_echo = KillOnDrop(
        Command::new(&exe)
            .arg("__async-echo")
            .arg(&pair_path)
            .spawn()?,
    );
    wait_socket(&pair_path)?;
    let mut pair_stream = rt.block_on(tokio::net::UnixStream::connect(&pair_path))?;
    // A blocking client that frames by hand, for the broker's own cost.
    let mut blk = UnixStream::connect(&bus_path)?;
    blk.write_all(
        &oi_ipc_schema::Frame::new(
            1,
            &oi_ipc_schema::Hello {
                service: None,
                pid: std::process::id(),
                protocol_version: oi_ipc_schema::PROTOCOL_VERSION,
                build_id: "oi-bench".into(),
            },
        )?
        .to_bytes(),
    )?;
    read_one(&mut blk)?;
    let blk_req = oi_ipc_schema::Frame::new(
        2,
        &Request {
            destination: oi_ipc_schema::KERNEL_DESTINATION.into(),
            caller: String::new(),
            method: oi_ipc_schema::control::methods::REGISTRY_TOOLS.into(),
            deadline_ms: 0,
            wait_for_service: false,
            stream: false,
            intent: String::new(),
            chat: String::new(),
            payload: Vec::new(),
        },
    )?
    .to_bytes();
    let mut kblk = Vec::with_capacity(iters);
    let (mut raw, mut asy, mut pair, mut bus, mut kernel) = (
        Vec::with_capacity(iters),
        Vec::with_capacity(iters),
        Vec::with_capacity(iters),
        Vec::with_capacity(iters),
        Vec::with_capacity(iters),
    );
    let batch = 500;
    for round in 0..(iters / batch + 2) {
        let keep = round >= 2; // two warm-up rounds
        for _ in 0..batch {
            let t0 = Instant::now();
            s.write_all(&buf)?;
            s.read_exact(&mut buf)?;
            if keep {
                raw.push(t0.elapsed());
            }
        }
        for _ in 0..batch {
            let t0 = Instant::now();
            blk.write_all(&blk_req)?;
            read_one(&mut blk)?;
            if keep {
                kblk.push(t0.elapsed());
            }
        }
        for _ in 0..batch {
            let t0 = Instant::now();
            a.write_all(&buf)?;
            a.read_exact(&mut buf)?;
            if keep {
                asy.push(t0.elapsed());
            }
        }
        rt.block_on(async {
            for _ in 0..batch {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut b = [7u8; MSG];
                let t0 = Instant::now();
                pair_stream.write_all(&b).await?;
                pair_stream.read_exact(&mut b).await?;
                if keep {
                    pair.push(t0.elapsed());
                }
            }
            for _ in 0..batch {
                let t0 = Instant::now();
                let r = client
                    .request("echo", "echo", &body, CallOptions::default())
                    .await?;
                if keep {
                    bus.push(t0.elapsed());
                }
                if r.len() != MSG {
                    bail!("echo returned {} bytes", r.len());
                }
            }
            for _ in 0..batch {
                let t0 = Instant::now();
                client
                    .request(
                        oi_ipc_schema::KERNEL_DESTINATION,
                        oi_ipc_schema::control::methods::REGISTRY_TOOLS,
                        b"",
                        CallOptions::default(),
                    )
                    .await?;
                if keep {
                    kernel.push(t0.elapsed());
                }
            }
            anyhow::Ok(())
        })?;
    }
    drop(s);
    drop(a);
    let (raw, asy, pair, bus, kernel) = (
        Samples::new(raw),
        Samples::new(asy),
        Samples::new(pair),
        Samples::new(bus),
        Samples::new(kernel),
    );

    // Throughput with 8 concurrent clients.
    let secs = if quick { 1.0 } else { 3.0 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let elapsed = rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(
                BusClient::connect(&bus_path, None, DEFAULT_MAX_FRAME_BYTES)
                    .await?
                    .0,
            );
        }
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for c in clients {
            let (done, stop) = (done.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let body = vec![7u8; MSG];
                while !stop.load(Ordering::Relaxed) {
                    if c.request("echo", "echo", &body, CallOptions::default())
                        .await
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        anyhow::Ok(t0.elapsed())
    })?;
    let rps = done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();

    // Validated access.
    let access_ns = |size: usize| -> anyhow::Result<f64> {
        let req = Request {
            destination: "memory".into(),
            caller: "agent".into(),
            method: "memory_search".into(),
            deadline_ms: 5000,
            wait_for_service: false,
            stream: false,
            intent: String::new(),
            chat: String::new(),
            payload: vec![b'x'; size.saturating_sub(120)],
        };
        let frame = oi_ipc_schema::Frame::new(1, &req)?;
        let n = if quick { 200_000 } else { 2_000_000 };
        let t0 = Instant::now();
        for _ in 0..n {
            let a = frame.access::<Request>()?;
            std::hint::black_box(a.destination.as_str());
        }
        Ok(t0.elapsed().as_nanos() as f64 / n as f64)
    };

    figure("raw_uds_rtt_p50_us", raw.us(50.0));
    figure("raw_uds_rtt_p99_us", raw.us(99.0));
    figure("async_uds_rtt_p50_us", asy.us(50.0));
    figure("async_pair_rtt_p50_us", pair.us(50.0));
    figure("bus_kernel_rtt_p50_us", kernel.us(50.0));
    figure(
        "bus_kernel_blocking_client_rtt_p50_us",
        Samples::new(kblk).us(50.0),
    );
    figure("bus_rtt_p50_us", bus.us(50.0));
    figure("bus_rtt_p99_us", bus.us(99.0));
    figure(
        "bus_rtt_p50_over_raw",
        format!(
            "{:.2}",
            bus.pct(50.0).as_secs_f64() / raw.pct(50.0).as_secs_f64()
        ),
    );
    figure(
        "bus_rtt_p50_over_async",
        format!(
            "{:.2}",
            bus.pct(50.0).as_secs_f64() / asy.pct(50.0).as_secs_f64()
        ),
    );
    figure("bus_requests_per_s", format!("{rps:.0}"));
    figure("bus_msgs_per_s", format!("{:.0}", rps * 2.0));
    figure("rkyv_access_200b_ns", format!("{:.1}", access_ns(200)?));
    figure("rkyv_access_4k_ns", format!("{:.1}", access_ns(4096)?));
    Ok(())
}

/// Reads one frame (header, then payload) with blocking I/O.
fn read_one(s: &mut UnixStream) -> anyhow::Result<()> {
    let mut head = [0u8; oi_ipc_schema::HEADER_LEN];
    s.read_exact(&mut head)?;
    let h = oi_ipc_schema::FrameHeader::from_bytes(&head);
    let mut body = vec![0u8; h.len as usize];
    s.read_exact(&mut body)?;
    Ok(())
}

/// `__raw-echo <socket>`: echoes 64-byte messages, blocking I/O.
pub fn raw_echo(path: &str) -> anyhow::Result<()> {
    let l = UnixListener::bind(path)?;
    let (mut s, _) = l.accept()?;
    let mut buf = [0u8; MSG];
    while s.read_exact(&mut buf).is_ok() {
        s.write_all(&buf)?;
    }
    Ok(())
}

/// `__async-echo <socket>`: the same echo on a current-thread tokio
/// runtime (epoll), the floor for any async endpoint on this machine.
pub fn async_echo(path: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let l = tokio::net::UnixListener::bind(path)?;
        let (mut s, _) = l.accept().await?;
        let mut buf = [0u8; MSG];
        while s.read_exact(&mut buf).await.is_ok() {
            s.write_all(&buf).await?;
        }
        anyhow::Ok(())
    })
}

/// `__broker <socket>`: a broker on openintentd's runtime settings, with
/// one echo service process; prints `ready` once the service is.
pub fn broker_process(path: &str) -> anyhow::Result<()> {
    // The same runtime as openintentd.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let path = PathBuf::from(path);
        let (broker, mut events) = Broker::bind(BrokerConfig::new(path.clone())).await?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("__echo-service")
            .env(oi_kernel::ENV_BUS_SOCKET, &path)
            .kill_on_drop(true)
            .spawn()?;
        broker.expect_service("echo", child.id().context("echo pid")?);
        while let Some(ev) = events.recv().await {
            if matches!(ev, BusEvent::Ready { ref name, .. } if name == "echo") {
                break;
            }
        }
        println!("ready");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        term.recv().await;
        broker.close();
        let _ = child.kill().await;
        anyhow::Ok(())
    })
}

struct Echo;

impl Service for Echo {
    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        Ok(Reply::Once(req.payload().to_vec()))
    }
}

/// `__echo-service`: a harness service that echoes payloads.
pub fn echo_service() -> anyhow::Result<()> {
    let code = harness::run("echo", |_c| async { Ok(Echo) });
    if code != 0 {
        bail!("echo service exited with {code}");
    }
    Ok(())
}
