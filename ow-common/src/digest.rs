//! SHA-256 digests as lowercase hex: content addresses, artifact checks,
//! engine compatibility hashes.

use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A [`std::hash::Hasher`] that feeds SHA-256, so that any `Hash` value
/// (wasmtime's compatibility hash, for one) can be turned into a digest
/// that is stable from one process to the next on the same platform.
#[derive(Default)]
pub struct Sha256Hasher(Sha256);

impl Sha256Hasher {
    /// The digest of everything hashed so far, as lowercase hex.
    pub fn hex(self) -> String {
        format!("{:x}", self.0.finalize())
    }
}

impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Not a 64-bit hash: use [`Sha256Hasher::hex`].
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    #[test]
    fn digests_are_the_standard_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let hash = |v: &str| {
            let mut h = Sha256Hasher::default();
            v.hash(&mut h);
            h.hex()
        };
        assert_eq!(hash("x"), hash("x"));
        assert_ne!(hash("x"), hash("y"));
    }
}
