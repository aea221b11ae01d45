//! The audit log: every external action (each tool call, each provider
//! request) appended to one SQLite table, hash-chained.
//!
//! Each row's hash is SHA-256 over the previous row's hash and the row's
//! own fields, so editing a row, or deleting one in the middle, breaks the
//! chain at that row; `verify` names the first row where it breaks. The
//! table refuses UPDATE and DELETE by trigger, and the running kernel also
//! remembers the last row it wrote, so removing rows from the end while it
//! runs is caught too.
//!
//! Appends come from the broker's routing path, so they go through a
//! channel to one writer thread and never block routing; that thread also
//! redacts the arguments and cuts long text, so no row is ever written
//! unredacted and routing does not parse JSON.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use oi_ipc_schema::control::audit::{AuditQuery, AuditRow, AuditRows, AuditVerify};
use ring::digest::{Context, SHA256};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;
use tracing::warn;

/// Largest arguments text kept per row; longer text is cut with a note.
pub const MAX_ARGUMENTS_CHARS: usize = 4096;
/// Longest outcome text kept per row.
pub const MAX_OUTCOME_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the audit log writer has stopped")]
    Stopped,
}

/// One action to append; `arguments` and `outcome` as they came, redacted
/// and cut by [`AuditStore::append`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub ts_ms: i64,
    pub intent: String,
    pub service: String,
    pub caller: String,
    pub action: String,
    pub arguments: String,
    pub outcome: String,
    pub duration_ms: u64,
}

