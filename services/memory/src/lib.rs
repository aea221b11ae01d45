//! The memory service (`openintentd service memory`): owns the main SQLite
//! database and serves working, episodic and semantic memory over the bus.
//! The semantic layer is also offered to the agent as tools; the chat
//! gateways record their users' accounts here.

pub mod config;
pub mod embed;
pub mod maintenance;
pub mod provider;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use oi_ipc_schema::ToolSpec;
use oi_ipc_schema::llm::EmbedResponse;
use oi_ipc_schema::memory::{
    AccountSeen, ChatId, ChatSettings, Episode, EpisodeId, EpisodeQuery, Episodes, History,
    HistoryAppend, IntegrityReport, SettingSet, methods,
};
use oi_kernel::client::IncomingRequest;
use oi_kernel::config::{Config, ConfigError};
use oi_llm_router::config::EmbeddingsConfig;

use crate::config::MemoryConfig;
use oi_kernel::harness::{
    self, Live, Reply, Service, ServiceError, archived_reply, decode_request,
};
use oi_kernel::tool::{self, json_reply, spec};
use serde_json::{Value, json};
use tracing::{Instrument, info};

use crate::provider::ProviderEmbeddings;
use crate::store::{MemoryError, Mode, SpaceVector, Store, Tuning};

/// Tool names (as the seed named them).
pub mod tools {
    pub const SAVE: &str = "memory_save";
    pub const SEARCH: &str = "memory_search";
    pub const LIST: &str = "memory_list";
    pub const DELETE: &str = "memory_delete";
    pub const GET: &str = "memory_get";
}

pub fn tool_specs() -> Vec<ToolSpec> {
    vec![
        spec(
            tools::SAVE,
            "Save a fact to long-term memory so it can be recalled later.",
            json!({
            "type": "object", "required": ["text"],
            "properties": {"text": {"type": "string", "description": "The fact, in one or two sentences."},
                           "tags": {"type": "array", "items": {"type": "string"}}}}),
        ),
        spec(
            tools::SEARCH,
            "Search long-term memory by keywords and meaning; returns the best matches.",
            json!({
            "type": "object", "required": ["query"],
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                           "mode": {"type": "string", "enum": ["hybrid", "keyword", "vector"],
                                    "description": "hybrid (default): keywords and meaning; keyword; vector: meaning only"}}}),
        ),
        spec(
            tools::GET,
            "Read one saved memory by its id.",
            json!({
            "type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}),
        ),
        spec(
            tools::LIST,
            "List saved memories, newest first.",
            json!({
            "type": "object",
            "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 200}, "offset": {"type": "integer", "minimum": 0}}}),
        ),
        spec(
            tools::DELETE,
            "Delete a saved memory by its id.",
            json!({
            "type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}),
        ),
    ]
}

/// What `[memory]` and `[embeddings]` set, swapped whole on a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub history_window: u32,
    pub episode_max_count: u64,
    pub episode_max_age_days: u64,
    pub retention_check: Duration,
    /// The `[embeddings]` provider (kind, URL, model, dimensions); `None`
    /// for the local embedding only.
    pub embeddings: Option<String>,
    pub embed_timeout: Duration,
}

impl Settings {
    pub fn from_config(c: &Config) -> Result<Settings, ConfigError> {
        let m: MemoryConfig = c.section()?;
        let e: EmbeddingsConfig = c.section()?;
        Ok(Settings {
            history_window: m.history_window,
            episode_max_count: m.episode_max_count,
            episode_max_age_days: m.episode_max_age_days,
            retention_check: Duration::from_secs(m.retention_check_secs.max(1)),
            embeddings: e
                .enabled()
                .then(|| format!("{} {} {} {}", e.kind, e.base_url, e.model, e.dimensions)),
            embed_timeout: Duration::from_millis(m.embed_timeout_ms.max(1)),
        })
    }
}

struct MemoryService {
    store: Arc<Store>,
    settings: Arc<Live<Settings>>,
    provider: Arc<ProviderEmbeddings>,
}

/// Who may call the account methods: a chat gateway records its users
/// (a service, whose name the broker vouches for); only oictl (the
/// owner, caller "") reads or deletes them.
fn account_access(method: &str, caller: &str) -> Result<(), ServiceError> {
    match (method == methods::ACCOUNT_SEEN, caller.is_empty()) {
        (true, true) => Err(ServiceError::denied(
            "account.seen is for chat gateways; oictl may list and forget accounts",
        )),
        (false, false) => Err(ServiceError::denied(format!(
            "service '{caller}' may not read or delete user accounts; only oictl may"
        ))),
        _ => Ok(()),
    }
}

fn memory_error(e: MemoryError) -> ServiceError {
    match e {
        MemoryError::NotFound(_) | MemoryError::BadRequest(_) => {
            ServiceError::bad_request(e.to_string())
        }
        other => ServiceError::internal(other.to_string()),
    }
}

impl MemoryService {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, MemoryError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        blocking(&self.store, f).await.map_err(memory_error)
    }
}

/// The provider's vector of a one-text embeddings answer, in its space.
fn first_vector(e: &EmbedResponse) -> Option<SpaceVector<'_>> {
    Some(SpaceVector {
        space: &e.space,
        vector: e.vectors.first()?,
    })
}

/// Runs a store call (SQLite, vector work) on a blocking thread, off the
/// service's one async thread.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, MemoryError> + Send + 'static,
) -> Result<T, MemoryError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| MemoryError::Task(e.to_string()))?
}

