//! Sealing and opening secret records.
//!
//! Each secret is encrypted with AES-256-GCM under its own subkey, derived
//! from the master key with HKDF-SHA256 and the secret's name; the name and
//! version are the associated data, and every write gets a fresh random
//! 96-bit nonce. A record is `nonce ‖ ciphertext ‖ tag`. A flipped byte, a
//! record moved to another name or version, or the wrong master key all fail
//! authentication: an error, never garbage.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
const HKDF_SALT: &[u8] = b"openintent-vault-v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the random number generator failed")]
    Random,
    #[error("a master key must be {KEY_LEN} bytes, not {0}")]
    KeyLength(usize),
    #[error(
        "record for '{name}' (version {version}) does not authenticate: it was altered, moved, or sealed under another master key"
    )]
    Unauthentic { name: String, version: u64 },
    #[error("record for '{name}' is {len} bytes, shorter than a nonce and a tag")]
    Truncated { name: String, len: usize },
}

/// The master key. Its bytes are locked in memory where the OS allows and
/// wiped when it is dropped.
pub struct MasterKey {
    bytes: Box<Zeroizing<[u8; KEY_LEN]>>,
    locked: bool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        if self.locked {
            // SAFETY: unlocking the same range that new() locked.
            unsafe {
                libc::munlock(self.bytes.as_ptr().cast(), KEY_LEN);
            }
        }
    }
}

impl MasterKey {
    fn boxed(bytes: [u8; KEY_LEN]) -> Self {
        let bytes = Box::new(Zeroizing::new(bytes));
        // SAFETY: mlock on the key's own heap allocation, which lives as
        // long as this value; failure (RLIMIT_MEMLOCK) is tolerated.
        let locked = unsafe { libc::mlock(bytes.as_ptr().cast(), KEY_LEN) } == 0;
        MasterKey { bytes, locked }
    }

    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(&mut *k)
            .map_err(|_| CryptoError::Random)?;
        Ok(Self::boxed(*k))
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; KEY_LEN] = b.try_into().map_err(|_| CryptoError::KeyLength(b.len()))?;
        Ok(Self::boxed(arr))
    }

    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    fn subkey(&self, name: &str) -> LessSafeKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(self.bytes.as_slice());
        let info = [b"secret:".as_slice(), name.as_bytes()];
        // expand() fails only for outputs longer than 255 hash lengths.
        let okm = match prk.expand(&info, &AES_256_GCM) {
            Ok(okm) => okm,
            Err(_) => unreachable!("a 32-byte HKDF output is always valid"),
        };
        LessSafeKey::new(UnboundKey::from(okm))
    }

    /// Seals `plaintext` as version `version` of secret `name`.
    pub fn seal(&self, name: &str, version: u64, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(NONCE_LEN);
        self.subkey(name)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name, version)),
                &mut body,
            )
            .map_err(|_| CryptoError::Random)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a record of secret `name`, version `version`.
    pub fn open(
        &self,
        name: &str,
        version: u64,
        record: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if record.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Truncated {
                name: name.to_string(),
                len: record.len(),
            });
        }
        let (nonce, body) = record.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated {
                name: name.to_string(),
                len: record.len(),
            })?;
        let mut buf = Zeroizing::new(body.to_vec());
        let plain_len = self
            .subkey(name)
            .open_in_place(nonce, Aad::from(aad(name, version)), &mut buf)
            .map_err(|_| CryptoError::Unauthentic {
                name: name.to_string(),
                version,
            })?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

fn aad(name: &str, version: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(name.len() + 9);
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    a.extend_from_slice(&version.to_le_bytes());
    a
}

/// Derives a master key from a passphrase (PBKDF2-HMAC-SHA256).
pub fn key_from_passphrase(
    passphrase: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<MasterKey, CryptoError> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    let iterations =
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase,
        &mut *k,
    );
    Ok(MasterKey::boxed(*k))
}

/// Fills a buffer with random bytes.
pub fn random(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = MasterKey::generate().unwrap();
        let a = k.seal("openai-api-key", 1, b"sk-test-123").unwrap();
        let b = k.seal("openai-api-key", 1, b"sk-test-123").unwrap();
        assert_ne!(a, b, "two writes must not share a nonce");
        assert_eq!(&*k.open("openai-api-key", 1, &a).unwrap(), b"sk-test-123");
        assert_eq!(&*k.open("openai-api-key", 1, &b).unwrap(), b"sk-test-123");
        assert!(!a.windows(11).any(|w| w == b"sk-test-123"));
        assert_eq!(
            &*k.open("e", 0, &k.seal("e", 0, b"").unwrap()).unwrap(),
            b""
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let k = MasterKey::generate().unwrap();
        let rec = k
            .seal("github-token", 3, b"ghp_abcdefghijklmnopqrstuvwxyz")
            .unwrap();
        for i in 0..rec.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = rec.clone();
                bad[i] ^= bit;
                assert_eq!(
                    k.open("github-token", 3, &bad),
                    Err(CryptoError::Unauthentic {
                        name: "github-token".into(),
                        version: 3
                    }),
                    "byte {i}"
                );
            }
        }
        for cut in 0..rec.len() {
            assert!(
                k.open("github-token", 3, &rec[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn swapped_records_wrong_version_and_wrong_key_fail() {
        let k = MasterKey::generate().unwrap();
        let rec = k.seal("a", 1, b"alpha").unwrap();
        assert!(
            k.open("b", 1, &rec).is_err(),
            "record moved to another name"
        );
        assert!(
            k.open("a", 2, &rec).is_err(),
            "record replayed as another version"
        );
        let other = MasterKey::generate().unwrap();
        assert!(other.open("a", 1, &rec).is_err(), "wrong master key");
    }

    #[test]
    fn passphrase_keys_depend_on_passphrase_and_salt() {
        let a = key_from_passphrase(b"correct horse", b"salt-1", 1000).unwrap();
        let b = key_from_passphrase(b"correct horse", b"salt-1", 1000).unwrap();
        let c = key_from_passphrase(b"correct horse", b"salt-2", 1000).unwrap();
        let d = key_from_passphrase(b"wrong horse", b"salt-1", 1000).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_ne!(a.bytes(), c.bytes());
        assert_ne!(a.bytes(), d.bytes());
        assert_eq!(format!("{a:?}"), "MasterKey([redacted])");
    }
}
