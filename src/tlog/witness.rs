//! Witnessing between nodes with the C2SP `tlog-witness` protocol: a node
//! cosigns (`cosignature/v1`) the checkpoints of the logs it knows — its
//! children's, from the keys in its delegations, and its parent's, from its
//! chain — after checking each is consistent with the last one it cosigned
//! for that origin; and it submits its own checkpoints to those same nodes,
//! so every log, the national one included, is witnessed.
//!
//! A witness keeps, per origin, the size and root it last cosigned, and
//! checks and moves it in one store commit guarded by its old value, so two
//! submissions can never both advance it. A checkpoint that contradicts
//! what it cosigned (same size, other root; or no consistency proof to it)
//! is a split view: refused, and reported as a security event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::checkpoint::Checkpoint;
use super::cosign::{CosignatureSigner, CosignatureVerifier};
use super::log::Log;
use super::merkle::{self, Hash};
use super::note::{self, NoteSignature, NoteVerifier};
use crate::clock::Clock;
use crate::events::{Kind, Sink};
use crate::ident::keys::{NodeKey, PublicKey, SigningContext};
use crate::store::{Expect, Row, Store, StoreError, Table, WriteBatch};

/// Origin → the size (u64 BE) and root (32 bytes) last cosigned.
pub const WITNESSED: Table = Table::new("witness.state");
/// The spec's bound on consistency-proof lines.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest `add-checkpoint` body read.
pub const MAX_BODY: usize = 64 * 1024;
/// Content type of a 409's body: the witness's size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The key name a node cosigns under: `<zone>/witness`.
pub fn witness_name(zone: &str) -> String {
    format!("{zone}/witness")
}

/// The verifier of the cosignatures the node of `prefix` (with `key`)
/// makes as a witness.
pub fn verifier_of(
    prefix: &crate::ident::identifier::Prefix,
    apex: &crate::ident::identifier::Apex,
    key: &PublicKey,
) -> Option<CosignatureVerifier> {
    let zone = prefix.zone_name(apex);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes()).ok()?;
    CosignatureVerifier::new(&witness_name(zone.trim_end_matches('.')), vk).ok()
}

/// Whether `origin` is a log of the node at `zone`: `<zone>/log`, or a
/// later log of it (`<zone>/log/<n>`, after a rebuild).
pub fn origin_of_zone(origin: &str, zone: &str) -> bool {
    origin
        .strip_prefix(zone)
        .and_then(|rest| rest.strip_prefix("/log"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A log this node witnesses: the node at `zone` with `keys`.
#[derive(Debug, Clone)]
pub struct KnownLog {
    /// The node's prefix, as events name it.
    pub prefix: String,
    /// Its zone name without the final dot, e.g. `31.86.cpid.internal`.
    pub zone: String,
    /// The node's key in force first; two during its key rollover's
    /// overlap, when its checkpoints may be signed by either.
    pub keys: Vec<PublicKey>,
}

/// Why an `add-checkpoint` was refused, with the status the spec names.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// 400.
    #[error("malformed add-checkpoint request: {0}")]
    Malformed(String),
    /// 404.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// 403.
    #[error("no valid signature by the log's key: {0}")]
    Signature(String),
    /// 409: the size this witness last cosigned.
    #[error("the witness's size for this log is {0}")]
    Conflict(u64),
    /// 422.
    #[error("consistency proof does not verify: {0}")]
    Proof(String),
    /// 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WitnessError {
    /// The HTTP status of this refusal (C2SP tlog-witness).
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) => 400,
            WitnessError::Signature(_) => 403,
            WitnessError::UnknownOrigin(_) => 404,
            WitnessError::Conflict(_) => 409,
            WitnessError::Proof(_) => 422,
            WitnessError::Store(_) => 500,
        }
    }
}

/// An `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

impl AddCheckpoint {
    /// `old <size>`, the proof's hashes in base64 a line each, an empty
    /// line, then the note.
    pub fn to_text(&self) -> String {
        let mut out = format!("old {}\n", self.old);
        for h in &self.proof {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Strict parsing; any deviation is [`WitnessError::Malformed`].
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, WitnessError> {
        let bad = |why: &str| WitnessError::Malformed(why.to_string());
        if body.len() > MAX_BODY {
            return Err(bad("body too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .ok_or_else(|| bad("first line is not \"old <size>\""))?;
        if old.is_empty()
            || !old.bytes().all(|b| b.is_ascii_digit())
            || (old.len() > 1 && old.starts_with('0'))
        {
            return Err(bad("old size is not a decimal number"));
        }
        let old: u64 = old.parse().map_err(|_| bad("old size out of range"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() >= MAX_PROOF_LINES {
                return Err(bad("more than 63 proof lines"));
            }
            let bytes = STANDARD
                .decode(line)
                .map_err(|_| bad("a proof line is not base64"))?;
            let hash: Hash = bytes
                .try_into()
                .map_err(|_| bad("a proof line is not a 32-byte hash"))?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old,
            proof,
            note: note.to_string(),
        })
    }
}

fn state_value(size: u64, root: &Hash) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(root);
    v
}

fn parse_state(v: &[u8]) -> Option<(u64, Hash)> {
    let (size, root) = v.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*size), Hash::try_from(root).ok()?))
}

