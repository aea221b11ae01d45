//! The web adapter (`openintentd service web`): `web_search` and
//! `web_fetch`. Fetches go through the SSRF guard (`oi_sandbox::netguard`);
//! searches go to the engine configured in `[web]`.

pub mod config;
pub mod extract;
pub mod search;

use std::sync::Arc;
use std::time::Duration;

pub use config::WebConfig;
use oi_ipc_schema::browser::{RenderRequest, Rendered};
use oi_ipc_schema::{ErrorCode, ToolSpec};
use oi_kernel::client::{BusClient, BusError, CallOptions, IncomingRequest};
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply, spec};
use oi_sandbox::body::{charset, content_type, decode, read_capped};
use oi_sandbox::netguard::{Guarded, fetch_error};
use serde::Deserialize;
use serde_json::{Value, json};

use url::Url;

pub mod tools {
    pub const SEARCH: &str = "web_search";
    pub const FETCH: &str = "web_fetch";
}

pub fn tool_specs() -> Vec<ToolSpec> {
    vec![
        spec(
            tools::SEARCH,
            "Search the web. Returns ranked results with title, URL and snippet.",
            json!({"type": "object", "required": ["query"], "properties": {
                "query": {"type": "string"},
                "max_results": {"type": "integer", "minimum": 1, "maximum": 30}}}),
        ),
        spec(
            tools::FETCH,
            "Fetch a web page and return its title, readable text and links.",
            json!({"type": "object", "required": ["url"], "properties": {
                "url": {"type": "string", "description": "http or https URL"},
                "render": {"type": "boolean", "description": "Load the page in a real browser so its scripts run (default: only when the page has scripts and almost no text)."},
                "max_chars": {"type": "integer", "minimum": 100, "description": "Characters of text to return at most."}}}),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    max_results: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    url: String,
    render: Option<bool>,
    max_chars: Option<u64>,
}

/// A static page with scripts and less main text than this is rendered.
const RENDER_BELOW_CHARS: usize = 200;

struct State {
    cfg: WebConfig,
    guarded: Guarded,
    search: reqwest::Client,
}

fn build(cfg: WebConfig) -> Result<State, ServiceError> {
    let guarded = Guarded::new(cfg.guard(), &cfg.client_settings())?;
    // The search engine is the one configured, not one a model chose: it
    // may be a SearXNG on the LAN, so it is not behind the guard.
    let search = reqwest::Client::builder()
        .no_proxy()
        .retry(reqwest::retry::never())
        .timeout(Duration::from_secs(cfg.timeout_secs))
        .user_agent(cfg.user_agent.clone())
        .build()
        .map_err(|e| ServiceError::config_error(format!("cannot build the HTTP client: {e}")))?;
    Ok(State {
        cfg,
        guarded,
        search,
    })
}

pub struct WebAdapter {
    state: Live<State>,
    cache: moka::sync::Cache<String, Value>,
    /// The bus, to have pages rendered by the browser adapter.
    bus: Option<BusClient>,
}

impl WebAdapter {
    /// An adapter that renders pages through `bus` (none: it never does).
    pub fn with_bus(cfg: WebConfig, bus: Option<BusClient>) -> Result<WebAdapter, ServiceError> {
        let mut a = WebAdapter::new(cfg)?;
        a.bus = bus;
        Ok(a)
    }

    pub fn new(cfg: WebConfig) -> Result<WebAdapter, ServiceError> {
        let cache = moka::sync::Cache::builder()
            .max_capacity(256)
            .time_to_live(Duration::from_secs(cfg.cache_secs.max(1)))
            .build();
        Ok(WebAdapter {
            state: Live::new(build(cfg)?),
            cache,
            bus: None,
        })
    }

    fn state(&self) -> Arc<State> {
        self.state.get()
    }

    pub async fn web_search(&self, payload: &[u8]) -> Result<Value, ServiceError> {
        let a: SearchArgs = tool::parse_args(tools::SEARCH, payload)?;
        let query = a.query.trim().to_string();
        if query.is_empty() {
            return Err(ServiceError::bad_request("web_search: 'query' is empty"));
        }
        let s = self.state();
        let max = a.max_results.unwrap_or(s.cfg.max_results).clamp(1, 30) as usize;
        let key = format!("{}\u{0}{query}\u{0}{max}", s.cfg.search_engine);
        if let Some(mut hit) = self.cache.get(&key) {
            hit["cached"] = json!(true);
            return Ok(hit);
        }
        let url = search::query_url(s.cfg.search_engine, &s.cfg.search_url, &query)
            .map_err(|e| ServiceError::internal(format!("web_search: [web] search_url: {e}")))?;
        let resp = s
            .search
            .get(url.clone())
            .send()
            .await
            .map_err(|e| fetch_error(tools::SEARCH, s.cfg.search_url.as_str(), &e))?;
        let status = resp.status();
        let ct = Some(content_type(&resp)).filter(|c| !c.is_empty());
        let body = read_capped(resp, s.cfg.max_response_bytes as usize)
            .await
            .map_err(|e| fetch_error(tools::SEARCH, s.cfg.search_url.as_str(), &e))?;
        if !status.is_success() {
            return Err(ServiceError::new(
                ErrorCode::Unavailable,
                format!("web_search: {} answered HTTP {status}", s.cfg.search_engine),
            ));
        }
        let text = decode(&body.bytes, charset(ct.as_deref(), &body.bytes));
        let hits = match s.cfg.search_engine {
            config::SearchEngine::Searxng => search::parse_searxng(&text, max),
            _ => search::parse_duckduckgo(&text, max),
        }
        .map_err(|e| ServiceError::new(ErrorCode::Unavailable, format!("web_search: {e}")))?;
        let out = json!({"query": query, "engine": s.cfg.search_engine, "results": hits});
        self.cache.insert(key, out.clone());
        Ok(out)
    }

    /// The page rendered by the browser adapter: its final URL, status and
    /// HTML.
    async fn render(&self, url: &Url, intent: &str) -> Result<Rendered, ServiceError> {
        let Some(bus) = &self.bus else {
            return Err(ServiceError::new(
                ErrorCode::Unavailable,
                "web_fetch: rendering needs the browser adapter, and this adapter has no bus",
            ));
        };
        let s = self.state();
        let opts =
            CallOptions::deadline(Duration::from_secs(s.cfg.timeout_secs + 5)).for_intent(intent);
        bus.call(
            oi_ipc_schema::browser::RENDER,
            &RenderRequest {
                url: url.to_string(),
                timeout_secs: s.cfg.timeout_secs,
            },
            opts,
        )
        .await
        .map_err(|e| match e {
            BusError::Remote { code, message } => {
                ServiceError::new(code, format!("web_fetch: rendering failed: {message}"))
            }
            other => ServiceError::new(
                ErrorCode::Unavailable,
                format!("web_fetch: rendering failed: {other}"),
            ),
        })
    }

    pub async fn web_fetch(&self, payload: &[u8]) -> Result<Value, ServiceError> {
        self.fetch(payload, "").await
    }

    async fn fetch(&self, payload: &[u8], intent: &str) -> Result<Value, ServiceError> {
        let a: FetchArgs = tool::parse_args(tools::FETCH, payload)?;
        let url = Url::parse(a.url.trim()).map_err(|e| {
            ServiceError::bad_request(format!("web_fetch: '{}' is not a URL: {e}", a.url))
        })?;
        let s = self.state();
        s.guarded
            .guard
            .check_url(&url)
            .map_err(|e| tool::denied(format!("web_fetch: {e}")))?;
        let max_chars = a
            .max_chars
            .unwrap_or(s.cfg.max_text_chars)
            .min(s.cfg.max_text_chars.max(100)) as usize;
        if a.render == Some(true) {
            let r = self.render(&url, intent).await?;
            return Ok(rendered(&url, &r, max_chars));
        }
        let resp = s
            .guarded
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| fetch_error(tools::FETCH, url.as_str(), &e))?;
        let status = resp.status().as_u16();
        let final_url = resp.url().clone();
        let ct = content_type(&resp);
        let body = read_capped(resp, s.cfg.max_response_bytes as usize)
            .await
            .map_err(|e| fetch_error(tools::FETCH, url.as_str(), &e))?;
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let sniff_html = mime.is_empty()
            && body
                .bytes
                .iter()
                .take(512)
                .map(u8::to_ascii_lowercase)
                .collect::<Vec<_>>()
                .windows(5)
                .any(|w| w == b"<html");
        let mut out = json!({
            "url": url.as_str(),
            "final_url": final_url.as_str(),
            "status": status,
            "content_type": ct,
        });
        let is_text = mime.starts_with("text/")
            || mime.contains("json")
            || mime.contains("xml")
            || mime.contains("javascript");
        if mime == "text/html" || mime == "application/xhtml+xml" || sniff_html {
            let enc = charset(Some(&ct), &body.bytes);
            let html = decode(&body.bytes, enc);
            let page = extract::page(&html, &final_url, 100, 50);
            // Scripts and almost no text: the text is what the scripts
            // write, so the browser renders it (unless told not to).
            let scripted = html.to_ascii_lowercase().contains("<script");
            if a.render.is_none()
                && scripted
                && page.text.trim().chars().count() < RENDER_BELOW_CHARS
                && self.bus.is_some()
            {
                match self.render(&final_url, intent).await {
                    Ok(r) => return Ok(rendered(&url, &r, max_chars)),
                    Err(e) => {
                        out["render_note"] = json!(format!(
                            "the page has scripts and little text, and could not be rendered: {}",
                            e.message
                        ))
                    }
                }
            }
            out["charset"] = json!(enc.name());
            out["title"] = json!(page.title);
            out["links"] = json!(page.links);
            put_text(&mut out, &page.text, max_chars, body.truncated);
        } else if is_text {
            let enc = charset(Some(&ct), &body.bytes);
            out["charset"] = json!(enc.name());
            put_text(
                &mut out,
                &decode(&body.bytes, enc),
                max_chars,
                body.truncated,
            );
        } else {
            out["note"] = json!(format!(
                "not text ({}, {}{} bytes); not shown",
                if mime.is_empty() {
                    "no content type"
                } else {
                    &mime
                },
                body.bytes.len(),
                if body.truncated { "+" } else { "" }
            ));
        }
        Ok(out)
    }
}

/// A rendered page's result: the same extraction as a static one.
fn rendered(url: &Url, r: &Rendered, max_chars: usize) -> Value {
    let base = Url::parse(&r.final_url).unwrap_or_else(|_| url.clone());
    let page = extract::page(&r.html, &base, 100, 50);
    let mut out = json!({
        "url": url.as_str(),
        "final_url": r.final_url,
        "status": r.status,
        "content_type": "text/html",
        "rendered": true,
        "title": page.title,
        "links": page.links,
    });
    put_text(&mut out, &page.text, max_chars, false);
    out
}

/// Sets `text`, cut to `max_chars` characters with a note on what was cut.
fn put_text(out: &mut Value, text: &str, max_chars: usize, body_truncated: bool) {
    let total = text.chars().count();
    let shown: String = text.chars().take(max_chars).collect();
    out["text"] = json!(shown);
    out["truncated"] = json!(total > max_chars || body_truncated);
    let mut notes = Vec::new();
    if total > max_chars {
        notes.push(format!("{max_chars} of {total} characters shown"));
    }
    if body_truncated {
        notes.push(
            "the page was larger than [web] max_response_bytes; the rest was not downloaded"
                .to_string(),
        );
    }
    if !notes.is_empty() {
        out["note"] = json!(notes.join("; "));
    }
}

impl Service for WebAdapter {
    fn tools(&self) -> Vec<ToolSpec> {
        tool_specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        match req.method() {
            tools::SEARCH => json_reply(self.web_search(req.payload()).await?),
            tools::FETCH => json_reply(self.fetch(req.payload(), req.intent()).await?),
            other => Err(ServiceError::bad_request(format!(
                "the web adapter has no tool '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(web) = harness::config_update(generation, config_toml, Config::section) else {
            return;
        };
        if web == self.state().cfg {
            return;
        }
        self.state.rebuild("web", || build(web));
        self.cache.invalidate_all();
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "web",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// `openintentd service web`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        WebAdapter::with_bus(harness::service_config()?.section()?, Some(client))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(allow: &[&str]) -> WebAdapter {
        let mut cfg = oi_kernel::config::Config::defaults()
            .section::<WebConfig>()
            .unwrap();
        cfg.allow_addresses = allow.iter().map(|s| s.to_string()).collect();
        WebAdapter::new(cfg).unwrap()
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_after_dns() {
        // Nothing listens on port 9; the guard refuses before connecting.
        let a = adapter(&[]);
        let e = a
            .web_fetch(br#"{"url": "http://localhost:9/"}"#)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Denied, "{}", e.message);
        assert!(e.message.contains("localhost is"), "{}", e.message);
        assert!(
            e.message.contains("(loopback); refused by the SSRF guard"),
            "{}",
            e.message
        );
        // Allowed, the same name gets as far as connecting.
        let a = adapter(&["127.0.0.1", "::1"]);
        let e = a
            .web_fetch(br#"{"url": "http://localhost:9/"}"#)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable, "{}", e.message);
    }

    #[tokio::test]
    async fn bad_arguments_are_bad_requests() {
        let a = adapter(&[]);
        let e = a.web_fetch(br#"{"url": "not a url"}"#).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(
            e.message.contains("'not a url' is not a URL"),
            "{}",
            e.message
        );
        let e = a.web_search(br#"{"query": "  "}"#).await.unwrap_err();
        assert!(e.message.contains("'query' is empty"));
    }
}
