//! Records held by other nodes of the federation, resolved and verified
//! from the national root key: the key of a buyer registered elsewhere
//! (so a resource's node can check its signed steps) and the records a
//! federated selection ranks. Answers are cached briefly, refusals too, so
//! a burst of requests by one party costs one resolution.

use std::collections::HashMap;
use std::sync::Mutex;

use super::resolver::{Outcome, ResolveError, Resolver};
use crate::clock::Clock;
use crate::ident::identifier::Identifier;
use crate::ident::keys::PublicKey;
use crate::ident::record::{RecordStatus, SignedRecord};
use crate::ident::values::HS_PUBKEY;

/// How long a resolved record is trusted without asking again, seconds.
const CACHE_SECS: u64 = 30;
/// Most records cached (a full cache is cleared: this is not the gateway).
const CACHE_MAX: usize = 100_000;

/// A party (provider or buyer) as its own node publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyKey {
    pub id: Identifier,
    pub key: PublicKey,
    pub status: RecordStatus,
}

/// Resolves identifiers of the whole federation through the chain of trust.
pub struct Directory {
    resolver: Resolver,
    clock: Clock,
    cache: Mutex<HashMap<Identifier, (Option<SignedRecord>, u64)>>,
}

impl Directory {
    pub fn new(resolver: Resolver, clock: Clock) -> Directory {
        Directory {
            resolver,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The verified, active record of `id`, or `None` when the federation
    /// has none.
    pub async fn record(&self, id: &Identifier) -> Result<Option<SignedRecord>, ResolveError> {
        let now = self.clock.now();
        if let Some((hit, until)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(id)
            && *until > now
        {
            return Ok(hit.clone());
        }
        let found = match self.resolver.resolve_identifier(id).await?.0 {
            Outcome::Record { record, .. } => Some(record),
            Outcome::Negative { .. } => None,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(id.clone(), (found.clone(), now + CACHE_SECS));
        Ok(found)
    }

    /// The key a provider or buyer registered at its own node.
    pub async fn party(&self, id: &Identifier) -> Result<Option<PartyKey>, ResolveError> {
        let Some(record) = self.record(id).await? else {
            return Ok(None);
        };
        let r = record.record();
        Ok(r.values
            .iter()
            .filter(|v| v.kind.as_str() == HS_PUBKEY)
            .find_map(|v| PublicKey::from_public_pem(&v.data).ok())
            .map(|key| PartyKey {
                id: id.clone(),
                key,
                status: r.status,
            }))
    }
}
