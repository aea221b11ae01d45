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
mod tests;
