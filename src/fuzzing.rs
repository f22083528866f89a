//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their corpora: every network-facing parser, fed arbitrary bytes.
//! Each must return without panicking whatever the input.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};

use crate::api::body::{
    self, HS_ADMIN_INDEX, HS_PUBKEY_INDEX, IssueRequest, ProviderRequest, UpdateRequest, ValueInput,
};
use crate::api::handles::Filter;
use crate::dns::engine::{self, Transport};
use crate::dns::wire::WireName;
use crate::dns::wire::{rtype, txt_rdata};
use crate::dns::zone::{ApexData, RrSet, SoaTimers, Zone};
use crate::httpsig::{self, Message, SignedRequest};
use crate::identifier::{Apex, Identifier};
use crate::keys::{NodeKey, PublicKey};
use crate::record::{MAX_DATA_LEN, MAX_TTL, SignedRecord, Value};

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

/// The fixed key `http_request` verifies against; the corpus holds
/// requests really signed with it, so verification also succeeds.
pub fn fuzz_http_key() -> &'static NodeKey {
    static KEY: OnceLock<NodeKey> = OnceLock::new();
    KEY.get_or_init(|| NodeKey::from_secret_bytes(&[7u8; 32]))
}

/// The time `http_request` checks bodies at.
const FUZZ_NOW: u64 = 1_800_000_000;

/// The HTTP API's network-facing parsers: RFC 9421 signatures, RFC 9530
/// `Content-Digest`, the JSON bodies and their value checks, the Handle
/// API's query filter.
///
/// The input is split on `\n` into `Signature-Input`, `Signature`,
/// `Content-Digest`, the request target, and the body (the rest, newlines
/// and all). A header part may hold several field lines separated by NUL
/// bytes; a line `http::HeaderValue` refuses is left out. A target that is
/// not a URI is taken as `/`. The request is a `POST` to host
/// `cpid.example` over `http`.
pub fn http_request(data: &[u8]) {
    let mut parts = data.splitn(5, |&b| b == b'\n');
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static("cpid.example"));
    for name in ["signature-input", "signature", "content-digest"] {
        for line in parts.next().unwrap_or_default().split(|&b| b == 0) {
            if let Ok(value) = HeaderValue::from_bytes(line) {
                headers.append(name, value);
            }
        }
    }
    let target = Uri::try_from(parts.next().unwrap_or_default()).ok();
    let body = parts.next().unwrap_or_default();
    let root = Uri::from_static("/");
    let message = Message {
        method: "POST",
        uri: target.as_ref().unwrap_or(&root),
        headers: &headers,
        scheme: "http",
    };

    if let Ok(signed) = httpsig::parse(&headers) {
        http_signature(&message, &signed);
    }

    let _ = httpsig::check_content_digest(&headers, body);
    // What a client sends always passes.
    let mut own = HeaderMap::new();
    let digest = HeaderValue::from_str(&httpsig::content_digest(body))
        .expect("a content digest is a valid header value");
    own.insert("content-digest", digest);
    httpsig::check_content_digest(&own, body).expect("a body matches its own digest");

    http_bodies(body);

    if let Ok(filter) = Filter::parse(target.as_ref().and_then(Uri::query)) {
        assert!(
            filter
                .types
                .iter()
                .all(|t| !t.bytes().any(|b| b.is_ascii_lowercase())),
            "type filters are upper-case"
        );
    }
}

