//! The cpid identifier coding standard, version 1 (`schema/identifier.md`).
//!
//! `86.31.1005/IC-0000A7-K`: a prefix of digit segments, a class code, a
//! Crockford base32 serial and an ISO/IEC 7064 MOD 37,36 check character.
//! Parsing is case-insensitive and strict: every string has exactly one
//! canonical (upper-case) form, and a wrong check character, an unknown
//! class or a malformed prefix is an error that says which. The DNS mapping
//! (`ic-0000a7-k.1005.31.86.<apex>.`) is defined here too, both ways.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most segments a prefix may have (root included).
pub const MAX_PREFIX_SEGMENTS: usize = 8;
/// Most digits in one prefix segment.
pub const MAX_SEGMENT_DIGITS: usize = 6;
/// Serial length bounds, in base32 characters.
pub const MIN_SERIAL_CHARS: usize = 6;
pub const MAX_SERIAL_CHARS: usize = 12;
/// Longest apex, so that any identifier's DNS name stays within 255 octets.
pub const MAX_APEX_LEN: usize = 150;

/// Why a string is not an identifier (or prefix, class, serial, apex).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    #[error("empty identifier")]
    Empty,
    #[error("missing '/' between prefix and suffix")]
    MissingSeparator,
    #[error("malformed prefix: {0}")]
    Prefix(String),
    #[error("unknown class {0:?} (expected one of GC IC SC ST NL AS PV US TX ND)")]
    UnknownClass(String),
    #[error("malformed serial: {0}")]
    Serial(String),
    #[error("wrong check character: expected {expected}, found {found}")]
    CheckChar { expected: char, found: char },
    #[error("malformed suffix: {0}")]
    Suffix(String),
    #[error("not an identifier name: {0}")]
    DnsName(String),
    #[error("malformed apex: {0}")]
    Apex(String),
}

impl IdentifierError {
    /// A short stable name of the error, used by the test vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentifierError::Empty => "empty",
            IdentifierError::MissingSeparator => "separator",
            IdentifierError::Prefix(_) => "prefix",
            IdentifierError::UnknownClass(_) => "unknown_class",
            IdentifierError::Serial(_) => "serial",
            IdentifierError::CheckChar { .. } => "check_char",
            IdentifierError::Suffix(_) => "suffix",
            IdentifierError::DnsName(_) => "dns_name",
            IdentifierError::Apex(_) => "apex",
        }
    }
}

/// Resource and party classes (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Gc,
    Ic,
    Sc,
    St,
    Nl,
    As,
    Pv,
    Us,
    Tx,
    Nd,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::Gc,
        Class::Ic,
        Class::Sc,
        Class::St,
        Class::Nl,
        Class::As,
        Class::Pv,
        Class::Us,
        Class::Tx,
        Class::Nd,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Class::Gc => "GC",
            Class::Ic => "IC",
            Class::Sc => "SC",
            Class::St => "ST",
            Class::Nl => "NL",
            Class::As => "AS",
            Class::Pv => "PV",
            Class::Us => "US",
            Class::Tx => "TX",
            Class::Nd => "ND",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Class::Gc => "general computing",
            Class::Ic => "intelligent (AI) computing",
            Class::Sc => "supercomputing",
            Class::St => "storage",
            Class::Nl => "network / dedicated line",
            Class::As => "application service",
            Class::Pv => "provider",
            Class::Us => "user / buyer",
            Class::Tx => "transaction",
            Class::Nd => "node",
        }
    }

    /// Case-insensitive.
    pub fn parse(s: &str) -> Result<Class, IdentifierError> {
        Class::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| IdentifierError::UnknownClass(s.to_string()))
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A prefix: `86`, `86.31`, `86.31.1005`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(String);

fn check_segment(seg: &str) -> Result<(), IdentifierError> {
    let bad = |why: &str| Err(IdentifierError::Prefix(format!("segment {seg:?} {why}")));
    if seg.is_empty() {
        return Err(IdentifierError::Prefix("empty segment".into()));
    }
    if seg.len() > MAX_SEGMENT_DIGITS {
        return bad("has more than 6 digits");
    }
    if !seg.bytes().all(|b| b.is_ascii_digit()) {
        return bad("is not all digits");
    }
    if seg.len() > 1 && seg.starts_with('0') {
        return bad("has a leading zero");
    }
    Ok(())
}

