//! Node keys: Ed25519 (RFC 8032) signing keys kept as PKCS#8 PEM files
//! (RFC 5958), public keys as SPKI PEM (RFC 8410), so OpenSSL, Python
//! `cryptography` and any other ecosystem read them.
//!
//! A key file is created with mode 0600 and refused when group or others can
//! read it. Key ids are blake3-derived and stable. Verification is always
//! `verify_strict` (no malleable or small-order signatures).
//!
//! # What a key signs
//!
//! A key signs only through a [`SigningContext`], a closed set, so a
//! signature over one kind of bytes can never be presented as another.
//! cpid's own artifacts are signed as `prefix || bytes`, where each prefix
//! starts with `cpid/`, names the artifact and its version, and ends in a
//! NUL byte (the record context `cpid/record/v1\0` is fixed by
//! `schema/record.md` and its vectors).
//!
//! Formats fixed by their own specification are signed exactly as that
//! specification defines, with no prefix, and cannot collide with cpid's:
//! - an RFC 9421 signature base is text whose first byte is `"` and which
//!   cannot hold a NUL (RFC 9110 §5.5 field values);
//! - a C2SP signed note's text is UTF-8 with no control character but
//!   newline, so no NUL either;
//! - a DNSSEC RRSIG signs RRSIG RDATA whose third byte is the algorithm
//!   (15 for Ed25519), where every cpid prefix has `i` (0x69).

use std::fmt;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// blake3 key-derivation context for key ids.
const KEY_ID_CONTEXT: &str = "cpid 2026 key id v1";

/// Why a key could not be made, read, written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error("not a PKCS#8 Ed25519 private key: {0}")]
    Pkcs8(String),
    #[error("not an SPKI Ed25519 public key: {0}")]
    Spki(String),
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("key file {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is readable by group or others (mode {mode:o}); run chmod 600")]
    Permissions { path: std::path::PathBuf, mode: u32 },
}

/// What is being signed: the closed set of things a cpid key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigningContext {
    /// A signed record (`schema/record.md`): `cpid/record/v1\0 || canonical bytes`.
    Record,
    /// An RFC 9421 HTTP message signature base, signed as the RFC defines.
    HttpMessage,
    /// A node's situation summary (`schema/summary.md`):
    /// `cpid/summary/v1\0 || summary bytes`.
    Summary,
    /// A C2SP signed note (a log checkpoint) or a C2SP `cosignature/v1`
    /// of one, signed as those specifications define.
    Note,
    /// A DNSSEC RRSIG's signed data (RFC 4034 §3.1.8.1), signed as RFC 8080
    /// defines (`dns::dnssec`).
    Dnssec,
}

impl SigningContext {
    /// The bytes put before the message; empty for formats whose own
    /// specification fixes the signed bytes.
    pub const fn prefix(self) -> &'static [u8] {
        match self {
            SigningContext::Record => b"cpid/record/v1\0",
            SigningContext::HttpMessage => b"",
            SigningContext::Summary => b"cpid/summary/v1\0",
            SigningContext::Note => b"",
            SigningContext::Dnssec => b"",
        }
    }

    fn message(self, msg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
        let prefix = self.prefix();
        if prefix.is_empty() {
            return std::borrow::Cow::Borrowed(msg);
        }
        let mut out = Vec::with_capacity(prefix.len() + msg.len());
        out.extend_from_slice(prefix);
        out.extend_from_slice(msg);
        std::borrow::Cow::Owned(out)
    }
}

/// A node's (or provider's) Ed25519 signing key.
pub struct NodeKey(SigningKey);

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.public().key_id())
    }
}

