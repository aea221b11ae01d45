//! One CalDAV account: its password from the vault, its calendars found
//! by discovery (RFC 6764 `/.well-known/caldav`, then
//! `current-user-principal`, `calendar-home-set`, the collections), and
//! the requests on them. Every error names the account, and the calendar
//! when there is one.

use std::time::Duration;

use oi_kernel::client::BusClient;
use oi_kernel::secrets;
use reqwest::StatusCode;
use reqwest::Url;
use tokio::sync::Mutex;
use tracing::info;
use zeroize::Zeroizing;

use crate::config;
use crate::dav::{self, APPLE, Answer, CALDAV, DAV, DavError, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum CalError {
    /// The call's arguments, or a calendar or event that is not there.
    #[error("{0}")]
    Bad(String),
    /// The server refused the login, was unreachable, or answered wrongly.
    #[error("{0}")]
    Unavailable(String),
    /// The event changed on the server since it was read.
    #[error("{0}")]
    Changed(String),
}

/// A calendar collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub url: Url,
    pub name: String,
    pub color: Option<String>,
    /// Component types it holds (VEVENT, VTODO); empty when unsaid.
    pub components: Vec<String>,
}

impl Calendar {
    /// The last segment of its URL.
    pub fn slug(&self) -> &str {
        self.url
            .path_segments()
            .and_then(|mut s| s.rfind(|p| !p.is_empty()))
            .unwrap_or_default()
    }

    pub fn holds_events(&self) -> bool {
        self.components.is_empty() || self.components.iter().any(|c| c == "VEVENT")
    }
}

/// A stored object: where, its ETag and its text.
#[derive(Debug, Clone)]
pub struct Object {
    pub url: Url,
    pub etag: Option<String>,
    pub text: String,
}

pub struct Account {
    pub name: String,
    pub cfg: config::Account,
    http: reqwest::Client,
    limit: Duration,
    calendars: Mutex<Option<Vec<Calendar>>>,
}

