//! Address networks (`192.0.2.0/24`, `2001:db8::/32`, a bare address) as
//! the configuration names them: who may transfer the zone
//! ([`super::xfr`]) and who response-rate limiting leaves alone
//! ([`super::rrl`]). One parser and one matcher for both.
//!
//! An IPv4-mapped IPv6 peer (`::ffff:192.0.2.7`, as a dual-stack socket
//! reports an IPv4 client) matches as the IPv4 address it is. Parsing never
//! panics; a bad network is an error that names it.

use std::net::IpAddr;

/// A network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    bits: u8,
}

impl Network {
    /// Reads `ADDR` or `ADDR/BITS`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Network, String> {
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|e| format!("{text:?} is not an address or network: {e}"))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= width)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0 to {width}"))?,
            None => width,
        };
        Ok(Network { addr, bits })
    }

    /// One address.
    pub fn host(addr: IpAddr) -> Network {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        Network { addr, bits }
    }

    /// Whether `peer` is inside the network.
    pub fn contains(&self, peer: IpAddr) -> bool {
        match (self.addr, peer.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(p)) => {
                masked(u128::from(u32::from(n)), self.bits, 32)
                    == masked(u128::from(u32::from(p)), self.bits, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(p)) => {
                masked(u128::from(n), self.bits, 128) == masked(u128::from(p), self.bits, 128)
            }
            _ => false,
        }
    }
}

/// The leading `bits` of a `width`-bit address `a`.
fn masked(a: u128, bits: u8, width: u8) -> u128 {
    let shift = u32::from(width.saturating_sub(bits));
    if shift >= 128 { 0 } else { a >> shift }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let n = Network::parse("192.0.2.0/24").unwrap();
        assert!(n.contains(ip("192.0.2.200")));
        assert!(n.contains(ip("::ffff:192.0.2.9")), "mapped IPv4 matches");
        assert!(!n.contains(ip("192.0.3.1")));
        assert!(!n.contains(ip("2001:db8::1")));
        let any = Network::parse("0.0.0.0/0").unwrap();
        assert!(any.contains(ip("203.0.113.1")));
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let host = Network::parse("::1").unwrap();
        assert_eq!(host, Network::host(ip("::1")));
        assert!(host.contains(ip("::1")) && !host.contains(ip("::2")));
    }

    #[test]
    fn bad_networks_are_named() {
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "x", "10.0.0.0/-1", ""] {
            let e = Network::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
