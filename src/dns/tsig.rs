//! TSIG (RFC 8945) with HMAC-SHA256: what zone transfers and NOTIFY to
//! secondaries are signed with, keys in the base64 form Knot and NSD use.
//!
//! A signed message carries one TSIG RR, last in the additional section.
//! Its MAC covers (§4.3): for a response, the request's MAC (with its
//! length); the message as it was before the TSIG RR was added (original ID,
//! ARCOUNT without it); and the TSIG variables (key name and algorithm in
//! canonical form, class ANY, TTL 0, time, fudge, error, other data). The
//! messages after the first of a multi-message answer (an AXFR stream)
//! cover the previous MAC, the message and only the timers (§5.3.1).
//!
//! Parsing is strict and never panics: a TSIG that cannot be read is
//! [`TsigError::Malformed`] (FORMERR), an unknown key or algorithm
//! BADKEY, a wrong MAC BADSIG, a time outside the fudge BADTIME — the
//! errors a secondary sees from Knot.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::wire::{MAX_NAME_LEN, Reader, WireError, WireName};

/// RR type TSIG.
pub const TSIG: u16 = 250;
const CLASS_ANY: u16 = 255;
/// `hmac-sha256.` in wire form.
const HMAC_SHA256: &[u8] = b"\x0bhmac-sha256\x00";
/// The fudge cpid signs with (RFC 8945 §10 recommends 300 s).
pub const FUDGE: u16 = 300;
/// TSIG error codes (RFC 8945 §3).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;

type HmacSha256 = Hmac<Sha256>;

/// A shared key: its name and secret.
#[derive(Clone)]
pub struct TsigKey {
    name: WireName,
    /// HMAC-SHA256 keyed with the secret, cloned for each MAC.
    keyed: HmacSha256,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TsigKey({})", self.name)
    }
}

/// Why a TSIG did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsigError {
    #[error("malformed TSIG: {0}")]
    Malformed(String),
    #[error("unknown TSIG key or algorithm {0}")]
    BadKey(String),
    #[error("TSIG MAC does not verify")]
    BadSig,
    #[error("TSIG time {signed} is more than {fudge} s from {now}")]
    BadTime { signed: u64, fudge: u16, now: u64 },
}

impl TsigError {
    /// A short fixed name, for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            TsigError::Malformed(_) => "formerr",
            TsigError::BadKey(_) => "badkey",
            TsigError::BadSig => "badsig",
            TsigError::BadTime { .. } => "badtime",
        }
    }

    /// The TSIG error code this refusal is answered with (0 for a
    /// malformed message, which is FORMERR instead).
    pub fn code(&self) -> u16 {
        match self {
            TsigError::Malformed(_) => 0,
            TsigError::BadKey(_) => BADKEY,
            TsigError::BadSig => BADSIG,
            TsigError::BadTime { .. } => BADTIME,
        }
    }
}

impl TsigKey {
    /// A key as Knot (`key: - id: … secret: …`) and NSD (`key: name: …
    /// secret: …`) configure it: its name and base64 secret.
    pub fn new(name: &str, secret_base64: &str) -> Result<TsigKey, TsigError> {
        let name = WireName::parse(name).map_err(|e| TsigError::Malformed(e.to_string()))?;
        let secret = STANDARD
            .decode(secret_base64.trim())
            .map_err(|e| TsigError::Malformed(format!("secret is not base64: {e}")))?;
        if secret.is_empty() {
            return Err(TsigError::Malformed("empty secret".into()));
        }
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(&secret)
            .map_err(|e| TsigError::Malformed(e.to_string()))?;
        Ok(TsigKey { name, keyed })
    }

