//! Tools on the bus.
//!
//! A tool is a method of the service that registered it: the request's
//! method is the tool's name, its payload the arguments as JSON text, and
//! the reply the result as JSON text (tool arguments come from LLMs and go
//! back to them, so they stay JSON end to end). A failed call is a bus
//! error whose code says what kind of failure it was (`bad_request` for
//! wrong arguments, `denied` for a policy refusal, `timeout`, `internal`)
//! and whose message says what was wrong.

use std::time::Duration;

use oi_ipc_schema::control::{self, ToolList};
use oi_ipc_schema::{ErrorCode, ToolSpec};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{BusClient, BusError, CallOptions, IncomingRequest};
use crate::harness::{Reply, ServiceError};

/// A tool's description as registered with the kernel.
pub fn spec(name: &str, description: &str, schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        args_schema_json: schema.to_string(),
    }
}

/// Parses a tool call's JSON arguments into `T`. The error names the tool
/// and says what is wrong and where (serde's field and position).
pub fn args<T: DeserializeOwned>(req: &IncomingRequest) -> Result<T, ServiceError> {
    parse_args(req.method(), req.payload())
}

/// [`args`] on raw bytes.
pub fn parse_args<T: DeserializeOwned>(tool: &str, payload: &[u8]) -> Result<T, ServiceError> {
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        payload
    };
    let value: Value = serde_json::from_slice(payload).map_err(|e| {
        ServiceError::bad_request(format!("{tool}: arguments are not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(ServiceError::bad_request(format!(
            "{tool}: arguments must be a JSON object, not {}",
            json_type(&value)
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| ServiceError::bad_request(format!("{tool}: invalid arguments: {e}")))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A tool's result as the reply.
pub fn json_reply(v: Value) -> Result<Reply, ServiceError> {
    Ok(Reply::Once(v.to_string().into_bytes()))
}

/// A tool refused by policy.
pub fn denied(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::Denied, message)
}

/// A tool that ran out of time.
pub fn timed_out(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::Timeout, message)
}

/// Errors of [`call`].
#[derive(Debug, thiserror::Error)]
pub enum ToolCallError {
    #[error("no ready service offers a tool named '{name}' (tools: {known})")]
    Unknown { name: String, known: String },
    #[error("{0}")]
    Bus(#[from] BusError),
    #[error("{tool}: the result is not JSON: {error}")]
    BadResult { tool: String, error: String },
}

/// The tools of every ready service, from the kernel's registry.
pub async fn list(client: &BusClient, deadline: Duration) -> Result<ToolList, BusError> {
    client
        .call(
            control::REGISTRY_TOOLS,
            &(),
            CallOptions::deadline(deadline),
        )
        .await
}

/// Calls a tool by name: finds the service that registered it, sends the
/// call and parses the JSON result. `opts.deadline` bounds the call.
pub async fn call(
    client: &BusClient,
    name: &str,
    arguments_json: &str,
    opts: CallOptions,
) -> Result<Value, ToolCallError> {
    let tools = list(client, opts.deadline).await?;
    let Some(t) = tools.tools.iter().find(|t| t.spec.name == name) else {
        return Err(ToolCallError::Unknown {
            name: name.into(),
            known: tools
                .tools
                .iter()
                .map(|t| t.spec.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    call_on(client, &t.service, name, arguments_json, opts).await
}

/// Calls a tool of a service known by name (without asking the registry,
/// so `opts.waiting()` can wait for a restarting service) and parses the
/// JSON result.
pub async fn call_on(
    client: &BusClient,
    service: &str,
    name: &str,
    arguments_json: &str,
    opts: CallOptions,
) -> Result<Value, ToolCallError> {
    let bytes = client
        .request(service, name, arguments_json.as_bytes(), opts)
        .await?;
    serde_json::from_slice(&bytes).map_err(|e| ToolCallError::BadResult {
        tool: name.into(),
        error: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct ReadArgs {
        path: String,
        #[serde(default)]
        offset: u64,
    }

    #[test]
    fn argument_errors_name_the_tool_and_the_problem() {
        let e = parse_args::<ReadArgs>("fs_read_file", b"{\"path\": 3}").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(
            e.message
                .starts_with("fs_read_file: invalid arguments: invalid type: integer `3`"),
            "{e}"
        );
        let e = parse_args::<ReadArgs>("fs_read_file", b"{\"path\": \"a\",").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{e}");
        assert!(e.message.contains("line 1 column"), "{e}");
        let e = parse_args::<ReadArgs>("fs_read_file", b"[1]").unwrap_err();
        assert!(e.message.ends_with("a JSON object, not an array"), "{e}");
        let e = parse_args::<ReadArgs>("fs_read_file", b"{\"pth\": \"a\"}").unwrap_err();
        assert!(e.message.contains("unknown field `pth`"), "{e}");
        let a: ReadArgs = parse_args("fs_read_file", b"{\"path\": \"a\"}").unwrap();
        assert_eq!((a.path.as_str(), a.offset), ("a", 0));
    }

    #[test]
    fn empty_arguments_mean_an_empty_object() {
        #[derive(serde::Deserialize)]
        struct None_ {
            #[serde(default)]
            n: u32,
        }
        let a: None_ = parse_args("t", b"  ").unwrap();
        assert_eq!(a.n, 0);
    }
}
