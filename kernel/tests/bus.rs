//! The bus end to end on real Unix sockets: broker, harness, client, and
//! hostile peers (a killed process mid-frame, liars, oversized and corrupt
//! frames).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oi_ipc_schema::control::{RegistrySnapshot, ToolList, methods};
use oi_ipc_schema::frame::{Frame, FrameHeader, Kind};
use oi_ipc_schema::{
    DEFAULT_MAX_FRAME_BYTES, ErrorCode, ErrorReply, Hello, KERNEL_DESTINATION, PROTOCOL_VERSION,
    Ready, Request, Response, ToolSpec,
};
use oi_kernel::broker::{Broker, BrokerConfig, BrokerError, BusEvent};
use oi_kernel::client::{BusClient, BusError, CallOptions, IncomingRequest, StreamItem};
use oi_kernel::framing::{read_frame, write_frame};
use oi_kernel::harness::{self, Reply, Service, ServiceError};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(20);

struct Fixture {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    broker: Broker,
    events: mpsc::UnboundedReceiver<BusEvent>,
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

async fn fixture_with(tune: impl FnOnce(&mut BrokerConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    oi_kernel::paths::create_private_dir(&dir.path().join("run")).unwrap();
    let socket = dir.path().join("run/bus.sock");
    let mut cfg = BrokerConfig::new(socket.clone());
    cfg.heartbeat_interval = Duration::from_millis(100);
    tune(&mut cfg);
    let (broker, events) = Broker::bind(cfg).await.unwrap();
    Fixture {
        _dir: dir,
        socket,
        broker,
        events,
    }
}

/// A service for tests: echo, stream, fail, hang (with a drop counter).
struct TestService {
    dropped: Arc<AtomicUsize>,
}

struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Service for TestService {
    fn tools(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "echo_tool".into(),
            description: "Echoes its arguments".into(),
            args_schema_json: r#"{"type":"object"}"#.into(),
        }]
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        match req.method() {
            "echo" => Ok(Reply::Once(req.payload().to_vec())),
            "caller" => Ok(Reply::Once(req.caller().as_bytes().to_vec())),
            "stream" => {
                let n = req.payload()[0];
                let (tx, rx) = mpsc::channel(4);
                tokio::spawn(async move {
                    for i in 0..n {
                        let _ = tx.send(Ok(vec![i])).await;
                    }
                });
                Ok(Reply::Stream(rx))
            }
            "fail" => Err(ServiceError::bad_request("argument 'path' is missing")),
            "hang" => {
                let _guard = DropCount(self.dropped.clone());
                std::future::pending::<()>().await;
                unreachable!()
            }
            other => Err(ServiceError::bad_request(format!("no method {other}"))),
        }
    }
}

/// Runs the test service in this process under `name`.
fn spawn_service(
    f: &Fixture,
    name: &'static str,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    f.broker.expect_service(name, std::process::id());
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let socket = f.socket.clone();
    let task = tokio::spawn(async move {
        let _ = harness::serve(name, &socket, |_client| async move {
            Ok(TestService { dropped: d })
        })
        .await;
    });
    (dropped, task)
}

async fn wait_ready(events: &mut mpsc::UnboundedReceiver<BusEvent>, name: &str) {
    loop {
        match events.recv().await {
            Some(BusEvent::Ready { name: n, .. }) if n == name => return,
            Some(_) => {}
            None => panic!("event channel closed"),
        }
    }
}

async fn client(socket: &Path) -> BusClient {
    BusClient::connect(socket, None, DEFAULT_MAX_FRAME_BYTES)
        .await
        .unwrap()
        .0
}

async fn raw_hello(socket: &Path, service: Option<&str>, pid: u32) -> (UnixStream, Frame) {
    let mut s = UnixStream::connect(socket).await.unwrap();
    let hello = Frame::new(
        1,
        &Hello {
            service: service.map(Into::into),
            pid,
            protocol_version: PROTOCOL_VERSION,
            build_id: "test".into(),
        },
    )
    .unwrap();
    write_frame(&mut s, &hello).await.unwrap();
    let answer = read_frame(&mut s, DEFAULT_MAX_FRAME_BYTES)
        .await
        .unwrap()
        .unwrap();
    (s, answer)
}

