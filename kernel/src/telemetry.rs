//! Logging set-up shared by every process: `tracing` to stderr, filtered by
//! `OPENINTENT_LOG` (or `RUST_LOG`), default `info`, with repeated
//! identical lines held back ([`Repeats`]) so one failure that recurs
//! every few seconds cannot flood the log.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = std::env::var("OPENINTENT_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(|| LimitedStderr(Vec::new()))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// How many times one line may appear within [`WINDOW`] before the rest
/// are held back.
pub const ALLOW: u32 = 5;
/// The window of [`ALLOW`].
pub const WINDOW: Duration = Duration::from_secs(60);
/// Distinct lines remembered at most (the oldest windows go first).
const REMEMBERED: usize = 512;

/// Which log lines go out: the same line (timestamp aside) at most
/// `allow` times per `window`; the next one after a window that held some
/// back says how many.
#[derive(Debug)]
pub struct Repeats {
    allow: u32,
    window: Duration,
    /// Line (without its timestamp) -> (window start, seen, held back).
    seen: HashMap<String, (Instant, u32, u32)>,
}

impl Repeats {
    pub fn new(allow: u32, window: Duration) -> Repeats {
        Repeats {
            allow,
            window,
            seen: HashMap::new(),
        }
    }

    /// What to write for `line` (one formatted event) at `now`: the line,
    /// perhaps after a note of what was held back, or nothing.
    pub fn admit(&mut self, line: &str, now: Instant) -> Option<String> {
        let key = without_timestamp(line).to_string();
        if self.seen.len() >= REMEMBERED && !self.seen.contains_key(&key) {
            let window = self.window;
            self.seen
                .retain(|_, (start, _, _)| now.duration_since(*start) < window);
            if self.seen.len() >= REMEMBERED {
                self.seen.clear();
            }
        }
        let entry = self.seen.entry(key).or_insert((now, 0, 0));
        let (start, count, held) = entry;
        if now.duration_since(*start) >= self.window {
            let said = *held;
            *entry = (now, 1, 0);
            return Some(match said {
                0 => line.to_string(),
                n => format!(
                    "(the next line was repeated {n} more times in {} s and held back)\n{line}",
                    self.window.as_secs()
                ),
            });
        }
        *count += 1;
        if *count <= self.allow {
            Some(line.to_string())
        } else {
            *held += 1;
            None
        }
    }
}

/// A formatted event without its leading timestamp.
fn without_timestamp(line: &str) -> &str {
    match line.split_once(char::is_whitespace) {
        Some((first, rest)) if first.contains('T') && first.contains(':') => rest.trim_start(),
        _ => line,
    }
}

static REPEATS: Mutex<Option<Repeats>> = Mutex::new(None);

/// Stderr through [`Repeats`]: the formatter writes one event into it,
/// and it goes out (or not) whole when dropped.
struct LimitedStderr(Vec<u8>);

impl Write for LimitedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LimitedStderr {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.0);
        let out = {
            let mut r = REPEATS.lock().unwrap_or_else(|p| p.into_inner());
            r.get_or_insert_with(|| Repeats::new(ALLOW, WINDOW))
                .admit(&line, Instant::now())
        };
        if let Some(out) = out {
            let _ = std::io::stderr().lock().write_all(out.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_is_held_back_and_counted_in_the_next_window() {
        let t0 = Instant::now();
        let mut r = Repeats::new(3, Duration::from_secs(60));
        let line =
            |ts: &str| format!("2026-12-02T01:00:{ts}.000000Z  WARN memory: embeddings failed\n");
        let out: Vec<bool> = (0..10)
            .map(|i| {
                r.admit(&line(&format!("{i:02}")), t0 + Duration::from_secs(i))
                    .is_some()
            })
            .collect();
        assert_eq!(
            out,
            [
                true, true, true, false, false, false, false, false, false, false
            ]
        );
        // Another line is not held back by the first.
        assert!(
            r.admit(
                "2026-12-02T01:00:11.0Z  INFO agent ready\n",
                t0 + Duration::from_secs(11)
            )
            .is_some()
        );
        // The next window says how many were held back, then the line.
        let next = r.admit(&line("00"), t0 + Duration::from_secs(61)).unwrap();
        assert!(
            next.starts_with("(the next line was repeated 7 more times in 60 s and held back)\n"),
            "{next}"
        );
        assert!(next.ends_with("WARN memory: embeddings failed\n"), "{next}");
        // And a window with nothing held back says nothing extra.
        let quiet = r.admit(&line("00"), t0 + Duration::from_secs(200)).unwrap();
        assert!(quiet.starts_with("2026-"), "{quiet}");
    }

    #[test]
    fn what_is_remembered_stays_bounded() {
        let t0 = Instant::now();
        let mut r = Repeats::new(1, Duration::from_secs(60));
        for i in 0..5000 {
            assert!(r.admit(&format!("line {i}\n"), t0).is_some());
        }
        assert!(r.seen.len() <= REMEMBERED);
    }
}
