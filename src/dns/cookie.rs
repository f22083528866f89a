//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018):
//! a client that sends its client cookie gets a server cookie back, and a
//! client that returns a valid one has proved it receives answers at its
//! address, so response-rate limiting ([`super::rrl`]) leaves it alone.
//!
//! A server cookie is 16 bytes: version 1, three reserved bytes, a 32-bit
//! Unix timestamp, and SipHash-2-4 keyed with the node's 16-byte secret
//! over client cookie | version | reserved | timestamp | client address
//! (RFC 9018 §4.2, its Appendix A vectors are the tests). One is valid for
//! an hour and up to five minutes ahead of the node's clock (§4.3); every
//! answer to a query with a COOKIE option carries a freshly made one.
//!
//! What a query's COOKIE option gets ([`Verdict`]): a client cookie alone
//! → a new server cookie; a valid server cookie → answered normally, and
//! exempt from RRL; an invalid or expired one → answered as if only the
//! client cookie had come (a new server cookie; no BADCOOKIE, which
//! RFC 7873 §5.2.3 leaves to the server); a malformed option (client part
//! not 8 bytes, server part not 8 to 32) → FORMERR, decided while the
//! query is read ([`super::query`]). The option itself is written by the
//! one response writer ([`super::response`]). Nothing here allocates or
//! panics on any input.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// EDNS option code of COOKIE (RFC 7873 §4).
pub const OPTION_CODE: u16 = 10;
/// Client cookie length.
pub const CLIENT_LEN: usize = 8;
/// Server cookie length cpid makes (RFC 9018 §4).
pub const SERVER_LEN: usize = 16;
/// Shortest and longest server cookie a client may send (RFC 7873 §4).
pub const SERVER_MIN: usize = 8;
pub const SERVER_MAX: usize = 32;
/// The COOKIE option data cpid sends: client cookie and its server cookie.
pub const REPLY_LEN: usize = CLIENT_LEN + SERVER_LEN;
/// How long a server cookie is valid, seconds (RFC 9018 §4.3).
pub const LIFETIME_SECS: i64 = 3600;
/// How far ahead of the node's clock a server cookie may be, seconds.
pub const SKEW_SECS: i64 = 300;

const VERSION: u8 = 1;

/// A node's cookie secret.
#[derive(Clone)]
pub struct Cookies {
    secret: [u8; 16],
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookies { secret: <hidden> }")
    }
}

/// Why a cookie secret could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    #[error("cookie_secret must be 32 hex digits (16 bytes)")]
    BadSecret,
    #[error("no randomness for a cookie secret: {0}")]
    Random(String),
}

/// What a query's COOKIE option turned out to be, for the answer and the
/// `cpid_dns_cookies_total` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// No COOKIE option (or cookies are off).
    #[default]
    Absent,
    /// A client cookie alone: a server cookie is handed out.
    New,
    /// A server cookie this node made for this client, still fresh.
    Valid,
    /// A server cookie that is not (or no longer) this node's for this
    /// client: a new one is handed out.
    Invalid,
    /// An option of the wrong length: FORMERR.
    Malformed,
}

impl Verdict {
    /// The counted results, in label order.
    pub const COUNTED: [Verdict; 4] = [
        Verdict::New,
        Verdict::Valid,
        Verdict::Invalid,
        Verdict::Malformed,
    ];

    /// The `result` label; `None` for no option.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Verdict::Absent => None,
            Verdict::New => Some("new"),
            Verdict::Valid => Some("valid"),
            Verdict::Invalid => Some("invalid"),
            Verdict::Malformed => Some("malformed"),
        }
    }
}

/// A COOKIE option as read from a query (lengths already checked).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub client: [u8; CLIENT_LEN],
    server: [u8; SERVER_MAX],
    server_len: u8,
}

impl Received {
    /// Splits the option data; `None` when its length is malformed
    /// (RFC 7873 §5.2.2).
    pub fn parse(data: &[u8]) -> Option<Received> {
        let (client, server) = data.split_at_checked(CLIENT_LEN)?;
        if !server.is_empty() && !(SERVER_MIN..=SERVER_MAX).contains(&server.len()) {
            return None;
        }
        let mut r = Received {
            client: client.try_into().ok()?,
            server: [0; SERVER_MAX],
            server_len: server.len() as u8,
        };
        r.server.get_mut(..server.len())?.copy_from_slice(server);
        Some(r)
    }

    /// The server cookie the client returned (empty when none).
    pub fn server(&self) -> &[u8] {
        self.server
            .get(..usize::from(self.server_len))
            .unwrap_or_default()
    }
}

impl Cookies {
    /// A node's cookies under `secret`.
    pub fn new(secret: [u8; 16]) -> Cookies {
        Cookies { secret }
    }

