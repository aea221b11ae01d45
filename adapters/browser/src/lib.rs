//! The browser adapter (`openintentd service browser`): one headless
//! Chromium, started on the first call and stopped when idle, driven over
//! the DevTools protocol on a pipe.
//!
//! - [`chrome`]: finding, starting and stopping it; [`cdp`] the protocol.
//! - [`page`]: a tab and what the tools do in it.
//! - [`guard`]: every request a page makes behind the SSRF guard.
//! - [`tools`]: the tools' names, schemas and arguments.

pub mod cdp;
pub mod chrome;
pub mod config;
pub mod guard;
pub mod page;
pub mod proxy;
pub mod tools;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oi_adapter_web::WebConfig;
use oi_ipc_schema::{ErrorCode, ToolSpec};
use oi_kernel::client::IncomingRequest;
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply};
use oi_sandbox::netguard::Guard;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::cdp::CdpError;
use crate::chrome::Browser;
pub use crate::config::BrowserConfig;
use crate::guard::Refusals;
use crate::page::{PageError, Tab};

struct Settings {
    browser: BrowserConfig,
    guard: Arc<Guard>,
}

/// The browser while it runs, and its tabs by who uses them.
struct Running {
    browser: Browser,
    /// Its only way out; stops with it.
    _proxy: proxy::Proxy,
    refusals: Refusals,
    tabs: HashMap<String, Tab>,
}

pub struct BrowserAdapter {
    data: PathBuf,
    settings: Live<Settings>,
    running: Mutex<Option<Running>>,
    last_call: std::sync::Mutex<Instant>,
}

/// A page error as the tool's error.
fn tool_error(name: &str, e: PageError) -> ServiceError {
    let msg = format!("{name}: {e}");
    match e {
        PageError::Timeout { .. } | PageError::Cdp(CdpError::Timeout { .. }) => {
            tool::timed_out(msg)
        }
        PageError::Cdp(CdpError::Closed(_)) => ServiceError::new(
            ErrorCode::Unavailable,
            format!(
                "{name}: the browser stopped during the call; it is started again for the next one"
            ),
        ),
        PageError::Cdp(CdpError::Remote { .. }) => ServiceError::internal(msg),
        _ => ServiceError::bad_request(msg),
    }
}

