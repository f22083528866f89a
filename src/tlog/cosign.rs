//! C2SP witness cosignatures, `cosignature/v1` (c2sp.org/tlog-cosignature):
//! a witness's timestamped statement that it has seen a checkpoint and
//! checked it is consistent with every earlier one it saw.
//!
//! A cosignature is a note signature line on the checkpoint, of signature
//! type 0x04: its key id is `SHA-256(name || "\n" || 0x04 || public key)[:4]`
//! and its payload after the key id is the 72-byte
//! `timestamp (u64, big-endian) || Ed25519 signature`, the signature being
//! over
//!
//! ```text
//! cosignature/v1
//! time <timestamp, decimal>
//! <the checkpoint body, extension lines included>
//! ```
//!
//! The witness's verifier key text is `<name>+<hex8>+<base64(0x04 || public key)>`.
//! The log's own signature is checked by [`crate::tlog::note::open`], which
//! leaves cosignatures among the unverified signatures for
//! [`verify_cosignatures`].

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::error::TlogError;
use crate::tlog::note::{
    NoteSignature, format_key, is_valid_name, key_id, parse_verifier_key, verify_ed25519,
};

/// Signature type of timestamped Ed25519 witness cosignatures.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Length of a cosignature's payload after the key id.
const PAYLOAD_LEN: usize = 8 + 64;

/// The message a `cosignature/v1` signs for `body` at `timestamp`.
pub fn signed_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// A verified cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub name: String,
    /// The witness's key id.
    pub key_id: u32,
    /// When the witness cosigned, in seconds since the UNIX epoch.
    pub timestamp: u64,
}

/// A witness's signing key under its name.
#[derive(Clone)]
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignatureSigner({}+{:08x})", self.name, self.key_id)
    }
}

