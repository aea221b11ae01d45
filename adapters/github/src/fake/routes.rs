//! The fake's request handling: authentication, cues and the rate limit,
//! the operations, pagination, ETags, and the journal.

use std::sync::Mutex;
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::shapes;
use super::state::{CommentRec, Cue, Exchange, IssueRec, RepoRec, State};
use super::{iso, lock, unix_now};

const DOCS: &str = "https://docs.github.com/rest";

/// An answer before pagination and headers.
struct Answer {
    status: u16,
    body: Value,
    /// The operation's path in the OpenAPI description.
    operation: &'static str,
    link: Option<String>,
    retry_after: Option<u64>,
}

fn answer(status: u16, operation: &'static str, body: Value) -> Answer {
    Answer {
        status,
        body,
        operation,
        link: None,
        retry_after: None,
    }
}

fn error(status: u16, operation: &'static str, message: &str, docs: &str) -> Answer {
    answer(
        status,
        operation,
        json!({"message": message, "documentation_url": docs, "status": status.to_string()}),
    )
}

fn not_found(operation: &'static str) -> Answer {
    error(
        404,
        operation,
        "Not Found",
        &format!("{DOCS}/repos/repos#get-a-repository"),
    )
}

fn invalid(operation: &'static str, docs: &str, errors: Value) -> Answer {
    answer(
        422,
        operation,
        json!({"message": "Validation Failed", "errors": errors, "documentation_url": docs, "status": "422"}),
    )
}

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

