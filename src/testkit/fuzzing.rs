//! Entry points for the fuzz targets in `fuzz/` and for the test that
//! replays their corpora: every network-facing parser, fed arbitrary bytes.
//! Each must return without panicking whatever the input.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};

use crate::api::body::{self, IssueRequest, ProviderRequest, UpdateRequest, ValueInput};
use crate::api::handles::Filter;
use crate::api::httpsig::{self, Message, SignedRequest};
use crate::capacity::report::{Report, ReportLimits};
use crate::dns::engine::{self, Summary, Transport};
use crate::dns::mapping;
use crate::dns::tcp::{self, Frame};
use crate::dns::wire::WireName;
use crate::dns::wire::{rtype, txt_rdata};
use crate::dns::zone::{RrSet, Zone};
use crate::ident::delegation::{
    self as trust, DELEGATION_INDEX, DELEGATION_TYPE, Delegation, TrustError, TrustedZone,
};
use crate::ident::identifier::{Apex, Class, Identifier, Prefix, Serial};
use crate::ident::keys::{NodeKey, PublicKey};
use crate::ident::record::{
    MAX_DATA_LEN, MAX_TTL, Record, RecordStatus, SignedRecord, Value, ValueType,
};
use crate::ident::resource::{MAX_FIGURE, ResourceDescriptor};
use crate::ident::values::{HS_ADMIN_INDEX, HS_PUBKEY_INDEX};
use crate::resolution::gateway::cache::Block;
use crate::resolution::resolver::{self, Outcome, ResolveError};
use crate::trade::{self, StepKind};

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

/// The capacity descriptor parser (`schema/resource.md`): a refusal points
/// at a field (or the whole document), and what it accepts writes back as
/// JSON that parses to the same descriptor.
pub fn resource(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match ResourceDescriptor::parse(s) {
        Ok(d) => {
            let class = d
                .class()
                .expect("a valid descriptor names a resource class");
            let again = serde_json::to_string(&d).expect("a descriptor serialises");
            assert_eq!(
                ResourceDescriptor::parse(&again).as_ref(),
                Ok(&d),
                "{again}"
            );
            assert!(ResourceDescriptor::parse_for(s, class).is_ok());
        }
        Err(e) => assert!(e.pointer.is_empty() || e.pointer.starts_with('/'), "{e:?}"),
    }
}

/// A buyer's requirement (`POST /v1/select`, `POST /v1/schedule`) and a
/// child node's selection answer: a refused requirement points at a field,
/// an accepted one has a window that is not inverted and units above 0,
/// and any answer a child sends merges and ranks without panicking.
pub fn requirement(data: &[u8]) {
    const NOW: u64 = 1_800_000_000;
    let req = match crate::select::Requirement::parse(data, NOW) {
        Ok(r) => {
            assert!(r.start < r.end, "{r:?}");
            assert!(r.units.is_none_or(|u| u > 0), "{r:?}");
            if let Some(from) = &r.region {
                let paths = crate::select::Paths::from(
                    from,
                    &crate::select::PathsConfig::default(),
                    &[],
                    r.min_bandwidth_gbps,
                );
                assert!(paths.to(from).is_some());
            }
            r
        }
        Err(e) => {
            assert!(e.pointer.is_empty() || e.pointer.starts_with('/'), "{e:?}");
            let Ok(r) = crate::select::Requirement::parse(b"{}", NOW) else {
                return;
            };
            r
        }
    };
    if let Ok(theirs) = serde_json::from_slice::<crate::select::Selection>(data) {
        let mut mine = theirs.clone();
        mine.candidates.clear();
        mine.merge(theirs);
        mine.finish(&req, 50.0, 10);
        assert!(mine.candidates.len() <= 10);
        for pair in mine.candidates.windows(2) {
            if let [a, b] = pair {
                assert!(a.score.is_finite() && a.score >= b.score, "{a:?} {b:?}");
            }
        }
    }
}

/// The status-report body (`POST /v1/reports`): a refusal points at a
/// field (or the whole body for bad JSON), and what it accepts is within
/// the node's limits, and reads back the same when written out again.
pub fn report(data: &[u8]) {
    let limits = ReportLimits::default();
    match Report::parse(data, &limits) {
        Ok(r) => {
            assert!(!r.resources.is_empty() && r.resources.len() <= limits.max_resources);
            assert!(r.seq > 0);
            assert!(
                (limits.min_interval_secs..=limits.max_interval_secs).contains(&r.interval_secs)
            );
            let body = crate::capacity::report::ReportBody {
                agent: r.agent.clone(),
                seq: r.seq,
                interval_secs: r.interval_secs,
                resources: r.resources.iter().map(|(_, b)| b.clone()).collect(),
            };
            let again = serde_json::to_vec(&body).expect("a report serialises");
            assert_eq!(Report::parse(&again, &limits).as_ref(), Ok(&r));
        }
        Err(e) => {
            assert!(e.pointer.is_empty() || e.pointer.starts_with('/'), "{e:?}");
            assert!(!e.syntax || e.pointer.is_empty(), "{e:?}");
        }
    }
}

/// A child's situation summary as a parent pulls it
/// (`GET /v1/situation/summary`): the served envelope as is, and the bytes
/// as a signed summary's content (signed here with the key the delegation
/// names, so the fuzzer reaches the summary's own checks and the nested
/// children). Whatever verifies names the prefix asked for first and holds
/// no negative figure.
pub fn summary(data: &[u8]) {
    use crate::capacity::summary::SignedSummary;
    use crate::ident::keys::{SigningContext, to_hex};
    static KEY: OnceLock<NodeKey> = OnceLock::new();
    let key = KEY.get_or_init(|| NodeKey::from_secret_bytes(&[9u8; 32]));
    let signature = key.sign(SigningContext::Summary, data);
    let inner = SignedSummary {
        summary: BASE64.encode(data),
        key: to_hex(&key.public().to_bytes()),
        signature: BASE64.encode(signature.0),
    };
    let served = SignedSummary::parse(data);
    for signed in std::iter::once(inner).chain(served.ok()) {
        if let Ok(nodes) = signed.verify(&key.public(), "86.31", None, 1_800_000_000) {
            assert_eq!(nodes.first().map(|n| n.prefix.as_str()), Some("86.31"));
            for rows in nodes.iter().filter_map(|n| n.rows.as_ref()) {
                assert!(rows.units.iter().all(|u| u.resources.fresh >= 0
                    && u.units_total.stale >= 0
                    && u.units_available.unknown >= 0));
            }
        }
    }
}

/// The signed-record decoder: anything it accepts re-encodes, from its
/// fields, to exactly the input.
pub fn record(data: &[u8]) {
    if let Ok(r) = SignedRecord::decode(data) {
        let mut again = r
            .record()
            .canonical_bytes()
            .unwrap_or_else(|e| panic!("a decoded record does not re-encode: {e}"));
        again.extend_from_slice(&r.signature().0);
        assert_eq!(again, data);
    }
}

