//! The LLM router service (`openintentd service llm-router`): the only
//! process that talks to model providers. The agent asks it for a chat
//! completion over the bus; it picks a deployment, speaks that provider's
//! wire format, and fails over so that a 429 or a 503 never reaches the
//! user.

pub mod classify;
pub mod config;
pub mod deployments;
pub mod embed;
#[cfg(feature = "fake")]
pub mod fake;
pub mod health;
pub mod overrides;
pub mod router;
pub mod stream;
pub mod textcalls;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::config::RouterConfig;
use oi_ipc_schema::ErrorCode;
use oi_ipc_schema::llm::{
    ChatRequest, EmbedRequest, ModelChoice, ModelStatus, ModelsStatus, StreamEvent, methods,
};
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::harness::{self, Reply, Service, ServiceError, archived_reply, decode_request};
use oi_kernel::secrets::{self, SecretError};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::deployments::{ProcessKeys, embeddings_from_config, from_config, wanted_secrets};
use crate::health::{CooldownPolicy, Health, SystemClock};
use crate::overrides::Overrides;
use crate::router::{Router, RouterError, Settings};

/// Router settings from `[cascade]`.
pub fn settings(config: &RouterConfig) -> Settings {
    let c = &config.cascade;
    Settings {
        max_attempts: c.max_attempts,
        first_token_timeout: Duration::from_secs(c.first_token_timeout_secs),
        idle_timeout: Duration::from_secs(c.idle_timeout_secs),
        failover_on_content_policy: c.failover_on_content_policy,
        max_cooldown_wait: Duration::from_secs(c.max_cooldown_wait_secs),
    }
}

pub fn cooldown_policy(config: &RouterConfig) -> CooldownPolicy {
    let c = &config.cascade;
    CooldownPolicy {
        base: Duration::from_secs(c.cooldown_secs),
        max: Duration::from_secs(c.max_cooldown_secs.max(c.cooldown_secs)),
        auth: Duration::from_secs(c.auth_cooldown_secs),
    }
}

fn router_error(e: RouterError) -> ServiceError {
    let code = match &e {
        RouterError::UnknownAlias(_)
        | RouterError::Refused { .. }
        | RouterError::ContextTooLarge(_) => ErrorCode::BadRequest,
        RouterError::Deadline { .. } => ErrorCode::Timeout,
        RouterError::NoProvider(_)
        | RouterError::AllCooling { .. }
        | RouterError::StreamBroken { .. }
        | RouterError::Exhausted(..) => ErrorCode::Unavailable,
    };
    ServiceError::new(code, e.to_string())
}

struct LlmRouter {
    client: BusClient,
    config: RwLock<Arc<RouterConfig>>,
    router: RwLock<Arc<Router>>,
    health: Health,
    embed_health: Health,
    overrides: Arc<Overrides>,
    /// When keys were last read from the vault.
    keys_read: std::sync::Mutex<Instant>,
    said: Said,
}

/// What was last logged about each deployment and key, so that the
/// rebuild after every key check logs only what changed (it runs every
/// few seconds while a deployment waits for its key).
#[derive(Default)]
struct Said(std::sync::Mutex<HashMap<String, String>>);

impl Said {
    /// Whether `line` is news for `key` (and remembers it).
    fn changed(&self, key: &str, line: &str) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(key).is_some_and(|l| l == line) {
            return false;
        }
        m.insert(key.to_string(), line.to_string());
        true
    }
}

/// How often a keyless deployment's vault secret is looked for again.
const VAULT_RECHECK: Duration = Duration::from_secs(2);

