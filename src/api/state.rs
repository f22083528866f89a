//! What every handler of the node's API shares: the registry, the node's
//! policy and limits, the admin key, and the two pieces of request-checking
//! state (the provider-registration lock and the signature batcher).

use std::net::SocketAddr;
use std::sync::Arc;

use super::batch;
use super::limits::Limits;
use crate::capacity::Capacity;
use crate::config::Policy;
use crate::events::{Feed, Kind, Sink};
use crate::ident::keys::PublicKey;
use crate::node::{Node, Parent};
use crate::registry::Registry;
use crate::resolution::directory::Directory;
use crate::select::Selector;
use crate::tlog::log::Log;
use crate::tlog::witness::Witness;
use crate::trade::Trades;

/// The admin key in force, shared by every request.
#[derive(Debug, Clone)]
pub struct AdminKey(Arc<std::sync::RwLock<PublicKey>>);

impl AdminKey {
    pub fn new(key: PublicKey) -> AdminKey {
        AdminKey(Arc::new(std::sync::RwLock::new(key)))
    }

    pub fn get(&self) -> PublicKey {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, key: PublicKey) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

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
    /// The security-event feed (system E).
    pub events: Arc<Feed>,
    /// This node as a witness of its parent's and children's logs.
    pub witness: Arc<Witness>,
    /// The parent node (a log this node witnesses).
    pub parent: Option<Parent>,
    /// Keys of the gateways that may forward security events.
    pub reporters: Vec<PublicKey>,
    pub policy: Policy,
    pub signature_window_secs: u64,
    pub max_body_bytes: usize,
    /// `[http.limits]`: the listener's, and the per-key rate [`super::auth`]
    /// applies to verified requests.
    pub limits: Arc<Limits>,
    /// The node admin's key: approves providers; not the record-signing
    /// key. Replaced live by `POST /v1/admin/key`.
    pub admin: AdminKey,
    pub default_ttl: u32,
    /// The node's data directory: where a backup is written before it is
    /// sent.
    pub data_dir: std::path::PathBuf,
    /// Where DNS is served, for `/v1/node`.
    pub dns_addr: Option<SocketAddr>,
    /// The delegations from the root to this node (root first).
    pub chain: crate::ident::delegation::LiveChain,
    /// The node's configuration, as the risk assessment reads it.
    pub config: Arc<crate::config::Config>,
    /// Other nodes' records, resolved from the root key (foreign buyers,
    /// federated selection); `None` when the node cannot reach a root.
    pub directory: Option<Arc<Directory>>,
    /// One provider registration at a time, so a key registers once.
    pub(super) provider_lock: tokio::sync::Mutex<()>,
    /// Verifies concurrent request signatures together.
    pub(super) batcher: Arc<batch::Batcher>,
    /// The node key's SPKI PEM, as every answer with a record names it
    /// (`issuer_public_key`): encoded once.
    pub(super) issuer_pem: String,
}

impl ApiState {
    /// The handlers' state over an opened node; limits and policy come
    /// from its configuration.
    pub fn new(node: &Node) -> ApiState {
        let config = &node.config;
        ApiState {
            registry: node.registry.clone(),
            capacity: node.capacity.clone(),
            trades: node.trades.clone(),
            selector: node.selector.clone(),
            log: node.log.clone(),
            events: node.events.clone(),
            witness: node.witness.clone(),
            parent: node.parent.clone(),
            reporters: node.reporters.clone(),
            policy: config.registration.policy,
            signature_window_secs: config.registration.signature_window_secs,
            max_body_bytes: config.http.max_body_bytes,
            limits: Arc::new(Limits::new(
                &config.http.limits,
                config.http.max_body_bytes,
                node.events.clone(),
            )),
            admin: AdminKey::new(node.admin_key),
            default_ttl: config.node.default_ttl,
            data_dir: config.node.data_dir.clone(),
            dns_addr: None,
            chain: node.chain.clone(),
            config: Arc::new(config.clone()),
            directory: None,
            provider_lock: tokio::sync::Mutex::new(()),
            batcher: Arc::new(batch::Batcher::default()),
            issuer_pem: node.registry.key().public().to_public_pem(),
        }
    }

    /// Reports a security event.
    pub fn event(&self, kind: Kind, source: &str, subject: &str, detail: &str) {
        self.events.record(kind, source, subject, detail);
    }
}

/// The state as an axum extractor.
pub(super) type Shared = axum::extract::State<Arc<ApiState>>;
