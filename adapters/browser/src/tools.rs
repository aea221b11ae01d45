//! The browser tools: names, schemas, arguments, and what each does in
//! its tab.

use std::path::Path;
use std::time::Duration;

use oi_ipc_schema::ToolSpec;
use oi_kernel::tool::spec;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Settings;
use crate::guard::Refusals;
use crate::page::{PageError, Tab, Target, Wait, png_size};

pub const NAVIGATE: &str = "browser_navigate";
pub const SNAPSHOT: &str = "browser_snapshot";
pub const CLICK: &str = "browser_click";
pub const FILL: &str = "browser_fill";
pub const PRESS: &str = "browser_press";
pub const TEXT: &str = "browser_text";
pub const SCREENSHOT: &str = "browser_screenshot";
pub const EVAL: &str = "browser_eval";

pub fn specs() -> Vec<ToolSpec> {
    let target = json!({
        "ref": {"type": "integer", "description": "An element's number from browser_snapshot."},
        "selector": {"type": "string", "description": "A CSS selector, instead of ref."}});
    let with = |extra: Value| {
        let mut p = target.clone();
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    vec![
        spec(
            NAVIGATE,
            "Open a URL in a real browser (JavaScript runs). Returns the final URL, HTTP status, title and the first lines of text.",
            json!({"type": "object", "required": ["url"], "properties": {
                "url": {"type": "string"},
                "wait": {"type": "string", "description": "load (default), networkidle, or a CSS selector to wait for."},
                "timeout_secs": {"type": "integer", "minimum": 1}}}),
        ),
        spec(
            SNAPSHOT,
            "The current page as text, with a [number] before every link, button and field; use the number as ref in browser_click and browser_fill.",
            json!({"type": "object", "properties": {}}),
        ),
        spec(
            CLICK,
            "Click an element (by ref or selector); a page it opens is waited for.",
            json!({"type": "object", "properties": target}),
        ),
        spec(
            FILL,
            "Type text into a field (by ref or selector), replacing what it held; for a list, choose the option.",
            json!({"type": "object", "required": ["text"], "properties": with(json!({"text": {"type": "string"}}))}),
        ),
        spec(
            PRESS,
            "Press a key in the focused element: Enter (submits a form), Tab, Escape, Backspace, arrows, or one character.",
            json!({"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}),
        ),
        spec(
            TEXT,
            "The visible text of the page (its main part) or of one element.",
            json!({"type": "object", "properties": target}),
        ),
        spec(
            SCREENSHOT,
            "Save a PNG of the page into the workspace (screenshots/). Returns its path and size.",
            json!({"type": "object", "properties": {
                "full_page": {"type": "boolean"},
                "name": {"type": "string", "description": "File name without .png (letters, digits, - and _)."}}}),
        ),
        spec(
            EVAL,
            "Run JavaScript in the page and return its value (only when [browser] allow_eval is on).",
            json!({"type": "object", "required": ["expression"], "properties": {"expression": {"type": "string"}}}),
        ),
    ]
}

/// Every tool's arguments (each uses its own).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub url: Option<String>,
    pub wait: Option<String>,
    pub timeout_secs: Option<u64>,
    #[serde(rename = "ref")]
    pub reference: Option<u64>,
    pub selector: Option<String>,
    pub text: Option<String>,
    pub key: Option<String>,
    pub full_page: Option<bool>,
    pub name: Option<String>,
    pub expression: Option<String>,
}

impl Args {
    fn target(&self) -> Result<Option<Target>, PageError> {
        match (self.reference, &self.selector) {
            (Some(_), Some(_)) => Err(PageError::Bad("give ref or selector, not both".into())),
            (Some(r), None) => Ok(Some(Target::Ref(r))),
            (None, Some(s)) => Ok(Some(Target::Selector(s.clone()))),
            (None, None) => Ok(None),
        }
    }
    fn need_target(&self) -> Result<Target, PageError> {
        self.target()?.ok_or_else(|| {
            PageError::Bad("say which element: ref (from browser_snapshot) or selector".into())
        })
    }
    fn need<'a>(v: &'a Option<String>, what: &str) -> Result<&'a str, PageError> {
        v.as_deref()
            .ok_or_else(|| PageError::Bad(format!("{what} is missing")))
    }
}