pub async fn handle(
    req: Request<Incoming>,
    st: &Mutex<State>,
    base: &str,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = Query(
        reqwest::Url::parse(&format!("http://x{}", req.uri()))
            .map(|u| {
                u.query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
    );
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (auth, if_none, accept) = (
        header("authorization"),
        header("if-none-match"),
        header("accept"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let request: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };

    let mut s = lock(st);
    let api = base.to_string();
    let web = base.to_string();
    let token_ok = auth
        .as_deref()
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
        })
        .is_some_and(|t| t == s.token);
    let mut a = if !token_ok {
        error(401, operation_of(&method, &path), "Bad credentials", DOCS)
    } else if !accept.as_deref().is_some_and(|a| a.contains("json")) {
        error(
            415,
            operation_of(&method, &path),
            "Unsupported 'Accept' header",
            DOCS,
        )
    } else if let Some(cue) = s.cues.pop_front() {
        match cue {
            Cue::TooMany { retry_after } => {
                let mut a = error(429, operation_of(&method, &path), "Too Many Requests", DOCS);
                a.retry_after = Some(retry_after);
                a
            }
            Cue::Secondary { retry_after } => {
                let mut a = error(
                    403,
                    operation_of(&method, &path),
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                );
                a.retry_after = retry_after;
                a
            }
            Cue::BadGateway => error(502, operation_of(&method, &path), "Server Error", DOCS),
        }
    } else {
        if s.rate.remaining == 0 && unix_now() >= s.rate.reset {
            s.rate.remaining = s.rate.limit;
            s.rate.reset = unix_now() + 3600;
        }
        if s.rate.remaining == 0 {
            error(
                403,
                operation_of(&method, &path),
                "API rate limit exceeded for user ID 1.",
                "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            )
        } else {
            route(&mut s, &api, &web, &method, &path, &query, request.as_ref())
        }
    };

    // A GET's weak ETag; a match is a 304, free of the limit.
    let mut etag = None;
    let mut not_modified = false;
    if method == "GET" && a.status == 200 && s.etags {
        let tag = format!("W/\"{}\"", shapes::sha1ish(a.body.to_string().as_bytes()));
        not_modified = if_none.as_deref() == Some(tag.as_str());
        etag = Some(tag);
    }
    if token_ok && !not_modified && a.status != 429 && !(a.status == 403 && s.rate.remaining == 0) {
        s.rate.remaining = s.rate.remaining.saturating_sub(1);
    }
    s.journal.push(Exchange {
        method: method.clone(),
        path: path.clone(),
        operation: a.operation.to_string(),
        status: if not_modified { 304 } else { a.status },
        request: request.clone(),
        response: if not_modified {
            Value::Null
        } else {
            a.body.clone()
        },
    });
    if not_modified {
        s.not_modified += 1;
        a.status = 304;
    }
    let mut r = Response::new(Full::new(if not_modified {
        Bytes::new()
    } else {
        Bytes::from(a.body.to_string())
    }));
    *r.status_mut() = hyper::StatusCode::from_u16(a.status).unwrap_or(hyper::StatusCode::OK);
    let h = r.headers_mut();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("content-type", "application/json; charset=utf-8".into());
    put("x-github-api-version-selected", "2022-11-28".into());
    if token_ok {
        let resource = if path.starts_with("/search/") {
            "search"
        } else {
            "core"
        };
        put("x-ratelimit-limit", s.rate.limit.to_string());
        put("x-ratelimit-remaining", s.rate.remaining.to_string());
        put(
            "x-ratelimit-used",
            (s.rate.limit - s.rate.remaining).to_string(),
        );
        put("x-ratelimit-reset", s.rate.reset.to_string());
        put("x-ratelimit-resource", resource.into());
    }
    if let Some(t) = etag {
        put("etag", t);
    }
    if let Some(l) = a.link {
        put("link", l);
    }
    if let Some(ra) = a.retry_after {
        put("retry-after", ra.to_string());
    }
    s.busy += started.elapsed();
    r
}

/// The OpenAPI path of a request (for the journal of refused ones too).
fn operation_of(method: &str, path: &str) -> &'static str {
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, p.as_slice()) {
        (_, ["user", "repos"]) => "/user/repos",
        (_, ["users", _, "repos"]) => "/users/{username}/repos",
        (_, ["search", "issues"]) => "/search/issues",
        (_, ["search", "code"]) => "/search/code",
        (_, ["search", "repositories"]) => "/search/repositories",
        (_, ["repos", _, _]) => "/repos/{owner}/{repo}",
        (_, ["repos", _, _, "issues"]) => "/repos/{owner}/{repo}/issues",
        (_, ["repos", _, _, "issues", _]) => "/repos/{owner}/{repo}/issues/{issue_number}",
        (_, ["repos", _, _, "issues", _, "comments"]) => {
            "/repos/{owner}/{repo}/issues/{issue_number}/comments"
        }
        (_, ["repos", _, _, "pulls"]) => "/repos/{owner}/{repo}/pulls",
        (_, ["repos", _, _, "pulls", _]) => "/repos/{owner}/{repo}/pulls/{pull_number}",
        (_, ["repos", _, _, "pulls", _, "files"]) => {
            "/repos/{owner}/{repo}/pulls/{pull_number}/files"
        }
        (_, ["repos", _, _, "pulls", _, "reviews"]) => {
            "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"
        }
        (_, ["repos", _, _, "commits", _, "status"]) => {
            "/repos/{owner}/{repo}/commits/{ref}/status"
        }
        (_, ["repos", _, _, "commits", _, "check-runs"]) => {
            "/repos/{owner}/{repo}/commits/{ref}/check-runs"
        }
        (_, ["repos", _, _, "actions", "runs"]) => "/repos/{owner}/{repo}/actions/runs",
        (_, ["repos", _, _, "actions", "runs", _, "jobs"]) => {
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs"
        }
        (_, ["repos", _, _, "contents", ..]) => "/repos/{owner}/{repo}/contents/{path}",
        _ => "",
    }
}