impl LlmRouter {
    fn router(&self) -> Arc<Router> {
        match self.router.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    async fn build_router(
        client: &BusClient,
        config: &RouterConfig,
        health: Health,
        embed_health: Health,
        said: &Said,
    ) -> Router {
        let secrets = fetch_secrets(client, &wanted_secrets(config), said).await;
        let keys = ProcessKeys { secrets: &secrets };
        let deployments = from_config(config, &keys);
        let embedder = embeddings_from_config(config, &keys);
        for d in deployments.iter().chain(embedder.as_ref()) {
            let now = match &d.missing_key {
                None => format!(
                    "ready {} {} {} {}",
                    d.model,
                    d.kind.as_str(),
                    d.credential,
                    d.base_url
                ),
                Some(why) => format!("skipped {why}"),
            };
            if !said.changed(&format!("deployment {}", d.alias), &now) {
                continue;
            }
            match &d.missing_key {
                None => {
                    info!(alias = %d.alias, model = %d.model, kind = d.kind.as_str(), credential = %d.credential, "deployment ready")
                }
                Some(why) => info!(alias = %d.alias, "deployment skipped: {why}"),
            }
        }
        Router::new(deployments, health, settings(config)).with_embeddings(
            embedder,
            config.embeddings.dimensions,
            embed_health,
        )
    }

    fn replace_router(&self, config: Arc<RouterConfig>, router: Router) {
        match self.router.write() {
            Ok(mut r) => *r = Arc::new(router),
            Err(p) => *p.into_inner() = Arc::new(router),
        }
        match self.config.write() {
            Ok(mut c) => *c = config,
            Err(p) => *p.into_inner() = config,
        }
        if let Ok(mut t) = self.keys_read.lock() {
            *t = Instant::now();
        }
    }

    /// A key stored with `oictl vault set` after the router started is
    /// picked up by the next request that needs it.
    async fn refresh_vault_keys(&self) {
        let stale = self
            .keys_read
            .lock()
            .map(|t| t.elapsed() >= VAULT_RECHECK)
            .unwrap_or(true);
        let router = self.router();
        if !stale
            || !router
                .deployments()
                .iter()
                .chain(router.embedder())
                .any(|d| d.awaits_vault_key())
        {
            return;
        }
        if let Ok(mut t) = self.keys_read.lock() {
            *t = Instant::now();
        }
        let config = match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        self.rebuild(config).await;
    }

    /// Builds the deployments of `config` (keys read again) and swaps them
    /// in; health is kept.
    async fn rebuild(&self, config: Arc<RouterConfig>) {
        let router = Self::build_router(
            &self.client,
            &config,
            self.health.clone(),
            self.embed_health.clone(),
            &self.said,
        )
        .await;
        self.replace_router(config, router);
    }

    /// The alias to start from: the request's, else the chat's override.
    async fn first_alias(&self, req: &ChatRequest) -> Result<Option<String>, ServiceError> {
        if !req.alias.is_empty() {
            return Ok(Some(req.alias.clone()));
        }
        if req.chat.is_empty() {
            return Ok(None);
        }
        let o = self.overrides.clone();
        let chat = req.chat.clone();
        tokio::task::spawn_blocking(move || o.get(&chat))
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))?
            .map_err(|e| ServiceError::internal(e.to_string()))
    }

    fn models(&self) -> ModelsStatus {
        let router = self.router();
        let models = router
            .deployments()
            .iter()
            .map(|d| {
                let snap = self.health.snapshot(&d.alias, &d.credential);
                ModelStatus {
                    alias: d.alias.clone(),
                    kind: d.kind.as_str().into(),
                    model: d.model.clone(),
                    base_url: d.base_url.clone(),
                    position: d.position.map_or(-1, |p| p as i32),
                    key_present: d.usable(),
                    key_source: match &d.missing_key {
                        Some(why) => why.clone(),
                        None => d.credential.clone(),
                    },
                    cooling_until_ms: snap
                        .cooling_until
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64),
                    last_error: snap.last_error,
                    unreachable: snap.unreachable,
                    context_window: d.context_window,
                    successes: snap.successes,
                    failures: snap.failures,
                }
            })
            .collect();
        ModelsStatus {
            primary: router
                .deployments()
                .iter()
                .find(|d| d.position == Some(0))
                .map(|d| d.alias.clone())
                .unwrap_or_default(),
            models,
        }
    }
}

/// Appends each provider request of a chat to the kernel's audit log (in
/// the background; a log that cannot be reached never fails a chat).
fn audit(
    client: &BusClient,
    intent: &str,
    chat: &ChatRequest,
    result: &Result<oi_ipc_schema::llm::ChatResponse, RouterError>,
) {
    use oi_ipc_schema::control::audit::AuditRecord;
    let arguments = serde_json::json!({
        "chat": chat.chat,
        "messages": chat.messages.len(),
        "tools": chat.tools.len(),
        "max_tokens": chat.max_tokens,
    })
    .to_string();
    let records: Vec<AuditRecord> = match result {
        Ok(r) => r
            .attempts
            .iter()
            .map(|a| AuditRecord {
                intent: intent.to_string(),
                action: format!("provider:{}", a.deployment),
                arguments: arguments.clone(),
                outcome: if a.class == "ok" {
                    format!(
                        "ok: {} prompt + {} completion tokens",
                        a.prompt_tokens, a.completion_tokens
                    )
                } else {
                    format!("{} (HTTP {}): {}", a.class, a.status, a.message)
                },
                duration_ms: u64::from(a.latency_ms),
            })
            .collect(),
        Err(e) => vec![AuditRecord {
            intent: intent.to_string(),
            action: "provider:cascade".into(),
            arguments,
            outcome: format!("failed: {e}"),
            duration_ms: 0,
        }],
    };
    send_audit(client, records);
}