    /// From the configured hex secret, or a random one (a new secret each
    /// start: clients learn a new server cookie after a restart).
    pub fn from_config(hex: Option<&str>) -> Result<Cookies, CookieError> {
        let mut secret = [0u8; 16];
        match hex {
            Some(h) => {
                let h = h.trim();
                if h.len() != 32 {
                    return Err(CookieError::BadSecret);
                }
                for (i, b) in secret.iter_mut().enumerate() {
                    let pair = h.get(2 * i..2 * i + 2).ok_or(CookieError::BadSecret)?;
                    *b = u8::from_str_radix(pair, 16).map_err(|_| CookieError::BadSecret)?;
                }
            }
            None => getrandom::fill(&mut secret).map_err(|e| CookieError::Random(e.to_string()))?,
        }
        Ok(Cookies::new(secret))
    }

    /// The server cookie for `client` at `addr`, made at `timestamp`.
    pub fn server_cookie(
        &self,
        client: &[u8; CLIENT_LEN],
        addr: IpAddr,
        timestamp: u32,
    ) -> [u8; SERVER_LEN] {
        let mut cookie = [0u8; SERVER_LEN];
        let head = head(VERSION, [0; 3], timestamp);
        let hash = self.hash(client, &head, addr);
        let (h, tail) = cookie.split_at_mut(8);
        h.copy_from_slice(&head);
        tail.copy_from_slice(&hash);
        cookie
    }

    /// Whether `server` is a cookie this node made for `client` at `addr`
    /// that is still valid at `now`. The reserved bytes are hashed as
    /// received (RFC 9018 §4.2).
    pub fn verify(&self, client: &[u8; CLIENT_LEN], server: &[u8], addr: IpAddr, now: u32) -> bool {
        let Some((head, hash)) = server.split_first_chunk::<8>() else {
            return false;
        };
        if server.len() != SERVER_LEN || head.first() != Some(&VERSION) {
            return false;
        }
        let [_, _, _, _, t0, t1, t2, t3] = *head;
        if !fresh(u32::from_be_bytes([t0, t1, t2, t3]), now) {
            return false;
        }
        // Not a secret comparison worth timing: a forged cookie buys no
        // more than an unforged client gets (a rate-limited answer).
        self.hash(client, head, addr) == hash
    }

    /// Judges a received option at `now` and makes the option data of the
    /// answer: the client cookie and a fresh server cookie.
    pub fn judge(&self, received: &Received, addr: IpAddr, now: u32) -> (Verdict, [u8; REPLY_LEN]) {
        let verdict = if received.server().is_empty() {
            Verdict::New
        } else if self.verify(&received.client, received.server(), addr, now) {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        let mut reply = [0u8; REPLY_LEN];
        let (c, s) = reply.split_at_mut(CLIENT_LEN);
        c.copy_from_slice(&received.client);
        s.copy_from_slice(&self.server_cookie(&received.client, addr, now));
        (verdict, reply)
    }

    fn hash(&self, client: &[u8; CLIENT_LEN], head: &[u8; 8], addr: IpAddr) -> [u8; 8] {
        let mut h = SipHasher24::new_with_key(&self.secret);
        h.write(client);
        h.write(head);
        match addr.to_canonical() {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        h.finish().to_le_bytes()
    }
}

fn head(version: u8, reserved: [u8; 3], timestamp: u32) -> [u8; 8] {
    let [r0, r1, r2] = reserved;
    let [t0, t1, t2, t3] = timestamp.to_be_bytes();
    [version, r0, r1, r2, t0, t1, t2, t3]
}

/// Whether a cookie stamped at `timestamp` is usable at `now`: at most an
/// hour old, at most five minutes ahead, in serial-number arithmetic
/// (RFC 1982), so the wrap of the 32-bit clock does not matter.
fn fresh(timestamp: u32, now: u32) -> bool {
    let age = i64::from(now.wrapping_sub(timestamp) as i32);
    (-SKEW_SECS..=LIFETIME_SECS).contains(&age)
}

/// The Unix time in seconds, as a cookie timestamp (wrapping in 2106).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn cookies(secret: &str) -> Cookies {
        Cookies::from_config(Some(secret)).unwrap()
    }

    fn client(s: &str) -> [u8; 8] {
        unhex(s).try_into().unwrap()
    }

