//! Identifiers: the cpid coding standard, version 1 (`schema/identifier.md`).
//!
//! An identifier is `prefix "/" class "-" serial "-" check`, for example
//! `86.31.1005/IC-0000A7-Q`. This module parses identifiers (case-insensitive),
//! renders their canonical upper-case form, computes and checks the
//! ISO/IEC 7064 hybrid MOD 37,36 check character, and maps identifiers to and
//! from DNS names under a configurable apex
//! (`ic-0000a7-q.1005.31.86.cpid.internal.`).
//!
//! It must never panic, whatever bytes it is given: every function that takes
//! outside input returns a [`IdentifierError`] whose variant names the part
//! that is wrong and whose [`IdentifierError::kind`] is a stable string shared
//! with the test vectors in `schema/vectors/identifiers.json`.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::str::FromStr;

/// Version of the coding standard this module implements.
pub const STANDARD_VERSION: u32 = 1;

/// Check-character alphabet: a character's position is its value (0–35).
const ALNUM: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Serial alphabet: Crockford base32 (no I, L, O, U); position is the digit value.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why an identifier, a part of one, a DNS name or an apex was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// The input is empty.
    #[error("empty identifier")]
    Empty,
    /// The input is longer than any identifier can be.
    #[error("identifier is {len} bytes long; the maximum is {max}")]
    TooLong { len: usize, max: usize },
    /// There is no `/` between prefix and suffix.
    #[error("missing '/' between prefix and suffix")]
    MissingSeparator,
    /// The prefix (before the `/`) is malformed.
    #[error("malformed prefix: {reason}")]
    Prefix { reason: &'static str },
    /// The suffix does not have the shape `CLASS-SERIAL-CHECK`.
    #[error("malformed suffix: {reason}")]
    Suffix { reason: &'static str },
    /// The class code is not one of the ten classes of the standard.
    #[error("unknown class {0:?} (expected one of GC IC SC ST NL AS PV US TX ND)")]
    UnknownClass(String),
    /// The serial is malformed or out of range.
    #[error("malformed serial: {reason}")]
    Serial { reason: &'static str },
    /// The check character is absent.
    #[error("missing check character (expected {expected:?})")]
    MissingCheckChar { expected: char },
    /// The check character does not match the rest of the identifier.
    #[error("wrong check character: expected {expected:?}, found {found:?}")]
    CheckChar { expected: char, found: char },
    /// A DNS name does not end in the apex.
    #[error("name is not under the apex {apex:?}")]
    NotUnderApex { apex: String },
    /// A DNS name under the apex does not have the label structure of an identifier.
    #[error("malformed identifier DNS name: {reason}")]
    DnsName { reason: &'static str },
    /// An apex is not an acceptable DNS name.
    #[error("malformed apex: {reason}")]
    Apex { reason: &'static str },
}

impl IdentifierError {
    /// A short, stable name for the kind of error, as used by the test vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentifierError::Empty => "empty",
            IdentifierError::TooLong { .. } => "too_long",
            IdentifierError::MissingSeparator => "separator",
            IdentifierError::Prefix { .. } => "prefix",
            IdentifierError::Suffix { .. } => "suffix",
            IdentifierError::UnknownClass(_) => "unknown_class",
            IdentifierError::Serial { .. } => "serial",
            IdentifierError::MissingCheckChar { .. } => "missing_check_char",
            IdentifierError::CheckChar { .. } => "check_char",
            IdentifierError::NotUnderApex { .. } => "not_under_apex",
            IdentifierError::DnsName { .. } => "dns_name",
            IdentifierError::Apex { .. } => "apex",
        }
    }
}

fn prefix_err(reason: &'static str) -> IdentifierError {
    IdentifierError::Prefix { reason }
}
fn serial_err(reason: &'static str) -> IdentifierError {
    IdentifierError::Serial { reason }
}
fn suffix_err(reason: &'static str) -> IdentifierError {
    IdentifierError::Suffix { reason }
}
fn dns_err(reason: &'static str) -> IdentifierError {
    IdentifierError::DnsName { reason }
}
fn apex_err(reason: &'static str) -> IdentifierError {
    IdentifierError::Apex { reason }
}

/// Implements `Serialize`/`Deserialize` as the type's canonical string
/// (`Display` out, `parse` in), for JSON, TOML and postcard alike.
macro_rules! string_serde {
    ($ty:ident, $expecting:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        $ty::parse(v).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(V)
            }
        }

        impl FromStr for $ty {
            type Err = IdentifierError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse(s)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Check character: ISO/IEC 7064 hybrid MOD 37,36
// ---------------------------------------------------------------------------

/// The ISO/IEC 7064 hybrid MOD 37,36 check character system.
///
/// Data are the letters and digits of the identifier (separators skipped),
/// each valued `0`–`9` = 0–9, `A`–`Z` = 10–35. With `P₁ = 36`, for each
/// character `a`: `S = (P + a) mod 36`, with 0 replaced by 36, and
/// `P' = 2·S mod 37`. The check value is `(37 − P) mod 36` where `P` is the
/// state after the last data character; it is written with the same
/// alphabet. Running the procedure over data followed by their check
/// character leaves the residue `S = 1` at the last step.
///
/// The system detects every single-character substitution and all adjacent
/// transpositions but one class: swapping two characters whose values are
/// `v` and `v + 1 (mod 36)`, where `P + v ≡ 18 (mod 36)` at that point, goes
/// unnoticed (one pair in 630 per position; see `schema/identifier.md`).
pub mod check {
    /// Value of an ASCII letter or digit (case-insensitive) in the 0–9A–Z alphabet.
    pub(super) fn value(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'A'..=b'Z' => Some(c - b'A' + 10),
            b'a'..=b'z' => Some(c - b'a' + 10),
            _ => None,
        }
    }

    /// The running state of the MOD 37,36 procedure.
    #[derive(Clone, Copy)]
    pub(super) struct State {
        /// `P`, in 1–36.
        pub(super) p: u8,
    }

    impl State {
        pub(super) fn new() -> State {
            State { p: 36 }
        }

        /// Feeds one character value (0–35); returns the intermediate `S`.
        pub(super) fn push(&mut self, value: u8) -> u8 {
            let mut s = (self.p + value) % 36;
            if s == 0 {
                s = 36;
            }
            self.p = (s * 2) % 37;
            s
        }

        /// The check value that completes the data fed so far.
        pub(super) fn check_value(self) -> u8 {
            (37 - self.p) % 36
        }
    }

    /// The character of a check value (0–35).
    pub(super) fn char_of(value: u8) -> char {
        char::from(alnum(value))
    }

    /// The ASCII byte of a check value (0–35).
    #[allow(clippy::indexing_slicing)]
    pub(super) fn alnum(value: u8) -> u8 {
        // why: `value % 36` indexes a 36-byte table.
        super::ALNUM[usize::from(value % 36)]
    }

    /// The check character for `data` (ASCII letters and digits, any case).
    ///
    /// Returns `None` if `data` contains anything else.
    pub fn compute(data: &str) -> Option<char> {
        let mut state = State::new();
        for c in data.bytes() {
            state.push(value(c)?);
        }
        Some(char_of(state.check_value()))
    }

    /// Whether the last character of `data_and_check` is the correct check
    /// character for the characters before it (the standard's residue test).
    ///
    /// Returns `false` for empty input or anything that is not ASCII letters
    /// and digits.
    pub fn verify(data_and_check: &str) -> bool {
        let mut state = State::new();
        let mut last = None;
        for c in data_and_check.bytes() {
            match value(c) {
                Some(v) => last = Some(state.push(v)),
                None => return false,
            }
        }
        last == Some(1)
    }
}

// ---------------------------------------------------------------------------
// Class
// ---------------------------------------------------------------------------

/// The class of what an identifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// `GC` general-purpose computing.
    Gc,
    /// `IC` intelligent computing (AI accelerators).
    Ic,
    /// `SC` supercomputing.
    Sc,
    /// `ST` storage.
    St,
    /// `NL` network / dedicated line.
    Nl,
    /// `AS` application service.
    As,
    /// `PV` provider.
    Pv,
    /// `US` user / buyer.
    Us,
    /// `TX` transaction.
    Tx,
    /// `ND` node.
    Nd,
}

impl Class {
    /// Every class, in the order of the standard's class table.
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

    /// The two-letter upper-case code, e.g. `"GC"`.
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

    /// Parses a class code, case-insensitively.
    pub fn parse(s: &str) -> Result<Class, IdentifierError> {
        // The error echoes at most 16 characters of what it was given.
        let unknown = || {
            IdentifierError::UnknownClass(
                s.chars().take(16).map(|c| c.to_ascii_uppercase()).collect(),
            )
        };
        let &[a, b] = s.as_bytes() else {
            return Err(unknown());
        };
        let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
        Class::ALL
            .into_iter()
            .find(|c| c.code().as_bytes() == code)
            .ok_or_else(unknown)
    }

    /// A short English description, e.g. `"intelligent computing (AI)"`.
    pub fn description(self) -> &'static str {
        match self {
            Class::Gc => "general-purpose computing",
            Class::Ic => "intelligent computing (AI)",
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
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

string_serde!(Class, "a class code such as \"IC\"");

// ---------------------------------------------------------------------------
// Serial
// ---------------------------------------------------------------------------

/// The serial number of an identifier: 1 ..= 32¹² − 1, written in Crockford
/// base32, zero-padded to 6 characters and longer only when the value needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(u64);

/// The Crockford base32 digit of `v`'s low five bits.
#[allow(clippy::indexing_slicing)]
fn crockford_digit(v: u64) -> u8 {
    // why: `v & 31` indexes a 32-byte table.
    CROCKFORD[(v & 31) as usize]
}

/// A serial's canonical characters, left-aligned in a fixed buffer.
struct SerialText {
    buf: [u8; Serial::MAX_LEN],
    len: usize,
}

impl SerialText {
    fn bytes(self) -> impl Iterator<Item = u8> {
        self.buf.into_iter().take(self.len)
    }
}

impl Serial {
    /// Shortest rendering (values below 32⁶ are zero-padded to it).
    pub const MIN_LEN: usize = 6;
    /// Longest rendering.
    pub const MAX_LEN: usize = 12;
    /// Largest serial value, 32¹² − 1.
    pub const MAX: u64 = (1 << 60) - 1;
    /// The first serial of every (prefix, class).
    pub const FIRST: Serial = Serial(1);

    /// A serial of the given value, which must be in 1 ..= [`Serial::MAX`].
    pub fn new(value: u64) -> Result<Serial, IdentifierError> {
        match value {
            0 => Err(serial_err("zero is not a serial")),
            v if v > Serial::MAX => Err(serial_err("value exceeds 32^12 - 1")),
            v => Ok(Serial(v)),
        }
    }

    /// The numeric value.
    pub fn value(self) -> u64 {
        self.0
    }

    /// Parses a serial in Crockford base32 (case-insensitive, canonical length).
    pub fn parse(s: &str) -> Result<Serial, IdentifierError> {
        if s.len() < Serial::MIN_LEN {
            return Err(serial_err("shorter than 6 characters"));
        }
        if s.len() > Serial::MAX_LEN {
            return Err(serial_err("longer than 12 characters"));
        }
        let mut value: u64 = 0;
        for c in s.bytes() {
            let upper = c.to_ascii_uppercase();
            let digit = CROCKFORD.iter().position(|&d| d == upper).ok_or_else(|| {
                serial_err(
                    "character outside the serial alphabet (Crockford base32 without I, L, O, U)",
                )
            })?;
            // At most 12 digits of 5 bits: never overflows a u64.
            value = (value << 5) | digit as u64;
        }
        if s.len() > Serial::MIN_LEN && s.as_bytes().first() == Some(&b'0') {
            return Err(serial_err(
                "excess leading zeros (serials are zero-padded to 6 characters only)",
            ));
        }
        Serial::new(value)
    }

    fn text(self) -> SerialText {
        let bits = 64 - self.0.leading_zeros() as usize;
        let len = bits.div_ceil(5).clamp(Serial::MIN_LEN, Serial::MAX_LEN);
        let mut buf = [b'0'; Serial::MAX_LEN];
        let mut v = self.0;
        for slot in buf.iter_mut().take(len).rev() {
            *slot = crockford_digit(v);
            v >>= 5;
        }
        SerialText { buf, len }
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.text().bytes() {
            f.write_char(char::from(c))?;
        }
        Ok(())
    }
}

string_serde!(Serial, "a Crockford base32 serial such as \"0000A7\"");

// ---------------------------------------------------------------------------
// Prefix
// ---------------------------------------------------------------------------

/// A prefix: dot-separated numeric segments, root first (`86.31.1005`).
///
/// Ordered by its canonical string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(String);

impl Prefix {
    /// Most segments a prefix may have.
    pub const MAX_DEPTH: usize = 8;
    /// Most digits in one segment.
    pub const MAX_SEGMENT_LEN: usize = 6;
    /// Longest canonical prefix (8 segments of 6 digits and 7 dots).
    pub const MAX_LEN: usize = Self::MAX_DEPTH * (Self::MAX_SEGMENT_LEN + 1) - 1;

    /// Parses a prefix such as `86.31.1005`.
    pub fn parse(s: &str) -> Result<Prefix, IdentifierError> {
        validate_prefix(s)?;
        Ok(Prefix(s.to_owned()))
    }

    /// Validates an owned string and takes it without copying.
    fn from_string(s: String) -> Result<Prefix, IdentifierError> {
        validate_prefix(&s)?;
        Ok(Prefix(s))
    }

    /// The canonical string, e.g. `"86.31.1005"`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, root first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// The number of segments (1 for the national root).
    pub fn depth(&self) -> usize {
        self.0.bytes().filter(|&b| b == b'.').count() + 1
    }

    /// Whether `other` is this prefix or one of its descendants.
    pub fn contains(&self, other: &Prefix) -> bool {
        match other.0.strip_prefix(self.0.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('.'),
            None => false,
        }
    }

    /// The child prefix with one more segment.
    pub fn child(&self, segment: &str) -> Result<Prefix, IdentifierError> {
        validate_segment(segment)?;
        if self.depth() >= Prefix::MAX_DEPTH {
            return Err(prefix_err("more than 8 segments"));
        }
        let mut s = String::with_capacity(self.0.len() + 1 + segment.len());
        s.push_str(&self.0);
        s.push('.');
        s.push_str(segment);
        Ok(Prefix(s))
    }

    /// The parent prefix, or `None` for a root.
    pub fn parent(&self) -> Option<Prefix> {
        self.0
            .rsplit_once('.')
            .map(|(parent, _)| Prefix(parent.to_owned()))
    }

    /// The DNS zone of this prefix: `"1005.31.86.cpid.internal."`.
    pub fn zone_name(&self, apex: &Apex) -> String {
        let mut s = String::with_capacity(self.0.len() + apex.0.len() + 2);
        push_reversed_segments(&mut s, &self.0);
        s.push('.');
        s.push_str(&apex.0);
        s.push('.');
        s
    }
}

fn push_reversed_segments(out: &mut String, prefix: &str) {
    for (i, seg) in prefix.rsplit('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(seg);
    }
}

fn validate_segment(seg: &str) -> Result<(), IdentifierError> {
    if seg.is_empty() {
        return Err(prefix_err("empty segment"));
    }
    if !seg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(prefix_err(
            "segment contains a character other than a digit",
        ));
    }
    if seg.len() > Prefix::MAX_SEGMENT_LEN {
        return Err(prefix_err("segment longer than 6 digits"));
    }
    if seg.len() > 1 && seg.starts_with('0') {
        return Err(prefix_err("segment has a leading zero"));
    }
    Ok(())
}

fn validate_prefix(s: &str) -> Result<(), IdentifierError> {
    if s.is_empty() {
        return Err(prefix_err("empty prefix"));
    }
    for (i, seg) in s.split('.').enumerate() {
        if i >= Prefix::MAX_DEPTH {
            return Err(prefix_err("more than 8 segments"));
        }
        validate_segment(seg)?;
    }
    Ok(())
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_serde!(Prefix, "a prefix such as \"86.31.1005\"");

// ---------------------------------------------------------------------------
// Apex
// ---------------------------------------------------------------------------

/// The DNS name under which identifiers are published (`cpid.internal`).
///
/// Stored lower case without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Apex(String);

impl Apex {
    /// The default apex, under `.internal`, the TLD reserved for private use.
    pub const DEFAULT: &'static str = "cpid.internal";
    /// Longest apex, leaving room for any identifier within 255 octets.
    pub const MAX_LEN: usize = 150;

    /// Parses an apex (case-insensitive; one trailing dot allowed).
    pub fn parse(s: &str) -> Result<Apex, IdentifierError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(apex_err("empty (the DNS root cannot be the apex)"));
        }
        if s.len() > Apex::MAX_LEN {
            return Err(apex_err("longer than 150 octets"));
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(apex_err("empty label"));
            }
            if label.len() > 63 {
                return Err(apex_err("label longer than 63 octets"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(apex_err(
                    "label contains a character other than a letter, digit or hyphen",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(apex_err("label starts or ends with a hyphen"));
            }
            if label.bytes().all(|b| b.is_ascii_digit()) {
                return Err(apex_err("label is all digits"));
            }
        }
        Ok(Apex(s.to_ascii_lowercase()))
    }

    /// The apex, lower case, without the trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Apex {
    fn default() -> Apex {
        Apex(Apex::DEFAULT.to_owned())
    }
}

impl fmt::Display for Apex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_serde!(Apex, "a DNS name such as \"cpid.internal\"");

// ---------------------------------------------------------------------------
// Identifier
// ---------------------------------------------------------------------------

/// An identifier: prefix, class, serial and check character.
///
/// Ordered by its canonical string (byte order), so any store keyed by
/// canonical strings lists identifiers in `Ord` order.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identifier {
    prefix: Prefix,
    class: Class,
    serial: Serial,
    /// Check value, 0–35.
    check: u8,
}

impl Identifier {
    /// Longest canonical identifier: 55 (prefix) + 1 + 2 + 1 + 12 + 1 + 1.
    pub const MAX_LEN: usize = Prefix::MAX_LEN + 1 + 2 + 1 + Serial::MAX_LEN + 1 + 1;

    /// The identifier with the given parts; computes the check character.
    pub fn new(prefix: Prefix, class: Class, serial: Serial) -> Identifier {
        let check = compute_check(&prefix, class, serial);
        Identifier {
            prefix,
            class,
            serial,
            check,
        }
    }

    /// Parses an identifier, case-insensitively.
    pub fn parse(s: &str) -> Result<Identifier, IdentifierError> {
        if s.is_empty() {
            return Err(IdentifierError::Empty);
        }
        if s.len() > Identifier::MAX_LEN {
            return Err(IdentifierError::TooLong {
                len: s.len(),
                max: Identifier::MAX_LEN,
            });
        }
        let (prefix, suffix) = s.split_once('/').ok_or(IdentifierError::MissingSeparator)?;
        let prefix = Prefix::parse(prefix)?;
        if suffix.contains('/') {
            return Err(suffix_err("more than one '/'"));
        }
        Identifier::with_suffix(prefix, suffix)
    }

    /// Parses `CLASS-SERIAL-CHECK` (any case) under `prefix`.
    fn with_suffix(prefix: Prefix, suffix: &str) -> Result<Identifier, IdentifierError> {
        if suffix.is_empty() {
            return Err(suffix_err("empty suffix"));
        }
        let mut parts = suffix.split('-');
        let class = parts.next().unwrap_or_default();
        let Some(serial) = parts.next() else {
            return Err(suffix_err("expected CLASS-SERIAL-CHECK, found no '-'"));
        };
        let check = parts.next();
        if parts.next().is_some() {
            return Err(suffix_err(
                "expected CLASS-SERIAL-CHECK, found more than two '-'",
            ));
        }
        let class = Class::parse(class)?;
        let serial = Serial::parse(serial)?;
        let id = Identifier::new(prefix, class, serial);
        let expected = id.check_char();
        let mut found = check.unwrap_or_default().chars();
        let Some(c) = found.next() else {
            return Err(IdentifierError::MissingCheckChar { expected });
        };
        if found.next().is_some() {
            return Err(suffix_err("check part is longer than one character"));
        }
        let c = c.to_ascii_uppercase();
        if c != expected {
            return Err(IdentifierError::CheckChar { expected, found: c });
        }
        Ok(id)
    }

    /// The prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// The class.
    pub fn class(&self) -> Class {
        self.class
    }

    /// The serial.
    pub fn serial(&self) -> Serial {
        self.serial
    }

    /// The check character (upper case).
    pub fn check_char(&self) -> char {
        check::char_of(self.check)
    }

    /// The suffix as a DNS label, lower case: `"ic-0000a7-q"`.
    pub fn suffix_label(&self) -> String {
        let mut s = String::with_capacity(2 + 1 + Serial::MAX_LEN + 1 + 1);
        self.push_suffix_label(&mut s);
        s
    }

    fn push_suffix_label(&self, s: &mut String) {
        s.push_str(&self.class.code().to_ascii_lowercase());
        s.push('-');
        for c in self.serial.text().bytes() {
            s.push(char::from(c.to_ascii_lowercase()));
        }
        s.push('-');
        s.push(self.check_char().to_ascii_lowercase());
    }

    /// The identifier's DNS name, fully qualified and lower case:
    /// `"ic-0000a7-q.1005.31.86.cpid.internal."`.
    pub fn to_dns_name(&self, apex: &Apex) -> String {
        let mut s = String::with_capacity(
            2 + 1 + Serial::MAX_LEN + 1 + 1 + 1 + self.prefix.0.len() + 1 + apex.0.len() + 1,
        );
        self.push_suffix_label(&mut s);
        s.push('.');
        push_reversed_segments(&mut s, &self.prefix.0);
        s.push('.');
        s.push_str(&apex.0);
        s.push('.');
        s
    }

    /// The identifier named by a DNS name under `apex` (case-insensitive,
    /// trailing dot optional): the suffix label, then the prefix segments
    /// most-specific first, then the apex.
    pub fn from_dns_name(name: &str, apex: &Apex) -> Result<Identifier, IdentifierError> {
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return Err(dns_err("empty name"));
        }
        if !name.is_ascii() {
            return Err(dns_err("non-ASCII character"));
        }
        if name.len() > 253 {
            return Err(dns_err("longer than 253 octets"));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(dns_err("empty label"));
            }
            if label.len() > 63 {
                return Err(dns_err("label longer than 63 octets"));
            }
        }
        let Some(rest) = strip_apex(name, apex.as_str()) else {
            if name.eq_ignore_ascii_case(apex.as_str()) {
                return Err(dns_err("the apex itself names no identifier"));
            }
            return Err(IdentifierError::NotUnderApex {
                apex: apex.0.clone(),
            });
        };
        let Some((suffix, prefix_labels)) = rest.split_once('.') else {
            return Err(dns_err(
                "no prefix labels between the suffix label and the apex",
            ));
        };
        if !suffix.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Err(dns_err("first label is not an identifier suffix label"));
        }
        if !prefix_labels
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err(dns_err(
                "a prefix label contains a character other than a digit",
            ));
        }
        let mut prefix = String::with_capacity(prefix_labels.len());
        push_reversed_segments(&mut prefix, prefix_labels);
        let prefix = Prefix::from_string(prefix)?;
        Identifier::with_suffix(prefix, suffix)
    }

    /// The canonical form as a byte sequence, without allocating.
    fn canonical_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let serial = self.serial.text();
        self.prefix
            .0
            .bytes()
            .chain([b'/'])
            .chain(self.class.code().bytes())
            .chain([b'-'])
            .chain(serial.bytes())
            .chain([b'-', check::alnum(self.check)])
    }
}