fn fuzz_zone() -> &'static Arc<Zone> {
    static ZONE: OnceLock<Arc<Zone>> = OnceLock::new();
    ZONE.get_or_init(|| {
        let data = super::sample_apex(1, [127, 0, 0, 1].into()).expect("constant fuzz zone");
        let apex = data.apex.clone();
        let zone = Zone::new(data).expect("constant fuzz zone");
        // Signed, so a query with DO goes through the signing and denial
        // paths too.
        let key = crate::dns::dnssec::ZoneKey::new(
            apex.as_bytes(),
            ed25519_dalek::SigningKey::from_bytes(&FUZZ_DNSSEC_SEED),
            crate::dns::dnssec::FLAGS_CSK,
        )
        .expect("constant fuzz key");
        let policy = crate::config::DnssecConfig::default()
            .policy()
            .expect("the default policy");
        zone.sign_with(Arc::new(crate::dns::signing::Signer::new(key, policy)))
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

/// The answer engine without cookies or RRL, for a client on loopback.
fn plain(zone: &Zone, msg: &[u8], transport: Transport, out: &mut Vec<u8>) -> Option<Summary> {
    let client = engine::Client::new(std::net::IpAddr::from([127, 0, 0, 1]), transport);
    engine::respond(zone, &engine::Safeguards::NONE, msg, &client, out)
}

/// The DNS request path: the answer engine on a small zone, both
/// transports. A response, when there is one, is never larger than allowed.
/// The same bytes are then read as a TCP stream: split into frames as a
/// connection splits them, every whole message answered and framed.
pub fn dns_query(data: &[u8]) {
    let zone = fuzz_zone();
    let mut out = Vec::new();
    if plain(zone, data, Transport::Udp, &mut out).is_some() {
        assert!(out.len() <= usize::from(engine::MAX_UDP_PAYLOAD));
        assert_eq!(out.get(0..2), data.get(0..2), "the id is echoed");
    }
    let _ = plain(zone, data, Transport::Tcp, &mut out);

    let mut rest = data;
    let mut framed = Vec::new();
    loop {
        match tcp::next_frame(rest) {
            Frame::Message(m) => {
                assert!(!m.is_empty() && m.len() + 2 <= rest.len());
                if plain(zone, m, Transport::Tcp, &mut out).is_some() {
                    framed.clear();
                    assert!(
                        tcp::push_framed(&mut framed, &out),
                        "a TCP answer fits a frame"
                    );
                    assert_eq!(out.get(0..2), m.get(0..2), "the id is echoed");
                }
                rest = rest.get(m.len() + 2..).unwrap_or_default();
            }
            Frame::Incomplete { needed } => {
                assert!(needed > rest.len() && needed <= 2 + usize::from(u16::MAX));
                break;
            }
            Frame::Empty => break,
        }
    }
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
        assert_ne!(e.status(), StatusCode::INTERNAL_SERVER_ERROR, "{e}");
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
                if let Err(e) = body::values(inputs, Class::Pv, FUZZ_NOW) {
                    panic!("provider values {values:?} fail the value checks: {e}");
                }
            }
            Err(e) => not_internal(&e),
        },
        Err(e) => not_internal(&e),
    }
    match body::parse_json::<IssueRequest>(body) {
        Ok(request) => {
            let class = body::resource_class(&request.class).unwrap_or_else(|e| {
                not_internal(&e);
                Class::Ic
            });
            checked_values(request.values, class);
        }
        Err(e) => not_internal(&e),
    }
    match body::parse_json::<UpdateRequest>(body) {
        Ok(request) => checked_values(request.values, Class::Ic),
        Err(e) => not_internal(&e),
    }
}

/// `body::values`: what it accepts could go into a record as it is.
fn checked_values(inputs: Vec<ValueInput>, class: Class) {
    let n = inputs.len();
    match body::values(inputs, class, FUZZ_NOW) {
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
        Err(e) => assert_ne!(e.status(), StatusCode::INTERNAL_SERVER_ERROR, "{e}"),
    }
}

/// The transaction bodies (`POST /v1/transactions` and the steps on one),
/// through the same parse and checks as the handlers: a refusal is a 4xx
/// that names a field (or the whole body when it does not parse), and
/// terms that pass keep every promise [`trade::Terms`] and
/// [`trade::StepTerms`] make. A proposal that parses writes back, as a
/// client sends it, to JSON that parses to the same terms.
pub fn transaction(data: &[u8]) {
    let refused = |e: trade::TradeError, fields: &[&str]| {
        let named = match &e {
            trade::TradeError::Invalid { pointer, .. } => Some(pointer.clone()),
            _ => None,
        };
        let api = crate::api::ApiError::from(e);
        assert!(api.status().is_client_error(), "{api}");
        if let Some(pointer) = named {
            assert!(fields.contains(&pointer.as_str()), "{pointer}: {api}");
        }
    };

    match trade::parse_proposal(data) {
        Ok(request) => match request.terms(FUZZ_NOW) {
            Ok(t) => {
                assert_eq!(t.resource, request.resource);
                assert!(t.units >= 1 && t.start < t.end && t.end > FUZZ_NOW);
                assert!(t.start.saturating_add(trade::START_SLACK_SECS) >= FUZZ_NOW);
                assert!(t.end - t.start <= trade::MAX_WINDOW_SECS);
                assert!(
                    t.max_price_per_unit_hour
                        .is_none_or(|p| (0.0..=MAX_FIGURE).contains(&p)),
                    "{t:?}"
                );
                let again = serde_json::to_vec(&request).expect("a proposal serialises");
                let back = trade::parse_proposal(&again)
                    .and_then(|r| r.terms(FUZZ_NOW))
                    .unwrap_or_else(|e| panic!("{request:?} does not read back: {e}"));
                assert_eq!(
                    (&back.resource, back.units, back.start, back.end),
                    (&t.resource, t.units, t.start, t.end)
                );
            }
            Err(e) => refused(e, &["/units", "/start", "/end", "/max_price_per_unit_hour"]),
        },
        Err(e) => refused(e, &[]),
    }

    match trade::parse_step(data) {
        Ok(request) => {
            for kind in [
                StepKind::Accept,
                StepKind::Reject,
                StepKind::Activate,
                StepKind::Settle,
                StepKind::Cancel,
            ] {
                match request.terms(kind) {
                    Ok(t) => {
                        assert_eq!(t.reason, request.reason);
                        if let Some(r) = &t.reason {
                            assert!(r.len() <= 256 && !r.trim().is_empty(), "{r:?}");
                            assert!(!r.chars().any(char::is_control), "{r:?}");
                        }
                        match t.amount {
                            Some(a) => {
                                assert!(kind == StepKind::Settle && (0.0..=MAX_FIGURE).contains(&a))
                            }
                            None => assert!(kind != StepKind::Settle || request.amount.is_none()),
                        }
                    }
                    Err(e) => refused(e, &["/reason", "/amount"]),
                }
            }
        }
        Err(e) => refused(e, &[]),
    }

    // The step of a path segment names itself.
    if let Ok(s) = std::str::from_utf8(data)
        && let Some(kind) = StepKind::parse(s)
    {
        assert_eq!(kind.as_str(), s);
    }
}

