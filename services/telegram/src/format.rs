//! Answers as Telegram messages: Markdown (what models write) rendered as
//! the HTML subset Telegram accepts (`<b> <i> <s> <code> <pre> <a>
//! <blockquote>`), with `&`, `<` and `>` escaped everywhere, and cut into
//! messages of at most 4096 characters (counted as Telegram counts them:
//! UTF-16 units of the text after formatting).
//!
//! Cuts fall between blocks (paragraphs, lists, code blocks); a block too
//! long for one message is cut between lines, then after a sentence, then
//! between words, and never inside a character. A code block cut in two is
//! closed and reopened, so each message is well-formed on its own. Every
//! chunk also carries its plain text, sent when Telegram refuses the
//! formatting.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// Telegram's limit for one message's text.
pub const MESSAGE_LIMIT: usize = 4096;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The formatted text (`parse_mode: HTML`); `None` to send plain.
    pub html: Option<String>,
    /// The same text without formatting.
    pub plain: String,
}

/// Length as Telegram counts it.
pub fn tg_len(s: &str) -> usize {
    s.encode_utf16().count()
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Removes the last `n` visible characters of `html` (whitespace, the
/// caller knows), stepping over the tags among them.
fn trim_visible_end(html: &mut String, mut n: usize) {
    let mut end = html.len();
    let mut cut: Vec<std::ops::Range<usize>> = Vec::new();
    while n > 0 && end > 0 {
        let Some(c) = html[..end].chars().next_back() else {
            break;
        };
        if c == '>' {
            match html[..end].rfind('<') {
                Some(open) => end = open,
                None => break,
            }
            continue;
        }
        if !c.is_whitespace() {
            break;
        }
        let start = end - c.len_utf8();
        cut.push(start..end);
        end = start;
        n -= 1;
    }
    // Ranges were found from the end; removing them in that order keeps
    // the earlier offsets valid.
    for r in cut {
        html.replace_range(r, "");
    }
}

/// A rendered block: its HTML and its visible text.
#[derive(Debug, Clone)]
struct Block {
    html: String,
    text: String,
    /// For a code block: its language and raw text, to cut it by lines.
    code: Option<(String, String)>,
}

struct Renderer {
    blocks: Vec<Block>,
    html: String,
    text: String,
    /// Open lists: the next number of an ordered one.
    lists: Vec<Option<u64>>,
    /// Inside a code block: (language, raw text so far).
    code: Option<(String, String)>,
    /// Inside a link: its escaped href (empty when not a safe scheme).
    links: Vec<String>,
    /// Table cells of the current row, and finished rows.
    row: Vec<String>,
    rows: Vec<Vec<String>>,
    cell: Option<String>,
    quote_depth: usize,
}

fn safe_href(url: &str) -> bool {
    let u = url.trim().to_ascii_lowercase();
    ["http://", "https://", "tg://", "mailto:"]
        .iter()
        .any(|s| u.starts_with(s))
}

impl Renderer {
    fn new() -> Self {
        Renderer {
            blocks: Vec::new(),
            html: String::new(),
            text: String::new(),
            lists: Vec::new(),
            code: None,
            links: Vec::new(),
            row: Vec::new(),
            rows: Vec::new(),
            cell: None,
            quote_depth: 0,
        }
    }

    /// Ends the current block (at the top level only: lists and quotes are
    /// one block each).
    fn flush(&mut self) {
        if !self.lists.is_empty() || self.quote_depth > 0 {
            return;
        }
        let text = self.text.trim_end().to_string();
        if !text.trim().is_empty() {
            // The same trailing whitespace goes from the HTML, wherever
            // it is among the closing tags (`<code>a </code>`), so the
            // plain twin stays exactly what the HTML shows.
            let spaces = self.text[text.len()..].chars().count();
            trim_visible_end(&mut self.html, spaces);
            self.blocks.push(Block {
                html: std::mem::take(&mut self.html),
                text,
                code: None,
            });
        }
        self.html.clear();
        self.text.clear();
    }

    fn push_text(&mut self, s: &str) {
        if let Some(cell) = &mut self.cell {
            cell.push_str(s);
            return;
        }
        self.html.push_str(&escape(s));
        self.text.push_str(s);
    }

    fn tag(&mut self, open: &str) {
        if self.cell.is_none() {
            self.html.push_str(open);
        }
    }

    /// A line break inside a list or quote block.
    fn newline(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.html.push('\n');
            self.text.push('\n');
        }
    }

    fn event(&mut self, ev: Event<'_>) {
        if let Some((_, raw)) = &mut self.code {
            match ev {
                Event::Text(t) => raw.push_str(&t),
                Event::End(TagEnd::CodeBlock) => self.end_code(),
                _ => {}
            }
            return;
        }
        match ev {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.push_text(&t),
            Event::Code(t) => {
                if let Some(cell) = &mut self.cell {
                    cell.push_str(&t);
                } else {
                    self.html.push_str(&format!("<code>{}</code>", escape(&t)));
                    self.text.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => self.push_text("\n"),
            Event::Rule => {
                self.flush();
                self.push_text("──────────");
                self.flush();
            }
            Event::TaskListMarker(done) => self.push_text(if done { "☑ " } else { "☐ " }),
            // Raw HTML from a model is shown as text, never interpreted.
            Event::Html(t) | Event::InlineHtml(t) => self.push_text(&t),
            Event::FootnoteReference(t) => self.push_text(&format!("[{t}]")),
            Event::InlineMath(t) | Event::DisplayMath(t) => self.push_text(&t),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => {
                if !self.lists.is_empty() || self.quote_depth > 0 {
                    // A loose list's paragraphs: keep them on their lines.
                    if !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
                        self.newline();
                    }
                } else {
                    self.flush();
                }
            }
            Tag::Heading { .. } => {
                self.flush();
                self.tag("<b>");
            }
            Tag::BlockQuote(_) => {
                self.flush();
                if self.quote_depth == 0 {
                    self.tag("<blockquote>");
                }
                self.quote_depth += 1;
            }
            Tag::CodeBlock(kind) => {
                self.flush();
                let lang = match kind {
                    CodeBlockKind::Fenced(l) => l
                        .split(|c: char| c.is_whitespace() || c == ',')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some((lang, String::new()));
            }
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.flush();
                } else {
                    self.newline();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.newline();
                let depth = self.lists.len().saturating_sub(1);
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let b = format!("{n}. ");
                        *n += 1;
                        b
                    }
                    _ => "• ".to_string(),
                };
                self.push_text(&format!("{}{bullet}", "  ".repeat(depth)));
            }
            Tag::Emphasis => self.tag("<i>"),
            Tag::Strong => self.tag("<b>"),
            Tag::Strikethrough => self.tag("<s>"),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                if safe_href(&dest_url) && self.cell.is_none() {
                    self.html
                        .push_str(&format!("<a href=\"{}\">", escape(dest_url.trim())));
                    self.links.push(dest_url.to_string());
                } else {
                    self.links.push(String::new());
                }
            }
            Tag::Table(_) => {
                self.flush();
                self.rows.clear();
            }
            Tag::TableHead | Tag::TableRow => self.row.clear(),
            Tag::TableCell => self.cell = Some(String::new()),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                if self.lists.is_empty() && self.quote_depth == 0 {
                    self.flush();
                } else if self.quote_depth > 0 && self.lists.is_empty() {
                    self.newline();
                }
            }
            TagEnd::Heading(_) => {
                self.tag("</b>");
                self.flush();
            }
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                if self.quote_depth == 0 {
                    let trimmed = self.html.trim_end().len();
                    self.html.truncate(trimmed);
                    self.tag("</blockquote>");
                    self.flush();
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.flush();
                }
            }
            TagEnd::Emphasis => self.tag("</i>"),
            TagEnd::Strong => self.tag("</b>"),
            TagEnd::Strikethrough => self.tag("</s>"),
            TagEnd::Link | TagEnd::Image if self.links.pop().is_some_and(|h| !h.is_empty()) => {
                self.html.push_str("</a>");
            }
            TagEnd::TableCell => {
                if let Some(c) = self.cell.take() {
                    self.row.push(c.trim().to_string());
                }
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                self.rows.push(std::mem::take(&mut self.row));
            }
            TagEnd::Table => self.end_table(),
            _ => {}
        }
    }

    fn end_code(&mut self) {
        let Some((lang, raw)) = self.code.take() else {
            return;
        };
        let raw = raw.trim_end_matches('\n').to_string();
        if self.lists.is_empty() && self.quote_depth == 0 {
            self.blocks.push(code_block(&lang, &raw));
        } else {
            // Inside a list or quote: inline, as preformatted text.
            self.newline();
            self.html
                .push_str(&format!("<code>{}</code>", escape(&raw)));
            self.text.push_str(&raw);
        }
    }

    /// A table as aligned preformatted text (Telegram has no tables).
    fn end_table(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                rows.iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut lines = Vec::new();
        for (n, r) in rows.iter().enumerate() {
            let cells: Vec<String> = (0..cols)
                .map(|i| {
                    let c = r.get(i).map_or("", String::as_str);
                    format!("{c}{}", " ".repeat(widths[i] - c.chars().count()))
                })
                .collect();
            lines.push(cells.join(" | ").trim_end().to_string());
            if n == 0 {
                lines.push(
                    widths
                        .iter()
                        .map(|w| "-".repeat(*w))
                        .collect::<Vec<_>>()
                        .join("-+-"),
                );
            }
        }
        if !lines.is_empty() {
            self.blocks.push(code_block("", &lines.join("\n")));
        }
    }
}

