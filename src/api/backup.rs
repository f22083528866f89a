//! `POST /v1/admin/backup`: the node's whole store as of one moment —
//! records, serial marks, nonces, statuses, calendars, the transparency
//! log and its checkpoint, the security events — for the node's admin,
//! taken while the node serves.
//!
//! A running node holds its store file open exclusively, so only the node
//! can copy it. The copy is [`crate::store::Store::backup`] (one snapshot,
//! writers go on) into a scratch file in the data directory, which is
//! removed as soon as it is open for sending: a client that goes away
//! leaves nothing behind, and a crash mid-backup leaves a file the next
//! start removes. The key files are not in it; `cpid node restore` puts
//! it in place.
//!
//! The request's nonce is spent before the snapshot (which therefore
//! holds it), so a copy of the request cannot fetch the store a second
//! time.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use http_body_util::channel::{Channel, Sender};

use super::auth::{self, SignedBody};
use super::error::ApiError;
use super::respond::blocking;
use super::state::Shared;
use crate::store::{BackupInfo, WriteBatch};

/// What a backup answer is read in (and how many are in flight).
const CHUNK: usize = 256 << 10;

/// Header of a backup answer: the records it holds.
pub const RECORDS_HEADER: &str = "cpid-backup-records";
/// Header of a backup answer: the size of its log.
pub const LOG_SIZE_HEADER: &str = "cpid-backup-log-size";

/// `POST /v1/admin/backup`, signed by the admin key, empty body: `200`
/// with the store file as `application/octet-stream`.
pub(super) async fn backup(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    let verified = auth::verify_admin(&state, &req, "takes backups").await?;
    let spent = WriteBatch {
        nonces: vec![verified.nonce],
        ..WriteBatch::default()
    };
    crate::store::write_async(state.registry.store().as_ref(), spent).await?;
    let s = state.clone();
    // Runs to its end even if the client goes away (a blocking task is
    // not cancelled), so the scratch file is always removed.
    let (file, info) = blocking(move || {
        // Events recorded so far are written first, so the backup has them.
        s.events.flush()?;
        let path = crate::node::backup_scratch(&s.data_dir)
            .map_err(|e| ApiError::internal(format!("backup scratch name: {e}")))?;
        let info = s.registry.store().backup(&path)?;
        let file = std::fs::File::open(&path);
        // Open files stay readable once unlinked.
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(file = %path.display(), error = %e, "backup scratch not removed");
        }
        let file = file.map_err(|e| {
            ApiError::internal(format!("reading back the backup {}: {e}", path.display()))
        })?;
        Ok((file, info))
    })
    .await?;
    tracing::info!(
        records = info.records,
        log_size = info.log_size,
        bytes = info.bytes,
        "backup taken"
    );
    let (tx, body) = Channel::<Bytes, std::io::Error>::new(2);
    tokio::spawn(send_file(file, tx));
    let mut response = Response::new(Body::new(body));
    headers(&mut response, &info);
    Ok(response)
}

fn headers(response: &mut Response, info: &BackupInfo) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"cpid-backup.redb\""),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.bytes));
    h.insert(RECORDS_HEADER, HeaderValue::from(info.records));
    h.insert(LOG_SIZE_HEADER, HeaderValue::from(info.log_size));
}

/// Sends `file` in chunks read off the reactor; stops when the client has
/// gone, and cuts the answer short on a read error (the client then sees
/// fewer bytes than `Content-Length`).
async fn send_file(mut file: std::fs::File, mut tx: Sender<Bytes, std::io::Error>) {
    loop {
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; CHUNK];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((file, buf))
        })
        .await;
        match read {
            Ok(Ok((_, buf))) if buf.is_empty() => return,
            Ok(Ok((f, buf))) => {
                if tx.send_data(Bytes::from(buf)).await.is_err() {
                    return;
                }
                file = f;
            }
            Ok(Err(e)) => return tx.abort(e),
            Err(e) => return tx.abort(std::io::Error::other(e.to_string())),
        }
    }
}
