//! One tab: its target and flattened session, navigation with what to wait
//! for, the snapshot with refs, and the actions on it (click, fill, press,
//! text, screenshot, eval). Every command has the call's deadline.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::cdp::{Cdp, CdpError, Event};

const SNAPSHOT_JS: &str = include_str!("snapshot.js");

/// The largest piece of a script sent in one DevTools message.
pub const PIECE: usize = 256 * 1024;

/// A tool's failure, in words for the model.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    Cdp(#[from] CdpError),
    #[error(
        "{url} did not finish loading within {secs} s (waited for {what}); loading was stopped"
    )]
    Timeout {
        url: String,
        secs: u64,
        what: String,
    },
    #[error("{url}: {why}")]
    Navigation { url: String, why: String },
    #[error(
        "ref {0} is from an earlier page or snapshot: the page changed; take a new snapshot (browser_snapshot)"
    )]
    StaleRef(u64),
    #[error("no element matches the selector {0}")]
    NoSuchElement(String),
    #[error("the page's script failed: {0}")]
    Script(String),
    #[error("{0}")]
    Bad(String),
}

/// What a navigation waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    Load,
    NetworkIdle,
    Selector(String),
}

impl Wait {
    pub fn parse(s: Option<&str>) -> Wait {
        match s.map(str::trim) {
            None | Some("") | Some("load") => Wait::Load,
            Some("networkidle") => Wait::NetworkIdle,
            Some(sel) => Wait::Selector(sel.to_string()),
        }
    }
    fn words(&self) -> String {
        match self {
            Wait::Load => "the load event".into(),
            Wait::NetworkIdle => "the network to be idle".into(),
            Wait::Selector(s) => format!("an element matching {s}"),
        }
    }
}

/// An element by snapshot ref or CSS selector.
#[derive(Debug, Clone)]
pub enum Target {
    Ref(u64),
    Selector(String),
}

pub struct Tab {
    pub target: String,
    pub session: String,
    cdp: Cdp,
    /// The next ref a snapshot hands out.
    next_ref: u64,
    /// Refs of the latest snapshot of the current document.
    valid: std::ops::Range<u64>,
    pub last_used: Instant,
}