fn code_block(lang: &str, raw: &str) -> Block {
    let open = if lang.is_empty()
        || !lang
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-_#.".contains(c))
    {
        "<pre>".to_string()
    } else {
        format!("<pre><code class=\"language-{lang}\">")
    };
    let close = if open == "<pre>" {
        "</pre>"
    } else {
        "</code></pre>"
    };
    Block {
        html: format!("{open}{}{close}", escape(raw)),
        text: raw.to_string(),
        code: Some((lang.to_string(), raw.to_string())),
    }
}

/// Where to cut `s` so the first part has at most `limit` UTF-16 units:
/// after a paragraph break, a line, a sentence or a word, in that order of
/// preference, else at the last whole character that fits.
fn cut_point(s: &str, limit: usize) -> usize {
    // The longest prefix (in bytes) that fits.
    let mut units = 0;
    let mut fits = s.len();
    for (i, ch) in s.char_indices() {
        units += ch.len_utf16();
        if units > limit {
            fits = i;
            break;
        }
    }
    if fits == s.len() {
        return fits;
    }
    let head = &s[..fits];
    // Do not make the first part tiny just to cut at a nicer place.
    let min = fits / 2;
    for sep in ["\n\n", "\n", ". ", "! ", "? ", "; ", ", ", " "] {
        if let Some(p) = head.rfind(sep)
            && p + sep.len() > min
        {
            return p + sep.len();
        }
    }
    fits.max(s.chars().next().map_or(0, char::len_utf8))
}

