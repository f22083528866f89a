//! DNS wire format (RFC 1035 §4, RFC 6891 for OPT): the checked reader used
//! on the query path and the encoders for the RDATA cpid serves.
//!
//! The reader only ever takes checked slices: reading past the end is an
//! error, never a panic, and a message must be consumed completely. Names are
//! handled as lower-case uncompressed wire bytes (`WireName`), which is what
//! the hot tier is keyed by.

use std::fmt;

/// Resource record types cpid serves or recognises.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const SOA: u16 = 6;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    /// DNSSEC (RFC 4034): delegation signer, signature, next secure, key.
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    /// Meta type of compact denial: "this name does not exist" (RFC 9824).
    pub const NXNAME: u16 = 128;
    pub const URI: u16 = 256;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const ANY: u16 = 255;
    /// Private-use type (RFC 6895 §3.1) carrying a signed cpid record.
    pub const CPREC: u16 = 65280;
    /// Private-use type carrying the node's Ed25519 public key.
    pub const CPKEY: u16 = 65281;
}

/// The only class cpid serves.
pub const CLASS_IN: u16 = 1;
pub const CLASS_ANY: u16 = 255;

/// Longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// The name of a private type as written in zone files and by `dig`.
pub fn type_name(t: u16) -> String {
    match t {
        rtype::A => "A".into(),
        rtype::NS => "NS".into(),
        rtype::SOA => "SOA".into(),
        rtype::TXT => "TXT".into(),
        rtype::AAAA => "AAAA".into(),
        rtype::URI => "URI".into(),
        rtype::DS => "DS".into(),
        rtype::RRSIG => "RRSIG".into(),
        rtype::NSEC => "NSEC".into(),
        rtype::DNSKEY => "DNSKEY".into(),
        other => format!("TYPE{other}"),
    }
}

/// Why a message or name could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("message ends early")]
    Truncated,
    #[error("bytes left after the last record")]
    TrailingBytes,
    #[error("label type or length not allowed here")]
    BadLabel,
    #[error("name longer than 255 octets")]
    NameTooLong,
    #[error("compression pointer not allowed here")]
    Pointer,
    #[error("malformed EDNS OPT record")]
    BadOpt,
    #[error("more than one OPT record")]
    DuplicateOpt,
    #[error("invalid name in presentation form")]
    BadPresentation,
}

/// A checked cursor over a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// The bytes between two positions already read.
    pub fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        self.buf.get(start..end).unwrap_or_default()
    }

    pub fn peek_u8(&self) -> Result<u8, WireError> {
        self.buf.get(self.pos).copied().ok_or(WireError::Truncated)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, _) = self
            .buf
            .get(self.pos..)
            .and_then(<[u8]>::split_first_chunk::<N>)
            .ok_or(WireError::Truncated)?;
        self.pos += N;
        Ok(*head)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        let [b] = self.array()?;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Insists that the whole buffer was consumed.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }

    /// Reads an uncompressed name, lower-casing it into `out`; returns the
    /// wire length. Compression pointers are refused: question names are
    /// never compressed in practice and refusing them keeps the path short.
    pub fn name_lower(&mut self, out: &mut [u8; MAX_NAME_LEN]) -> Result<usize, WireError> {
        let mut len = 0usize;
        loop {
            let l = self.u8()?;
            match l & 0xC0 {
                0x00 => {}
                0xC0 => return Err(WireError::Pointer),
                _ => return Err(WireError::BadLabel),
            }
            let l = usize::from(l);
            // The length octet and the label must fit in `out`.
            let (len_octet, label_out) = out
                .get_mut(len..len + 1 + l)
                .and_then(<[u8]>::split_first_mut)
                .ok_or(WireError::NameTooLong)?;
            *len_octet = l as u8;
            len += 1;
            if l == 0 {
                return Ok(len);
            }
            let label = self.take(l)?;
            for (dst, src) in label_out.iter_mut().zip(label) {
                *dst = src.to_ascii_lowercase();
            }
            len += l;
        }
    }

    /// Skips a possibly compressed name (in sections cpid does not use).
    pub fn skip_name(&mut self) -> Result<(), WireError> {
        let mut seen = 0usize;
        loop {
            let l = self.u8()?;
            match l & 0xC0 {
                0x00 if l == 0 => return Ok(()),
                0x00 => {
                    seen += 1 + usize::from(l);
                    if seen > MAX_NAME_LEN {
                        return Err(WireError::NameTooLong);
                    }
                    self.take(usize::from(l))?;
                }
                0xC0 => {
                    self.u8()?;
                    return Ok(());
                }
                _ => return Err(WireError::BadLabel),
            }
        }
    }
}