/// The key of the trusted root zone in `delegation` and
/// `upstream_response`; the corpora hold records really signed with it.
pub fn fuzz_root_key() -> &'static NodeKey {
    static KEY: OnceLock<NodeKey> = OnceLock::new();
    KEY.get_or_init(|| NodeKey::from_secret_bytes(&[1u8; 32]))
}

/// The trusted root zone: prefix `86`, [`fuzz_root_key`], no servers.
pub fn fuzz_root_zone() -> &'static TrustedZone {
    static ZONE: OnceLock<TrustedZone> = OnceLock::new();
    ZONE.get_or_init(|| {
        TrustedZone::root(
            Prefix::parse("86").expect("constant fuzz prefix"),
            fuzz_root_key().public(),
            vec![],
        )
    })
}

/// The identifier `upstream_response` resolves: `86.31.1005/IC-000001-<check>`.
pub fn fuzz_upstream_identifier() -> &'static Identifier {
    static ID: OnceLock<Identifier> = OnceLock::new();
    ID.get_or_init(|| {
        Identifier::new(
            Prefix::parse("86.31.1005").expect("constant fuzz prefix"),
            Class::Ic,
            Serial::new(1).expect("constant fuzz serial"),
        )
    })
}

/// Delegation records and delegation JSON, as a parent zone serves them.
///
/// The input is taken two ways. As an encoded signed record: it is read as
/// a delegation and checked as a link issued by [`fuzz_root_zone`] at
/// several times, and as a record served by that zone. As the JSON of a
/// `CP.DELEGATION` value: one that passes `check()` re-serialises to an
/// equal value, and, signed by the root key into a record, comes back
/// from that record and verifies (or is refused for the reason it should be).
pub fn delegation(data: &[u8]) {
    if let Ok(signed) = SignedRecord::decode(data) {
        delegation_record(&signed);
    }
    if let Ok(d) = serde_json::from_slice::<Delegation>(data) {
        delegation_json(&d);
    }
}

/// A decoded record presented as a delegation link by the root zone.
fn delegation_record(signed: &SignedRecord) {
    let root = fuzz_root_zone();
    let read = Delegation::from_record(signed);
    let mut times = vec![0, FUZZ_NOW, u64::MAX];
    if let Ok(d) = &read {
        assert_eq!(d.check(), Ok(()), "from_record returns checked delegations");
        assert_eq!(signed.record().identifier.class(), Class::Nd);
        assert_ne!(signed.record().status, RecordStatus::Withdrawn);
        json_round_trip(d);
        times.extend([d.not_before, d.not_after, d.not_after.saturating_add(1)]);
        times.push(d.not_before.saturating_sub(1));
    }
    let as_record = root.verify_record(signed);
    if as_record.is_ok() {
        assert!(root.prefix.contains(signed.record().identifier.prefix()));
        assert_eq!(signed.verify(&root.key), Ok(()));
    }
    for now in times {
        let link = root.verify_delegation(signed, now);
        let chain = trust::verify_chain(root, std::slice::from_ref(signed), now);
        match (&link, &chain) {
            (Ok(child), Ok(zones)) => {
                assert_eq!(zones.as_slice(), [root.clone(), child.clone()]);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("verify_chain of one link is verify_delegation: {link:?} {chain:?}"),
        }
        let Ok(child) = link else { continue };
        let d = match &read {
            Ok(d) => d,
            Err(e) => panic!("a verified link is not a delegation: {e}"),
        };
        assert!(d.revoked.is_none(), "a revoked link verified");
        assert!(
            d.not_before <= now && now <= d.not_after,
            "{now} outside the window"
        );
        assert_eq!(child.prefix.parent().as_ref(), Some(&root.prefix));
        assert_eq!(d.prefix().as_ref(), Ok(&child.prefix));
        assert_eq!(d.public_key().as_ref(), Ok(&child.key));
        assert_eq!(child.servers, d.addresses());
        assert_eq!(child.valid_until, d.not_after.min(root.valid_until));
        assert_eq!(child.via.as_ref(), Some(signed));
        assert!(as_record.is_ok(), "a verified link is a record of its zone");
        // The link is the parent's record, not the child's.
        assert!(matches!(
            child.verify_record(signed),
            Err(TrustError::OutOfZone { .. })
        ));
    }
}

/// A delegation as JSON: what passes `check()` survives every form it is
/// carried in.
fn delegation_json(d: &Delegation) {
    if d.check().is_err() {
        return;
    }
    json_round_trip(d);
    let prefix = d.prefix().expect("checked");
    let key = d.public_key().expect("checked");
    assert!(prefix.depth() >= 2 && !key.is_weak());
    assert_eq!(
        d.addresses().len(),
        d.servers.iter().map(|s| s.addresses.len()).sum::<usize>()
    );

    // Signed by the root into a delegation record, as `cpid admin delegate` does.
    let root = fuzz_root_zone();
    let Ok(data) = serde_json::to_string(d) else {
        panic!("a delegation always serialises")
    };
    if data.len() > MAX_DATA_LEN {
        return;
    }
    let record = Record {
        identifier: Identifier::new(
            root.prefix.clone(),
            Class::Nd,
            Serial::new(1).expect("constant fuzz serial"),
        ),
        owner: None,
        version: 1,
        status: RecordStatus::Active,
        issuer: root.key.key_id(),
        created: 10,
        updated: 10,
        values: vec![Value {
            index: DELEGATION_INDEX,
            kind: ValueType::parse(DELEGATION_TYPE).expect("constant value type"),
            data,
            ttl: 0,
            timestamp: 10,
        }],
    };
    let signed = match record.sign(fuzz_root_key()) {
        Ok(s) => s,
        Err(e) => panic!("a checked delegation cannot be signed: {e}"),
    };
    assert_eq!(
        SignedRecord::decode(signed.as_bytes()).as_ref(),
        Ok(&signed)
    );
    assert_eq!(Delegation::from_record(&signed).as_ref(), Ok(d));

    let now = d.not_before;
    let verified = root.verify_delegation(&signed, now);
    match verified {
        Ok(child) => {
            assert_eq!(prefix.parent().as_ref(), Some(&root.prefix));
            assert!(d.revoked.is_none());
            assert_eq!(child.prefix, prefix);
            assert_eq!(child.key, key);
            assert_eq!(child.servers, d.addresses());
            assert_eq!(child.valid_until, d.not_after);
        }
        Err(TrustError::NotAChild { .. }) => {
            assert_ne!(prefix.parent().as_ref(), Some(&root.prefix));
        }
        Err(TrustError::Revoked { at, .. }) => {
            assert_eq!(prefix.parent().as_ref(), Some(&root.prefix));
            assert_eq!(d.revoked, Some(at));
        }
        Err(e) => panic!("a checked delegation {d:?} refused: {e}"),
    }
    // Past its end it never verifies.
    if let Some(after) = d.not_after.checked_add(1) {
        assert!(root.verify_delegation(&signed, after).is_err());
    }
}

/// Serialising a checked delegation and parsing it back gives it again.
fn json_round_trip(d: &Delegation) {
    let json = match serde_json::to_vec(d) {
        Ok(j) => j,
        Err(e) => panic!("{d:?} does not serialise: {e}"),
    };
    match serde_json::from_slice::<Delegation>(&json) {
        Ok(again) => {
            assert_eq!(&again, d, "{}", String::from_utf8_lossy(&json));
            assert_eq!(again.check(), d.check());
        }
        Err(e) => panic!(
            "{} does not parse back: {e}",
            String::from_utf8_lossy(&json)
        ),
    }
}

/// An upstream server's response, as the resolver and the gateway read
/// it: the answer for [`fuzz_upstream_identifier`] from
/// [`fuzz_root_zone`], and the referral check (the resolver's own is
/// private; this one follows it with the public API).
pub fn upstream_response(data: &[u8]) {
    use hickory_proto::op::ResponseCode;

    let Ok(m) = hickory_proto::op::Message::from_vec(data) else {
        return;
    };
    let zone = fuzz_root_zone();
    let id = fuzz_upstream_identifier();
    upstream_outcome(zone, id, &m);

    let apex = Apex::default();
    let name = hickory_proto::rr::Name::from_ascii(id.to_dns_name(&apex))
        .expect("an identifier's name is a DNS name");
    if let Ok(Some((child, _ttl))) = upstream_referral(zone, &apex, &name, &m, FUZZ_NOW) {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(child.prefix.parent().as_ref(), Some(&zone.prefix));
        assert!(
            child.prefix.contains(id.prefix()),
            "referral to {} for {id}",
            child.prefix
        );
        // The resolver then asks the child; the same bytes as its answer.
        upstream_outcome(&child, id, &m);
    }
}

/// `identifier_outcome`, and what the gateway does with its result.
fn upstream_outcome(zone: &TrustedZone, id: &Identifier, m: &hickory_proto::op::Message) {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

    match resolver::identifier_outcome(zone, id, m) {
        Ok(Outcome::Record { record, ttl }) => {
            assert_ne!(m.metadata.response_code, ResponseCode::NXDomain);
            assert_eq!(&record.record().identifier, id);
            assert_eq!(record.record().status, RecordStatus::Active);
            assert_eq!(zone.verify_record(&record), Ok(()));
            // The gateway caches the record's RRsets.
            for set in mapping::rrsets(&record, ttl) {
                let _ = Block::at_question(set.rtype, &set.rdatas);
            }
        }
        Ok(Outcome::Negative { soa, ttl }) => {
            if let Some(soa) = soa {
                assert_eq!(soa.record_type(), RecordType::SOA);
                assert!(ttl <= soa.ttl);
                // The gateway keeps the SOA as its uncompressed wire form.
                let mut buf = Vec::new();
                let mut enc = BinEncoder::new(&mut buf);
                enc.set_name_encoding(NameEncoding::UncompressedLowercase);
                if soa.emit(&mut enc).is_ok() {
                    assert!(
                        Block::from_rrs(&[buf]).is_some(),
                        "the gateway cannot cache {soa:?}"
                    );
                }
            } else {
                assert_eq!(ttl, 0);
            }
        }
        Err(e) => {
            assert_ne!(m.metadata.response_code, ResponseCode::NXDomain, "{e}");
            // Only NOERROR can fail verification; any other rcode is an
            // upstream failure, never a negative answer to cache.
            let noerror = m.metadata.response_code == ResponseCode::NoError;
            assert_eq!(e.is_verification(), noerror, "{e}");
        }
    }
}

/// The resolver's referral check.
fn upstream_referral(
    zone: &TrustedZone,
    apex: &Apex,
    name: &hickory_proto::rr::Name,
    m: &hickory_proto::op::Message,
    now: u64,
) -> Result<Option<(TrustedZone, u32)>, ResolveError> {
    crate::resolution::resolver::referral(zone, apex, name, m, now)
}

/// The name and fixed seed of the log key the `note` and `checkpoint`
/// targets know; their corpora hold checkpoints really signed with it.
pub const FUZZ_LOG_ORIGIN: &str = "cpid.example/log";

/// The log's note signer, from a fixed seed.
pub fn fuzz_log_signer() -> &'static crate::tlog::note::NoteSigner {
    static SIGNER: OnceLock<crate::tlog::note::NoteSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
        crate::tlog::note::NoteSigner::new(FUZZ_LOG_ORIGIN, key).expect("constant fuzz key name")
    })
}

