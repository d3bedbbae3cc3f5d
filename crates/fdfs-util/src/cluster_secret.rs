//! The optional cluster secret (`cluster_secret_file`, a fastdfs-rs
//! extension): a storage proves it knows the secret before a tracker takes
//! its JOIN or a peer storage takes its sync. The server sends a random
//! nonce (CLUSTER_CHALLENGE); the storage answers HMAC-SHA256 of a purpose
//! label and the nonce, keyed with the secret (CLUSTER_PROVE). Each nonce
//! takes one answer, so a recorded proof cannot be replayed.

use std::path::Path;
use std::sync::Arc;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Shortest secret accepted, bytes: guessing must stay out of reach.
pub const MIN_SECRET_BYTES: usize = 16;
/// Length of a challenge nonce, bytes.
pub const NONCE_BYTES: usize = 32;
/// Length of a proof (an HMAC-SHA256 tag), bytes.
pub const PROOF_BYTES: usize = 32;

/// What a proof is for; part of the MAC input, so a proof made for one
/// purpose is worthless for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A storage talking to a tracker (JOIN, REPORT_IP_CHANGED).
    TrackerJoin,
    /// A storage pushing its binlog to a peer (REPORT_SERVER_ID, SYNC_*).
    StorageSync,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::TrackerJoin => b"fastdfs-rs cluster secret v1: tracker join\0",
            Purpose::StorageSync => b"fastdfs-rs cluster secret v1: storage sync\0",
        }
    }
}

/// The shared secret. Debug never shows it.
#[derive(Clone)]
pub struct ClusterSecret {
    key: Arc<hmac::Key>,
    /// Compared in `PartialEq` (conf comparisons), never printed.
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl PartialEq for ClusterSecret {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for ClusterSecret {}

impl ClusterSecret {
    /// The secret held in `bytes`; trailing white space (the newline an
    /// editor adds) is not part of it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let secret = &bytes[..end];
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the cluster secret has {} bytes, at least {MIN_SECRET_BYTES} are needed",
                secret.len()
            ));
        }
        let fingerprint = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"fastdfs-rs cluster secret fingerprint"),
            secret,
        );
        let mut fp = [0u8; 32];
        fp.copy_from_slice(fingerprint.as_ref());
        Ok(ClusterSecret {
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret)),
            fingerprint: fp,
        })
    }

    /// Reads the secret from a file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The answer to `nonce` for `purpose`.
    pub fn prove(&self, purpose: Purpose, nonce: &[u8]) -> [u8; PROOF_BYTES] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(purpose.label());
        ctx.update(nonce);
        let mut out = [0u8; PROOF_BYTES];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Whether `proof` answers `nonce` for `purpose` (constant time).
    pub fn verify(&self, purpose: Purpose, nonce: &[u8], proof: &[u8]) -> bool {
        let mut msg = Vec::with_capacity(purpose.label().len() + nonce.len());
        msg.extend_from_slice(purpose.label());
        msg.extend_from_slice(nonce);
        hmac::verify(&self.key, &msg, proof).is_ok()
    }
}

/// One connection's side of the exchange, on the server.
#[derive(Debug, Clone, Default)]
pub struct Challenge {
    nonce: Option<[u8; NONCE_BYTES]>,
    proven: bool,
}

impl Challenge {
    /// A fresh nonce for the peer to answer; replaces any unanswered one.
    pub fn issue(&mut self) -> std::io::Result<[u8; NONCE_BYTES]> {
        let mut nonce = [0u8; NONCE_BYTES];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| std::io::Error::other("no system randomness for a nonce"))?;
        self.nonce = Some(nonce);
        Ok(nonce)
    }

    /// Checks the peer's answer. The nonce is spent whatever the outcome:
    /// one answer per challenge.
    pub fn answer(&mut self, secret: &ClusterSecret, purpose: Purpose, proof: &[u8]) -> bool {
        let Some(nonce) = self.nonce.take() else {
            return false;
        };
        let ok = secret.verify(purpose, &nonce, proof);
        self.proven |= ok;
        ok
    }

    pub fn proven(&self) -> bool {
        self.proven
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-cluster\n";

    #[test]
    fn short_secrets_are_refused_and_trailing_space_ignored() {
        assert!(ClusterSecret::from_bytes(b"short secret   \n").is_err());
        let a = ClusterSecret::from_bytes(SECRET).unwrap();
        let b = ClusterSecret::from_bytes(b"0123456789abcdef-cluster").unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            ClusterSecret::from_bytes(b"0123456789abcdef-other").unwrap()
        );
        assert_eq!(format!("{a:?}"), "ClusterSecret(..)");
    }

    #[test]
    fn a_proof_holds_for_its_nonce_purpose_and_secret_only() {
        let s = ClusterSecret::from_bytes(SECRET).unwrap();
        let other = ClusterSecret::from_bytes(b"another secret of 16+ bytes").unwrap();
        let nonce = [7u8; NONCE_BYTES];
        let proof = s.prove(Purpose::TrackerJoin, &nonce);
        assert!(s.verify(Purpose::TrackerJoin, &nonce, &proof));
        assert!(!s.verify(Purpose::StorageSync, &nonce, &proof));
        assert!(!s.verify(Purpose::TrackerJoin, &[8u8; NONCE_BYTES], &proof));
        assert!(!other.verify(Purpose::TrackerJoin, &nonce, &proof));
        assert!(!s.verify(Purpose::TrackerJoin, &nonce, &proof[..16]));
    }

    #[test]
    fn each_challenge_takes_one_answer() {
        let s = ClusterSecret::from_bytes(SECRET).unwrap();
        let mut c = Challenge::default();
        assert!(
            !c.answer(&s, Purpose::StorageSync, &[0; PROOF_BYTES]),
            "no nonce issued"
        );
        let nonce = c.issue().unwrap();
        assert!(!c.answer(&s, Purpose::StorageSync, &[0; PROOF_BYTES]));
        // The nonce is spent: the right answer now comes too late.
        assert!(!c.answer(
            &s,
            Purpose::StorageSync,
            &s.prove(Purpose::StorageSync, &nonce)
        ));
        let nonce = c.issue().unwrap();
        assert!(c.answer(
            &s,
            Purpose::StorageSync,
            &s.prove(Purpose::StorageSync, &nonce)
        ));
        assert!(c.proven());
    }
}
