//! Round trips, corruption sweeps and malformed buffers for every message type.

use proptest::prelude::*;

use crate::control::*;
use crate::frame::{Frame, FrameError, FrameHeader, HEADER_LEN, Kind, Payload, decode};
use crate::messages::*;
use crate::{DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, encode_frame};

fn text() -> impl Strategy<Value = String> {
    // Mix ASCII, CJK and emoji so multi-byte strings are covered.
    "[a-zA-Z0-9 _./:-]{0,40}|[\\p{Han}\\p{Emoji}]{0,10}"
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300)
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::Unavailable),
        Just(ErrorCode::Timeout),
        Just(ErrorCode::Denied),
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::Internal),
        Just(ErrorCode::Cancelled),
    ]
}

fn tool_spec() -> impl Strategy<Value = ToolSpec> {
    (text(), text(), text()).prop_map(|(name, description, args_schema_json)| ToolSpec {
        name,
        description,
        args_schema_json,
    })
}

/// Encodes a message into a frame, parses the frame back as the receiver
/// does, and checks that what comes out equals what went in.
fn round_trip<M>(corr: u64, msg: &M)
where
    M: crate::Message + std::fmt::Debug + PartialEq,
{
    let wire = encode_frame(corr, msg).expect("encode");
    let frame = Frame::parse(&wire, DEFAULT_MAX_FRAME_BYTES).expect("parse");
    assert_eq!(frame.kind, M::KIND);
    assert_eq!(frame.corr(), corr);
    assert_eq!(frame.header.version, PROTOCOL_VERSION);
    assert_eq!(&frame.decode::<M>().expect("decode"), msg);
    assert_eq!(frame.to_bytes(), wire);
}

proptest! {
    #[test]
    fn hello_round_trips(corr: u64, service in proptest::option::of(text()), pid: u32, v: u16, build in text()) {
        round_trip(corr, &Hello { service, pid, protocol_version: v, build_id: build });
    }

    #[test]
    fn welcome_round_trips(corr: u64, id: u64, pid: u32, v: u16, build in text(), hb: u32) {
        round_trip(corr, &Welcome { connection_id: id, broker_pid: pid, protocol_version: v, build_id: build, heartbeat_interval_ms: hb });
    }

    #[test]
    fn ready_round_trips(corr: u64, detail in text()) {
        round_trip(corr, &Ready { detail });
    }

    #[test]
    fn heartbeat_round_trips(corr: u64, seq: u64) {
        round_trip(corr, &Heartbeat { seq });
    }

    #[test]
    fn request_round_trips(corr: u64, destination in text(), caller in text(), method in text(), deadline_ms: u32, wait_for_service: bool, stream: bool, intent in text(), chat in text(), payload in bytes()) {
        round_trip(corr, &Request { destination, caller, method, deadline_ms, wait_for_service, stream, intent, chat, payload });
    }

    #[test]
    fn response_round_trips(corr: u64, payload in bytes()) {
        round_trip(corr, &Response { payload });
    }

    #[test]
    fn stream_chunk_round_trips(corr: u64, seq: u32, payload in bytes()) {
        round_trip(corr, &StreamChunk { seq, payload });
    }

    #[test]
    fn stream_end_round_trips(corr: u64, payload in bytes()) {
        round_trip(corr, &StreamEnd { payload });
    }

    #[test]
    fn error_round_trips(corr: u64, code in error_code(), message in text()) {
        round_trip(corr, &ErrorReply { code, message });
    }

    #[test]
    fn shutdown_round_trips(corr: u64, reason in text(), grace_ms: u32) {
        round_trip(corr, &Shutdown { reason, grace_ms });
    }

    #[test]
    fn config_changed_round_trips(corr: u64, generation: u64, config_toml in text()) {
        round_trip(corr, &ConfigChanged { generation, config_toml });
    }

    #[test]
    fn register_tools_round_trips(corr: u64, tools in proptest::collection::vec(tool_spec(), 0..6)) {
        round_trip(corr, &RegisterTools { tools });
    }

    #[test]
    fn cancel_round_trips(corr: u64, reason in text()) {
        round_trip(corr, &Cancel { reason });
    }

    #[test]
    fn header_round_trips(len: u32, version: u16, kind: u16, corr: u64) {
        let h = FrameHeader { len, version, kind, corr };
        prop_assert_eq!(FrameHeader::from_bytes(&h.to_bytes()), h);
    }

    #[test]
    fn control_payloads_round_trip(name in text(), lines in proptest::collection::vec(text(), 0..5), follow: bool, n: u32) {
        let req = LogsRequest { name: name.clone(), lines: n, follow };
        let bytes = crate::encode_payload(&req).unwrap();
        prop_assert_eq!(crate::decode_payload::<LogsRequest>(&bytes, Kind::Request, 1).unwrap(), req);
        let out = LogLines { lines };
        let bytes = crate::encode_payload(&out).unwrap();
        prop_assert_eq!(crate::decode_payload::<LogLines>(&bytes, Kind::Response, 1).unwrap(), out);
    }

    #[test]
    fn llm_payloads_round_trip(texts in proptest::collection::vec(text(), 6), n: u32, t in -1.0f32..2.0) {
        use crate::llm::*;
        let call = ToolCall { id: texts[0].clone(), name: texts[1].clone(), arguments: texts[2].clone(), error: texts[3].clone() };
        let mut assistant = ChatMessage::assistant(texts[4].clone());
        assistant.tool_calls = vec![call.clone(), call.clone()];
        assistant.extras = vec![Extra { origin: texts[5].clone(), key: "reasoning_content".into(), value_json: "\"x\"".into() }];
        let req = ChatRequest {
            chat: texts[0].clone(), alias: texts[1].clone(),
            messages: vec![ChatMessage::system(texts[2].clone()), assistant.clone(), ChatMessage::tool_result(texts[0].clone(), texts[1].clone(), texts[3].clone())],
            tools: vec![ToolDef { name: texts[1].clone(), description: texts[2].clone(), parameters_json: "{}".into() }],
            max_tokens: n, temperature: t, deltas: n % 2 == 0,
        };
        let bytes = crate::encode_payload(&req).unwrap();
        prop_assert_eq!(crate::decode_payload::<ChatRequest>(&bytes, Kind::Request, 1).unwrap(), req);
        let resp = ChatResponse {
            message: assistant, finish_reason: "tool_calls".into(), usage: Usage { prompt_tokens: n, completion_tokens: n / 2 },
            deployment: texts[5].clone(), model: texts[4].clone(), context_window: n, fallbacks: n % 5,
            attempts: vec![Attempt { deployment: texts[5].clone(), class: "rate_limited".into(), status: 429, latency_ms: n, prompt_tokens: 0, completion_tokens: 0, cooldown_ms: 120_000, message: texts[3].clone() }],
        };
        for ev in [StreamEvent::Text(texts[0].clone()), StreamEvent::ToolCall(call), StreamEvent::Done(resp)] {
            let bytes = crate::encode_payload(&ev).unwrap();
            prop_assert_eq!(crate::decode_payload::<StreamEvent>(&bytes, Kind::StreamChunk, 1).unwrap(), ev);
        }
    }

    /// Arbitrary bytes fed to the frame parser are an error or a frame, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Frame::parse(&data, DEFAULT_MAX_FRAME_BYTES);
    }
}