fn verifying(key: &PublicKey) -> Result<ed25519_dalek::VerifyingKey, WitnessError> {
    ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes())
        .map_err(|e| WitnessError::Signature(e.to_string()))
}

/// The witness side of a node.
pub struct Witness {
    store: Arc<dyn Store>,
    signer: CosignatureSigner,
    clock: Clock,
    events: Arc<dyn Sink>,
    /// Check-and-update per origin is one step in this process; the
    /// store's guard makes it one step across processes too.
    lock: Mutex<()>,
}

impl Witness {
    pub fn new(
        store: Arc<dyn Store>,
        key: &NodeKey,
        zone: &str,
        clock: Clock,
        events: Arc<dyn Sink>,
    ) -> Result<Witness, super::error::TlogError> {
        let raw = key.for_spec_format(SigningContext::Note).ok_or_else(|| {
            super::error::TlogError::Malformed {
                what: "witness key",
                reason: "no raw key for cosignatures".into(),
            }
        })?;
        Ok(Witness {
            store,
            signer: CosignatureSigner::new(&witness_name(zone), raw)?,
            clock,
            events,
            lock: Mutex::new(()),
        })
    }

    /// This witness's verifier key text (type 0x04).
    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    /// The size and root last cosigned for `origin`.
    pub fn state(&self, origin: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        Ok(self
            .store
            .row(WITNESSED, origin.as_bytes())?
            .as_deref()
            .and_then(parse_state))
    }

    /// Handles one `add-checkpoint` body against the logs this node knows;
    /// the answer is the cosignature line to append to the note.
    pub fn add(&self, body: &[u8], known: &[KnownLog]) -> Result<String, WitnessError> {
        let req = AddCheckpoint::parse(body)?;
        let (text, _) =
            note::split(&req.note).map_err(|e| WitnessError::Malformed(e.to_string()))?;
        let cp = Checkpoint::parse(text).map_err(|e| WitnessError::Malformed(e.to_string()))?;
        let log = known
            .iter()
            .find(|l| origin_of_zone(&cp.origin, &l.zone))
            .ok_or_else(|| WitnessError::UnknownOrigin(cp.origin.clone()))?;
        let verifiers = log
            .keys
            .iter()
            .map(|k| {
                NoteVerifier::new(&cp.origin, verifying(k)?)
                    .map_err(|e| WitnessError::Signature(e.to_string()))
            })
            .collect::<Result<Vec<_>, WitnessError>>()?;
        note::open(&req.note, &verifiers).map_err(|e| WitnessError::Signature(e.to_string()))?;
        if req.old > cp.size {
            return Err(WitnessError::Malformed(format!(
                "old size {} is beyond the checkpoint's {}",
                req.old, cp.size
            )));
        }
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let stored = self.store.row(WITNESSED, cp.origin.as_bytes())?;
        let (size, root) = match stored.as_deref() {
            Some(v) => parse_state(v).ok_or_else(|| StoreError::Corrupt {
                key: cp.origin.clone(),
                reason: "witness state is not size and root".into(),
            })?,
            None => (0, merkle::empty_root()),
        };
        if req.old != size {
            return Err(WitnessError::Conflict(size));
        }
        let split = |why: String| {
            self.events
                .record(Kind::SplitView, &log.prefix, &cp.origin, &why);
            WitnessError::Proof(why)
        };
        if req.old == cp.size && cp.root != root {
            // Same size, another root: the log shows two trees.
            self.events.record(
                Kind::SplitView,
                &log.prefix,
                &cp.origin,
                &format!("two roots for size {size}"),
            );
            return Err(WitnessError::Conflict(size));
        }
        if size > 0 {
            merkle::verify_consistency(size, cp.size, &root, &cp.root, &req.proof).map_err(
                |e| {
                    split(format!(
                        "size {} is not an extension of size {size}: {e}",
                        cp.size
                    ))
                },
            )?;
        } else if !req.proof.is_empty() {
            return Err(WitnessError::Proof(
                "a proof from size 0 must be empty".into(),
            ));
        }
        let line = self
            .signer
            .sign(text, self.clock.now())
            .map_err(|e| WitnessError::Malformed(e.to_string()))?;
        if cp.size != size || stored.is_none() {
            self.store.write(WriteBatch {
                rows: vec![Row {
                    table: WITNESSED,
                    key: cp.origin.as_bytes().to_vec(),
                    value: state_value(cp.size, &cp.root),
                }],
                expect: vec![Expect {
                    table: WITNESSED,
                    key: cp.origin.as_bytes().to_vec(),
                    value: stored,
                }],
                ..WriteBatch::default()
            })?;
        }
        metrics::counter!(crate::telemetry::WITNESS_COSIGNED).increment(1);
        Ok(line)
    }
}