impl Prefix {
    pub fn parse(s: &str) -> Result<Prefix, IdentifierError> {
        if s.is_empty() {
            return Err(IdentifierError::Prefix("empty prefix".into()));
        }
        let mut n = 0;
        for seg in s.split('.') {
            check_segment(seg)?;
            n += 1;
        }
        if n > MAX_PREFIX_SEGMENTS {
            return Err(IdentifierError::Prefix(format!(
                "more than {MAX_PREFIX_SEGMENTS} segments"
            )));
        }
        Ok(Prefix(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Root first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    pub fn depth(&self) -> usize {
        self.segments().count()
    }

    /// True when `other` is this prefix or lies below it.
    pub fn contains(&self, other: &Prefix) -> bool {
        other.0 == self.0
            || (other.0.len() > self.0.len()
                && other.0.starts_with(&self.0)
                && other.0.as_bytes()[self.0.len()] == b'.')
    }

    pub fn child(&self, segment: &str) -> Result<Prefix, IdentifierError> {
        Prefix::parse(&format!("{}.{segment}", self.0))
    }

    pub fn parent(&self) -> Option<Prefix> {
        self.0.rsplit_once('.').map(|(p, _)| Prefix(p.to_string()))
    }

    /// The zone of this prefix: `1005.31.86.cpid.internal.`.
    pub fn zone_name(&self, apex: &Apex) -> String {
        let mut out = String::with_capacity(self.0.len() + apex.0.len() + 2);
        for seg in self.0.rsplit('.') {
            out.push_str(seg);
            out.push('.');
        }
        out.push_str(&apex.0);
        out.push('.');
        out
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({})", self.0)
    }
}

/// Crockford base32 alphabet: digits and letters without I, L, O, U.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn base32_value(c: u8) -> Option<u64> {
    let c = c.to_ascii_uppercase();
    BASE32.iter().position(|&a| a == c).map(|p| p as u64)
}

/// A serial number, monotonic per (prefix, class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(u64);

impl Serial {
    pub const MAX: u64 = (1u64 << 60) - 1;

    pub fn new(value: u64) -> Result<Serial, IdentifierError> {
        if value == 0 || value > Self::MAX {
            return Err(IdentifierError::Serial(format!(
                "{value} is outside 1..={}",
                Self::MAX
            )));
        }
        Ok(Serial(value))
    }

    pub fn value(self) -> u64 {
        self.0
    }

    fn parse(s: &str) -> Result<Serial, IdentifierError> {
        let bad = |why: String| Err(IdentifierError::Serial(why));
        if s.len() < MIN_SERIAL_CHARS || s.len() > MAX_SERIAL_CHARS {
            return bad(format!("{s:?} is not 6 to 12 characters"));
        }
        let mut v = 0u64;
        for c in s.bytes() {
            match base32_value(c) {
                Some(d) => v = (v << 5) | d,
                None => return bad(format!("{:?} is not a Crockford base32 digit", c as char)),
            }
        }
        if s.len() > MIN_SERIAL_CHARS && s.starts_with('0') {
            return bad(format!("{s:?} has excess leading zeros"));
        }
        Serial::new(v)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [b'0'; MAX_SERIAL_CHARS];
        let mut v = self.0;
        let mut i = MAX_SERIAL_CHARS;
        while v > 0 {
            i -= 1;
            buf[i] = BASE32[(v & 31) as usize];
            v >>= 5;
        }
        let start = i.min(MAX_SERIAL_CHARS - MIN_SERIAL_CHARS);
        f.write_str(std::str::from_utf8(&buf[start..]).unwrap_or_default())
    }
}

/// ISO/IEC 7064 hybrid system MOD 37,36 over alphanumerics: returns the
/// check character for `data` (digits and upper-case letters only).
pub fn check_char(data: impl IntoIterator<Item = u8>) -> char {
    const M: u32 = 36;
    let mut p = M;
    for c in data {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            b'a'..=b'z' => u32::from(c - b'a') + 10,
            _ => continue,
        };
        let mut s = (p + v) % M;
        if s == 0 {
            s = M;
        }
        p = (s * 2) % (M + 1);
    }
    let d = (M + 1 - p) % M;
    char::from(if d < 10 {
        b'0' + d as u8
    } else {
        b'A' + (d - 10) as u8
    })
}

/// A compute identifier.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier {
    prefix: Prefix,
    class: Class,
    serial: Serial,
}

impl Identifier {
    pub fn new(prefix: Prefix, class: Class, serial: Serial) -> Identifier {
        Identifier {
            prefix,
            class,
            serial,
        }
    }

    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn serial(&self) -> Serial {
        self.serial
    }