/// A witness's cosigning key, from a fixed seed.
pub fn fuzz_witness() -> &'static crate::tlog::cosign::CosignatureSigner {
    static SIGNER: OnceLock<crate::tlog::cosign::CosignatureSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[0x04; 32]);
        crate::tlog::cosign::CosignatureSigner::new("witness.example/w1", key)
            .expect("constant fuzz key name")
    })
}

/// The note verifiers the `note` target opens notes with: the fuzz log's
/// key and the two keys of golang.org/x/mod/sumdb/note's examples.
pub fn fuzz_note_verifiers() -> &'static [crate::tlog::note::NoteVerifier] {
    use crate::tlog::note::NoteVerifier;
    static VERIFIERS: OnceLock<Vec<NoteVerifier>> = OnceLock::new();
    VERIFIERS.get_or_init(|| {
        let go = [
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
        ];
        go.iter()
            .map(|k| NoteVerifier::parse(k).expect("constant verifier key"))
            .chain([fuzz_log_signer().verifier()])
            .collect()
    })
}

/// A C2SP signed note as a client reads `/log/checkpoint` or a witness
/// reads a cosigned checkpoint: split, opened against
/// [`fuzz_note_verifiers`], and its other signatures checked as
/// cosignatures by [`fuzz_witness`]. The first line is also read as a
/// verifier key of either kind.
///
/// What split accepts writes back to exactly the input; what opens was
/// signed by a known key over exactly its text (any change to the text
/// fails); a verified cosignature is over a checkpoint.
pub fn note(data: &[u8]) {
    use crate::tlog::cosign::{CosignatureVerifier, verify_cosignatures};
    use crate::tlog::note::{self, NoteSignature, NoteVerifier};

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = text.split('\n').next().unwrap_or_default();
    if let Ok(v) = NoteVerifier::parse(first) {
        assert_eq!(v.verifier_key(), first);
        assert_eq!(
            NoteVerifier::new(v.name(), *v.verifying_key()).as_ref(),
            Ok(&v)
        );
    }
    if let Ok(v) = CosignatureVerifier::parse(first) {
        assert_eq!(v.verifier_key(), first);
    }

    let verifiers = fuzz_note_verifiers();
    let witnesses = [fuzz_witness().verifier()];
    let split = note::split(text);
    let opened = note::open(text, verifiers);
    let Ok((body, lines)) = split else {
        assert!(opened.is_err(), "open accepted a note split refuses");
        return;
    };
    let again: String = lines.iter().map(NoteSignature::line).collect();
    assert_eq!(format!("{body}\n{again}"), text, "a split note writes back");
    assert!(body.ends_with('\n') && !lines.is_empty());

    let (cosigned, unverified) = match &opened {
        Ok(n) => {
            assert_eq!(n.text, body);
            assert!(!n.signatures.is_empty());
            for s in &n.signatures {
                let v = verifiers
                    .iter()
                    .find(|v| v.name() == s.name && v.key_id() == s.key_id)
                    .expect("a verified signature is by a known key");
                assert_eq!(v.verify(body, s), Ok(()));
            }
            assert!(n.unverified.iter().all(|s| {
                !verifiers
                    .iter()
                    .any(|v| v.name() == s.name && v.key_id() == s.key_id)
            }));
            // The signatures hold for this text alone.
            let changed = format!("{body}x\n\n{again}");
            assert!(note::open(&changed, verifiers).is_err(), "{changed:?}");
            (body, n.unverified.as_slice())
        }
        Err(_) => (body, lines.as_slice()),
    };
    if let Ok(found) = verify_cosignatures(cosigned, unverified, &witnesses) {
        if !found.is_empty() {
            assert!(crate::tlog::checkpoint::Checkpoint::parse(cosigned).is_ok());
        }
        for c in &found {
            assert_eq!(
                (c.name.as_str(), c.key_id),
                (witnesses[0].name(), witnesses[0].key_id())
            );
        }
    }
}