/// The first lines of a text, for a navigation's result.
fn first_lines(text: &str, chars: usize) -> String {
    let mut out = String::new();
    for l in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(20)
    {
        if out.len() + l.len() > chars {
            break;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    tab: &mut Tab,
    name: &str,
    a: &Args,
    deadline: Duration,
    s: &Settings,
    data: &Path,
    refusals: &Refusals,
    no_sandbox: bool,
) -> Result<Value, PageError> {
    let max_text = s.browser.max_text_chars as usize;
    match name {
        NAVIGATE => {
            let url = Args::need(&a.url, "url")?;
            // Checked before the browser sees it: interception does not
            // see chrome: or file: navigations, and this says why.
            crate::guard::verdict(&s.guard, url)
                .await
                .map_err(|why| PageError::Navigation {
                    url: url.into(),
                    why: why.trim_start_matches(&format!("{url}: ")).to_string(),
                })?;
            let wait = Wait::parse(a.wait.as_deref());
            refusals.take(&tab.session);
            match tab.navigate(url, &wait, deadline).await {
                Err(PageError::Navigation { url, why }) => {
                    let why = refusals.take(&tab.session).unwrap_or(why);
                    return Err(PageError::Navigation { url, why });
                }
                r => r?,
            }
            let mut v = tab.location(deadline).await?;
            let (text, _) = tab.text(None, max_text, deadline).await.unwrap_or_default();
            v["text"] = json!(first_lines(&text, 1500));
            if no_sandbox {
                v["note"] =
                    json!("the browser runs without its own sandbox (the adapter runs as root)");
            }
            Ok(v)
        }
        SNAPSHOT => {
            let v = tab
                .snapshot(s.browser.max_snapshot_chars as usize, deadline)
                .await?;
            Ok(
                json!({"url": v["url"], "title": v["title"], "snapshot": v["text"], "truncated": v["cut"]}),
            )
        }
        CLICK => {
            tab.click(&a.need_target()?, deadline).await?;
            tab.location(deadline).await
        }
        FILL => {
            tab.fill(&a.need_target()?, Args::need(&a.text, "text")?, deadline)
                .await?;
            Ok(json!({"filled": true}))
        }
        PRESS => {
            tab.press(Args::need(&a.key, "key")?, deadline).await?;
            tab.location(deadline).await
        }
        TEXT => {
            let (text, cut) = tab.text(a.target()?.as_ref(), max_text, deadline).await?;
            Ok(json!({"text": text, "truncated": cut}))
        }
        SCREENSHOT => {
            let name = a.name.clone().unwrap_or_else(|| {
                format!(
                    "shot-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0)
                )
            });
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(PageError::Bad(format!(
                    "name {name:?}: use letters, digits, - and _ only"
                )));
            }
            let png = tab
                .screenshot(a.full_page.unwrap_or(false), deadline)
                .await?;
            let (w, h) = png_size(&png)
                .ok_or_else(|| PageError::Bad("the browser's screenshot is not a PNG".into()))?;
            let dir = data.join("workspace").join("screenshots");
            let path = dir.join(format!("{name}.png"));
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, &png))
                .map_err(|e| PageError::Bad(format!("cannot write {}: {e}", path.display())))?;
            Ok(
                json!({"path": format!("screenshots/{name}.png"), "width": w, "height": h, "bytes": png.len()}),
            )
        }
        EVAL => {
            let v = tab
                .eval(Args::need(&a.expression, "expression")?, deadline)
                .await?;
            Ok(json!({"value": v}))
        }
        other => Err(PageError::Bad(format!(
            "the browser adapter has no tool '{other}'"
        ))),
    }
}
