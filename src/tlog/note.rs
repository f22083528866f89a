//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, as
//! golang.org/x/mod/sumdb/note writes and reads them.
//!
//! A note is UTF-8 text ending in a newline, a blank line, then one
//! signature line per signer: `— <key name> <base64(key id || signature)>`.
//! The key id is the first four bytes of
//! `SHA-256(name || "\n" || 0x01 || public key)`, read big-endian.
//! Verifier keys are written `<name>+<hex key id>+<base64(0x01 || public key)>`,
//! signer keys `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
//!
//! [`open`] trusts a note only when a known key signed it, refuses it when a
//! known key's signature is bad, and hands back the signatures of unknown
//! keys untouched (witness cosignatures among them: [`crate::tlog::cosign`]).
//! Parsing is strict and never panics: a note over [`MAX_NOTE_BYTES`] or
//! with more than [`MAX_SIGNATURES`] lines is refused before any signature
//! is checked.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::tlog::error::TlogError;

/// The largest note [`open`] reads, signatures included.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// The most signature lines a note may carry (the spec asks for at least
/// 16; golang.org/x/mod/sumdb/note stops at 100).
pub const MAX_SIGNATURES: usize = 100;

/// Signature type of plain Ed25519 note signatures.
pub(crate) const ALG_ED25519: u8 = 0x01;

/// What starts every signature line: em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id (first four bytes of the line's base64 payload).
    pub key_id: u32,
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, newline included.
    pub fn line(&self) -> String {
        let mut payload = Vec::with_capacity(4 + self.signature.len());
        payload.extend_from_slice(&self.key_id.to_be_bytes());
        payload.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(payload)
        )
    }
}

/// A note whose text a known key has signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, final newline included.
    pub text: String,
    /// Signatures by known keys, all verified, one per key.
    pub signatures: Vec<NoteSignature>,
    /// Signatures by keys the caller did not name, not verified, without
    /// repeats.
    pub unverified: Vec<NoteSignature>,
}

/// An Ed25519 note verifier: a key name and a public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// The verifier of `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<NoteVerifier, TlogError> {
        check_name("verifier key", name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: key_id(name, ALG_ED25519, key.as_bytes()),
            key,
        })
    }

    /// Reads a verifier key text `<name>+<hex8>+<base64(0x01 || key)>`.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, TlogError> {
        let (name, key_id, key) = parse_verifier_key(vkey, ALG_ED25519)?;
        Ok(NoteVerifier { name, key_id, key })
    }

    /// The verifier key text.
    pub fn verifier_key(&self) -> String {
        format_key(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Checks that `signature` is this key's signature of `text`.
    ///
    /// Errors: [`TlogError::UnknownKey`] when the line names another key,
    /// [`TlogError::BadSignature`] when the signature does not verify.
    pub fn verify(&self, text: &str, signature: &NoteSignature) -> Result<(), TlogError> {
        if signature.name != self.name || signature.key_id != self.key_id {
            return Err(TlogError::UnknownKey(format!(
                "{}+{:08x} is not {}+{:08x}",
                signature.name, signature.key_id, self.name, self.key_id
            )));
        }
        verify_ed25519(&self.key, text.as_bytes(), &signature.signature).ok_or_else(|| {
            TlogError::BadSignature {
                name: self.name.clone(),
                key_id: self.key_id,
            }
        })
    }
}

/// An Ed25519 note signer: a key name and a signing key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.key_id)
    }
}

