//! WebDAV as CalDAV uses it: PROPFIND and REPORT answered with a
//! `207 Multi-Status` document (RFC 4918 §13), parsed with roxmltree, and
//! the plain requests (GET, PUT, DELETE) with their ETags.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};

pub const DAV: &str = "DAV:";
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const APPLE: &str = "http://apple.com/ns/ical/";

/// What went wrong with a request, by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum DavError {
    /// 401 or 403.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// 412: the resource is not in the state the request assumed.
    #[error("{0}")]
    Changed(String),
    /// The server could not be reached or did not answer in time.
    #[error("{0}")]
    Unreachable(String),
    /// An answer that is not what the protocol says.
    #[error("{0}")]
    Malformed(String),
    /// Any other status.
    #[error("{0}")]
    Status(String),
}

/// One property of a response, as much of it as CalDAV needs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Prop {
    /// The text inside it (calendar-data, displayname, getetag, ...).
    pub text: String,
    /// The `<D:href>`s inside it (current-user-principal, calendar-home-set).
    pub hrefs: Vec<String>,
    /// Its child elements as (namespace, name) (resourcetype).
    pub children: Vec<(String, String)>,
    /// The `name` attributes of its children (supported-calendar-component-set).
    pub names: Vec<String>,
}

/// One `<D:response>`: its href and the properties found (status 200).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Response {
    pub href: String,
    /// The response's own status, when it has one instead of propstats.
    pub status: Option<u16>,
    pub props: HashMap<(String, String), Prop>,
}

impl Response {
    pub fn prop(&self, ns: &str, name: &str) -> Option<&Prop> {
        self.props.get(&(ns.to_string(), name.to_string()))
    }

    pub fn text(&self, ns: &str, name: &str) -> Option<&str> {
        self.prop(ns, name)
            .map(|p| p.text.trim())
            .filter(|t| !t.is_empty())
    }

    pub fn is(&self, ns: &str, kind: &str) -> bool {
        self.prop(DAV, "resourcetype")
            .is_some_and(|p| p.children.iter().any(|(n, k)| n == ns && k == kind))
    }
}

fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

fn text_of(n: roxmltree::Node) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect()
}

fn is(n: &roxmltree::Node, ns: &str, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == Some(ns)
}

/// The responses of a multistatus document.
pub fn parse_multistatus(xml: &str) -> Result<Vec<Response>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if !is(&root, DAV, "multistatus") {
        return Err(format!(
            "expected a DAV:multistatus document, got <{}>",
            root.tag_name().name()
        ));
    }
    let mut out = Vec::new();
    for r in root.children().filter(|n| is(n, DAV, "response")) {
        let mut resp = Response::default();
        for c in r.children().filter(|n| n.is_element()) {
            if is(&c, DAV, "href") && resp.href.is_empty() {
                resp.href = text_of(c).trim().to_string();
            } else if is(&c, DAV, "status") {
                resp.status = status_code(&text_of(c));
            } else if is(&c, DAV, "propstat") {
                let ok = c
                    .children()
                    .find(|n| is(n, DAV, "status"))
                    .and_then(|s| status_code(&text_of(s)))
                    .is_some_and(|s| (200..300).contains(&s));
                if !ok {
                    continue;
                }
                for prop in c.children().filter(|n| is(n, DAV, "prop")) {
                    for p in prop.children().filter(|n| n.is_element()) {
                        let key = (
                            p.tag_name().namespace().unwrap_or_default().to_string(),
                            p.tag_name().name().to_string(),
                        );
                        let value = Prop {
                            text: text_of(p),
                            hrefs: p
                                .descendants()
                                .filter(|d| is(d, DAV, "href"))
                                .map(|d| text_of(d).trim().to_string())
                                .collect(),
                            children: p
                                .children()
                                .filter(|d| d.is_element())
                                .map(|d| {
                                    (
                                        d.tag_name().namespace().unwrap_or_default().to_string(),
                                        d.tag_name().name().to_string(),
                                    )
                                })
                                .collect(),
                            names: p
                                .children()
                                .filter_map(|d| d.attribute("name"))
                                .map(String::from)
                                .collect(),
                        };
                        resp.props.insert(key, value);
                    }
                }
            }
        }
        if resp.href.is_empty() {
            return Err("a DAV:response without an href".into());
        }
        out.push(resp);
    }
    Ok(out)
}

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn etag(&self) -> Option<String> {
        self.headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
}

