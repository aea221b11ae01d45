//! GitHub's REST API as a good client uses it: the token from the vault
//! (sent to the configured host only), `Link` pagination, rate limits
//! waited out within the call's deadline, conditional GETs answered from
//! the cache on 304, and GitHub's error bodies passed on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use oi_kernel::client::BusClient;
use oi_kernel::secrets;
use reqwest::header::{ACCEPT, AUTHORIZATION, ETAG, HeaderMap, IF_NONE_MATCH, LINK, USER_AGENT};
use reqwest::{Method, Url};
use serde_json::Value;
use tracing::{debug, info};
use zeroize::Zeroizing;

use crate::cache::{Cache, Cached};
use crate::config::GithubConfig;
use crate::error::{Body, GhError};
use crate::limits::{self, Seen, Verdict};
use crate::paging;

/// The REST API version this client speaks.
pub const API_VERSION: &str = "2022-11-28";
/// Items per page GitHub gives at most.
pub const PER_PAGE_MAX: usize = 100;

pub struct Github {
    pub cfg: GithubConfig,
    /// `api_url` with a trailing slash, to join paths to.
    base: Url,
    http: reqwest::Client,
    cache: Mutex<Cache>,
    seen: Mutex<Seen>,
}

/// One tool call: its token and deadline.
pub struct Call<'a> {
    gh: &'a Github,
    token: Zeroizing<String>,
    deadline: Instant,
}

/// A listing, cut at `max_items`.
#[derive(Debug, Default)]
pub struct Listing {
    pub items: Vec<Value>,
    /// More items were there past the cut.
    pub more: bool,
    /// `total_count` of a search.
    pub total: Option<u64>,
    pub pages: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Github {
    pub fn new(cfg: GithubConfig) -> Result<Github, String> {
        oi_sandbox::netguard::install_crypto();
        let mut base =
            Url::parse(&cfg.api_url).map_err(|e| format!("api_url '{}': {e}", cfg.api_url))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            // No redirect is followed with the token by reqwest: GitHub
            // answers a moved repository with a 301 on the same API, which
            // `send` follows, and only there.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Github {
            cache: Mutex::new(Cache::new(
                cfg.cache_entries as usize,
                crate::cache::MAX_BYTES,
            )),
            cfg,
            base,
            http,
            seen: Mutex::new(Seen::default()),
        })
    }

    /// The host the token may be sent to.
    fn host(&self) -> &str {
        self.base.host_str().unwrap_or("")
    }

    /// Starts a call with `budget` left of the caller's deadline: reads the
    /// token as the `github` service and checks its hosts.
    pub async fn call(&self, bus: &BusClient, budget: Duration) -> Result<Call<'_>, GhError> {
        let limit = budget.min(Duration::from_secs(self.cfg.timeout_secs));
        let deadline = Instant::now() + limit;
        let name = &self.cfg.token_secret;
        let (token, hosts) = secrets::read_bound(bus, name, limit.min(Duration::from_secs(10)))
            .await
            .map_err(|e| {
                GhError::Unavailable(format!(
                    "cannot read the GitHub token from vault secret '{name}' ({e}); store it with `oictl vault set {name}`"
                ))
            })?;
        if token.is_empty() {
            return Err(GhError::Unavailable(format!(
                "vault secret '{name}' is empty; store the token with `oictl vault set {name}`"
            )));
        }
        let host = self.host();
        if !hosts.is_empty() && !oi_ipc_schema::vault::host_allowed(&hosts, host) {
            return Err(GhError::Denied(format!(
                "vault secret '{name}' may be sent only to {}, not to '{host}' ([github] api_url); bind it with `oictl vault set {name} --hosts {host}`",
                hosts.join(", ")
            )));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        if lock(&self.cache).own(digest.as_ref()) {
            // Rate limits are the token's: another one starts afresh.
            *lock(&self.seen) = Seen::default();
        }
        Ok(Call {
            gh: self,
            token,
            deadline,
        })
    }

    /// A path below the API root (`repos/me/x/issues`).
    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, GhError> {
        let mut u = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| GhError::Bad(format!("'{path}' is not an API path: {e}")))?;
        if !query.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }

    /// Whether `u` is on the API's origin and below its root (a `Link` or
    /// a redirect may point anywhere; the token goes only here).
    fn ours(&self, u: &Url) -> bool {
        u.origin() == self.base.origin() && u.path().starts_with(self.base.path())
    }
}