pub use crate::clock::now_ms;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,
    intent TEXT NOT NULL, service TEXT NOT NULL, caller TEXT NOT NULL, action TEXT NOT NULL,
    arguments TEXT NOT NULL, outcome TEXT NOT NULL, duration_ms INTEGER NOT NULL,
    prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_intent ON audit(intent, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

fn row_hash(prev: &[u8], id: i64, e: &Entry) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(prev);
    ctx.update(&id.to_le_bytes());
    ctx.update(&e.ts_ms.to_le_bytes());
    for field in [
        &e.intent,
        &e.service,
        &e.caller,
        &e.action,
        &e.arguments,
        &e.outcome,
    ] {
        ctx.update(&(field.len() as u64).to_le_bytes());
        ctx.update(field.as_bytes());
    }
    ctx.update(&e.duration_ms.to_le_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The table and the last row written.
pub struct AuditStore {
    conn: Connection,
    path: PathBuf,
    head: (i64, Vec<u8>),
}

impl AuditStore {
    pub fn open(path: &Path) -> Result<AuditStore, AuditError> {
        let err = |source| AuditError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let head = conn
            .query_row(
                "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .map_err(err)?
            .unwrap_or((0, vec![0u8; 32]));
        Ok(AuditStore {
            conn,
            path: path.to_path_buf(),
            head,
        })
    }

    fn err(&self, source: rusqlite::Error) -> AuditError {
        AuditError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Redacts and cuts the entry, appends it as one row and returns its id.
    pub fn append(&mut self, mut e: Entry) -> Result<i64, AuditError> {
        e.arguments = redact_arguments(&e.arguments);
        e.outcome = cut(&e.outcome, MAX_OUTCOME_CHARS);
        let e = &e;
        let id = self.head.0 + 1;
        let hash = row_hash(&self.head.1, id, e);
        self.conn
            .execute(
                "INSERT INTO audit(id, ts_ms, intent, service, caller, action, arguments, outcome, duration_ms, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    id,
                    e.ts_ms,
                    e.intent,
                    e.service,
                    e.caller,
                    e.action,
                    e.arguments,
                    e.outcome,
                    e.duration_ms as i64,
                    self.head.1,
                    hash.to_vec()
                ],
            )
            .map_err(|s| self.err(s))?;
        self.head = (id, hash.to_vec());
        Ok(id)
    }

    /// A stored row: its id, its fields, the link it stored, its hash.
    fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Entry, Vec<u8>, Vec<u8>)> {
        Ok((
            r.get(0)?,
            Entry {
                ts_ms: r.get(1)?,
                intent: r.get(2)?,
                service: r.get(3)?,
                caller: r.get(4)?,
                action: r.get(5)?,
                arguments: r.get(6)?,
                outcome: r.get(7)?,
                duration_ms: r.get::<_, i64>(8)? as u64,
            },
            r.get(9)?,
            r.get(10)?,
        ))
    }

    const COLUMNS: &'static str = "id, ts_ms, intent, service, caller, action, arguments, outcome, duration_ms, prev_hash, hash";

    /// Newest rows first.
    pub fn list(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, AuditError> {
        let limit = if q.limit == 0 { 100 } else { q.limit };
        let sql = format!(
            "SELECT {} FROM audit WHERE (?1 = '' OR intent = ?1) ORDER BY id DESC LIMIT ?2",
            Self::COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|s| self.err(s))?;
        let rows = stmt
            .query_map(params![q.intent, limit], Self::read_row)
            .map_err(|s| self.err(s))?
            .map(|r| {
                r.map(|(id, e, _, hash)| AuditRow {
                    id,
                    ts_ms: e.ts_ms,
                    intent: e.intent,
                    service: e.service,
                    caller: e.caller,
                    action: e.action,
                    arguments: e.arguments,
                    outcome: e.outcome,
                    duration_ms: e.duration_ms,
                    hash: hex(&hash),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|s| self.err(s))?;
        Ok(rows)
    }

    /// Recomputes the chain from the first row and reports every break.
    pub fn verify(&self) -> Result<AuditVerify, AuditError> {
        let sql = format!("SELECT {} FROM audit ORDER BY id", Self::COLUMNS);
        let mut stmt = self.conn.prepare(&sql).map_err(|s| self.err(s))?;
        let mut rows = stmt.query([]).map_err(|s| self.err(s))?;
        let mut problems = Vec::new();
        let mut prev_id = 0i64;
        let mut prev_hash = vec![0u8; 32];
        let mut count = 0u64;
        while let Some(r) = rows.next().map_err(|s| self.err(s))? {
            let (id, entry, stored_prev, stored_hash) =
                Self::read_row(r).map_err(|s| self.err(s))?;
            count += 1;
            if id != prev_id + 1 {
                problems.push(format!(
                    "rows {}..{} are missing (row {id} follows row {prev_id})",
                    prev_id + 1,
                    id - 1,
                ));
            }
            if stored_prev != prev_hash {
                problems.push(format!(
                    "row {id}: its link to the row before does not match (a row before it was changed or removed)"
                ));
            }
            if row_hash(&stored_prev, id, &entry).as_slice() != stored_hash.as_slice() {
                problems.push(format!(
                    "row {id}: its contents do not match its hash (the row was edited)"
                ));
            }
            prev_id = id;
            prev_hash = stored_hash;
        }
        if prev_id < self.head.0 {
            problems.push(format!(
                "rows {}..{} were removed from the end (this kernel wrote up to row {})",
                prev_id + 1,
                self.head.0,
                self.head.0
            ));
        } else if prev_id == self.head.0 && prev_hash != self.head.1 {
            problems.push(format!("row {prev_id}: not the row this kernel wrote last"));
        }
        Ok(AuditVerify {
            rows: count,
            problems,
        })
    }
}

enum Op {
    Append(Entry),
    List(AuditQuery, oneshot::Sender<Result<AuditRows, AuditError>>),
    Verify(oneshot::Sender<Result<AuditVerify, AuditError>>),
}

/// Handle to the writer thread. Cloning is cheap.
#[derive(Clone)]
pub struct AuditLog {
    tx: std_mpsc::Sender<Op>,
}

impl AuditLog {
    /// Opens the log (errors are reported here) and starts its writer.
    pub fn start(path: &Path) -> Result<AuditLog, AuditError> {
        let mut store = AuditStore::open(path)?;
        let (tx, rx) = std_mpsc::channel::<Op>();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                while let Ok(op) = rx.recv() {
                    match op {
                        Op::Append(e) => {
                            let action = e.action.clone();
                            if let Err(err) = store.append(e) {
                                warn!(%action, error = %err, "audit row not written");
                            }
                        }
                        Op::List(q, reply) => {
                            let _ = reply.send(store.list(&q).map(|rows| AuditRows { rows }));
                        }
                        Op::Verify(reply) => {
                            let _ = reply.send(store.verify());
                        }
                    }
                }
            })
            .map_err(|_| AuditError::Stopped)?;
        Ok(AuditLog { tx })
    }

    /// Queues a row; never blocks.
    pub fn record(&self, e: Entry) {
        let _ = self.tx.send(Op::Append(e));
    }

    /// Rows, after every row queued before this call.
    pub async fn list(&self, q: AuditQuery) -> Result<AuditRows, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::List(q, tx))
            .map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)?
    }

    pub async fn verify(&self) -> Result<AuditVerify, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Verify(tx))
            .map_err(|_| AuditError::Stopped)?;
        rx.await.map_err(|_| AuditError::Stopped)?
    }
}

