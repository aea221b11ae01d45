//! Fake model providers on 127.0.0.1 for tests and benchmarks (feature
//! `fake`): a small HTTP/1.1 server that answers each request from a
//! script, in the exact wire format of OpenAI, Anthropic or Gemini,
//! including chunked SSE streams, and can misbehave on cue (status codes
//! with any headers and body, stalls before the first byte or mid-stream,
//! streams cut with or without their terminator).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod anthropic;
mod check;
pub mod gemini;
pub mod openai;
pub use check::Wire;
use tokio::net::{TcpListener, TcpStream};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A whole response with any status, headers and body.
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// A chunked `text/event-stream` (or other `content_type`) body.
    Stream {
        content_type: String,
        /// Each element is written as its own chunk, `delay` apart.
        chunks: Vec<Vec<u8>>,
        delay: Duration,
        /// After this many chunks, go silent (keeping the connection open).
        stall_after: Option<usize>,
        /// End with the chunked terminator (false: the connection is cut).
        terminate: bool,
    },
    /// Accept the request and never answer.
    Stall,
    /// A model's answer as a provider gives it in either form: `body` to
    /// a request for one body, `stream` to a request for a stream. For
    /// tests of a caller (the agent) that script what the model says, not
    /// how the wire carries it; the router's own tests script one form.
    Either {
        body: Box<Reply>,
        stream: Box<Reply>,
    },
}

