//! The vault: encrypted records in SQLite (WAL, `synchronous=FULL`, every
//! write one transaction), a key check that tells a wrong master key from a
//! corrupt record, key rotation, and the audit log.

use crate::config::KeySetting;
use std::path::{Path, PathBuf};

use oi_ipc_schema::vault::{SecretMeta, VaultStatus};
use oi_kernel::clock::now_ms;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError, MasterKey};
use crate::keys::{self, KeyError, KeySource};

const KEY_CHECK_NAME: &str = "\0key-check";
const KEY_CHECK_PLAIN: &[u8] = b"openintent-vault-key-check";
const PBKDF2_ITERATIONS: u32 = 600_000;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("vault database {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(
        "the master key from {key_source} does not open this vault (a different key, or a different passphrase)"
    )]
    WrongKey { key_source: String },
    #[error("no secret named '{0}'")]
    NotFound(String),
    #[error("'{0}' is not a valid secret name: use 1 to 128 of a-z, 0-9, '.', '_' and '-'")]
    BadName(String),
    #[error(
        "'{0}' is not a host a secret can be bound to: use a DNS name in lower case (api.github.com), *.domain for its subdomains, or an IP address"
    )]
    BadHost(String),
}

/// The stored form of a secret's hosts: comma-separated.
fn split_hosts(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|h| !h.is_empty())
        .map(String::from)
        .collect()
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

fn now_unix() -> i64 {
    now_ms() / 1000
}

pub struct Vault {
    conn: Connection,
    path: PathBuf,
    key: MasterKey,
    source: KeySource,
    epoch: u64,
}

impl Vault {
    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T, VaultError> {
        r.map_err(|source| VaultError::Db {
            path: self.path.display().to_string(),
            source,
        })
    }

    /// Opens (or creates) the vault in `dir` with the key from `setting`.
    /// Returns the vault and, when the keyring was passed over, why.
    pub fn open(dir: &Path, setting: KeySetting) -> Result<(Vault, Option<String>), VaultError> {
        keys::private_dir(dir)?;
        let path = dir.join("vault.db");
        let dberr = |source| VaultError::Db {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(&path).map_err(dberr)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS secrets(
                 name TEXT PRIMARY KEY, version INTEGER NOT NULL, record BLOB NOT NULL,
                 len INTEGER NOT NULL, created_unix INTEGER NOT NULL, updated_unix INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS audit(
                 id INTEGER PRIMARY KEY, ts_unix_ms INTEGER NOT NULL, caller TEXT NOT NULL,
                 action TEXT NOT NULL, secret TEXT NOT NULL, outcome TEXT NOT NULL);
             INSERT OR IGNORE INTO meta(key, value) VALUES('schema', 1);",
        )
        .map_err(dberr)?;
        // Schema 2: the hosts each secret may be sent to (none for the
        // secrets of a schema 1 vault, until the user binds them).
        let has_hosts = conn
            .prepare("SELECT 1 FROM pragma_table_info('secrets') WHERE name = 'hosts'")
            .and_then(|mut s| s.exists([]))
            .map_err(dberr)?;
        if !has_hosts {
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE secrets ADD COLUMN hosts TEXT NOT NULL DEFAULT '';
                 UPDATE meta SET value = 2 WHERE key = 'schema';
                 COMMIT;",
            )
            .map_err(dberr)?;
        }
        let (source, passed_over) = keys::choose(setting, dir)?;
        let (key, epoch) = load_key(&conn, &path, &source)?;
        Ok((
            Vault {
                conn,
                path,
                key,
                source,
                epoch,
            },
            passed_over,
        ))
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    pub fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        self.get_bound(name).map(|(v, _)| v)
    }