/// `name` without `.apex` at its end (ASCII case-insensitive), if it is there.
fn strip_apex<'a>(name: &'a str, apex: &str) -> Option<&'a str> {
    let cut = name.len().checked_sub(apex.len())?;
    let (head, tail) = (name.get(..cut)?, name.get(cut..)?);
    if !tail.eq_ignore_ascii_case(apex) {
        return None;
    }
    head.strip_suffix('.').filter(|rest| !rest.is_empty())
}

fn compute_check(prefix: &Prefix, class: Class, serial: Serial) -> u8 {
    let mut state = check::State::new();
    let serial = serial.text();
    let data = prefix
        .0
        .bytes()
        .filter(|&b| b != b'.')
        .chain(class.code().bytes())
        .chain(serial.bytes());
    for c in data {
        // Every byte here is an upper-case letter or a digit by construction.
        if let Some(v) = check::value(c) {
            state.push(v);
        }
    }
    state.check_value()
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}-{}-{}",
            self.prefix,
            self.class,
            self.serial,
            self.check_char()
        )
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier(\"{self}\")")
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Identifier {
    fn cmp(&self, other: &Self) -> Ordering {
        self.canonical_bytes().cmp(other.canonical_bytes())
    }
}

string_serde!(
    Identifier,
    "an identifier such as \"86.31.1005/IC-0000A7-Q\""
);

