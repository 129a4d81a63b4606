//! Chunk ids and the optional encryption: BLAKE3 (keyed when the repository is
//! encrypted, so an id reveals nothing about the data) and XChaCha20-Poly1305 with a
//! random 24-byte nonce per sealed object.
//!
//! Every key comes from the key file's secret and the repository's salt through
//! BLAKE3's key derivation mode, one context string per use.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// A chunk or object id: 32 bytes of BLAKE3.
pub type Id = [u8; 32];

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// The shortest key file accepted: 32 bytes (256 bits) of secret.
pub const MIN_SECRET_LEN: usize = 32;

/// The keys of an encrypted repository.
pub struct Keys {
    cipher: XChaCha20Poly1305,
    id_key: [u8; 32],
    /// Seed of FastCDC's gear table, so chunk boundaries reveal nothing either.
    pub chunker_seed: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

impl Keys {
    pub fn derive(secret: &[u8], salt: &[u8]) -> Keys {
        let mut material = Vec::with_capacity(salt.len() + secret.len());
        material.extend_from_slice(salt);
        material.extend_from_slice(secret);
        let master = blake3::derive_key("backup-snap 1 master key", &material);
        let enc = blake3::derive_key("backup-snap 1 encryption key", &master);
        let id_key = blake3::derive_key("backup-snap 1 chunk id key", &master);
        let seed = blake3::derive_key("backup-snap 1 chunker seed", &master);
        let mut s = [0u8; 8];
        s.copy_from_slice(&seed[..8]);
        Keys {
            cipher: XChaCha20Poly1305::new(&Key::from(enc)),
            id_key,
            chunker_seed: u64::from_le_bytes(s),
        }
    }

    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), plain)
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`Keys::seal`] made; None when it was altered or sealed with another key.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        self.cipher
            .decrypt(&XNonce::from(nonce), &sealed[NONCE_LEN..])
            .ok()
    }
}

/// The id of a chunk's plaintext: BLAKE3, keyed in an encrypted repository.
pub fn chunk_id(keys: Option<&Keys>, data: &[u8]) -> Id {
    match keys {
        Some(k) => *blake3::keyed_hash(&k.id_key, data).as_bytes(),
        None => *blake3::hash(data).as_bytes(),
    }
}

/// Fills `buf` from the operating system's random source.
pub fn random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source (getrandom) is unavailable");
}

pub fn hex(id: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(id.len() * 2);
    for b in id {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn parse_id(s: &str) -> Option<Id> {
    parse_hex(s)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = Keys::derive(&[7u8; 32], b"salt");
        let s = k.seal(b"hello");
        assert_eq!(k.open(&s).as_deref(), Some(&b"hello"[..]));
        let mut bad = s.clone();
        bad[30] ^= 1;
        assert!(k.open(&bad).is_none());
        let other = Keys::derive(&[8u8; 32], b"salt");
        assert!(other.open(&s).is_none());
        assert!(k.open(&s[..10]).is_none());
    }

    #[test]
    fn keyed_ids_differ_from_plain_ids() {
        let k = Keys::derive(&[7u8; 32], b"salt");
        assert_ne!(chunk_id(Some(&k), b"x"), chunk_id(None, b"x"));
        assert_eq!(chunk_id(None, b"x"), *blake3::hash(b"x").as_bytes());
    }

    #[test]
    fn hex_round_trip() {
        let id = chunk_id(None, b"abc");
        assert_eq!(parse_id(&hex(&id)), Some(id));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex("abc"), None);
    }
}