    pub fn name(&self) -> &WireName {
        &self.name
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

/// What the MAC of a message also covers besides the message itself.
#[derive(Debug, Clone, Copy)]
pub enum Chain<'a> {
    /// A request: nothing before it.
    Request,
    /// The first message of a response: the request's MAC.
    Response(&'a [u8]),
    /// A later message of a multi-message response: the previous MAC, and
    /// only the timers of the TSIG variables.
    Continued(&'a [u8]),
}

/// A verified TSIG: which key, its MAC (for the response's chain) and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Index of the key in the list it was checked against.
    pub key: usize,
    pub mac: Vec<u8>,
    pub time: u64,
}

/// The TSIG RR of a message, read.
struct Found<'a> {
    /// Where the TSIG RR starts: the message before it is what was signed.
    start: usize,
    name: [u8; MAX_NAME_LEN],
    name_len: usize,
    algorithm: [u8; MAX_NAME_LEN],
    algorithm_len: usize,
    time: u64,
    fudge: u16,
    mac: &'a [u8],
    original_id: u16,
    error: u16,
    other: &'a [u8],
}

fn malformed(e: WireError) -> TsigError {
    TsigError::Malformed(e.to_string())
}

/// Finds the TSIG RR, which must be the last record of the message.
fn find(msg: &[u8]) -> Result<Option<Found<'_>>, TsigError> {
    let mut r = Reader::new(msg);
    r.take(4).map_err(malformed)?;
    let counts = [
        r.u16().map_err(malformed)?,
        r.u16().map_err(malformed)?,
        r.u16().map_err(malformed)?,
        r.u16().map_err(malformed)?,
    ];
    let [qd, an, ns, ar] = counts;
    for _ in 0..qd {
        r.skip_name().map_err(malformed)?;
        r.take(4).map_err(malformed)?;
    }
    let records = u32::from(an) + u32::from(ns) + u32::from(ar);
    let mut last = None;
    for i in 0..records {
        let start = r.position();
        r.skip_name().map_err(malformed)?;
        let rtype = r.u16().map_err(malformed)?;
        r.take(6).map_err(malformed)?;
        let len = r.u16().map_err(malformed)?;
        r.take(usize::from(len)).map_err(malformed)?;
        if rtype == TSIG {
            if i + 1 != records || ar == 0 {
                return Err(TsigError::Malformed(
                    "TSIG is not the last additional record".into(),
                ));
            }
            last = Some(start);
        }
    }
    r.finish().map_err(malformed)?;
    let Some(start) = last else {
        return Ok(None);
    };
    let mut t = Reader::new(msg.get(start..).unwrap_or_default());
    let mut name = [0u8; MAX_NAME_LEN];
    let name_len = t.name_lower(&mut name).map_err(malformed)?;
    t.take(2).map_err(malformed)?; // type, known
    if t.u16().map_err(malformed)? != CLASS_ANY || t.u32().map_err(malformed)? != 0 {
        return Err(TsigError::Malformed("TSIG class must be ANY, TTL 0".into()));
    }
    let rdlen = usize::from(t.u16().map_err(malformed)?);
    let rdata_start = t.position();
    let mut algorithm = [0u8; MAX_NAME_LEN];
    let algorithm_len = t.name_lower(&mut algorithm).map_err(malformed)?;
    let high = u64::from(t.u16().map_err(malformed)?);
    let low = u64::from(t.u32().map_err(malformed)?);
    let fudge = t.u16().map_err(malformed)?;
    let mac_len = t.u16().map_err(malformed)?;
    let mac = t.take(usize::from(mac_len)).map_err(malformed)?;
    let original_id = t.u16().map_err(malformed)?;
    let error = t.u16().map_err(malformed)?;
    let other_len = t.u16().map_err(malformed)?;
    let other = t.take(usize::from(other_len)).map_err(malformed)?;
    if t.position() - rdata_start != rdlen {
        return Err(TsigError::Malformed("TSIG RDATA length is wrong".into()));
    }
    Ok(Some(Found {
        start,
        name,
        name_len,
        algorithm,
        algorithm_len,
        time: (high << 32) | low,
        fudge,
        mac,
        original_id,
        error,
        other,
    }))
}

/// Feeds the MAC: the chain, the message (ID and ARCOUNT as signed), the
/// variables.
#[allow(clippy::too_many_arguments)]
fn digest(
    h: &mut HmacSha256,
    chain: Chain<'_>,
    message: &[u8],
    id: u16,
    arcount_delta: u16,
    key_name: &[u8],
    time: u64,
    fudge: u16,
    error: u16,
    other: &[u8],
) {
    match chain {
        Chain::Request => {}
        Chain::Response(mac) | Chain::Continued(mac) => {
            h.update(&(mac.len() as u16).to_be_bytes());
            h.update(mac);
        }
    }
    h.update(&id.to_be_bytes());
    if let (Some(flags), Some(counts), Some(ar), Some(rest)) = (
        message.get(2..4),
        message.get(4..10),
        message.get(10..12),
        message.get(12..),
    ) {
        h.update(flags);
        h.update(counts);
        let ar = <[u8; 2]>::try_from(ar).map_or(0, u16::from_be_bytes);
        h.update(&ar.wrapping_sub(arcount_delta).to_be_bytes());
        h.update(rest);
    }
    let mut timers = Vec::with_capacity(8);
    timers.extend_from_slice(time.to_be_bytes().get(2..8).unwrap_or_default());
    timers.extend_from_slice(&fudge.to_be_bytes());
    if let Chain::Continued(_) = chain {
        h.update(&timers);
        return;
    }
    h.update(key_name);
    h.update(&CLASS_ANY.to_be_bytes());
    h.update(&0u32.to_be_bytes());
    h.update(HMAC_SHA256);
    h.update(&timers);
    h.update(&error.to_be_bytes());
    h.update(&(other.len() as u16).to_be_bytes());
    h.update(other);
}