/// Cuts plain text into pieces of at most `limit` UTF-16 units.
pub fn split_plain(s: &str, limit: usize) -> Vec<String> {
    cut_all(s.trim(), limit, false)
}

/// Cuts `s` at every `cut_point`. Between pieces, prose drops all
/// whitespace; code (`keep_indent`) drops only line breaks, so indentation
/// survives.
fn cut_all(s: &str, limit: usize, keep_indent: bool) -> Vec<String> {
    let gap = |c: char| {
        if keep_indent {
            c == '\n'
        } else {
            c.is_whitespace()
        }
    };
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let at = cut_point(rest, limit);
        let piece = rest[..at].trim_end_matches(gap);
        if !piece.trim().is_empty() {
            out.push(piece.to_string());
        }
        rest = rest[at..].trim_start_matches(gap);
    }
    out
}

/// Blocks no longer than `limit` each: a long code block cut by lines into
/// several, any other long block cut into plain pieces.
fn fit(block: Block, limit: usize) -> Vec<Block> {
    if tg_len(&block.text) <= limit {
        return vec![block];
    }
    match &block.code {
        Some((lang, raw)) => cut_all(raw, limit, true)
            .into_iter()
            .map(|piece| code_block(lang, &piece))
            .collect(),
        None => split_plain(&block.text, limit)
            .into_iter()
            .map(|piece| Block {
                html: escape(&piece),
                text: piece,
                code: None,
            })
            .collect(),
    }
}