    /// The secret and the hosts it may be sent to.
    pub fn get_bound(&self, name: &str) -> Result<(Zeroizing<Vec<u8>>, Vec<String>), VaultError> {
        let row: Option<(i64, Vec<u8>, String)> = self.db(self
            .conn
            .query_row(
                "SELECT version, record, hosts FROM secrets WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional())?;
        let (version, record, hosts) = row.ok_or_else(|| VaultError::NotFound(name.to_string()))?;
        Ok((
            self.key.open(name, version as u64, &record)?,
            split_hosts(&hosts),
        ))
    }

    /// Stores a new version of `name`, keeping the hosts it is bound to.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<SecretMeta, VaultError> {
        self.set_bound(name, value, None)
    }

    /// Stores a new version of `name`, bound to `hosts` (`None`: the hosts
    /// of the version it replaces).
    pub fn set_bound(
        &mut self,
        name: &str,
        value: &[u8],
        hosts: Option<&[String]>,
    ) -> Result<SecretMeta, VaultError> {
        if !valid_name(name) {
            return Err(VaultError::BadName(name.to_string()));
        }
        if let Some(bad) = hosts
            .into_iter()
            .flatten()
            .find(|h| !oi_ipc_schema::vault::valid_host_pattern(h))
        {
            return Err(VaultError::BadHost(bad.clone()));
        }
        let now = now_unix();
        let path = self.path.display().to_string();
        let tx = self.conn.transaction().map_err(|source| VaultError::Db {
            path: path.clone(),
            source,
        })?;
        let old: Option<(i64, i64, String)> = tx
            .query_row(
                "SELECT version, created_unix, hosts FROM secrets WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|source| VaultError::Db {
                path: path.clone(),
                source,
            })?;
        let version = old.as_ref().map(|o| o.0 as u64 + 1).unwrap_or(1);
        let created = old.as_ref().map(|o| o.1).unwrap_or(now);
        let hosts: Vec<String> = match hosts {
            Some(h) => h.to_vec(),
            None => old.map(|o| split_hosts(&o.2)).unwrap_or_default(),
        };
        let record = self.key.seal(name, version, value)?;
        tx.execute(
            "INSERT OR REPLACE INTO secrets(name, version, record, len, created_unix, updated_unix, hosts) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![name, version as i64, record, value.len() as i64, created, now, hosts.join(",")],
        )
        .and_then(|_| tx.commit())
        .map_err(|source| VaultError::Db { path, source })?;
        Ok(SecretMeta {
            name: name.to_string(),
            version,
            created_unix: created,
            updated_unix: now,
            len: value.len() as u32,
            hosts,
        })
    }

    pub fn remove(&mut self, name: &str) -> Result<(), VaultError> {
        let n = self.db(self
            .conn
            .execute("DELETE FROM secrets WHERE name = ?1", [name]))?;
        if n == 0 {
            return Err(VaultError::NotFound(name.to_string()));
        }
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<SecretMeta>, VaultError> {
        let mut stmt = self.db(self.conn.prepare(
            "SELECT name, version, created_unix, updated_unix, len, hosts FROM secrets ORDER BY name",
        ))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SecretMeta {
                    name: r.get(0)?,
                    version: r.get::<_, i64>(1)? as u64,
                    created_unix: r.get(2)?,
                    updated_unix: r.get(3)?,
                    len: r.get::<_, i64>(4)? as u32,
                    hosts: split_hosts(&r.get::<_, String>(5)?),
                })
            })
            .and_then(|it| it.collect::<Result<Vec<_>, _>>());
        self.db(rows)
    }

    /// Re-encrypts everything under a new master key. The new key is stored
    /// beside the old one first, the re-encryption is one transaction, and
    /// the new key is promoted after it commits: at no point is a committed
    /// record sealed under a key that is not stored.
    pub fn rotate(&mut self) -> Result<(), VaultError> {
        let path = self.path.display().to_string();
        let dberr = |source| VaultError::Db {
            path: path.clone(),
            source,
        };
        let (new, new_salt) = match &self.source {
            KeySource::Passphrase => {
                let mut salt = [0u8; 16];
                crypto::random(&mut salt)?;
                let pass = passphrase()?;
                (
                    crypto::key_from_passphrase(&pass, &salt, PBKDF2_ITERATIONS)?,
                    Some(salt),
                )
            }
            other => {
                let k = MasterKey::generate()?;
                keys::set(&keys::next_of(other), &k)?;
                (k, None)
            }
        };
        let epoch = self.epoch + 1;
        let tx = self.conn.transaction().map_err(dberr)?;
        {
            let rows: Vec<(String, i64, Vec<u8>)> = tx
                .prepare("SELECT name, version, record FROM secrets")
                .and_then(|mut s| {
                    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect()
                })
                .map_err(dberr)?;
            let mut update = tx
                .prepare("UPDATE secrets SET record = ?2 WHERE name = ?1")
                .map_err(dberr)?;
            for (name, version, record) in rows {
                let plain = self.key.open(&name, version as u64, &record)?;
                let sealed = new.seal(&name, version as u64, &plain)?;
                update.execute(params![name, sealed]).map_err(dberr)?;
            }
        }
        write_check(&tx, &new, epoch).map_err(dberr)?;
        if let Some(salt) = new_salt {
            tx.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES('kdf_salt', ?1)",
                [salt.to_vec()],
            )
            .map_err(dberr)?;
        }
        tx.commit().map_err(dberr)?;
        if self.source != KeySource::Passphrase {
            keys::promote(&self.source, &new)?;
        }
        self.key = new;
        self.epoch = epoch;
        Ok(())
    }

    /// Appends one audit row: who, what, which secret, the outcome. Never a value.
    pub fn audit(
        &self,
        caller: &str,
        action: &str,
        secret: &str,
        outcome: &str,
    ) -> Result<(), VaultError> {
        self.db(self.conn.execute(
            "INSERT INTO audit(ts_unix_ms, caller, action, secret, outcome) VALUES(?1, ?2, ?3, ?4, ?5)",
            params![now_ms(), if caller.is_empty() { "oictl" } else { caller }, action, secret, outcome],
        ))?;
        Ok(())
    }

    pub fn status(&self) -> Result<VaultStatus, VaultError> {
        let n: i64 = self.db(self
            .conn
            .query_row("SELECT COUNT(*) FROM secrets", [], |r| r.get(0)))?;
        Ok(VaultStatus {
            key_source: self.source.to_string(),
            secrets: n as u32,
            key_epoch: self.epoch,
        })
    }
}

