//! The auditor behind `cpid audit`: follows one node's log from the trust
//! anchor and checks that it only grows and that the node serves what it
//! logged.
//!
//! Each run: the node's key is verified from the national key down its
//! chain; the latest checkpoint is verified with that key; it must extend
//! the last checkpoint this auditor saw (a consistency proof from the node,
//! and independently the new leaves, read from the entry tiles, appended
//! to the kept right edge of the tree must give the checkpoint's root);
//! every new record leaf must carry the node's valid signature; and for a
//! sample of identifiers, what the node answers over HTTP and DNS must be
//! the latest leaf of that identifier (a withdrawn or pending one must not
//! resolve in DNS). The state (origin, size, root, right edge, and the
//! latest leaf digest per identifier) is kept in a JSON file between runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::entry::{Entry, digest};
use super::merkle::{self, Frontier, Hash};
use super::note::{self, NoteVerifier};
use super::tile::parse_entry_bundle;
use crate::api::client::ApiClient;
use crate::ident::delegation::{ChainFile, TrustedZone, verify_node_chain};
use crate::ident::identifier::{Apex, Identifier, Prefix};
use crate::ident::keys::PublicKey;
use crate::ident::record::RecordStatus;

/// What the auditor keeps between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditState {
    pub origin: String,
    pub size: u64,
    /// base64 root of the tree of `size` leaves.
    pub root: String,
    /// base64 right-edge hashes of that tree (its compact range).
    pub edge: Vec<String>,
    /// Identifier → [version, hex SHA-256 of its latest signed bytes,
    /// status] for every public record leaf seen.
    pub latest: BTreeMap<String, (u64, String, String)>,
}

/// What one run found.
#[derive(Debug, Default)]
pub struct Report {
    pub origin: String,
    pub size: u64,
    pub previous_size: u64,
    pub new_leaves: u64,
    pub sampled: usize,
    /// Everything that is wrong, each naming what; empty when all holds.
    pub problems: Vec<String>,
}

/// How to audit.
pub struct Audit<'a> {
    pub api: &'a str,
    pub trust_anchor: PublicKey,
    /// The node's DNS address for the served-answer check; read from
    /// `/v1/node` when `None`.
    pub dns: Option<SocketAddr>,
    /// Identifiers compared with what the node serves, per run.
    pub sample: usize,
}

fn b64(h: &Hash) -> String {
    STANDARD.encode(h)
}

fn unb64(s: &str) -> Result<Hash, String> {
    STANDARD
        .decode(s)
        .ok()
        .and_then(|v| Hash::try_from(v.as_slice()).ok())
        .ok_or_else(|| format!("{s:?} is not a base64 hash"))
}

/// What `cpid resolve --verify-log` established.
#[derive(Debug)]
pub struct Included {
    pub origin: String,
    pub index: u64,
    pub size: u64,
    /// The known witnesses whose cosignature of the checkpoint verified.
    pub cosigned_by: Vec<String>,
    /// Other signature lines on the checkpoint (witnesses not known here).
    pub others: usize,
}