/// Checks the TSIG of `msg` against `keys` at `now`: `Ok(None)` when the
/// message carries none.
pub fn verify(
    msg: &[u8],
    keys: &[TsigKey],
    chain: Chain<'_>,
    now: u64,
) -> Result<Option<Verified>, TsigError> {
    let Some(found) = find(msg)? else {
        return Ok(None);
    };
    let name = found.name.get(..found.name_len).unwrap_or_default();
    let algorithm = found
        .algorithm
        .get(..found.algorithm_len)
        .unwrap_or_default();
    let shown = String::from_utf8_lossy(name).into_owned();
    if algorithm != HMAC_SHA256 {
        return Err(TsigError::BadKey(format!("algorithm of key {shown}")));
    }
    let (index, key) = keys
        .iter()
        .enumerate()
        .find(|(_, k)| k.name.as_bytes() == name)
        .ok_or(TsigError::BadKey(shown))?;
    let signed = msg.get(..found.start).unwrap_or_default();
    let mut h = key.mac();
    digest(
        &mut h,
        chain,
        signed,
        found.original_id,
        1,
        name,
        found.time,
        found.fudge,
        found.error,
        found.other,
    );
    // Constant-time comparison; truncated MACs are not accepted.
    h.verify_slice(found.mac).map_err(|_| TsigError::BadSig)?;
    if found.time.abs_diff(now) > u64::from(found.fudge) {
        return Err(TsigError::BadTime {
            signed: found.time,
            fudge: found.fudge,
            now,
        });
    }
    Ok(Some(Verified {
        key: index,
        mac: found.mac.to_vec(),
        time: found.time,
    }))
}

/// Appends a TSIG RR signed with `key` to `msg` (a whole message without
/// one) and raises its ARCOUNT; returns the MAC, which the next message of
/// a chain covers.
pub fn sign(msg: &mut Vec<u8>, key: &TsigKey, chain: Chain<'_>, time: u64) -> Vec<u8> {
    sign_with_error(msg, key, chain, time, 0)
}

