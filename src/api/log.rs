//! The transparency log over HTTP: the C2SP `tlog-tiles` read API under
//! `/log/` (checkpoint, hash tiles, entry bundles), which any HTTP cache can
//! mirror, and proofs by identifier under `/v1/log/`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value as Json_, json};

use super::error::{ApiError, Code};
use super::respond::{IdPath, blocking, not_found};
use super::situation::CheckedQuery;
use super::state::Shared;
use crate::events::Kind;
use crate::telemetry;
use crate::tlog::log::LogError;
use crate::tlog::merkle::{self, Hash};
use crate::tlog::tile::{Tile, TileResource};
use crate::tlog::witness::{KnownLog, SIZE_CONTENT_TYPE, WitnessError};

/// How long a proof request waits for a just-committed leaf's checkpoint.
const COVER_WAIT: Duration = Duration::from_secs(3);
/// Full tiles and bundles never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The checkpoint and partial tiles move on.
const FRESH: &str = "no-cache";

fn b64(h: &Hash) -> String {
    STANDARD.encode(h)
}

fn text(body: String, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

fn bytes(body: Vec<u8>, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

/// `GET /log/checkpoint`: the latest signed checkpoint note.
/// Witnesses' cosignatures of it are appended as further signature lines.
pub(super) async fn checkpoint(State(state): Shared) -> Response {
    text(state.log.served_note(), FRESH)
}

/// `GET /log/tile/…`: a hash tile or an entry bundle (C2SP tlog-tiles).
pub(super) async fn tile(
    State(state): Shared,
    Path(rest): Path<String>,
) -> Result<Response, ApiError> {
    let path = format!("tile/{rest}");
    let resource = Tile::parse(&path).map_err(|e| ApiError::new(Code::NotFound, e.to_string()))?;
    let cache = if resource.tile().is_partial() {
        FRESH
    } else {
        IMMUTABLE
    };
    let s = state.clone();
    let body = blocking(move || {
        let found = match &resource {
            TileResource::Entries(t) => s.log.bundle(t.index, t.width),
            TileResource::Hashes(t) => s.log.tile(t),
        };
        found
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::new(Code::NotFound, format!("{path} is not in the log yet")))
    })
    .await?;
    Ok(bytes(body, cache))
}

/// `GET /v1/log`: the log's origin, its verifier key and latest checkpoint.
pub(super) async fn info(State(state): Shared) -> Json<Json_> {
    let latest = state.log.latest();
    Json(json!({
        "origin": state.log.origin(),
        "key": state.log.verifier_key(),
        "size": latest.size,
        "root": b64(&latest.root),
        "checkpoint": latest.note,
    }))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProofQuery {
    /// The record version to prove; the latest logged one by default.
    version: Option<u64>,
    /// The tree size to prove against; the latest checkpoint's by default.
    size: Option<u64>,
    /// Prove against the latest checkpoint a witness cosigned (waiting
    /// for one that holds the leaf), and answer it with its cosignatures.
    witnessed: Option<bool>,
}

/// `GET /v1/log/proof/{prefix}/{suffix}`: a record's leaf and its inclusion
/// proof. A leaf committed a moment ago is waited for (its checkpoint is
/// signed within a second).
pub(super) async fn proof(
    State(state): Shared,
    IdPath(id): IdPath,
    CheckedQuery(q): CheckedQuery<ProofQuery>,
) -> Result<Json<Json_>, ApiError> {
    let s = state.clone();
    let lookup_id = id.clone();
    let found = blocking(move || {
        // The version the node serves now, unless another is asked for; a
        // leaf committed a moment ago is found before it is integrated.
        let version = match q.version {
            Some(v) => v,
            None => match s.registry.get(&lookup_id)? {
                Some(r) => r.record().version,
                None => return Ok(None),
            },
        };
        Ok::<_, ApiError>(s.log.index_of(&lookup_id, version)?.map(|i| (version, i)))
    })
    .await?;
    let (version, index) = found.ok_or_else(|| not_found(&id))?;
    let (size, note) = if q.witnessed == Some(true) {
        let (signed, note) = witnessed_covering(&state, index).await.ok_or_else(|| {
            ApiError::new(
                Code::Busy,
                format!("no witnessed checkpoint holds leaf {index} yet"),
            )
        })?;
        (signed.size, Some(note))
    } else {
        let latest = state.log.covering(index, COVER_WAIT).await.ok_or_else(|| {
            ApiError::new(Code::Busy, format!("leaf {index} is not integrated yet"))
        })?;
        let size = q.size.unwrap_or(latest.size);
        let note = (size == latest.size).then(|| state.log.served_with(&latest));
        (size, note)
    };
    if size <= index {
        return Err(ApiError::new(
            Code::InvalidQuery,
            format!("size {size} does not hold leaf {index}"),
        ));
    }
    let s = state.clone();
    let (leaf, proof, root) = blocking(move || {
        let leaf = s
            .log
            .leaf(index)?
            .ok_or_else(|| ApiError::internal(format!("leaf {index} is missing")))?;
        let proof = s.log.inclusion(index, size)?;
        let root = s.log.root(size)?;
        Ok::<_, ApiError>((leaf, proof, root))
    })
    .await?;
    metrics::counter!(telemetry::LOG_PROOFS, "kind" => "inclusion").increment(1);
    let mut body = json!({
        "identifier": id.to_string(),
        "version": version,
        "index": index,
        "size": size,
        "root": b64(&root),
        "leaf": STANDARD.encode(&leaf),
        "leaf_hash": b64(&merkle::leaf_hash(&leaf)),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
    });
    if let (Some(note), Some(obj)) = (note, body.as_object_mut()) {
        obj.insert("checkpoint".into(), note.into());
    }
    Ok(Json(body))
}

/// The latest witnessed checkpoint once it holds leaf `index`, waiting up
/// to [`COVER_WAIT`] (witnesses cosign right after each checkpoint).
async fn witnessed_covering(
    state: &crate::api::ApiState,
    index: u64,
) -> Option<(std::sync::Arc<crate::tlog::log::Signed>, String)> {
    let deadline = tokio::time::Instant::now() + COVER_WAIT;
    loop {
        if let Some((signed, note)) = state.log.witnessed()
            && signed.size > index
        {
            return Some((signed, note));
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyQuery {
    old: u64,
    /// The latest checkpoint's size by default.
    new: Option<u64>,
}

/// `GET /v1/log/consistency?old=M[&new=N]`: the proof that the tree of `N`
/// leaves extends the tree of `M`.
pub(super) async fn consistency(
    State(state): Shared,
    CheckedQuery(q): CheckedQuery<ConsistencyQuery>,
) -> Result<Json<Json_>, ApiError> {
    let latest = state.log.latest();
    let new = q.new.unwrap_or(latest.size);
    if q.old > new {
        return Err(ApiError::new(
            Code::InvalidQuery,
            format!("old size {} is larger than new size {new}", q.old),
        ));
    }
    let s = state.clone();
    let old = q.old;
    let (proof, old_root, new_root) = blocking(move || {
        let proof = s.log.consistency(old, new)?;
        Ok::<_, ApiError>((proof, s.log.root(old)?, s.log.root(new)?))
    })
    .await?;
    metrics::counter!(telemetry::LOG_PROOFS, "kind" => "consistency").increment(1);
    let mut body = json!({
        "old": old,
        "new": new,
        "old_root": b64(&old_root),
        "new_root": b64(&new_root),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
    });
    if new == latest.size
        && let Some(obj) = body.as_object_mut()
    {
        obj.insert("checkpoint".into(), state.log.served_with(&latest).into());
    }
    Ok(Json(body))
}

/// `POST /witness/add-checkpoint` (C2SP tlog-witness): cosigns a
/// checkpoint of the parent's or a child's log that is consistent with the
/// last one cosigned; a 409 answers the size this witness holds.
pub(super) async fn add_checkpoint(State(state): Shared, body: axum::body::Bytes) -> Response {
    let s = state.clone();
    let outcome = blocking(move || {
        let mut known: Vec<KnownLog> =
            crate::node::children_logs(&s.registry, s.registry.apex(), s.registry.clock().now())
                .into_iter()
                .map(|(log, _)| log)
                .collect();
        known.extend(s.parent.iter().map(|p| p.log_now(&s.chain)));
        Ok(s.witness.add(&body, &known))
    })
    .await;
    match outcome {
        Ok(Ok(line)) => text(line, "no-store"),
        Ok(Err(WitnessError::Conflict(size))) => (
            StatusCode::CONFLICT,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(SIZE_CONTENT_TYPE),
            )],
            format!("{size}\n"),
        )
            .into_response(),
        Ok(Err(e)) => {
            let code = match &e {
                WitnessError::Malformed(_) => Code::MalformedCheckpoint,
                WitnessError::UnknownOrigin(_) => Code::UnknownLog,
                WitnessError::Signature(_) => Code::CheckpointSignature,
                WitnessError::Proof(_) => Code::InconsistentCheckpoint,
                WitnessError::Conflict(_) | WitnessError::Store(_) => Code::StoreUnavailable,
            };
            if code == Code::CheckpointSignature {
                state.event(
                    Kind::SignatureFailure,
                    "witness",
                    "/witness/add-checkpoint",
                    &e.to_string(),
                );
            }
            ApiError::new(code, e.to_string()).into_response()
        }
        Err(e) => e.into_response(),
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> ApiError {
        match e {
            LogError::Store(e) => e.into(),
            LogError::Beyond { .. } => ApiError::new(Code::InvalidQuery, e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}