/// Checks that `record` (resolved and verified with `key`) is a leaf of
/// the log at `api`: the leaf holds exactly its bytes, the checkpoint is
/// signed by `key`, and the inclusion proof leads to its root. With
/// `witnesses`, the proof is asked against the latest witnessed checkpoint
/// and at least one of them must have cosigned it.
pub fn verify_inclusion(
    api: &str,
    record: &crate::ident::record::SignedRecord,
    keys: &[PublicKey],
    witnesses: &[super::cosign::CosignatureVerifier],
) -> Result<Included, String> {
    let rec = record.record();
    let mut path = format!("/v1/log/proof/{}?version={}", rec.identifier, rec.version);
    if !witnesses.is_empty() {
        path.push_str("&witnessed=true");
    }
    let r = ApiClient::new(api)
        .get(&path)
        .map_err(|e| format!("GET {path}: {e}"))?;
    if r.status != 200 {
        return Err(format!("GET {path}: {} {}", r.status, r.text.trim()));
    }
    let b = &r.body;
    let str_of = |k: &str| {
        b.get(k)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("the proof has no {k}"))
    };
    let num = |k: &str| {
        b.get(k)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| format!("the proof has no {k}"))
    };
    let leaf = STANDARD
        .decode(str_of("leaf")?)
        .map_err(|_| "the leaf is not base64".to_string())?;
    let mut expected = vec![0x01];
    expected.extend_from_slice(record.as_bytes());
    if leaf != expected {
        return Err(format!(
            "the log's leaf for {} v{} is not the record DNS served",
            rec.identifier, rec.version
        ));
    }
    let served = str_of("checkpoint")?;
    let (text, _) = note::split(served).map_err(|e| format!("checkpoint: {e}"))?;
    let cp = Checkpoint::parse(text).map_err(|e| format!("checkpoint: {e}"))?;
    let verifiers = keys
        .iter()
        .map(|key| {
            NoteVerifier::new(
                &cp.origin,
                ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes())
                    .map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let opened =
        note::open(served, &verifiers).map_err(|e| format!("checkpoint of {}: {e}", cp.origin))?;
    let (index, size) = (num("index")?, num("size")?);
    if size != cp.size {
        return Err(format!(
            "the proof is for size {size}, the checkpoint's is {}",
            cp.size
        ));
    }
    let proof = b
        .get("proof")
        .and_then(|p| p.as_array())
        .ok_or("the answer has no proof")?
        .iter()
        .map(|h| unb64(h.as_str().unwrap_or_default()))
        .collect::<Result<Vec<Hash>, String>>()?;
    merkle::verify_inclusion(index, size, &merkle::leaf_hash(&leaf), &proof, &cp.root)
        .map_err(|e| format!("inclusion proof: {e}"))?;
    let cosigned_by: Vec<String> =
        super::cosign::verify_cosignatures(text, &opened.unverified, witnesses)
            .map_err(|e| format!("cosignatures of {}: {e}", cp.origin))?
            .into_iter()
            .map(|c| c.name)
            .collect();
    if !witnesses.is_empty() && cosigned_by.is_empty() {
        return Err(format!(
            "no known witness cosigned the checkpoint of {} at size {size}",
            cp.origin
        ));
    }
    Ok(Included {
        origin: cp.origin,
        index,
        size,
        others: opened.unverified.len() - cosigned_by.len(),
        cosigned_by,
    })
}

/// Loads the state file (a missing file is a first run).
pub fn load_state(path: &Path) -> Result<Option<AuditState>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes the state file atomically (a crash leaves the old one).
pub fn save_state(path: &Path, state: &AuditState) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(state).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Audit<'_> {
    /// One run against `state` (updated only with what verified).
    pub fn run(&self, state: &mut Option<AuditState>, now: u64) -> Result<Report, String> {
        let client = ApiClient::new(self.api);
        let get = |path: &str| {
            let r = client.get(path).map_err(|e| format!("GET {path}: {e}"))?;
            if r.status != 200 {
                return Err(format!("GET {path}: {} {}", r.status, r.text.trim()));
            }
            Ok(r)
        };
        // The node's key, from the national key down its chain.
        let info = get("/v1/node")?.body;
        let field = |k: &str| {
            info.get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("/v1/node has no {k}"))
        };
        let prefix = Prefix::parse(&field("prefix")?).map_err(|e| e.to_string())?;
        let apex = Apex::parse(&field("apex")?).map_err(|e| e.to_string())?;
        let key = PublicKey::from_public_pem(&field("public_key")?).map_err(|e| e.to_string())?;
        let chain: ChainFile = serde_json::from_value(serde_json::json!({
            "chain": info.get("chain").cloned().unwrap_or_default()
        }))
        .map_err(|e| format!("/v1/node chain: {e}"))?;
        let chain = chain.records()?;
        let root_prefix = Prefix::parse(prefix.segments().next().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let root = TrustedZone::root(root_prefix, self.trust_anchor, Vec::new());
        if chain.is_empty() {
            if key != self.trust_anchor {
                return Err(format!(
                    "{prefix} shows no chain and its key {} is not the trust anchor",
                    key.key_id()
                ));
            }
        } else {
            verify_node_chain(&root, &chain, &prefix, &key, now)
                .map_err(|e| format!("{prefix}'s key does not chain to the trust anchor: {e}"))?;
        }
        let dns = match self.dns {
            Some(d) => Some(d),
            None => info
                .get("dns")
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse().ok()),
        };

        // The checkpoint, signed by that key.
        let served = get("/log/checkpoint")?.text;
        let (text, _) = note::split(&served).map_err(|e| format!("checkpoint: {e}"))?;
        let cp = Checkpoint::parse(text).map_err(|e| format!("checkpoint: {e}"))?;
        let verifier = NoteVerifier::new(
            &cp.origin,
            ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes()).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        note::open(&served, std::slice::from_ref(&verifier))
            .map_err(|e| format!("checkpoint of {}: {e}", cp.origin))?;
        let mut report = Report {
            origin: cp.origin.clone(),
            size: cp.size,
            ..Report::default()
        };
        let mut st = match state.take() {
            Some(s) if s.origin == cp.origin => s,
            Some(s) => {
                report.problems.push(format!(
                    "the node now shows log {} instead of {}: a new log (a rebuilt node), followed from its start",
                    cp.origin, s.origin
                ));
                AuditState {
                    origin: cp.origin.clone(),
                    ..AuditState::default()
                }
            }
            None => AuditState {
                origin: cp.origin.clone(),
                ..AuditState::default()
            },
        };
        report.previous_size = st.size;
        let result = self.follow(&client, &key, &cp, &mut st, &mut report);
        let sample = match &result {
            Ok(()) => self.check_served(&client, dns, &apex, &key, &st, &mut report),
            Err(_) => Ok(()),
        };
        *state = Some(st);
        result?;
        sample?;
        Ok(report)
    }

    /// Checks `cp` extends what `st` holds, reads and checks the new
    /// leaves, and moves `st` to `cp`.
    fn follow(
        &self,
        client: &ApiClient,
        key: &PublicKey,
        cp: &Checkpoint,
        st: &mut AuditState,
        report: &mut Report,
    ) -> Result<(), String> {
        let old_root = if st.size == 0 {
            merkle::empty_root()
        } else {
            unb64(&st.root)?
        };
        if cp.size < st.size {
            return Err(format!(
                "{}: the tree head shrank from {} to {} leaves",
                cp.origin, st.size, cp.size
            ));
        }
        if cp.size == st.size {
            if cp.root != old_root {
                return Err(format!(
                    "{}: two roots for size {} (split view)",
                    cp.origin, cp.size
                ));
            }
            return Ok(());
        }
        if st.size > 0 {
            let path = format!("/v1/log/consistency?old={}&new={}", st.size, cp.size);
            let r = client.get(&path).map_err(|e| format!("GET {path}: {e}"))?;
            if r.status != 200 {
                return Err(format!("GET {path}: {} {}", r.status, r.text.trim()));
            }
            let proof = r
                .body
                .get("proof")
                .and_then(|p| p.as_array())
                .ok_or("consistency answer has no proof")?
                .iter()
                .map(|h| unb64(h.as_str().unwrap_or_default()))
                .collect::<Result<Vec<Hash>, String>>()?;
            merkle::verify_consistency(st.size, cp.size, &old_root, &cp.root, &proof).map_err(
                |e| {
                    format!(
                        "{}: size {} does not extend size {} (split view): {e}",
                        cp.origin, cp.size, st.size
                    )
                },
            )?;
        }
        // The new leaves, from the entry tiles; appended to the kept edge
        // they must give the checkpoint's root.
        let edge: Vec<Hash> = st.edge.iter().map(|h| unb64(h)).collect::<Result<_, _>>()?;
        let mut frontier = Frontier::from_edge(st.size, edge)
            .ok_or("the kept right edge does not fit its size")?;
        let mut index = st.size;
        while index < cp.size {
            let tile = index / 256;
            let end = ((tile + 1) * 256).min(cp.size);
            let width = end - tile * 256;
            // `width` is 1..=256 here; a full tile is spelled without `.p/`.
            let bundle = super::tile::Tile {
                level: 0,
                index: tile,
                width: u16::try_from(width).unwrap_or(256),
            };
            let path = format!("/log/{}", bundle.entries_path());
            let (status, bundle) = client
                .get_bytes(&path)
                .map_err(|e| format!("GET {path}: {e}"))?;
            if status != 200 {
                return Err(format!("GET {path}: {status}"));
            }
            let leaves = parse_entry_bundle(&bundle).map_err(|e| format!("{path}: {e}"))?;
            let skip = usize::try_from(index - tile * 256).unwrap_or(usize::MAX);
            if leaves.len() as u64 != width {
                return Err(format!("{path}: {} leaves, expected {width}", leaves.len()));
            }
            for leaf in leaves.iter().skip(skip) {
                frontier.append(merkle::leaf_hash(leaf));
                self.check_leaf(key, index, leaf, st, report);
                index += 1;
                report.new_leaves += 1;
            }
        }
        if frontier.root() != cp.root {
            return Err(format!(
                "{}: the leaves the node serves do not give its checkpoint's root",
                cp.origin
            ));
        }
        st.size = cp.size;
        st.root = b64(&cp.root);
        st.edge = frontier.edge().iter().map(b64).collect();
        Ok(())
    }

    fn check_leaf(
        &self,
        key: &PublicKey,
        index: u64,
        leaf: &[u8],
        st: &mut AuditState,
        report: &mut Report,
    ) {
        match Entry::parse(leaf) {
            Ok(Entry::Record(r)) => {
                if let Err(e) = r.verify(key) {
                    report.problems.push(format!(
                        "leaf {index} ({}): signature does not verify: {e}",
                        r.record().identifier
                    ));
                    return;
                }
                let rec = r.record();
                let id = rec.identifier.to_string();
                let newer = st.latest.get(&id).is_none_or(|(v, _, _)| rec.version > *v);
                if !newer {
                    report.problems.push(format!(
                        "leaf {index}: {id} version {} after a leaf of a version as new",
                        rec.version
                    ));
                    return;
                }
                st.latest.insert(
                    id,
                    (
                        rec.version,
                        crate::ident::keys::to_hex(&digest(r.as_bytes())),
                        rec.status.as_str().to_string(),
                    ),
                );
            }
            Ok(Entry::Private { .. }) => {}
            Err(e) => report
                .problems
                .push(format!("leaf {index} is not a cpid leaf: {e}")),
        }
    }

    /// Compares what the node serves for a sample of identifiers with
    /// their latest leaves.
    fn check_served(
        &self,
        client: &ApiClient,
        dns: Option<SocketAddr>,
        apex: &Apex,
        key: &PublicKey,
        st: &AuditState,
        report: &mut Report,
    ) -> Result<(), String> {
        if st.latest.is_empty() || self.sample == 0 {
            return Ok(());
        }
        // Spread over the whole set, different ones each run.
        let n = st.latest.len();
        let take = self.sample.min(n);
        let offset = usize::try_from(st.size).unwrap_or(0) % n;
        let step = (n / take).max(1);
        let picks: Vec<(&String, &(u64, String, String))> = st
            .latest
            .iter()
            .cycle()
            .skip(offset)
            .step_by(step)
            .take(take)
            .collect();
        for (id, (version, hash, status)) in picks {
            report.sampled += 1;
            let Ok(identifier) = Identifier::parse(id) else {
                continue;
            };
            let path = format!("/v1/identifiers/{id}");
            let r = client.get(&path).map_err(|e| format!("GET {path}: {e}"))?;
            let served = r
                .body
                .get("encoded")
                .and_then(|v| v.as_str())
                .and_then(crate::ident::delegation::from_hex);
            match served {
                Some(bytes) => {
                    let got = crate::ident::keys::to_hex(&digest(&bytes));
                    if &got != hash {
                        let v = r.body.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
                        report.problems.push(format!(
                            "{id}: HTTP serves version {v}, not the latest logged version {version}"
                        ));
                    }
                }
                None => report.problems.push(format!(
                    "{id}: HTTP answers {} without the record logged at version {version}",
                    r.status
                )),
            }
            let Some(dns) = dns else { continue };
            let resolved =
                crate::resolution::client::resolve(dns, &identifier, apex, Some(*key), false);
            let active = status == RecordStatus::Active.as_str();
            match (resolved, active) {
                (Ok(res), true) => {
                    let got = crate::ident::keys::to_hex(&digest(res.record.as_bytes()));
                    if &got != hash {
                        report.problems.push(format!(
                            "{id}: DNS serves version {}, not the latest logged version {version}",
                            res.record.record().version
                        ));
                    }
                }
                (Ok(res), false) => report.problems.push(format!(
                    "{id}: DNS serves version {} but the latest logged version {version} is {status}",
                    res.record.record().version
                )),
                (Err(e), true) => report
                    .problems
                    .push(format!("{id}: DNS does not serve the logged record: {e}")),
                (Err(_), false) => {}
            }
        }
        Ok(())
    }
}