impl NodeKey {
    pub fn generate() -> Result<NodeKey, KeyError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(NodeKey(SigningKey::from_bytes(&secret)))
    }

    /// From the 32-byte RFC 8032 secret (test vectors).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> NodeKey {
        NodeKey(SigningKey::from_bytes(secret))
    }

    pub fn from_pkcs8_pem(pem: &str) -> Result<NodeKey, KeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(NodeKey)
            .map_err(|e| KeyError::Pkcs8(e.to_string()))
    }

    /// PKCS#8 v1 (RFC 8410 §7): the secret alone. The v2 form with the
    /// public key attached, which ed25519-dalek writes by default, is read
    /// by neither OpenSSL 3.0 nor Python `cryptography`; v1 is read by all.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        use ed25519_dalek::pkcs8::KeypairBytes;
        KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .map(|z| z.as_str().to_owned())
        .map_err(|e| KeyError::Pkcs8(e.to_string()))
    }

    /// Reads a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<NodeKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions {
                    path: path.to_owned(),
                    mode: mode & 0o777,
                });
            }
        }
        let pem = std::fs::read_to_string(path).map_err(io)?;
        NodeKey::from_pkcs8_pem(&pem)
    }

    /// Writes a new key file with mode 0600; never overwrites.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let pem = self.to_pkcs8_pem()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// Loads the key at `path`, or generates and writes one if there is none.
    pub fn load_or_generate(path: &Path) -> Result<(NodeKey, bool), KeyError> {
        if path.exists() {
            return Ok((NodeKey::load(path)?, false));
        }
        let key = NodeKey::generate()?;
        key.write_new(path)?;
        Ok((key, true))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `msg` in `context` (see the module documentation).
    pub fn sign(&self, context: SigningContext, msg: &[u8]) -> Signature {
        Signature(self.0.sign(&context.message(msg)).to_bytes())
    }

    /// The raw key, for signers of a format its own specification fixes
    /// (C2SP notes and cosignatures, which take the key to sign with);
    /// `None` for cpid's own contexts, which only [`NodeKey::sign`] signs.
    pub fn for_spec_format(&self, context: SigningContext) -> Option<SigningKey> {
        context.prefix().is_empty().then(|| self.0.clone())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::InvalidPublicKey)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn key_id(&self) -> KeyId {
        let derived = blake3::derive_key(KEY_ID_CONTEXT, &self.to_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&derived[..16]);
        KeyId(id)
    }

    pub fn to_public_pem(&self) -> String {
        // Encoding 32 known-good bytes as SPKI cannot fail.
        self.0.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    pub fn from_public_pem(pem: &str) -> Result<PublicKey, KeyError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey)
            .map_err(|e| KeyError::Spki(e.to_string()))
    }

    /// Reads a public key file: SPKI PEM, or the public half of a PKCS#8
    /// key file (so an operator can point at either). The one reader for
    /// trust anchors, admin keys and child keys.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        match PublicKey::from_public_pem(&pem) {
            Ok(key) => Ok(key),
            Err(spki) => NodeKey::from_pkcs8_pem(&pem)
                .map(|k| k.public())
                .map_err(|_| spki),
        }
    }

    /// True for a small-order key, which no honest signer has.
    pub fn is_weak(&self) -> bool {
        self.0.is_weak()
    }

    pub(crate) fn dalek(&self) -> VerifyingKey {
        self.0
    }

    /// Checks a signature made by [`NodeKey::sign`] in `context`.
    pub fn verify_strict(
        &self,
        context: SigningContext,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), KeyError> {
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        self.0
            .verify_strict(&context.message(msg), &sig)
            .map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// Lower-case hex of `bytes`, written into one buffer (no allocation per
/// byte: responses carry whole signed records this way).
pub fn to_hex(bytes: &[u8]) -> String {
    /// The lower-case hex digit of a nibble (0–15).
    fn digit(nibble: u8) -> u8 {
        match nibble {
            0..=9 => b'0' + nibble,
            _ => b'a' + (nibble - 10),
        }
    }
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.extend_from_slice(&[digit(b >> 4), digit(b & 0x0f)]);
    }
    // Only ASCII digits were written.
    String::from_utf8(out).unwrap_or_default()
}

/// A key's id: the first 16 bytes of blake3's key derivation over the public
/// key with context "cpid 2026 key id v1"; shown as lower-case hex.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct KeyId(pub [u8; 16]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem() {
        let key = NodeKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // PKCS#8 v1: version 0, no public key (48 bytes of DER).
        assert!(pem.contains("\nMC4CAQAw"), "{pem}");
        let back = NodeKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.public(), key.public());
        let public = PublicKey::from_public_pem(&key.public().to_public_pem()).unwrap();
        assert_eq!(public, key.public());
    }

    #[test]
    fn public_key_files_are_read_from_spki_or_from_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::generate().unwrap();
        let spki = dir.path().join("pub.pem");
        std::fs::write(&spki, key.public().to_public_pem()).unwrap();
        let pkcs8 = dir.path().join("key.pem");
        key.write_new(&pkcs8).unwrap();
        assert_eq!(PublicKey::load(&spki).unwrap(), key.public());
        assert_eq!(PublicKey::load(&pkcs8).unwrap(), key.public());
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a key").unwrap();
        assert!(matches!(PublicKey::load(&junk), Err(KeyError::Spki(_))));
        assert!(matches!(
            PublicKey::load(&dir.path().join("missing.pem")),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn key_file_is_created_0600_and_group_readable_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let (key, created) = NodeKey::load_or_generate(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = NodeKey::load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(again.public(), key.public());
        assert!(key.write_new(&path).is_err(), "never overwrites");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            NodeKey::load(&path),
            Err(KeyError::Permissions { .. })
        ));
    }

    #[test]
    fn signatures_verify_only_for_the_signed_message_and_key() {
        let key = NodeKey::generate().unwrap();
        let sig = key.sign(SigningContext::Record, b"hello");
        key.public()
            .verify_strict(SigningContext::Record, b"hello", &sig)
            .unwrap();
        assert!(
            key.public()
                .verify_strict(SigningContext::Record, b"hellO", &sig)
                .is_err()
        );
        assert!(
            key.public()
                .verify_strict(SigningContext::HttpMessage, b"hello", &sig)
                .is_err(),
            "a signature in one context is not valid in another"
        );
        let other = NodeKey::generate().unwrap();
        assert!(
            other
                .public()
                .verify_strict(SigningContext::Record, b"hello", &sig)
                .is_err()
        );
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(to_hex(&[]), "");
        assert_eq!(KeyId([0xab; 16]).to_string(), "ab".repeat(16));
    }

    #[test]
    fn rfc_8032_test_1_public_key() {
        // RFC 8032 §7.1 TEST 1.
        let secret: [u8; 32] =
            hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let key = NodeKey::from_secret_bytes(&secret);
        assert_eq!(
            key.public().to_bytes(),
            hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
