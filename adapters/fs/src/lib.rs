//! The filesystem adapter (`openintentd service fs`): `fs_read_file`,
//! `fs_write_file`, `fs_list_dir` and `fs_search`, confined to the allowed
//! roots (`<data>/workspace` plus `[fs] roots`).

pub mod config;
pub mod ops;
pub mod text;

use std::path::PathBuf;
use std::sync::Arc;

pub use config::FsConfig;
use oi_ipc_schema::ToolSpec;
use oi_kernel::client::IncomingRequest;
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply, spec};
use oi_sandbox::roots::{PathError, Roots};
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use crate::ops::{FsError, Query};

pub mod tools {
    pub const READ: &str = "fs_read_file";
    pub const WRITE: &str = "fs_write_file";
    pub const LIST: &str = "fs_list_dir";
    pub const SEARCH: &str = "fs_search";
}

pub fn tool_specs() -> Vec<ToolSpec> {
    vec![
        spec(
            tools::READ,
            "Read a text file inside the workspace. Long files come in pieces of about 16 KB: the result says how to read further (offset).",
            json!({"type": "object", "required": ["path"], "properties": {
                "path": {"type": "string", "description": "Relative to the workspace, or absolute inside an allowed root."},
                "offset": {"type": "integer", "minimum": 0, "description": "Byte offset to start at (from next_offset of an earlier read)."}}}),
        ),
        spec(
            tools::WRITE,
            "Write a text file inside the workspace (replaces it atomically; missing folders are created).",
            json!({"type": "object", "required": ["path", "content"], "properties": {
                "path": {"type": "string"},
                "content": {"type": "string"},
                "append": {"type": "boolean", "description": "Add to the end instead of replacing."}}}),
        ),
        spec(
            tools::LIST,
            "List a folder inside the workspace: names, types, sizes, modification times.",
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Default: the workspace itself."}}}),
        ),
        spec(
            tools::SEARCH,
            "Find files inside the workspace by name pattern (*.md) and/or by text they contain.",
            json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Folder to search (default: the workspace)."},
                "name": {"type": "string", "description": "File name pattern with * and ?."},
                "content": {"type": "string", "description": "Text to find in files (case-insensitive unless case_sensitive)."},
                "case_sensitive": {"type": "boolean"},
                "max_results": {"type": "integer", "minimum": 1}}}),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    #[serde(default)]
    offset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
    #[serde(default)]
    append: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default = "dot")]
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    #[serde(default = "dot")]
    path: String,
    name: Option<String>,
    content: Option<String>,
    #[serde(default)]
    case_sensitive: bool,
    max_results: Option<u32>,
}

fn dot() -> String {
    ".".into()
}

/// The workspace every install has: `<data>/workspace`.
pub fn workspace(data: &std::path::Path) -> PathBuf {
    data.join("workspace")
}

/// The roots from config: the workspace first, then `[fs] roots`.
pub fn root_paths(data: &std::path::Path, cfg: &FsConfig) -> Vec<PathBuf> {
    std::iter::once(workspace(data))
        .chain(cfg.roots.iter().map(PathBuf::from))
        .collect()
}

fn fs_error(tool: &str, e: FsError) -> ServiceError {
    let msg = format!("{tool}: {e}");
    match e {
        FsError::Path(PathError::OutsideRoots { .. } | PathError::Escapes { .. }) => {
            tool::denied(msg)
        }
        FsError::Path(PathError::Io { .. }) | FsError::Io { .. } => ServiceError::internal(msg),
        _ => ServiceError::bad_request(msg),
    }
}

struct State {
    roots: Arc<Roots>,
    cfg: FsConfig,
}

pub struct FsAdapter {
    data: PathBuf,
    state: Live<State>,
}

impl FsAdapter {
    pub fn new(data: PathBuf, cfg: FsConfig) -> Result<FsAdapter, ServiceError> {
        let state = open_state(&data, cfg)?;
        Ok(FsAdapter {
            data,
            state: Live::new(state),
        })
    }