/// The path and query of `u`, for errors and logs.
fn shown(u: &Url) -> String {
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

impl Call<'_> {
    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// GET one resource.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, GhError> {
        let u = self.gh.url(path, query)?;
        Ok(self.get_url(u).await?.0)
    }

    /// A listing from `path`, following `Link: rel="next"` until `max`
    /// items. `key` names the array in an object page (`items` of a
    /// search, `workflow_runs`); `None` for a top-level array.
    pub async fn list(
        &self,
        path: &str,
        query: &[(&str, String)],
        max: usize,
        key: Option<&str>,
    ) -> Result<Listing, GhError> {
        let mut q = query.to_vec();
        q.push(("per_page", max.clamp(1, PER_PAGE_MAX).to_string()));
        let mut next = Some(self.gh.url(path, &q)?);
        let mut out = Listing::default();
        while let Some(u) = next.take() {
            let (mut body, link) = self.get_url(u).await?;
            out.pages += 1;
            if out.total.is_none() {
                out.total = body.get("total_count").and_then(Value::as_u64);
            }
            let items = match key {
                Some(k) => body.get_mut(k).map(Value::take),
                None => Some(body),
            };
            let Some(Value::Array(items)) = items else {
                return Err(GhError::Unavailable(format!(
                    "GitHub's answer to {path} is not a listing{}",
                    key.map(|k| format!(" (no '{k}' array)"))
                        .unwrap_or_default()
                )));
            };
            let room = max - out.items.len();
            out.more = items.len() > room;
            out.items.extend(items.into_iter().take(room));
            if out.items.len() >= max {
                out.more |= link.is_some();
                break;
            }
            if let Some(l) = link {
                let u = Url::parse(&l).map_err(|e| {
                    GhError::Unavailable(format!("GitHub's next-page link '{l}' is not a URL: {e}"))
                })?;
                if !self.gh.ours(&u) {
                    return Err(GhError::Unavailable(format!(
                        "GitHub's next-page link points off the API ({}); not followed with the token",
                        u.origin().ascii_serialization()
                    )));
                }
                next = Some(u);
            }
        }
        Ok(out)
    }

    /// POST a JSON body; the created or changed resource.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, GhError> {
        let u = self.gh.url(path, &[])?;
        let (status, _, bytes) = self.send(Method::POST, &u, Some(body), None).await?;
        json(&Method::POST, &u, status, &bytes)
    }

    /// A conditional GET: the body and the next page's link.
    async fn get_url(&self, u: Url) -> Result<(Value, Option<String>), GhError> {
        let key = u.as_str().to_string();
        let cached = lock(&self.gh.cache).get(&key).cloned();
        let (status, headers, bytes) = self.send(Method::GET, &u, None, cached.as_ref()).await?;
        if let (304, Some(c)) = (status, cached) {
            debug!(url = %shown(&u), "not modified; answered from the cache");
            return Ok((json(&Method::GET, &u, 200, &c.body)?, c.next));
        }
        let body = json(&Method::GET, &u, status, &bytes)?;
        let next = headers
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(paging::next)
            .map(str::to_string);
        if let Some(tag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) {
            lock(&self.gh.cache).put(
                &key,
                Cached {
                    etag: tag.to_string(),
                    body: bytes.into(),
                    next: next.clone(),
                },
            );
        }
        Ok((body, next))
    }

    /// Sends one request, waiting out rate limits that fit the deadline
    /// and retrying a GET once after a 502/503/504. Returns a 2xx or 304.
    async fn send(
        &self,
        method: Method,
        u: &Url,
        body: Option<&Value>,
        cached: Option<&Cached>,
    ) -> Result<(u16, HeaderMap, Vec<u8>), GhError> {
        let what = format!("GitHub {method} {}", shown(u));
        let mut retried = false;
        let mut target = u.clone();
        let mut redirects = 0;
        loop {
            let seen = *lock(&self.gh.seen);
            if let Some(v) = limits::exhausted(seen, unix_now(), self.left()) {
                self.obey(&what, v).await?;
                continue;
            }
            let left = self.left();
            if left.is_zero() {
                return Err(GhError::Timeout(format!(
                    "{what}: the call's deadline passed"
                )));
            }
            let mut req = self
                .gh
                .http
                .request(method.clone(), target.clone())
                .timeout(left)
                .header(ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", API_VERSION)
                .header(
                    USER_AGENT,
                    concat!("OpenIntentOS-github/", env!("CARGO_PKG_VERSION")),
                )
                .header(AUTHORIZATION, format!("Bearer {}", self.token.as_str()));
            if let Some(c) = cached {
                req = req.header(IF_NONE_MATCH, c.etag.as_str());
            }
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    return Err(GhError::Timeout(format!(
                        "{what}: no answer within the call's deadline"
                    )));
                }
                Err(e) => {
                    return Err(GhError::Unavailable(format!(
                        "{what}: {}",
                        oi_sandbox::netguard::error_chain(&e)
                    )));
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let seen = Seen {
                remaining: header_u64(&headers, "x-ratelimit-remaining"),
                reset: header_u64(&headers, "x-ratelimit-reset"),
                retry_after: header_u64(&headers, "retry-after"),
            };
            if seen.remaining.is_some() {
                *lock(&self.gh.seen) = Seen {
                    retry_after: None,
                    ..seen
                };
            }
            let bytes = resp.bytes().await.map(|b| b.to_vec()).map_err(|e| {
                GhError::Unavailable(format!(
                    "{what}: the answer was cut off: {}",
                    oi_sandbox::netguard::error_chain(&e)
                ))
            })?;
            if (200..300).contains(&status) || (status == 304 && cached.is_some()) {
                return Ok((status, headers, bytes));
            }
            if matches!(status, 301 | 302 | 307 | 308) && redirects < 3 {
                // A renamed or moved repository: followed on the API only.
                let to = headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| target.join(l).ok());
                match to {
                    Some(to) if self.gh.ours(&to) => {
                        redirects += 1;
                        target = to;
                        continue;
                    }
                    _ => {
                        return Err(GhError::Unavailable(format!(
                            "{what}: {status} to somewhere off the API; not followed with the token"
                        )));
                    }
                }
            }
            let err = Body::parse(&bytes);
            if let Some(v) = limits::refused(status, seen, &err.message, unix_now(), self.left()) {
                self.obey(&what, v).await?;
                continue;
            }
            if method == Method::GET && matches!(status, 502..=504) && !retried {
                retried = true;
                let pause = Duration::from_secs(1);
                if self.left() > pause {
                    info!(status, "{what}: retrying once");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            }
            return Err(self.refusal(&what, status, &err));
        }
    }

    async fn obey(&self, what: &str, v: Verdict) -> Result<(), GhError> {
        match v {
            Verdict::Wait(d) => {
                info!(wait_s = d.as_secs(), "{what}: rate limited; waiting");
                tokio::time::sleep(d).await;
                // The wait is over: what was seen no longer holds.
                *lock(&self.gh.seen) = Seen::default();
                Ok(())
            }
            Verdict::Fail(m) => Err(GhError::Unavailable(format!("{what}: {m}"))),
        }
    }

    fn refusal(&self, what: &str, status: u16, err: &Body) -> GhError {
        let said = err.describe();
        let secret = &self.gh.cfg.token_secret;
        match status {
            401 => GhError::Denied(format!(
                "{what}: GitHub refused the token (401 {said}); store a valid one with `oictl vault set {secret}`"
            )),
            403 => GhError::Denied(format!(
                "{what}: 403 {said}; the token in vault secret '{secret}' lacks the permission"
            )),
            404 => GhError::Bad(format!(
                "{what}: 404 {said}; check the names, and that the token can see it"
            )),
            400..=499 => GhError::Bad(format!("{what}: {status} {said}")),
            _ => GhError::Unavailable(format!("{what}: {status} {said}")),
        }
    }
}

fn json(method: &Method, u: &Url, status: u16, bytes: &[u8]) -> Result<Value, GhError> {
    if status == 204 || bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        GhError::Unavailable(format!(
            "GitHub {method} {}: the answer is not JSON ({e})",
            shown(u)
        ))
    })
}