/// Signature base, verification and a round trip of what `parse` accepted.
fn http_signature(message: &Message<'_>, signed: &SignedRequest) {
    // With no components the base is just the `@signature-params` line,
    // which gives the serialised parameters.
    let mut bare = signed.params.clone();
    bare.components.clear();
    let base = httpsig::signature_base(message, &bare).expect("no component can fail");
    let params = base
        .strip_prefix("\"@signature-params\": ")
        .expect("the base of no components is the parameters line");
    assert!(!params.contains(['\n', '\r']), "{params:?}");

    let base = httpsig::signature_base(message, &signed.params);
    if let Ok(base) = &base {
        let last = format!("\"@signature-params\": {params}");
        assert!(base.ends_with(&last), "{base:?}");
        assert_eq!(
            base.lines().count(),
            signed.params.components.len() + 1,
            "one line per component: {base:?}"
        );
    }

    // The serialised parameters and signature parse back to the same request.
    let mut again = HeaderMap::new();
    let input = format!("{}={params}", signed.label);
    let signature = format!("{}=:{}:", signed.label, BASE64.encode(&signed.signature));
    for (name, value) in [("signature-input", input), ("signature", signature)] {
        match HeaderValue::from_str(&value) {
            Ok(v) => {
                again.insert(name, v);
            }
            Err(e) => panic!("{name} {value:?} is not a header value: {e}"),
        }
    }
    assert_eq!(httpsig::parse(&again).as_ref(), Ok(signed), "{again:?}");

    let key: PublicKey = fuzz_http_key().public();
    let verified = httpsig::verify(message, signed, &key);
    let alg_ok = signed
        .params
        .alg
        .as_deref()
        .is_none_or(|a| a == httpsig::ALG_ED25519);
    if verified.is_ok() {
        assert!(alg_ok && signed.signature.len() == 64 && base.is_ok());
    } else if alg_ok
        && signed.signature.len() == 64
        && let Err(e) = base
    {
        assert_eq!(verified, Err(e), "the base's error is verify's");
    }
}

/// The JSON bodies and the checks on what they carry; none is a 500.
fn http_bodies(body: &[u8]) {
    let not_internal = |e: &crate::api::ApiError| {
        assert_ne!(e.status, StatusCode::INTERNAL_SERVER_ERROR, "{e}");
    };
    match body::parse_json::<ProviderRequest>(body) {
        Ok(request) => match request.into_values(FUZZ_NOW) {
            Ok((key, values)) => {
                assert_eq!(values.len(), 5);
                let pem = &values[4];
                assert_eq!(pem.index, HS_PUBKEY_INDEX);
                assert_eq!(PublicKey::from_public_pem(&pem.data).ok(), Some(key));
                // What the node stores for a provider passes the client checks.
                let inputs = values[..4]
                    .iter()
                    .map(|v| ValueInput {
                        index: Some(v.index),
                        kind: v.kind.as_str().to_string(),
                        data: v.data.clone(),
                        ttl: v.ttl,
                    })
                    .collect();
                if let Err(e) = body::values(inputs, FUZZ_NOW) {
                    panic!("provider values {values:?} fail the value checks: {e}");
                }
            }
            Err(e) => not_internal(&e),
        },
        Err(e) => not_internal(&e),
    }
    match body::parse_json::<IssueRequest>(body) {
        Ok(request) => {
            if let Err(e) = body::resource_class(&request.class) {
                not_internal(&e);
            }
            checked_values(request.values);
        }
        Err(e) => not_internal(&e),
    }
    match body::parse_json::<UpdateRequest>(body) {
        Ok(request) => checked_values(request.values),
        Err(e) => not_internal(&e),
    }
}

/// `body::values`: what it accepts could go into a record as it is.
fn checked_values(inputs: Vec<ValueInput>) {
    let n = inputs.len();
    match body::values(inputs, FUZZ_NOW) {
        Ok(values) => {
            assert_eq!(values.len(), n);
            let mut last = 0;
            for v in &values {
                let Value {
                    index, kind, data, ..
                } = v;
                assert!(*index > last && *index <= 65_535, "{values:?}");
                assert!(*index != HS_ADMIN_INDEX && *index != HS_PUBKEY_INDEX);
                assert!(v.ttl <= MAX_TTL && v.timestamp == FUZZ_NOW);
                assert!(!data.is_empty() && data.len() <= MAX_DATA_LEN);
                assert_eq!(kind.as_str(), kind.as_str().to_ascii_uppercase());
                last = *index;
            }
        }
        Err(e) => assert_ne!(e.status, StatusCode::INTERNAL_SERVER_ERROR, "{e}"),
    }
}
