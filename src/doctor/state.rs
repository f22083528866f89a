//! The part of a node's state the risk assessment looks at, gathered from
//! a running node's memory or from a stopped node's store opened
//! read-only.

use std::collections::BTreeMap;

use super::RiskError;
use crate::config::Config;
use crate::ident::delegation::Delegation;
use crate::ident::record::SignedRecord;
use crate::registry::Registry;
use crate::store::redb::ReadOnly;
use crate::tlog::log::{CHECKPOINT, LATEST, Lag, Log, stored_size};

/// What the store says.
#[derive(Debug, Clone)]
pub struct State {
    /// The delegations this node gave its children and has not revoked:
    /// per child prefix, the one that ends last.
    pub children: Vec<Delegation>,
    /// How far the log's checkpoint lags behind its leaves.
    pub log: Lag,
    /// True when read from a node that is serving.
    pub serving: bool,
}

/// Per prefix, the unrevoked delegation that ends last.
fn in_force(records: impl IntoIterator<Item = SignedRecord>) -> Vec<Delegation> {
    let mut by_prefix: BTreeMap<String, Delegation> = BTreeMap::new();
    for r in records {
        let Ok(d) = Delegation::from_record(&r) else {
            continue;
        };
        if d.revoked.is_some() {
            continue;
        }
        match by_prefix.get(&d.prefix) {
            Some(kept) if kept.not_after >= d.not_after => {}
            _ => {
                by_prefix.insert(d.prefix.clone(), d);
            }
        }
    }
    by_prefix.into_values().collect()
}

impl State {
    /// A serving node's state, from its registry and log.
    pub fn of_serving(registry: &Registry, log: &Log) -> Result<State, RiskError> {
        Ok(State {
            children: in_force(registry.delegations()),
            log: log.lag()?,
            serving: true,
        })
    }

    /// A stopped node's state, read from its store without writing;
    /// `None` when there is no store yet. A store a running node holds is
    /// [`crate::store::StoreError::InUse`].
    pub fn read_stopped(config: &Config) -> Result<Option<State>, RiskError> {
        let path = config.store_file();
        if !path.exists() {
            return Ok(None);
        }
        let store = ReadOnly::open(&path)?;
        let mut records = Vec::new();
        store.for_each_record(&mut |r| {
            if r.record().identifier.class() == crate::ident::identifier::Class::Nd {
                records.push(r);
            }
            Ok(())
        })?;
        let checkpoint_size = store
            .row(CHECKPOINT, LATEST)?
            .and_then(|note| stored_size(&note))
            .unwrap_or(0);
        let log_size = store.log_size()?;
        let log = Lag::measure(checkpoint_size, log_size, &mut |start, f| {
            store.log_entries(start, f)
        })?;
        Ok(Some(State {
            children: in_force(records),
            log,
            serving: false,
        }))
    }
}
