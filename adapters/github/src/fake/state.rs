//! What the fake holds: repositories with their issues (pull requests are
//! issues too, in one number space, as on GitHub), comments, reviews,
//! statuses, check runs, files and workflow runs; the rate limit; what it
//! was asked.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct CommentRec {
    pub id: u64,
    pub author: String,
    pub body: String,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct FileChange {
    pub filename: String,
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
}

#[derive(Debug, Clone)]
pub struct ReviewRec {
    pub id: u64,
    pub author: String,
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct PullRec {
    pub head: String,
    pub head_sha: String,
    pub draft: bool,
    pub files: Vec<FileChange>,
    pub reviews: Vec<ReviewRec>,
}

#[derive(Debug, Clone)]
pub struct IssueRec {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub author: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub open: bool,
    pub pull: bool,
    pub created_at: String,
    pub updated_at: String,
    pub comments: Vec<CommentRec>,
}

#[derive(Debug, Clone)]
pub struct CommitStatus {
    pub id: u64,
    pub sha: String,
    pub context: String,
    pub state: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub id: u64,
    pub sha: String,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub name: String,
    pub conclusion: Option<String>,
    /// (name, conclusion) of each step.
    pub steps: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct RunRec {
    pub id: u64,
    pub number: u64,
    pub workflow: String,
    pub title: String,
    pub branch: String,
    pub sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub created_at: String,
    pub jobs: Vec<Job>,
}

#[derive(Debug, Clone)]
pub struct RepoRec {
    pub id: u64,
    pub owner: String,
    pub owner_id: u64,
    pub name: String,
    pub private: bool,
    pub archived: bool,
    pub description: Option<String>,
    pub language: Option<String>,
    pub license: Option<String>,
    pub topics: Vec<String>,
    pub stars: u64,
    pub default_branch: String,
    pub updated_at: String,
    pub issues: Vec<IssueRec>,
    pub pulls: BTreeMap<u64, PullRec>,
    pub statuses: Vec<CommitStatus>,
    pub checks: Vec<Check>,
    /// (ref, path) -> content.
    pub files: BTreeMap<(String, String), Vec<u8>>,
    /// Newest first, as GitHub lists them.
    pub runs: Vec<RunRec>,
    /// Logins that may be assigned.
    pub collaborators: Vec<String>,
}

impl RepoRec {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    pub fn open_issues(&self) -> u64 {
        self.issues.iter().filter(|i| i.open).count() as u64
    }

    pub fn next_number(&self) -> u64 {
        self.issues.iter().map(|i| i.number).max().unwrap_or(0) + 1
    }
}

/// A limit the next request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// 429 with `retry-after`.
    TooMany { retry_after: u64 },
    /// 403 "secondary rate limit", with `retry-after` if given.
    Secondary { retry_after: Option<u64> },
    /// A 502, as GitHub's front end gives now and then.
    BadGateway,
}

/// One request and its answer, for the schema check.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// The path as sent, without the query.
    pub path: String,
    /// Its operation's path in the OpenAPI description
    /// (`/repos/{owner}/{repo}/issues`).
    pub operation: String,
    pub status: u16,
    pub request: Option<Value>,
    pub response: Value,
}

#[derive(Debug)]
pub struct Rate {
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds.
    pub reset: u64,
}

#[derive(Debug)]
pub struct State {
    pub token: String,
    pub login: String,
    pub repos: BTreeMap<String, RepoRec>,
    pub next_id: u64,
    pub cues: VecDeque<Cue>,
    pub rate: Rate,
    pub journal: Vec<Exchange>,
    pub not_modified: u64,
    /// Whether GETs carry an ETag (benchmarks turn it off to time whole
    /// pages).
    pub etags: bool,
    /// Time spent inside the fake's handler, for benchmarks.
    pub busy: Duration,
}

impl State {
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The repository `owner/name`, ignoring case as GitHub does.
    pub fn repo_mut(&mut self, owner: &str, name: &str) -> Option<&mut RepoRec> {
        let key = format!("{owner}/{name}").to_lowercase();
        self.repos.get_mut(&key)
    }
}