/// A domain name in lower-case, uncompressed wire form, root label included.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireName(Box<[u8]>);

impl WireName {
    /// Parses a presentation-form name (`a.b.c.` or `a.b.c`); letters are
    /// lower-cased. Escapes are not supported: cpid's names never need them.
    pub fn parse(s: &str) -> Result<WireName, WireError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        let mut out = Vec::with_capacity(s.len() + 2);
        if !s.is_empty() {
            for label in s.split('.') {
                let bytes = label.as_bytes();
                if bytes.is_empty() || bytes.len() > MAX_LABEL_LEN {
                    return Err(WireError::BadPresentation);
                }
                if !bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                {
                    return Err(WireError::BadPresentation);
                }
                out.push(bytes.len() as u8);
                out.extend(bytes.iter().map(u8::to_ascii_lowercase));
            }
        }
        out.push(0);
        if out.len() > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        Ok(WireName(out.into_boxed_slice()))
    }

    /// Wraps bytes already known to be a lower-case wire name.
    pub(crate) fn from_wire_unchecked(bytes: &[u8]) -> WireName {
        WireName(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name with its first label removed; `None` for the root.
    pub fn parent(&self) -> Option<WireName> {
        let first = usize::from(*self.0.first()?);
        if first == 0 {
            return None;
        }
        self.0.get(1 + first..).map(WireName::from_wire_unchecked)
    }

    /// True when `self` equals `zone` or lies below it.
    pub fn is_within(&self, zone: &WireName) -> bool {
        is_within(&self.0, &zone.0)
    }

    /// Prepends one label.
    pub fn prepend(&self, label: &str) -> Result<WireName, WireError> {
        let mut joined = String::with_capacity(label.len() + self.0.len() + 1);
        joined.push_str(label);
        joined.push('.');
        joined.push_str(&self.to_string());
        WireName::parse(&joined)
    }
}

/// True when wire name `name` equals `zone` or lies below it, at a label
/// boundary. Both must be lower-case uncompressed wire names.
pub fn is_within(name: &[u8], zone: &[u8]) -> bool {
    let mut rest = name;
    while let Some(&label_len) = rest.first() {
        if rest.len() == zone.len() {
            return rest == zone;
        }
        if rest.len() < zone.len() {
            return false;
        }
        rest = rest.get(1 + usize::from(label_len)..).unwrap_or_default();
    }
    false
}

impl fmt::Display for WireName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut pos = 0usize;
        let b = &self.0;
        if b.len() <= 1 {
            return f.write_str(".");
        }
        while let Some(&l) = b.get(pos) {
            if l == 0 {
                break;
            }
            let label = b.get(pos + 1..pos + 1 + usize::from(l)).unwrap_or_default();
            for &c in label {
                if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
                    write!(f, "{}", c as char)?;
                } else {
                    write!(f, "\\{c:03}")?;
                }
            }
            f.write_str(".")?;
            pos += 1 + usize::from(l);
        }
        Ok(())
    }
}

impl fmt::Debug for WireName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireName({self})")
    }
}

/// TXT RDATA: each string split into character-strings of at most 255 octets.
pub fn txt_rdata<S: AsRef<str>>(strings: &[S]) -> Vec<u8> {
    let total: usize = strings
        .iter()
        .map(|s| s.as_ref().len() + s.as_ref().len() / 255 + 1)
        .sum();
    let mut out = Vec::with_capacity(total);
    for s in strings {
        let bytes = s.as_ref().as_bytes();
        if bytes.is_empty() {
            out.push(0);
            continue;
        }
        for chunk in bytes.chunks(255) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
    }
    out
}