fn refusal(frame: &Frame) -> String {
    assert_eq!(
        frame.kind,
        Kind::Error,
        "expected a refusal, got {:?}",
        frame.kind
    );
    frame.decode::<ErrorReply>().unwrap().message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_and_stream_through_the_broker() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let (_d, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        let c = client(&f.socket).await;
        let big = vec![0xAB; 1 << 20];
        assert_eq!(
            c.request("echo", "echo", &big, CallOptions::default())
                .await
                .unwrap(),
            big
        );
        assert_eq!(
            c.request("echo", "caller", b"", CallOptions::default())
                .await
                .unwrap(),
            b""
        );

        let mut s = c
            .request_stream("echo", "stream", &[5], CallOptions::default())
            .unwrap();
        let mut got = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                StreamItem::Chunk(c) => got.push(c[0]),
                StreamItem::End(_) => break,
                StreamItem::Error(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);

        let err = c
            .request("echo", "fail", b"", CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            BusError::Remote {
                code: ErrorCode::BadRequest,
                message: "argument 'path' is missing".into()
            }
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_from_many_clients_are_not_mixed_up() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let (_d, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        let mut tasks = Vec::new();
        for i in 0..8u32 {
            let c = client(&f.socket).await;
            tasks.push(tokio::spawn(async move {
                for j in 0..200u32 {
                    let body = format!("{i}-{j}").into_bytes();
                    assert_eq!(
                        c.request("echo", "echo", &body, CallOptions::default())
                            .await
                            .unwrap(),
                        body
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_lists_services_and_tools() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let (_d, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        let c = client(&f.socket).await;
        let bytes = c
            .request(
                KERNEL_DESTINATION,
                methods::REGISTRY_TOOLS,
                b"",
                CallOptions::default(),
            )
            .await
            .unwrap();
        let tools: ToolList = oi_ipc_schema::decode_payload(&bytes, Kind::Response, 0).unwrap();
        assert_eq!(tools.tools.len(), 1);
        assert_eq!(tools.tools[0].service, "echo");
        assert_eq!(tools.tools[0].spec.name, "echo_tool");
        let bytes = c
            .request(
                KERNEL_DESTINATION,
                methods::REGISTRY_SERVICES,
                b"",
                CallOptions::default(),
            )
            .await
            .unwrap();
        let snap: RegistrySnapshot =
            oi_ipc_schema::decode_payload(&bytes, Kind::Response, 0).unwrap();
        assert_eq!(snap.services.len(), 1);
        assert!(snap.services[0].ready);
        assert_eq!(snap.services[0].pid, std::process::id());
        // Heartbeats are echoed: after a second, the last echo is much
        // younger than that (100 ms interval; the bound leaves room for a
        // loaded machine, and a stopped echo would be a second old).
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let age = f.broker.heartbeat_age("echo").unwrap();
        assert!(age < Duration::from_millis(600), "heartbeat age {age:?}");
        let err = c
            .request(
                KERNEL_DESTINATION,
                "no.such.method",
                b"",
                CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_list_is_pushed_on_change_and_requests_are_counted() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let c = client(&f.socket).await;
        let forever = CallOptions::deadline(Duration::from_secs(3600));
        let mut watch = c
            .stream(oi_ipc_schema::control::REGISTRY_WATCH, &(), forever)
            .unwrap();
        // The list now: nothing is registered.
        assert!(watch.next().await.unwrap().unwrap().tools.is_empty());
        // A service comes up with a tool: pushed without being asked.
        f.broker.expect_service("echo", std::process::id());
        let (mut svc, _) = raw_hello(&f.socket, Some("echo"), std::process::id()).await;
        let tools = oi_ipc_schema::RegisterTools {
            tools: vec![ToolSpec {
                name: "echo_tool".into(),
                description: "Echoes".into(),
                args_schema_json: "{}".into(),
            }],
        };
        write_frame(&mut svc, &Frame::new(0, &tools).unwrap())
            .await
            .unwrap();
        write_frame(&mut svc, &Frame::new(0, &Ready::default()).unwrap())
            .await
            .unwrap();
        wait_ready(&mut f.events, "echo").await;
        let mut names = Vec::new();
        while names.is_empty() {
            let l = watch.next().await.unwrap().unwrap();
            names = l
                .tools
                .iter()
                .map(|t| t.spec.name.clone())
                .collect::<Vec<_>>();
        }
        assert_eq!(names, ["echo_tool"]);
        // It goes away: pushed again, empty.
        drop(svc);
        loop {
            if watch.next().await.unwrap().unwrap().tools.is_empty() {
                break;
            }
        }

        // The broker counts what it routes, per method; bus.stats itself
        // is not counted.
        let stats = oi_ipc_schema::control::BUS_STATS;
        let before = c.call(stats, &(), CallOptions::default()).await.unwrap();
        for _ in 0..3 {
            c.call(
                oi_ipc_schema::control::REGISTRY_TOOLS,
                &(),
                CallOptions::default(),
            )
            .await
            .unwrap();
        }
        let _ = c
            .request("nobody", "some.method", b"", CallOptions::default())
            .await;
        let after = c.call(stats, &(), CallOptions::default()).await.unwrap();
        assert_eq!(after.requests - before.requests, 4);
        let count = |s: &oi_ipc_schema::control::BusStats, m: &str| {
            s.by_method
                .iter()
                .find(|(n, _)| n == m)
                .map_or(0, |(_, c)| *c)
        };
        let tools = methods::REGISTRY_TOOLS;
        assert_eq!(count(&after, tools) - count(&before, tools), 3);
        assert_eq!(count(&after, "some.method"), 1);
        assert_eq!(count(&after, methods::BUS_STATS), 0);
        assert_eq!(count(&after, methods::REGISTRY_WATCH), 1);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_are_one_way_frames_from_services_only() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let log = oi_kernel::audit::AuditLog::start(&f._dir.path().join("audit.db")).unwrap();
        f.broker.set_audit(log);
        let row = oi_ipc_schema::control::audit::AuditRecord {
            intent: "i7".into(),
            action: "provider:fast".into(),
            arguments: "{}".into(),
            outcome: "ok".into(),
            duration_ms: 3,
        };
        // A service's row is appended under the name its connection proved,
        // with no answer to wait for.
        f.broker.expect_service("router", std::process::id());
        let (mut svc, _) = raw_hello(&f.socket, Some("router"), std::process::id()).await;
        write_frame(&mut svc, &Frame::new(0, &row).unwrap())
            .await
            .unwrap();
        write_frame(&mut svc, &Frame::new(0, &Ready::default()).unwrap())
            .await
            .unwrap();
        wait_ready(&mut f.events, "router").await;
        let c = client(&f.socket).await;
        let q = oi_ipc_schema::control::audit::AuditQuery {
            intent: "i7".into(),
            limit: 10,
        };
        let list = || {
            c.call(
                oi_ipc_schema::control::audit::LIST,
                &q,
                CallOptions::default(),
            )
        };
        let rows = list().await.unwrap();
        assert_eq!(rows.rows.len(), 1, "{:?}", rows.rows);
        assert_eq!(
            (rows.rows[0].service.as_str(), rows.rows[0].action.as_str()),
            ("router", "provider:fast")
        );
        // A plain client may not write the log: its connection is closed.
        let (mut stranger, _) = raw_hello(&f.socket, None, std::process::id()).await;
        write_frame(&mut stranger, &Frame::new(0, &row).unwrap())
            .await
            .unwrap();
        let after = read_frame(&mut stranger, DEFAULT_MAX_FRAME_BYTES).await;
        assert!(
            !matches!(after, Ok(Some(ref fr)) if fr.kind == Kind::Response),
            "{after:?}"
        );
        let rows = list().await.unwrap();
        assert_eq!(rows.rows.len(), 1, "a client's row was written");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_service_is_unavailable_at_once_or_waited_for() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let c = client(&f.socket).await;
        let t0 = Instant::now();
        let err = c
            .request("echo", "echo", b"x", CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
        assert!(
            err.to_string().contains("service 'echo' is not running"),
            "{err}"
        );
        assert!(t0.elapsed() < Duration::from_secs(1));

        // Waiting, with a deadline that passes: a timeout naming the service.
        let err = c
            .request(
                "echo",
                "echo",
                b"x",
                CallOptions::deadline(Duration::from_millis(200)).waiting(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
        assert!(err.to_string().contains("'echo'"), "{err}");

        // Waiting while the service comes up: answered once it is ready.
        let c2 = c.clone();
        let pending = tokio::spawn(async move {
            c2.request(
                "echo",
                "echo",
                b"late",
                CallOptions::deadline(Duration::from_secs(10)).waiting(),
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_d, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        assert_eq!(pending.await.unwrap().unwrap(), b"late");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_dying_mid_request_gives_an_error_not_a_hang() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        f.broker.expect_service("fragile", std::process::id());
        // A hand-written service that accepts one request and then dies.
        let (mut s, welcome) = raw_hello(&f.socket, Some("fragile"), std::process::id()).await;
        assert_eq!(welcome.kind, Kind::Welcome);
        write_frame(&mut s, &Frame::new(0, &Ready::default()).unwrap())
            .await
            .unwrap();
        wait_ready(&mut f.events, "fragile").await;
        let c = client(&f.socket).await;
        let call = tokio::spawn(async move {
            c.request("fragile", "anything", b"", CallOptions::default())
                .await
        });
        loop {
            let frame = read_frame(&mut s, DEFAULT_MAX_FRAME_BYTES)
                .await
                .unwrap()
                .unwrap();
            if frame.kind == Kind::Request {
                break;
            }
        }
        drop(s);
        let t0 = Instant::now();
        let err = call.await.unwrap().unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert!(
            err.to_string()
                .contains("exited while handling the request"),
            "{err}"
        );
        assert!(matches!(
            f.events.recv().await,
            Some(BusEvent::Disconnected { .. })
        ));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_and_cancellation_reach_the_service() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let (dropped, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        let c = client(&f.socket).await;
        let t0 = Instant::now();
        let err = c
            .request(
                "echo",
                "hang",
                b"",
                CallOptions::deadline(Duration::from_millis(300)),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Timeout);
        assert!(t0.elapsed() < Duration::from_secs(2));
        // The broker sent Cancel; the handler future was dropped.
        let t0 = Instant::now();
        while dropped.load(Ordering::SeqCst) < 1 {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "handler not cancelled after deadline"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Dropping a stream cancels it too.
        let s = c
            .request_stream("echo", "hang", b"", CallOptions::default())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
        let t0 = Instant::now();
        while dropped.load(Ordering::SeqCst) < 2 {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "handler not cancelled after drop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liars_and_strangers_are_refused() {
    tokio::time::timeout(LIMIT, async {
        let f = fixture().await;
        let me = std::process::id();
        // A service name the supervisor never started.
        let (_s, answer) = raw_hello(&f.socket, Some("vault"), me).await;
        assert!(refusal(&answer).contains("which the supervisor did not start"));
        // A service the supervisor started as another pid.
        f.broker.expect_service("vault", 1);
        let (_s, answer) = raw_hello(&f.socket, Some("vault"), me).await;
        let msg = refusal(&answer);
        assert!(
            msg.contains(&format!("pid {me} claims to be service 'vault'"))
                && msg.contains("as pid 1"),
            "{msg}"
        );
        // A Hello that lies about its own pid.
        let (_s, answer) = raw_hello(&f.socket, None, me + 1).await;
        assert!(refusal(&answer).contains("socket peer is pid"));
        // The reserved kernel name.
        let (_s, answer) = raw_hello(&f.socket, Some("kernel"), me).await;
        assert!(refusal(&answer).contains("not a valid service name"));
        // A client that sends requests under a service's name.
        let (mut s, answer) = raw_hello(&f.socket, None, me).await;
        assert_eq!(answer.kind, Kind::Welcome);
        let req = Frame::new(
            9,
            &Request {
                destination: "x".into(),
                caller: "vault".into(),
                method: "get".into(),
                deadline_ms: 0,
                wait_for_service: false,
                stream: false,
                intent: String::new(),
                chat: String::new(),
                payload: vec![],
            },
        )
        .unwrap();
        write_frame(&mut s, &req).await.unwrap();
        let answer = read_frame(&mut s, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        let err = answer.decode::<ErrorReply>().unwrap();
        assert_eq!((err.code, answer.corr()), (ErrorCode::Denied, 9));
        assert_eq!(f.broker.registry().services.len(), 0);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_version_mismatch_names_both_versions() {
    tokio::time::timeout(LIMIT, async {
        let f = fixture().await;
        let mut s = UnixStream::connect(&f.socket).await.unwrap();
        let mut hello = Frame::new(
            1,
            &Hello {
                service: None,
                pid: std::process::id(),
                protocol_version: 9,
                build_id: "future".into(),
            },
        )
        .unwrap();
        hello.header.version = 9;
        // One write: the broker may close as soon as it has read the header.
        let _ = s.write_all(&hello.to_bytes()).await;
        // The refusal is sent in our version's framing; read it raw.
        let answer = read_frame(&mut s, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        let msg = refusal(&answer);
        assert!(
            msg.contains("version 9") && msg.contains(&format!("version {PROTOCOL_VERSION}")),
            "{msg}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture_with(|c| c.max_frame_bytes = 64 * 1024).await;
        let (_d, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        let good = client(&f.socket).await;

        // Oversized length: refused from the header alone.
        let (mut s, _) = raw_hello(&f.socket, None, std::process::id()).await;
        s.write_all(
            &FrameHeader {
                len: 1 << 30,
                version: PROTOCOL_VERSION,
                kind: Kind::Request as u16,
                corr: 4,
            }
            .to_bytes(),
        )
        .await
        .unwrap();
        let answer = read_frame(&mut s, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        assert!(refusal(&answer).contains("over the maximum frame size of 65536 bytes"));
        assert!(
            read_frame(&mut s, DEFAULT_MAX_FRAME_BYTES)
                .await
                .unwrap()
                .is_none(),
            "connection must be closed"
        );

        // A corrupt archive.
        let (mut s, _) = raw_hello(&f.socket, None, std::process::id()).await;
        let mut req = Frame::new(
            5,
            &Request {
                destination: "echo".into(),
                caller: String::new(),
                method: "echo".into(),
                deadline_ms: 0,
                wait_for_service: false,
                stream: false,
                intent: String::new(),
                chat: String::new(),
                payload: vec![1; 8],
            },
        )
        .unwrap();
        let n = req.payload.len();
        for b in &mut req.payload[n - 8..] {
            *b = 0xFF;
        }
        write_frame(&mut s, &req).await.unwrap();
        let answer = read_frame(&mut s, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        assert!(refusal(&answer).contains("invalid Request payload in frame (correlation 5"));

        // A frame kind a client may not send.
        let (mut s, _) = raw_hello(&f.socket, None, std::process::id()).await;
        write_frame(&mut s, &Frame::new(0, &Ready::default()).unwrap())
            .await
            .unwrap();
        let answer = read_frame(&mut s, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        assert!(refusal(&answer).contains("a client may not send a Ready frame"));

        // Everyone else is still served.
        assert_eq!(
            good.request("echo", "echo", b"still here", CallOptions::default())
                .await
                .unwrap(),
            b"still here"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_killed_mid_frame_is_eof_not_a_hang() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let (_d, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        let before = f.broker.connection_count();
        // A real process says Hello, writes half a frame and is killed with
        // SIGKILL. Its Hello (with its own pid) is made here and piped in.
        let script = "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nhello=bytes.fromhex(sys.stdin.readline().strip())\ns.sendall(hello)\ns.recv(4096)\ns.sendall(b'\\x40\\x00\\x00\\x00\\x01\\x00\\x05\\x00')\nprint('sent',flush=True)\ntime.sleep(60)\n";
        let mut child = tokio::process::Command::new("python3")
            .arg("-c").arg(script).arg(&f.socket)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 is needed for this test (installed by .ci/run)");
        let pid = child.id().unwrap();
        let hello = Frame::new(1, &Hello { service: None, pid, protocol_version: PROTOCOL_VERSION, build_id: "py".into() }).unwrap().to_bytes();
        let hex: String = hello.iter().map(|b| format!("{b:02x}")).collect();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{hex}\n").as_bytes()).await.unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 5];
        tokio::io::AsyncReadExt::read_exact(&mut out, &mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(f.broker.connection_count(), before + 1);
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let t0 = Instant::now();
        while f.broker.connection_count() != before {
            assert!(t0.elapsed() < Duration::from_secs(2), "half-open connection not reaped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let c = client(&f.socket).await;
        assert_eq!(c.request("echo", "echo", b"ok", CallOptions::default()).await.unwrap(), b"ok");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_is_private_and_stale_sockets_are_replaced() {
    tokio::time::timeout(LIMIT, async {
        let f = fixture().await;
        let mode = std::fs::metadata(&f.socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second broker on a live socket is refused.
        let err = Broker::bind(BrokerConfig::new(f.socket.clone()))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, BrokerError::AlreadyRunning(_)), "{err}");
        // The lock beside the socket decides, not a connect: with the
        // socket file gone (or a broker too busy to answer), a second
        // broker still refuses to start and never takes the path over.
        let lock = f.socket.with_extension("sock.lock");
        assert_eq!(
            std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::rename(&f.socket, f.socket.with_extension("moved")).unwrap();
        let err = Broker::bind(BrokerConfig::new(f.socket.clone()))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, BrokerError::AlreadyRunning(_)), "{err}");
        assert!(!f.socket.exists());
        // A stale socket file (nobody listening) is removed and rebound.
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("bus.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.exists());
        let (b, _ev) = Broker::bind(BrokerConfig::new(stale.clone()))
            .await
            .unwrap();
        let c = client(&stale).await;
        assert!(
            c.request(
                KERNEL_DESTINATION,
                methods::REGISTRY_SERVICES,
                b"",
                CallOptions::default()
            )
            .await
            .is_ok()
        );
        b.close();
        assert!(!stale.exists());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_exits_on_bus_eof() {
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        f.broker.expect_service("echo", std::process::id());
        let socket = f.socket.clone();
        let svc = tokio::spawn(async move {
            harness::serve("echo", &socket, |_c| async {
                Ok(TestService {
                    dropped: Arc::new(AtomicUsize::new(0)),
                })
            })
            .await
        });
        wait_ready(&mut f.events, "echo").await;
        f.broker.close();
        let reason = tokio::time::timeout(Duration::from_secs(3), svc)
            .await
            .expect("harness must stop on EOF")
            .unwrap()
            .unwrap();
        assert_eq!(reason, harness::StopReason::BusClosed);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_bytes_cross_the_broker_unchanged() {
    // The broker rewrites only the correlation id: the payload bytes of a
    // request and of its response are identical on both sides of it.
    tokio::time::timeout(LIMIT, async {
        let mut f = fixture().await;
        let me = std::process::id();
        f.broker.expect_service("raw", me);
        let (mut svc, welcome) = raw_hello(&f.socket, Some("raw"), me).await;
        assert_eq!(welcome.kind, Kind::Welcome);
        let ready = Frame::new(
            0,
            &Ready {
                detail: String::new(),
            },
        )
        .unwrap();
        write_frame(&mut svc, &ready).await.unwrap();
        wait_ready(&mut f.events, "raw").await;
        let (mut cl, welcome) = raw_hello(&f.socket, None, me).await;
        assert_eq!(welcome.kind, Kind::Welcome);
        let sent = Frame::new(
            41,
            &Request {
                destination: "raw".into(),
                caller: String::new(),
                method: "m".into(),
                deadline_ms: 0,
                wait_for_service: false,
                stream: false,
                intent: String::new(),
                chat: String::new(),
                payload: vec![9, 8, 7, 6],
            },
        )
        .unwrap();
        write_frame(&mut cl, &sent).await.unwrap();
        let got = loop {
            let f = read_frame(&mut svc, DEFAULT_MAX_FRAME_BYTES)
                .await
                .unwrap()
                .unwrap();
            if f.kind == Kind::Request {
                break f;
            }
        };
        assert_eq!(
            got.payload.to_vec(),
            sent.payload.to_vec(),
            "the request's bytes changed"
        );
        assert_ne!(got.corr(), 41, "the broker uses its own correlation id");
        let answer = Frame::new(
            got.corr(),
            &Response {
                payload: vec![1, 2, 3, 255],
            },
        )
        .unwrap();
        write_frame(&mut svc, &answer).await.unwrap();
        let back = loop {
            let f = read_frame(&mut cl, DEFAULT_MAX_FRAME_BYTES)
                .await
                .unwrap()
                .unwrap();
            if f.kind == Kind::Response {
                break f;
            }
        };
        assert_eq!(back.corr(), 41, "the caller's correlation id is restored");
        assert_eq!(
            back.payload.to_vec(),
            answer.payload.to_vec(),
            "the response's bytes changed"
        );
    })
    .await
    .unwrap();
}

/// A real process that prints its pid, reads its Hello (hex) from stdin,
/// says it on the bus socket, and prints the broker's answer (hex).
const HELLO_PEER: &str = "import os,socket,sys\nprint(os.getpid(),flush=True)\nhello=bytes.fromhex(sys.stdin.readline().strip())\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(hello)\ns.settimeout(5)\nprint(s.recv(65536).hex(),flush=True)\n";

/// Starts `sh -c <script>` whose python child runs [`HELLO_PEER`]; returns
/// the sh process and the python pid.
async fn hello_peer(
    f: &Fixture,
    script: &str,
) -> (
    tokio::process::Child,
    u32,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    tokio::process::ChildStdin,
) {
    use tokio::io::AsyncBufReadExt;
    let mut sh = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(HELLO_PEER)
        .arg(&f.socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sh and python3 are needed for this test (installed by .ci/run)");
    let mut lines = tokio::io::BufReader::new(sh.stdout.take().unwrap()).lines();
    let stdin = sh.stdin.take().unwrap();
    let pid: u32 = lines
        .next_line()
        .await
        .unwrap()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (sh, pid, lines, stdin)
}

async fn say_hello(
    pid: u32,
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    stdin: &mut tokio::process::ChildStdin,
) -> Frame {
    let hello = Frame::new(
        1,
        &Hello {
            service: None,
            pid,
            protocol_version: PROTOCOL_VERSION,
            build_id: "py".into(),
        },
    )
    .unwrap()
    .to_bytes();
    let hex: String = hello.iter().map(|b| format!("{b:02x}")).collect();
    stdin
        .write_all(format!("{hex}\n").as_bytes())
        .await
        .unwrap();
    let answer = lines.next_line().await.unwrap().unwrap();
    let bytes: Vec<u8> = (0..answer.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&answer[i..i + 2], 16).unwrap())
        .collect();
    read_frame(&mut bytes.as_slice(), DEFAULT_MAX_FRAME_BYTES)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_service_starts_is_never_the_user() {
    tokio::time::timeout(LIMIT, async {
        // This test process plays openintentd: broker and subreaper.
        // SAFETY: PR_SET_CHILD_SUBREAPER takes a plain flag.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) },
            0
        );
        let f = fixture().await;

        // A command a service runs: sh is "the service", python its child.
        let (mut svc, pid, mut lines, mut stdin) = hello_peer(&f, "python3 -c \"$1\" \"$2\"").await;
        f.broker.expect_service("shell", svc.id().unwrap());
        let answer = say_hello(pid, &mut lines, &mut stdin).await;
        let why = refusal(&answer);
        assert!(
            why.contains(&format!(
                "pid {pid} was started by service pid {}",
                svc.id().unwrap()
            )),
            "{why}"
        );
        let _ = svc.kill().await;

        // The same command double-forked away from its service: reparented
        // to the subreaper, and still no user.
        let (mut sh, pid, mut lines, mut stdin) =
            hello_peer(&f, "exec 3<&0; python3 -c \"$1\" \"$2\" <&3 & exit 0").await;
        let _ = sh.wait().await;
        let answer = say_hello(pid, &mut lines, &mut stdin).await;
        let why = refusal(&answer);
        assert!(
            why.contains(&format!("pid {pid} was left behind by a service")),
            "{why}"
        );
        // Reap the orphan (this process is its parent now).
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);

        // The service process itself may not pose as a plain client.
        let (mut svc, pid, mut lines, mut stdin) =
            hello_peer(&f, "exec python3 -c \"$1\" \"$2\"").await;
        f.broker.expect_service("shell", pid);
        let answer = say_hello(pid, &mut lines, &mut stdin).await;
        assert!(
            refusal(&answer).contains("is a service process"),
            "{:?}",
            refusal(&answer)
        );
        let _ = svc.kill().await;

        // openintentd's own clients (this process) are still served.
        let c = client(&f.socket).await;
        assert!(
            c.request(
                KERNEL_DESTINATION,
                methods::REGISTRY_SERVICES,
                b"",
                CallOptions::default()
            )
            .await
            .is_ok()
        );
    })
    .await
    .unwrap();
}

/// Polls `cond` every 5 ms until it holds, or panics naming `what`.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn limited(l: oi_kernel::limits::Limits) -> impl FnOnce(&mut BrokerConfig) {
    move |c| c.limits = l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limits_are_refused_with_the_reason() {
    tokio::time::timeout(LIMIT, async {
        let l = oi_kernel::limits::Limits {
            max_connections: 70,
            max_connections_per_process: 4,
            ..Default::default()
        };
        let f = fixture_with(limited(l)).await;
        // Idle sockets count from accept, before any Hello.
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(UnixStream::connect(&f.socket).await.unwrap());
        }
        until(
            "f.broker.open_sockets() >= 4",
            Duration::from_secs(2),
            || f.broker.open_sockets() >= 4,
        )
        .await;
        let mut fifth = UnixStream::connect(&f.socket).await.unwrap();
        let answer = read_frame(&mut fifth, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        let why = refusal(&answer);
        assert!(
            why.contains(&format!(
                "pid {} already holds 4 bus connections",
                std::process::id()
            )),
            "{why}"
        );
        assert!(why.contains("max_connections_per_process = 4"), "{why}");
        drop(idle);
        let t0 = Instant::now();
        while f.broker.open_sockets() > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "closed sockets not counted out"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let c = client(&f.socket).await;
        assert!(
            c.request(
                KERNEL_DESTINATION,
                methods::REGISTRY_SERVICES,
                b"",
                CallOptions::default()
            )
            .await
            .is_ok()
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_fill_only_their_share_and_a_service_still_connects() {
    tokio::time::timeout(LIMIT, async {
        let l = oi_kernel::limits::Limits {
            max_connections: 70,
            max_connections_per_process: 1000,
            ..Default::default()
        };
        let mut f = fixture_with(limited(l)).await;
        let mut idle = Vec::new();
        for _ in 0..6 {
            idle.push(UnixStream::connect(&f.socket).await.unwrap());
        }
        until(
            "f.broker.open_sockets() >= 6",
            Duration::from_secs(2),
            || f.broker.open_sockets() >= 6,
        )
        .await;
        let mut seventh = UnixStream::connect(&f.socket).await.unwrap();
        let answer = read_frame(&mut seventh, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        let why = refusal(&answer);
        assert!(why.contains("the bus holds 6 connections"), "{why}");
        assert!(why.contains("64 of them kept for services"), "{why}");
        // The reserve: a service the supervisor started still gets in.
        let (_d, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        assert_eq!(f.broker.open_sockets(), 7);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_per_connection_are_capped_and_unknown_ones_never_wait() {
    tokio::time::timeout(LIMIT, async {
        let l = oi_kernel::limits::Limits {
            max_requests_per_connection: 8,
            ..Default::default()
        };
        let mut f = fixture_with(limited(l)).await;
        let (dropped, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        let c = Arc::new(client(&f.socket).await);
        let mut hanging = Vec::new();
        for _ in 0..8 {
            let c = c.clone();
            hanging.push(tokio::spawn(async move {
                c.request(
                    "echo",
                    "hang",
                    b"",
                    CallOptions::deadline(Duration::from_secs(30)),
                )
                .await
            }));
        }
        let t0 = Instant::now();
        while f.broker.requests_in_flight() < 8 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the eight never got in flight"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let err = c
            .request("echo", "echo", b"x", CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert!(
            err.to_string()
                .contains("this connection has 8 requests in flight"),
            "{err}"
        );
        // Another connection is served meanwhile.
        let other = client(&f.socket).await;
        assert_eq!(
            other
                .request("echo", "echo", b"ok", CallOptions::default())
                .await
                .unwrap(),
            b"ok"
        );
        // Cancelled, the slots come back.
        for h in hanging {
            h.abort();
        }
        let t0 = Instant::now();
        while dropped.load(Ordering::SeqCst) < 8 {
            assert!(t0.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            c.request("echo", "echo", b"again", CallOptions::default())
                .await
                .unwrap(),
            b"again"
        );
        // Once the supervisor has said what it runs, a request that would
        // wait for anything else fails at once.
        f.broker.set_wanted(["echo".to_string()].into());
        let t0 = Instant::now();
        let err = c
            .request(
                "ghost",
                "x",
                b"",
                CallOptions::deadline(Duration::from_secs(20)).waiting(),
            )
            .await
            .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert!(
            err.to_string()
                .contains("service 'ghost' is not running, and nothing is starting it"),
            "{err}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_together_cannot_make_the_broker_buffer_past_its_budget() {
    tokio::time::timeout(LIMIT, async {
        let budget = 4 * 1024 * 1024;
        let l = oi_kernel::limits::Limits {
            max_queued_bytes: budget,
            ..Default::default()
        };
        let mut f = fixture_with(limited(l)).await;
        let (_d, _svc) = spawn_service(&f, "echo");
        wait_ready(&mut f.events, "echo").await;
        // Eight peers ask for 512 KiB echoes and never read the answers.
        let payload = vec![7u8; 512 * 1024];
        let mut readers = Vec::new();
        for _ in 0..8 {
            let (mut s, welcome) = raw_hello(&f.socket, None, std::process::id()).await;
            assert_eq!(welcome.kind, Kind::Welcome);
            for i in 0..16u64 {
                let req = Frame::new(
                    100 + i,
                    &Request {
                        destination: "echo".into(),
                        caller: String::new(),
                        method: "echo".into(),
                        deadline_ms: 0,
                        wait_for_service: false,
                        stream: false,
                        intent: String::new(),
                        chat: String::new(),
                        payload: payload.clone(),
                    },
                )
                .unwrap();
                if write_frame(&mut s, &req).await.is_err() {
                    break;
                }
            }
            readers.push(s);
        }
        // 8 x 16 x 512 KiB = 64 MiB asked for; the queues never pass 4 MiB:
        // a peer whose answers would pass it is cut off instead.
        let t0 = Instant::now();
        while f.broker.requests_in_flight() > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "requests still in flight"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let peak = f.broker.queued_bytes_peak();
        assert!(
            peak <= budget,
            "queued {peak} bytes, over the {budget} budget"
        );
        assert!(
            peak > budget / 2,
            "only {peak} bytes were ever queued: the test proves nothing"
        );
        let cut = read_frame(&mut readers[0], DEFAULT_MAX_FRAME_BYTES).await;
        let mut cut_off = matches!(cut, Err(_) | Ok(None));
        while !cut_off {
            match read_frame(&mut readers[0], DEFAULT_MAX_FRAME_BYTES).await {
                Ok(Some(_)) => {}
                _ => cut_off = true,
            }
        }
        // The slow peers were cut off; everyone else is served.
        let c = client(&f.socket).await;
        assert_eq!(
            c.request("echo", "echo", b"fine", CallOptions::default())
                .await
                .unwrap(),
            b"fine"
        );
        drop(readers);
        let t0 = Instant::now();
        while f.broker.queued_bytes() != 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "queued bytes not given back"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
}
