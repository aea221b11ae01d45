//! Readable text out of an HTML page: the title, the main text (rendered
//! by html2text from the page's `<main>`/`<article>`, or its body without
//! navigation, headers, footers and asides), and its links.

use scraper::{ElementRef, Html, Selector};
use serde::Serialize;
use url::Url;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Link {
    pub text: String,
    pub url: String,
}

#[derive(Debug)]
pub struct Page {
    pub title: String,
    pub text: String,
    pub links: Vec<Link>,
}

fn sel(s: &str) -> Selector {
    match Selector::parse(s) {
        Ok(s) => s,
        // The selectors are literals in this file, each covered by tests.
        Err(e) => panic!("bad built-in selector {s}: {e}"),
    }
}

/// Collapses whitespace runs to single spaces.
pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Elements that are page furniture, not content.
const FURNITURE: &[&str] = &[
    "nav", "header", "footer", "aside", "script", "style", "noscript", "form", "svg", "iframe",
    "template",
];

/// The element's HTML without furniture.
fn content_html(el: ElementRef<'_>) -> String {
    let mut out = String::new();
    for node in el.children() {
        if let Some(child) = ElementRef::wrap(node) {
            if FURNITURE.contains(&child.value().name()) {
                continue;
            }
            let name = child.value().name();
            out.push('<');
            out.push_str(name);
            for (k, v) in child.value().attrs() {
                if matches!(k, "href" | "src" | "alt") {
                    out.push_str(&format!(" {k}=\"{}\"", v.replace('"', "&quot;")));
                }
            }
            out.push('>');
            out.push_str(&content_html(child));
            out.push_str(&format!("</{name}>"));
        } else if let Some(t) = node.value().as_text() {
            out.push_str(&t.replace('&', "&amp;").replace('<', "&lt;"));
        }
    }
    out
}

/// Extracts title, text (wrapped at `width`) and links (absolute, at most
/// `max_links`, duplicates dropped) from a page fetched from `base`.
pub fn page(html: &str, base: &Url, width: usize, max_links: usize) -> Page {
    let doc = Html::parse_document(html);
    let title = doc
        .select(&sel("title"))
        .next()
        .map(|t| squash(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty())
        .or_else(|| {
            doc.select(&sel("meta[property=\"og:title\"]"))
                .next()
                .and_then(|m| m.value().attr("content"))
                .map(squash)
        })
        .or_else(|| {
            doc.select(&sel("h1"))
                .next()
                .map(|h| squash(&h.text().collect::<String>()))
        })
        .unwrap_or_default();
    let base = doc
        .select(&sel("base[href]"))
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| base.join(h).ok())
        .unwrap_or_else(|| base.clone());
    let main = doc
        .select(&sel("main, article, [role=\"main\"]"))
        .next()
        .or_else(|| doc.select(&sel("body")).next())
        .unwrap_or_else(|| doc.root_element());
    let inner = content_html(main);
    let text = html2text::config::plain_no_decorate()
        .string_from_read(inner.as_bytes(), width)
        .unwrap_or_else(|_| squash(&main.text().collect::<String>()));
    let text = tidy(&text);
    let mut links: Vec<Link> = Vec::new();
    for a in main.select(&sel("a[href]")) {
        let Some(href) = a.value().attr("href") else {
            continue;
        };
        let Ok(u) = base.join(href.trim()) else {
            continue;
        };
        if !matches!(u.scheme(), "http" | "https") {
            continue;
        }
        let mut u = u;
        u.set_fragment(None);
        let url = u.to_string();
        if url == base.as_str() || links.iter().any(|l| l.url == url) {
            continue;
        }
        links.push(Link {
            text: squash(&a.text().collect::<String>()),
            url,
        });
        if links.len() >= max_links {
            break;
        }
    }
    Page { title, text, links }
}

/// Trims trailing spaces and runs of blank lines.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_text_title_and_links() {
        let html = r#"<!doctype html><html><head><title> Rust  async
            runtimes </title><base href="https://example.com/docs/"></head><body>
            <nav><a href="/home">Home</a> Menu text</nav>
            <header>Site header</header>
            <main><h1>Runtimes</h1><p>Tokio is a runtime &amp; more.</p>
            <script>var x = "not text";</script>
            <ul><li>one</li><li>two</li></ul>
            <p>See <a href="tokio.html#intro">the Tokio page</a>, <a href="https://other.org/x">another</a>,
            <a href="tokio.html">again</a> and <a href="javascript:alert(1)">js</a>.</p></main>
            <footer>Copyright</footer></body></html>"#;
        let p = page(
            html,
            &Url::parse("https://example.com/a/b").unwrap(),
            80,
            10,
        );
        assert_eq!(p.title, "Rust async runtimes");
        assert!(p.text.contains("Tokio is a runtime & more."), "{}", p.text);
        assert!(
            p.text.contains("one") && p.text.contains("two"),
            "{}",
            p.text
        );
        for furniture in ["Menu text", "Site header", "Copyright", "not text"] {
            assert!(!p.text.contains(furniture), "{furniture} in {}", p.text);
        }
        assert_eq!(
            p.links,
            vec![
                Link {
                    text: "the Tokio page".into(),
                    url: "https://example.com/docs/tokio.html".into()
                },
                Link {
                    text: "another".into(),
                    url: "https://other.org/x".into()
                },
            ]
        );
    }

    #[test]
    fn a_page_without_main_uses_its_body() {
        let p = page(
            "<html><body><div>Just <b>text</b></div><footer>f</footer></body></html>",
            &Url::parse("http://h/").unwrap(),
            80,
            10,
        );
        assert_eq!(p.title, "");
        assert_eq!(p.text, "Just text");
    }
}