/// A checkpoint body (`/log/checkpoint`'s text, or the text of the note
/// the input is): parse accepts exactly what `to_text` writes, so what
/// parses writes back to the input and reparses to the same value; signed
/// by the fuzz log and cosigned by the fuzz witness, it opens and verifies.
pub fn checkpoint(data: &[u8]) {
    use crate::tlog::checkpoint::Checkpoint;
    use crate::tlog::cosign::verify_cosignatures;
    use crate::tlog::note;

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let body = note::split(text).map_or(text, |(body, _)| body);
    let candidates = if body == text {
        vec![text]
    } else {
        vec![text, body]
    };
    for candidate in candidates {
        let Ok(cp) = Checkpoint::parse(candidate) else {
            continue;
        };
        assert!(!cp.origin.is_empty() && cp.extensions.iter().all(|e| !e.is_empty()));
        let written = cp.to_text();
        assert_eq!(written, candidate, "one spelling per checkpoint");
        assert_eq!(Checkpoint::parse(&written).as_ref(), Ok(&cp));

        let signer = fuzz_log_signer();
        let Ok(signed) = signer.sign(&written) else {
            // Only a body near MAX_NOTE_BYTES cannot be signed.
            assert!(written.len() + 200 > note::MAX_NOTE_BYTES);
            continue;
        };
        let cosignature = fuzz_witness()
            .sign(&written, FUZZ_NOW)
            .expect("a checkpoint is cosigned");
        let full = format!("{signed}{cosignature}");
        if full.len() > note::MAX_NOTE_BYTES {
            continue;
        }
        let opened = note::open(&full, std::slice::from_ref(&signer.verifier()))
            .expect("a signed checkpoint opens");
        assert_eq!(Checkpoint::parse(&opened.text).as_ref(), Ok(&cp));
        let found = verify_cosignatures(
            &opened.text,
            &opened.unverified,
            &[fuzz_witness().verifier()],
        )
        .expect("the witness's cosignature verifies");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].timestamp, FUZZ_NOW);
    }
}

/// Stored hashes of a tree of `FUZZ_TREE` leaves and the log the node
/// would serve them from (a memory store, integrated and checkpointed).
struct FuzzLog {
    stored: std::collections::HashMap<(u8, u64), crate::tlog::merkle::Hash>,
    leaves: Vec<Vec<u8>>,
    log: crate::tlog::log::Log,
}

/// Two full level-0 tiles, a partial third, a partial level-1 tile.
const FUZZ_TREE: u64 = 2 * 256 + 77;

fn fuzz_log() -> &'static FuzzLog {
    use crate::store::{Store, WriteBatch};
    use crate::tlog::merkle::{Frontier, leaf_hash};
    static LOG: OnceLock<FuzzLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let prefix = Prefix::parse("86.31").expect("constant fuzz prefix");
        let key = fuzz_root_key();
        // Private (transaction) leaves: a digest each, no signing needed.
        let leaves: Vec<Vec<u8>> = (1..=FUZZ_TREE)
            .map(|i| {
                let id = Identifier::new(
                    prefix.clone(),
                    Class::Tx,
                    Serial::new(i).expect("constant fuzz serial"),
                );
                let mut leaf = vec![0x02];
                leaf.extend_from_slice(&1u64.to_be_bytes());
                leaf.extend_from_slice(&crate::tlog::entry::digest(&i.to_be_bytes()));
                leaf.extend_from_slice(id.to_string().as_bytes());
                leaf
            })
            .collect();
        let mut frontier = Frontier::empty();
        let mut stored = std::collections::HashMap::new();
        for leaf in &leaves {
            for (level, index, hash) in frontier.append(leaf_hash(leaf)) {
                stored.insert((level, index), hash);
            }
        }
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::new());
        store
            .write(WriteBatch {
                leaves: leaves.clone(),
                ..WriteBatch::default()
            })
            .expect("memory store write");
        let log = crate::tlog::log::Log::open(store, key, FUZZ_LOG_ORIGIN).expect("log opens");
        assert_eq!(log.integrate().expect("log integrates"), FUZZ_TREE);
        assert_eq!(log.latest().root, frontier.root());
        FuzzLog {
            stored,
            leaves,
            log,
        }
    })
}

/// A tile path as `/log/tile/…` reads it, and the bytes as an entry
/// bundle. A path that parses is the one canonical spelling of its tile
/// and is served (from a log of [`FUZZ_TREE`] leaves) exactly when the
/// tree holds it whole, with the hashes or entries it names; a bundle that
/// parses writes back to exactly the input.
pub fn tile(data: &[u8]) {
    use crate::tlog::tile::{self, MAX_LEVEL, Tile, TileResource};

    if let Ok(path) = std::str::from_utf8(data)
        && let Ok(resource) = Tile::parse(path)
    {
        assert_eq!(resource.path(), path, "one spelling per tile");
        assert_eq!(Tile::parse(&resource.path()), Ok(resource));
        let t = resource.tile();
        assert!((1..=tile::FULL_WIDTH).contains(&t.width) && t.level <= MAX_LEVEL);
        let fuzz = fuzz_log();
        match resource {
            TileResource::Hashes(t) => {
                let served = fuzz.log.tile(&t).expect("a tile read does not fail");
                let expected = tile::tile_hashes(&t, &fuzz.stored).ok();
                assert_eq!(served, expected, "{path}");
            }
            TileResource::Entries(t) => {
                assert_eq!(t.level, 0);
                let served = fuzz.log.bundle(t.index, t.width).expect("a bundle read");
                let first = t.index.checked_mul(256);
                let expected = first.and_then(|first| {
                    let end = first.checked_add(u64::from(t.width))?;
                    let leaves = fuzz
                        .leaves
                        .get(usize::try_from(first).ok()?..usize::try_from(end).ok()?)?;
                    let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
                    tile::entry_bundle(&refs).ok()
                });
                assert_eq!(served, expected, "{path}");
            }
        }
    }
    if let Ok(entries) = tile::parse_entry_bundle(data) {
        assert!((1..=usize::from(tile::FULL_WIDTH)).contains(&entries.len()));
        assert_eq!(tile::entry_bundle(&entries).as_deref(), Ok(data));
    }
}