impl Reply {
    pub fn either(body: Reply, stream: Reply) -> Reply {
        Reply::Either {
            body: Box::new(body),
            stream: Box::new(stream),
        }
    }
    /// The form the request asked for (only [`Reply::Either`] has two).
    fn in_form(self, stream: bool) -> Reply {
        match self {
            Reply::Either { body, stream: s } => *if stream { s } else { body },
            other => other,
        }
    }
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::Http {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }
    pub fn status(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
        Reply::Http {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
        }
    }
    /// An SSE stream of the given events (`(event name, data)`), one chunk each.
    pub fn sse(events: &[(Option<&str>, String)]) -> Reply {
        let chunks = events
            .iter()
            .map(|(name, data)| {
                let mut s = String::new();
                if let Some(n) = name {
                    s.push_str(&format!("event: {n}\n"));
                }
                s.push_str(&format!("data: {data}\n\n"));
                s.into_bytes()
            })
            .collect();
        Reply::Stream {
            content_type: "text/event-stream".into(),
            chunks,
            delay: Duration::ZERO,
            stall_after: None,
            terminate: true,
        }
    }
    /// The same stream with every chunk boundary moved: the bytes re-cut at
    /// `at` (one split of the whole body).
    pub fn resplit(self, at: usize) -> Reply {
        match self {
            Reply::Stream {
                content_type,
                chunks,
                delay,
                stall_after,
                terminate,
            } => {
                let all: Vec<u8> = chunks.concat();
                let at = at.min(all.len());
                let chunks = [all[..at].to_vec(), all[at..].to_vec()]
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .collect();
                Reply::Stream {
                    content_type,
                    chunks,
                    delay,
                    stall_after,
                    terminate,
                }
            }
            other => other,
        }
    }
    /// Byte length of a stream body.
    pub fn stream_len(&self) -> usize {
        match self {
            Reply::Stream { chunks, .. } => chunks.iter().map(Vec::len).sum(),
            _ => 0,
        }
    }
    pub fn with_delay(mut self, d: Duration) -> Reply {
        if let Reply::Stream { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
    pub fn stalling_after(mut self, n: usize) -> Reply {
        if let Reply::Stream { stall_after, .. } = &mut self {
            *stall_after = Some(n);
        }
        self
    }
    /// The stream without its chunked terminator: the connection is cut.
    pub fn cut(mut self) -> Reply {
        if let Reply::Stream { terminate, .. } = &mut self {
            *terminate = false;
        }
        self
    }
    /// Drops the last `n` events (for example the `[DONE]` terminator).
    pub fn without_last(mut self, n: usize) -> Reply {
        if let Reply::Stream { chunks, .. } = &mut self {
            let keep = chunks.len().saturating_sub(n);
            chunks.truncate(keep);
        }
        self
    }
    /// Inserts an SSE comment (keep-alive) before every event.
    pub fn with_keepalives(mut self) -> Reply {
        if let Reply::Stream { chunks, .. } = &mut self {
            *chunks = chunks
                .drain(..)
                .flat_map(|c| [b": keep-alive\n\n".to_vec(), c])
                .collect();
        }
        self
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Computes one text's vector for the embeddings endpoints.
pub type EmbedFn = Arc<dyn Fn(&str) -> Vec<f32> + Send + Sync>;

#[derive(Default)]
struct Script {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
    seen: Vec<Recorded>,
    /// Answers `/embeddings` and `:batchEmbedContents` by itself (the
    /// script queue is for chat), unless `embeddings_status` is set.
    embedder: Option<EmbedFn>,
    embeddings_failure: Option<Reply>,
    /// The API key a chat request must carry (`None`: any or none).
    key: Option<String>,
}

/// A running fake provider. Dropping it stops the server.
pub struct FakeProvider {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> std::io::Result<FakeProvider> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let script: Arc<Mutex<Script>> = Arc::default();
        let s = script.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_conn(sock, s.clone()));
            }
        });
        Ok(FakeProvider { addr, script, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` followed by `path` (`/v1`, `/v1beta`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Script) -> R) -> R {
        let mut g = match self.script.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    /// Queues answers, used in order, one per request.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.with(|s| s.queue.extend(replies));
    }
    /// Requires this API key on every chat request, in the header of its
    /// wire format (401 otherwise), as a provider does.
    pub fn expect_key(&self, key: &str) {
        self.with(|s| s.key = Some(key.to_string()));
    }
    /// The answer when the queue is empty (otherwise a 500 says so).
    pub fn set_default(&self, r: Reply) {
        self.with(|s| s.default = Some(r));
    }
    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.seen.clone())
    }
    pub fn request_count(&self) -> usize {
        self.with(|s| s.seen.len())
    }
    /// Serves the embeddings endpoints (OpenAI `/embeddings`, Gemini
    /// `:batchEmbedContents`) with `f`'s vectors.
    pub fn set_embedder(&self, f: impl Fn(&str) -> Vec<f32> + Send + Sync + 'static) {
        self.with(|s| s.embedder = Some(Arc::new(f)));
    }
    /// Answers every embeddings request with `failure` (`None`: serve
    /// them again).
    pub fn fail_embeddings(&self, failure: Option<Reply>) {
        self.with(|s| s.embeddings_failure = failure);
    }
    /// The embeddings requests received so far.
    pub fn embedding_requests(&self) -> Vec<Recorded> {
        self.with(|s| {
            s.seen
                .iter()
                .filter(|r| is_embeddings(&r.path))
                .cloned()
                .collect()
        })
    }
}

fn is_embeddings(path: &str) -> bool {
    path.ends_with("/embeddings") || path.ends_with(":batchEmbedContents")
}

/// The answer of an embeddings endpoint, in the wire format its path
/// names: the inputs are the request's `input` (OpenAI) or each request's
/// `content.parts[].text` (Gemini).
fn embeddings_reply(path: &str, body: &Value, f: &EmbedFn) -> Reply {
    if path.ends_with(":batchEmbedContents") {
        let Some(reqs) = body["requests"].as_array() else {
            return Reply::json(
                400,
                json!({"error": {"code": 400, "message": "Invalid JSON payload: 'requests' is required", "status": "INVALID_ARGUMENT"}}),
            );
        };
        let embeddings: Vec<Value> = reqs
            .iter()
            .map(|r| {
                let text: String = r["content"]["parts"]
                    .as_array()
                    .map(|ps| ps.iter().filter_map(|p| p["text"].as_str()).collect())
                    .unwrap_or_default();
                json!({"values": f(&text)})
            })
            .collect();
        return Reply::json(200, json!({"embeddings": embeddings}));
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Reply::json(
                400,
                json!({"error": {"message": "'input' must be a string or an array of strings", "type": "invalid_request_error", "param": "input", "code": null}}),
            );
        }
    };
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            tokens += t.split_whitespace().count();
            json!({"object": "embedding", "index": i, "embedding": f(t)})
        })
        .collect();
    Reply::json(
        200,
        json!({"object": "list", "data": data, "model": body["model"],
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

/// A toy "semantic" embedding for tests: words map to concepts through a
/// small synonym table (coffee ~ espresso ~ latte, car ~ vehicle, ...),
/// so paraphrases that share no word land close together, which the
/// built-in lexical embedding cannot do. 16 dimensions, unit length.
pub fn toy_semantic_embedding(text: &str) -> Vec<f32> {
    const CONCEPTS: &[&[&str]] = &[
        &[
            "coffee",
            "espresso",
            "latte",
            "cappuccino",
            "caffeine",
            "brew",
        ],
        &["car", "vehicle", "automobile", "sedan", "drive", "driving"],
        &["dog", "puppy", "canine", "hound", "pet"],
        &["doctor", "physician", "dentist", "appointment", "clinic"],
        &["flight", "plane", "airport", "fly", "airline"],
        &["birthday", "anniversary", "born"],
        &["server", "deploy", "staging", "production", "kubernetes"],
        &[
            "likes",
            "favourite",
            "favorite",
            "loves",
            "prefers",
            "enjoys",
        ],
        &["password", "credentials", "login", "passphrase"],
        &["money", "budget", "salary", "invoice", "bill"],
    ];
    let mut v = vec![0f32; 16];
    for w in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        match CONCEPTS.iter().position(|c| c.contains(&w)) {
            Some(i) => v[i] += 1.0,
            // Other words are a little noise in the rest of the space.
            None => v[10 + w.len() % 6] += 0.2,
        }
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

async fn serve_conn(mut sock: TcpStream, script: Arc<Mutex<Script>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Head.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut tmp = [0u8; 8192];
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let method = request_line.split(' ').next().unwrap_or("").to_string();
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut tmp = [0u8; 8192];
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let raw = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let reply = {
            let mut s = match script.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let parsed: Result<Value, serde_json::Error> = serde_json::from_slice(&raw);
            let body = parsed.as_ref().cloned().unwrap_or(Value::Null);
            let reply = if is_embeddings(&path) {
                match (&s.embedder, &s.embeddings_failure) {
                    (_, Some(failure)) => Some(failure.clone()),
                    (Some(f), None) => Some(embeddings_reply(&path, &body, f)),
                    (None, None) => s.queue.pop_front().or_else(|| s.default.clone()),
                }
            } else {
                // A request the provider would refuse is refused, and the
                // scripted answer stays for the next one.
                match check::chat_request(
                    &method,
                    &path,
                    &headers,
                    parsed.as_ref(),
                    s.key.as_deref(),
                ) {
                    Err(refusal) => Some(refusal),
                    Ok(stream) => s.queue.pop_front().or_else(|| s.default.clone()).map(|r| {
                        let r = r.in_form(stream);
                        check::reply_form(stream, &r).map_or_else(|refusal| refusal, |()| r)
                    }),
                }
            };
            s.seen.push(Recorded {
                path,
                headers,
                body,
            });
            reply
        };
        let reply = reply.unwrap_or_else(|| {
            Reply::json(
                500,
                json!({"error": {"message": "fake provider: script is empty"}}),
            )
        });
        if !write_reply(&mut sock, reply).await {
            return;
        }
    }
}

/// Holds the connection open, silent, until the client gives up.
async fn hold(sock: &mut TcpStream) -> bool {
    let mut tmp = [0u8; 64];
    while matches!(sock.read(&mut tmp).await, Ok(n) if n > 0) {}
    false
}

/// Writes one reply; false when the connection must end.
async fn write_reply(sock: &mut TcpStream, reply: Reply) -> bool {
    // An answer not yet put in a form (not a chat request) is one body.
    match reply.in_form(false) {
        Reply::Stall => hold(sock).await,
        // An answer inside an answer: its body, again.
        nested @ Reply::Either { .. } => Box::pin(write_reply(sock, nested)).await,
        Reply::Http {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                reason(status),
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            sock.write_all(out.as_bytes()).await.is_ok()
        }
        Reply::Stream {
            content_type,
            chunks,
            delay,
            stall_after,
            terminate,
        } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
            );
            if sock.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            for (i, c) in chunks.iter().enumerate() {
                if stall_after == Some(i) {
                    return hold(sock).await;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut frame = format!("{:x}\r\n", c.len()).into_bytes();
                frame.extend_from_slice(c);
                frame.extend_from_slice(b"\r\n");
                if sock.write_all(&frame).await.is_err() {
                    return false;
                }
            }
            if stall_after.is_some_and(|n| n >= chunks.len()) {
                return hold(sock).await;
            }
            if terminate {
                sock.write_all(b"0\r\n\r\n").await.is_ok()
            } else {
                let _ = sock.shutdown().await;
                false
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}
