//! GitHub's resources as GitHub sends them: every field the official
//! OpenAPI description requires (and the tests check each answer against
//! it), with GitHub's URL layout under the fake's own address.

use serde_json::{Value, json};

use super::state::{
    Check, CommentRec, CommitStatus, IssueRec, Job, PullRec, RepoRec, ReviewRec, RunRec,
};

/// When the fake's data was made.
pub const STAMP: &str = "2026-11-01T09:00:00Z";

pub fn user(api: &str, web: &str, login: &str, id: u64) -> Value {
    let u = format!("{api}/users/{login}");
    json!({
        "login": login, "id": id, "node_id": format!("U_{id}"),
        "avatar_url": format!("{web}/avatars/{login}"), "gravatar_id": "",
        "url": u, "html_url": format!("{web}/{login}"),
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"), "type": "User",
        "user_view_type": "public", "site_admin": false,
    })
}

/// The URL templates every repository object carries.
const REPO_URLS: &[(&str, &str)] = &[
    ("archive_url", "/{archive_format}{/ref}"),
    ("assignees_url", "/assignees{/user}"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("branches_url", "/branches{/branch}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("comments_url", "/comments{/number}"),
    ("commits_url", "/commits{/sha}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("contents_url", "/contents/{+path}"),
    ("contributors_url", "/contributors"),
    ("deployments_url", "/deployments"),
    ("downloads_url", "/downloads"),
    ("events_url", "/events"),
    ("forks_url", "/forks"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("hooks_url", "/hooks"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("issue_events_url", "/issues/events{/number}"),
    ("issues_url", "/issues{/number}"),
    ("keys_url", "/keys{/key_id}"),
    ("labels_url", "/labels{/name}"),
    ("languages_url", "/languages"),
    ("merges_url", "/merges"),
    ("milestones_url", "/milestones{/number}"),
    (
        "notifications_url",
        "/notifications{?since,all,participating}",
    ),
    ("pulls_url", "/pulls{/number}"),
    ("releases_url", "/releases{/id}"),
    ("stargazers_url", "/stargazers"),
    ("statuses_url", "/statuses/{sha}"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("tags_url", "/tags"),
    ("teams_url", "/teams"),
    ("trees_url", "/git/trees{/sha}"),
];

/// A repository as listings and nested objects give it
/// (`minimal-repository`, the URL part of every other kind).
pub fn repo_minimal(api: &str, web: &str, r: &RepoRec) -> Value {
    let base = format!("{api}/repos/{}", r.full_name());
    let mut v = json!({
        "id": r.id, "node_id": format!("R_{}", r.id), "name": r.name, "full_name": r.full_name(),
        "owner": user(api, web, &r.owner, r.owner_id), "private": r.private,
        "html_url": format!("{web}/{}", r.full_name()), "description": r.description,
        "fork": false, "url": base,
    });
    for (k, suffix) in REPO_URLS {
        v[*k] = json!(format!("{base}{suffix}"));
    }
    v
}

/// `repository` / `full-repository` / `repo-search-result-item`.
pub fn repo(api: &str, web: &str, r: &RepoRec) -> Value {
    let mut v = repo_minimal(api, web, r);
    let host = web.trim_start_matches("http://");
    let extra = json!({
        "clone_url": format!("{web}/{}.git", r.full_name()), "git_url": format!("git://{host}/{}.git", r.full_name()),
        "ssh_url": format!("git@{host}:{}.git", r.full_name()), "svn_url": format!("{web}/{}", r.full_name()),
        "mirror_url": null, "homepage": null, "language": r.language, "default_branch": r.default_branch,
        "forks": 0, "forks_count": 0, "stargazers_count": r.stars, "watchers": r.stars, "watchers_count": r.stars,
        "size": 100, "open_issues": r.open_issues(), "open_issues_count": r.open_issues(),
        "has_issues": true, "has_projects": true, "has_wiki": true, "has_pages": false,
        "has_downloads": true, "has_discussions": false, "archived": r.archived, "disabled": false,
        "visibility": if r.private { "private" } else { "public" },
        "license": r.license.as_ref().map(|l| json!({"key": l.to_lowercase(), "name": l, "spdx_id": l, "url": format!("{api}/licenses/{}", l.to_lowercase()), "node_id": "MDc6TGljZW5zZTE="})),
        "topics": r.topics, "pushed_at": STAMP, "created_at": STAMP, "updated_at": r.updated_at,
        "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true},
        "network_count": 0, "subscribers_count": 1,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

fn label(api: &str, repo: &str, name: &str, i: usize) -> Value {
    json!({"id": 1000 + i, "node_id": format!("LA_{i}"), "url": format!("{api}/repos/{repo}/labels/{name}"),
           "name": name, "description": null, "color": "d73a4a", "default": false})
}

/// `issue` (and, with `score`, `issue-search-result-item`).
pub fn issue(api: &str, web: &str, r: &RepoRec, i: &IssueRec) -> Value {
    let full = r.full_name();
    let url = format!("{api}/repos/{full}/issues/{}", i.number);
    let assignees: Vec<Value> = i.assignees.iter().map(|a| user(api, web, a, 7)).collect();
    let mut v = json!({
        "id": i.id, "node_id": format!("I_{}", i.id), "url": url, "repository_url": format!("{api}/repos/{full}"),
        "labels_url": format!("{url}/labels{{/name}}"), "comments_url": format!("{url}/comments"),
        "events_url": format!("{url}/events"), "html_url": format!("{web}/{full}/{}/{}", if i.pull { "pull" } else { "issues" }, i.number),
        "number": i.number, "state": if i.open { "open" } else { "closed" }, "title": i.title, "body": i.body,
        "user": user(api, web, &i.author, 5),
        "labels": i.labels.iter().enumerate().map(|(n, l)| label(api, &full, l, n)).collect::<Vec<_>>(),
        "assignee": assignees.first().cloned(), "assignees": assignees, "milestone": null, "locked": false,
        "active_lock_reason": null, "comments": i.comments.len(), "closed_at": (!i.open).then_some(&i.updated_at),
        "created_at": i.created_at, "updated_at": i.updated_at, "author_association": "OWNER",
        "state_reason": null,
    });
    if i.pull {
        v["pull_request"] = json!({
            "url": format!("{api}/repos/{full}/pulls/{}", i.number), "html_url": format!("{web}/{full}/pull/{}", i.number),
            "diff_url": format!("{web}/{full}/pull/{}.diff", i.number), "patch_url": format!("{web}/{full}/pull/{}.patch", i.number),
            "merged_at": null,
        });
    }
    v
}

pub fn comment(api: &str, web: &str, r: &RepoRec, issue: u64, c: &CommentRec) -> Value {
    let full = r.full_name();
    json!({
        "id": c.id, "node_id": format!("IC_{}", c.id), "url": format!("{api}/repos/{full}/issues/comments/{}", c.id),
        "html_url": format!("{web}/{full}/issues/{issue}#issuecomment-{}", c.id), "body": c.body,
        "user": user(api, web, &c.author, 5), "created_at": c.created_at, "updated_at": c.created_at,
        "issue_url": format!("{api}/repos/{full}/issues/{issue}"), "author_association": "OWNER",
    })
}

fn link(href: String) -> Value {
    json!({ "href": href })
}

/// `pull-request`, or `pull-request-simple` when `full` is false.
pub fn pull(api: &str, web: &str, r: &RepoRec, i: &IssueRec, p: &PullRec, full: bool) -> Value {
    let name = r.full_name();
    let url = format!("{api}/repos/{name}/pulls/{}", i.number);
    let issue_url = format!("{api}/repos/{name}/issues/{}", i.number);
    let owner = user(api, web, &r.owner, r.owner_id);
    let branch = |b: &str, sha: &str| json!({"label": format!("{}:{b}", r.owner), "ref": b, "sha": sha, "user": owner, "repo": repo(api, web, r)});
    let html = format!("{web}/{name}/pull/{}", i.number);
    let statuses = format!("{api}/repos/{name}/statuses/{}", p.head_sha);
    let mut v = json!({
        "url": url, "id": i.id, "node_id": format!("PR_{}", i.id), "html_url": html,
        "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"), "issue_url": issue_url,
        "commits_url": format!("{url}/commits"), "review_comments_url": format!("{url}/comments"),
        "review_comment_url": format!("{api}/repos/{name}/pulls/comments{{/number}}"),
        "comments_url": format!("{issue_url}/comments"), "statuses_url": statuses,
        "number": i.number, "state": if i.open { "open" } else { "closed" }, "locked": false, "title": i.title,
        "user": user(api, web, &i.author, 5), "body": i.body,
        "labels": i.labels.iter().enumerate().map(|(n, l)| {
            let mut l = label(api, &name, l, n);
            l["description"] = json!("");
            l
        }).collect::<Vec<_>>(),
        "milestone": null, "active_lock_reason": null, "created_at": i.created_at, "updated_at": i.updated_at,
        "closed_at": null, "merged_at": null, "merge_commit_sha": null, "assignee": null, "assignees": [],
        "requested_reviewers": [], "requested_teams": [],
        "head": branch(&p.head, &p.head_sha), "base": branch(&r.default_branch, "0000000000000000000000000000000000000000"),
        "_links": {
            "self": link(url.clone()), "html": link(html.clone()), "issue": link(issue_url.clone()),
            "comments": link(format!("{issue_url}/comments")), "review_comments": link(format!("{url}/comments")),
            "review_comment": link(format!("{api}/repos/{name}/pulls/comments{{/number}}")),
            "commits": link(format!("{url}/commits")), "statuses": link(statuses),
        },
        "author_association": "OWNER", "auto_merge": null, "draft": p.draft,
    });
    if full {
        let extra = json!({
            "merged": false, "mergeable": true, "rebaseable": true, "mergeable_state": "clean", "merged_by": null,
            "comments": i.comments.len(), "review_comments": 0, "maintainer_can_modify": false, "commits": 1,
            "additions": p.files.iter().map(|f| f.additions).sum::<u64>(),
            "deletions": p.files.iter().map(|f| f.deletions).sum::<u64>(),
            "changed_files": p.files.len(),
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
    }
    v
}

pub fn diff_entry(
    api: &str,
    web: &str,
    r: &RepoRec,
    p: &PullRec,
    f: &super::state::FileChange,
) -> Value {
    let name = r.full_name();
    json!({
        "sha": "1111111111111111111111111111111111111111", "filename": f.filename, "status": f.status,
        "additions": f.additions, "deletions": f.deletions, "changes": f.additions + f.deletions,
        "blob_url": format!("{web}/{name}/blob/{}/{}", p.head_sha, f.filename),
        "raw_url": format!("{web}/{name}/raw/{}/{}", p.head_sha, f.filename),
        "contents_url": format!("{api}/repos/{name}/contents/{}?ref={}", f.filename, p.head_sha),
        "patch": "@@ -1 +1 @@",
    })
}

pub fn review(api: &str, web: &str, r: &RepoRec, number: u64, rv: &ReviewRec) -> Value {
    let name = r.full_name();
    let html = format!("{web}/{name}/pull/{number}#pullrequestreview-{}", rv.id);
    let pr = format!("{api}/repos/{name}/pulls/{number}");
    json!({
        "id": rv.id, "node_id": format!("PRR_{}", rv.id), "user": user(api, web, &rv.author, 6), "body": "",
        "state": rv.state, "html_url": html, "pull_request_url": pr, "commit_id": null,
        "_links": {"html": {"href": html}, "pull_request": {"href": pr}},
        "submitted_at": STAMP, "author_association": "COLLABORATOR",
    })
}

pub fn combined_status(
    api: &str,
    web: &str,
    r: &RepoRec,
    sha: &str,
    statuses: &[&CommitStatus],
) -> Value {
    let name = r.full_name();
    let state = if statuses
        .iter()
        .any(|s| s.state == "failure" || s.state == "error")
    {
        "failure"
    } else if statuses.is_empty() || statuses.iter().any(|s| s.state == "pending") {
        "pending"
    } else {
        "success"
    };
    json!({
        "state": state, "sha": sha, "total_count": statuses.len(),
        "statuses": statuses.iter().map(|s| json!({
            "url": format!("{api}/repos/{name}/statuses/{sha}"), "avatar_url": null, "id": s.id,
            "node_id": format!("SC_{}", s.id), "state": s.state, "description": s.description,
            "target_url": null, "context": s.context, "created_at": STAMP, "updated_at": STAMP,
        })).collect::<Vec<_>>(),
        "repository": repo_minimal(api, web, r),
        "commit_url": format!("{api}/repos/{name}/commits/{sha}"), "url": format!("{api}/repos/{name}/commits/{sha}/status"),
    })
}

pub fn check_run(api: &str, web: &str, r: &RepoRec, sha: &str, c: &Check) -> Value {
    let name = r.full_name();
    let done = c.conclusion.is_some();
    json!({
        "id": c.id, "node_id": format!("CR_{}", c.id), "head_sha": sha, "name": c.name,
        "external_id": "", "url": format!("{api}/repos/{name}/check-runs/{}", c.id),
        "html_url": format!("{web}/{name}/runs/{}", c.id), "details_url": null,
        "status": c.status, "conclusion": c.conclusion, "started_at": STAMP,
        "completed_at": done.then_some(STAMP),
        "output": {"title": null, "summary": null, "text": null, "annotations_count": 0,
                   "annotations_url": format!("{api}/repos/{name}/check-runs/{}/annotations", c.id)},
        "check_suite": {"id": 1}, "app": null, "pull_requests": [],
    })
}

pub fn run(api: &str, web: &str, r: &RepoRec, run: &RunRec) -> Value {
    let name = r.full_name();
    let url = format!("{api}/repos/{name}/actions/runs/{}", run.id);
    json!({
        "id": run.id, "name": run.workflow, "node_id": format!("WFR_{}", run.id), "head_branch": run.branch,
        "head_sha": run.sha, "path": ".github/workflows/ci.yml", "display_title": run.title,
        "run_number": run.number, "event": "push", "status": run.status, "conclusion": run.conclusion,
        "workflow_id": 1, "url": url, "html_url": format!("{web}/{name}/actions/runs/{}", run.id),
        "pull_requests": [], "created_at": run.created_at, "updated_at": run.created_at,
        "jobs_url": format!("{url}/jobs"), "logs_url": format!("{url}/logs"),
        "check_suite_url": format!("{api}/repos/{name}/check-suites/1"), "artifacts_url": format!("{url}/artifacts"),
        "cancel_url": format!("{url}/cancel"), "rerun_url": format!("{url}/rerun"),
        "workflow_url": format!("{api}/repos/{name}/actions/workflows/1"),
        "head_commit": {"id": run.sha, "tree_id": run.sha, "message": run.title, "timestamp": run.created_at,
                        "author": {"name": "Me", "email": "me@example.com"}, "committer": {"name": "Me", "email": "me@example.com"}},
        "repository": repo_minimal(api, web, r), "head_repository": repo_minimal(api, web, r),
    })
}

pub fn job(api: &str, web: &str, r: &RepoRec, run: &RunRec, j: &Job) -> Value {
    let name = r.full_name();
    json!({
        "id": j.id, "run_id": run.id, "run_url": format!("{api}/repos/{name}/actions/runs/{}", run.id),
        "node_id": format!("CR_{}", j.id), "head_sha": run.sha, "url": format!("{api}/repos/{name}/actions/jobs/{}", j.id),
        "html_url": format!("{web}/{name}/actions/runs/{}/job/{}", run.id, j.id), "status": "completed",
        "conclusion": j.conclusion, "started_at": run.created_at, "completed_at": run.created_at,
        "created_at": run.created_at, "name": j.name, "workflow_name": run.workflow, "head_branch": run.branch,
        "steps": j.steps.iter().enumerate().map(|(n, (s, c))| json!({
            "name": s, "status": "completed", "conclusion": c, "number": n + 1,
            "started_at": run.created_at, "completed_at": run.created_at,
        })).collect::<Vec<_>>(),
        "check_run_url": format!("{api}/repos/{name}/check-runs/{}", j.id), "labels": ["ubuntu-latest"],
        "runner_id": 1, "runner_name": "GitHub Actions 1", "runner_group_id": 1, "runner_group_name": "GitHub Actions",
    })
}

pub fn content_file(
    api: &str,
    web: &str,
    r: &RepoRec,
    git_ref: &str,
    path: &str,
    bytes: &[u8],
) -> Value {
    use base64::Engine;
    let name = r.full_name();
    let sha = sha1ish(bytes);
    let url = format!("{api}/repos/{name}/contents/{path}?ref={git_ref}");
    let html = format!("{web}/{name}/blob/{git_ref}/{path}");
    let git = format!("{api}/repos/{name}/git/blobs/{sha}");
    // GitHub wraps the base64 at 60 characters.
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let wrapped: Vec<&str> = b64
        .as_bytes()
        .chunks(60)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    json!({
        "type": "file", "encoding": "base64", "size": bytes.len(), "name": path.rsplit('/').next().unwrap_or(path),
        "path": path, "content": wrapped.join("\n") + "\n", "sha": sha, "url": url, "git_url": git, "html_url": html,
        "download_url": format!("{web}/raw/{name}/{git_ref}/{path}"),
        "_links": {"self": url, "git": git, "html": html},
    })
}

pub fn content_entry(
    api: &str,
    web: &str,
    r: &RepoRec,
    git_ref: &str,
    path: &str,
    kind: &str,
    size: u64,
) -> Value {
    let name = r.full_name();
    let url = format!("{api}/repos/{name}/contents/{path}?ref={git_ref}");
    let html = format!(
        "{web}/{name}/{}/{git_ref}/{path}",
        if kind == "dir" { "tree" } else { "blob" }
    );
    let git = format!(
        "{api}/repos/{name}/git/{}/{}",
        if kind == "dir" { "trees" } else { "blobs" },
        sha1ish(path.as_bytes())
    );
    json!({
        "type": kind, "size": size, "name": path.rsplit('/').next().unwrap_or(path), "path": path,
        "sha": sha1ish(path.as_bytes()), "url": url, "git_url": git, "html_url": html,
        "download_url": (kind == "file").then(|| format!("{web}/raw/{name}/{git_ref}/{path}")),
        "_links": {"self": url, "git": git, "html": html},
    })
}

/// A 40-hex-digit id for content (SHA-256, cut: the fake has no git).
pub fn sha1ish(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