/// A witness this node submits its checkpoints to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The witness node's HTTP API, `http://host:port`.
    pub api: String,
    /// Its zone name without the final dot.
    pub zone: String,
    /// The keys its cosignatures may be made with, the one in force first.
    pub keys: Vec<PublicKey>,
}

/// Submits the log's checkpoints to its witnesses and keeps their
/// cosignatures with the log.
pub struct Submitter {
    log: Arc<Log>,
    targets: Box<dyn Fn() -> Vec<Target> + Send + Sync>,
    /// The size each witness (by API and key) last cosigned.
    sizes: Mutex<HashMap<(String, String), u64>>,
}

/// How long a submission waits for a witness.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Submissions happen after each new checkpoint and at least this often.
const RESUBMIT: Duration = Duration::from_secs(10);

impl Submitter {
    pub fn new(log: Arc<Log>, targets: Box<dyn Fn() -> Vec<Target> + Send + Sync>) -> Submitter {
        Submitter {
            log,
            targets,
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// Submits the latest checkpoint to every witness that has not
    /// cosigned it; returns how many cosignatures the log now has.
    pub fn round(&self) -> usize {
        let latest = self.log.latest();
        if latest.size == 0 {
            return 0;
        }
        for target in (self.targets)() {
            let id = (target.api.clone(), target.zone.clone());
            let known = self
                .sizes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
                .copied();
            if known == Some(latest.size) && self.log.cosigned_by(&witness_name(&target.zone)) {
                continue;
            }
            match self.submit(&target, known.unwrap_or(0), &latest.note, latest.size) {
                Ok(()) => {
                    self.sizes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, latest.size);
                }
                Err(e) => {
                    metrics::counter!(crate::telemetry::WITNESS_SUBMISSIONS, "outcome" => "failed")
                        .increment(1);
                    tracing::warn!(witness = %target.api, error = %e, "checkpoint not cosigned");
                }
            }
        }
        self.log.cosignature_count()
    }

    fn submit(&self, target: &Target, old: u64, note: &str, size: u64) -> Result<(), String> {
        let name = witness_name(&target.zone);
        let verifiers = target
            .keys
            .iter()
            .map(|k| {
                CosignatureVerifier::new(&name, verifying(k).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let client = crate::api::client::ApiClient::with_timeout(&target.api, SUBMIT_TIMEOUT);
        let mut old = old;
        // A 409 tells the witness's size: one more try from there.
        for _ in 0..2 {
            let proof = if old == 0 || old >= size {
                Vec::new()
            } else {
                self.log.consistency(old, size).map_err(|e| e.to_string())?
            };
            let body = AddCheckpoint {
                old,
                proof,
                note: note.to_string(),
            }
            .to_text();
            let r = client
                .send(
                    "POST",
                    "/witness/add-checkpoint",
                    http::HeaderMap::new(),
                    body.into_bytes(),
                )
                .map_err(|e| e.to_string())?;
            match r.status {
                200 => {
                    let (text, _) = note::split(note).map_err(|e| e.to_string())?;
                    let mut ok = false;
                    for line in r.text.lines() {
                        let Some(sig) = parse_line(line) else {
                            continue;
                        };
                        if verifiers.iter().any(|v| v.verify(text, &sig).is_ok()) {
                            self.log.add_cosignature(size, &name, &format!("{line}\n"));
                            ok = true;
                        }
                    }
                    metrics::counter!(crate::telemetry::WITNESS_SUBMISSIONS, "outcome" => "cosigned")
                        .increment(1);
                    return if ok {
                        Ok(())
                    } else {
                        Err(format!("no valid cosignature by {name} in the answer"))
                    };
                }
                409 => {
                    let theirs: u64 = r
                        .text
                        .trim_end_matches('\n')
                        .parse()
                        .map_err(|_| format!("409 with an unreadable size {:?}", r.text))?;
                    if theirs > size {
                        return Err(format!(
                            "the witness has cosigned size {theirs}, beyond this log's {size}"
                        ));
                    }
                    if theirs == old {
                        return Err(format!("the witness refuses size {size}: {}", r.text));
                    }
                    old = theirs;
                }
                status => return Err(format!("{status}: {}", r.text.trim())),
            }
        }
        Err("the witness's size kept moving".into())
    }

    /// Submits after every new checkpoint and every [`RESUBMIT`]; runs
    /// until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        let mut changes = self.log.subscribe();
        loop {
            let _ = tokio::time::timeout(RESUBMIT, changes.changed()).await;
            let me = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || me.round()).await {
                tracing::warn!(error = %e, "witness submission round failed");
            }
        }
    }
}

/// One signature line of a note (`— <name> <base64>`).
fn parse_line(line: &str) -> Option<NoteSignature> {
    let note = format!("x\n\n{line}\n");
    note::split(&note).ok()?.1.into_iter().next()
}
