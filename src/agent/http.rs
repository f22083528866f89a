//! The agent's [`Node`] over the network: the node's HTTP API through the
//! one client (`api::client::ApiClient`), signed by the provider's key.
//!
//! The node keeps no public map from a key to its provider, so the
//! provider identifier is given (`cpid agent --provider`, remembered in
//! the state file after). It is checked before the first listing: the
//! provider's `PV` record must hold this key (an `HS_PUBKEY` value) and be
//! active. A wrong identifier would otherwise list another provider's
//! records, and tags are only unique per provider.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{AgentError, InventoryItem, Node, OwnedRecord, ReportBody, issue_request};
use crate::api::client::ApiClient;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::keys::{NodeKey, PublicKey};
use crate::ident::record::RecordStatus;
use crate::ident::values::HS_PUBKEY;

/// A node reached over HTTP, acting for one provider.
pub struct HttpNode {
    client: ApiClient,
    key: NodeKey,
    provider: Identifier,
    /// Whether the provider's record was found to hold the key.
    checked: AtomicBool,
}

impl HttpNode {
    /// `provider` must be a `PV` identifier.
    pub fn new(
        client: ApiClient,
        key: NodeKey,
        provider: Identifier,
    ) -> Result<HttpNode, AgentError> {
        if provider.class() != Class::Pv {
            return Err(AgentError::Node(format!(
                "{provider} is not a provider (PV) identifier"
            )));
        }
        Ok(HttpNode {
            client,
            key,
            provider,
            checked: AtomicBool::new(false),
        })
    }

    pub fn provider(&self) -> &Identifier {
        &self.provider
    }

    /// Reads the provider's record and checks that it holds this key and
    /// is active (once per `HttpNode`).
    pub fn check_provider(&self) -> Result<(), AgentError> {
        if self.checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        let p = &self.provider;
        let r = self.client.get(&format!("/v1/identifiers/{p}"))?;
        if r.status == 404 {
            return Err(AgentError::Node(format!(
                "provider {p} is not registered at this node"
            )));
        }
        if r.status != 200 {
            // Let the one mapping decide transient or not.
            return Err(AgentError::Refused {
                status: r.status,
                code: str_field(&r.body, "error").unwrap_or("error").to_string(),
                reason: format!("reading provider {p}: {}", r.text),
                last_seq: None,
            });
        }
        let ours = self.key.public();
        let values = r
            .body
            .get("values")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let holds = values.iter().any(|v| {
            str_field(v, "type") == Some(HS_PUBKEY)
                && str_field(v, "data").and_then(|pem| PublicKey::from_public_pem(pem).ok())
                    == Some(ours)
        });
        if !holds {
            return Err(AgentError::Node(format!(
                "provider {p} does not hold key {} (give the PV identifier `cpid provider register` printed for this key)",
                ours.key_id()
            )));
        }
        let status = str_field(&r.body, "status").unwrap_or("");
        if status != RecordStatus::Active.as_str() {
            return Err(AgentError::Node(format!(
                "provider {p} is {status}; the node's admin approves it (`cpid admin approve`)"
            )));
        }
        self.checked.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl Node for HttpNode {
    fn owned(&self) -> Result<Vec<OwnedRecord>, AgentError> {
        self.check_provider()?;
        Ok(self
            .client
            .owned(&self.provider)?
            .iter()
            .map(|r| OwnedRecord::from_record(r.record.record()))
            .collect())
    }

    fn register(&self, item: &InventoryItem, tag: &str) -> Result<String, AgentError> {
        let reply = self
            .client
            .register(&issue_request(item, tag)?, &self.key)?;
        let record = reply.record.record();
        if record.owner.as_ref() != Some(&self.provider) {
            return Err(AgentError::Node(format!(
                "{} was registered for {}, not for provider {}",
                record.identifier,
                record
                    .owner
                    .as_ref()
                    .map_or_else(|| "no owner".to_string(), ToString::to_string),
                self.provider
            )));
        }
        Ok(record.identifier.to_string())
    }

    fn report(&self, body: &ReportBody) -> Result<(), AgentError> {
        let reply = self.client.report(body, &self.key)?;
        tracing::debug!(agent = body.agent, seq = reply.seq, at = ?reply.at, "node took the report");
        Ok(())
    }
}

fn str_field<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(serde_json::Value::as_str)
}