/// A log leaf as a monitor reads it from an entry bundle: a record leaf is
/// the canonical signed record (it writes back to exactly the input), a
/// private leaf names an identifier that reads back the same.
pub fn log_entry(data: &[u8]) {
    use crate::tlog::entry::{self, Entry};

    match Entry::parse(data) {
        Ok(Entry::Record(r)) => {
            assert_eq!(entry::leaf(&r, false), data);
        }
        Ok(Entry::Private {
            identifier,
            version,
            digest,
        }) => {
            let text = identifier.to_string();
            assert_eq!(Identifier::parse(&text).as_ref(), Ok(&identifier));
            let mut again = vec![0x02];
            again.extend_from_slice(&version.to_be_bytes());
            again.extend_from_slice(&digest);
            again.extend_from_slice(text.as_bytes());
            assert_eq!(
                Entry::parse(&again).ok(),
                Some(Entry::Private {
                    identifier,
                    version,
                    digest
                })
            );
        }
        Err(_) => {}
    }
}

/// Largest tree the `proof` target builds.
const FUZZ_PROOF_TREE: u64 = 300;

/// Merkle proof verification (RFC 9162 §2.1.3.2, §2.1.4.2) on what a
/// client is handed. The input is a leaf index and a tree size (u64
/// big-endian each) and then 32-byte hashes: root, leaf (or second root)
/// and proof. Verification of that never panics. Then a tree of up to
/// [`FUZZ_PROOF_TREE`] leaves made from the input: its real inclusion
/// and consistency proofs verify, and fail once one byte of the proof,
/// leaf or roots is flipped, or when checked at another index or size.
pub fn proof(data: &[u8]) {
    use crate::tlog::merkle::{
        Frontier, Hash, consistency_proof, inclusion_proof, leaf_hash, tree_hash,
        verify_consistency, verify_inclusion,
    };

    let word = |at: usize| {
        data.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes)
    };
    let (index, size) = (word(0), word(8));
    let hashes: Vec<Hash> = data
        .get(16..)
        .unwrap_or_default()
        .chunks_exact(32)
        .filter_map(|c| Hash::try_from(c).ok())
        .collect();
    let zero = [0u8; 32];
    let root = hashes.first().unwrap_or(&zero);
    let other = hashes.get(1).unwrap_or(&zero);
    let rest = hashes.get(2..).unwrap_or_default();
    // Whatever they say, the verifiers answer (a fuzzer that learns a
    // comparison's operand can make a proof that does hold).
    let _ = verify_inclusion(index, size, other, rest, root);
    let _ = verify_consistency(index, size, root, other, rest);

    // A real tree: n leaves, each made of its index and the input.
    let n = 1 + size % FUZZ_PROOF_TREE;
    let i = index % n;
    let mut stored = std::collections::HashMap::new();
    let mut frontier = Frontier::empty();
    let mut roots = vec![frontier.root()];
    let mut leaves = Vec::new();
    for j in 0..n {
        let mut entry = j.to_be_bytes().to_vec();
        entry.extend_from_slice(data.get(16..48).unwrap_or_default());
        let leaf = leaf_hash(&entry);
        leaves.push(leaf);
        for (level, at, hash) in frontier.append(leaf) {
            stored.insert((level, at), hash);
        }
        roots.push(frontier.root());
    }
    let root_of = |s: u64| roots[s as usize];
    let root = root_of(n);
    assert_eq!(tree_hash(n, &stored), Ok(root));
    assert_eq!(Frontier::load(n, &stored).as_ref(), Ok(&frontier));
    // Where to flip a byte, and which other index or size to try.
    let pick = word(16);
    let leaf = leaves[i as usize];

    let proof = inclusion_proof(i, n, &stored).expect("a stored tree proves inclusion");
    assert_eq!(verify_inclusion(i, n, &leaf, &proof, &root), Ok(()));
    let mut parts: Vec<Hash> = proof.clone();
    parts.extend([leaf, root]);
    let k = (pick % parts.len() as u64) as usize;
    parts[k][(pick >> 32) as usize % 32] ^= 1 << ((pick >> 40) % 8);
    let (bad_root, bad_leaf) = (parts.pop().expect("root"), parts.pop().expect("leaf"));
    assert!(verify_inclusion(i, n, &bad_leaf, &parts, &bad_root).is_err());
    let j = (i + 1 + pick % n) % n;
    if j != i {
        assert!(verify_inclusion(j, n, &leaf, &proof, &root).is_err());
    }
    let n2 = 1 + (pick >> 8) % FUZZ_PROOF_TREE.min(n + 8);
    if n2 != n && i < n2 && n2 <= n {
        assert!(verify_inclusion(i, n2, &leaf, &proof, &root_of(n2)).is_err());
    }

    let m = 1 + i;
    let proof = consistency_proof(m, n, &stored).expect("a stored tree proves consistency");
    assert_eq!(verify_consistency(m, n, &root_of(m), &root, &proof), Ok(()));
    let mut parts: Vec<Hash> = proof.clone();
    parts.extend([root_of(m), root]);
    let k = (pick % parts.len() as u64) as usize;
    parts[k][(pick >> 32) as usize % 32] ^= 1 << ((pick >> 40) % 8);
    let (bad_n, bad_m) = (parts.pop().expect("root n"), parts.pop().expect("root m"));
    assert!(verify_consistency(m, n, &bad_m, &bad_n, &parts).is_err());
    let m2 = 1 + (pick >> 16) % n;
    if m2 != m {
        assert!(verify_consistency(m2, n, &root_of(m2), &root, &proof).is_err());
    }
}

/// The TSIG key and the time of the transfer fuzz target and its seeds.
pub const TRANSFER_KEY: (&str, &str) = ("xfr-key.", "q0ZyKKVzyWZ6rAGlCvvG9Lw7kTHvFDkLlOcdr6zAuTU=");
pub const TRANSFER_NOW: u64 = 1_800_000_000;

fn fuzz_transfers() -> &'static crate::dns::xfr::Transfers {
    use crate::config::{SecondaryConfig, TransferConfig, TsigKeyConfig};
    use crate::dns::zone::Edit;
    static T: OnceLock<crate::dns::xfr::Transfers> = OnceLock::new();
    T.get_or_init(|| {
        let data = super::sample_apex(1, [127, 0, 0, 1].into()).expect("constant fuzz zone");
        let zone = Zone::new(data).expect("constant fuzz zone");
        // Serial 1 → 2 in the history, so IXFR from 1 is incremental.
        let name =
            WireName::parse("ic-000001-0.1005.31.86.cpid.internal").expect("constant fuzz zone");
        let sets = vec![RrSet {
            rtype: rtype::TXT,
            ttl: 60,
            rdatas: vec![txt_rdata(&["id=86.31.1005/IC-000001-0"])],
        }];
        zone.apply(vec![Edit::Set(name, sets)], Some(2))
            .expect("constant fuzz zone");
        let config = TransferConfig {
            keys: vec![TsigKeyConfig {
                name: TRANSFER_KEY.0.into(),
                algorithm: "hmac-sha256".into(),
                secret: TRANSFER_KEY.1.into(),
            }],
            secondaries: vec![
                SecondaryConfig {
                    notify: None,
                    allow: Some("127.0.0.0/8".into()),
                    key: Some(TRANSFER_KEY.0.into()),
                },
                SecondaryConfig {
                    notify: None,
                    allow: Some("::1".into()),
                    key: None,
                },
            ],
            ..TransferConfig::default()
        };
        let policy = crate::dns::xfr::Policy::from_config(&config).expect("constant fuzz policy");
        crate::dns::xfr::Transfers::new(
            Arc::new(zone),
            policy,
            crate::clock::Clock::manual(TRANSFER_NOW),
        )
    })
}

