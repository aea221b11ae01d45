//! The parts of GitHub's resources the tools show, as GitHub sends them
//! (unknown fields ignored, so new ones do not break us), and what the
//! model sees of each.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::GhError;

/// `v` read as a `T`, or an error naming what it should have been.
pub fn read<T: DeserializeOwned>(what: &str, v: Value) -> Result<T, GhError> {
    serde_json::from_value(v)
        .map_err(|e| GhError::Unavailable(format!("GitHub's answer is not {what}: {e}")))
}

/// `s` cut at `max` characters, saying so.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!(
            "{}… [cut at {max} of {} characters]",
            &s[..i],
            s.chars().count()
        ),
        None => s.to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Deserialize)]
pub struct Label {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct License {
    #[serde(default)]
    pub spdx_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Repo {
    pub full_name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub private: bool,
    #[serde(default)]
    pub fork: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub stargazers_count: u64,
    #[serde(default)]
    pub open_issues_count: u64,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub license: Option<License>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub pushed_at: Option<String>,
    pub html_url: String,
}

impl Repo {
    pub fn view(&self) -> Value {
        json!({
            "repo": self.full_name, "description": self.description, "private": self.private,
            "fork": self.fork, "archived": self.archived, "default_branch": self.default_branch,
            "language": self.language, "stars": self.stargazers_count,
            "open_issues": self.open_issues_count, "updated_at": self.updated_at,
            "url": self.html_url,
        })
    }

    pub fn view_full(&self) -> Value {
        let mut v = self.view();
        v["topics"] = json!(self.topics);
        v["license"] = json!(self.license.as_ref().and_then(|l| l.spdx_id.clone()));
        v["pushed_at"] = json!(self.pushed_at);
        v
    }
}

#[derive(Debug, Deserialize)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub state: String,
    #[serde(default)]
    pub body: Option<String>,
    pub user: Option<User>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub assignees: Option<Vec<User>>,
    #[serde(default)]
    pub comments: u64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub closed_at: Option<String>,
    pub html_url: String,
    /// Set on the pull requests the issues API lists too.
    #[serde(default)]
    pub pull_request: Option<Value>,
}

impl Issue {
    pub fn is_pull(&self) -> bool {
        self.pull_request.is_some()
    }

    pub fn view(&self) -> Value {
        json!({
            "number": self.number, "title": self.title, "state": self.state,
            "author": self.user.as_ref().map(|u| &u.login),
            "labels": self.labels.iter().map(|l| &l.name).collect::<Vec<_>>(),
            "assignees": self.assignees.iter().flatten().map(|u| &u.login).collect::<Vec<_>>(),
            "comments": self.comments, "created_at": self.created_at,
            "updated_at": self.updated_at, "url": self.html_url,
            "pull_request": self.is_pull(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub user: Option<User>,
    #[serde(default)]
    pub body: Option<String>,
    pub created_at: String,
    pub html_url: String,
}

impl Comment {
    pub fn view(&self, max_chars: usize) -> Value {
        json!({
            "id": self.id, "author": self.user.as_ref().map(|u| &u.login),
            "created_at": self.created_at,
            "body": cut(self.body.as_deref().unwrap_or(""), max_chars),
            "url": self.html_url,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct Branch {
    #[serde(rename = "ref")]
    pub name: String,
    pub sha: String,
}

#[derive(Debug, Deserialize)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub state: String,
    #[serde(default)]
    pub body: Option<String>,
    pub user: Option<User>,
    #[serde(default)]
    pub draft: Option<bool>,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(default)]
    pub mergeable: Option<bool>,
    pub head: Branch,
    pub base: Branch,
    #[serde(default)]
    pub additions: Option<u64>,
    #[serde(default)]
    pub deletions: Option<u64>,
    #[serde(default)]
    pub changed_files: Option<u64>,
    pub created_at: String,
    pub updated_at: String,
    pub html_url: String,
}

impl Pull {
    pub fn view(&self) -> Value {
        json!({
            "number": self.number, "title": self.title, "state": self.state,
            "author": self.user.as_ref().map(|u| &u.login), "draft": self.draft.unwrap_or(false),
            "head": self.head.name, "base": self.base.name,
            "created_at": self.created_at, "updated_at": self.updated_at, "url": self.html_url,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct PullFile {
    pub filename: String,
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
}

#[derive(Debug, Deserialize)]
pub struct Review {
    pub user: Option<User>,
    pub state: String,
}

#[derive(Debug, Deserialize)]
pub struct Status {
    pub state: String,
    pub context: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Combined {
    pub state: String,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Deserialize)]
pub struct CheckRun {
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CheckRuns {
    #[serde(default)]
    pub check_runs: Vec<CheckRun>,
}

#[derive(Debug, Deserialize)]
pub struct Run {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub head_branch: Option<String>,
    pub head_sha: String,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub run_number: u64,
    pub created_at: String,
    pub html_url: String,
}

#[derive(Debug, Deserialize)]
pub struct Step {
    pub name: String,
    #[serde(default)]
    pub conclusion: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Job {
    pub name: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
    pub html_url: Option<String>,
}

/// Whether a check's conclusion (or a status's state) is a failure.
pub fn failed(conclusion: &str) -> bool {
    matches!(
        conclusion,
        "failure" | "error" | "timed_out" | "cancelled" | "action_required" | "startup_failure"
    )
}

#[derive(Debug, Deserialize)]
pub struct Content {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub path: String,
    pub size: u64,
    pub sha: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_counts_characters_and_says_so() {
        assert_eq!(cut("héllo", 10), "héllo");
        assert_eq!(cut("héllo", 2), "hé… [cut at 2 of 5 characters]");
    }
}