/// Renders a Markdown answer as Telegram HTML messages.
pub fn render_markdown(markdown: &str, limit: usize) -> Vec<Chunk> {
    let mut r = Renderer::new();
    let opts = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    for ev in Parser::new_ext(markdown, opts) {
        r.event(ev);
    }
    if r.code.is_some() {
        r.end_code();
    }
    r.lists.clear();
    r.quote_depth = 0;
    r.flush();
    let mut chunks = Vec::new();
    let (mut html, mut text) = (String::new(), String::new());
    // The current message's length, kept as it grows.
    let mut units = 0;
    for block in r.blocks.into_iter().flat_map(|b| fit(b, limit)) {
        let len = tg_len(&block.text);
        if !text.is_empty() && units + 2 + len > limit {
            chunks.push(Chunk {
                html: Some(std::mem::take(&mut html)),
                plain: std::mem::take(&mut text),
            });
            units = 0;
        }
        if !text.is_empty() {
            html.push_str("\n\n");
            text.push_str("\n\n");
            units += 2;
        }
        html.push_str(&block.html);
        text.push_str(&block.text);
        units += len;
    }
    if !text.is_empty() {
        chunks.push(Chunk {
            html: Some(html),
            plain: text,
        });
    }
    chunks
}

/// Plain text messages (`format = "plain"`).
pub fn render_plain(text: &str, limit: usize) -> Vec<Chunk> {
    split_plain(text, limit)
        .into_iter()
        .map(|plain| Chunk { html: None, plain })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn html(md: &str) -> String {
        let c = render_markdown(md, MESSAGE_LIMIT);
        assert_eq!(c.len(), 1, "{c:?}");
        c[0].html.clone().unwrap()
    }

    #[test]
    fn markdown_becomes_telegram_html_with_everything_escaped() {
        assert_eq!(
            html("# Title\n\nSome **bold**, *it*, ~~gone~~ and `a<b>&c`."),
            "<b>Title</b>\n\nSome <b>bold</b>, <i>it</i>, <s>gone</s> and <code>a&lt;b&gt;&amp;c</code>."
        );
        assert_eq!(
            html("```rust\nfn main() { if a < b {} }\n```"),
            "<pre><code class=\"language-rust\">fn main() { if a &lt; b {} }</code></pre>"
        );
        assert_eq!(
            html("- one\n- two\n  1. deep\n\n3. x"),
            "• one\n• two\n  1. deep\n\n3. x"
        );
        assert_eq!(
            html("[docs](https://docs.rs/?a=1&b=\"2\") and [bad](javascript:alert(1))"),
            "<a href=\"https://docs.rs/?a=1&amp;b=&quot;2&quot;\">docs</a> and bad"
        );
        assert_eq!(
            html("> quoted\n> line"),
            "<blockquote>quoted\nline</blockquote>"
        );
        assert_eq!(
            html("<script>x</script> 5 > 3"),
            "&lt;script&gt;x&lt;/script&gt; 5 &gt; 3"
        );
        assert_eq!(
            html("| a | bb |\n|---|---|\n| 1 | 2 |"),
            "<pre>a | bb\n--+---\n1 | 2</pre>"
        );
    }

    #[test]
    fn plain_text_is_the_visible_text() {
        let c = render_markdown("**Hi** <you> & [me](https://x.y)", MESSAGE_LIMIT);
        assert_eq!(c[0].plain, "Hi <you> & me");
    }

    #[test]
    fn long_answers_are_cut_between_blocks_then_lines_then_words() {
        let para = "word ".repeat(300); // 1500 chars
        let md = format!("{para}\n\n{para}\n\n{para}");
        let c = render_markdown(&md, MESSAGE_LIMIT);
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| tg_len(&c.plain) <= MESSAGE_LIMIT));
        // Cut between paragraphs: no word is broken.
        assert!(c[0].plain.ends_with("word"));
        let one = "x".repeat(9000);
        let c = render_plain(&one, MESSAGE_LIMIT);
        assert_eq!(
            c.iter().map(|c| c.plain.len()).collect::<Vec<_>>(),
            [4096, 4096, 808]
        );
    }

    #[test]
    fn a_long_code_block_is_closed_and_reopened() {
        let code: String = (0..400)
            .map(|i| format!("let v{i} = {i} < {};\n", i + 1))
            .collect();
        let md = format!("Here:\n\n```rust\n{code}```\nDone.");
        let c = render_markdown(&md, MESSAGE_LIMIT);
        assert!(c.len() >= 3, "{}", c.len());
        for chunk in &c {
            assert!(tg_len(&chunk.plain) <= MESSAGE_LIMIT);
            let h = chunk.html.as_ref().unwrap();
            assert_eq!(
                h.matches("<pre>").count(),
                h.matches("</pre>").count(),
                "{h}"
            );
        }
        // Every line of code arrives whole, once.
        let all: String = c
            .iter()
            .map(|c| c.plain.clone())
            .collect::<Vec<_>>()
            .join("\n");
        for i in 0..400 {
            assert_eq!(
                all.matches(&format!("let v{i} = {i} < {};", i + 1)).count(),
                1
            );
        }
    }

    #[test]
    fn cuts_never_split_a_character_and_count_utf16_units() {
        // Each emoji is 2 UTF-16 units: 3000 of them are 6000 units.
        let s = "😀".repeat(3000);
        let c = render_plain(&s, MESSAGE_LIMIT);
        assert_eq!(c.len(), 2);
        assert_eq!(tg_len(&c[0].plain), 4096);
        assert_eq!(
            c[0].plain.chars().count() + c[1].plain.chars().count(),
            3000
        );
    }

    /// The text a reader sees of Telegram HTML: tags dropped, entities
    /// read.
    fn visible(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match (in_tag, c) {
                (false, '<') => in_tag = true,
                (true, '>') => in_tag = false,
                (false, c) => out.push(c),
                (true, _) => {}
            }
        }
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
    }

    #[test]
    fn a_trailing_space_inside_closing_tags_goes_from_both_twins() {
        // Was `<code>a </code>` with a plain twin of "a": a chunk measured
        // by its plain text could show more than the limit.
        let c = render_markdown("`a `", MESSAGE_LIMIT);
        assert_eq!(c[0].html.as_deref(), Some("<code>a</code>"));
        assert_eq!(c[0].plain, "a");
        let c = render_markdown("- **x** ", MESSAGE_LIMIT);
        assert_eq!(visible(c[0].html.as_deref().unwrap()), c[0].plain);
    }

    proptest! {
        #[test]
        fn the_plain_twin_is_what_the_html_shows(words in proptest::collection::vec("[a-zé😀<&*`#\\-\n]{1,12}", 0..300)) {
            let md = words.join(" ");
            for c in render_markdown(&md, 500) {
                let html = c.html.clone().unwrap_or_default();
                prop_assert_eq!(visible(&html), c.plain.clone(), "html: {}", html);
                prop_assert!(tg_len(&visible(&html)) <= 500);
            }
        }

        #[test]
        fn every_chunk_fits_and_no_text_is_lost(words in proptest::collection::vec("[a-zé😀<&*`#\\-\n]{1,12}", 0..1500)) {
            let md = words.join(" ");
            let chunks = render_markdown(&md, 500);
            for c in &chunks {
                prop_assert!(tg_len(&c.plain) <= 500);
                prop_assert!(!c.plain.trim().is_empty());
            }
            let plain = render_plain(&md, 500);
            let joined: String = plain.iter().map(|c| c.plain.as_str()).collect::<String>();
            let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            prop_assert_eq!(squash(&joined), squash(&md));
        }
    }
}