/// GB/T 2260 province-level division codes: the regional segments of the
/// national prefix (`86.31` is Shanghai) and the `region` of a provider.
pub const PROVINCES: [(&str, &str); 34] = [
    ("11", "Beijing"),
    ("12", "Tianjin"),
    ("13", "Hebei"),
    ("14", "Shanxi"),
    ("15", "Inner Mongolia"),
    ("21", "Liaoning"),
    ("22", "Jilin"),
    ("23", "Heilongjiang"),
    ("31", "Shanghai"),
    ("32", "Jiangsu"),
    ("33", "Zhejiang"),
    ("34", "Anhui"),
    ("35", "Fujian"),
    ("36", "Jiangxi"),
    ("37", "Shandong"),
    ("41", "Henan"),
    ("42", "Hubei"),
    ("43", "Hunan"),
    ("44", "Guangdong"),
    ("45", "Guangxi"),
    ("46", "Hainan"),
    ("50", "Chongqing"),
    ("51", "Sichuan"),
    ("52", "Guizhou"),
    ("53", "Yunnan"),
    ("54", "Tibet"),
    ("61", "Shaanxi"),
    ("62", "Gansu"),
    ("63", "Qinghai"),
    ("64", "Ningxia"),
    ("65", "Xinjiang"),
    ("71", "Taiwan"),
    ("81", "Hong Kong"),
    ("82", "Macao"),
];