impl Tab {
    /// A new blank tab, attached with a flattened session.
    pub async fn open(cdp: &Cdp, deadline: Duration) -> Result<Tab, PageError> {
        let t = cdp
            .call(
                "Target.createTarget",
                json!({"url": "about:blank"}),
                None,
                deadline,
            )
            .await?;
        let target = t["targetId"].as_str().unwrap_or_default().to_string();
        let s = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
                None,
                deadline,
            )
            .await?;
        let session = s["sessionId"].as_str().unwrap_or_default().to_string();
        let tab = Tab {
            target,
            session,
            cdp: cdp.clone(),
            next_ref: 1,
            valid: 0..0,
            last_used: Instant::now(),
        };
        tab.send("Page.enable", json!({}), deadline).await?;
        tab.send(
            "Page.setLifecycleEventsEnabled",
            json!({"enabled": true}),
            deadline,
        )
        .await?;
        Ok(tab)
    }

    /// A command to this tab's page.
    pub async fn send(
        &self,
        method: &str,
        params: Value,
        deadline: Duration,
    ) -> Result<Value, CdpError> {
        self.cdp
            .call(method, params, Some(&self.session), deadline)
            .await
    }

    /// The value of a JavaScript expression (awaited if a promise). One
    /// over [`PIECE`] goes to the page in pieces first (Chrome has dropped
    /// inbound DevTools messages over 1 MB) and is then evaluated there.
    pub async fn eval(&self, expr: &str, deadline: Duration) -> Result<Value, PageError> {
        if expr.len() > PIECE {
            self.eval_one("globalThis.__oiScript = []", deadline)
                .await?;
            let mut rest = expr;
            while !rest.is_empty() {
                let mut cut = PIECE.min(rest.len());
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                let (piece, tail) = rest.split_at(cut);
                self.eval_one(
                    &format!("globalThis.__oiScript.push({})", json!(piece)),
                    deadline,
                )
                .await?;
                rest = tail;
            }
            return self
                .eval_one(
                    "(() => { const s = globalThis.__oiScript.join(''); delete globalThis.__oiScript; return (0, eval)(s); })()",
                    deadline,
                )
                .await;
        }
        self.eval_one(expr, deadline).await
    }

    async fn eval_one(&self, expr: &str, deadline: Duration) -> Result<Value, PageError> {
        let r = self
            .send(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
                deadline,
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            let text = e["exception"]["description"]
                .as_str()
                .or(e["text"].as_str())
                .unwrap_or("an exception");
            return Err(PageError::Script(
                text.lines().next().unwrap_or(text).to_string(),
            ));
        }
        Ok(r["result"]["value"].clone())
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.cdp.subscribe()
    }

    /// Loads `url` and waits for `wait`; on a timeout the load is stopped.
    pub async fn navigate(
        &mut self,
        url: &str,
        wait: &Wait,
        deadline: Duration,
    ) -> Result<(), PageError> {
        self.valid = 0..0;
        let mut events = self.events();
        let t0 = Instant::now();
        let r = self
            .send("Page.navigate", json!({"url": url}), deadline)
            .await?;
        if let Some(e) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(PageError::Navigation {
                url: url.into(),
                why: e.to_string(),
            });
        }
        let left = deadline.saturating_sub(t0.elapsed());
        let waited = match wait {
            Wait::Selector(sel) => self.wait_selector(sel, left).await,
            _ => self.wait_event(&mut events, wait, left).await,
        };
        if let Err(PageError::Timeout { .. }) | Err(PageError::Cdp(CdpError::Timeout { .. })) =
            &waited
        {
            let _ = self
                .send("Page.stopLoading", json!({}), Duration::from_secs(5))
                .await;
            return Err(PageError::Timeout {
                url: url.into(),
                secs: deadline.as_secs(),
                what: wait.words(),
            });
        }
        waited
    }

    async fn wait_event(
        &self,
        events: &mut broadcast::Receiver<Event>,
        wait: &Wait,
        left: Duration,
    ) -> Result<(), PageError> {
        let want = |e: &Event| {
            e.session.as_deref() == Some(self.session.as_str())
                && match wait {
                    Wait::Load => e.method == "Page.loadEventFired",
                    _ => e.method == "Page.lifecycleEvent" && e.params["name"] == "networkIdle",
                }
        };
        let until = tokio::time::Instant::now() + left;
        loop {
            match tokio::time::timeout_at(until, events.recv()).await {
                Err(_) => {
                    return Err(PageError::Timeout {
                        url: String::new(),
                        secs: left.as_secs(),
                        what: wait.words(),
                    });
                }
                Ok(Ok(e)) if want(&e) => return Ok(()),
                Ok(Ok(e)) if e.method == crate::cdp::CLOSED => {
                    return Err(CdpError::Closed(
                        e.params["why"].as_str().unwrap_or_default().into(),
                    )
                    .into());
                }
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(CdpError::Closed("its event stream ended".into()).into());
                }
            }
        }
    }

    async fn wait_selector(&self, sel: &str, left: Duration) -> Result<(), PageError> {
        let until = Instant::now() + left;
        let expr = format!("!!document.querySelector({})", json!(sel));
        loop {
            if self.eval(&expr, left).await.ok() == Some(Value::Bool(true)) {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(PageError::Timeout {
                    url: String::new(),
                    secs: left.as_secs(),
                    what: sel.into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page as text with refs.
    pub async fn snapshot(
        &mut self,
        max_chars: usize,
        deadline: Duration,
    ) -> Result<Value, PageError> {
        let v = self
            .eval(
                &format!("({SNAPSHOT_JS})({}, {max_chars})", self.next_ref),
                deadline,
            )
            .await?;
        let next = v["next"].as_u64().unwrap_or(self.next_ref);
        self.valid = self.next_ref..next;
        self.next_ref = next;
        Ok(v)
    }

    /// The expression that finds `t` (`null` when nothing matches).
    fn find(&self, t: &Target) -> Result<String, PageError> {
        match t {
            Target::Ref(r) => {
                if !self.valid.contains(r) {
                    return Err(PageError::StaleRef(*r));
                }
                Ok(format!("document.querySelector('[data-oi-ref=\"{r}\"]')"))
            }
            Target::Selector(s) => Ok(format!("document.querySelector({})", json!(s))),
        }
    }

    fn missing(&self, t: &Target) -> PageError {
        match t {
            Target::Ref(r) => PageError::StaleRef(*r),
            Target::Selector(s) => PageError::NoSuchElement(s.clone()),
        }
    }

    /// Scrolls `t` into view and gives its centre.
    async fn centre(&self, t: &Target, deadline: Duration) -> Result<(f64, f64), PageError> {
        let v = self
            .eval(
                &format!(
                    "(() => {{ const el = {}; if (!el) return null; el.scrollIntoView({{block: 'center', inline: 'center'}}); const r = el.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()",
                    self.find(t)?
                ),
                deadline,
            )
            .await?;
        match (v[0].as_f64(), v[1].as_f64()) {
            (Some(x), Some(y)) => Ok((x, y)),
            _ => Err(self.missing(t)),
        }
    }

    /// A real mouse click at the element's centre; a navigation it starts
    /// is waited for.
    pub async fn click(&mut self, t: &Target, deadline: Duration) -> Result<(), PageError> {
        let (x, y) = self.centre(t, deadline).await?;
        let mut events = self.events();
        for kind in ["mousePressed", "mouseReleased"] {
            self.send(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
                deadline,
            )
            .await?;
        }
        self.after_action(&mut events, deadline).await
    }

    /// If the page started loading within a moment of an action, waits for
    /// its load; the refs of the old page are then stale.
    async fn after_action(
        &mut self,
        events: &mut broadcast::Receiver<Event>,
        deadline: Duration,
    ) -> Result<(), PageError> {
        let soon = tokio::time::Instant::now() + Duration::from_millis(300);
        loop {
            match tokio::time::timeout_at(soon, events.recv()).await {
                Ok(Ok(e))
                    if e.session.as_deref() == Some(self.session.as_str())
                        && e.method == "Page.frameStartedLoading" =>
                {
                    self.valid = 0..0;
                    return self.wait_event(events, &Wait::Load, deadline).await;
                }
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                _ => return Ok(()),
            }
        }
    }

    /// Replaces the element's value with `text`, as typing would.
    pub async fn fill(
        &mut self,
        t: &Target,
        text: &str,
        deadline: Duration,
    ) -> Result<(), PageError> {
        let found = self
            .eval(
                &format!(
                    "(() => {{ const el = {}; if (!el) return null; el.focus(); if (el.tagName === 'SELECT') {{ const o = Array.from(el.options).find(o => o.value === {v} || o.text === {v}); if (!o) return 'no option'; el.value = o.value; el.dispatchEvent(new Event('input', {{bubbles: true}})); el.dispatchEvent(new Event('change', {{bubbles: true}})); return 'select'; }} if ('value' in el) {{ el.value = ''; }} else {{ el.textContent = ''; }} return 'text'; }})()",
                    self.find(t)?,
                    v = json!(text)
                ),
                deadline,
            )
            .await?;
        match found.as_str() {
            None => Err(self.missing(t)),
            Some("no option") => Err(PageError::Bad(format!("the list has no option {text:?}"))),
            Some("select") => Ok(()),
            Some(_) => {
                self.send("Input.insertText", json!({"text": text}), deadline)
                    .await?;
                self.eval(
                    "document.activeElement && document.activeElement.dispatchEvent(new Event('change', {bubbles: true}))",
                    deadline,
                )
                .await?;
                Ok(())
            }
        }
    }

    /// A key pressed on the focused element (Enter submits a form).
    pub async fn press(&mut self, key: &str, deadline: Duration) -> Result<(), PageError> {
        let (code, vk, text) = match key {
            "Enter" => ("Enter", 13, "\r"),
            "Tab" => ("Tab", 9, ""),
            "Escape" => ("Escape", 27, ""),
            "Backspace" => ("Backspace", 8, ""),
            "Delete" => ("Delete", 46, ""),
            "ArrowUp" => ("ArrowUp", 38, ""),
            "ArrowDown" => ("ArrowDown", 40, ""),
            "ArrowLeft" => ("ArrowLeft", 37, ""),
            "ArrowRight" => ("ArrowRight", 39, ""),
            "PageDown" => ("PageDown", 34, ""),
            "PageUp" => ("PageUp", 33, ""),
            "Space" | " " => ("Space", 32, " "),
            k if k.chars().count() == 1 => (k, 0, k),
            other => {
                return Err(PageError::Bad(format!(
                    "key {other:?}: use Enter, Tab, Escape, Backspace, Delete, ArrowUp/Down/Left/Right, PageUp/Down, Space or one character"
                )));
            }
        };
        let mut events = self.events();
        let mut down =
            json!({"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk});
        if !text.is_empty() {
            down["text"] = json!(text);
        }
        self.send("Input.dispatchKeyEvent", down, deadline).await?;
        self.send(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk}),
            deadline,
        )
        .await?;
        self.after_action(&mut events, deadline).await
    }

    /// The visible text of the page or of one element, cut at `max_chars`.
    pub async fn text(
        &self,
        t: Option<&Target>,
        max_chars: usize,
        deadline: Duration,
    ) -> Result<(String, bool), PageError> {
        let el = match t {
            Some(t) => self.find(t)?,
            None => {
                "(document.querySelector('main, article, [role=main]') || document.body)".into()
            }
        };
        let v = self
            .eval(
                &format!("(() => {{ const el = {el}; return el ? el.innerText : null; }})()"),
                deadline,
            )
            .await?;
        let Some(s) = v.as_str() else {
            return Err(match t {
                Some(t) => self.missing(t),
                None => PageError::Bad("the page has no body yet".into()),
            });
        };
        let cut = s.chars().count() > max_chars;
        Ok((s.chars().take(max_chars).collect(), cut))
    }

    /// A PNG of the viewport or of the whole page.
    pub async fn screenshot(&self, full: bool, deadline: Duration) -> Result<Vec<u8>, PageError> {
        let mut p = json!({"format": "png"});
        if full {
            let m = self
                .send("Page.getLayoutMetrics", json!({}), deadline)
                .await?;
            let size = &m["cssContentSize"];
            p["clip"] = json!({"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1});
            p["captureBeyondViewport"] = json!(true);
        }
        let r = self.send("Page.captureScreenshot", p, deadline).await?;
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .map_err(|e| PageError::Bad(format!("the screenshot is not base64: {e}")))
    }

    /// Where the tab is, its title and HTTP status.
    pub async fn location(&self, deadline: Duration) -> Result<Value, PageError> {
        self.eval(
            "(() => { const n = performance.getEntriesByType('navigation')[0]; return {url: location.href, title: document.title, status: n && n.responseStatus ? n.responseStatus : null}; })()",
            deadline,
        )
        .await
    }
}

/// `s` cut into pieces of at most `max` bytes, at character boundaries.
pub fn pieces(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut cut = max.max(4).min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        out.push(piece);
        rest = tail;
    }
    out
}

/// A PNG's width and height, from its IHDR chunk.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_script_is_cut_at_character_boundaries_into_bounded_pieces() {
        let s = format!("'{}'.length", "é".repeat(400_000));
        let p = pieces(&s, PIECE);
        assert_eq!(p.len(), s.len().div_ceil(PIECE));
        assert!(p.iter().all(|x| x.len() <= PIECE && !x.is_empty()));
        assert_eq!(p.concat(), s);
        assert_eq!(pieces("aéé", 4), ["aé", "é"]);
        assert!(pieces("", 10).is_empty());
    }

    #[test]
    fn a_png_says_its_size() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&800u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1280, 800)));
        assert_eq!(png_size(b"GIF89a"), None);
    }
}
