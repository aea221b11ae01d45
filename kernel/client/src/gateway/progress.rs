//! The status message an intent keeps up to date in a chat: one line per
//! tool call, edited in place as calls start and finish, cut to what one
//! message of the chat can hold.

use oi_ipc_schema::agent::ToolCallRecord;

use crate::display::{short_args, tool_line};

#[derive(Default)]
pub struct Progress {
    /// (call id, line)
    lines: Vec<(String, String)>,
}

impl Progress {
    pub fn started(&mut self, id: &str, name: &str, arguments: &str) {
        self.lines.push((
            id.to_string(),
            format!("→ {name}({}) …", short_args(arguments)),
        ));
    }

    pub fn finished(&mut self, call: &ToolCallRecord) {
        let line = tool_line(call);
        match self.lines.iter_mut().find(|(id, _)| *id == call.id) {
            Some(l) => l.1 = line,
            None => self.lines.push((call.id.clone(), line)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The message text: a heading and the calls, the oldest left out when
    /// they would not fit in one message (`fits` says what does).
    pub fn text(&self, done: bool, fits: impl Fn(&str) -> bool) -> String {
        let head = if done { "Done:" } else { "Working…" };
        let mut shown: Vec<&str> = self.lines.iter().map(|(_, l)| l.as_str()).collect();
        let mut skipped = 0;
        loop {
            let mut t = head.to_string();
            if skipped > 0 {
                t.push_str(&format!("\n… {skipped} earlier call(s)"));
            }
            for l in &shown {
                t.push('\n');
                t.push_str(l);
            }
            if fits(&t) || shown.is_empty() {
                return t;
            }
            shown.remove(0);
            skipped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(t: &str) -> bool {
        t.chars().count() <= 4096
    }

    #[test]
    fn lines_are_replaced_when_calls_finish() {
        let mut p = Progress::default();
        p.started("c1", "web_search", r#"{"query":"rust"}"#);
        p.started("c2", "web_fetch", r#"{"url":"http://x"}"#);
        assert_eq!(
            p.text(false, fits),
            "Working…\n→ web_search(\"rust\") …\n→ web_fetch(\"http://x\") …"
        );
        p.finished(&ToolCallRecord {
            id: "c2".into(),
            name: "web_fetch".into(),
            arguments: r#"{"url":"http://x"}"#.into(),
            service: "web".into(),
            duration_ms: 1500,
            error: "HTTP 404".into(),
        });
        assert_eq!(
            p.text(true, fits),
            "Done:\n→ web_search(\"rust\") …\n→ web_fetch(\"http://x\") [1.5s] ✗ \"HTTP 404\""
        );
    }

    #[test]
    fn many_calls_still_fit_one_message() {
        let mut p = Progress::default();
        for i in 0..500 {
            p.started(
                &i.to_string(),
                "fs_read_file",
                &format!(r#"{{"path":"{}"}}"#, "x".repeat(50)),
            );
        }
        let t = p.text(false, fits);
        assert!(fits(&t));
        assert!(t.contains("earlier call(s)"));
    }
}