/// Object keys ending in these (lower case, `-` as `_`) hold credentials.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "private_key",
    "client_secret",
    "secret_value",
];

/// Prefixes of well-known credential formats.
const SECRET_PREFIXES: &[&str] = &[
    "Bearer ",
    "Basic ",
    "sk-",
    "sk_",
    "ghp_",
    "gho_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "AKIA",
];

fn looks_secret(s: &str) -> bool {
    SECRET_PREFIXES
        .iter()
        .any(|p| s.starts_with(p) && s.len() > p.len() + 8)
}

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.to_ascii_lowercase().replace('-', "_");
                if SECRET_KEYS.iter().any(|s| key.ends_with(s)) && !v.is_null() {
                    *v = Value::String("[redacted]".into());
                } else {
                    redact_value(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) if looks_secret(s) => *s = "[redacted]".into(),
        _ => {}
    }
}

/// Arguments as they go into the log: JSON with credential-named fields
/// and credential-looking strings replaced by `[redacted]`, cut at
/// [`MAX_ARGUMENTS_CHARS`]. Text that is not JSON is kept only when it
/// does not look like a credential.
pub fn redact_arguments(text: &str) -> String {
    let redacted = match serde_json::from_str::<Value>(text) {
        Ok(mut v) => {
            redact_value(&mut v);
            v.to_string()
        }
        Err(_) if looks_secret(text.trim()) => "[redacted]".into(),
        Err(_) => text.to_string(),
    };
    cut(&redacted, MAX_ARGUMENTS_CHARS)
}