impl CosignatureSigner {
    /// The cosigner of `key` under `name`.
    pub fn new(name: &str, key: SigningKey) -> Result<CosignatureSigner, TlogError> {
        check_name(name)?;
        Ok(CosignatureSigner {
            name: name.to_owned(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (of signature type 0x04).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The verifier key text.
    pub fn verifier_key(&self) -> String {
        self.verifier().verifier_key()
    }

    /// The cosignature line of the checkpoint `body` at `timestamp`, ready
    /// to append to the checkpoint's note. `body` must be a checkpoint.
    pub fn sign(&self, body: &str, timestamp: u64) -> Result<String, TlogError> {
        Checkpoint::parse(body)?;
        let signature = self.key.sign(signed_message(body, timestamp).as_bytes());
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.extend_from_slice(&timestamp.to_be_bytes());
        payload.extend_from_slice(&signature.to_bytes());
        let line = NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: payload,
        };
        Ok(line.line())
    }
}

/// A witness's public key under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// The verifier of `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<CosignatureVerifier, TlogError> {
        check_name(name)?;
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, key.as_bytes()),
            key,
        })
    }

    /// Reads a verifier key text `<name>+<hex8>+<base64(0x04 || key)>`.
    pub fn parse(vkey: &str) -> Result<CosignatureVerifier, TlogError> {
        let (name, key_id, key) = parse_verifier_key(vkey, ALG_COSIGNATURE_V1)?;
        Ok(CosignatureVerifier { name, key_id, key })
    }

    /// The verifier key text.
    pub fn verifier_key(&self) -> String {
        format_key(
            &self.name,
            self.key_id,
            ALG_COSIGNATURE_V1,
            self.key.as_bytes(),
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Checks that `signature` is this witness's cosignature of the
    /// checkpoint `body`, and returns its timestamp.
    ///
    /// Errors: [`TlogError::UnknownKey`] when the line names another key,
    /// [`TlogError::Malformed`] when `body` is not a checkpoint,
    /// [`TlogError::BadSignature`] when the payload is not 72 bytes or the
    /// signature does not verify.
    pub fn verify(&self, body: &str, signature: &NoteSignature) -> Result<u64, TlogError> {
        if signature.name != self.name || signature.key_id != self.key_id {
            return Err(TlogError::UnknownKey(format!(
                "{}+{:08x} is not {}+{:08x}",
                signature.name, signature.key_id, self.name, self.key_id
            )));
        }
        Checkpoint::parse(body)?;
        let bad = || TlogError::BadSignature {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        if signature.signature.len() != PAYLOAD_LEN {
            return Err(bad());
        }
        let (time, sig) = signature
            .signature
            .split_first_chunk::<8>()
            .ok_or_else(bad)?;
        let timestamp = u64::from_be_bytes(*time);
        verify_ed25519(&self.key, signed_message(body, timestamp).as_bytes(), sig)
            .ok_or_else(bad)?;
        Ok(timestamp)
    }
}

/// The cosignatures among `signatures` (typically a
/// [`crate::tlog::note::Note`]'s unverified ones) by the `witnesses`, each
/// verified over the checkpoint `body`. Lines by other keys are ignored;
/// of several lines by one witness the first counts.
///
/// Errors: the first witness line that fails [`CosignatureVerifier::verify`].
pub fn verify_cosignatures(
    body: &str,
    signatures: &[NoteSignature],
    witnesses: &[CosignatureVerifier],
) -> Result<Vec<Cosignature>, TlogError> {
    let mut found: Vec<Cosignature> = Vec::new();
    for sig in signatures {
        let Some(witness) = witnesses
            .iter()
            .find(|w| w.name == sig.name && w.key_id == sig.key_id)
        else {
            continue;
        };
        if found
            .iter()
            .any(|c| c.name == sig.name && c.key_id == sig.key_id)
        {
            continue;
        }
        let timestamp = witness.verify(body, sig)?;
        found.push(Cosignature {
            name: sig.name.clone(),
            key_id: sig.key_id,
            timestamp,
        });
    }
    Ok(found)
}

fn check_name(name: &str) -> Result<(), TlogError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(TlogError::malformed(
            "cosignature key",
            format!("key name {name:?} is empty or holds a space, a control character or '+'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::tlog::note::{NoteSigner, NoteVerifier, open, split};

    const BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn witness() -> CosignatureSigner {
        CosignatureSigner::new("witness.example.com/w1", SigningKey::from_bytes(&[4; 32])).unwrap()
    }

    #[test]
    fn the_signed_message_is_header_time_and_body() {
        assert_eq!(
            signed_message(BODY, 1679315147),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        assert_eq!(signed_message(BODY, 0).lines().nth(1), Some("time 0"));
    }

    #[test]
    fn a_cosignature_line_is_key_id_timestamp_and_signature() {
        let w = witness();
        let key = SigningKey::from_bytes(&[4; 32]);
        // The key id with type byte 0x04, computed here from the spec.
        let mut h = Sha256::new();
        h.update(b"witness.example.com/w1\n\x04");
        h.update(key.verifying_key().as_bytes());
        let digest = h.finalize();
        let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        assert_eq!(w.key_id(), id);
        // And it differs from the same key's plain Ed25519 note key id.
        let plain = NoteSigner::new("witness.example.com/w1", key.clone()).unwrap();
        assert_ne!(plain.key_id(), id);

        let line = w.sign(BODY, 1679315147).unwrap();
        let b64 = line
            .strip_prefix("\u{2014} witness.example.com/w1 ")
            .and_then(|l| l.strip_suffix('\n'))
            .unwrap();
        let payload = BASE64.decode(b64).unwrap();
        assert_eq!(payload.len(), 4 + 8 + 64);
        assert_eq!(payload[..4], id.to_be_bytes());
        assert_eq!(payload[4..12], 1679315147u64.to_be_bytes());
        let sig = ed25519_dalek::Signature::from_bytes(payload[12..].try_into().unwrap());
        key.verifying_key()
            .verify_strict(signed_message(BODY, 1679315147).as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn verifier_key_text_uses_type_0x04() {
        let w = witness();
        let vkey = w.verifier_key();
        let (_, _, b64) = {
            let mut p = vkey.splitn(3, '+');
            (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
        };
        assert_eq!(BASE64.decode(b64).unwrap()[0], 0x04);
        assert_eq!(CosignatureVerifier::parse(&vkey).unwrap(), w.verifier());
        // A plain note key is not a cosignature key, nor the reverse.
        assert!(NoteVerifier::parse(&vkey).is_err());
        let plain = NoteSigner::new("w", SigningKey::from_bytes(&[4; 32])).unwrap();
        assert!(CosignatureVerifier::parse(&plain.verifier_key()).is_err());
    }

    #[test]
    fn a_cosigned_checkpoint_opens_and_its_cosignature_verifies() {
        let log = NoteSigner::new(
            "example.com/behind-the-sofa",
            SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let w = witness();
        let note = format!(
            "{}{}",
            log.sign(BODY).unwrap(),
            w.sign(BODY, 1679315147).unwrap()
        );
        let n = open(&note, &[log.verifier()]).unwrap();
        assert_eq!(n.unverified.len(), 1);
        let cosigs = verify_cosignatures(&n.text, &n.unverified, &[w.verifier()]).unwrap();
        assert_eq!(
            cosigs,
            [Cosignature {
                name: "witness.example.com/w1".to_owned(),
                key_id: w.key_id(),
                timestamp: 1679315147
            }]
        );
        // No witness known: nothing verified, nothing refused.
        assert!(
            verify_cosignatures(&n.text, &n.unverified, &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_cosignature_covers_the_whole_body_and_its_timestamp() {
        let w = witness();
        let v = w.verifier();
        let body = format!("{BODY}extension\n");
        let line = w.sign(&body, 7).unwrap();
        let (_, sigs) = split(&format!("{body}\n{line}")).unwrap();
        assert_eq!(v.verify(&body, &sigs[0]), Ok(7));
        assert!(matches!(
            v.verify(BODY, &sigs[0]),
            Err(TlogError::BadSignature { .. })
        ));
        let other = body.replace("extension", "extensioN");
        assert!(matches!(
            v.verify(&other, &sigs[0]),
            Err(TlogError::BadSignature { .. })
        ));
        let mut later = sigs[0].clone();
        later.signature[7] = 8;
        assert!(matches!(
            v.verify(&body, &later),
            Err(TlogError::BadSignature { .. })
        ));
        let mut short = sigs[0].clone();
        short.signature.pop();
        assert!(matches!(
            v.verify(&body, &short),
            Err(TlogError::BadSignature { .. })
        ));
        let mut renamed = sigs[0].clone();
        renamed.name = "someone.else".to_owned();
        assert!(matches!(
            v.verify(&body, &renamed),
            Err(TlogError::UnknownKey(_))
        ));
        assert!(
            verify_cosignatures(
                &body,
                std::slice::from_ref(&later),
                std::slice::from_ref(&v)
            )
            .is_err()
        );
        // The first line by a witness counts; a later repeat is not read.
        assert_eq!(
            verify_cosignatures(&body, &[sigs[0].clone(), later], &[v])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn only_checkpoints_are_cosigned() {
        let w = witness();
        assert!(w.sign("not a checkpoint\n", 1).is_err());
        assert!(CosignatureSigner::new("bad name", SigningKey::from_bytes(&[4; 32])).is_err());
    }
}