/// Appends an `llm.embed` call to the audit log: how many texts, never
/// the texts.
fn audit_embeddings(
    client: &BusClient,
    intent: &str,
    texts: usize,
    started: Instant,
    result: &Result<oi_ipc_schema::llm::EmbedResponse, RouterError>,
) {
    use oi_ipc_schema::control::audit::AuditRecord;
    send_audit(
        client,
        vec![AuditRecord {
            intent: intent.to_string(),
            action: format!("provider:{}", deployments::EMBEDDINGS_ALIAS),
            arguments: serde_json::json!({ "texts": texts }).to_string(),
            outcome: match result {
                Ok(r) => format!(
                    "ok: {} vectors of {} dimensions, {} tokens",
                    r.vectors.len(),
                    r.dimensions,
                    r.prompt_tokens
                ),
                Err(e) => format!("failed: {e}"),
            },
            duration_ms: started.elapsed().as_millis() as u64,
        }],
    );
}

/// Sends audit rows (one-way frames); a log that cannot be reached never
/// fails a request.
fn send_audit(client: &BusClient, records: Vec<oi_ipc_schema::control::audit::AuditRecord>) {
    for r in records {
        if let Err(e) = client.audit(&r) {
            warn!("audit row not sent: {e}");
        }
    }
}

/// Reads the vault secrets that hold API keys. A vault that is not running
/// (or a secret it does not have) just leaves those deployments keyless.
async fn fetch_secrets(
    client: &BusClient,
    names: &[String],
    said: &Said,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for name in names {
        match secrets::read_text(client, name, Duration::from_secs(2)).await {
            Ok(v) => {
                out.insert(name.clone(), v.to_string());
            }
            Err(SecretError::Bus(e)) => {
                let code = e.code().as_str();
                if said.changed(&format!("secret {name}"), code) {
                    info!(secret = %name, "no key from the vault: {code}")
                }
            }
            Err(e) => warn!(secret = %name, "{e}; ignored"),
        }
    }
    out
}

