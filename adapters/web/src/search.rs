//! `web_search`: DuckDuckGo's HTML endpoint (no key) or a SearXNG JSON
//! API, parsed into ranked results.

use crate::config::SearchEngine;
use scraper::{Html, Selector};
use serde::Serialize;
use url::Url;

use crate::extract::squash;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Hit {
    pub rank: u32,
    pub title: String,
    pub url: String,
    pub snippet: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error(
        "the DuckDuckGo page could not be parsed: no results and no \"no results\" notice ({0}); the layout may have changed, or the request was answered with a bot check"
    )]
    DuckDuckGoLayout(String),
    #[error(
        "the SearXNG answer is not the JSON API's: {0} (is search_url its /search, with json in its formats?)"
    )]
    SearxngJson(String),
}

fn sel(s: &str) -> Selector {
    match Selector::parse(s) {
        Ok(s) => s,
        Err(e) => panic!("bad built-in selector {s}: {e}"),
    }
}

/// DuckDuckGo wraps result links in its redirector
/// (`//duckduckgo.com/l/?uddg=<target>&rut=...`); the target is the result.
fn unwrap_ddg_link(href: &str) -> Option<String> {
    let base = Url::parse("https://duckduckgo.com/").ok()?;
    let u = base.join(href).ok()?;
    if u.path() == "/l/" {
        return u
            .query_pairs()
            .find(|(k, _)| k == "uddg")
            .map(|(_, v)| v.into_owned());
    }
    Some(u.to_string())
}

/// Parses DuckDuckGo's HTML result page. Ads are skipped.
pub fn parse_duckduckgo(html: &str, max: usize) -> Result<Vec<Hit>, ParseError> {
    let doc = Html::parse_document(html);
    let mut hits = Vec::new();
    let result = sel("div.result");
    let title = sel("a.result__a");
    let snippet = sel(".result__snippet");
    for r in doc.select(&result) {
        let classes: Vec<&str> = r.value().classes().collect();
        if classes
            .iter()
            .any(|c| *c == "result--ad" || *c == "result--no-result")
        {
            continue;
        }
        let Some(a) = r.select(&title).next() else {
            continue;
        };
        let Some(url) = a.value().attr("href").and_then(unwrap_ddg_link) else {
            continue;
        };
        hits.push(Hit {
            rank: hits.len() as u32 + 1,
            title: squash(&a.text().collect::<String>()),
            url,
            snippet: r
                .select(&snippet)
                .next()
                .map(|s| squash(&s.text().collect::<String>()))
                .unwrap_or_default(),
        });
        if hits.len() >= max {
            break;
        }
    }
    if hits.is_empty() {
        let no_results = doc
            .select(&sel(".no-results, .result--no-result"))
            .next()
            .is_some();
        if !no_results {
            let t = doc
                .select(&sel("title"))
                .next()
                .map(|t| squash(&t.text().collect::<String>()))
                .unwrap_or_default();
            return Err(ParseError::DuckDuckGoLayout(format!(
                "page title \"{t}\", {} bytes",
                html.len()
            )));
        }
    }
    Ok(hits)
}

/// Parses SearXNG's `format=json` answer.
pub fn parse_searxng(body: &str, max: usize) -> Result<Vec<Hit>, ParseError> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| ParseError::SearxngJson(e.to_string()))?;
    let results = v["results"]
        .as_array()
        .ok_or_else(|| ParseError::SearxngJson("no \"results\" array".into()))?;
    Ok(results
        .iter()
        .filter_map(|r| Some((r["url"].as_str()?, r)))
        .take(max)
        .enumerate()
        .map(|(i, (url, r))| Hit {
            rank: i as u32 + 1,
            title: squash(r["title"].as_str().unwrap_or("")),
            url: url.to_string(),
            snippet: squash(r["content"].as_str().unwrap_or("")),
        })
        .collect())
}

/// The request URL for a query.
pub fn query_url(engine: SearchEngine, base: &str, query: &str) -> Result<Url, url::ParseError> {
    let mut u = Url::parse(base)?;
    u.query_pairs_mut().append_pair("q", query);
    if engine == SearchEngine::Searxng {
        u.query_pairs_mut().append_pair("format", "json");
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const DDG_PAGE: &str = include_str!("../tests/fixtures/ddg-rust-async.html");

    #[test]
    fn duckduckgo_results_are_ranked_without_ads() {
        let hits = parse_duckduckgo(DDG_PAGE, 10).unwrap();
        assert_eq!(hits.len(), 3, "{hits:#?}");
        assert_eq!(hits[0].rank, 1);
        assert_eq!(hits[0].title, "Tokio - An asynchronous Rust runtime");
        assert_eq!(hits[0].url, "https://tokio.rs/");
        assert_eq!(
            hits[0].snippet,
            "Tokio is an asynchronous runtime for the Rust programming language. It provides the building blocks needed for writing network applications."
        );
        assert_eq!(
            hits[1].url,
            "https://github.com/smol-rs/smol?tab=readme-ov-file"
        );
        assert_eq!(hits[2].url, "https://example.org/benchmarks/async-runtimes");
        assert_eq!(parse_duckduckgo(DDG_PAGE, 2).unwrap().len(), 2);
    }

    #[test]
    fn no_results_and_unknown_layouts_are_told_apart() {
        let none = r#"<html><body><div class="results"><div class="no-results">No results.</div></div></body></html>"#;
        assert_eq!(parse_duckduckgo(none, 5).unwrap(), vec![]);
        let e = parse_duckduckgo(
            "<html><head><title>Just a moment</title></head><body>captcha</body></html>",
            5,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("page title \"Just a moment\""),
            "{e}"
        );
    }

    #[test]
    fn searxng_json() {
        let body = r#"{"query":"q","results":[{"url":"https://a.example/","title":"A  title","content":"About a"},{"title":"no url"},{"url":"https://b.example/","title":"B"}]}"#;
        let hits = parse_searxng(body, 5).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!((hits[0].title.as_str(), hits[1].rank), ("A title", 2));
        assert!(parse_searxng("<html>", 5).is_err());
    }

    #[test]
    fn query_urls() {
        assert_eq!(
            query_url(
                SearchEngine::Duckduckgo,
                "https://html.duckduckgo.com/html/",
                "rust & tokio"
            )
            .unwrap()
            .as_str(),
            "https://html.duckduckgo.com/html/?q=rust+%26+tokio"
        );
        assert_eq!(
            query_url(SearchEngine::Searxng, "http://127.0.0.1:8888/search", "x")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8888/search?q=x&format=json"
        );
    }
}