/// One sample frame of every kind, with non-trivial contents.
fn samples() -> Vec<Vec<u8>> {
    let tools = vec![ToolSpec {
        name: "fs_read_file".into(),
        description: "Read a file — 読む".into(),
        args_schema_json: r#"{"type":"object","properties":{"path":{"type":"string"}}}"#.into(),
    }];
    vec![
        encode_frame(
            1,
            &Hello {
                service: Some("vault".into()),
                pid: 4242,
                protocol_version: 1,
                build_id: "0.1.0-abc".into(),
            },
        )
        .unwrap(),
        encode_frame(
            2,
            &Welcome {
                connection_id: 9,
                broker_pid: 1,
                protocol_version: 1,
                build_id: "x".into(),
                heartbeat_interval_ms: 1000,
            },
        )
        .unwrap(),
        encode_frame(
            3,
            &Ready {
                detail: "ok".into(),
            },
        )
        .unwrap(),
        encode_frame(4, &Heartbeat { seq: 77 }).unwrap(),
        encode_frame(
            5,
            &Request {
                destination: "memory".into(),
                caller: "agent".into(),
                method: "memory_search".into(),
                deadline_ms: 5000,
                wait_for_service: true,
                stream: false,
                intent: String::new(),
                chat: String::new(),
                payload: br#"{"query":"rust"}"#.to_vec(),
            },
        )
        .unwrap(),
        encode_frame(
            6,
            &Response {
                payload: vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
            },
        )
        .unwrap(),
        encode_frame(
            7,
            &StreamChunk {
                seq: 3,
                payload: "token 🚀".as_bytes().to_vec(),
            },
        )
        .unwrap(),
        encode_frame(8, &StreamEnd { payload: vec![] }).unwrap(),
        encode_frame(
            9,
            &ErrorReply {
                code: ErrorCode::Timeout,
                message: "deadline of 5000 ms passed".into(),
            },
        )
        .unwrap(),
        encode_frame(
            10,
            &Shutdown {
                reason: "SIGTERM".into(),
                grace_ms: 5000,
            },
        )
        .unwrap(),
        encode_frame(
            11,
            &ConfigChanged {
                generation: 2,
                config_toml: "[bus]\nmax_frame_bytes = 1024\n".into(),
            },
        )
        .unwrap(),
        encode_frame(12, &RegisterTools { tools }).unwrap(),
        encode_frame(
            13,
            &Cancel {
                reason: "Ctrl-C".into(),
            },
        )
        .unwrap(),
        encode_frame(
            14,
            &audit::AuditRecord {
                intent: "i1".into(),
                action: "provider:fast".into(),
                arguments: "{}".into(),
                outcome: "ok".into(),
                duration_ms: 12,
            },
        )
        .unwrap(),
    ]
}