impl Service for LlmRouter {
    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        if matches!(
            req.method(),
            methods::CHAT | methods::CHAT_STREAM | methods::MODELS | methods::EMBED
        ) {
            self.refresh_vault_keys().await;
        }
        match req.method() {
            methods::CHAT => {
                let chat: ChatRequest = decode_request(&req)?;
                let first = self.first_alias(&chat).await?;
                let result = self
                    .router()
                    .chat(&chat, first.as_deref(), req.deadline(), None)
                    .await;
                audit(&self.client, req.intent(), &chat, &result);
                archived_reply(&result.map_err(router_error)?)
            }
            methods::CHAT_STREAM => {
                let chat: ChatRequest = decode_request(&req)?;
                let first = self.first_alias(&chat).await?;
                let router = self.router();
                let deadline = req.deadline();
                let client = self.client.clone();
                let intent = req.intent().to_string();
                let (out_tx, out_rx) = mpsc::channel::<Result<Vec<u8>, ServiceError>>(64);
                tokio::spawn(async move {
                    let (ev_tx, mut ev_rx) = mpsc::channel::<StreamEvent>(64);
                    let work = router.chat(&chat, first.as_deref(), deadline, Some(ev_tx));
                    let forward = async {
                        while let Some(ev) = ev_rx.recv().await {
                            let bytes = oi_ipc_schema::encode_payload(&ev)
                                .map_err(|e| ServiceError::internal(e.to_string()));
                            if out_tx.send(bytes).await.is_err() {
                                return;
                            }
                        }
                    };
                    // The caller going away (cancel, deadline) drops the
                    // stream's receiver: stop the provider request too.
                    let result = tokio::select! {
                        (r, ()) = async { tokio::join!(work, forward) } => r,
                        _ = out_tx.closed() => return,
                    };
                    audit(&client, &intent, &chat, &result);
                    let last = match result {
                        Ok(resp) => oi_ipc_schema::encode_payload(&StreamEvent::Done(resp))
                            .map_err(|e| ServiceError::internal(e.to_string())),
                        Err(e) => Err(router_error(e)),
                    };
                    let _ = out_tx.send(last).await;
                });
                Ok(Reply::Stream(out_rx))
            }
            methods::MODELS => archived_reply(&self.models()),
            methods::EMBED => {
                let r: EmbedRequest = decode_request(&req)?;
                let t0 = Instant::now();
                let result = self.router().embed(&r.texts, req.deadline()).await;
                audit_embeddings(&self.client, req.intent(), r.texts.len(), t0, &result);
                archived_reply(&result.map_err(router_error)?)
            }
            methods::MODELS_RESET => {
                let choice: ModelChoice = decode_request(&req)?;
                let alias = (!choice.alias.is_empty()).then_some(choice.alias);
                if let Some(a) = &alias
                    && !self.router().deployments().iter().any(|d| &d.alias == a)
                {
                    return Err(router_error(RouterError::UnknownAlias(a.clone())));
                }
                let ended = self.health.reset(alias.as_deref());
                info!(
                    alias = alias.as_deref().unwrap_or("*"),
                    ended, "cooldowns reset by the user"
                );
                archived_reply(&ModelChoice {
                    chat: String::new(),
                    alias: ended.to_string(),
                })
            }
            methods::MODEL_SET => {
                let choice: ModelChoice = decode_request(&req)?;
                if choice.chat.is_empty() {
                    return Err(ServiceError::bad_request("llm.model.set: 'chat' is empty"));
                }
                if !choice.alias.is_empty()
                    && !self
                        .router()
                        .deployments()
                        .iter()
                        .any(|d| d.alias == choice.alias)
                {
                    return Err(router_error(RouterError::UnknownAlias(choice.alias)));
                }
                let o = self.overrides.clone();
                tokio::task::spawn_blocking(move || o.set(&choice.chat, &choice.alias))
                    .await
                    .map_err(|e| ServiceError::internal(e.to_string()))?
                    .map_err(|e| ServiceError::internal(e.to_string()))?;
                Ok(Reply::Once(Vec::new()))
            }
            methods::MODEL_GET => {
                let choice: ModelChoice = decode_request(&req)?;
                let alias = self
                    .first_alias(&ChatRequest {
                        chat: choice.chat.clone(),
                        ..ChatRequest::new(Vec::new())
                    })
                    .await?
                    .unwrap_or_default();
                archived_reply(&ModelChoice {
                    chat: choice.chat,
                    alias,
                })
            }
            other => Err(ServiceError::bad_request(format!(
                "the llm-router has no method '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(config) = harness::config_update(generation, config_toml, RouterConfig::of) else {
            return;
        };
        self.rebuild(Arc::new(config)).await;
        info!(generation, "models reloaded");
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "llm-router",
    run,
    sections: config::SECTIONS,
    env: config::key_variables,
};

/// Entry point of `openintentd service llm-router`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let config = RouterConfig::of(&harness::service_config()?)?;
        let data = harness::data_dir(name)?;
        let path = data.join("llm-router.db");
        let overrides = tokio::task::spawn_blocking(move || Overrides::open(&path))
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))?
            .map_err(|e| ServiceError::config_error(e.to_string()))?;
        let health = Health::new(Arc::new(SystemClock), cooldown_policy(&config));
        let embed_health = Health::new(Arc::new(SystemClock), embed::cooldown_policy(&config));
        let said = Said::default();
        let router = LlmRouter::build_router(
            &client,
            &config,
            health.clone(),
            embed_health.clone(),
            &said,
        )
        .await;
        let usable = router.deployments().iter().filter(|d| d.usable()).count();
        info!(
            usable,
            configured = router.deployments().len(),
            "llm-router ready"
        );
        Ok(LlmRouter {
            client,
            config: RwLock::new(Arc::new(config)),
            router: RwLock::new(Arc::new(router)),
            health,
            embed_health,
            overrides: Arc::new(overrides),
            keys_read: std::sync::Mutex::new(Instant::now()),
            said,
        })
    })
}