impl NoteSigner {
    /// The signer of `key` under `name`.
    pub fn new(name: &str, key: SigningKey) -> Result<NoteSigner, TlogError> {
        check_name("signer key", name)?;
        Ok(NoteSigner {
            name: name.to_owned(),
            key_id: key_id(name, ALG_ED25519, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Reads a signer key text `PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || seed)>`.
    pub fn parse(skey: &str) -> Result<NoteSigner, TlogError> {
        const WHAT: &str = "signer key";
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| TlogError::malformed(WHAT, "does not start with PRIVATE+KEY+"))?;
        let (name, key_id, seed) = parse_key_parts(WHAT, rest, ALG_ED25519)?;
        let signer = NoteSigner::new(&name, SigningKey::from_bytes(&seed))?;
        if signer.key_id != key_id {
            return Err(TlogError::malformed(WHAT, "key id does not match the key"));
        }
        Ok(signer)
    }

    /// The signer key text. It holds the private key.
    pub fn signer_key(&self) -> String {
        format!(
            "PRIVATE+KEY+{}",
            format_key(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
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

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The verifier key text.
    pub fn verifier_key(&self) -> String {
        self.verifier().verifier_key()
    }

    /// This key's signature of `text`, which must be a valid note text
    /// (ending in a newline, no control character but newline).
    pub fn signature(&self, text: &str) -> Result<NoteSignature, TlogError> {
        check_text(text)?;
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        })
    }

    /// The note of `text` signed by this key alone.
    pub fn sign(&self, text: &str) -> Result<String, TlogError> {
        let line = self.signature(text)?.line();
        let note = format!("{text}\n{line}");
        if note.len() > MAX_NOTE_BYTES {
            return Err(TlogError::malformed("note", "longer than MAX_NOTE_BYTES"));
        }
        Ok(note)
    }
}

/// Splits a note into its text and signature lines, checking the syntax of
/// c2sp.org/signed-note but no signature. Lines come in note order, with
/// repeats.
pub fn split(note: &str) -> Result<(&str, Vec<NoteSignature>), TlogError> {
    const WHAT: &str = "note";
    if note.len() > MAX_NOTE_BYTES {
        return Err(TlogError::malformed(
            WHAT,
            format!("{} bytes, over the limit of {MAX_NOTE_BYTES}", note.len()),
        ));
    }
    check_characters(WHAT, note)?;
    // The text ends at the last blank line.
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| TlogError::malformed(WHAT, "no blank line before the signatures"))?;
    let (text, rest) = note
        .split_at_checked(split + 1)
        .ok_or_else(|| TlogError::malformed(WHAT, "no blank line before the signatures"))?;
    let lines = rest
        .strip_prefix('\n')
        .and_then(|sigs| sigs.strip_suffix('\n'))
        .ok_or_else(|| TlogError::malformed(WHAT, "signature lines do not end in a newline"))?;
    let mut signatures = Vec::new();
    for line in lines.split('\n') {
        if signatures.len() == MAX_SIGNATURES {
            return Err(TlogError::malformed(
                WHAT,
                format!("more than {MAX_SIGNATURES} signatures"),
            ));
        }
        signatures.push(parse_signature_line(line)?);
    }
    Ok((text, signatures))
}

/// Opens a signed note: checks its syntax and the signature of every key in
/// `verifiers`.
///
/// Errors: [`TlogError::Malformed`] for a note not of the spec's form (or
/// two verifiers for one name and key id), [`TlogError::BadSignature`]
/// when a known key's signature fails, [`TlogError::UnknownKey`] when no
/// known key signed.
pub fn open(note: &str, verifiers: &[NoteVerifier]) -> Result<Note, TlogError> {
    let (text, lines) = split(note)?;
    let mut signatures: Vec<NoteSignature> = Vec::new();
    let mut unverified: Vec<NoteSignature> = Vec::new();
    for sig in lines {
        let mut known = verifiers
            .iter()
            .filter(|v| v.name == sig.name && v.key_id == sig.key_id);
        let Some(verifier) = known.next() else {
            if !unverified.contains(&sig) {
                unverified.push(sig);
            }
            continue;
        };
        if known.next().is_some() {
            return Err(TlogError::malformed(
                "verifier list",
                format!("two verifiers for key {}+{:08x}", sig.name, sig.key_id),
            ));
        }
        // One signature per known key counts; repeats are not read.
        if signatures
            .iter()
            .any(|s| s.name == sig.name && s.key_id == sig.key_id)
        {
            continue;
        }
        verifier.verify(text, &sig)?;
        signatures.push(sig);
    }
    if signatures.is_empty() {
        let keys: Vec<String> = unverified
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.key_id))
            .collect();
        return Err(TlogError::UnknownKey(format!(
            "the note is signed by {}",
            keys.join(", ")
        )));
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
        unverified,
    })
}

