//! The signed-record test vectors (`schema/vectors/record.json`): a fixed
//! key and record give fixed bytes and a fixed signature. The canonical
//! bytes are also rebuilt here by hand from the field table of
//! `schema/record.md`, so the document, the vectors and the code agree.

use cpid::ident::identifier::Identifier;
use cpid::ident::keys::{KeyId, NodeKey, PublicKey};
use cpid::ident::record::{Record, RecordStatus, SignedRecord, Value, ValueType};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Vector {
    description: String,
    secret_key: String,
    public_key: String,
    key_id: String,
    record: RecordJson,
    canonical: String,
    signature: String,
    encoded: String,
}

#[derive(Serialize, Deserialize)]
struct RecordJson {
    identifier: String,
    owner: Option<String>,
    version: u64,
    status: String,
    created: u64,
    updated: u64,
    values: Vec<ValueJson>,
}

#[derive(Serialize, Deserialize)]
struct ValueJson {
    index: u32,
    #[serde(rename = "type")]
    kind: String,
    data: String,
    ttl: u32,
    timestamp: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 8032 §7.1 TEST 1 secret key.
const SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn fixed_record(issuer: KeyId) -> Record {
    Record {
        identifier: Identifier::parse("86.31.1005/IC-0000A7-Q").unwrap(),
        owner: Some(Identifier::parse("86.31/PV-000001-P").unwrap()),
        version: 3,
        status: RecordStatus::Active,
        issuer,
        created: 1_790_000_000,
        updated: 1_790_003_600,
        values: vec![
            Value {
                index: 1,
                kind: ValueType::parse("CP.RESOURCE").unwrap(),
                data: r#"{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card","units_total":8,"devices":[{"model":"A800","count":8,"peak_tflops":{"fp16":312}}]}"#.into(),
                ttl: 3600,
                timestamp: 1_790_000_000,
            },
            Value {
                index: 2,
                kind: ValueType::parse("CP.ENDPOINT").unwrap(),
                data: "https://pool.dc31.example.internal/api".into(),
                ttl: 300,
                timestamp: 1_790_003_600,
            },
        ],
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// schema/record.md §1, by hand.
fn by_the_book(r: &Record) -> Vec<u8> {
    let mut out = vec![1u8];
    string(&r.identifier.to_string(), &mut out);
    match &r.owner {
        None => out.push(0),
        Some(o) => {
            out.push(1);
            string(&o.to_string(), &mut out);
        }
    }
    varint(r.version, &mut out);
    varint(
        match r.status {
            RecordStatus::Active => 0,
            RecordStatus::Pending => 1,
            RecordStatus::Withdrawn => 2,
        },
        &mut out,
    );
    out.extend_from_slice(&r.issuer.0);
    varint(r.created, &mut out);
    varint(r.updated, &mut out);
    varint(r.values.len() as u64, &mut out);
    for v in &r.values {
        varint(u64::from(v.index), &mut out);
        string(v.kind.as_str(), &mut out);
        string(&v.data, &mut out);
        varint(u64::from(v.ttl), &mut out);
        varint(v.timestamp, &mut out);
    }
    out
}

fn compute() -> Vector {
    let secret: [u8; 32] = unhex(SECRET).try_into().unwrap();
    let key = NodeKey::from_secret_bytes(&secret);
    let record = fixed_record(key.public().key_id());
    let canonical = record.canonical_bytes().unwrap();
    let signed = record.clone().sign(&key).unwrap();
    let r = &record;
    Vector {
        description: "schema/record.md: RFC 8032 TEST 1 key signs this record".into(),
        secret_key: SECRET.into(),
        public_key: hex(&key.public().to_bytes()),
        key_id: key.public().key_id().to_string(),
        record: RecordJson {
            identifier: r.identifier.to_string(),
            owner: r.owner.as_ref().map(ToString::to_string),
            version: r.version,
            status: r.status.as_str().into(),
            created: r.created,
            updated: r.updated,
            values: r
                .values
                .iter()
                .map(|v| ValueJson {
                    index: v.index,
                    kind: v.kind.as_str().into(),
                    data: v.data.clone(),
                    ttl: v.ttl,
                    timestamp: v.timestamp,
                })
                .collect(),
        },
        canonical: hex(&canonical),
        signature: hex(&signed.signature().0),
        encoded: hex(&signed.encode()),
    }
}

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/vectors/record.json");

#[test]
fn record_vectors_reproduce_byte_for_byte() {
    if std::env::var_os("CPID_WRITE_VECTORS").is_some() {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&compute()).unwrap() + "\n",
        )
        .unwrap();
    }
    let want: Vector = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let got = compute();
    assert_eq!(got.public_key, want.public_key);
    assert_eq!(
        want.public_key, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "RFC 8032 TEST 1 public key"
    );
    assert_eq!(got.key_id, want.key_id);
    assert_eq!(got.canonical, want.canonical);
    assert_eq!(got.signature, want.signature);
    assert_eq!(got.encoded, want.encoded);
    assert_eq!(
        want.encoded,
        format!("{}{}", want.canonical, want.signature)
    );

    let record = fixed_record(KeyId(unhex(&want.key_id).try_into().unwrap()));
    assert_eq!(
        hex(&by_the_book(&record)),
        want.canonical,
        "schema/record.md §1 by hand"
    );

    // The vector's signature verifies under the vector's key, and decoding
    // the encoded form gives the record back.
    let public = PublicKey::from_bytes(&unhex(&want.public_key).try_into().unwrap()).unwrap();
    let decoded = SignedRecord::decode(&unhex(&want.encoded)).unwrap();
    assert_eq!(decoded.record(), &record);
    decoded.verify(&public).unwrap();
}

#[test]
fn one_flipped_bit_anywhere_fails_decoding_or_verification() {
    let want: Vector = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let public = PublicKey::from_bytes(&unhex(&want.public_key).try_into().unwrap()).unwrap();
    let encoded = unhex(&want.encoded);
    for byte in 0..encoded.len() {
        for bit in 0..8 {
            let mut b = encoded.clone();
            b[byte] ^= 1 << bit;
            if let Ok(r) = SignedRecord::decode(&b) {
                assert!(r.verify(&public).is_err(), "flip at {byte}.{bit} verified");
            }
        }
    }
}