    fn state(&self) -> Arc<State> {
        self.state.get()
    }

    /// Runs one tool call (blocking file I/O on the blocking pool).
    pub async fn call(
        &self,
        tool: &str,
        payload: &[u8],
    ) -> Result<serde_json::Value, ServiceError> {
        let st = self.state();
        let tool_name = tool.to_string();
        let payload = payload.to_vec();
        tokio::task::spawn_blocking(move || run_tool(&st, &tool_name, &payload))
            .await
            .map_err(|e| ServiceError::internal(format!("{tool}: task failed: {e}")))?
    }
}

fn run_tool(st: &State, tool: &str, payload: &[u8]) -> Result<serde_json::Value, ServiceError> {
    fn to_json<T: serde::Serialize>(
        tool: &str,
        v: Result<T, FsError>,
    ) -> Result<serde_json::Value, ServiceError> {
        let v = v.map_err(|e| fs_error(tool, e))?;
        serde_json::to_value(v).map_err(|e| ServiceError::internal(e.to_string()))
    }
    match tool {
        tools::READ => {
            let a: ReadArgs = tool::parse_args(tool, payload)?;
            to_json(
                tool,
                ops::read(&st.roots, &a.path, a.offset, st.cfg.max_read_bytes as usize),
            )
        }
        tools::WRITE => {
            let a: WriteArgs = tool::parse_args(tool, payload)?;
            if a.content.len() as u64 > st.cfg.max_write_bytes {
                return Err(ServiceError::bad_request(format!(
                    "{tool}: content is {} bytes; the limit is {} ([fs] max_write_bytes)",
                    a.content.len(),
                    st.cfg.max_write_bytes
                )));
            }
            to_json(
                tool,
                ops::write(&st.roots, &a.path, a.content.as_bytes(), a.append, true),
            )
        }
        tools::LIST => {
            let a: ListArgs = tool::parse_args(tool, payload)?;
            to_json(tool, ops::list(&st.roots, &a.path, 1000))
        }
        tools::SEARCH => {
            let a: SearchArgs = tool::parse_args(tool, payload)?;
            let q = Query {
                name: a.name.as_deref(),
                content: a.content.as_deref(),
                case_sensitive: a.case_sensitive,
                max_results: a
                    .max_results
                    .unwrap_or(st.cfg.search_max_results)
                    .clamp(1, st.cfg.search_max_results.max(1))
                    as usize,
                max_file_bytes: st.cfg.search_max_file_bytes,
            };
            to_json(tool, ops::search(&st.roots, &a.path, &q))
        }
        other => Err(ServiceError::bad_request(format!(
            "the fs adapter has no tool '{other}'"
        ))),
    }
}

fn open_state(data: &std::path::Path, cfg: FsConfig) -> Result<State, ServiceError> {
    let ws = workspace(data);
    std::fs::create_dir_all(&ws).map_err(|e| {
        ServiceError::config_error(format!("cannot create the workspace {}: {e}", ws.display()))
    })?;
    let roots = Roots::open(&root_paths(data, &cfg))
        .map_err(|e| ServiceError::config_error(format!("[fs] roots: {e}")))?;
    for r in roots.iter() {
        info!(root = %r.path.display(), "allowed root");
    }
    Ok(State {
        roots: Arc::new(roots),
        cfg,
    })
}

impl Service for FsAdapter {
    fn tools(&self) -> Vec<ToolSpec> {
        tool_specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        json_reply(self.call(req.method(), req.payload()).await?)
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(cfg) = harness::config_update(generation, config_toml, Config::section) else {
            return;
        };
        if cfg == self.state().cfg {
            return;
        }
        self.state.rebuild("fs", || open_state(&self.data, cfg));
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "fs",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// `openintentd service fs`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |_client| async move {
        let config = harness::service_config()?.section()?;
        let data = harness::data_dir(name)?;
        FsAdapter::new(data, config)
    })
}