/// Whether `name` may name a key: non-empty, no Unicode space, no `+`, no
/// control character.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control())
}

/// The key id of c2sp.org/signed-note:
/// `SHA-256(name || "\n" || signature type || public key)[:4]`, big-endian.
pub(crate) fn key_id(name: &str, alg: u8, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([alg]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    let [a, b, c, d, ..] = digest;
    u32::from_be_bytes([a, b, c, d])
}

/// `<name>+<hex8>+<base64(alg || key)>`.
pub(crate) fn format_key(name: &str, key_id: u32, alg: u8, key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(alg);
    bytes.extend_from_slice(key);
    format!("{name}+{key_id:08x}+{}", BASE64.encode(bytes))
}

/// Reads a verifier key text of signature type `alg`, checking the key id
/// against the key.
pub(crate) fn parse_verifier_key(
    vkey: &str,
    alg: u8,
) -> Result<(String, u32, VerifyingKey), TlogError> {
    const WHAT: &str = "verifier key";
    let (name, key_id, key) = parse_key_parts(WHAT, vkey, alg)?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| TlogError::malformed(WHAT, "not an Ed25519 public key"))?;
    if key_id != self::key_id(&name, alg, key.as_bytes()) {
        return Err(TlogError::malformed(WHAT, "key id does not match the key"));
    }
    Ok((name, key_id, key))
}

/// Splits `<name>+<hex8>+<base64(alg || 32 bytes)>`.
fn parse_key_parts(
    what: &'static str,
    text: &str,
    alg: u8,
) -> Result<(String, u32, [u8; 32]), TlogError> {
    // Names hold no `+`; base64 may.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TlogError::malformed(what, "not of the form name+keyid+key"));
    };
    check_name(what, name)?;
    let key_id = parse_hex8(hex)
        .ok_or_else(|| TlogError::malformed(what, "key id is not 8 lower-case hex digits"))?;
    let bytes = BASE64
        .decode(b64)
        .map_err(|_| TlogError::malformed(what, "key is not canonical base64"))?;
    let Some((&ty, key)) = bytes.split_first() else {
        return Err(TlogError::malformed(what, "empty key"));
    };
    if ty != alg {
        return Err(TlogError::malformed(
            what,
            format!("signature type 0x{ty:02x}, expected 0x{alg:02x}"),
        ));
    }
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| TlogError::malformed(what, "key is not 32 bytes"))?;
    Ok((name.to_owned(), key_id, key))
}

/// Exactly eight lower-case hex digits.
fn parse_hex8(hex: &str) -> Option<u32> {
    if hex.len() != 8 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

fn check_name(what: &'static str, name: &str) -> Result<(), TlogError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(TlogError::malformed(
            what,
            format!("key name {name:?} is empty or holds a space, a control character or '+'"),
        ))
    }
}

/// A note may hold no control character but newline.
fn check_characters(what: &'static str, text: &str) -> Result<(), TlogError> {
    match text.chars().find(|&c| c < ' ' && c != '\n') {
        Some(c) => Err(TlogError::malformed(
            what,
            format!("control character {c:?}"),
        )),
        None => Ok(()),
    }
}

/// A note text ends in a newline and holds no other control character.
pub(crate) fn check_text(text: &str) -> Result<(), TlogError> {
    const WHAT: &str = "note text";
    if !text.ends_with('\n') {
        return Err(TlogError::malformed(WHAT, "does not end in a newline"));
    }
    if text.len() > MAX_NOTE_BYTES {
        return Err(TlogError::malformed(WHAT, "longer than MAX_NOTE_BYTES"));
    }
    check_characters(WHAT, text)
}

