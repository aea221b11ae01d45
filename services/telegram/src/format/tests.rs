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
