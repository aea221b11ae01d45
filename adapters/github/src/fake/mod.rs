//! A stateful fake of GitHub's REST API on 127.0.0.1, for tests and
//! benchmarks (feature `fake`). It answers the operations the adapter
//! uses as api.github.com does:
//!
//! - the resources in full ([`shapes`]); the tests check every answer, and
//!   every request body, against GitHub's official OpenAPI description;
//! - `per_page`/`page` pagination with a `Link` header (first, prev, next,
//!   last), search results capped at 1,000;
//! - `x-ratelimit-*` headers on every answer; an exhausted limit gets 403
//!   until its reset; a 429 with `retry-after`, a 403 secondary limit, or a
//!   502 on cue;
//! - a weak ETag on every GET; `If-None-Match` with it gets 304, which does
//!   not count against the limit;
//! - 401 (a token other than its own), 404 and 422 with GitHub's error
//!   bodies.
//!
//! Everything asked and answered is journalled for the tests.

mod routes;
pub mod shapes;
pub mod state;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

pub use state::{Check, CommentRec, Cue, Exchange, IssueRec, Job, RepoRec, RunRec};
use state::{CommitStatus, FileChange, PullRec, Rate, ReviewRec, State};

pub struct FakeGithub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds as GitHub writes times (`2026-12-01T09:30:00Z`).
pub fn iso(unix: u64) -> String {
    let (days, secs) = ((unix / 86_400) as i64, unix % 86_400);
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

impl FakeGithub {
    /// Starts on 127.0.0.1 with a free port; `token` is the only one it
    /// accepts, and it belongs to `login`.
    pub async fn start(token: &str, login: &str) -> std::io::Result<FakeGithub> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            token: token.to_string(),
            login: login.to_string(),
            repos: BTreeMap::new(),
            next_id: 100,
            cues: VecDeque::new(),
            rate: Rate {
                limit: 5000,
                remaining: 5000,
                reset: unix_now() + 3600,
            },
            journal: Vec::new(),
            not_modified: 0,
            etags: true,
            busy: Duration::ZERO,
        }));
        let st = state.clone();
        let base = format!("http://{addr}");
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (st, base) = (st.clone(), base.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (st, base) = (st.clone(), base.clone());
                        async move {
                            Ok::<hyper::Response<Full<Bytes>>, Infallible>(
                                routes::handle(req, &st, &base).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Ok(FakeGithub { addr, state, task })
    }

    /// The `[github] api_url` to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut lock(&self.state))
    }

    fn edit<T>(&self, full: &str, f: impl FnOnce(&mut RepoRec, u64) -> T) -> T {
        self.with(|s| {
            let id = s.id();
            let (o, n) = full.split_once('/').unwrap_or((full, ""));
            match s.repo_mut(o, n) {
                Some(r) => f(r, id),
                None => panic!("the fake has no repository {full}"),
            }
        })
    }

    /// Adds a repository `owner/name` (its owner a collaborator).
    pub fn add_repo(&self, full: &str, private: bool) {
        self.with(|s| {
            let (owner, name) = full.split_once('/').unwrap_or((full, full));
            let id = s.id();
            s.repos.insert(
                full.to_lowercase(),
                RepoRec {
                    id,
                    owner: owner.into(),
                    owner_id: 1,
                    name: name.into(),
                    private,
                    archived: false,
                    description: Some(format!("{name}, a repository")),
                    language: Some("Rust".into()),
                    license: Some("MIT".into()),
                    topics: vec!["cli".into()],
                    stars: 3,
                    default_branch: "main".into(),
                    updated_at: iso(1_764_000_000 + id),
                    issues: Vec::new(),
                    pulls: BTreeMap::new(),
                    statuses: Vec::new(),
                    checks: Vec::new(),
                    files: BTreeMap::new(),
                    runs: Vec::new(),
                    collaborators: vec![owner.into()],
                },
            );
        })
    }

    /// Changes a repository's record.
    pub fn edit_repo(&self, full: &str, f: impl FnOnce(&mut RepoRec)) {
        self.edit(full, |r, _| f(r))
    }

    /// Adds an open issue; its number.
    pub fn add_issue(&self, full: &str, title: &str, labels: &[&str], created_at: &str) -> u64 {
        self.edit(full, |r, id| {
            let number = r.next_number();
            r.issues.push(IssueRec {
                id,
                number,
                title: title.into(),
                body: format!("{title}: the details."),
                author: "alice".into(),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                assignees: Vec::new(),
                open: true,
                pull: false,
                created_at: created_at.into(),
                updated_at: created_at.into(),
                comments: Vec::new(),
            });
            number
        })
    }

    /// Changes an issue's record.
    pub fn edit_issue(&self, full: &str, number: u64, f: impl FnOnce(&mut IssueRec)) {
        self.edit(full, |r, _| {
            if let Some(i) = r.issues.iter_mut().find(|i| i.number == number) {
                f(i)
            }
        })
    }

    pub fn add_comment(&self, full: &str, number: u64, author: &str, body: &str) {
        self.edit(full, |r, id| {
            if let Some(i) = r.issues.iter_mut().find(|i| i.number == number) {
                i.comments.push(CommentRec {
                    id,
                    author: author.into(),
                    body: body.into(),
                    created_at: state_time(id),
                });
            }
        })
    }

    /// Adds an open pull request from `head` with the changed files
    /// (name, status, additions, deletions); its number.
    pub fn add_pull(
        &self,
        full: &str,
        title: &str,
        head: &str,
        head_sha: &str,
        files: &[(&str, &str, u64, u64)],
    ) -> u64 {
        let n = self.add_issue(full, title, &[], "2026-11-20T10:00:00Z");
        self.edit(full, |r, _| {
            if let Some(i) = r.issues.iter_mut().find(|i| i.number == n) {
                i.pull = true;
            }
            r.pulls.insert(
                n,
                PullRec {
                    head: head.into(),
                    head_sha: head_sha.into(),
                    draft: false,
                    files: files
                        .iter()
                        .map(|(f, s, a, d)| FileChange {
                            filename: f.to_string(),
                            status: s.to_string(),
                            additions: *a,
                            deletions: *d,
                        })
                        .collect(),
                    reviews: Vec::new(),
                },
            );
        });
        n
    }

    pub fn add_review(&self, full: &str, number: u64, author: &str, state: &str) {
        self.edit(full, |r, id| {
            if let Some(p) = r.pulls.get_mut(&number) {
                p.reviews.push(ReviewRec {
                    id,
                    author: author.into(),
                    state: state.into(),
                });
            }
        })
    }

    pub fn add_status(&self, full: &str, sha: &str, context: &str, state: &str, description: &str) {
        self.edit(full, |r, id| {
            r.statuses.push(CommitStatus {
                id,
                sha: sha.into(),
                context: context.into(),
                state: state.into(),
                description: Some(description.into()),
            })
        })
    }

    /// A check run; `None` while it runs.
    pub fn add_check(&self, full: &str, sha: &str, name: &str, conclusion: Option<&str>) {
        self.edit(full, |r, id| {
            r.checks.push(Check {
                id,
                sha: sha.into(),
                name: name.into(),
                status: if conclusion.is_some() {
                    "completed"
                } else {
                    "in_progress"
                }
                .into(),
                conclusion: conclusion.map(String::from),
            })
        })
    }

    /// A file at `git_ref` (`None`: the default branch).
    pub fn add_file(&self, full: &str, git_ref: Option<&str>, path: &str, bytes: &[u8]) {
        self.edit(full, |r, _| {
            let at = git_ref.unwrap_or(&r.default_branch).to_string();
            r.files.insert((at, path.to_string()), bytes.to_vec());
        })
    }

    /// A completed workflow run (the newest so far) with its jobs: (name,
    /// conclusion, steps as (name, conclusion)); its id.
    #[allow(clippy::type_complexity)]
    pub fn add_run(
        &self,
        full: &str,
        workflow: &str,
        branch: &str,
        conclusion: &str,
        jobs: &[(&str, &str, &[(&str, &str)])],
    ) -> u64 {
        self.with(|s| {
            let job_ids: Vec<u64> = jobs.iter().map(|_| s.id()).collect();
            let id = s.id();
            let (o, n) = full.split_once('/').unwrap_or((full, ""));
            let r = s
                .repo_mut(o, n)
                .unwrap_or_else(|| panic!("no repository {full}"));
            let number = r.runs.len() as u64 + 1;
            r.runs.insert(
                0,
                RunRec {
                    id,
                    number,
                    workflow: workflow.into(),
                    title: format!("{workflow} #{number}"),
                    branch: branch.into(),
                    sha: shapes::sha1ish(format!("{full}{id}").as_bytes()),
                    status: "completed".into(),
                    conclusion: Some(conclusion.into()),
                    created_at: state_time(id),
                    jobs: jobs
                        .iter()
                        .zip(job_ids)
                        .map(|((name, c, steps), id)| Job {
                            id,
                            name: name.to_string(),
                            conclusion: Some(c.to_string()),
                            steps: steps
                                .iter()
                                .map(|(s, c)| (s.to_string(), Some(c.to_string())))
                                .collect(),
                        })
                        .collect(),
                },
            );
            id
        })
    }

    /// The next request meets `c` (cues queue up).
    pub fn cue(&self, c: Cue) {
        self.with(|s| s.cues.push_back(c))
    }

    /// Nothing is left of the rate limit until `reset_in` seconds from now.
    pub fn exhaust(&self, reset_in: u64) {
        self.with(|s| {
            s.rate.remaining = 0;
            s.rate.reset = unix_now() + reset_in;
        })
    }

    pub fn issue(&self, full: &str, number: u64) -> Option<IssueRec> {
        self.with(|s| {
            let (o, n) = full.split_once('/')?;
            s.repo_mut(o, n)?
                .issues
                .iter()
                .find(|i| i.number == number)
                .cloned()
        })
    }

    pub fn issues(&self, full: &str) -> Vec<IssueRec> {
        self.with(|s| {
            let (o, n) = full.split_once('/').unwrap_or((full, ""));
            s.repo_mut(o, n)
                .map(|r| r.issues.clone())
                .unwrap_or_default()
        })
    }

    pub fn journal(&self) -> Vec<Exchange> {
        self.with(|s| s.journal.clone())
    }

    /// 304s given.
    pub fn not_modified(&self) -> u64 {
        self.with(|s| s.not_modified)
    }

    /// Whether GETs carry an ETag (and so may be answered with 304).
    pub fn set_etags(&self, on: bool) {
        self.with(|s| s.etags = on)
    }

    /// What is left of the rate limit.
    pub fn remaining(&self) -> u64 {
        self.with(|s| s.rate.remaining)
    }

    /// Time spent inside the fake's handler since the last reset.
    pub fn busy(&self) -> Duration {
        self.with(|s| s.busy)
    }

    pub fn reset_counters(&self) {
        self.with(|s| {
            s.busy = Duration::ZERO;
            s.journal.clear();
            s.not_modified = 0;
        })
    }

    /// The journal as JSON lines (method, path, operation, status, request,
    /// response), for the OpenAPI check.
    pub fn write_journal(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let j = self.journal();
        let mut out = String::new();
        for e in &j {
            out.push_str(
                &json!({"method": e.method, "path": e.path, "operation": e.operation,
                        "status": e.status, "request": e.request, "response": e.response})
                .to_string(),
            );
            out.push('\n');
        }
        std::fs::write(path, out)?;
        Ok(j.len())
    }
}

/// A time for records made in order (`id` seconds into 2026-11-25).
fn state_time(id: u64) -> String {
    iso(1_764_028_800 + id * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_github_does() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_764_633_600), "2025-12-02T00:00:00Z");
        assert_eq!(iso(1_709_208_000 + 3661), "2024-02-29T13:01:01Z");
    }
}
