//! Stream framing: Server-Sent Events and newline-delimited JSON.
//!
//! Both decoders keep raw bytes until a whole line has arrived and only then
//! decode it as UTF-8, so a multi-byte character split across two network
//! reads is put back together instead of being mangled or refused.

/// A framing problem in a provider's stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("line {line} of the stream is not UTF-8 ({detail})")]
    NotUtf8 { line: usize, detail: String },
    #[error("a stream line is longer than {max} bytes")]
    LineTooLong { max: usize },
}

/// Longest line accepted (a whole SSE `data:` payload can be one line).
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// Splits bytes into lines (`\n` or `\r\n`), decoding each whole line.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    lines_seen: usize,
}

impl LineSplitter {
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<String>) -> Result<(), StreamError> {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let line = std::mem::take(&mut self.buf);
            out.push(self.decode(line)?);
        }
        self.buf.extend_from_slice(rest);
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(StreamError::LineTooLong {
                max: MAX_LINE_BYTES,
            });
        }
        Ok(())
    }

    /// What is left after the last newline (a final line without one).
    pub fn finish(&mut self) -> Result<Option<String>, StreamError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let line = std::mem::take(&mut self.buf);
        self.decode(line).map(Some)
    }

    fn decode(&mut self, mut line: Vec<u8>) -> Result<String, StreamError> {
        self.lines_seen += 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|e| StreamError::NotUtf8 {
            line: self.lines_seen,
            detail: e.utf8_error().to_string(),
        })
    }
}

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty for the default (`message`).
    pub event: String,
    pub data: String,
}

/// Server-Sent Events decoder (the WHATWG rules the providers rely on:
/// `data:` lines joined with `\n`, comments (`:` keep-alives) ignored, an
/// empty line dispatches).
#[derive(Debug, Default)]
pub struct SseDecoder {
    lines: LineSplitter,
    scratch: Vec<String>,
    event: String,
    data: Option<String>,
}

impl SseDecoder {
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, StreamError> {
        let mut lines = std::mem::take(&mut self.scratch);
        self.lines.push(chunk, &mut lines)?;
        let mut out = Vec::new();
        for line in lines.drain(..) {
            self.line(&line, &mut out);
        }
        self.scratch = lines;
        Ok(out)
    }

    /// The end of the body: a last event not followed by a blank line is
    /// still dispatched.
    pub fn finish(&mut self) -> Result<Vec<SseEvent>, StreamError> {
        let mut out = Vec::new();
        if let Some(line) = self.lines.finish()? {
            self.line(&line, &mut out);
        }
        self.line("", &mut out);
        Ok(out)
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data,
                });
            }
            self.event.clear();
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = value.to_string(),
            _ => {}
        }
    }
}

/// Newline-delimited JSON decoder: each non-blank line is one document.
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    lines: LineSplitter,
}

impl NdjsonDecoder {
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, StreamError> {
        let mut out = Vec::new();
        self.lines.push(chunk, &mut out)?;
        out.retain(|l| !l.trim().is_empty());
        Ok(out)
    }

    pub fn finish(&mut self) -> Result<Vec<String>, StreamError> {
        Ok(self
            .lines
            .finish()?
            .filter(|l| !l.trim().is_empty())
            .into_iter()
            .collect())
    }
}

/// Either framing, chosen from the response's content type.
#[derive(Debug)]
pub enum Framing {
    Sse(SseDecoder),
    Ndjson(NdjsonDecoder),
}

impl Framing {
    pub fn for_content_type(content_type: &str) -> Framing {
        if content_type.contains("ndjson") || content_type.contains("jsonl") {
            Framing::Ndjson(NdjsonDecoder::default())
        } else {
            Framing::Sse(SseDecoder::default())
        }
    }

    /// Decodes a chunk into (event name, payload) pairs.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, StreamError> {
        match self {
            Framing::Sse(d) => d.push(chunk),
            Framing::Ndjson(d) => Ok(d
                .push(chunk)?
                .into_iter()
                .map(|data| SseEvent {
                    event: String::new(),
                    data,
                })
                .collect()),
        }
    }

    pub fn finish(&mut self) -> Result<Vec<SseEvent>, StreamError> {
        match self {
            Framing::Sse(d) => d.finish(),
            Framing::Ndjson(d) => Ok(d
                .finish()?
                .into_iter()
                .map(|data| SseEvent {
                    event: String::new(),
                    data,
                })
                .collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(d: &mut SseDecoder, bytes: &[u8], at: usize) -> Vec<SseEvent> {
        let mut out = d.push(&bytes[..at]).unwrap();
        out.extend(d.push(&bytes[at..]).unwrap());
        out.extend(d.finish().unwrap());
        out
    }

    #[test]
    fn cjk_and_emoji_split_at_every_byte_survive() {
        let body = "event: delta\ndata: {\"t\":\"你好，世界 🌍 añadir\"}\n\n: keep-alive\n\ndata: [DONE]\n\n";
        let bytes = body.as_bytes();
        let whole = {
            let mut d = SseDecoder::default();
            let mut o = d.push(bytes).unwrap();
            o.extend(d.finish().unwrap());
            o
        };
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].event, "delta");
        assert_eq!(whole[0].data, "{\"t\":\"你好，世界 🌍 añadir\"}");
        assert_eq!(whole[1].data, "[DONE]");
        for at in 0..=bytes.len() {
            let mut d = SseDecoder::default();
            assert_eq!(feed_split(&mut d, bytes, at), whole, "split at byte {at}");
        }
    }

    #[test]
    fn one_byte_at_a_time_and_crlf() {
        let body = "data: a\r\ndata: b\r\n\r\n:ping\r\n\r\ndata:c\r\n\r\n";
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for b in body.as_bytes() {
            out.extend(d.push(std::slice::from_ref(b)).unwrap());
        }
        out.extend(d.finish().unwrap());
        let data: Vec<&str> = out.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a\nb", "c"]);
    }

    #[test]
    fn comments_alone_dispatch_nothing() {
        let mut d = SseDecoder::default();
        assert!(d.push(b": ping\n\n: ping\n\n").unwrap().is_empty());
        assert!(d.finish().unwrap().is_empty());
    }

    #[test]
    fn last_event_without_blank_line_is_dispatched_at_end() {
        let mut d = SseDecoder::default();
        assert!(d.push(b"data: tail").unwrap().is_empty());
        assert_eq!(d.finish().unwrap()[0].data, "tail");
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let mut d = SseDecoder::default();
        let err = d.push(b"data: ok\n\ndata: \xff\xfe\n\n").unwrap_err();
        assert!(matches!(err, StreamError::NotUtf8 { line: 3, .. }), "{err}");
    }

    #[test]
    fn ndjson_split_inside_a_character() {
        let body = "{\"m\":\"日本語\"}\n\n{\"m\":\"second\"}";
        for at in 0..=body.len() {
            let mut d = NdjsonDecoder::default();
            let mut out = d.push(&body.as_bytes()[..at]).unwrap();
            out.extend(d.push(&body.as_bytes()[at..]).unwrap());
            out.extend(d.finish().unwrap());
            assert_eq!(
                out,
                ["{\"m\":\"日本語\"}", "{\"m\":\"second\"}"],
                "split at {at}"
            );
        }
    }

    #[test]
    fn framing_follows_content_type() {
        assert!(matches!(
            Framing::for_content_type("application/x-ndjson"),
            Framing::Ndjson(_)
        ));
        assert!(matches!(
            Framing::for_content_type("text/event-stream; charset=utf-8"),
            Framing::Sse(_)
        ));
    }
}