impl BrowserAdapter {
    fn touch(&self) {
        *self.last_call.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_call
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// The running browser, started (or started again after a crash).
    async fn browser<'a>(
        &self,
        slot: &'a mut Option<Running>,
        s: &Settings,
    ) -> Result<&'a mut Running, ServiceError> {
        if let Some(r) = slot.as_mut()
            && !r.browser.alive()
        {
            warn!(pid = r.browser.pid, "the browser died; starting it again");
            if let Some(dead) = slot.take() {
                dead.browser.stop().await;
            }
        }
        if slot.is_none() {
            let exe = chrome::find(&s.browser.executable)
                .map_err(|e| ServiceError::new(ErrorCode::Unavailable, e.to_string()))?;
            let profile = self.data.join("browser").join("profile");
            std::fs::create_dir_all(&profile).map_err(|e| {
                ServiceError::internal(format!("cannot create {}: {e}", profile.display()))
            })?;
            let window = (s.browser.window_width, s.browser.window_height);
            let proxy = proxy::Proxy::start(s.guard.clone()).await.map_err(|e| {
                ServiceError::internal(format!("cannot start the browser's proxy: {e}"))
            })?;
            let b = Browser::launch(&exe, &profile, window, proxy.addr, Duration::from_secs(30))
                .await
                .map_err(|e| ServiceError::new(ErrorCode::Unavailable, e.to_string()))?;
            info!(pid = b.pid, product = %b.product, ms = b.started_ms, no_sandbox = b.no_sandbox, "browser started");
            let refusals = Refusals::default();
            tokio::spawn(guard::run(b.cdp.clone(), s.guard.clone(), refusals.clone()));
            let _ = b
                .call(
                    "Browser.setDownloadBehavior",
                    json!({"behavior": "deny"}),
                    Duration::from_secs(10),
                )
                .await;
            *slot = Some(Running {
                browser: b,
                _proxy: proxy,
                refusals,
                tabs: HashMap::new(),
            });
        }
        slot.as_mut()
            .ok_or_else(|| ServiceError::internal("no browser"))
    }

    /// Runs one tool call.
    pub async fn call(&self, req: &IncomingRequest) -> Result<Value, ServiceError> {
        let s = self.settings.get();
        let name = req.method();
        let args: tools::Args = tool::args(req)?;
        let deadline = Duration::from_secs(
            args.timeout_secs
                .unwrap_or(s.browser.timeout_secs)
                .clamp(1, s.browser.max_timeout_secs),
        );
        if name == tools::EVAL && !s.browser.allow_eval {
            return Err(tool::denied(format!(
                "{name}: running the model's JavaScript is off; set [browser] allow_eval = true to allow it"
            )));
        }
        let key = if req.intent().is_empty() {
            format!("caller:{}", req.caller())
        } else {
            format!("intent:{}", req.intent())
        };
        self.touch();
        let mut slot = self.running.lock().await;
        let run = self.browser(&mut slot, &s).await?;
        let r = self.in_tab(run, &key, name, &args, deadline, &s).await;
        if let Err(e) = &r
            && e.code == ErrorCode::Unavailable
        {
            // The browser went away mid-call: the next call starts one.
            if let Some(dead) = slot.take() {
                dead.browser.stop().await;
            }
        }
        self.touch();
        r
    }

    async fn in_tab(
        &self,
        run: &mut Running,
        key: &str,
        name: &str,
        args: &tools::Args,
        deadline: Duration,
        s: &Settings,
    ) -> Result<Value, ServiceError> {
        let err = |e: PageError| tool_error(name, e);
        if !run.tabs.contains_key(key) {
            let tab = Tab::open(&run.browser.cdp, deadline).await.map_err(err)?;
            guard::intercept(&run.browser.cdp, &tab.session)
                .await
                .map_err(|e| err(e.into()))?;
            run.tabs.insert(key.to_string(), tab);
        }
        let refusals = run.refusals.clone();
        let no_sandbox = run.browser.no_sandbox;
        let tab = run
            .tabs
            .get_mut(key)
            .ok_or_else(|| ServiceError::internal("no tab"))?;
        tab.last_used = Instant::now();
        tools::run(
            tab, name, args, deadline, s, &self.data, &refusals, no_sandbox,
        )
        .await
        .map_err(err)
    }

    /// `browser.reset` (the user's only): the browser stops and its
    /// profile goes.
    async fn reset(&self, req: &IncomingRequest) -> Result<Reply, ServiceError> {
        if !req.caller().is_empty() {
            return Err(ServiceError::denied(format!(
                "service '{}' may not reset the browser",
                req.caller()
            )));
        }
        let mut slot = self.running.lock().await;
        if let Some(r) = slot.take() {
            r.browser.stop().await;
        }
        let profile = self.data.join("browser").join("profile");
        // A helper that has not quite died yet may still write a file.
        let mut removed = std::fs::remove_dir_all(&profile);
        for _ in 0..20 {
            match &removed {
                Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    removed = std::fs::remove_dir_all(&profile);
                }
                _ => break,
            }
        }
        let said = match removed {
            Ok(()) => format!(
                "The browser's profile ({}) was deleted: cookies, logins and cache are gone.",
                profile.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                "The browser has no profile yet; nothing to delete.".to_string()
            }
            Err(e) => {
                return Err(ServiceError::internal(format!(
                    "cannot delete {}: {e}",
                    profile.display()
                )));
            }
        };
        info!("browser reset");
        let t = oi_ipc_schema::Text(said);
        Ok(Reply::Once(
            oi_ipc_schema::Body::encode_body(&t)
                .map_err(|e| ServiceError::internal(e.to_string()))?,
        ))
    }

    /// `browser.render`, for the web adapter (and the user): the page's
    /// HTML once it has loaded and the network is idle.
    async fn render(&self, req: &IncomingRequest) -> Result<Reply, ServiceError> {
        use oi_ipc_schema::browser::{RenderRequest, Rendered};
        let web = oi_ipc_schema::web::SERVICE;
        if !req.caller().is_empty() && req.caller() != web {
            return Err(ServiceError::denied(format!(
                "service '{}' may not have pages rendered",
                req.caller()
            )));
        }
        let r: RenderRequest = harness::decode_request(req)?;
        let s = self.settings.get();
        let deadline = Duration::from_secs(r.timeout_secs.clamp(1, s.browser.max_timeout_secs));
        let key = format!(
            "render:{}",
            if req.intent().is_empty() {
                req.caller()
            } else {
                req.intent()
            }
        );
        self.touch();
        let mut slot = self.running.lock().await;
        let run = self.browser(&mut slot, &s).await?;
        let name = oi_ipc_schema::browser::methods::RENDER;
        let args = tools::Args {
            url: Some(r.url.clone()),
            wait: Some("networkidle".into()),
            timeout_secs: Some(deadline.as_secs()),
            ..tools::Args::default()
        };
        let page = self
            .in_tab(run, &key, tools::NAVIGATE, &args, deadline, &s)
            .await
            .map_err(|mut e| {
                e.message = e.message.replacen(tools::NAVIGATE, name, 1);
                e
            })?;
        let tab = run
            .tabs
            .get(&key)
            .ok_or_else(|| ServiceError::internal("no tab"))?;
        let html = tab
            .eval("document.documentElement.outerHTML", deadline)
            .await
            .map_err(|e| tool_error(name, e))?;
        self.touch();
        harness::archived_reply(&Rendered {
            final_url: page["url"].as_str().unwrap_or_default().to_string(),
            status: page["status"].as_u64().unwrap_or(0) as u16,
            html: html.as_str().unwrap_or_default().to_string(),
        })
    }

    /// Stops an idle browser and closes idle tabs.
    async fn sweep(&self) {
        let s = self.settings.get();
        let mut slot = self.running.lock().await;
        if slot.is_some() && self.idle_for() >= Duration::from_secs(s.browser.idle_secs) {
            if let Some(r) = slot.take() {
                info!(pid = r.browser.pid, "browser idle; stopped");
                r.browser.stop().await;
            }
            return;
        }
        if let Some(r) = slot.as_mut() {
            let idle = Duration::from_secs(s.browser.tab_idle_secs);
            let old: Vec<String> = r
                .tabs
                .iter()
                .filter(|(_, t)| t.last_used.elapsed() >= idle)
                .map(|(k, _)| k.clone())
                .collect();
            for k in old {
                if let Some(t) = r.tabs.remove(&k) {
                    let _ = r
                        .browser
                        .call(
                            "Target.closeTarget",
                            json!({"targetId": t.target}),
                            Duration::from_secs(5),
                        )
                        .await;
                }
            }
        }
    }
}

