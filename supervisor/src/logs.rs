//! Per-service ring buffers of captured output, for `oictl logs [-f]`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    cap: usize,
    lines: Mutex<VecDeque<String>>,
    follow: broadcast::Sender<String>,
}

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBuffer")
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

impl LogBuffer {
    pub fn new(service: &str, cap: usize) -> Self {
        LogBuffer {
            inner: Arc::new(Inner {
                service: service.to_string(),
                cap: cap.max(1),
                lines: Mutex::new(VecDeque::new()),
                follow: broadcast::channel(256).0,
            }),
        }
    }

    pub fn service(&self) -> &str {
        &self.inner.service
    }

    pub fn push(&self, line: String) {
        {
            let mut lines = self.inner.lines.lock().unwrap_or_else(|p| p.into_inner());
            if lines.len() == self.inner.cap {
                lines.pop_front();
            }
            lines.push_back(line.clone());
        }
        let _ = self.inner.follow.send(line);
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let lines = self.inner.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// New lines as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.inner.follow.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_cap_lines() {
        let b = LogBuffer::new("vault", 3);
        for i in 0..5 {
            b.push(format!("line {i}"));
        }
        assert_eq!(b.tail(10), ["line 2", "line 3", "line 4"]);
        assert_eq!(b.tail(1), ["line 4"]);
    }

    #[tokio::test]
    async fn followers_see_new_lines() {
        let b = LogBuffer::new("vault", 3);
        let mut rx = b.subscribe();
        b.push("hello".into());
        assert_eq!(rx.recv().await.unwrap(), "hello");
    }
}