    pub fn check_char(&self) -> char {
        let serial = self.serial.to_string();
        check_char(
            self.prefix
                .0
                .bytes()
                .chain(self.class.code().bytes())
                .chain(serial.into_bytes()),
        )
    }

    /// Case-insensitive; the result is canonical.
    pub fn parse(s: &str) -> Result<Identifier, IdentifierError> {
        if s.is_empty() {
            return Err(IdentifierError::Empty);
        }
        let (prefix, suffix) = s.split_once('/').ok_or(IdentifierError::MissingSeparator)?;
        let prefix = Prefix::parse(prefix)?;
        let mut parts = suffix.split('-');
        let (Some(class), Some(serial), Some(check), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdentifierError::Suffix(format!(
                "{suffix:?} is not CLASS-SERIAL-CHECK"
            )));
        };
        if class.len() != 2 {
            return Err(IdentifierError::UnknownClass(class.to_string()));
        }
        let class = Class::parse(class)?;
        let serial = Serial::parse(serial)?;
        let id = Identifier::new(prefix, class, serial);
        let mut chars = check.chars();
        let (Some(found), None) = (chars.next(), chars.next()) else {
            return Err(IdentifierError::Suffix(format!(
                "check {check:?} is not one character"
            )));
        };
        let found = found.to_ascii_uppercase();
        let expected = id.check_char();
        if found != expected {
            return Err(IdentifierError::CheckChar { expected, found });
        }
        Ok(id)
    }

    /// `ic-0000a7-k`
    pub fn suffix_label(&self) -> String {
        format!(
            "{}-{}-{}",
            self.class.code(),
            self.serial,
            self.check_char()
        )
        .to_ascii_lowercase()
    }

    /// `ic-0000a7-k.1005.31.86.cpid.internal.`
    pub fn to_dns_name(&self, apex: &Apex) -> String {
        format!("{}.{}", self.suffix_label(), self.prefix.zone_name(apex))
    }

    /// The inverse of `to_dns_name`; case-insensitive, trailing dot optional.
    pub fn from_dns_name(name: &str, apex: &Apex) -> Result<Identifier, IdentifierError> {
        let bad = |why: &str| IdentifierError::DnsName(format!("{name:?}: {why}"));
        let name = name.strip_suffix('.').unwrap_or(name);
        let lower = name.to_ascii_lowercase();
        let rest = lower
            .strip_suffix(apex.as_str())
            .and_then(|r| r.strip_suffix('.'))
            .ok_or_else(|| bad("not under the apex"))?;
        let (suffix, prefix_labels) = rest
            .split_once('.')
            .ok_or_else(|| bad("no prefix labels"))?;
        if !suffix.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Err(bad("first label is not an identifier suffix"));
        }
        let segments: Vec<&str> = prefix_labels.split('.').collect();
        if segments
            .iter()
            .any(|s| s.bytes().any(|b| b.is_ascii_alphabetic()))
        {
            return Err(bad("prefix labels must be digits"));
        }
        let prefix = segments.iter().rev().copied().collect::<Vec<_>>().join(".");
        Identifier::parse(&format!("{prefix}/{suffix}"))
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}-{}-{}",
            self.prefix,
            self.class.code(),
            self.serial,
            self.check_char()
        )
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({self})")
    }
}

impl FromStr for Identifier {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Identifier::parse(s)
    }
}

impl FromStr for Prefix {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Prefix::parse(s)
    }
}

macro_rules! serde_as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$t>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(Identifier);
serde_as_string!(Prefix);

/// The DNS apex identifiers are mapped under (default `cpid.internal`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Apex(String);