    /// RFC 9018 Appendix A, each reply byte for byte.
    #[test]
    fn rfc9018_appendix_a_server_cookies_byte_for_byte() {
        let cases = [
            // A.1: learning a new server cookie.
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "2464c4abcf10c957",
                "198.51.100.100",
                1559731985,
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
            ),
            // A.2: the same client, a renewed cookie.
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "2464c4abcf10c957",
                "198.51.100.100",
                1559734385,
                "2464c4abcf10c957010000005cf7a871d4a564a1442aca77",
            ),
            // A.3: another client.
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "fc93fc62807ddb86",
                "203.0.113.203",
                1559734700,
                "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e",
            ),
            // A.4: an IPv6 client after the secret rolled over.
            (
                "445536bcd2513298075a5d379663c962",
                "22681ab97d52c298",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                1559741961,
                "22681ab97d52c298010000005cf7c609a6bb79d16625507a",
            ),
        ];
        for (secret, c, ip, at, want) in cases {
            let k = cookies(secret);
            let received = Received::parse(&unhex(c)).unwrap();
            let (verdict, reply) = k.judge(&received, ip.parse().unwrap(), at);
            assert_eq!(verdict, Verdict::New);
            assert_eq!(reply.to_vec(), unhex(want), "{ip} at {at}");
        }
    }

    /// The cookies the vectors have clients return: A.2's query (made
    /// 40 minutes earlier), A.3's with reserved bytes set, A.4's under the
    /// old secret and not under the new one.
    #[test]
    fn rfc9018_returned_cookies_verify_where_the_rfc_says() {
        let cases = [
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "198.51.100.100",
                "2464c4abcf10c957010000005cf79f111f8130c3eee29480",
                1559734385,
                true,
            ),
            // A.3's cookie verifies while fresh (reserved bytes hashed as
            // sent) …
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "203.0.113.203",
                "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5",
                1559728000,
                true,
            ),
            // … but when A.3's query comes it is 1 h 52 min old: expired,
            // and the server hands out a new one.
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "203.0.113.203",
                "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5",
                1559734700,
                false,
            ),
            (
                "dd3bdf9344b678b185a6f5cb60fca715",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                "22681ab97d52c298010000005cf7c57926556bd0934c72f8",
                1559741961,
                true,
            ),
            (
                "445536bcd2513298075a5d379663c962",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                "22681ab97d52c298010000005cf7c57926556bd0934c72f8",
                1559741961,
                false,
            ),
            // The same cookie from another address is not this client's.
            (
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                "203.0.113.204",
                "fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5",
                1559728000,
                false,
            ),
        ];
        for (secret, ip, cookie, now, valid) in cases {
            let r = Received::parse(&unhex(cookie)).unwrap();
            let (verdict, _) = cookies(secret).judge(&r, ip.parse().unwrap(), now);
            let want = if valid {
                Verdict::Valid
            } else {
                Verdict::Invalid
            };
            assert_eq!(verdict, want, "{cookie} from {ip}");
        }
    }

    #[test]
    fn a_cookie_holds_for_an_hour_and_five_minutes_ahead() {
        let k = cookies("e5e973e5a6b2a43f48e7dc849e37bfcf");
        let c = client("2464c4abcf10c957");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = 1_559_731_985u32;
        let made = k.server_cookie(&c, ip, t);
        assert!(k.verify(&c, &made, ip, t));
        assert!(k.verify(&c, &made, ip, t + 3600));
        assert!(!k.verify(&c, &made, ip, t + 3601), "expired");
        assert!(k.verify(&c, &made, ip, t - 300));
        assert!(!k.verify(&c, &made, ip, t - 301), "too far in the future");
        // Across the wrap of the 32-bit clock.
        let late = k.server_cookie(&c, ip, u32::MAX - 10);
        assert!(k.verify(&c, &late, ip, 100));
        // Another client cookie, a flipped bit, version 2, a short cookie.
        assert!(!k.verify(&client("2464c4abcf10c958"), &made, ip, t));
        let mut flipped = made;
        flipped[15] ^= 1;
        assert!(!k.verify(&c, &flipped, ip, t));
        let mut v2 = made;
        v2[0] = 2;
        assert!(!k.verify(&c, &v2, ip, t));
        assert!(!k.verify(&c, &made[..8], ip, t));
    }

    #[test]
    fn option_lengths_outside_rfc7873_are_malformed() {
        for len in [0usize, 1, 7, 9, 15, 41, 60] {
            assert!(Received::parse(&vec![7u8; len]).is_none(), "{len} bytes");
        }
        for (len, server) in [(8usize, 0usize), (16, 8), (24, 16), (40, 32)] {
            let r = Received::parse(&vec![7u8; len]).unwrap();
            assert_eq!(r.server().len(), server, "{len} bytes");
        }
    }

    #[test]
    fn secrets_are_32_hex_digits() {
        for bad in [
            "",
            "00",
            "zz5e973e5a6b2a43f48e7dc849e37bfcf",
            "e5e973e5a6b2a43f48e7dc849e37bfcf00",
        ] {
            assert!(Cookies::from_config(Some(bad)).is_err(), "{bad}");
        }
        // Random secrets differ.
        let a = Cookies::from_config(None).unwrap();
        let b = Cookies::from_config(None).unwrap();
        assert_ne!(a.secret, b.secret);
    }
}