#[test]
fn samples_cover_every_kind() {
    let kinds: Vec<Kind> = samples()
        .iter()
        .map(|wire| Frame::parse(wire, DEFAULT_MAX_FRAME_BYTES).unwrap().kind)
        .collect();
    assert_eq!(kinds, Kind::ALL.to_vec());
}

/// Flip every byte of every sample archive in turn: each result is an error
/// or a clean decode, never a panic. Header bytes are included.
#[test]
fn corruption_sweep_never_panics() {
    let mut errors = 0usize;
    let mut clean = 0usize;
    for wire in samples() {
        for i in 0..wire.len() {
            for flip in [0xFFu8, 0x01, 0x80] {
                let mut bad = wire.clone();
                bad[i] ^= flip;
                match std::panic::catch_unwind(|| Frame::parse(&bad, DEFAULT_MAX_FRAME_BYTES)) {
                    Ok(Ok(_)) => clean += 1,
                    Ok(Err(_)) => errors += 1,
                    Err(_) => panic!("parser panicked on byte {i} flipped with {flip:#x}"),
                }
            }
        }
    }
    // Both outcomes occur: flips in string bytes decode cleanly, flips in
    // lengths and offsets are caught by validation.
    assert!(errors > 100, "only {errors} corruptions detected");
    assert!(clean > 100, "only {clean} clean decodes");
}

#[test]
fn truncated_frames_are_errors() {
    for wire in samples() {
        for cut in 0..wire.len() {
            assert!(
                Frame::parse(&wire[..cut], DEFAULT_MAX_FRAME_BYTES).is_err(),
                "truncation to {cut} bytes accepted"
            );
        }
    }
}

#[test]
fn truncated_payload_with_matching_header_is_an_error() {
    // A header that agrees with the shortened payload: validation must still
    // notice the archive is cut.
    let wire = encode_frame(
        5,
        &Request {
            destination: "memory".into(),
            caller: String::new(),
            method: "m".into(),
            deadline_ms: 1,
            wait_for_service: false,
            stream: false,
            intent: String::new(),
            chat: String::new(),
            payload: vec![7; 64],
        },
    )
    .unwrap();
    let payload = &wire[HEADER_LEN..];
    for cut in 0..payload.len() {
        let mut aligned = Payload::new();
        aligned.extend_from_slice(&payload[..cut]);
        assert!(
            decode::<Request>(&aligned, 5).is_err(),
            "payload cut at {cut} accepted"
        );
    }
}

#[test]
fn misaligned_buffer_is_an_error_not_ub() {
    let wire = encode_frame(
        6,
        &Response {
            payload: vec![1; 40],
        },
    )
    .unwrap();
    let payload = &wire[HEADER_LEN..];
    let mut shifted = Payload::new();
    shifted.push(0);
    shifted.extend_from_slice(payload);
    let err = decode::<Response>(&shifted[1..], 6).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Invalid {
                kind: Kind::Response,
                corr: 6,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn oversized_length_is_rejected_by_header_check() {
    let h = FrameHeader {
        len: u32::MAX,
        version: PROTOCOL_VERSION,
        kind: Kind::Request as u16,
        corr: 9,
    };
    let err = h.check(DEFAULT_MAX_FRAME_BYTES).unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLarge {
            kind: 5,
            corr: 9,
            len: u32::MAX,
            max: DEFAULT_MAX_FRAME_BYTES
        }
    );
    assert!(
        err.to_string()
            .contains("over the maximum frame size of 8388608 bytes")
    );
}

#[test]
fn version_mismatch_names_both_versions() {
    let h = FrameHeader {
        len: 0,
        version: PROTOCOL_VERSION + 1,
        kind: 1,
        corr: 0,
    };
    let msg = h.check(DEFAULT_MAX_FRAME_BYTES).unwrap_err().to_string();
    assert!(
        msg.contains(&format!("version {}", PROTOCOL_VERSION + 1))
            && msg.contains(&format!("version {PROTOCOL_VERSION}")),
        "{msg}"
    );
}

#[test]
fn unknown_kind_is_rejected() {
    let h = FrameHeader {
        len: 0,
        version: PROTOCOL_VERSION,
        kind: 999,
        corr: 3,
    };
    assert_eq!(
        h.check(DEFAULT_MAX_FRAME_BYTES).unwrap_err(),
        FrameError::UnknownKind { kind: 999, corr: 3 }
    );
}

#[test]
fn wrong_kind_access_is_rejected() {
    let wire = encode_frame(1, &Heartbeat { seq: 1 }).unwrap();
    let frame = Frame::parse(&wire, DEFAULT_MAX_FRAME_BYTES).unwrap();
    assert!(matches!(
        frame.access::<Request>(),
        Err(FrameError::UnexpectedKind {
            expected: Kind::Request,
            got: Kind::Heartbeat,
            corr: 1
        })
    ));
}