/// `text` cut at `max` characters with a note of what was left out.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}… ({} more bytes)", &text[..at], text.len() - at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> Entry {
        Entry {
            ts_ms: 1_000 + i as i64,
            intent: format!("i{}", i % 2),
            service: "fs".into(),
            caller: "agent".into(),
            action: "tool:fs_read_file".into(),
            arguments: format!("{{\"path\":\"f{i}\"}}"),
            outcome: "ok".into(),
            duration_ms: i,
        }
    }

    fn filled(dir: &Path, n: u64) -> AuditStore {
        let mut s = AuditStore::open(&dir.join("audit.db")).unwrap();
        for i in 0..n {
            s.append(entry(i)).unwrap();
        }
        s
    }

    /// Changes the table behind the store's back, as an attacker with the
    /// file would: drops the guard triggers first.
    fn tamper(dir: &Path, sql: &str) {
        let c = Connection::open(dir.join("audit.db")).unwrap();
        c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
            .unwrap();
        c.execute_batch(sql).unwrap();
    }

    #[test]
    fn an_intact_chain_verifies_and_lists_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = filled(dir.path(), 5);
        let v = s.verify().unwrap();
        assert_eq!((v.rows, v.problems.len()), (5, 0), "{:?}", v.problems);
        let rows = s
            .list(&AuditQuery {
                intent: "i1".into(),
                limit: 10,
            })
            .unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![4, 2]);
        // Reopening continues the same chain.
        drop(s);
        let mut s = AuditStore::open(&dir.path().join("audit.db")).unwrap();
        assert_eq!(s.append(entry(9)).unwrap(), 6);
        assert!(s.verify().unwrap().problems.is_empty());
    }

    #[test]
    fn update_and_delete_are_refused_by_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let s = filled(dir.path(), 2);
        let e = s
            .conn
            .execute("UPDATE audit SET outcome = 'x' WHERE id = 1", [])
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        let e = s
            .conn
            .execute("DELETE FROM audit WHERE id = 1", [])
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
    }

    #[test]
    fn an_edited_row_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = filled(dir.path(), 5);
        tamper(
            dir.path(),
            "UPDATE audit SET outcome = 'denied' WHERE id = 3",
        );
        let v = s.verify().unwrap();
        assert_eq!(
            v.problems,
            vec!["row 3: its contents do not match its hash (the row was edited)"]
        );
    }

    #[test]
    fn a_deleted_row_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = filled(dir.path(), 5);
        tamper(dir.path(), "DELETE FROM audit WHERE id = 2");
        let v = s.verify().unwrap();
        assert_eq!(v.rows, 4);
        assert!(v.problems[0].starts_with("rows 2..2 are missing"), "{v:?}");
        assert!(v.problems[1].starts_with("row 3: its link"), "{v:?}");
    }

    #[test]
    fn rows_removed_from_the_end_are_caught_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let s = filled(dir.path(), 5);
        tamper(dir.path(), "DELETE FROM audit WHERE id >= 4");
        let v = s.verify().unwrap();
        assert_eq!(
            v.problems,
            vec!["rows 4..5 were removed from the end (this kernel wrote up to row 5)"]
        );
    }

    #[test]
    fn a_rewritten_chain_with_a_forged_row_is_caught() {
        // Editing a row and recomputing its hash still breaks the next link.
        let dir = tempfile::tempdir().unwrap();
        let s = filled(dir.path(), 3);
        let mut forged = entry(1);
        forged.outcome = "forged".into();
        let prev: Vec<u8> = s
            .conn
            .query_row("SELECT hash FROM audit WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        let h = row_hash(&prev, 2, &forged);
        let c = Connection::open(dir.path().join("audit.db")).unwrap();
        c.execute_batch("DROP TRIGGER audit_no_update;").unwrap();
        c.execute(
            "UPDATE audit SET outcome = 'forged', hash = ?1 WHERE id = 2",
            params![h.to_vec()],
        )
        .unwrap();
        let v = s.verify().unwrap();
        assert_eq!(v.problems.len(), 1, "{v:?}");
        assert!(v.problems[0].starts_with("row 3: its link"), "{v:?}");
    }

    #[test]
    fn credentials_are_redacted_from_arguments() {
        let a = redact_arguments(
            r#"{"url":"https://x","headers":{"X-Api-Key":"k1234567890","Accept":"json"},"password":"hunter2hunter2","note":"Bearer abcdefghijkl","auth":{"secret":"github-token"}}"#,
        );
        let v: Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["headers"]["X-Api-Key"], "[redacted]");
        assert_eq!(v["headers"]["Accept"], "json");
        assert_eq!(v["password"], "[redacted]");
        assert_eq!(v["note"], "[redacted]");
        // A vault secret's *name* is not a credential; the audit keeps it.
        assert_eq!(v["auth"]["secret"], "github-token");
        assert_eq!(redact_arguments("sk-abcdefghijklmnop"), "[redacted]");
        let long = format!("{{\"content\":\"{}\"}}", "é".repeat(5000));
        let cut = redact_arguments(&long);
        assert!(cut.ends_with("more bytes)"), "{}", &cut[cut.len() - 40..]);
        assert!(cut.chars().count() < MAX_ARGUMENTS_CHARS + 30);
    }
}