fn passphrase() -> Result<Zeroizing<Vec<u8>>, VaultError> {
    std::env::var_os(keys::ENV_PASSPHRASE)
        .map(|p| Zeroizing::new(p.into_encoded_bytes()))
        .ok_or(VaultError::Key(KeyError::NoPassphrase))
}

fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

fn write_check(conn: &Connection, key: &MasterKey, epoch: u64) -> rusqlite::Result<()> {
    let check = key
        .seal(KEY_CHECK_NAME, epoch, KEY_CHECK_PLAIN)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('key_check', ?1)",
        [check],
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES('key_epoch', ?1)",
        [(epoch as i64).to_le_bytes().to_vec()],
    )?;
    Ok(())
}

fn opens(conn: &Connection, key: &MasterKey) -> rusqlite::Result<Option<u64>> {
    let (Some(check), Some(epoch)) = (meta(conn, "key_check")?, meta(conn, "key_epoch")?) else {
        return Ok(None);
    };
    let epoch = epoch
        .try_into()
        .map(|b: [u8; 8]| i64::from_le_bytes(b) as u64)
        .unwrap_or(0);
    Ok(key.open(KEY_CHECK_NAME, epoch, &check).ok().map(|_| epoch))
}

/// Finds the master key for this vault, creating one for a new vault, and
/// finishes a rotation that a crash interrupted.
fn load_key(
    conn: &Connection,
    path: &Path,
    source: &KeySource,
) -> Result<(MasterKey, u64), VaultError> {
    let dberr = |source| VaultError::Db {
        path: path.display().to_string(),
        source,
    };
    let initialised = meta(conn, "key_check").map_err(dberr)?.is_some();
    if *source == KeySource::Passphrase {
        let salt = match meta(conn, "kdf_salt").map_err(dberr)? {
            Some(s) => s,
            None => {
                let mut s = [0u8; 16];
                crypto::random(&mut s)?;
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES('kdf_salt', ?1)",
                    [s.to_vec()],
                )
                .map_err(dberr)?;
                s.to_vec()
            }
        };
        let key = crypto::key_from_passphrase(&passphrase()?, &salt, PBKDF2_ITERATIONS)?;
        if !initialised {
            write_check(conn, &key, 1).map_err(dberr)?;
            return Ok((key, 1));
        }
        return match opens(conn, &key).map_err(dberr)? {
            Some(epoch) => Ok((key, epoch)),
            None => Err(VaultError::WrongKey {
                key_source: source.to_string(),
            }),
        };
    }
    let current = keys::get(source)?;
    let next_place = keys::next_of(source);
    let next = keys::get(&next_place)?;
    if !initialised {
        let key = match current {
            Some(k) => k,
            None => {
                let k = MasterKey::generate()?;
                keys::set(source, &k)?;
                k
            }
        };
        write_check(conn, &key, 1).map_err(dberr)?;
        keys::delete(&next_place)?;
        return Ok((key, 1));
    }
    if let Some(k) = current
        && let Some(epoch) = opens(conn, &k).map_err(dberr)?
    {
        // A rotation that did not commit leaves an unused next key.
        keys::delete(&next_place)?;
        return Ok((k, epoch));
    }
    if let Some(k) = next
        && let Some(epoch) = opens(conn, &k).map_err(dberr)?
    {
        // The rotation committed; the promotion did not happen yet.
        keys::promote(source, &k)?;
        return Ok((k, epoch));
    }
    Err(VaultError::WrongKey {
        key_source: source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn open(dir: &Path) -> Vault {
        Vault::open(dir, KeySetting::File).unwrap().0
    }

    #[test]
    fn hosts_are_stored_kept_across_versions_and_migrated_in() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vault");
        {
            let mut v = open(&dir);
            let hosts = vec![
                "api.github.com".to_string(),
                "*.githubusercontent.com".to_string(),
            ];
            let meta = v.set_bound("github-token", b"ghp_1", Some(&hosts)).unwrap();
            assert_eq!(meta.hosts, hosts);
            // A new version without hosts keeps them; an empty list unbinds.
            assert_eq!(v.set("github-token", b"ghp_2").unwrap().hosts, hosts);
            assert_eq!(v.get_bound("github-token").unwrap().1, hosts);
            assert!(matches!(
                v.set_bound("x", b"1", Some(&["https://api.github.com".to_string()])),
                Err(VaultError::BadHost(_))
            ));
            v.set_bound("plain", b"p", Some(&[])).unwrap();
            assert!(v.get_bound("plain").unwrap().1.is_empty());
            // Make the file look like a schema 1 vault: no hosts column.
            v.conn.execute_batch("ALTER TABLE secrets DROP COLUMN hosts; UPDATE meta SET value = 1 WHERE key = 'schema';").unwrap();
        }
        let v = open(&dir);
        let (value, hosts) = v.get_bound("github-token").unwrap();
        assert_eq!(&*value, b"ghp_2", "no secret is lost by the migration");
        assert!(
            hosts.is_empty(),
            "a migrated secret is bound to no host until the user binds it"
        );
        assert_eq!(v.list().unwrap().len(), 2);
    }

    #[test]
    fn set_get_list_remove_and_versions() {
        let d = tempfile::tempdir().unwrap();
        let mut v = open(&d.path().join("vault"));
        assert_eq!(v.set("openai-api-key", b"sk-1").unwrap().version, 1);
        assert_eq!(v.set("openai-api-key", b"sk-2").unwrap().version, 2);
        assert_eq!(&*v.get("openai-api-key").unwrap(), b"sk-2");
        v.set("github-token", b"ghp").unwrap();
        let names: Vec<String> = v.list().unwrap().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["github-token", "openai-api-key"]);
        v.remove("github-token").unwrap();
        assert!(matches!(
            v.get("github-token"),
            Err(VaultError::NotFound(_))
        ));
        assert!(matches!(
            v.set("Bad Name", b"x"),
            Err(VaultError::BadName(_))
        ));
        // Reopened: the same key from the file, the same data.
        drop(v);
        let v = open(&d.path().join("vault"));
        assert_eq!(&*v.get("openai-api-key").unwrap(), b"sk-2");
        assert!(v.source().to_string().starts_with("file "));
    }

    #[test]
    fn tampered_stored_record_is_an_error_for_every_byte() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vault");
        let mut v = open(&dir);
        v.set("token", b"telegram-secret-value").unwrap();
        let rec: Vec<u8> = v
            .conn
            .query_row("SELECT record FROM secrets WHERE name='token'", [], |r| {
                r.get(0)
            })
            .unwrap();
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x20;
            v.conn
                .execute("UPDATE secrets SET record = ?1 WHERE name='token'", [bad])
                .unwrap();
            assert!(
                matches!(
                    v.get("token"),
                    Err(VaultError::Crypto(CryptoError::Unauthentic { .. }))
                ),
                "byte {i}"
            );
        }
        // Swapping two records (each valid under its own name) is caught too.
        v.conn
            .execute("UPDATE secrets SET record = ?1 WHERE name='token'", [rec])
            .unwrap();
        v.set("other", b"other-value").unwrap();
        v.conn.execute("UPDATE secrets SET record = (SELECT record FROM secrets WHERE name='other') WHERE name='token'", []).unwrap();
        assert!(v.get("token").is_err());
    }

    #[test]
    fn wrong_master_key_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vault");
        let mut v = open(&dir);
        v.set("a", b"1").unwrap();
        drop(v);
        keys::file_set(&dir.join("master.key"), &MasterKey::generate().unwrap()).unwrap();
        let err = Vault::open(&dir, KeySetting::File).err().unwrap();
        assert!(matches!(err, VaultError::WrongKey { .. }), "{err}");
        assert!(
            err.to_string().contains("does not open this vault"),
            "{err}"
        );
    }

    #[test]
    fn key_file_with_wrong_permissions_is_refused_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vault");
        drop(open(&dir));
        let key = dir.join("master.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Vault::open(&dir, KeySetting::File)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("has mode 0644") && err.contains(&format!("chmod 600 {}", key.display())),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = Vault::open(&dir, KeySetting::File)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("chmod 700"), "{err}");
    }

    #[test]
    fn rotation_re_encrypts_and_survives_an_interrupted_promotion() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vault");
        let mut v = open(&dir);
        for i in 0..20 {
            v.set(&format!("s{i}"), format!("value-{i}").as_bytes())
                .unwrap();
        }
        let before = std::fs::read(dir.join("master.key")).unwrap();
        v.rotate().unwrap();
        assert_ne!(std::fs::read(dir.join("master.key")).unwrap(), before);
        assert!(!dir.join("master.next").exists());
        assert_eq!(v.status().unwrap().key_epoch, 2);
        drop(v);
        let mut v = open(&dir);
        assert_eq!(&*v.get("s7").unwrap(), b"value-7");
        // A crash after the commit but before the promotion: the next key
        // is found and promoted at start.
        let old = std::fs::read(dir.join("master.key")).unwrap();
        v.rotate().unwrap();
        let new = std::fs::read(dir.join("master.key")).unwrap();
        drop(v);
        std::fs::write(dir.join("master.next"), &new).unwrap();
        std::fs::set_permissions(
            dir.join("master.next"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::write(dir.join("master.key"), &old).unwrap();
        let v = open(&dir);
        assert_eq!(&*v.get("s19").unwrap(), b"value-19");
        assert_eq!(std::fs::read(dir.join("master.key")).unwrap(), new);
        assert!(!dir.join("master.next").exists());
    }

    #[test]
    fn passphrase_vault_opens_only_with_its_passphrase() {
        // Environment is process-wide: this is the only test that sets it.
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vault");
        // SAFETY: no other thread of this test binary reads this variable.
        unsafe { std::env::set_var(keys::ENV_PASSPHRASE, "correct horse battery staple") };
        let (mut v, _) = Vault::open(&dir, KeySetting::Passphrase).unwrap();
        v.set("k", b"v").unwrap();
        v.rotate().unwrap();
        assert_eq!(&*v.get("k").unwrap(), b"v");
        drop(v);
        unsafe { std::env::set_var(keys::ENV_PASSPHRASE, "wrong") };
        assert!(matches!(
            Vault::open(&dir, KeySetting::Passphrase),
            Err(VaultError::WrongKey { .. })
        ));
        unsafe { std::env::set_var(keys::ENV_PASSPHRASE, "correct horse battery staple") };
        let (v, _) = Vault::open(&dir, KeySetting::Passphrase).unwrap();
        assert_eq!(&*v.get("k").unwrap(), b"v");
        assert!(!dir.join("master.key").exists());
        unsafe { std::env::remove_var(keys::ENV_PASSPHRASE) };
    }

    #[test]
    fn audit_rows_carry_no_values() {
        let d = tempfile::tempdir().unwrap();
        let mut v = open(&d.path().join("vault"));
        v.set("api", b"super-secret-123").unwrap();
        v.audit("llm-router", "get", "api", "ok").unwrap();
        let rows: Vec<String> = v
            .conn
            .prepare("SELECT caller||' '||action||' '||secret||' '||outcome FROM audit")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, ["llm-router get api ok"]);
    }
}