/// URI RDATA (RFC 7553 §4.5): priority, weight, target (not length-prefixed).
pub fn uri_rdata(priority: u16, weight: u16, target: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + target.len());
    out.extend_from_slice(&priority.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(target.as_bytes());
    out
}

/// SOA RDATA (RFC 1035 §3.3.13), names uncompressed.
pub struct Soa {
    pub mname: WireName,
    pub rname: WireName,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

impl Soa {
    pub fn rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.mname.as_bytes().len() + 40);
        out.extend_from_slice(self.mname.as_bytes());
        out.extend_from_slice(self.rname.as_bytes());
        for v in [
            self.serial,
            self.refresh,
            self.retry,
            self.expire,
            self.minimum,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }
}

/// Renders RDATA in master-file presentation form (RFC 1035 §5.1), private
/// and unknown types in the generic form of RFC 3597 §5.
pub fn rdata_presentation(rtype: u16, rdata: &[u8]) -> String {
    let known = match rtype {
        rtype::A => <[u8; 4]>::try_from(rdata)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        rtype::AAAA => <[u8; 16]>::try_from(rdata)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        rtype::NS => name_presentation(rdata),
        rtype::SOA => soa_presentation(rdata),
        rtype::TXT => txt_presentation(rdata),
        rtype::URI => rdata
            .split_first_chunk()
            .map(|(&[p0, p1, w0, w1], target)| {
                let prio = u16::from_be_bytes([p0, p1]);
                let weight = u16::from_be_bytes([w0, w1]);
                format!("{prio} {weight} {}", quoted(target))
            }),
        _ => None,
    };
    known.unwrap_or_else(|| generic_presentation(rdata))
}

fn generic_presentation(rdata: &[u8]) -> String {
    let mut s = format!("\\# {}", rdata.len());
    if !rdata.is_empty() {
        s.push(' ');
        s.push_str(&crate::ident::keys::to_hex(rdata));
    }
    s
}

fn name_presentation(rdata: &[u8]) -> Option<String> {
    let mut r = Reader::new(rdata);
    let mut buf = [0u8; MAX_NAME_LEN];
    let len = r.name_lower(&mut buf).ok()?;
    r.finish().ok()?;
    Some(WireName::from_wire_unchecked(buf.get(..len)?).to_string())
}

fn soa_presentation(rdata: &[u8]) -> Option<String> {
    let mut r = Reader::new(rdata);
    let mut buf = [0u8; MAX_NAME_LEN];
    let len = r.name_lower(&mut buf).ok()?;
    let mname = WireName::from_wire_unchecked(buf.get(..len)?);
    let len = r.name_lower(&mut buf).ok()?;
    let rname = WireName::from_wire_unchecked(buf.get(..len)?);
    let [serial, refresh, retry, expire, minimum] = [
        r.u32().ok()?,
        r.u32().ok()?,
        r.u32().ok()?,
        r.u32().ok()?,
        r.u32().ok()?,
    ];
    r.finish().ok()?;
    Some(format!(
        "{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"
    ))
}

fn txt_presentation(rdata: &[u8]) -> Option<String> {
    let mut r = Reader::new(rdata);
    let mut parts = Vec::new();
    while r.remaining() > 0 {
        let l = r.u8().ok()?;
        parts.push(quoted(r.take(usize::from(l)).ok()?));
    }
    Some(parts.join(" "))
}

