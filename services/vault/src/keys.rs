//! Where the master key lives: the OS keyring (Secret Service on Linux,
//! Keychain on macOS), a key file readable only by its owner, or a
//! passphrase (`OPENINTENT_VAULT_PASSPHRASE`) with a salt kept in the vault.
//!
//! Rotation writes the new key beside the old one first ("next"), re-encrypts
//! everything in one transaction, then promotes it; on start a leftover
//! "next" key is resolved by whichever key opens the vault.

use crate::config::KeySetting;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::crypto::{KEY_LEN, MasterKey};

pub const ENV_PASSPHRASE: &str = "OPENINTENT_VAULT_PASSPHRASE";
const KEYRING_SERVICE: &str = "openintentos";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "key file {path} has mode {mode:04o}; it must be readable only by its owner. Fix it with: chmod 600 {path}"
    )]
    FileMode { path: String, mode: u32 },
    #[error(
        "key file {path} belongs to uid {owner}, not to you (uid {uid}). Fix it with: chown {uid} {path}"
    )]
    FileOwner { path: String, owner: u32, uid: u32 },
    #[error(
        "key directory {path} has mode {mode:04o}; it must be private. Fix it with: chmod 700 {path}"
    )]
    DirMode { path: String, mode: u32 },
    #[error("key file {path}: {source}")]
    FileIo {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "key file {path} holds {len} bytes; a master key is {KEY_LEN} bytes (hex, 64 characters)"
    )]
    FileContent { path: String, len: usize },
    #[error("the OS keyring is not available: {0}")]
    Keyring(String),
    #[error("key_source = \"passphrase\" but {ENV_PASSPHRASE} is not set")]
    NoPassphrase,
    #[error("cannot generate a key: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// A place a master key can be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Keyring { account: String },
    File(PathBuf),
    Passphrase,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Keyring { .. } => write!(f, "keyring"),
            KeySource::File(p) => write!(f, "file {}", p.display()),
            KeySource::Passphrase => write!(f, "passphrase"),
        }
    }
}

fn hex(b: &[u8]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(b.len() * 2));
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn unhex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for i in (0..s.len()).step_by(2) {
        out.push(u8::from_str_radix(s.get(i..i + 2)?, 16).ok()?);
    }
    Some(out)
}

/// Picks the key source for `setting` (`auto`, `keyring`, `file`,
/// `passphrase`). `auto`: the passphrase when its variable is set, else the
/// keyring when it answers, else the key file. Returns the source and, for
/// `auto`, why the keyring was passed over.
pub fn choose(
    setting: KeySetting,
    vault_dir: &Path,
) -> Result<(KeySource, Option<String>), KeyError> {
    let account = format!("vault-master-key:{}", vault_dir.display());
    let file = KeySource::File(vault_dir.join("master.key"));
    match setting {
        KeySetting::Passphrase => {
            if std::env::var_os(ENV_PASSPHRASE).is_some() {
                Ok((KeySource::Passphrase, None))
            } else {
                Err(KeyError::NoPassphrase)
            }
        }
        KeySetting::File => Ok((file, None)),
        KeySetting::Keyring => {
            keyring_probe(&account)?;
            Ok((KeySource::Keyring { account }, None))
        }
        KeySetting::Auto => {
            if std::env::var_os(ENV_PASSPHRASE).is_some() {
                return Ok((KeySource::Passphrase, None));
            }
            match keyring_probe(&account) {
                Ok(()) => Ok((KeySource::Keyring { account }, None)),
                Err(e) => Ok((file, Some(e.to_string()))),
            }
        }
    }
}

/// Checks that the keyring answers at all (a missing entry is an answer).
fn keyring_probe(account: &str) -> Result<(), KeyError> {
    match keyring_get(account) {
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
fn keyring_entry(account: &str) -> Result<keyring::Entry, KeyError> {
    keyring::Entry::new(KEYRING_SERVICE, account).map_err(|e| KeyError::Keyring(e.to_string()))
}

/// Runs a keyring call on its own thread: the Secret Service client blocks.
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, KeyError> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| KeyError::Keyring("keyring call panicked".into()))?
}