/// A request to one server with Basic credentials.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub depth: Option<&'a str>,
    pub body: Option<String>,
    pub content_type: &'a str,
    pub headers: Vec<(&'static str, String)>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'a str, url: &'a str) -> Self {
        Request {
            method,
            url,
            depth: None,
            body: None,
            content_type: "application/xml; charset=utf-8",
            headers: Vec::new(),
        }
    }
}

/// Sends `r` as `user`; the status is the caller's to judge, except that
/// 401 and 403 are [`DavError::Refused`].
pub async fn send(
    http: &reqwest::Client,
    r: Request<'_>,
    user: &str,
    password: &str,
    limit: Duration,
) -> Result<Answer, DavError> {
    let method = Method::from_bytes(r.method.as_bytes())
        .map_err(|e| DavError::Malformed(format!("{}: {e}", r.method)))?;
    let mut b = http
        .request(method, r.url)
        .basic_auth(user, Some(password))
        .timeout(limit);
    if let Some(d) = r.depth {
        b = b.header("Depth", d);
    }
    for (k, v) in &r.headers {
        let v = HeaderValue::from_str(v).map_err(|e| DavError::Malformed(format!("{k}: {e}")))?;
        b = b.header(*k, v);
    }
    if let Some(body) = r.body {
        b = b
            .header(reqwest::header::CONTENT_TYPE, r.content_type)
            .body(body);
    }
    let resp = b.send().await.map_err(|e| {
        let chain = oi_sandbox::netguard::error_chain(&e);
        if e.is_timeout() {
            DavError::Unreachable(format!(
                "{} {}: no answer within {} s",
                r.method,
                r.url,
                limit.as_secs()
            ))
        } else {
            DavError::Unreachable(format!("{} {}: {chain}", r.method, r.url))
        }
    })?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| {
        DavError::Unreachable(format!("{} {}: reading the answer: {e}", r.method, r.url))
    })?;
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(DavError::Refused(format!(
            "{} {} was refused ({status})",
            r.method, r.url
        )));
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// `<D:propfind>` asking for `props`, each `(namespace prefix, name)` with
/// the prefixes d (DAV:), c (CalDAV) and a (Apple).
pub fn propfind_body(props: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:propfind xmlns:d=\"{DAV}\" xmlns:c=\"{CALDAV}\" xmlns:a=\"{APPLE}\"><d:prop>"
    );
    for (p, n) in props {
        s.push_str(&format!("<{p}:{n}/>"));
    }
    s.push_str("</d:prop></d:propfind>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multistatus_gives_hrefs_props_and_kinds() {
        let xml = r#"<?xml version="1.0"?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:ICAL="http://apple.com/ns/ical/">
 <response><href>/alice/work/</href>
  <propstat><prop><resourcetype><collection/><C:calendar/></resourcetype>
   <displayname>Work</displayname><ICAL:calendar-color>#ff0000ff</ICAL:calendar-color>
   <C:supported-calendar-component-set><C:comp name="VEVENT"/><C:comp name="VTODO"/></C:supported-calendar-component-set>
  </prop><status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><getctag/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
 </response>
 <response><href>/alice/</href><propstat><prop>
  <current-user-principal><href>/alice/</href></current-user-principal>
 </prop><status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/alice/gone.ics</href><status>HTTP/1.1 404 Not Found</status></response>
</multistatus>"#;
        let r = parse_multistatus(xml).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].href, "/alice/work/");
        assert!(r[0].is(CALDAV, "calendar"));
        assert!(!r[1].is(CALDAV, "calendar"));
        assert_eq!(r[0].text(DAV, "displayname"), Some("Work"));
        assert_eq!(r[0].text(APPLE, "calendar-color"), Some("#ff0000ff"));
        assert_eq!(
            r[0].prop(CALDAV, "supported-calendar-component-set")
                .unwrap()
                .names,
            ["VEVENT", "VTODO"]
        );
        // A property the server did not have is absent, not empty.
        assert!(r[0].prop(DAV, "getctag").is_none());
        assert_eq!(
            r[1].prop(DAV, "current-user-principal").unwrap().hrefs,
            ["/alice/"]
        );
        assert_eq!(r[2].status, Some(404));
    }

    #[test]
    fn what_is_not_a_multistatus_is_said() {
        assert!(
            parse_multistatus("<html>")
                .unwrap_err()
                .starts_with("not XML")
        );
        assert!(
            parse_multistatus("<?xml version=\"1.0\"?><error xmlns=\"DAV:\"/>")
                .unwrap_err()
                .contains("got <error>")
        );
    }
}
