//! The GitHub tools: names, schemas and arguments.

use oi_ipc_schema::ToolSpec;
use oi_kernel::tool::spec;
use serde::Deserialize;
use serde_json::{Value, json};

pub const LIST_REPOS: &str = "github_list_repos";
pub const GET_REPO: &str = "github_get_repo";
pub const LIST_ISSUES: &str = "github_list_issues";
pub const GET_ISSUE: &str = "github_get_issue";
pub const CREATE_ISSUE: &str = "github_create_issue";
pub const COMMENT: &str = "github_comment";
pub const LIST_PULLS: &str = "github_list_pulls";
pub const GET_PULL: &str = "github_get_pull";
pub const SEARCH: &str = "github_search";
pub const GET_FILE: &str = "github_get_file";
pub const LIST_RUNS: &str = "github_list_workflow_runs";

fn object(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props})
}

/// The tools.
pub fn specs() -> Vec<ToolSpec> {
    let repo = json!({"type": "string", "description": "owner/name, e.g. octocat/hello-world."});
    let number = json!({"type": "integer", "minimum": 1});
    let max = json!({"type": "integer", "minimum": 1, "description": "Items to return at most (pages are followed until then)."});
    let state = json!({"type": "string", "enum": ["open", "closed", "all"], "description": "Default open."});
    let direction =
        json!({"type": "string", "enum": ["asc", "desc"], "description": "Default desc."});
    vec![
        spec(
            LIST_REPOS,
            "List repositories: the token's user's own (with collaborations and organisations), or those of an owner.",
            json!({"type": "object", "properties": {
                "owner": {"type": "string", "description": "A user or organisation (default: the token's user)."},
                "sort": {"type": "string", "enum": ["created", "updated", "pushed", "full_name"], "description": "Default updated."},
                "max_items": max}}),
        ),
        spec(
            GET_REPO,
            "A repository: description, default branch, visibility, language, stars, open issues, topics, license.",
            object(&["repo"], json!({"repo": repo})),
        ),
        spec(
            LIST_ISSUES,
            "List a repository's issues (pull requests left out unless include_pulls).",
            object(
                &["repo"],
                json!({"repo": repo, "state": state,
                "labels": {"type": "array", "items": {"type": "string"}, "description": "Only issues with all of these labels."},
                "assignee": {"type": "string", "description": "A login, \"none\" or \"*\"."},
                "since": {"type": "string", "description": "Only issues updated at or after this time (2026-11-01T00:00:00Z)."},
                "sort": {"type": "string", "enum": ["created", "updated", "comments"], "description": "Default created."},
                "direction": direction,
                "include_pulls": {"type": "boolean"},
                "max_items": max}),
            ),
        ),
        spec(
            GET_ISSUE,
            "One issue (or pull request) with its comments.",
            object(
                &["repo", "number"],
                json!({"repo": repo, "number": number,
                "max_comments": {"type": "integer", "minimum": 0, "description": "Default 30."}}),
            ),
        ),
        spec(
            CREATE_ISSUE,
            "Open an issue. Allowed only on repositories matching [github] write_repos.",
            object(
                &["repo", "title"],
                json!({"repo": repo, "title": {"type": "string"}, "body": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}},
                "assignees": {"type": "array", "items": {"type": "string"}}}),
            ),
        ),
        spec(
            COMMENT,
            "Comment on an issue or pull request. Allowed only on repositories matching [github] write_repos.",
            object(
                &["repo", "number", "body"],
                json!({"repo": repo, "number": number, "body": {"type": "string"}}),
            ),
        ),
        spec(
            LIST_PULLS,
            "List a repository's pull requests.",
            object(
                &["repo"],
                json!({"repo": repo, "state": state,
                "base": {"type": "string", "description": "Only those into this branch."},
                "sort": {"type": "string", "enum": ["created", "updated", "popularity", "long-running"]},
                "direction": direction, "max_items": max}),
            ),
        ),
        spec(
            GET_PULL,
            "One pull request: its description, the changed files, the review state and the combined CI status of its head.",
            object(
                &["repo", "number"],
                json!({"repo": repo, "number": number,
                "max_files": {"type": "integer", "minimum": 0, "description": "Default 100."}}),
            ),
        ),
        spec(
            SEARCH,
            "Search GitHub: issues and pull requests, code, or repositories, with GitHub's query syntax (repo:me/x is:open label:bug).",
            object(
                &["kind", "query"],
                json!({
                "kind": {"type": "string", "enum": ["issues", "code", "repositories"]},
                "query": {"type": "string"}, "max_items": max}),
            ),
        ),
        spec(
            GET_FILE,
            "A file's text at a ref (default: the default branch), cut at [github] max_file_bytes; a binary file is named, not shown; a directory is listed.",
            object(
                &["repo", "path"],
                json!({"repo": repo, "path": {"type": "string"},
                "ref": {"type": "string", "description": "A branch, tag or commit."}}),
            ),
        ),
        spec(
            LIST_RUNS,
            "The latest GitHub Actions runs of a repository, with the failing jobs and steps of each failed run.",
            object(
                &["repo"],
                json!({"repo": repo,
                "branch": {"type": "string"},
                "status": {"type": "string", "description": "completed, in_progress, queued, success, failure, ..."},
                "max_items": {"type": "integer", "minimum": 1, "description": "Runs to return (default 10)."}}),
            ),
        ),
    ]
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub repo: Option<String>,
    pub owner: Option<String>,
    pub number: Option<u64>,
    pub state: Option<String>,
    pub labels: Option<Vec<String>>,
    pub assignee: Option<String>,
    pub assignees: Option<Vec<String>>,
    pub since: Option<String>,
    pub sort: Option<String>,
    pub direction: Option<String>,
    pub include_pulls: Option<bool>,
    pub base: Option<String>,
    pub max_items: Option<u64>,
    pub max_comments: Option<u64>,
    pub max_files: Option<u64>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub kind: Option<String>,
    pub query: Option<String>,
    pub path: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub branch: Option<String>,
    pub status: Option<String>,
}