/// [`sign`] with a TSIG error code (a BADTIME answer is still signed).
pub fn sign_with_error(
    msg: &mut Vec<u8>,
    key: &TsigKey,
    chain: Chain<'_>,
    time: u64,
    error: u16,
) -> Vec<u8> {
    let id = match msg.get(..2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    };
    let mut h = key.mac();
    digest(
        &mut h,
        chain,
        msg,
        id,
        0,
        key.name.as_bytes(),
        time,
        FUDGE,
        error,
        &[],
    );
    let mac = h.finalize().into_bytes().to_vec();
    let mut rdata = Vec::with_capacity(HMAC_SHA256.len() + 16 + mac.len());
    rdata.extend_from_slice(HMAC_SHA256);
    rdata.extend_from_slice(time.to_be_bytes().get(2..8).unwrap_or_default());
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(&mac);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(key.name.as_bytes());
    msg.extend_from_slice(&TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(&rdata);
    if let Some(ar) = msg.get_mut(10..12) {
        let n = <[u8; 2]>::try_from(&*ar).map_or(0, u16::from_be_bytes);
        ar.copy_from_slice(&n.wrapping_add(1).to_be_bytes());
    }
    mac
}

/// Appends the unsigned TSIG of an error answer (RFC 8945 §5.3.2: BADKEY,
/// BADSIG): the request's key name, algorithm and time, an empty MAC and
/// `error`. Appends nothing when `request` carries no readable TSIG.
pub fn append_unsigned_error(msg: &mut Vec<u8>, request: &[u8], error: u16) {
    let Ok(Some(found)) = find(request) else {
        return;
    };
    let id = match msg.get(..2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    };
    let algorithm = found
        .algorithm
        .get(..found.algorithm_len)
        .unwrap_or_default();
    let mut rdata = Vec::with_capacity(algorithm.len() + 16);
    rdata.extend_from_slice(algorithm);
    rdata.extend_from_slice(found.time.to_be_bytes().get(2..8).unwrap_or_default());
    rdata.extend_from_slice(&found.fudge.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(found.name.get(..found.name_len).unwrap_or_default());
    msg.extend_from_slice(&TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(&rdata);
    if let Some(ar) = msg.get_mut(10..12) {
        let n = <[u8; 2]>::try_from(&*ar).map_or(0, u16::from_be_bytes);
        ar.copy_from_slice(&n.wrapping_add(1).to_be_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000;

    fn key(name: &str) -> TsigKey {
        TsigKey::new(name, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMw==").unwrap()
    }

    /// A query for `example.` SOA with ID 0x1234.
    fn query() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x07example\x00\x00\x06\x00\x01");
        m
    }

    #[test]
    fn a_signed_request_and_its_response_chain_verify_and_any_change_does_not() {
        let k = key("xfr.example.");
        let keys = [key("other."), k.clone()];
        let mut q = query();
        let request_mac = sign(&mut q, &k, Chain::Request, T);
        let v = verify(&q, &keys, Chain::Request, T + 10).unwrap().unwrap();
        assert_eq!((v.key, v.mac.clone(), v.time), (1, request_mac.clone(), T));
        // A response covers the request's MAC; a later message the previous.
        let mut first = query();
        first[2] |= 0x84;
        let first_mac = sign(&mut first, &k, Chain::Response(&request_mac), T);
        assert!(
            verify(&first, &keys, Chain::Response(&request_mac), T)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            verify(&first, &keys, Chain::Response(&[0u8; 32]), T),
            Err(TsigError::BadSig),
            "the chain binds the response to its request"
        );
        let mut second = query();
        let _ = sign(&mut second, &k, Chain::Continued(&first_mac), T);
        assert!(
            verify(&second, &keys, Chain::Continued(&first_mac), T)
                .unwrap()
                .is_some()
        );
        // Every byte of the signed message counts but the ID, which the MAC
        // takes from the TSIG's original ID (a forwarder may change it).
        for i in 2..q.len() - 40 {
            let mut bad = q.clone();
            bad[i] ^= 0x01;
            assert!(
                !matches!(verify(&bad, &keys, Chain::Request, T), Ok(Some(_))),
                "byte {i}"
            );
        }
        // Unknown key, wrong secret, late, no TSIG, TSIG not last.
        assert!(matches!(
            verify(&q, &[key("other.")], Chain::Request, T),
            Err(TsigError::BadKey(_))
        ));
        let wrong = TsigKey::new("xfr.example.", "d3Jvbmc=").unwrap();
        assert_eq!(
            verify(&q, &[wrong], Chain::Request, T),
            Err(TsigError::BadSig)
        );
        assert!(matches!(
            verify(&q, &keys, Chain::Request, T + 301),
            Err(TsigError::BadTime { .. })
        ));
        assert_eq!(verify(&query(), &keys, Chain::Request, T), Ok(None));
        let mut not_last = q.clone();
        not_last.extend_from_slice(b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00");
        not_last[11] += 1;
        assert!(matches!(
            verify(&not_last, &keys, Chain::Request, T),
            Err(TsigError::Malformed(_))
        ));
    }

    #[test]
    fn keys_are_read_as_knot_and_nsd_write_them() {
        assert!(TsigKey::new("k.", "not base64!").is_err());
        assert!(TsigKey::new("k.", "").is_err());
        assert!(TsigKey::new("bad..name", "c2VjcmV0").is_err());
        // Names compare case-insensitively (canonical form).
        let mut q = query();
        sign(&mut q, &key("XFR.Example."), Chain::Request, T);
        assert!(
            verify(&q, &[key("xfr.example.")], Chain::Request, T)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn garbage_never_panics() {
        let keys = [key("k.")];
        let mut q = query();
        sign(&mut q, &keys[0], Chain::Request, T);
        for cut in 0..q.len() {
            let _ = verify(&q[..cut], &keys, Chain::Request, T);
        }
    }
}
