//! The loop's model and tools over the bus: the llm-router for the model,
//! the kernel's registry and the adapters for tools.

use std::time::Duration;

use oi_ipc_schema::llm::{self, ChatRequest, ChatResponse, ModelChoice, ModelsStatus, ToolDef};
use oi_ipc_schema::{ErrorCode, encode_payload};
use oi_kernel::client::{BusClient, BusError, CallOptions};
use oi_kernel::tool::{self, ToolCallError};

use crate::react::{Llm, LlmError, ToolInfo, Tools, timeout_message};

pub const LLM_ROUTER: &str = "llm-router";

#[derive(Clone)]
pub struct BusLlm(pub BusClient);

impl Llm for BusLlm {
    async fn chat(
        &self,
        req: ChatRequest,
        intent: &str,
        timeout: Duration,
    ) -> Result<ChatResponse, LlmError> {
        let opts = CallOptions::deadline(timeout).for_intent(intent);
        self.0
            .call(LLM_ROUTER, llm::methods::CHAT, &req, opts)
            .await
            .map_err(|e| LlmError {
                unavailable: matches!(e.code(), ErrorCode::Unavailable),
                message: e.to_string(),
            })
    }
}

/// The router's deployments and their health. A router that is
/// restarting (the supervisor is bringing it back) is waited for, up to
/// `wait`; one nobody is starting fails at once.
pub async fn models(client: &BusClient, wait: Duration) -> Result<ModelsStatus, BusError> {
    let bytes = client
        .request(
            LLM_ROUTER,
            llm::methods::MODELS,
            &[],
            CallOptions::deadline(wait).waiting(),
        )
        .await?;
    oi_ipc_schema::decode_payload(&bytes, oi_ipc_schema::Kind::Response, 0)
        .map_err(|e| BusError::Protocol(e.to_string()))
}

/// The alias a chat's requests start at: its override, else `primary`.
pub async fn chat_alias(client: &BusClient, chat: &str, primary: &str) -> Result<String, BusError> {
    let choice: ModelChoice = client
        .call(
            LLM_ROUTER,
            llm::methods::MODEL_GET,
            &ModelChoice {
                chat: chat.to_string(),
                alias: String::new(),
            },
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await?;
    Ok(if choice.alias.is_empty() {
        primary.to_string()
    } else {
        choice.alias
    })
}

/// Sends `payload` (archived) and ignores the empty reply.
pub async fn send<T: oi_ipc_schema::Encode>(
    client: &BusClient,
    destination: &str,
    method: &str,
    payload: &T,
) -> Result<(), BusError> {
    let bytes = encode_payload(payload)?;
    client
        .request(
            destination,
            method,
            &bytes,
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await
        .map(|_| ())
}

#[derive(Clone)]
pub struct BusTools(pub BusClient);

impl Tools for BusTools {
    async fn list(&self) -> Vec<ToolInfo> {
        match tool::list(&self.0, Duration::from_secs(5)).await {
            Ok(l) => l
                .tools
                .into_iter()
                .map(|t| ToolInfo {
                    service: t.service,
                    def: ToolDef {
                        name: t.spec.name,
                        description: t.spec.description,
                        parameters_json: t.spec.args_schema_json,
                    },
                })
                .collect(),
            Err(e) => {
                tracing::warn!("cannot list tools: {e}");
                Vec::new()
            }
        }
    }

    async fn call(
        &self,
        service: &str,
        name: &str,
        arguments: &str,
        intent: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        // Waiting: a restarting adapter serves the call once it is back.
        let opts = CallOptions::deadline(timeout).waiting().for_intent(intent);
        match tool::call_on(&self.0, service, name, arguments, opts).await {
            Ok(v) => Ok(v.to_string()),
            Err(ToolCallError::Bus(BusError::Timeout { .. })) => {
                Err(timeout_message(name, timeout))
            }
            Err(ToolCallError::Bus(BusError::Remote { code, message })) => Err(match code {
                ErrorCode::Timeout => timeout_message(name, timeout),
                // Only where the supervisor is bringing the service back.
                ErrorCode::Unavailable
                    if message.contains("exited while handling the request")
                        || message.contains("is restarting") =>
                {
                    format!(
                        "{name} could not finish: {message}. The supervisor is restarting the service; the call may be retried."
                    )
                }
                ErrorCode::Unavailable => format!("{name} could not finish: {message}."),
                _ => message,
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}