/// The province of a GB/T 2260 code, if it is one.
pub fn province(code: &str) -> Option<&'static str> {
    PROVINCES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
    }

    #[test]
    fn worked_example_check_char_is_q() {
        assert_eq!(check::compute("86311005IC0000A7"), Some('Q'));
        assert!(check::verify("86311005IC0000A7Q"));
        assert_eq!(id("86.31.1005/IC-0000A7-Q").check_char(), 'Q');
    }

    #[test]
    fn check_residue_is_one_for_every_check_char_we_compute() {
        let mut rng = XorShift(0x1234_5678_9abc_def0);
        for _ in 0..2000 {
            let len = 1 + (rng.next() % 40) as usize;
            let data = random_alnum(&mut rng, len);
            let c = check::compute(&data).unwrap();
            assert!(check::verify(&format!("{data}{c}")), "{data}{c}");
            // Every other check character fails.
            for &other in ALNUM.iter() {
                let other = char::from(other);
                if other != c {
                    assert!(!check::verify(&format!("{data}{other}")));
                }
            }
        }
    }

    #[test]
    fn check_detects_every_single_substitution() {
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        for _ in 0..300 {
            let len = 1 + (rng.next() % 30) as usize;
            let data = random_alnum(&mut rng, len);
            let c = check::compute(&data).unwrap();
            let full: Vec<u8> = format!("{data}{c}").into_bytes();
            for pos in 0..full.len() {
                for &sub in ALNUM.iter() {
                    if sub == full[pos] {
                        continue;
                    }
                    let mut bad = full.clone();
                    bad[pos] = sub;
                    let bad = String::from_utf8(bad).unwrap();
                    assert!(!check::verify(&bad), "substitution undetected: {bad}");
                }
            }
        }
    }

    /// The hybrid system misses exactly one class of adjacent transposition:
    /// values v and v+1 (mod 36) where the running state P satisfies
    /// P + v ≡ 18 (mod 36). Every other adjacent transposition is detected.
    #[test]
    fn check_detects_adjacent_transpositions_except_the_documented_class() {
        let mut rng = XorShift(0x0bad_5eed_1234_4321);
        let mut missed = 0usize;
        let mut total = 0usize;
        for _ in 0..500 {
            let len = 2 + (rng.next() % 30) as usize;
            let data = random_alnum(&mut rng, len);
            let c = check::compute(&data).unwrap();
            let full: Vec<u8> = format!("{data}{c}").into_bytes();
            let mut state = check::State::new();
            for pos in 0..full.len() - 1 {
                let (a, b) = (full[pos], full[pos + 1]);
                let va = check::value(a).unwrap();
                let vb = check::value(b).unwrap();
                if a != b {
                    total += 1;
                    let mut bad = full.clone();
                    bad.swap(pos, pos + 1);
                    let bad = String::from_utf8(bad).unwrap();
                    let lo = if (va + 1) % 36 == vb {
                        Some(va)
                    } else if (vb + 1) % 36 == va {
                        Some(vb)
                    } else {
                        None
                    };
                    let exempt = lo.is_some_and(|v| (state.p + v) % 36 == 18);
                    let undetected = check::verify(&bad);
                    assert_eq!(undetected, exempt, "{bad}: P={} pos={pos}", state.p);
                    missed += usize::from(undetected);
                }
                state.push(va);
            }
        }
        assert!(total > 5000);
        assert!(missed > 0, "the sample never hit the undetected class");
        assert!(missed * 100 < total, "{missed} of {total} missed");
    }

    /// Documented limitation (schema/identifier.md §5.6): the check covers
    /// characters, not where the dots of the prefix are.
    #[test]
    fn check_does_not_cover_separator_positions() {
        assert_eq!(
            id("86.3.11005/IC-0000A7-Q").check_char(),
            id("86.31.1005/IC-0000A7-Q").check_char()
        );
    }

    #[test]
    fn check_rejects_non_alphanumeric_data() {
        assert_eq!(check::compute("86.31"), None);
        assert!(!check::verify(""));
        assert!(!check::verify("86/Q"));
    }

    #[test]
    fn parse_is_case_insensitive_and_renders_canonical_upper_case() {
        let a = id("86.31.1005/ic-0000a7-q");
        assert_eq!(a.to_string(), "86.31.1005/IC-0000A7-Q");
        assert_eq!(a, id("86.31.1005/Ic-0000A7-q"));
        assert_eq!(a.prefix().as_str(), "86.31.1005");
        assert_eq!(a.class(), Class::Ic);
        assert_eq!(a.serial().value(), 10 * 32 + 7);
    }

    #[test]
    fn new_computes_the_check_char_that_parse_accepts() {
        let p = Prefix::parse("86.44").unwrap();
        for class in Class::ALL {
            for v in [1, 31, 32, 1 << 30, (1 << 30) - 1, 1 << 35, Serial::MAX] {
                let i = Identifier::new(p.clone(), class, Serial::new(v).unwrap());
                let s = i.to_string();
                assert_eq!(Identifier::parse(&s).unwrap(), i, "{s}");
                assert_eq!(Identifier::parse(&s.to_ascii_lowercase()).unwrap(), i);
            }
        }
    }

    #[test]
    fn wrong_check_char_reports_expected_and_found() {
        assert_eq!(
            Identifier::parse("86.31.1005/IC-0000A7-K"),
            Err(IdentifierError::CheckChar {
                expected: 'Q',
                found: 'K'
            })
        );
        assert_eq!(
            Identifier::parse("86.31.1005/IC-0000A7"),
            Err(IdentifierError::MissingCheckChar { expected: 'Q' })
        );
        assert_eq!(
            Identifier::parse("86.31.1005/IC-0000A7-"),
            Err(IdentifierError::MissingCheckChar { expected: 'Q' })
        );
    }

    #[test]
    fn each_malformed_part_has_its_own_error_kind() {
        let cases = [
            ("", "empty"),
            ("86.31.1005IC-0000A7-Q", "separator"),
            ("/IC-0000A7-Q", "prefix"),
            ("86..1005/IC-0000A7-Q", "prefix"),
            ("86.031/IC-000001-X", "prefix"),
            ("86.1234567/IC-000001-X", "prefix"),
            ("86.3a/IC-000001-X", "prefix"),
            ("1.2.3.4.5.6.7.8.9/IC-000001-X", "prefix"),
            ("86/XX-000001-X", "unknown_class"),
            ("86/I-000001-X", "unknown_class"),
            ("86/IC-00000I-X", "serial"),
            ("86/IC-00001-X", "serial"),
            ("86/IC-0000001-X", "serial"),
            ("86/IC-000000-X", "serial"),
            ("86/IC-1234567890ABC-X", "serial"),
            ("86/IC000001X", "suffix"),
            ("86/IC-000001-X-Y", "suffix"),
            ("86/IC-000001-XY", "suffix"),
            ("86/", "suffix"),
            ("86/IC-000001", "missing_check_char"),
            ("86/31/IC-000001-X", "suffix"),
        ];
        for (input, kind) in cases {
            let err = Identifier::parse(input).unwrap_err();
            assert_eq!(err.kind(), kind, "{input:?}: {err}");
        }
        let long = "1".repeat(Identifier::MAX_LEN + 1);
        assert_eq!(Identifier::parse(&long).unwrap_err().kind(), "too_long");
    }

    #[test]
    fn serial_renders_zero_padded_to_six_then_grows() {
        assert_eq!(Serial::new(1).unwrap().to_string(), "000001");
        assert_eq!(Serial::new(32u64.pow(6) - 1).unwrap().to_string(), "ZZZZZZ");
        assert_eq!(Serial::new(32u64.pow(6)).unwrap().to_string(), "1000000");
        assert_eq!(
            Serial::new(Serial::MAX).unwrap().to_string(),
            "Z".repeat(12)
        );
        assert!(Serial::new(0).is_err());
        assert!(Serial::new(Serial::MAX + 1).is_err());
        assert_eq!(Serial::parse("zzzzzz").unwrap().value(), 32u64.pow(6) - 1);
        for bad in ["00000L", "00000O", "00000U", "00000i", "0000-1", "0000é"] {
            assert!(Serial::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_tree_operations() {
        let root = Prefix::parse("86").unwrap();
        let sh = root.child("31").unwrap();
        let node = sh.child("1005").unwrap();
        assert_eq!(node.as_str(), "86.31.1005");
        assert_eq!(node.depth(), 3);
        assert_eq!(node.segments().collect::<Vec<_>>(), ["86", "31", "1005"]);
        assert!(root.contains(&node) && sh.contains(&node) && node.contains(&node));
        assert!(!node.contains(&sh));
        assert!(!Prefix::parse("86.3").unwrap().contains(&sh));
        assert_eq!(node.parent(), Some(sh.clone()));
        assert_eq!(root.parent(), None);
        assert_eq!(
            node.zone_name(&Apex::default()),
            "1005.31.86.cpid.internal."
        );
        assert!(root.child("01").is_err());
        assert!(Prefix::parse("0").is_ok());
        let deep = Prefix::parse("1.2.3.4.5.6.7.8").unwrap();
        assert_eq!(deep.child("9").unwrap_err().kind(), "prefix");
    }

    #[test]
    fn dns_mapping_round_trips() {
        let apex = Apex::default();
        let a = id("86.31.1005/IC-0000A7-Q");
        assert_eq!(a.suffix_label(), "ic-0000a7-q");
        assert_eq!(
            a.to_dns_name(&apex),
            "ic-0000a7-q.1005.31.86.cpid.internal."
        );
        for name in [
            "ic-0000a7-q.1005.31.86.cpid.internal.",
            "ic-0000a7-q.1005.31.86.cpid.internal",
            "IC-0000A7-Q.1005.31.86.CPID.Internal.",
        ] {
            assert_eq!(Identifier::from_dns_name(name, &apex).unwrap(), a, "{name}");
        }
    }

    #[test]
    fn dns_names_with_wrong_structure_are_rejected() {
        let apex = Apex::default();
        let cases = [
            ("", "dns_name"),
            (".", "dns_name"),
            ("ic-0000a7-q.1005.31.86.example.org.", "not_under_apex"),
            ("ic-0000a7-q.1005.31.86.xcpid.internal.", "not_under_apex"),
            ("cpid.internal.", "dns_name"),
            ("ic-0000a7-q.cpid.internal.", "dns_name"),
            ("1005.31.86.cpid.internal.", "dns_name"),
            ("ic-0000a7-q.1005.x1.86.cpid.internal.", "dns_name"),
            ("ic-0000a7-q.1005..86.cpid.internal.", "dns_name"),
            ("ic-0000a7-q.1005.31.86.cpid.internal..", "dns_name"),
            ("ic-0000a7-q.1005.031.86.cpid.internal.", "prefix"),
            ("ic-0000a7-k.1005.31.86.cpid.internal.", "check_char"),
            ("xx-0000a7-q.1005.31.86.cpid.internal.", "unknown_class"),
            ("ic-0000a7-q.86.31.1005.cpid.internal.", "check_char"),
            ("ic-0000a7-q.1005.31.86.cpid.intérnal.", "dns_name"),
        ];
        for (name, kind) in cases {
            let err = Identifier::from_dns_name(name, &apex).unwrap_err();
            assert_eq!(err.kind(), kind, "{name:?}: {err}");
        }
    }

    #[test]
    fn apex_rules() {
        assert_eq!(
            Apex::parse("CPID.Internal.").unwrap().as_str(),
            "cpid.internal"
        );
        assert_eq!(Apex::default().as_str(), "cpid.internal");
        for bad in [
            "", ".", "a..b", "-a.b", "a-.b", "a_b.c", "cpid.123", "a b", "é.x",
        ] {
            assert_eq!(Apex::parse(bad).unwrap_err().kind(), "apex", "{bad:?}");
        }
        assert!(Apex::parse(&"a".repeat(64)).is_err());
        assert!(Apex::parse(&["a".repeat(63), "b".repeat(63)].join(".")).is_ok());
        let too_long = ["a".repeat(63), "b".repeat(63), "c".repeat(30)].join(".");
        assert!(Apex::parse(&too_long).is_err());
    }

    #[test]
    fn longest_identifier_fits_dns_limits_under_longest_apex() {
        let apex =
            Apex::parse(&["a".repeat(63), "b".repeat(63), "c".repeat(22)].join(".")).unwrap();
        assert_eq!(apex.as_str().len(), Apex::MAX_LEN);
        let prefix = Prefix::parse(&["999999"; 8].join(".")).unwrap();
        let i = Identifier::new(prefix, Class::Nd, Serial::new(Serial::MAX).unwrap());
        assert_eq!(i.to_string().len(), Identifier::MAX_LEN);
        let name = i.to_dns_name(&apex);
        // Wire length: text without the final dot, plus a length octet per
        // label and the root octet, is the text length + 1.
        assert!(name.len() < 255, "{}", name.len());
        assert_eq!(Identifier::from_dns_name(&name, &apex).unwrap(), i);
    }

    #[test]
    fn ordering_is_canonical_string_order() {
        let mut ids: Vec<Identifier> = [
            "86.31/IC-000001",
            "86.31.1005/IC-000001",
            "86.4/GC-000001",
            "86.31/IC-1000000",
            "86.31/IC-ZZZZZZ",
            "86.31/GC-000002",
        ]
        .iter()
        .map(|s| {
            let (p, rest) = s.split_once('/').unwrap();
            let (c, serial) = rest.split_once('-').unwrap();
            Identifier::new(
                Prefix::parse(p).unwrap(),
                Class::parse(c).unwrap(),
                Serial::parse(serial).unwrap(),
            )
        })
        .collect();
        ids.sort();
        let strings: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut sorted = strings.clone();
        sorted.sort();
        assert_eq!(strings, sorted);
    }

    #[test]
    fn serde_uses_canonical_strings() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct All {
            id: Identifier,
            prefix: Prefix,
            class: Class,
            serial: Serial,
            apex: Apex,
        }
        let all = All {
            id: id("86.31.1005/ic-0000a7-q"),
            prefix: Prefix::parse("86.31").unwrap(),
            class: Class::Tx,
            serial: Serial::new(167).unwrap(),
            apex: Apex::default(),
        };
        let bytes = postcard::to_stdvec(&all).unwrap();
        assert_eq!(postcard::from_bytes::<All>(&bytes).unwrap(), all);
        let toml = toml::to_string(&all).unwrap();
        assert!(toml.contains("\"86.31.1005/IC-0000A7-Q\""), "{toml}");
        assert_eq!(toml::from_str::<All>(&toml).unwrap(), all);
        let bad = toml.replace("IC-0000A7-Q", "IC-0000A7-K");
        assert!(toml::from_str::<All>(&bad).is_err());
    }

    // --- never panics -----------------------------------------------------

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    fn random_alnum(rng: &mut XorShift, len: usize) -> String {
        (0..len)
            .map(|_| char::from(ALNUM[(rng.next() % 36) as usize]))
            .collect()
    }

    /// Checks the invariants every successful parse must satisfy.
    fn exercise(s: &str, apex: &Apex) {
        if let Ok(i) = Identifier::parse(s) {
            let canonical = i.to_string();
            assert!(canonical.eq_ignore_ascii_case(s), "{s:?} -> {canonical}");
            assert_eq!(Identifier::parse(&canonical).unwrap(), i);
            let name = i.to_dns_name(apex);
            assert_eq!(Identifier::from_dns_name(&name, apex).unwrap(), i);
        }
        if let Ok(i) = Identifier::from_dns_name(s, apex) {
            let name = i.to_dns_name(apex);
            assert!(
                name.trim_end_matches('.')
                    .eq_ignore_ascii_case(s.trim_end_matches('.'))
            );
        }
        let _ = Prefix::parse(s);
        let _ = Serial::parse(s);
        let _ = Class::parse(s);
        let _ = Apex::parse(s);
        let _ = check::compute(s);
        let _ = check::verify(s);
    }

    #[test]
    fn parsers_never_panic_on_random_bytes() {
        let apex = Apex::default();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..50_000 {
            let len = (rng.next() % 90) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            exercise(&String::from_utf8_lossy(&bytes), &apex);
        }
    }

    #[test]
    fn parsers_never_panic_on_near_miss_strings() {
        // Biased towards the characters identifiers and DNS names are made of,
        // and mutations of valid ones, so the deep paths are reached.
        const ALPHABET: &[&str] = &[
            "0", "1", "8", "6", "3", "9", "a", "Z", "i", "l", "o", "u", "G", "C", "I", ".", "/",
            "-", "é", "\u{0}", " ", "cpid", "internal", "ic", "86", "000",
        ];
        let apex = Apex::default();
        let valid = [
            id("86.31.1005/IC-0000A7-Q").to_string(),
            id("86.31.1005/IC-0000A7-Q").to_dns_name(&apex),
        ];
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut accepted = 0;
        for round in 0..100_000 {
            let s = if round % 2 == 0 {
                let n = (rng.next() % 24) as usize;
                (0..n)
                    .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize])
                    .collect::<String>()
            } else {
                let mut chars: Vec<char> = valid[round % 4 / 2].chars().collect();
                for _ in 0..1 + rng.next() % 3 {
                    let pos = (rng.next() % (chars.len() as u64 + 1)) as usize;
                    let c = char::from(b"0123456789abcdefIKLOUXYZ./-"[(rng.next() % 27) as usize]);
                    match rng.next() % 3 {
                        0 if pos < chars.len() => chars[pos] = c,
                        1 if pos < chars.len() => {
                            chars.remove(pos);
                        }
                        _ => chars.insert(pos, c),
                    }
                }
                chars.into_iter().collect()
            };
            if Identifier::parse(&s).is_ok() || Identifier::from_dns_name(&s, &apex).is_ok() {
                accepted += 1;
            }
            exercise(&s, &apex);
        }
        assert!(
            accepted > 0,
            "the generator never reached a valid identifier"
        );
    }
}