impl Account {
    pub fn new(name: &str, cfg: config::Account, limit: Duration) -> Result<Account, String> {
        oi_sandbox::netguard::install_crypto();
        Url::parse(&cfg.url).map_err(|e| format!("url '{}': {e}", cfg.url))?;
        let http = reqwest::Client::builder()
            .timeout(limit)
            // Discovery follows the server's redirects itself, on the
            // same origin only, so the password goes nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Account {
            name: name.to_string(),
            cfg,
            http,
            limit,
            calendars: Mutex::new(None),
        })
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> CalError {
        CalError::Unavailable(format!("calendar account '{}': {what}", self.name))
    }

    fn dav_error(&self, e: DavError) -> CalError {
        match e {
            DavError::Refused(m) => self.unavailable(format!(
                "{m}: the server refused the login of {}; check the password in the vault secret {}",
                self.cfg.username, self.cfg.password_secret
            )),
            DavError::Changed(m) => CalError::Changed(m),
            DavError::NotFound(m) => CalError::Bad(format!("calendar account '{}': {m}", self.name)),
            other => self.unavailable(other),
        }
    }

    async fn password(&self, bus: &BusClient) -> Result<Zeroizing<String>, CalError> {
        let name = &self.cfg.password_secret;
        match secrets::read_text(bus, name, self.limit).await {
            Ok(v) if !v.is_empty() => Ok(v),
            Ok(_) => Err(self.unavailable(format!(
                "the vault secret {name} is empty; set it with `oictl vault set {name}`"
            ))),
            Err(e) => Err(self.unavailable(format!(
                "cannot read the vault secret {name} ({e}); set it with `oictl vault set {name}`, and let [vault.policy] calendar read it"
            ))),
        }
    }

    /// Sends `r`, following up to five same-origin redirects.
    async fn send(&self, pw: &str, r: Request<'_>) -> Result<Answer, CalError> {
        let origin = Url::parse(r.url).map_err(|e| CalError::Bad(format!("{}: {e}", r.url)))?;
        let mut url = r.url.to_string();
        for _ in 0..5 {
            let again = Request {
                method: r.method,
                url: &url,
                depth: r.depth,
                body: r.body.clone(),
                content_type: r.content_type,
                headers: r.headers.clone(),
            };
            let a = dav::send(&self.http, again, &self.cfg.username, pw, self.limit)
                .await
                .map_err(|e| self.dav_error(e))?;
            if !a.status.is_redirection() {
                return Ok(a);
            }
            let Some(to) = a
                .headers
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| Url::parse(&url).ok()?.join(l).ok())
            else {
                return Err(self.unavailable(format!("{} {url} redirected nowhere", r.method)));
            };
            if to.origin() != origin.origin() {
                return Err(self.unavailable(format!(
                    "{url} redirected to another server ({to}); set the account's url to it"
                )));
            }
            url = to.to_string();
        }
        Err(self.unavailable(format!("{}: too many redirects", r.url)))
    }

    async fn propfind(
        &self,
        pw: &str,
        url: &Url,
        depth: &'static str,
        props: &[(&str, &str)],
    ) -> Result<Vec<Response>, CalError> {
        let u = url.to_string();
        let mut r = Request::new("PROPFIND", &u);
        r.depth = Some(depth);
        r.body = Some(dav::propfind_body(props));
        let a = self.send(pw, r).await?;
        if a.status == StatusCode::NOT_FOUND {
            return Err(CalError::Bad(format!(
                "calendar account '{}': {u} does not exist (404)",
                self.name
            )));
        }
        if a.status != StatusCode::MULTI_STATUS {
            return Err(self.unavailable(format!("PROPFIND {u} answered {}", a.status)));
        }
        dav::parse_multistatus(&a.body).map_err(|e| self.unavailable(format!("PROPFIND {u}: {e}")))
    }

    /// The calendars, found once and kept (`refresh` finds them again).
    pub async fn calendars(
        &self,
        bus: &BusClient,
        refresh: bool,
    ) -> Result<Vec<Calendar>, CalError> {
        let mut cached = self.calendars.lock().await;
        if let Some(c) = cached.as_ref().filter(|_| !refresh) {
            return Ok(c.clone());
        }
        let pw = self.password(bus).await?;
        let found = self.discover(&pw).await?;
        info!(account = %self.name, calendars = found.len(), "calendars discovered");
        *cached = Some(found.clone());
        Ok(found)
    }

    async fn discover(&self, pw: &str) -> Result<Vec<Calendar>, CalError> {
        let base = Url::parse(&self.cfg.url).map_err(|e| CalError::Bad(e.to_string()))?;
        const KIND: [(&str, &str); 4] = [
            ("d", "resourcetype"),
            ("d", "displayname"),
            ("a", "calendar-color"),
            ("c", "supported-calendar-component-set"),
        ];
        // The url may be a calendar itself.
        let here = self
            .propfind(
                pw,
                &base,
                "0",
                &[
                    ("d", "resourcetype"),
                    ("d", "current-user-principal"),
                    ("c", "calendar-home-set"),
                ],
            )
            .await;
        let mut principal = None;
        let mut home = None;
        if let Ok(r) = &here {
            if r.first().is_some_and(|r| r.is(CALDAV, "calendar")) {
                return self.collections(pw, &base, "0", &KIND).await;
            }
            home = r
                .first()
                .and_then(|r| r.prop(CALDAV, "calendar-home-set"))
                .and_then(|p| p.hrefs.first().cloned());
            principal = r
                .first()
                .and_then(|r| r.prop(DAV, "current-user-principal"))
                .and_then(|p| p.hrefs.first().cloned());
        }
        if home.is_none() && principal.is_none() {
            let wk = base
                .join("/.well-known/caldav")
                .map_err(|e| CalError::Bad(e.to_string()))?;
            let r = self
                .propfind(pw, &wk, "0", &[("d", "current-user-principal")])
                .await;
            principal = match (r, here) {
                (Ok(r), _) => r
                    .first()
                    .and_then(|r| r.prop(DAV, "current-user-principal"))
                    .and_then(|p| p.hrefs.first().cloned()),
                // Neither answered: what the url said is the error.
                (Err(_), Err(e)) => return Err(e),
                (Err(e), Ok(_)) => return Err(e),
            };
        }
        if home.is_none() {
            let Some(p) = principal else {
                return Err(self.unavailable(format!(
                    "{base} names no current-user-principal: set url to the calendar home"
                )));
            };
            let p = base
                .join(&p)
                .map_err(|e| self.unavailable(format!("principal {p}: {e}")))?;
            let r = self
                .propfind(pw, &p, "0", &[("c", "calendar-home-set")])
                .await?;
            home = r
                .first()
                .and_then(|r| r.prop(CALDAV, "calendar-home-set"))
                .and_then(|p| p.hrefs.first().cloned());
        }
        let Some(h) = home else {
            return Err(self.unavailable(format!("{base}: the principal has no calendar-home-set")));
        };
        let h = base
            .join(&h)
            .map_err(|e| self.unavailable(format!("calendar home {h}: {e}")))?;
        self.collections(pw, &h, "1", &KIND).await
    }

    async fn collections(
        &self,
        pw: &str,
        url: &Url,
        depth: &'static str,
        props: &[(&str, &str)],
    ) -> Result<Vec<Calendar>, CalError> {
        let r = self.propfind(pw, url, depth, props).await?;
        let mut out = Vec::new();
        for c in r.iter().filter(|c| c.is(CALDAV, "calendar")) {
            let u = url
                .join(&c.href)
                .map_err(|e| self.unavailable(format!("{}: {e}", c.href)))?;
            let mut cal = Calendar {
                name: c.text(DAV, "displayname").unwrap_or_default().to_string(),
                color: c.text(APPLE, "calendar-color").map(String::from),
                components: c
                    .prop(CALDAV, "supported-calendar-component-set")
                    .map(|p| p.names.clone())
                    .unwrap_or_default(),
                url: u,
            };
            if cal.name.is_empty() {
                cal.name = cal.slug().to_string();
            }
            out.push(cal);
        }
        Ok(out)
    }

    /// The calendar `name` (display name or URL segment), the account's
    /// default, or the first that holds events.
    pub async fn calendar(
        &self,
        bus: &BusClient,
        name: Option<&str>,
    ) -> Result<Calendar, CalError> {
        let want = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .or(Some(self.cfg.calendar.as_str()).filter(|n| !n.is_empty()));
        let find = |cals: &[Calendar]| match want {
            Some(w) => cals
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(w) || c.slug() == w)
                .cloned(),
            None => cals.iter().find(|c| c.holds_events()).cloned(),
        };
        let cals = self.calendars(bus, false).await?;
        if let Some(c) = find(&cals) {
            return Ok(c);
        }
        // Perhaps made since discovery.
        let cals = self.calendars(bus, true).await?;
        find(&cals).ok_or_else(|| {
            let names: Vec<&str> = cals.iter().map(|c| c.name.as_str()).collect();
            CalError::Bad(match want {
                Some(w) => format!(
                    "calendar account '{}' has no calendar '{w}' (calendars: {})",
                    self.name,
                    names.join(", ")
                ),
                None => format!(
                    "calendar account '{}' has no calendar for events",
                    self.name
                ),
            })
        })
    }

    /// The objects of `cal` with an event in `[from, to)` (UTC, `YYYYMMDDTHHMMSSZ`).
    pub async fn query(
        &self,
        bus: &BusClient,
        cal: &Calendar,
        from: &str,
        to: &str,
    ) -> Result<Vec<Object>, CalError> {
        let filter = format!(
            "<c:comp-filter name=\"VEVENT\"><c:time-range start=\"{from}\" end=\"{to}\"/></c:comp-filter>"
        );
        self.report(bus, cal, &filter).await
    }

    /// The object holding the event `uid`.
    pub async fn find(
        &self,
        bus: &BusClient,
        cal: &Calendar,
        uid: &str,
    ) -> Result<Object, CalError> {
        let esc = uid
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let filter = format!(
            "<c:comp-filter name=\"VEVENT\"><c:prop-filter name=\"UID\"><c:text-match collation=\"i;octet\">{esc}</c:text-match></c:prop-filter></c:comp-filter>"
        );
        let mut found = self.report(bus, cal, &filter).await?;
        if found.is_empty() {
            return Err(CalError::Bad(format!(
                "calendar account '{}', calendar '{}': no event with uid {uid}",
                self.name, cal.name
            )));
        }
        Ok(found.swap_remove(0))
    }

    async fn report(
        &self,
        bus: &BusClient,
        cal: &Calendar,
        filter: &str,
    ) -> Result<Vec<Object>, CalError> {
        let pw = self.password(bus).await?;
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<c:calendar-query xmlns:d=\"{DAV}\" xmlns:c=\"{CALDAV}\"><d:prop><d:getetag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name=\"VCALENDAR\">{filter}</c:comp-filter></c:filter></c:calendar-query>"
        );
        let u = cal.url.to_string();
        let mut r = Request::new("REPORT", &u);
        r.depth = Some("1");
        r.body = Some(body);
        let a = self
            .send(&pw, r)
            .await
            .map_err(|e| self.in_calendar(e, cal))?;
        if a.status != StatusCode::MULTI_STATUS {
            return Err(self.in_calendar(
                self.unavailable(format!("REPORT answered {}", a.status)),
                cal,
            ));
        }
        let rs = dav::parse_multistatus(&a.body)
            .map_err(|e| self.in_calendar(self.unavailable(format!("REPORT: {e}")), cal))?;
        let mut out = Vec::new();
        for r in rs {
            let Some(text) = r.prop(CALDAV, "calendar-data").map(|p| p.text.clone()) else {
                continue;
            };
            let url = cal
                .url
                .join(&r.href)
                .map_err(|e| self.unavailable(format!("{}: {e}", r.href)))?;
            out.push(Object {
                url,
                etag: r.text(DAV, "getetag").map(String::from),
                text,
            });
        }
        Ok(out)
    }

    fn in_calendar(&self, e: CalError, cal: &Calendar) -> CalError {
        let at = format!(", calendar '{}'", cal.name);
        match e {
            CalError::Unavailable(m) => CalError::Unavailable(insert_after_account(&m, &at)),
            CalError::Bad(m) => CalError::Bad(insert_after_account(&m, &at)),
            other => other,
        }
    }

    /// Stores `text` at `url`: a new object (`etag` None, If-None-Match: *)
    /// or over the version `etag` (If-Match). Returns the new ETag.
    pub async fn put(
        &self,
        bus: &BusClient,
        cal: &Calendar,
        url: &Url,
        text: String,
        etag: Option<&str>,
    ) -> Result<Option<String>, CalError> {
        let pw = self.password(bus).await?;
        let u = url.to_string();
        let mut r = Request::new("PUT", &u);
        r.content_type = "text/calendar; charset=utf-8";
        r.body = Some(text);
        r.headers.push(match etag {
            Some(e) => ("If-Match", e.to_string()),
            None => ("If-None-Match", "*".to_string()),
        });
        let a = self
            .send(&pw, r)
            .await
            .map_err(|e| self.in_calendar(e, cal))?;
        match a.status {
            s if s.is_success() => Ok(a.etag()),
            StatusCode::PRECONDITION_FAILED => Err(CalError::Changed(format!(
                "calendar account '{}', calendar '{}': {u} changed on the server since it was read",
                self.name, cal.name
            ))),
            s => Err(self.in_calendar(
                self.unavailable(format!(
                    "PUT {u} answered {s}: {}",
                    a.body.trim().chars().take(300).collect::<String>()
                )),
                cal,
            )),
        }
    }

    pub async fn delete(
        &self,
        bus: &BusClient,
        cal: &Calendar,
        url: &Url,
        etag: Option<&str>,
    ) -> Result<(), CalError> {
        let pw = self.password(bus).await?;
        let u = url.to_string();
        let mut r = Request::new("DELETE", &u);
        if let Some(e) = etag {
            r.headers.push(("If-Match", e.to_string()));
        }
        let a = self
            .send(&pw, r)
            .await
            .map_err(|e| self.in_calendar(e, cal))?;
        match a.status {
            s if s.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(CalError::Changed(format!(
                "calendar account '{}', calendar '{}': {u} changed on the server since it was read",
                self.name, cal.name
            ))),
            s => Err(self.in_calendar(self.unavailable(format!("DELETE {u} answered {s}")), cal)),
        }
    }
}

/// "calendar account 'a': x" with `at` after the account's name.
fn insert_after_account(m: &str, at: &str) -> String {
    match m.find("': ") {
        Some(i) if m.starts_with("calendar account '") => {
            format!("{}{at}{}", &m[..i + 1], &m[i + 1..])
        }
        _ => m.to_string(),
    }
}