/// A character-string in quotes with RFC 1035 §5.1 escapes.
fn quoted(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\{b:03}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u16(), Err(WireError::Truncated));
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.take(usize::MAX), Err(WireError::Truncated));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn names_are_lower_cased_and_pointers_refused() {
        let mut buf = [0u8; MAX_NAME_LEN];
        let wire = [3, b'F', b'o', b'O', 2, b'C', b'n', 0];
        let len = Reader::new(&wire).name_lower(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"\x03foo\x02cn\x00");
        assert_eq!(
            Reader::new(&[0xC0, 12]).name_lower(&mut buf),
            Err(WireError::Pointer)
        );
        assert_eq!(
            Reader::new(&[0x40, 1]).name_lower(&mut buf),
            Err(WireError::BadLabel)
        );
    }

    #[test]
    fn over_long_names_are_refused() {
        let mut wire = Vec::new();
        for _ in 0..5 {
            wire.push(60);
            wire.extend_from_slice(&[b'a'; 60]);
        }
        wire.push(0);
        let mut buf = [0u8; MAX_NAME_LEN];
        assert_eq!(
            Reader::new(&wire).name_lower(&mut buf),
            Err(WireError::NameTooLong)
        );
    }

    #[test]
    fn zone_membership_respects_label_boundaries() {
        let zone = WireName::parse("86.cpid.internal").unwrap();
        let inside = WireName::parse("GC-000001-X.86.cpid.internal.").unwrap();
        let lookalike = WireName::parse("186.cpid.internal").unwrap();
        assert!(inside.is_within(&zone));
        assert!(zone.is_within(&zone));
        assert!(!lookalike.is_within(&zone));
        assert_eq!(inside.parent().unwrap(), zone);
        assert_eq!(inside.to_string(), "gc-000001-x.86.cpid.internal.");
    }

    #[test]
    fn presentation_forms_match_rfc_1035_and_3597() {
        assert_eq!(
            rdata_presentation(rtype::TXT, &txt_rdata(&["a=\"b\"", "c"])),
            r#""a=\"b\"" "c""#
        );
        assert_eq!(
            rdata_presentation(rtype::URI, &uri_rdata(10, 1, "https://x/")),
            r#"10 1 "https://x/""#
        );
        assert_eq!(
            rdata_presentation(rtype::CPREC, &[0xde, 0xad]),
            r"\# 2 dead"
        );
        assert_eq!(rdata_presentation(rtype::A, &[127, 0, 0, 1]), "127.0.0.1");
    }

    #[test]
    fn short_rdata_falls_back_to_the_generic_form() {
        assert_eq!(rdata_presentation(rtype::A, &[127, 0, 1]), r"\# 3 7f0001");
        assert_eq!(rdata_presentation(rtype::URI, &[0, 10, 0]), r"\# 3 000a00");
        assert_eq!(rdata_presentation(rtype::URI, &[0, 10, 0, 1]), r#"10 1 """#);
        assert_eq!(rdata_presentation(rtype::SOA, &[0, 0, 0]), r"\# 3 000000");
    }

    #[test]
    fn numbers_cut_short_are_truncated_without_moving() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u32(), Err(WireError::Truncated));
        assert_eq!(r.position(), 0);
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u16(), Err(WireError::Truncated));
        assert_eq!(r.u8(), Ok(3));
        assert_eq!(r.u8(), Err(WireError::Truncated));
    }

    #[test]
    fn a_name_of_exactly_255_octets_is_read_and_256_is_not() {
        // 4 labels of 62 octets (4 * 63 = 252), one of 1 (254), root (255).
        let mut wire = Vec::new();
        for _ in 0..4 {
            wire.push(62);
            wire.extend_from_slice(&[b'A'; 62]);
        }
        let mut longer = wire.clone();
        wire.extend_from_slice(&[1, b'b', 0]);
        let mut buf = [0u8; MAX_NAME_LEN];
        assert_eq!(Reader::new(&wire).name_lower(&mut buf), Ok(MAX_NAME_LEN));
        assert_eq!(buf[1], b'a');
        longer.extend_from_slice(&[2, b'b', b'c', 0]);
        assert_eq!(
            Reader::new(&longer).name_lower(&mut buf),
            Err(WireError::NameTooLong)
        );
    }

    #[test]
    fn within_is_false_for_a_label_that_overruns_the_name() {
        assert!(!is_within(&[5, b'a', 0], &[0]));
        assert!(is_within(&[1, b'a', 0], &[0]));
        assert!(!is_within(&[], &[0]));
    }
}
