//! The responses kept for conditional requests: a GET sends the stored
//! ETag as `If-None-Match`, and a 304 (which GitHub does not count against
//! the rate limit) is answered from here. Bodies are kept as GitHub sent
//! them (a parsed page takes several times its size), bounded in entries
//! and in bytes; the oldest entry goes first. Entries belong to one token:
//! another token empties the cache.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Bytes of bodies kept at most.
pub const MAX_BYTES: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct Cached {
    pub etag: String,
    pub body: Arc<[u8]>,
    pub next: Option<String>,
}

#[derive(Default)]
pub struct Cache {
    cap: usize,
    max_bytes: usize,
    bytes: usize,
    /// A digest of the token the entries were fetched with.
    owner: Vec<u8>,
    map: HashMap<String, Cached>,
    order: VecDeque<String>,
}

impl Cache {
    pub fn new(cap: usize, max_bytes: usize) -> Cache {
        Cache {
            cap,
            max_bytes,
            ..Cache::default()
        }
    }

    /// Makes the cache `owner`'s, emptying it if it was another's;
    /// whether it was.
    pub fn own(&mut self, owner: &[u8]) -> bool {
        if self.owner == owner {
            return false;
        }
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
        self.owner = owner.to_vec();
        true
    }

    pub fn get(&self, url: &str) -> Option<&Cached> {
        self.map.get(url)
    }

    pub fn put(&mut self, url: &str, c: Cached) {
        if self.cap == 0 || c.body.len() > self.max_bytes {
            return;
        }
        self.bytes += c.body.len();
        match self.map.insert(url.to_string(), c) {
            Some(old) => self.bytes -= old.body.len(),
            None => self.order.push_back(url.to_string()),
        }
        while self.map.len() > self.cap || self.bytes > self.max_bytes {
            match self.order.pop_front() {
                Some(old) => {
                    if let Some(o) = self.map.remove(&old) {
                        self.bytes -= o.body.len();
                    }
                }
                None => break,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn c(tag: &str) -> Cached {
        Cached {
            etag: tag.into(),
            body: tag.as_bytes().into(),
            next: None,
        }
    }

    #[test]
    fn bounded_oldest_first_and_per_token() {
        let mut k = Cache::new(2, 100);
        assert!(k.own(b"a"));
        k.put("u1", c("1"));
        k.put("u2", c("2"));
        k.put("u1", c("1b"));
        assert_eq!(k.get("u1").unwrap().etag, "1b", "replaced in place");
        k.put("u3", c("3"));
        assert!(k.get("u1").is_none(), "the oldest went");
        assert_eq!(k.len(), 2);
        assert!(!k.own(b"a"));
        assert_eq!(k.len(), 2);
        assert!(k.own(b"b"));
        assert!(k.is_empty(), "another token's entries are not served");
        let mut off = Cache::new(0, 100);
        off.put("u", c("x"));
        assert!(off.is_empty());
        // Bounded in bytes too: a big body pushes the oldest out, and one
        // bigger than the whole cache is not kept.
        let mut b = Cache::new(10, 10);
        b.put("a", c("aaaa"));
        b.put("b", c("bbbb"));
        b.put("c", c("cccc"));
        assert!(b.get("a").is_none() && b.get("c").is_some());
        assert_eq!(b.len(), 2);
        b.put("big", c("xxxxxxxxxxx"));
        assert!(b.get("big").is_none());
    }
}