/// `— <name> <base64(key id || signature)>` (without the newline).
fn parse_signature_line(line: &str) -> Result<NoteSignature, TlogError> {
    const WHAT: &str = "note signature line";
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or_else(|| TlogError::malformed(WHAT, "does not start with an em dash and a space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| TlogError::malformed(WHAT, "no space between key name and signature"))?;
    check_name(WHAT, name)?;
    let bytes = BASE64
        .decode(b64)
        .map_err(|_| TlogError::malformed(WHAT, "signature is not canonical base64"))?;
    match bytes.split_first_chunk::<4>() {
        Some((id, signature)) if !signature.is_empty() => Ok(NoteSignature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes(*id),
            signature: signature.to_vec(),
        }),
        _ => Err(TlogError::malformed(WHAT, "signature shorter than 5 bytes")),
    }
}

/// Ed25519 `verify_strict` of a 64-byte signature; `None` when it fails.
pub(crate) fn verify_ed25519(key: &VerifyingKey, msg: &[u8], signature: &[u8]) -> Option<()> {
    let bytes: &[u8; 64] = signature.try_into().ok()?;
    let signature = ed25519_dalek::Signature::from_bytes(bytes);
    key.verify_strict(msg, &signature).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // golang.org/x/mod/sumdb/note's test keys and notes (note_test.go).
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter() -> NoteVerifier {
        NoteVerifier::parse(PETER_VKEY).unwrap()
    }

    fn enoch() -> NoteVerifier {
        NoteVerifier::parse(ENOCH_VKEY).unwrap()
    }

    /// `s` with `insert` put in at byte `at`.
    fn spliced(s: &str, at: usize, insert: &str) -> String {
        format!("{}{insert}{}", &s[..at], &s[at..])
    }

    #[test]
    fn signing_reproduces_the_go_sumdb_note_example() {
        let signer = NoteSigner::parse(PETER_SKEY).unwrap();
        assert_eq!(signer.name(), "PeterNeumann");
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.verifier_key(), PETER_VKEY);
        assert_eq!(signer.signer_key(), PETER_SKEY);
        assert_eq!(signer.sign(TEXT).unwrap(), format!("{TEXT}\n{PETER_SIG}"));
        assert!(!format!("{signer:?}").contains("AYEK"));
    }

    #[test]
    fn a_verifier_from_a_key_matches_its_text() {
        let v = peter();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.key_id(), 0xc74f20a3);
        assert_eq!(v.verifier_key(), PETER_VKEY);
        let again = NoteVerifier::new("PeterNeumann", *v.verifying_key()).unwrap();
        assert_eq!(again, v);
        assert!(NoteVerifier::new("Peter Neumann", *v.verifying_key()).is_err());
        assert!(NoteVerifier::new("", *v.verifying_key()).is_err());
        assert!(NoteVerifier::new("a+b", *v.verifying_key()).is_err());
    }

    #[test]
    fn every_mangled_verifier_or_signer_key_is_refused() {
        for key in [PETER_VKEY, PETER_SKEY] {
            let parse = |k: &str| {
                if key == PETER_VKEY {
                    NoteVerifier::parse(k).is_ok()
                } else {
                    NoteSigner::parse(k).is_ok()
                }
            };
            assert!(parse(key));
            let b = key.as_bytes();
            for i in 0..=b.len() {
                for j in i + 1..=b.len() {
                    if i != 0 || j != b.len() {
                        assert!(!parse(&key[i..j]), "{}", &key[i..j]);
                    }
                }
            }
            for i in 0..b.len() {
                let mut m = b.to_vec();
                m[i] += 1;
                let m = String::from_utf8(m).unwrap();
                assert!(!parse(&m), "{m}");
            }
        }
        // Wrong key length and unknown algorithm, each with a matching id
        // (from the Go tests).
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            )
            .is_err()
        );
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
        // Upper-case hex is not the canonical form.
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
        assert!(
            NoteVerifier::parse(
                "PeterNeumann++74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
    }

    #[test]
    fn open_verifies_known_keys_and_keeps_unknown_ones_aside() {
        let note = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let n = open(&note, &[peter()]).unwrap();
        assert_eq!(n.text, TEXT);
        assert_eq!(n.signatures.len(), 1);
        assert_eq!(n.signatures[0].name, "PeterNeumann");
        assert_eq!(n.signatures[0].key_id, 0xc74f20a3);
        assert_eq!(n.signatures[0].line(), PETER_SIG);
        assert_eq!(n.unverified.len(), 1);
        assert_eq!(n.unverified[0].line(), ENOCH_SIG);

        let n = open(&note, &[peter(), enoch()]).unwrap();
        assert_eq!(n.signatures.len(), 2);
        assert_eq!(n.signatures[1].key_id, 0xaf0cfe78);
        assert!(n.unverified.is_empty());

        assert!(matches!(open(&note, &[]), Err(TlogError::UnknownKey(_))));
    }

    #[test]
    fn open_refuses_a_bad_signature_by_a_known_key() {
        let bad = spliced(PETER_SIG, 60, "ABCD");
        assert_eq!(
            open(&format!("{TEXT}\n{bad}"), &[peter()]),
            Err(TlogError::BadSignature {
                name: "PeterNeumann".to_owned(),
                key_id: 0xc74f20a3
            })
        );
        // A known key's line of the right form but the wrong length.
        for short in ["x08go/Y=", "x08go/ZJ"] {
            let line = format!("\u{2014} PeterNeumann {short}\n");
            assert!(matches!(
                open(&format!("{TEXT}\n{line}"), &[peter()]),
                Err(TlogError::BadSignature { .. })
            ));
        }
        // The same line from an unknown key is only kept aside.
        let n = open(&format!("{TEXT}\n{bad}{ENOCH_SIG}"), &[enoch()]).unwrap();
        assert_eq!(n.unverified.len(), 1);
        // A known name under another key id is another key.
        let other_id = PETER_SIG.replace("x08g", "xxxx");
        let n = open(&format!("{TEXT}\n{other_id}{PETER_SIG}"), &[peter()]).unwrap();
        assert_eq!(n.unverified.len(), 1);
        assert_eq!(n.signatures.len(), 1);
    }

    #[test]
    fn open_drops_repeated_signatures() {
        let bad_enoch = spliced(ENOCH_SIG, 60, "ABCD");
        let note = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{bad_enoch}");
        let n = open(&note, &[peter()]).unwrap();
        assert_eq!(n.signatures.len(), 1);
        assert_eq!(n.unverified.len(), 2);
        assert_eq!(n.unverified[0].line(), ENOCH_SIG);
        assert_eq!(n.unverified[1].line(), bad_enoch);
    }

    #[test]
    fn open_refuses_ambiguous_verifiers_only_when_used() {
        let e = enoch();
        assert!(
            open(
                &format!("{TEXT}\n{ENOCH_SIG}"),
                &[e.clone(), peter(), e.clone()]
            )
            .is_err()
        );
        assert!(open(&format!("{TEXT}\n{PETER_SIG}"), &[e.clone(), peter(), e]).is_ok());
    }

    #[test]
    fn open_refuses_too_many_signatures() {
        let many = PETER_SIG.repeat(MAX_SIGNATURES + 1);
        assert!(matches!(
            open(&format!("{TEXT}\n{many}"), &[peter()]),
            Err(TlogError::Malformed { .. })
        ));
        let enough = PETER_SIG.repeat(MAX_SIGNATURES);
        assert!(open(&format!("{TEXT}\n{enough}"), &[peter()]).is_ok());
        let huge = format!("{}\n\n{PETER_SIG}", "a".repeat(MAX_NOTE_BYTES));
        assert!(matches!(
            open(&huge, &[peter()]),
            Err(TlogError::Malformed { .. })
        ));
    }

    #[test]
    fn open_refuses_malformed_notes() {
        let unterminated = &PETER_SIG[..PETER_SIG.len() - 1];
        let bad = [
            TEXT.to_owned(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{unterminated}"),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!("{TEXT}\r\n{PETER_SIG}"),
            format!(
                "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
            format!("{TEXT}\n{PETER_SIG}\n"),
            format!(
                "{TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{TEXT}\n\u{2014} PeterNeumann\n"),
            format!("{TEXT}\n\u{2014} PeterNeumann \n"),
            format!("{TEXT}\n\u{2014} PeterNeumann x08g\n"),
            format!("{TEXT}\n\u{2014} PeterNeumann x08go/Y\n"),
            format!(
                "{TEXT}\n\u{2014} PeterNeumann  x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!(
                "{TEXT}\n\u{2014} x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            String::new(),
            "\n\n".to_owned(),
        ];
        for note in bad {
            assert!(
                matches!(open(&note, &[peter()]), Err(TlogError::Malformed { .. })),
                "{note:?}"
            );
        }
    }

    #[test]
    fn text_with_blank_lines_ends_at_the_last_one() {
        let signer = NoteSigner::parse(PETER_SKEY).unwrap();
        for text in ["a\n\nb\n", "a\n\n", "\n", "\n\n\n"] {
            let note = signer.sign(text).unwrap();
            assert_eq!(open(&note, &[signer.verifier()]).unwrap().text, text);
        }
    }

    #[test]
    fn signing_refuses_text_that_cannot_be_a_note() {
        let signer = NoteSigner::parse(PETER_SKEY).unwrap();
        for text in ["", "abc", "a\tb\n", "a\rb\n"] {
            assert!(signer.sign(text).is_err(), "{text:?}");
        }
        assert!(NoteSigner::new("bad name", SigningKey::from_bytes(&[7; 32])).is_err());
    }

    /// Every parser of the library over every truncation and one-character
    /// edit of valid inputs: errors are fine, panics are not.
    #[test]
    fn parsers_never_panic_on_edited_inputs() {
        use crate::tlog::checkpoint::Checkpoint;
        use crate::tlog::cosign::CosignatureVerifier;
        use crate::tlog::tile::{Tile, parse_entry_bundle};

        let samples = [
            format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}"),
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\next\n".to_owned(),
            PETER_VKEY.to_owned(),
            PETER_SKEY.to_owned(),
            "tile/0/x001/x234/067.p/5".to_owned(),
            "tile/entries/x018/x446/x744/x073/x709/x551/615".to_owned(),
        ];
        let edits = [
            '\n', ' ', '+', '\u{2014}', '/', 'x', '0', '9', '.', 'p', '=', '\u{0}', '\u{a0}',
        ];
        let parse_all = |s: &str| {
            let _ = open(s, &[peter(), enoch()]);
            let _ = NoteVerifier::parse(s);
            let _ = NoteSigner::parse(s);
            let _ = CosignatureVerifier::parse(s);
            let _ = Checkpoint::parse(s);
            let _ = Tile::parse(s);
            let _ = parse_entry_bundle(s.as_bytes());
        };
        for sample in &samples {
            for (at, _) in sample.char_indices() {
                parse_all(&sample[..at]);
                parse_all(&sample[at..]);
                let rest = &sample[at..];
                let after = rest.chars().next().map_or(rest, |c| &rest[c.len_utf8()..]);
                for e in edits {
                    parse_all(&format!("{}{e}{after}", &sample[..at]));
                    parse_all(&format!("{}{e}{rest}", &sample[..at]));
                }
            }
        }
    }

    #[test]
    fn a_new_key_round_trips_through_its_texts() {
        let signer = NoteSigner::new("example.com/log", SigningKey::from_bytes(&[9; 32])).unwrap();
        let again = NoteSigner::parse(&signer.signer_key()).unwrap();
        assert_eq!(again.key_id(), signer.key_id());
        let v = NoteVerifier::parse(&signer.verifier_key()).unwrap();
        assert_eq!(v, signer.verifier());
        let note = again.sign("hello\n").unwrap();
        let n = open(&note, &[v]).unwrap();
        assert_eq!(n.text, "hello\n");
    }
}