/// The key stored under `account`, if any.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub fn keyring_get(account: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    let account = account.to_string();
    on_thread(move || {
        let entry = keyring_entry(&account)?;
        match entry.get_password() {
            Ok(p) => {
                let p = Zeroizing::new(p);
                unhex(&p)
                    .map(Some)
                    .ok_or_else(|| KeyError::Keyring("the keyring entry is not a hex key".into()))
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(KeyError::Keyring(e.to_string())),
        }
    })
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
pub fn keyring_set(account: &str, key: &MasterKey) -> Result<(), KeyError> {
    let account = account.to_string();
    let value = hex(key.bytes());
    on_thread(move || {
        keyring_entry(&account)?
            .set_password(&value)
            .map_err(|e| KeyError::Keyring(e.to_string()))
    })
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
pub fn keyring_delete(account: &str) -> Result<(), KeyError> {
    let account = account.to_string();
    on_thread(move || match keyring_entry(&account)?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(KeyError::Keyring(e.to_string())),
    })
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn keyring_get(_: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
    Err(KeyError::Keyring(
        "no keyring support on this platform".into(),
    ))
}
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn keyring_set(_: &str, _: &MasterKey) -> Result<(), KeyError> {
    Err(KeyError::Keyring(
        "no keyring support on this platform".into(),
    ))
}
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn keyring_delete(_: &str) -> Result<(), KeyError> {
    Ok(())
}

/// Creates the vault directory private to us, or checks that it is.
pub fn private_dir(dir: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::FileIo {
        path: dir.display().to_string(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let meta = fs::metadata(dir).map_err(io)?;
    let uid = nix_uid();
    if meta.uid() != uid {
        return Err(KeyError::FileOwner {
            path: dir.display().to_string(),
            owner: meta.uid(),
            uid,
        });
    }
    if meta.mode() & 0o077 != 0 {
        return Err(KeyError::DirMode {
            path: dir.display().to_string(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

fn nix_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Reads a key file after checking it is ours and private.
pub fn file_get(path: &Path) -> Result<Option<MasterKey>, KeyError> {
    let ps = path.display().to_string();
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeyError::FileIo { path: ps, source }),
    };
    let uid = nix_uid();
    if meta.uid() != uid {
        return Err(KeyError::FileOwner {
            path: ps,
            owner: meta.uid(),
            uid,
        });
    }
    if meta.mode() & 0o077 != 0 || !meta.file_type().is_file() {
        return Err(KeyError::FileMode {
            path: ps,
            mode: meta.mode() & 0o7777,
        });
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| KeyError::FileIo {
        path: ps.clone(),
        source,
    })?);
    let bytes = unhex(&text).ok_or(KeyError::FileContent {
        path: ps.clone(),
        len: text.trim().len() / 2,
    })?;
    Ok(Some(MasterKey::from_bytes(&bytes).map_err(|_| {
        KeyError::FileContent {
            path: ps,
            len: bytes.len(),
        }
    })?))
}

/// Writes a key file (0600) atomically: a temporary file, fsync, rename.
pub fn file_set(path: &Path, key: &MasterKey) -> Result<(), KeyError> {
    let ps = path.display().to_string();
    let io = |source| KeyError::FileIo {
        path: ps.clone(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(hex(key.bytes()).as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// The "next" key's place during a rotation.
pub fn next_of(source: &KeySource) -> KeySource {
    match source {
        KeySource::Keyring { account } => KeySource::Keyring {
            account: format!("{account}:next"),
        },
        KeySource::File(p) => KeySource::File(p.with_extension("next")),
        KeySource::Passphrase => KeySource::Passphrase,
    }
}

pub fn get(source: &KeySource) -> Result<Option<MasterKey>, KeyError> {
    match source {
        KeySource::Keyring { account } => match keyring_get(account)? {
            Some(b) => Ok(Some(MasterKey::from_bytes(&b)?)),
            None => Ok(None),
        },
        KeySource::File(p) => file_get(p),
        KeySource::Passphrase => Ok(None),
    }
}

pub fn set(source: &KeySource, key: &MasterKey) -> Result<(), KeyError> {
    match source {
        KeySource::Keyring { account } => keyring_set(account, key),
        KeySource::File(p) => file_set(p, key),
        KeySource::Passphrase => Ok(()),
    }
}

pub fn delete(source: &KeySource) -> Result<(), KeyError> {
    match source {
        KeySource::Keyring { account } => keyring_delete(account),
        KeySource::File(p) => match fs::remove_file(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(KeyError::FileIo {
                path: p.display().to_string(),
                source,
            }),
        },
        KeySource::Passphrase => Ok(()),
    }
}

/// Promotes the "next" key to the main place (after a rotation committed).
pub fn promote(source: &KeySource, key: &MasterKey) -> Result<(), KeyError> {
    match source {
        KeySource::File(p) => {
            let next = p.with_extension("next");
            fs::rename(&next, p).map_err(|e| KeyError::FileIo {
                path: p.display().to_string(),
                source: e,
            })
        }
        other => {
            set(other, key)?;
            delete(&next_of(other))
        }
    }
}
