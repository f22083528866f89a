//! NOTIFY (RFC 1996) to the secondaries after the zone changes.
//!
//! One task per configured target follows the zone's serial. A change is
//! gathered for `delay` (a burst of registrations is one NOTIFY), then the
//! target is sent a NOTIFY for the newest serial (opcode NOTIFY, AA, the
//! apex SOA question and the new SOA in the answer section), signed with
//! the secondary's TSIG key when it has one. It is sent again, with the
//! wait for an answer doubling from one second up to a minute, until the
//! secondary answers with the same ID, opcode NOTIFY, NOERROR and (when
//! signed) a TSIG that verifies over the request's MAC; a newer serial
//! meanwhile replaces the one being sent at once (after the gathering
//! delay), not after the current wait. At start every target is told the current
//! serial, so a secondary that missed changes while the node was down
//! catches up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::tsig::{self, Chain, TsigKey};
use super::wire::{CLASS_IN, Reader, rtype};
use super::zone::Zone;
use crate::clock::Clock;
use crate::telemetry;

const OPCODE_NOTIFY: u16 = 4 << 11;
const FLAG_AA: u16 = 0x0400;
const FLAG_QR: u16 = 0x8000;
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// Where one secondary is told of changes.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub key: Option<TsigKey>,
}

/// Starts one task per target; they end when the zone is dropped.
pub fn start(
    zone: &Arc<Zone>,
    targets: Vec<Target>,
    delay: Duration,
    clock: Clock,
) -> Vec<tokio::task::JoinHandle<()>> {
    targets
        .into_iter()
        .map(|t| {
            let follower = Follower {
                zone: zone.clone(),
                target: t,
                delay,
                clock: clock.clone(),
            };
            tokio::spawn(follower.run(zone.watch_serial()))
        })
        .collect()
}

struct Follower {
    zone: Arc<Zone>,
    target: Target,
    delay: Duration,
    clock: Clock,
}

impl Follower {
    async fn run(self, mut serials: watch::Receiver<u32>) {
        let local: SocketAddr = if self.target.addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
        };
        let socket = match UdpSocket::bind(local).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, target = %self.target.addr, "cannot open a socket for NOTIFY");
                return;
            }
        };
        // The current serial first, then each change.
        serials.mark_changed();
        while serials.changed().await.is_ok() {
            // Until one serial is acknowledged: gather a burst, then send
            // and resend; a newer serial starts over at once.
            loop {
                tokio::time::sleep(self.delay).await;
                let serial = *serials.borrow_and_update();
                let mut wait = FIRST_WAIT;
                let acknowledged = loop {
                    tokio::select! {
                        acked = self.notify(&socket, serial, wait) => {
                            if acked {
                                break true;
                            }
                            // The wait for the answer was the retry interval.
                            wait = (wait * 2).min(LONGEST_WAIT);
                        }
                        changed = serials.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            break false;
                        }
                    }
                };
                if acknowledged {
                    break;
                }
            }
        }
    }

    /// Sends one NOTIFY and waits up to `wait` for its acknowledgement.
    async fn notify(&self, socket: &UdpSocket, serial: u32, wait: Duration) -> bool {
        let mut id = [0u8; 2];
        if getrandom::fill(&mut id).is_err() {
            return false;
        }
        let id = u16::from_be_bytes(id);
        let (mut msg, soa) = self.message(id);
        let mac = self
            .target
            .key
            .as_ref()
            .map(|k| tsig::sign(&mut msg, k, Chain::Request, self.clock.now()));
        if let Err(e) = socket.send_to(&msg, self.target.addr).await {
            tracing::debug!(error = %e, target = %self.target.addr, "NOTIFY not sent");
            return false;
        }
        metrics::counter!(telemetry::NOTIFY_SENT).increment(1);
        tracing::debug!(target = %self.target.addr, serial, soa_len = soa, "NOTIFY sent");
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 4096];
        loop {
            let got = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let (n, from) = match got {
                Ok(Ok(r)) => r,
                Ok(Err(_)) | Err(_) => return false,
            };
            if from != self.target.addr {
                continue;
            }
            let answer = buf.get(..n).unwrap_or_default();
            if self.acknowledges(answer, id, mac.as_deref()) {
                metrics::counter!(telemetry::NOTIFY_ACKED).increment(1);
                tracing::debug!(target = %self.target.addr, serial, "NOTIFY acknowledged");
                return true;
            }
        }
    }

    /// The NOTIFY for the zone's current SOA; also its SOA's length.
    fn message(&self, id: u16) -> (Vec<u8>, usize) {
        let snapshot = self.zone.snapshot();
        let apex = snapshot.apex().as_bytes().to_vec();
        let soa = snapshot.soa();
        let mut m = Vec::with_capacity(64 + apex.len() + soa.len());
        for v in [id, OPCODE_NOTIFY | FLAG_AA, 1, 1, 0, 0] {
            m.extend_from_slice(&v.to_be_bytes());
        }
        m.extend_from_slice(&apex);
        m.extend_from_slice(&rtype::SOA.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        // The SOA with its owner as a pointer to the question.
        m.extend_from_slice(&[0xC0, 0x0C]);
        m.extend_from_slice(soa.get(apex.len()..).unwrap_or_default());
        (m, soa.len())
    }

    fn acknowledges(&self, answer: &[u8], id: u16, mac: Option<&[u8]>) -> bool {
        let ok = acknowledges(answer, id, self.target.key.as_ref(), mac, self.clock.now());
        if !ok && answer.get(3).is_some_and(|b| b & 0x0F != 0) {
            tracing::warn!(target = %self.target.addr, "NOTIFY refused by the secondary");
        }
        ok
    }
}

/// Whether `answer` acknowledges the NOTIFY with `id` (signed with `key`
/// over the request's `mac` when there is a key): same ID, a response,
/// opcode NOTIFY, NOERROR, a TSIG that verifies. Any bytes: never a panic.
pub fn acknowledges(
    answer: &[u8],
    id: u16,
    key: Option<&TsigKey>,
    mac: Option<&[u8]>,
    now: u64,
) -> bool {
    let mut r = Reader::new(answer);
    let (Ok(got), Ok(flags)) = (r.u16(), r.u16()) else {
        return false;
    };
    if got != id || flags & FLAG_QR == 0 || flags & 0x7800 != OPCODE_NOTIFY || flags & 0x000F != 0 {
        return false;
    }
    match (key, mac) {
        (Some(key), Some(mac)) => {
            match tsig::verify(answer, std::slice::from_ref(key), Chain::Response(mac), now) {
                Ok(Some(_)) => true,
                Ok(None) => {
                    metrics::counter!(telemetry::TSIG_FAILURES, "error" => "unsigned").increment(1);
                    false
                }
                Err(e) => {
                    metrics::counter!(telemetry::TSIG_FAILURES, "error" => e.label()).increment(1);
                    false
                }
            }
        }
        (Some(_), None) => false,
        _ => true,
    }
}
