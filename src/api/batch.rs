//! Batched Ed25519 verification of request signatures.
//!
//! Requests that arrive together are verified together with ed25519-dalek's
//! `verify_batch` (about 2.4× cheaper per signature on this hardware). The
//! first request to find no batch in progress leads: it yields once, so the
//! requests already runnable queue theirs, then verifies what is queued (at
//! most [`MAX_BATCH`]). If more arrived meanwhile it hands the lead to a
//! new task, so no request is kept verifying others' signatures for long.
//! A batch that fails is re-checked one signature at a time with
//! `verify_strict`, so a bad signature fails only its own request. A lone
//! request is verified with `verify_strict` directly.
//!
//! The batch equation is cofactored where `verify_strict` is not: only the
//! holder of a key can make a signature that one accepts and the other
//! refuses, and weak (small-order) keys are refused at registration, so a
//! batch can never accept a forgery.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::ident::keys::{PublicKey, Signature, SigningContext};

/// Most signatures verified in one batch.
pub const MAX_BATCH: usize = 64;

struct Job {
    message: Vec<u8>,
    signature: Signature,
    key: PublicKey,
    done: tokio::sync::oneshot::Sender<bool>,
}

/// Verifies request signatures in batches; see the module documentation.
#[derive(Default)]
pub struct Batcher {
    queue: Mutex<Vec<Job>>,
    leading: AtomicBool,
}

/// Verifies one batch when dropped, so a leader whose request is cancelled
/// mid-way still verifies what others queued.
struct Lead(Arc<Batcher>);

impl Drop for Lead {
    fn drop(&mut self) {
        self.0.lead_once();
    }
}

impl Batcher {
    /// True when `signature` is `key`'s signature of `message`.
    pub async fn verify(
        self: &Arc<Self>,
        message: Vec<u8>,
        signature: Signature,
        key: PublicKey,
    ) -> bool {
        let (done, result) = tokio::sync::oneshot::channel();
        self.lock().push(Job {
            message,
            signature,
            key,
            done,
        });
        if !self.leading.swap(true, Ordering::AcqRel) {
            let lead = Lead(self.clone());
            tokio::task::yield_now().await;
            drop(lead);
        }
        result.await.unwrap_or(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Verifies one batch, then gives up the lead; whoever queued since
    /// gets a new leader task.
    fn lead_once(self: &Arc<Self>) {
        let jobs = {
            let mut queue = self.lock();
            let n = queue.len().min(MAX_BATCH);
            queue.drain(..n).collect::<Vec<_>>()
        };
        run(jobs);
        self.leading.store(false, Ordering::Release);
        // Jobs queued while this batch ran saw a leader and did not lead.
        if self.lock().is_empty() || self.leading.swap(true, Ordering::AcqRel) {
            return;
        }
        let next = Lead(self.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::task::yield_now().await;
                    drop(next);
                });
            }
            // No runtime (shutting down): finish here.
            Err(_) => drop(next),
        }
    }
}

fn run(jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    metrics::histogram!(crate::telemetry::SIGNATURE_BATCH).record(jobs.len() as f64);
    if jobs.len() > 1 {
        let messages: Vec<&[u8]> = jobs.iter().map(|j| j.message.as_slice()).collect();
        let signatures: Vec<ed25519_dalek::Signature> = jobs
            .iter()
            .map(|j| ed25519_dalek::Signature::from_bytes(&j.signature.0))
            .collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> = jobs.iter().map(|j| j.key.dalek()).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            for j in jobs {
                let _ = j.done.send(true);
            }
            return;
        }
    }
    for j in jobs {
        let ok = j
            .key
            .verify_strict(SigningContext::HttpMessage, &j.message, &j.signature)
            .is_ok();
        let _ = j.done.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::keys::NodeKey;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_verifications_batch_and_a_bad_one_fails_alone() {
        let batcher = Arc::new(Batcher::default());
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let b = batcher.clone();
            tasks.push(tokio::spawn(async move {
                let key = NodeKey::generate().unwrap();
                let message = format!("request {i}").into_bytes();
                let mut signature = key.sign(SigningContext::HttpMessage, &message);
                let good = i % 9 != 4;
                if !good {
                    signature.0[5] ^= 1;
                }
                (good, b.verify(message, signature, key.public()).await)
            }));
        }
        for t in tasks {
            let (good, verified) = t.await.unwrap();
            assert_eq!(good, verified);
        }
        // A signature by another key for the same message fails too.
        let (a, b) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
        assert!(
            !batcher
                .verify(
                    b"m".to_vec(),
                    a.sign(SigningContext::HttpMessage, b"m"),
                    b.public()
                )
                .await
        );
        assert!(
            batcher
                .verify(
                    b"m".to_vec(),
                    a.sign(SigningContext::HttpMessage, b"m"),
                    a.public()
                )
                .await
        );
    }
}