impl Apex {
    pub fn parse(s: &str) -> Result<Apex, IdentifierError> {
        let s = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        let bad = |why: &str| Err(IdentifierError::Apex(format!("{s:?} {why}")));
        if s.is_empty() {
            return bad("is empty");
        }
        if s.len() > MAX_APEX_LEN {
            return bad("is longer than 150 octets");
        }
        for label in s.split('.') {
            if label.is_empty() || label.len() > 63 {
                return bad("has an empty or over-long label");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return bad("has a label that is not letters, digits and inner hyphens");
            }
            if label.bytes().all(|b| b.is_ascii_digit()) {
                return bad("has an all-digit label, which would read as a prefix segment");
            }
        }
        Ok(Apex(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Apex {
    fn default() -> Self {
        Apex("cpid.internal".into())
    }
}

impl fmt::Display for Apex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Apex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Apex({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
    }

    #[test]
    fn canonical_form_is_upper_case_and_round_trips() {
        let i = Identifier::new(
            Prefix::parse("86.31.1005").unwrap(),
            Class::Ic,
            Serial::new(0xA7).unwrap(),
        );
        let s = i.to_string();
        assert!(s.starts_with("86.31.1005/IC-00005"), "{s}");
        assert_eq!(id(&s.to_ascii_lowercase()), i);
        assert_eq!(id(&s).to_string(), s);
    }

    #[test]
    fn check_character_catches_substitutions_and_transpositions() {
        let i = Identifier::new(
            Prefix::parse("86.31.1005").unwrap(),
            Class::Ic,
            Serial::new(123_456).unwrap(),
        );
        let s = i.to_string();
        let bytes = s.as_bytes();
        for pos in 0..bytes.len() - 2 {
            if !bytes[pos].is_ascii_alphanumeric() {
                continue;
            }
            for c in b"0123456789ABCDEFGHJKMNPQRSTVWXYZ" {
                if *c == bytes[pos] {
                    continue;
                }
                let mut m = bytes.to_vec();
                m[pos] = *c;
                let m = String::from_utf8(m).unwrap();
                assert!(Identifier::parse(&m).is_err(), "{m} accepted");
            }
            if pos + 1 < bytes.len() - 2
                && bytes[pos + 1].is_ascii_alphanumeric()
                && bytes[pos] != bytes[pos + 1]
            {
                let mut m = bytes.to_vec();
                m.swap(pos, pos + 1);
                let m = String::from_utf8(m).unwrap();
                assert!(Identifier::parse(&m).is_err(), "{m} accepted");
            }
        }
    }

    #[test]
    fn errors_say_which_part_is_wrong() {
        let good = Identifier::new(
            Prefix::parse("86").unwrap(),
            Class::Gc,
            Serial::new(1).unwrap(),
        )
        .to_string();
        let wrong_check = format!(
            "{}{}",
            &good[..good.len() - 1],
            if good.ends_with('0') { '1' } else { '0' }
        );
        for (input, kind) in [
            ("", "empty"),
            ("86GC-000001-0", "separator"),
            ("86..31/GC-000001-0", "prefix"),
            ("086/GC-000001-0", "prefix"),
            ("86.1234567/GC-000001-0", "prefix"),
            ("86/ZZ-000001-0", "unknown_class"),
            ("86/GC-00000I-0", "serial"),
            ("86/GC-0000001-0", "serial"),
            ("86/GC-00001-0", "serial"),
            ("86/GC-000000-0", "serial"),
            ("86/GC-000001", "suffix"),
            (wrong_check.as_str(), "check_char"),
        ] {
            assert_eq!(
                Identifier::parse(input).unwrap_err().kind(),
                kind,
                "{input:?}"
            );
        }
    }

    #[test]
    fn dns_mapping_is_unambiguous_both_ways() {
        let apex = Apex::default();
        let i = Identifier::new(
            Prefix::parse("86.31.1005").unwrap(),
            Class::Ic,
            Serial::new(167).unwrap(),
        );
        let name = i.to_dns_name(&apex);
        assert!(name.ends_with(".1005.31.86.cpid.internal."), "{name}");
        assert_eq!(Identifier::from_dns_name(&name, &apex).unwrap(), i);
        assert_eq!(
            Identifier::from_dns_name(&name.to_ascii_uppercase(), &apex).unwrap(),
            i
        );
        assert!(Identifier::from_dns_name("1005.31.86.cpid.internal.", &apex).is_err());
        assert!(Identifier::from_dns_name(&name.replace("cpid", "other"), &apex).is_err());
    }

    #[test]
    fn prefixes_nest_at_segment_boundaries() {
        let p = Prefix::parse("86.31").unwrap();
        assert!(p.contains(&Prefix::parse("86.31.1005").unwrap()));
        assert!(p.contains(&p));
        assert!(!p.contains(&Prefix::parse("86.310").unwrap()));
        assert!(!p.contains(&Prefix::parse("86").unwrap()));
        assert_eq!(p.parent().unwrap().as_str(), "86");
        assert_eq!(p.zone_name(&Apex::default()), "31.86.cpid.internal.");
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let alphabet = b"0123456789./-ABCGHIKLOPSTUVXZabcz\xff ";
        for _ in 0..20_000 {
            let len = (x % 30) as usize;
            let mut s = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let s = String::from_utf8_lossy(&s);
            let _ = Identifier::parse(&s);
            let _ = Identifier::from_dns_name(&s, &Apex::default());
        }
    }
}