/// The zone-transfer request path (`dns::xfr`) over TCP and UDP, from an
/// address the ACL allows with the key and one it allows without: any
/// bytes get nothing, one answer or a stream, never a panic; every message
/// sent keeps the request's ID and fits a TCP frame. The same bytes as a
/// NOTIFY acknowledgement are judged without a panic.
pub fn transfer(data: &[u8]) {
    use crate::dns::xfr::Reply;
    let t = fuzz_transfers();
    let id = data.get(..2);
    for peer in [
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ] {
        let mut out = Vec::new();
        match t.tcp(data, peer, &mut out) {
            None => {}
            Some(Reply::One(_)) => {
                assert_eq!(out.get(..2), id);
                assert!(out.len() <= 65_535);
            }
            Some(Reply::Stream(stream)) => {
                let mut framed = Vec::new();
                let (messages, _) = stream.run(&mut |batch| {
                    framed.extend_from_slice(&batch);
                    true
                });
                let mut rest = framed.as_slice();
                let mut seen = 0;
                while let [hi, lo, tail @ ..] = rest {
                    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                    let (msg, after) = tail.split_at(len);
                    assert_eq!(msg.get(..2), id);
                    rest = after;
                    seen += 1;
                }
                assert_eq!(seen, messages);
            }
        }
        let mut out = Vec::new();
        if t.udp(data, peer, &mut out).is_some() {
            assert_eq!(out.get(..2), id);
        }
    }
    let key = crate::dns::tsig::TsigKey::new(TRANSFER_KEY.0, TRANSFER_KEY.1).ok();
    let _ = crate::dns::notify::acknowledges(
        data,
        0x1234,
        key.as_ref(),
        Some(&[0u8; 32]),
        TRANSFER_NOW,
    );
}

/// A message as a transfer request reaches the TSIG check: any bytes are
/// refused or verified, never a panic, and signing them (when they have a
/// header) never panics either.
pub fn tsig(data: &[u8]) {
    use crate::dns::tsig::{Chain, TsigKey, sign, verify};
    static KEY: std::sync::OnceLock<Option<TsigKey>> = std::sync::OnceLock::new();
    let Some(key) = KEY.get_or_init(|| {
        TsigKey::new("xfr-key.", "q0ZyKKVzyWZ6rAGlCvvG9Lw7kTHvFDkLlOcdr6zAuTU=").ok()
    }) else {
        return;
    };
    let now = 1_800_000_000;
    let keys = std::slice::from_ref(key);
    let _ = verify(data, keys, Chain::Response(&[0u8; 32]), now);
    if let Ok(Some(v)) = verify(data, keys, Chain::Request, now) {
        assert_eq!(v.key, 0);
    }
    if data.len() >= 12 {
        let mut msg = data.to_vec();
        let mac = sign(&mut msg, key, Chain::Request, now);
        assert_eq!(mac.len(), 32);
        let _ = verify(&msg, keys, Chain::Request, now);
    }
}

/// The node's safeguards the `cookie_rrl` target runs with: a fixed cookie
/// secret (RFC 9018's example) and a tiny RRL table (rate 2, slip 2, seven
/// buckets), so limiting, slipping and collisions all happen.
fn fuzz_safeguards() -> &'static engine::Safeguards {
    static GUARDS: OnceLock<engine::Safeguards> = OnceLock::new();
    GUARDS.get_or_init(|| {
        let dns = crate::config::DnsConfig {
            cookie_secret: Some("e5e973e5a6b2a43f48e7dc849e37bfcf".into()),
            rrl: crate::config::RrlConfig {
                rate_limit: 2,
                slip: 2,
                table_size: 7,
                whitelist: vec!["10.0.0.0/8".into()],
                ..crate::config::RrlConfig::default()
            },
            ..crate::config::DnsConfig::default()
        };
        engine::Safeguards::from_config(&dns).expect("constant fuzz safeguards")
    })
}

/// DNS cookies and response-rate limiting on the node's answer path: any
/// bytes as a query from one of four clients (IPv4, IPv6, IPv4-mapped,
/// whitelisted; the first byte picks) over UDP and TCP. An answer RRL
/// dropped leaves nothing to send; a slipped one is TC with no records; a
/// TCP answer is never limited; every answer keeps the ID and the UDP
/// size limit. The COOKIE option parser on the same bytes: a server cookie
/// made for a client cookie verifies for it, at its time, from its address.
pub fn cookie_rrl(data: &[u8]) {
    use crate::dns::cookie::{Received, Verdict};
    use crate::dns::rrl::Action;
    use std::net::IpAddr;

    let zone = fuzz_zone();
    let guards = fuzz_safeguards();
    let addr = match data.first().map_or(0, |b| b & 3) {
        0 => IpAddr::from([192, 0, 2, 1]),
        1 => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
        2 => IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201]),
        _ => IpAddr::from([10, 1, 2, 3]),
    };
    let mut out = Vec::new();
    let udp = engine::Client::new(addr, Transport::Udp);
    if let Some(s) = engine::respond(zone, guards, data, &udp, &mut out) {
        match s.rrl {
            Action::Dropped => assert!(out.is_empty(), "a dropped answer is not sent"),
            _ => {
                assert!(out.len() <= usize::from(engine::MAX_UDP_PAYLOAD));
                assert_eq!(out.get(0..2), data.get(0..2), "the id is echoed");
            }
        }
        if s.rrl == Action::Slipped {
            let flags = out.get(2..4).map(|f| u16::from_be_bytes([f[0], f[1]]));
            assert_eq!(flags.map(|f| f & 0x0200), Some(0x0200), "slipped is TC");
            assert_eq!(out.get(6..10), Some(&[0u8; 4][..]), "with no records");
        }
        if addr == IpAddr::from([10, 1, 2, 3]) {
            assert!(s.rrl == Action::Off, "whitelisted");
        }
        if s.cookie == Verdict::Malformed {
            use engine::Rcode::{BadVers, FormErr, NotImp};
            assert!(
                matches!(s.rcode, FormErr | BadVers | NotImp),
                "{:?}",
                s.rcode
            );
        }
    }
    let tcp = engine::Client::new(addr, Transport::Tcp);
    if let Some(s) = engine::respond(zone, guards, data, &tcp, &mut out) {
        assert_eq!(s.rrl, Action::Off, "TCP is never limited");
        assert_eq!(out.get(0..2), data.get(0..2), "the id is echoed");
    }

    if let Some(received) = Received::parse(data)
        && let Some(cookies) = &guards.cookies
    {
        let at = data.len() as u32 * 7919;
        let (_, reply) = cookies.judge(&received, addr, at);
        let server = reply.get(8..).unwrap_or_default();
        assert!(cookies.verify(&received.client, server, addr, at));
        assert!(!cookies.verify(&received.client, server, IpAddr::from([192, 0, 2, 99]), at));
    }
}

