//! The party-key index: which provider (`PV`) or buyer (`US`) registered
//! which key, kept in step with every published PV and US record so a
//! signed request finds its signer without a store read.

use std::collections::HashMap;

use crate::ident::identifier::{Class, Identifier};
use crate::ident::keys::{KeyId, PublicKey};
use crate::ident::record::{Record, RecordStatus};
use crate::ident::values::HS_PUBKEY;

/// A registered key and the party it belongs to: a provider (`PV`) or a
/// buyer (`US`); the identifier's class tells which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKey {
    pub provider: Identifier,
    pub status: RecordStatus,
    pub key: PublicKey,
}

/// Key id → provider, and provider → its keys (to drop replaced keys).
#[derive(Default)]
pub(super) struct ProviderIndex {
    by_key: HashMap<KeyId, ProviderKey>,
    by_provider: HashMap<Identifier, Vec<KeyId>>,
}

impl ProviderIndex {
    pub(super) fn get(&self, key_id: &KeyId) -> Option<ProviderKey> {
        self.by_key.get(key_id).cloned()
    }

    pub(super) fn publish(&mut self, record: &Record) {
        if !matches!(record.identifier.class(), Class::Pv | Class::Us) {
            return;
        }
        for old in self
            .by_provider
            .remove(&record.identifier)
            .unwrap_or_default()
        {
            self.by_key.remove(&old);
        }
        if record.status == RecordStatus::Withdrawn {
            return;
        }
        let keys: Vec<PublicKey> = record
            .values
            .iter()
            .filter(|v| v.kind.as_str() == HS_PUBKEY)
            .filter_map(|v| PublicKey::from_public_pem(&v.data).ok())
            .collect();
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            let id = key.key_id();
            ids.push(id);
            self.by_key.insert(
                id,
                ProviderKey {
                    provider: record.identifier.clone(),
                    status: record.status,
                    key,
                },
            );
        }
        self.by_provider.insert(record.identifier.clone(), ids);
    }
}