impl Service for MemoryService {
    fn tools(&self) -> Vec<ToolSpec> {
        tool_specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        let caller = if req.caller().is_empty() {
            "user".to_string()
        } else {
            req.caller().to_string()
        };
        match req.method() {
            tools::SAVE => {
                let a: Value = tool::args(&req)?;
                let text = a["text"]
                    .as_str()
                    .ok_or_else(|| {
                        ServiceError::bad_request("memory_save: 'text' (a string) is required")
                    })?
                    .to_string();
                let tags: Vec<String> = match &a["tags"] {
                    Value::Null => Vec::new(),
                    Value::Array(t) => t
                        .iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            ServiceError::bad_request("memory_save: 'tags' must be strings")
                        })?,
                    _ => {
                        return Err(ServiceError::bad_request(
                            "memory_save: 'tags' must be an array of strings",
                        ));
                    }
                };
                let e = self.provider.for_request(vec![text.clone()]).await;
                let id = self
                    .blocking(move |s| {
                        let pv = e.as_ref().and_then(first_vector);
                        s.save_fact(&text, &tags, &caller, pv)
                    })
                    .await?;
                json_reply(json!({"id": id}))
            }
            tools::GET => {
                let a: Value = tool::args(&req)?;
                let id = a["id"].as_i64().ok_or_else(|| {
                    ServiceError::bad_request("memory_get: 'id' (an integer) is required")
                })?;
                // The hot cache answers on the service's own thread.
                let fact = self.store.fact(id).map_err(memory_error)?;
                json_reply(json!(*fact))
            }
            tools::SEARCH => {
                let a: Value = tool::args(&req)?;
                let query = a["query"]
                    .as_str()
                    .ok_or_else(|| {
                        ServiceError::bad_request("memory_search: 'query' (a string) is required")
                    })?
                    .to_string();
                let limit = a["limit"].as_u64().unwrap_or(5).clamp(1, 50) as usize;
                let mode = match &a["mode"] {
                    Value::Null => Mode::Hybrid,
                    v => v.as_str().and_then(Mode::parse).ok_or_else(|| {
                        ServiceError::bad_request(format!(
                            "memory_search: 'mode' is {v}; use \"hybrid\", \"keyword\" or \"vector\""
                        ))
                    })?,
                };
                let e = if mode == Mode::Keyword {
                    None
                } else {
                    self.provider.for_request(vec![query.clone()]).await
                };
                let (hits, via) = self
                    .blocking(move |s| {
                        let pv = e.as_ref().and_then(first_vector);
                        // A search in a new space (the model changed)
                        // switches to it; the backfill fills it.
                        if let Some(pv) = pv {
                            s.use_space(pv.space)?;
                        }
                        s.search(&query, limit, mode, pv)
                    })
                    .await?;
                json_reply(json!({"results": hits, "via": via}))
            }
            tools::LIST => {
                let a: Value = tool::args(&req)?;
                let limit = a["limit"].as_u64().unwrap_or(20).clamp(1, 200) as u32;
                let offset = a["offset"].as_u64().unwrap_or(0).min(u32::MAX as u64) as u32;
                let facts = self.blocking(move |s| s.list_facts(limit, offset)).await?;
                json_reply(json!({"memories": facts}))
            }
            tools::DELETE => {
                let a: Value = tool::args(&req)?;
                let id = a["id"].as_i64().ok_or_else(|| {
                    ServiceError::bad_request("memory_delete: 'id' (an integer) is required")
                })?;
                let deleted = self.blocking(move |s| s.delete_fact(id)).await?;
                json_reply(json!({"deleted": deleted}))
            }
            methods::HISTORY_APPEND => {
                let m: HistoryAppend = decode_request(&req)?;
                self.blocking(move |s| s.append_message(&m.chat, &m.role, &m.content))
                    .await?;
                Ok(Reply::Once(Vec::new()))
            }
            methods::HISTORY_WINDOW => {
                let ChatId { chat } = decode_request(&req)?;
                let n = self.settings.get().history_window;
                let messages = self.blocking(move |s| s.window(&chat, n)).await?;
                archived_reply(&History { messages })
            }
            methods::HISTORY_CLEAR => {
                let ChatId { chat } = decode_request(&req)?;
                self.blocking(move |s| s.clear_chat(&chat)).await?;
                Ok(Reply::Once(Vec::new()))
            }
            methods::EPISODE_RECORD => {
                let e: Episode = decode_request(&req)?;
                let id = self.blocking(move |s| s.record_episode(&e)).await?;
                archived_reply(&EpisodeId { id })
            }
            methods::TURN => {
                let t = oi_ipc_schema::memory::TURN
                    .decode_request(req.payload(), req.corr())
                    .map_err(|e| ServiceError::bad_request(format!("{}: {e}", req.method())))?;
                if t.episode.chat.is_empty() && (t.exchange.is_some() || t.last_answer.is_some()) {
                    return Err(ServiceError::bad_request(
                        "memory.turn: history and the last answer need the episode's chat",
                    ));
                }
                let id = self.blocking(move |s| s.record_turn(&t)).await?;
                archived_reply(&EpisodeId { id })
            }
            methods::EPISODE_SEARCH => {
                let q: EpisodeQuery = decode_request(&req)?;
                let episodes = self.blocking(move |s| s.search_episodes(&q)).await?;
                archived_reply(&Episodes { episodes })
            }
            methods::SETTINGS_GET => {
                let ChatId { chat } = decode_request(&req)?;
                let entries = self.blocking(move |s| s.settings(&chat)).await?;
                archived_reply(&ChatSettings { entries })
            }
            methods::SETTINGS_SET => {
                let m: SettingSet = decode_request(&req)?;
                if m.chat.is_empty() || m.key.is_empty() {
                    return Err(ServiceError::bad_request(
                        "settings.set: 'chat' and 'key' must not be empty",
                    ));
                }
                self.blocking(move |s| s.set_setting(&m.chat, &m.key, &m.value))
                    .await?;
                Ok(Reply::Once(Vec::new()))
            }
            methods::STATS => {
                let stats = self.blocking(|s| s.stats()).await?;
                let mut v = json!(stats);
                v["embeddings"] = json!(if !self.provider.enabled() {
                    "local only ([embeddings] kind is empty)".to_string()
                } else if self.provider.failing() {
                    format!("local for now: {}", self.provider.last_error())
                } else {
                    "provider".to_string()
                });
                json_reply(v)
            }
            methods::ACCOUNT_SEEN => {
                account_access(methods::ACCOUNT_SEEN, req.caller())?;
                // The broker vouches for the caller's name (the supervisor
                // started it); accounts are filed under it.
                let gateway = req.caller().to_string();
                let m: AccountSeen = decode_request(&req)?;
                self.blocking(move |s| s.account_seen(&gateway, &m)).await?;
                Ok(Reply::Once(Vec::new()))
            }
            methods::ACCOUNT_LIST | methods::ACCOUNT_FORGET => {
                account_access(req.method(), req.caller())?;
                let a: Value = tool::args(&req)?;
                let gateway = a["gateway"].as_str().unwrap_or("").to_string();
                if req.method() == methods::ACCOUNT_LIST {
                    let limit = a["limit"].as_u64().unwrap_or(100).clamp(1, 10_000) as u32;
                    let accounts = self.blocking(move |s| s.accounts(&gateway, limit)).await?;
                    return json_reply(json!({"accounts": accounts}));
                }
                let user_id = a["user_id"].as_str().unwrap_or("").to_string();
                if gateway.is_empty() || user_id.is_empty() {
                    return Err(ServiceError::bad_request(
                        "account.forget: 'gateway' and 'user_id' (strings) are required",
                    ));
                }
                let forgotten = self
                    .blocking(move |s| s.forget_account(&gateway, &user_id))
                    .await?;
                json_reply(json!({"forgotten": forgotten}))
            }
            methods::CHECK => {
                let (result, facts, episodes) = self.blocking(|s| s.check()).await?;
                archived_reply(&IntegrityReport {
                    result,
                    facts,
                    episodes,
                })
            }
            other => Err(ServiceError::bad_request(format!(
                "the memory service has no method '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(new) = harness::config_update(generation, config_toml, Settings::from_config)
        else {
            return;
        };
        if *self.settings.get() != new {
            self.provider
                .configure(new.embeddings.is_some(), new.embed_timeout);
            self.settings.set(new);
            info!(generation, "[memory] settings applied");
        }
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "memory",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// Entry point of `openintentd service memory`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let config = harness::service_config()?;
        let data = harness::data_dir(name)?;
        let m: MemoryConfig = config.section()?;
        let tuning = Tuning {
            readers: m.readers as usize,
            mmap_bytes: m.mmap_mb << 20,
            cache_entries: m.cache_entries,
        };
        let path = data.join("memory.db");
        let store = tokio::task::spawn_blocking(move || Store::open(&path, &tuning))
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))?
            .map_err(|e| match e {
                MemoryError::Corrupt { .. } | MemoryError::TooNew { .. } => {
                    ServiceError::config_error(e.to_string())
                }
                other => ServiceError::internal(other.to_string()),
            })?;
        info!(facts = store.fact_count(), space = ?store.space(), "memory open");
        let store = Arc::new(store);
        let settings = Arc::new(Live::new(Settings::from_config(&config)?));
        let s = settings.get();
        let provider = Arc::new(ProviderEmbeddings::new(
            client,
            s.embeddings.is_some(),
            s.embed_timeout,
        ));
        tokio::spawn(maintenance::indexer(store.clone()).in_current_span());
        tokio::spawn(maintenance::retention(store.clone(), settings.clone()).in_current_span());
        tokio::spawn(maintenance::backfill(store.clone(), provider.clone()).in_current_span());
        Ok(MemoryService {
            store,
            settings,
            provider,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_record_accounts_and_only_the_owner_reads_or_deletes_them() {
        assert!(account_access(methods::ACCOUNT_SEEN, "telegram").is_ok());
        let e = account_access(methods::ACCOUNT_SEEN, "").unwrap_err();
        assert_eq!(e.code, oi_ipc_schema::ErrorCode::Denied);
        for m in [methods::ACCOUNT_LIST, methods::ACCOUNT_FORGET] {
            assert!(account_access(m, "").is_ok());
            let e = account_access(m, "agent").unwrap_err();
            assert_eq!(e.code, oi_ipc_schema::ErrorCode::Denied);
            assert!(
                e.message
                    .contains("service 'agent' may not read or delete user accounts"),
                "{}",
                e.message
            );
        }
    }
}