/// `items` cut to the page asked for, with GitHub's `Link` header.
fn paged(
    items: Vec<Value>,
    q: &Query,
    api: &str,
    path: &str,
    cap: Option<usize>,
) -> (Vec<Value>, Option<String>) {
    let per = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let total = cap.map_or(items.len(), |c| items.len().min(c));
    let last = total.div_ceil(per).max(1);
    let start = (page - 1) * per;
    let slice: Vec<Value> = items
        .into_iter()
        .take(total)
        .skip(start)
        .take(per)
        .collect();
    let url = |p: usize| {
        let mut pairs: Vec<(String, String)> =
            q.0.iter().filter(|(k, _)| k != "page").cloned().collect();
        pairs.push(("page".into(), p.to_string()));
        let qs: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        format!("<{api}{path}?{}>", qs.join("&"))
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    if page < last {
        rels.push(format!("{}; rel=\"next\"", url(page + 1)));
        rels.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        rels.push(format!("{}; rel=\"first\"", url(1)));
    }
    (slice, (!rels.is_empty()).then(|| rels.join(", ")))
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn list(op: &'static str, items: Vec<Value>, q: &Query, api: &str, path: &str) -> Answer {
    let (page, link) = paged(items, q, api, path, None);
    let mut a = answer(200, op, Value::Array(page));
    a.link = link;
    a
}

/// A listing wrapped as `{total_count, <key>: [...]}`.
fn wrapped(
    op: &'static str,
    key: &str,
    items: Vec<Value>,
    q: &Query,
    api: &str,
    path: &str,
    cap: Option<usize>,
) -> Answer {
    let total = items.len();
    let (page, link) = paged(items, q, api, path, cap);
    let mut body = json!({ "total_count": total });
    body[key] = Value::Array(page);
    if key == "items" {
        body["incomplete_results"] = json!(false);
    }
    let mut a = answer(200, op, body);
    a.link = link;
    a
}

fn route(
    s: &mut State,
    api: &str,
    web: &str,
    method: &str,
    path: &str,
    q: &Query,
    body: Option<&Value>,
) -> Answer {
    let op = operation_of(method, path);
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, p.as_slice()) {
        ("GET", ["user", "repos"] | ["users", _, "repos"]) => {
            // Yours (owned or collaborating), or an owner's public ones.
            let me = s.login.to_lowercase();
            let owner = p
                .get(1)
                .filter(|_| p[0] == "users")
                .map(|u| u.to_lowercase());
            let mut repos: Vec<&RepoRec> = s
                .repos
                .values()
                .filter(|r| match &owner {
                    Some(o) => r.owner.to_lowercase() == *o && !r.private,
                    None => {
                        r.owner.to_lowercase() == me
                            || r.collaborators.iter().any(|c| c.to_lowercase() == me)
                    }
                })
                .collect();
            sort_repos(&mut repos, q.get("sort").unwrap_or("full_name"));
            let items = repos.iter().map(|r| shapes::repo(api, web, r)).collect();
            list(op, items, q, api, path)
        }
        ("GET", ["search", kind]) => search(s, api, web, kind, q, path),
        (_, ["repos", owner, name, rest @ ..]) => {
            let login = s.login.clone();
            let id = s.id();
            match s.repo_mut(owner, name) {
                Some(r) => repo_route(r, api, web, method, rest, q, body, path, op, id, &login),
                None => not_found(op),
            }
        }
        _ => error(404, op, "Not Found", DOCS),
    }
}

fn sort_repos(repos: &mut [&RepoRec], sort: &str) {
    match sort {
        "full_name" => repos.sort_by_key(|r| r.full_name().to_lowercase()),
        _ => repos.sort_by(|a, b| b.updated_at.cmp(&a.updated_at)),
    }
}

#[allow(clippy::too_many_arguments)]
fn repo_route(
    r: &mut RepoRec,
    api: &str,
    web: &str,
    method: &str,
    rest: &[&str],
    q: &Query,
    body: Option<&Value>,
    path: &str,
    op: &'static str,
    id: u64,
    login: &str,
) -> Answer {
    let num = |s: &str| s.parse::<u64>().ok();
    match (method, rest) {
        ("GET", []) => answer(200, op, shapes::repo(api, web, r)),
        ("GET", ["issues"]) => {
            let mut issues: Vec<&IssueRec> =
                r.issues.iter().filter(|i| issue_matches(i, q)).collect();
            let asc = q.get("direction") == Some("asc");
            match q.get("sort").unwrap_or("created") {
                "updated" => issues.sort_by(|a, b| a.updated_at.cmp(&b.updated_at)),
                "comments" => issues.sort_by_key(|i| i.comments.len()),
                _ => issues.sort_by(|a, b| {
                    a.created_at
                        .cmp(&b.created_at)
                        .then(a.number.cmp(&b.number))
                }),
            }
            if !asc {
                issues.reverse();
            }
            let items = issues
                .iter()
                .map(|i| shapes::issue(api, web, r, i))
                .collect();
            list(op, items, q, api, path)
        }
        ("POST", ["issues"]) => {
            let docs = format!("{DOCS}/issues/issues#create-an-issue");
            let title = body
                .and_then(|b| b.get("title"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if title.trim().is_empty() {
                return invalid(
                    op,
                    &docs,
                    json!([{"resource": "Issue", "code": "missing_field", "field": "title"}]),
                );
            }
            let assignees: Vec<String> = strings(body, "assignees");
            if let Some(bad) = assignees
                .iter()
                .find(|a| !r.collaborators.iter().any(|c| c.eq_ignore_ascii_case(a)))
            {
                return invalid(
                    op,
                    &docs,
                    json!([{"value": bad, "resource": "Issue", "field": "assignees", "code": "invalid"}]),
                );
            }
            let now = iso(unix_now());
            let issue = IssueRec {
                id,
                number: r.next_number(),
                title: title.to_string(),
                body: body
                    .and_then(|b| b.get("body"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                author: login.to_string(),
                labels: strings(body, "labels"),
                assignees,
                open: true,
                pull: false,
                created_at: now.clone(),
                updated_at: now,
                comments: Vec::new(),
            };
            let v = shapes::issue(api, web, r, &issue);
            r.issues.push(issue);
            answer(201, op, v)
        }
        ("GET", ["issues", n]) => {
            match num(n).and_then(|n| r.issues.iter().find(|i| i.number == n)) {
                Some(i) => answer(200, op, shapes::issue(api, web, r, i)),
                None => not_found(op),
            }
        }
        ("GET", ["issues", n, "comments"]) => {
            match num(n).and_then(|n| r.issues.iter().find(|i| i.number == n)) {
                Some(i) => {
                    let items = i
                        .comments
                        .iter()
                        .map(|c| shapes::comment(api, web, r, i.number, c))
                        .collect();
                    list(op, items, q, api, path)
                }
                None => not_found(op),
            }
        }
        ("POST", ["issues", n, "comments"]) => {
            let text = body
                .and_then(|b| b.get("body"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let Some(n) = num(n).filter(|n| r.issues.iter().any(|i| i.number == *n)) else {
                return not_found(op);
            };
            if text.trim().is_empty() {
                return invalid(
                    op,
                    &format!("{DOCS}/issues/comments#create-an-issue-comment"),
                    json!([{"resource": "IssueComment", "code": "missing_field", "field": "body"}]),
                );
            }
            let c = CommentRec {
                id,
                author: login.to_string(),
                body: text,
                created_at: iso(unix_now()),
            };
            let v = shapes::comment(api, web, r, n, &c);
            if let Some(i) = r.issues.iter_mut().find(|i| i.number == n) {
                i.comments.push(c);
                i.updated_at = iso(unix_now());
            }
            answer(201, op, v)
        }
        ("GET", ["pulls"]) => {
            let state = q.get("state").unwrap_or("open");
            let mut items = Vec::new();
            for i in r.issues.iter().rev().filter(|i| i.pull) {
                let open_ok = match state {
                    "all" => true,
                    "closed" => !i.open,
                    _ => i.open,
                };
                if let (true, Some(p)) = (open_ok, r.pulls.get(&i.number))
                    && q.get("base").is_none_or(|b| b == r.default_branch)
                {
                    items.push(shapes::pull(api, web, r, i, p, false));
                }
            }
            list(op, items, q, api, path)
        }
        ("GET", ["pulls", n, what @ ..]) => {
            let Some((i, p)) = num(n)
                .and_then(|n| Some((r.issues.iter().find(|i| i.number == n)?, r.pulls.get(&n)?)))
            else {
                return not_found(op);
            };
            match what {
                [] => answer(200, op, shapes::pull(api, web, r, i, p, true)),
                ["files"] => list(
                    op,
                    p.files
                        .iter()
                        .map(|f| shapes::diff_entry(api, web, r, p, f))
                        .collect(),
                    q,
                    api,
                    path,
                ),
                ["reviews"] => list(
                    op,
                    p.reviews
                        .iter()
                        .map(|rv| shapes::review(api, web, r, i.number, rv))
                        .collect(),
                    q,
                    api,
                    path,
                ),
                _ => not_found(op),
            }
        }
        ("GET", ["commits", sha, "status"]) => {
            let statuses: Vec<_> = r.statuses.iter().filter(|s| s.sha == *sha).collect();
            answer(
                200,
                op,
                shapes::combined_status(api, web, r, sha, &statuses),
            )
        }
        ("GET", ["commits", sha, "check-runs"]) => {
            let runs = r
                .checks
                .iter()
                .filter(|c| c.sha == *sha)
                .map(|c| shapes::check_run(api, web, r, sha, c))
                .collect();
            wrapped(op, "check_runs", runs, q, api, path, None)
        }
        ("GET", ["actions", "runs"]) => {
            let runs = r
                .runs
                .iter()
                .filter(|run| q.get("branch").is_none_or(|b| b == run.branch))
                .filter(|run| {
                    q.get("status")
                        .is_none_or(|s| Some(s) == run.conclusion.as_deref() || s == run.status)
                })
                .map(|run| shapes::run(api, web, r, run))
                .collect();
            wrapped(op, "workflow_runs", runs, q, api, path, None)
        }
        ("GET", ["actions", "runs", id, "jobs"]) => {
            match num(id).and_then(|id| r.runs.iter().find(|run| run.id == id)) {
                Some(run) => {
                    let jobs = run
                        .jobs
                        .iter()
                        .map(|j| shapes::job(api, web, r, run, j))
                        .collect();
                    wrapped(op, "jobs", jobs, q, api, path, None)
                }
                None => not_found(op),
            }
        }
        ("GET", ["contents", parts @ ..]) => {
            let want = parts
                .iter()
                .map(|p| percent_decode(p))
                .collect::<Vec<_>>()
                .join("/");
            let git_ref = q.get("ref").unwrap_or(&r.default_branch).to_string();
            if !r.files.keys().any(|(at, _)| *at == git_ref) {
                return error(
                    404,
                    op,
                    &format!("No commit found for the ref {git_ref}"),
                    &format!("{DOCS}/repos/contents#get-repository-content"),
                );
            }
            if let Some(bytes) = r.files.get(&(git_ref.clone(), want.clone())) {
                return answer(
                    200,
                    op,
                    shapes::content_file(api, web, r, &git_ref, &want, bytes),
                );
            }
            // A directory: what lies below it, one level.
            let prefix = format!("{want}/");
            let mut entries: Vec<(String, &'static str, u64)> = Vec::new();
            for ((at, p), bytes) in &r.files {
                if *at != git_ref {
                    continue;
                }
                if let Some(below) = p.strip_prefix(&prefix) {
                    let (first, deeper) = match below.split_once('/') {
                        Some((d, _)) => (d, true),
                        None => (below, false),
                    };
                    let full = format!("{prefix}{first}");
                    if !entries.iter().any(|(e, _, _)| *e == full) {
                        entries.push((
                            full,
                            if deeper { "dir" } else { "file" },
                            if deeper { 0 } else { bytes.len() as u64 },
                        ));
                    }
                }
            }
            if entries.is_empty() {
                return error(
                    404,
                    op,
                    "Not Found",
                    &format!("{DOCS}/repos/contents#get-repository-content"),
                );
            }
            let list: Vec<Value> = entries
                .iter()
                .map(|(p, kind, size)| shapes::content_entry(api, web, r, &git_ref, p, kind, *size))
                .collect();
            answer(200, op, Value::Array(list))
        }
        _ => error(404, op, "Not Found", DOCS),
    }
}

fn strings(body: Option<&Value>, key: &str) -> Vec<String> {
    body.and_then(|b| b.get(key))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn issue_matches(i: &IssueRec, q: &Query) -> bool {
    let state_ok = match q.get("state").unwrap_or("open") {
        "all" => true,
        "closed" => !i.open,
        _ => i.open,
    };
    let labels_ok = q.get("labels").is_none_or(|ls| {
        ls.split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .all(|l| i.labels.iter().any(|x| x.eq_ignore_ascii_case(l)))
    });
    let assignee_ok = match q.get("assignee") {
        None => true,
        Some("none") => i.assignees.is_empty(),
        Some("*") => !i.assignees.is_empty(),
        Some(who) => i.assignees.iter().any(|a| a.eq_ignore_ascii_case(who)),
    };
    let since_ok = q.get("since").is_none_or(|s| i.updated_at.as_str() >= s);
    state_ok && labels_ok && assignee_ok && since_ok
}

/// GitHub's search, as far as the tests need it: qualifiers `repo:`,
/// `is:open|closed|issue|pr`, `label:`, `user:`, and words matched in the
/// title and body (issues), the content (code) or the name and
/// description (repositories).
fn search(s: &State, api: &str, web: &str, kind: &str, q: &Query, path: &str) -> Answer {
    let op = operation_of("GET", path);
    let Some(text) = q.get("q").filter(|t| !t.trim().is_empty()) else {
        return invalid(
            op,
            &format!("{DOCS}/search/search"),
            json!([{"resource": "Search", "field": "q", "code": "missing"}]),
        );
    };
    let mut repo_f = None;
    let mut user_f = None;
    let mut is = Vec::new();
    let mut labels = Vec::new();
    let mut words = Vec::new();
    for t in text.split_whitespace() {
        if let Some(v) = t.strip_prefix("repo:") {
            repo_f = Some(v.to_lowercase());
        } else if let Some(v) = t.strip_prefix("user:").or_else(|| t.strip_prefix("org:")) {
            user_f = Some(v.to_lowercase());
        } else if let Some(v) = t.strip_prefix("is:") {
            is.push(v.to_string());
        } else if let Some(v) = t.strip_prefix("label:") {
            labels.push(v.trim_matches('"').to_lowercase());
        } else {
            words.push(t.to_lowercase());
        }
    }
    let repo_ok = |r: &RepoRec| {
        repo_f
            .as_deref()
            .is_none_or(|f| r.full_name().to_lowercase() == f)
            && user_f
                .as_deref()
                .is_none_or(|u| r.owner.to_lowercase() == u)
    };
    let has_words = |hay: &str| {
        let hay = hay.to_lowercase();
        words.iter().all(|w| hay.contains(w.as_str()))
    };
    let mut items = Vec::new();
    match kind {
        "issues" => {
            for r in s.repos.values().filter(|r| repo_ok(r)) {
                for i in &r.issues {
                    let is_ok = is.iter().all(|f| match f.as_str() {
                        "open" => i.open,
                        "closed" => !i.open,
                        "issue" => !i.pull,
                        "pr" => i.pull,
                        _ => true,
                    });
                    let labels_ok = labels
                        .iter()
                        .all(|l| i.labels.iter().any(|x| x.to_lowercase() == *l));
                    if is_ok && labels_ok && has_words(&format!("{} {}", i.title, i.body)) {
                        let mut v = shapes::issue(api, web, r, i);
                        v["score"] = json!(1.0);
                        items.push(v);
                    }
                }
            }
        }
        "code" => {
            for r in s.repos.values().filter(|r| repo_ok(r)) {
                for ((at, p), bytes) in &r.files {
                    if *at == r.default_branch && has_words(&String::from_utf8_lossy(bytes)) {
                        let sha = shapes::sha1ish(bytes);
                        items.push(json!({
                            "name": p.rsplit('/').next().unwrap_or(p), "path": p, "sha": sha,
                            "url": format!("{api}/repos/{}/contents/{p}?ref={sha}", r.full_name()),
                            "git_url": format!("{api}/repos/{}/git/blobs/{sha}", r.full_name()),
                            "html_url": format!("{web}/{}/blob/{sha}/{p}", r.full_name()),
                            "repository": shapes::repo_minimal(api, web, r), "score": 1.0,
                        }));
                    }
                }
            }
        }
        "repositories" => {
            for r in s.repos.values().filter(|r| repo_ok(r) && !r.private) {
                if has_words(&format!(
                    "{} {}",
                    r.name,
                    r.description.as_deref().unwrap_or("")
                )) {
                    let mut v = shapes::repo(api, web, r);
                    v["score"] = json!(1.0);
                    items.push(v);
                }
            }
        }
        _ => return error(404, op, "Not Found", DOCS),
    }
    let mut a = wrapped(op, "items", items, q, api, path, Some(1000));
    if kind == "issues" {
        // The fake's search is word matching.
        a.body["search_type"] = json!("lexical");
    }
    a
}
