//! Every request a page makes passes the web tools' SSRF guard: CDP
//! `Fetch` interception pauses each one (navigations, redirects,
//! subresources, fetch/XHR) in every page and every target the pages open
//! (auto-attached, paused until interception is on), and only what the
//! guard allows goes on. `file:` and `chrome:` and any scheme but http(s),
//! data, blob and about are refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oi_sandbox::netguard::Guard;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info};

use crate::cdp::Cdp;

const STEP: Duration = Duration::from_secs(10);

/// Why the guard refused the last request of each session, so a failed
/// navigation can say it.
#[derive(Clone, Default)]
pub struct Refusals(Arc<Mutex<HashMap<String, String>>>);

impl Refusals {
    pub fn take(&self, session: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session)
    }
    fn note(&self, session: &str, why: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.to_string(), why);
    }
}

/// Whether a page may request `url`.
pub async fn verdict(guard: &Guard, url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: not a URL ({e})"))?;
    match parsed.scheme() {
        "data" | "blob" | "about" => return Ok(()),
        "http" | "https" => {}
        other => {
            return Err(format!(
                "{url}: {other}: URLs are refused (only http and https)"
            ));
        }
    }
    // Literal addresses are checked here, with their port; names after
    // they resolve.
    guard.check_url(&parsed).map_err(|e| e.to_string())?;
    match parsed.host() {
        Some(url::Host::Domain(d)) => guard
            .resolve_on(d, parsed.port_or_known_default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Some(_) => Ok(()),
        None => Err(format!("{url}: the URL has no host")),
    }
}

/// Turns interception on in one session (a tab, or a target a page
/// opened), and has the targets it opens attached and paused too.
pub async fn intercept(cdp: &Cdp, session: &str) -> Result<(), crate::cdp::CdpError> {
    cdp.call(
        "Fetch.enable",
        json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
        Some(session),
        STEP,
    )
    .await?;
    cdp.call(
        "Target.setAutoAttach",
        json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
        Some(session),
        STEP,
    )
    .await?;
    Ok(())
}

/// Answers every paused request of the browser, for its life.
pub async fn run(cdp: Cdp, guard: Arc<Guard>, refusals: Refusals) {
    let mut events = cdp.subscribe();
    loop {
        let e = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                // Paused requests wait for an answer; a lag would leave
                // them hanging, so it must not pass silently.
                tracing::warn!("the guard missed {n} browser events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(session) = e.session.clone() else {
            continue;
        };
        match e.method.as_str() {
            "Fetch.requestPaused" => {
                let (cdp, guard, refusals) = (cdp.clone(), guard.clone(), refusals.clone());
                tokio::spawn(
                    async move { answer(&cdp, &guard, &refusals, &session, &e.params).await },
                );
            }
            "Target.attachedToTarget" => {
                let child = e.params["sessionId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let cdp = cdp.clone();
                tokio::spawn(async move {
                    if let Err(err) = intercept(&cdp, &child).await {
                        debug!("cannot intercept an attached target: {err}");
                    }
                    let _ = cdp
                        .call(
                            "Runtime.runIfWaitingForDebugger",
                            json!({}),
                            Some(&child),
                            STEP,
                        )
                        .await;
                });
            }
            _ => {}
        }
    }
}

async fn answer(cdp: &Cdp, guard: &Guard, refusals: &Refusals, session: &str, p: &Value) {
    let id = p["requestId"].as_str().unwrap_or_default();
    let url = p["request"]["url"].as_str().unwrap_or_default();
    let r = match verdict(guard, url).await {
        Ok(()) => {
            cdp.call(
                "Fetch.continueRequest",
                json!({"requestId": id}),
                Some(session),
                STEP,
            )
            .await
        }
        Err(why) => {
            info!(url, "request refused: {why}");
            refusals.note(session, why);
            cdp.call(
                "Fetch.failRequest",
                json!({"requestId": id, "errorReason": "BlockedByClient"}),
                Some(session),
                STEP,
            )
            .await
        }
    };
    if let Err(e) = r {
        debug!("cannot answer a paused request: {e}");
    }
}
