//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their corpora: every network-facing parser, fed arbitrary bytes.
//! Each must return without panicking whatever the input.

use std::sync::{Arc, OnceLock};

use crate::dns::engine::{self, Transport};
use crate::dns::wire::WireName;
use crate::dns::wire::{rtype, txt_rdata};
use crate::dns::zone::{ApexData, RrSet, SoaTimers, Zone};
use crate::identifier::{Apex, Identifier};
use crate::record::SignedRecord;

/// The identifier parser and the DNS-name mapping.
pub fn identifier(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = Identifier::parse(s) {
            let apex = Apex::default();
            let name = id.to_dns_name(&apex);
            // The mapping must round-trip for every identifier that parses.
            assert_eq!(Identifier::from_dns_name(&name, &apex).ok(), Some(id));
        }
        let _ = Identifier::from_dns_name(s, &Apex::default());
    }
}

/// The signed-record decoder: anything it accepts re-encodes, from its
/// fields, to exactly the input.
pub fn record(data: &[u8]) {
    if let Ok(r) = SignedRecord::decode(data) {
        let mut again = r.record().canonical_bytes();
        again.extend_from_slice(&r.signature().0);
        assert_eq!(again, data);
    }
}

fn fuzz_zone() -> &'static Arc<Zone> {
    static ZONE: OnceLock<Arc<Zone>> = OnceLock::new();
    ZONE.get_or_init(|| {
        let apex = WireName::parse("86.cpid.internal").expect("constant fuzz zone");
        let zone = Zone::new(ApexData {
            name_servers: vec![(
                apex.prepend("ns1").expect("constant fuzz zone"),
                vec![std::net::IpAddr::from([127, 0, 0, 1])],
            )],
            hostmaster: apex.prepend("hostmaster").expect("constant fuzz zone"),
            apex: apex.clone(),
            timers: SoaTimers::default(),
            serial: 1,
            extra: vec![],
        })
        .expect("constant fuzz zone");
        let name =
            WireName::parse("ic-000001-0.1005.31.86.cpid.internal").expect("constant fuzz zone");
        let sets = [RrSet {
            rtype: rtype::TXT,
            ttl: 60,
            rdatas: vec![txt_rdata(&["id=86.31.1005/IC-000001-0"])],
        }];
        zone.set(&name, &sets).expect("constant fuzz zone");
        Arc::new(zone)
    })
}

/// The DNS request path: the answer engine on a small zone, both
/// transports. A response, when there is one, is never larger than allowed.
pub fn dns_query(data: &[u8]) {
    let zone = fuzz_zone();
    let mut out = Vec::new();
    if engine::respond(zone, data, Transport::Udp, &mut out).is_some() {
        assert!(out.len() <= usize::from(engine::MAX_UDP_PAYLOAD));
        assert_eq!(out.get(0..2), data.get(0..2), "the id is echoed");
    }
    let _ = engine::respond(zone, data, Transport::Tcp, &mut out);
}