fn settings(config: &Config) -> Result<Settings, oi_kernel::config::ConfigError> {
    let browser: BrowserConfig = config.section()?;
    let web: WebConfig = config.section()?;
    Ok(Settings {
        browser,
        guard: Arc::new(web.guard()),
    })
}

impl Service for BrowserAdapter {
    fn tools(&self) -> Vec<ToolSpec> {
        tools::specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        match req.method() {
            oi_ipc_schema::browser::methods::RESET => return self.reset(&req).await,
            oi_ipc_schema::browser::methods::RENDER => return self.render(&req).await,
            _ => {}
        }
        json_reply(self.call(&req).await?)
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(s) = harness::config_update(generation, config_toml, settings) else {
            return;
        };
        self.settings.set(s);
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "browser",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// `openintentd service browser`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |_client| async move {
        let config = harness::service_config()?;
        let s = settings(&config)?;
        let data = harness::data_dir(name)?;
        let adapter = Arc::new(BrowserAdapter {
            data,
            settings: Live::new(s),
            running: Mutex::new(None),
            last_call: std::sync::Mutex::new(Instant::now()),
        });
        let a = adapter.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                a.sweep().await;
            }
        });
        Ok(Shared(adapter))
    })
}

/// The adapter as the harness holds it (the sweeper holds it too).
pub struct Shared(Arc<BrowserAdapter>);

impl Service for Shared {
    fn tools(&self) -> Vec<ToolSpec> {
        self.0.tools()
    }
    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        self.0.handle(req).await
    }
    async fn config_changed(&self, generation: u64, config_toml: &str) {
        self.0.config_changed(generation, config_toml).await
    }
}
