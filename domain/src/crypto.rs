//! Secrets at rest and in memory.
//!
//! [`Envelope`] seals secrets with AES-256-GCM under the master key (the key-encryption key of
//! DESIGN.md §5). A sealed value is `0x01 ‖ key id (8 bytes) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`;
//! the key id is the first 8 bytes of SHA-256 over the key, so a value sealed under another key is
//! recognised as such instead of failing as "corrupt". The additional authenticated data binds every
//! ciphertext to its tenant, table, column and row: a value copied into another row or tenant
//! fails to open.
//!
//! [`Secret`] wraps a plaintext secret in memory: its `Debug` prints `[redacted]`, it does not
//! implement `Serialize`, and its bytes are only reachable through [`Secret::expose`].

use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::TenantId;

const FORMAT_V1: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const AAD_DOMAIN: &str = "switchboard/v1";

/// A plaintext secret held in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The plaintext. Call it only where the value leaves for its one legitimate use.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four characters, for "which secret is this" hints (`{"set": true, "last4": …}`).
    /// Secrets shorter than 12 characters show none: four characters of a short secret are too much.
    #[must_use]
    pub fn last4(&self) -> String {
        let n = self.0.chars().count();
        if n < 12 {
            return String::new();
        }
        self.0.chars().skip(n - 4).collect()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Where a sealed value lives; it becomes the AEAD's additional data.
#[derive(Clone, Copy, Debug)]
pub struct SealContext<'a> {
    pub tenant: TenantId,
    pub table: &'a str,
    pub column: &'a str,
    pub row: uuid::Uuid,
}

impl SealContext<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(96);
        for part in [
            AAD_DOMAIN.as_bytes(),
            self.tenant.0.as_bytes(),
            self.table.as_bytes(),
            self.column.as_bytes(),
            self.row.as_bytes(),
        ] {
            // Length-prefixed, so ("ab","c") and ("a","bc") differ.
            aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            aad.extend_from_slice(part);
        }
        aad
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes of standard base64 (got {0} bytes)")]
    BadKeyLength(usize),
    #[error("the master key is not valid base64")]
    BadKeyEncoding,
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value was sealed under another master key (key id {0})")]
    UnknownKey(String),
    #[error("the sealed value does not open: tampered, or bound to another row")]
    Open,
    #[error("the system random generator failed")]
    Random,
}

/// The master key and the operations that use it.
#[derive(Clone)]
pub struct Envelope {
    key: std::sync::Arc<LessSafeKey>,
    key_id: [u8; KEY_ID_LEN],
    rng: SystemRandom,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope").field("key_id", &hex(&self.key_id)).finish_non_exhaustive()
    }
}

impl Envelope {
    /// Builds an envelope from 32 raw key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::BadKeyLength(bytes.len()));
        }
        let unbound = UnboundKey::new(&aead::AES_256_GCM, bytes).map_err(|_| CryptoError::BadKeyLength(bytes.len()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut key_id = [0u8; KEY_ID_LEN];
        for (k, d) in key_id.iter_mut().zip(digest.as_ref()) {
            *k = *d;
        }
        Ok(Self { key: std::sync::Arc::new(LessSafeKey::new(unbound)), key_id, rng: SystemRandom::new() })
    }

    /// Builds an envelope from the base64 form used by `SWITCHBOARD_MASTER_KEY` and the key file.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadKeyEncoding)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random master key in its base64 form.
    pub fn generate_base64() -> Result<String, CryptoError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| CryptoError::Random)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Hex id of the master key, safe to log.
    #[must_use]
    pub fn key_id(&self) -> String {
        hex(&self.key_id)
    }

    pub fn seal(&self, ctx: &SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + plaintext.len() + 16);
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(ctx.aad()), &mut body)
            .map_err(|_| CryptoError::Open)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn open(&self, ctx: &SealContext<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let Some((&FORMAT_V1, rest)) = sealed.split_first() else { return Err(CryptoError::Malformed) };
        let Some((key_id, rest)) = rest.split_at_checked(KEY_ID_LEN) else { return Err(CryptoError::Malformed) };
        let Some((nonce_bytes, body)) = rest.split_at_checked(NONCE_LEN) else { return Err(CryptoError::Malformed) };
        if body.len() < aead::AES_256_GCM.tag_len() {
            return Err(CryptoError::Malformed);
        }
        if key_id != self.key_id {
            return Err(CryptoError::UnknownKey(hex(key_id)));
        }
        let nonce: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| CryptoError::Malformed)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(ctx.aad()), &mut body)
            .map_err(|_| CryptoError::Open)?;
        Ok(plain.to_vec())
    }
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

/// Hex SHA-256 of `data`: how bearer-like values (states, keys) are looked up without storing them.
#[must_use]
pub fn hex_digest(data: &[u8]) -> String {
    hex(&sha256(data))
}

/// Cryptographically random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(row: uuid::Uuid) -> SealContext<'static> {
        SealContext { tenant: TenantId(uuid::Uuid::nil()), table: "mcp_servers", column: "secrets", row }
    }

    #[test]
    fn round_trips_and_fails_closed() -> Result<(), CryptoError> {
        let env = Envelope::from_bytes(&[7u8; 32])?;
        let row = uuid::Uuid::now_v7();
        let sealed = env.seal(&ctx(row), b"canary-secret")?;
        assert_eq!(env.open(&ctx(row), &sealed)?, b"canary-secret");
        assert!(!sealed.windows(6).any(|w| w == b"canary"), "plaintext leaked into the ciphertext");

        // Another row, another tenant, a flipped bit, another key: all refuse to open.
        assert_eq!(env.open(&ctx(uuid::Uuid::now_v7()), &sealed), Err(CryptoError::Open));
        let other_tenant = SealContext { tenant: TenantId::new(), ..ctx(row) };
        assert_eq!(env.open(&other_tenant, &sealed), Err(CryptoError::Open));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(env.open(&ctx(row), &flipped), Err(CryptoError::Open));
        let other_key = Envelope::from_bytes(&[8u8; 32])?;
        assert!(matches!(other_key.open(&ctx(row), &sealed), Err(CryptoError::UnknownKey(_))));
        assert_eq!(env.open(&ctx(row), &sealed[..10]), Err(CryptoError::Malformed));
        Ok(())
    }

    #[test]
    fn same_plaintext_seals_differently() -> Result<(), CryptoError> {
        let env = Envelope::from_bytes(&[1u8; 32])?;
        let row = uuid::Uuid::now_v7();
        assert_ne!(env.seal(&ctx(row), b"x")?, env.seal(&ctx(row), b"x")?);
        Ok(())
    }

    #[test]
    fn rejects_bad_keys() {
        assert_eq!(Envelope::from_bytes(&[0u8; 16]).err(), Some(CryptoError::BadKeyLength(16)));
        assert_eq!(Envelope::from_base64("not base64!").err(), Some(CryptoError::BadKeyEncoding));
        assert!(Envelope::generate_base64().and_then(|k| Envelope::from_base64(&k)).is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("sk_live_0123456789abcdef".into());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.last4(), "cdef");
        assert_eq!(Secret::new("short".into()).last4(), "");
    }
}
