//! The contract is the only place where service and method names are
//! written, and each typed method reads back what it wrote.

use std::path::{Path, PathBuf};

use crate::agent::{CommandRequest, IntentRequest};
use crate::contract::{Body, Json, Text};
use crate::vault::{SecretName, SecretValue};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if p.is_dir() {
            if !matches!(name.as_ref(), "target" | ".git" | "ipc-schema" | "fuzz") {
                sources(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// `"name"` of every `pub const X: &str = "name";` in this crate's modules.
fn contract_strings() -> (Vec<String>, Vec<String>) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut methods, mut services) = (Vec::new(), Vec::new());
    let mut files = Vec::new();
    sources(&here, &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("pub const ") else {
                continue;
            };
            let Some((head, value)) = rest.split_once(": &str = \"") else {
                continue;
            };
            let Some(value) = value.strip_suffix("\";") else {
                continue;
            };
            if head == "SERVICE" || head == "KERNEL_DESTINATION" {
                services.push(value.to_string());
            } else if value.contains('.') {
                methods.push(value.to_string());
            }
        }
    }
    (methods, services)
}

#[test]
fn no_service_or_method_name_is_written_outside_the_contract() {
    let (methods, services) = contract_strings();
    assert!(
        methods.len() > 40 && services.len() >= 7,
        "{methods:?} {services:?}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    sources(root, &mut files);
    assert!(files.len() > 100, "found only {} sources", files.len());
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for m in &methods {
                if line.contains(&format!("\"{m}\"")) {
                    found.push(format!("{}:{}: method {m}", f.display(), n + 1));
                }
            }
        }
        // A destination written by hand: `.request("vault", ...` however
        // it is wrapped.
        let squeezed: String = text.split_whitespace().collect();
        for s in &services {
            for call in [".request(", ".request_stream(", "call_on(client,"] {
                if squeezed.contains(&format!("{call}\"{s}\"")) {
                    found.push(format!("{}: destination {s} in {call}", f.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "names the contract owns, written by hand (use the constants of oi_ipc_schema):\n{}",
        found.join("\n")
    );
}

#[test]
fn typed_bodies_read_back_what_they_wrote() {
    let req = IntentRequest {
        text: "hello".into(),
        chat: "cli:ann".into(),
        ..Default::default()
    };
    let bytes = crate::agent::RUN.encode_request(&req).unwrap();
    assert_eq!(crate::agent::RUN.decode_request(&bytes, 1).unwrap(), req);
    let c = CommandRequest {
        chat: "c".into(),
        text: "/help".into(),
    };
    let bytes = crate::agent::COMMAND.encode_request(&c).unwrap();
    assert_eq!(crate::agent::COMMAND.decode_request(&bytes, 1).unwrap(), c);
    let v = SecretValue {
        value: b"s3cret".to_vec(),
        hosts: vec!["api.example.com".into()],
    };
    let bytes = crate::vault::GET.encode_reply(&v).unwrap();
    let back = crate::vault::GET.decode_reply(&bytes).unwrap();
    assert_eq!((back.value, back.hosts), (v.value, v.hosts));
    // A reply of the wrong type is an error, not garbage.
    let name = crate::vault::GET
        .encode_request(&SecretName { name: "k".into() })
        .unwrap();
    assert!(crate::vault::GET.decode_reply(&name).is_err());
    // No payload is zero bytes; text and JSON are UTF-8 checked.
    assert!(().encode_body().unwrap().is_empty());
    assert_eq!(
        Text::decode_body(b"waiting for x", crate::Kind::Response, 0).unwrap(),
        Text("waiting for x".into())
    );
    assert!(Json::decode_body(&[0xff, 0xfe], crate::Kind::Response, 0).is_err());
}
