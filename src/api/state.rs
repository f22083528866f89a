//! What every handler of the node's API shares: the registry, the node's
//! policy and limits, the admin key, and the two pieces of request-checking
//! state (the provider-registration lock and the signature batcher).

use std::net::SocketAddr;
use std::sync::Arc;

use super::batch;
use crate::capacity::Capacity;
use crate::config::{Config, Policy};
use crate::ident::keys::PublicKey;
use crate::ident::record::SignedRecord;
use crate::registry::Registry;
use crate::resolution::directory::Directory;
use crate::select::Selector;
use crate::tlog::log::Log;
use crate::trade::Trades;

/// What the handlers share.
pub struct ApiState {
    pub registry: Arc<Registry>,
    /// Live status and totals (system C).
    pub capacity: Arc<Capacity>,
    /// Transactions and calendars (system A).
    pub trades: Arc<Trades>,
    /// The selection index (system D).
    pub selector: Arc<Selector>,
    /// The transparency log (system E).
    pub log: Arc<Log>,
    pub policy: Policy,
    pub signature_window_secs: u64,
    pub max_body_bytes: usize,
    /// The node admin's key: approves providers; not the record-signing key.
    pub admin_key: PublicKey,
    pub default_ttl: u32,
    /// Where DNS is served, for `/v1/node`.
    pub dns_addr: Option<SocketAddr>,
    /// The delegations from the root to this node (root first).
    pub chain: Vec<SignedRecord>,
    /// Other nodes' records, resolved from the root key (foreign buyers,
    /// federated selection); `None` when the node cannot reach a root.
    pub directory: Option<Arc<Directory>>,
    /// One provider registration at a time, so a key registers once.
    pub(super) provider_lock: tokio::sync::Mutex<()>,
    /// Verifies concurrent request signatures together.
    pub(super) batcher: Arc<batch::Batcher>,
}

impl ApiState {
    /// The handlers' state; limits and policy come from `config`.
    pub fn new(
        registry: Arc<Registry>,
        capacity: Arc<Capacity>,
        trades: Arc<Trades>,
        selector: Arc<Selector>,
        log: Arc<Log>,
        config: &Config,
        admin_key: PublicKey,
    ) -> ApiState {
        ApiState {
            registry,
            capacity,
            trades,
            selector,
            log,
            policy: config.registration.policy,
            signature_window_secs: config.registration.signature_window_secs,
            max_body_bytes: config.http.max_body_bytes,
            admin_key,
            default_ttl: config.node.default_ttl,
            dns_addr: None,
            chain: Vec::new(),
            directory: None,
            provider_lock: tokio::sync::Mutex::new(()),
            batcher: Arc::new(batch::Batcher::default()),
        }
    }
}

/// The state as an axum extractor.
pub(super) type Shared = axum::extract::State<Arc<ApiState>>;
