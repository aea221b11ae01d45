//! Following an intent against a scripted agent on a real broker: the
//! agent's own limit, said in its `Started`, bounds the wait, so no
//! interface needs the agent's config.

use std::time::{Duration, Instant};

use oi_client::intent::Intent;
use oi_ipc_schema::agent::{AgentEvent, IntentRequest, IntentResult, Stop};
use oi_ipc_schema::{DEFAULT_MAX_FRAME_BYTES, ToolSpec, encode_payload};
use oi_kernel::broker::{Broker, BrokerConfig, BusEvent};
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::harness::{self, Reply, Service, ServiceError, decode_request};
use tokio::sync::mpsc;

/// An agent that starts every intent with a 0-second limit; "finish"
/// gets its Done, anything else then silence.
struct Scripted;

impl Service for Scripted {
    fn tools(&self) -> Vec<ToolSpec> {
        Vec::new()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        let intent: IntentRequest = decode_request(&req)?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let started = AgentEvent::Started {
                id: intent.id.clone(),
                limit_secs: 0,
            };
            let _ = tx.send(Ok(encode_payload(&started).unwrap())).await;
            if intent.text == "finish" {
                let done =
                    AgentEvent::Done(IntentResult::new(&intent.id, "scripted", Stop::Answered));
                let _ = tx.send(Ok(encode_payload(&done).unwrap())).await;
            } else {
                std::future::pending::<()>().await;
            }
        });
        Ok(Reply::Stream(rx))
    }
}

#[tokio::test]
async fn the_agents_limit_bounds_the_wait_and_a_done_in_time_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    oi_kernel::paths::create_private_dir(&dir.path().join("run")).unwrap();
    let socket = dir.path().join("run/bus.sock");
    let (broker, mut events) = Broker::bind(BrokerConfig::new(socket.clone()))
        .await
        .unwrap();
    broker.expect_service(oi_ipc_schema::agent::SERVICE, std::process::id());
    let s = socket.clone();
    tokio::spawn(async move {
        let _ = harness::serve(oi_ipc_schema::agent::SERVICE, &s, |_| async {
            Ok(Scripted)
        })
        .await;
    });
    while !matches!(events.recv().await, Some(BusEvent::Ready { .. })) {}
    let (client, _inbound) = BusClient::connect(&socket, None, DEFAULT_MAX_FRAME_BYTES)
        .await
        .unwrap();
    let ask = |text: &str| IntentRequest {
        id: "i1".into(),
        chat: String::new(),
        text: text.into(),
        alias: String::new(),
        history: false,
    };

    // Silence after Started: ended by the limit (0 s) plus the grace, with
    // the reason, although the caller's own bound is a day.
    let t = Instant::now();
    let mut intent = Intent::start(
        &client,
        &ask("hang"),
        oi_client::intent::UNTIL_THE_AGENTS_LIMIT,
    )
    .unwrap()
    .with_grace(Duration::from_millis(300));
    assert!(matches!(
        intent.next().await,
        Some(Ok(AgentEvent::Started { limit_secs: 0, .. }))
    ));
    let end = intent.next().await.unwrap().unwrap_err();
    assert!(
        end.contains("within its 0-second limit ([agent] intent_timeout_secs)"),
        "{end}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(intent.next().await.is_none());

    // A Done within the bound is the end.
    let mut intent = Intent::start(&client, &ask("finish"), Duration::from_secs(20))
        .unwrap()
        .with_grace(Duration::from_secs(5));
    assert!(matches!(
        intent.next().await,
        Some(Ok(AgentEvent::Started { .. }))
    ));
    assert!(matches!(intent.next().await, Some(Ok(AgentEvent::Done(_)))));
    assert!(intent.next().await.is_none());
}