/// The DNSSEC signing core (`dns::dnssec`) on arbitrary names, types and
/// RDATA. Input: `[owner length][owner][type: u16][length][RDATA]…`.
/// Whatever is signed verifies and stops verifying when changed; names'
/// successors sort after them; bitmaps and RRSIGs that parse write back
/// the same; canonical RDATA is a fixed point.
pub fn dnssec(data: &[u8]) {
    use crate::dns::dnssec::{self as sec, RrSetRef, Rrsig, Validity, ZoneKey};
    use crate::dns::zone::canonical_order;

    static KEY: OnceLock<Option<ZoneKey>> = OnceLock::new();
    let Some(key) = KEY.get_or_init(|| {
        ZoneKey::new(
            &[0],
            ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]),
            sec::FLAGS_CSK,
        )
        .ok()
    }) else {
        return;
    };
    let Some((&owner_len, rest)) = data.split_first() else {
        return;
    };
    let Some((owner, rest)) = rest.split_at_checked(usize::from(owner_len)) else {
        return;
    };
    let Some((&[t0, t1], rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let t = u16::from_be_bytes([t0, t1]);
    let mut rdatas: Vec<&[u8]> = Vec::new();
    let mut tail = rest;
    while let Some((&len, after)) = tail.split_first() {
        let (rdata, after) = after
            .split_at_checked(usize::from(len))
            .unwrap_or((after, &[]));
        rdatas.push(rdata);
        tail = after;
    }

    if let Ok(canonical) = sec::canonical_name(owner) {
        if let Ok(next) = sec::successor(owner) {
            assert!(next.len() <= 255);
            assert_eq!(canonical_order(&canonical, &next), std::cmp::Ordering::Less);
        }
        if let Ok(nsec) = sec::compact_nxdomain_nsec(owner) {
            let (_, types) = sec::parse_nsec(&nsec).expect("our NSEC parses");
            assert_eq!(types, [rtype::RRSIG, rtype::NSEC, sec::NXNAME]);
        }
    }

    // Bitmaps: any type list round-trips; any bitmap that parses is the
    // one its types write.
    let types: Vec<u16> = rest
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let mut sorted = types.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sec::nsec_types(&sec::nsec_bitmap(&types)).ok(),
        Some(sorted)
    );
    if let Ok(parsed) = sec::nsec_types(rest) {
        assert_eq!(sec::nsec_bitmap(&parsed), rest);
    }

    // RRSIG RDATA that parses writes back to what parses the same.
    if let Ok(rrsig) = Rrsig::parse(rest) {
        assert_eq!(Rrsig::parse(&rrsig.to_rdata()).as_ref(), Ok(&rrsig));
    }
    for rdata in &rdatas {
        if let Ok(c) = sec::canonical_rdata(t, rdata) {
            assert_eq!(sec::canonical_rdata(t, &c).ok().as_deref(), Some(&*c));
        }
    }

    // Sign, verify, and a changed signature fails.
    let rrset = RrSetRef {
        owner,
        rtype: t,
        ttl: 300,
        rdatas: &rdatas,
    };
    let window = Validity {
        inception: 1_800_000_000,
        expiration: 1_800_086_400,
    };
    let now = 1_800_000_100;
    let _ = sec::verify_rrset(&[0], key.dnskey(), &rrset, rest, now);
    if let Ok(mut rrsig) = key.sign_rrset(&rrset, window) {
        assert_eq!(
            sec::verify_rrset(&[0], key.dnskey(), &rrset, &rrsig, now),
            Ok(())
        );
        if let Some(last) = rrsig.last_mut() {
            *last ^= 0x80;
        }
        assert!(sec::verify_rrset(&[0], key.dnskey(), &rrset, &rrsig, now).is_err());
    }
}

/// The fuzz zone's DNSSEC key (see [`fuzz_zone`]).
const FUZZ_DNSSEC_SEED: [u8; 32] = [3; 32];

/// The gateway's DNSSEC denial check (`resolver::verify_denial`) on an
/// upstream message: never a panic, and never accepted without a valid
/// signature. Then cpid's own compact denial of a missing name made from
/// the input verifies under the fuzz zone's key and says the name is
/// missing, and with one byte of its NSEC changed it no longer verifies.
pub fn denial(data: &[u8]) {
    use crate::resolution::resolver::verify_denial;
    let key = ed25519_dalek::SigningKey::from_bytes(&FUZZ_DNSSEC_SEED)
        .verifying_key()
        .to_bytes();
    let now = crate::dns::cookie::unix_now();
    if let Ok(m) = hickory_proto::op::Message::from_vec(data)
        && let Some(q) = m.queries.first()
    {
        let _ = verify_denial(
            "86.cpid.internal",
            &[key],
            q.name(),
            u16::from(q.query_type()),
            &m,
            now,
        );
    }

    // A label only of letters: never a name the fuzz zone holds.
    let label: String = data
        .iter()
        .take(40)
        .map(|b| char::from(b'a' + b % 26))
        .collect();
    if label.is_empty() {
        return;
    }
    let qname = format!("{label}.86.cpid.internal.");
    let Ok(name) = hickory_proto::rr::Name::from_ascii(&qname) else {
        return;
    };
    let mut msg = hickory_proto::op::Message::new(
        0x1234,
        hickory_proto::op::MessageType::Query,
        hickory_proto::op::OpCode::Query,
    );
    msg.add_query(hickory_proto::op::Query::query(
        name.clone(),
        hickory_proto::rr::RecordType::TXT,
    ));
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_dnssec_ok(true);
    msg.edns = Some(edns);
    let query = msg.to_vec().expect("a query encodes");
    let mut out = Vec::new();
    plain(fuzz_zone(), &query, Transport::Tcp, &mut out).expect("an answer");
    let answer = hickory_proto::op::Message::from_vec(&out).expect("cpid's answer decodes");
    let missing = verify_denial("86.cpid.internal", &[key], &name, rtype::TXT, &answer, now)
        .unwrap_or_else(|e| panic!("cpid's own denial of {qname} does not verify: {e}"));
    assert!(missing, "the NSEC of {qname} says NXNAME");
    // Change one byte of the NSEC's next name (`\000.<label>…`, written
    // out in full): the signature no longer holds.
    let next: Vec<u8> = [&[1u8, 0, label.len() as u8][..], label.as_bytes()].concat();
    let at = out
        .windows(next.len())
        .position(|w| w == next.as_slice())
        .expect("the NSEC's next name");
    out[at + 1] = 1;
    if let Ok(forged) = hickory_proto::op::Message::from_vec(&out) {
        assert!(
            verify_denial("86.cpid.internal", &[key], &name, rtype::TXT, &forged, now).is_err(),
            "a changed NSEC verified"
        );
    }
}
