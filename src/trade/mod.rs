//! System A's transactions (DESIGN §5): `TX` records between a buyer (`US`)
//! and a provider (`PV`) over one resource of this node, their state
//! machine, and the capacity calendar that keeps accepted units from being
//! booked twice.
//!
//! A transaction is a record like any other — built, signed by the node
//! and committed through the one commit path — but private: it is never
//! put in the hot tier (no DNS answer) nor shown by public reads
//! ([`crate::registry::is_private`]). Each version holds two values: the
//! transaction as it now stands (`CP.TXN`, [`TxDoc`]) and the step that
//! made it (`CP.TXSTEP`, [`StepDoc`]), which embeds the party's signed
//! HTTP request verbatim so anyone holding the party's key can check who
//! asked for it. `schema/transaction.md` fixes both.
//!
//! States: `proposed → accepted → active → settled`, and from `proposed`
//! also `rejected` (provider), `cancelled` (buyer) and `expired` (the node,
//! when the acceptance deadline passes). Accepting books the units on the
//! resource's [`calendar`] in the same commit as the record; settling
//! releases what is left of the window.

pub mod calendar;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use self::calendar::{Booking, CALENDAR, Calendar, Clash, Kept, Planned};
use crate::clock::Clock;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::record::{RecordStatus, SignedRecord, Value, ValueType};
use crate::ident::values::{CP_RESOURCE, is_resource_class};
use crate::registry::{Change, NewRecord, Observer, Plan, Registry, RegistryError, Step};
use crate::store::{Expect, Nonce, Row, StoreError};

/// Version of the transaction document.
pub const SCHEMA: &str = "cpid.tx/1";
/// The value type of the transaction document.
pub const CP_TXN: &str = "CP.TXN";
/// The value type of the step that made a version.
pub const CP_TXSTEP: &str = "CP.TXSTEP";
/// Longest window a transaction may book.
pub const MAX_WINDOW_SECS: u64 = 366 * 24 * 3600;
/// How far in the past a window may start (clock skew between parties).
pub const START_SLACK_SECS: u64 = 300;
/// Commits retried when a concurrent step changed the calendar first.
const RETRIES: usize = 16;

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    Proposed,
    Accepted,
    Active,
    Settled,
    Rejected,
    Cancelled,
    Expired,
}

impl TxState {
    pub const ALL: [TxState; 7] = [
        TxState::Proposed,
        TxState::Accepted,
        TxState::Active,
        TxState::Settled,
        TxState::Rejected,
        TxState::Cancelled,
        TxState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Proposed => "proposed",
            TxState::Accepted => "accepted",
            TxState::Active => "active",
            TxState::Settled => "settled",
            TxState::Rejected => "rejected",
            TxState::Cancelled => "cancelled",
            TxState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<TxState> {
        TxState::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A step a party (or the node) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Propose,
    Accept,
    Reject,
    Activate,
    Settle,
    Cancel,
    Expire,
}

/// Who may take a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Buyer,
    Provider,
    Node,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Propose => "propose",
            StepKind::Accept => "accept",
            StepKind::Reject => "reject",
            StepKind::Activate => "activate",
            StepKind::Settle => "settle",
            StepKind::Cancel => "cancel",
            StepKind::Expire => "expire",
        }
    }

    pub fn parse(s: &str) -> Option<StepKind> {
        [
            StepKind::Propose,
            StepKind::Accept,
            StepKind::Reject,
            StepKind::Activate,
            StepKind::Settle,
            StepKind::Cancel,
            StepKind::Expire,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The party whose step it is.
    pub fn role(self) -> Role {
        match self {
            StepKind::Propose | StepKind::Cancel => Role::Buyer,
            StepKind::Accept | StepKind::Reject | StepKind::Activate | StepKind::Settle => {
                Role::Provider
            }
            StepKind::Expire => Role::Node,
        }
    }

    /// The state a step starts from and the one it leads to (the whole
    /// state machine).
    pub fn transition(self) -> (TxState, TxState) {
        match self {
            StepKind::Propose => (TxState::Proposed, TxState::Proposed),
            StepKind::Accept => (TxState::Proposed, TxState::Accepted),
            StepKind::Reject => (TxState::Proposed, TxState::Rejected),
            StepKind::Cancel => (TxState::Proposed, TxState::Cancelled),
            StepKind::Expire => (TxState::Proposed, TxState::Expired),
            StepKind::Activate => (TxState::Accepted, TxState::Active),
            StepKind::Settle => (TxState::Active, TxState::Settled),
        }
    }
}

/// The price of a transaction, fixed at proposal from the resource's
/// descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxPrice {
    pub per_unit_hour: f64,
    pub currency: String,
    /// `per_unit_hour × units × hours of the window`.
    pub total: f64,
}

/// A transaction as it stands (`CP.TXN`, `schema/transaction.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxDoc {
    pub schema: String,
    pub state: TxState,
    pub buyer: String,
    pub provider: String,
    pub resource: String,
    pub units: u64,
    /// The resource descriptor's `unit`.
    pub unit: String,
    pub start: u64,
    pub end: u64,
    pub price: TxPrice,
    pub proposed_at: u64,
    /// A proposal not accepted by then expires.
    pub accept_by: u64,
    /// What settlement charged (at most `price.total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_amount: Option<f64>,
    /// Why a party rejected or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A party's signed HTTP request, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRequest {
    pub method: String,
    pub path: String,
    pub content_digest: String,
    pub signature_input: String,
    pub signature: String,
    /// The body as sent (UTF-8 JSON).
    pub body: String,
}

/// The step that made a version (`CP.TXSTEP`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    pub step: StepKind,
    /// The party's identifier, or `node` for the node's own steps.
    pub by: String,
    pub at: u64,
    /// The party's signed request; absent for the node's steps (the node's
    /// signature on the record is the accountable one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<SignedRequest>,
}

/// What a buyer proposes (`POST /v1/transactions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    pub resource: String,
    pub units: serde_json::Value,
    pub start: serde_json::Value,
    pub end: serde_json::Value,
    /// Refuse when the resource's price per unit-hour is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_per_unit_hour: Option<serde_json::Value>,
}

/// The body of a step on an existing transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// Why (reject, cancel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What settlement charges (settle; default the agreed total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<serde_json::Value>,
}

/// Parses a proposal body (`POST /v1/transactions`): strict JSON, unknown
/// fields refused. What it carries is checked by [`ProposeRequest::terms`].
pub fn parse_proposal(body: &[u8]) -> Result<ProposeRequest, TradeError> {
    Ok(serde_json::from_slice(body)?)
}

/// Parses the body of a step on an existing transaction; an empty body is
/// a step with no reason and no amount. What it carries is checked by
/// [`StepRequest::terms`].
pub fn parse_step(body: &[u8]) -> Result<StepRequest, TradeError> {
    if body.is_empty() {
        return Ok(StepRequest::default());
    }
    Ok(serde_json::from_slice(body)?)
}

/// A proposal's terms as its body states them, checked for everything
/// that needs neither the resource nor the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    /// As sent: [`Trades::check_proposal`] looks it up.
    pub resource: String,
    /// At least 1.
    pub units: u64,
    /// `[start, end)`: ends after now, starts at most [`START_SLACK_SECS`]
    /// before now, at most [`MAX_WINDOW_SECS`] long.
    pub start: u64,
    pub end: u64,
    /// A number from 0 to [`crate::ident::resource::MAX_FIGURE`].
    pub max_price_per_unit_hour: Option<f64>,
}

impl ProposeRequest {
    /// Checks the numbers of a proposal at `now`; a refusal names its field.
    pub fn terms(&self, now: u64) -> Result<Terms, TradeError> {
        let units = integer(&self.units, "/units", 1)?;
        let start = integer(&self.start, "/start", 0)?;
        let end = integer(&self.end, "/end", 0)?;
        if end <= start {
            return Err(invalid(
                "/end",
                format!("end {end} must be after start {start}"),
            ));
        }
        if end <= now {
            return Err(invalid(
                "/end",
                format!("the window [{start}, {end}) is in the past (now {now})"),
            ));
        }
        if start.saturating_add(START_SLACK_SECS) < now {
            return Err(invalid(
                "/start",
                format!("start {start} is more than {START_SLACK_SECS} s in the past (now {now})"),
            ));
        }
        if end - start > MAX_WINDOW_SECS {
            return Err(invalid(
                "/end",
                format!("a window is at most {MAX_WINDOW_SECS} s"),
            ));
        }
        let max_price_per_unit_hour = self
            .max_price_per_unit_hour
            .as_ref()
            .map(|v| amount(v, "/max_price_per_unit_hour"))
            .transpose()?;
        Ok(Terms {
            resource: self.resource.clone(),
            units,
            start,
            end,
            max_price_per_unit_hour,
        })
    }
}

/// What a step body asks, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTerms {
    /// Text of 1 to 256 bytes without control characters.
    pub reason: Option<String>,
    /// What settlement charges: a number from 0 to
    /// [`crate::ident::resource::MAX_FIGURE`], and only for
    /// [`StepKind::Settle`] (other steps ignore it).
    pub amount: Option<f64>,
}

impl StepRequest {
    /// Checks the body of a `kind` step; a refusal names its field. Whether
    /// the amount is within the agreed total needs the transaction, so
    /// [`Trades::step`] checks that.
    pub fn terms(&self, kind: StepKind) -> Result<StepTerms, TradeError> {
        if let Some(reason) = &self.reason {
            crate::ident::values::check_text("reason", reason, 256)
                .map_err(|e| invalid("/reason", e.to_string()))?;
        }
        let amount = match (&self.amount, kind) {
            (Some(v), StepKind::Settle) => Some(amount(v, "/amount")?),
            _ => None,
        };
        Ok(StepTerms {
            reason: self.reason.clone(),
            amount,
        })
    }
}

/// Who takes a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A provider or buyer, by identifier (its class says which).
    Party(Identifier),
    /// The node itself (expiry).
    Node,
}

/// Why a transaction step was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TradeError {
    /// The body is not JSON, or not the JSON of its step (a wrong shape, an
    /// unknown field).
    #[error(transparent)]
    Body(#[from] serde_json::Error),
    #[error("{pointer}: {reason}")]
    Invalid { pointer: String, reason: String },
    #[error("{0} is not a resource of this node")]
    UnknownResource(String),
    #[error("{id} is {status}: only an active resource is traded")]
    InactiveResource { id: String, status: &'static str },
    #[error("no transaction {0}")]
    NotFound(String),
    #[error("{step} on {tx} is the {role}'s step ({who}); the signer is not")]
    NotParty {
        tx: String,
        step: &'static str,
        role: &'static str,
        who: String,
    },
    #[error("transaction {tx} is {state}; {step} needs it {needs}")]
    IllegalStep {
        tx: String,
        step: &'static str,
        state: &'static str,
        needs: &'static str,
    },
    #[error(
        "{units} {unit} more do not fit {resource} in [{}, {}): {booked} of {total} already booked there",
        clash.start, clash.end, booked = clash.booked, total = clash.total
    )]
    Conflict {
        resource: String,
        units: u64,
        unit: String,
        clash: Clash,
    },
    #[error("the step is too large to keep with the transaction ({0} bytes; at most 4096)")]
    TooLarge(usize),
    #[error("the calendar of {0} kept changing; try again")]
    Busy(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<StoreError> for TradeError {
    fn from(e: StoreError) -> TradeError {
        TradeError::Registry(RegistryError::Store(e))
    }
}

fn invalid(pointer: &str, reason: impl Into<String>) -> TradeError {
    TradeError::Invalid {
        pointer: pointer.into(),
        reason: reason.into(),
    }
}

/// A JSON integer ≥ 1 (or ≥ 0 when `zero_ok`), refused with its pointer.
fn integer(v: &serde_json::Value, pointer: &str, min: u64) -> Result<u64, TradeError> {
    match v.as_u64() {
        Some(n) if n >= min && !v.is_f64() => Ok(n),
        _ => Err(invalid(pointer, format!("must be an integer ≥ {min}"))),
    }
}

/// A finite JSON number ≥ 0.
fn amount(v: &serde_json::Value, pointer: &str) -> Result<f64, TradeError> {
    match v.as_f64() {
        Some(n) if (0.0..=crate::ident::resource::MAX_FIGURE).contains(&n) => Ok(n),
        _ => Err(invalid(pointer, "must be a number ≥ 0")),
    }
}

/// What a transaction reads of a resource's descriptor.
#[derive(Debug, Clone, serde::Deserialize)]
struct Offered {
    unit: crate::ident::resource::Unit,
    units_total: u64,
    #[serde(default)]
    price_per_unit_hour: Option<crate::ident::resource::Price>,
}

/// What the index knows of one transaction.
#[derive(Debug, Clone)]
struct Entry {
    version: u64,
    state: TxState,
    accept_by: u64,
    /// The resource, for the per-resource step lock.
    resource: String,
}

#[derive(Default)]
struct Index {
    txs: HashMap<String, Entry>,
    /// (party identifier, transaction identifier) for both parties.
    by_party: BTreeSet<(String, String)>,
    /// (accept_by, transaction) of proposals.
    due: BTreeSet<(u64, String)>,
    /// Each resource's calendar as last committed, with its row's bytes
    /// (the store row is the truth; this copy serves selection without a
    /// read, and is what the next step on the resource expects to find).
    calendars: HashMap<String, Kept>,
}

/// What the index reads of a transaction document: the fields it keeps,
/// borrowed where the JSON allows; the rest is skipped, not built.
#[derive(Deserialize)]
struct Indexed<'a> {
    state: TxState,
    #[serde(borrow)]
    buyer: Cow<'a, str>,
    #[serde(borrow)]
    provider: Cow<'a, str>,
    #[serde(borrow)]
    resource: Cow<'a, str>,
    accept_by: u64,
}

impl Index {
    fn apply(&mut self, id: &str, version: u64, doc: &Indexed<'_>) {
        let old = self.txs.get(id);
        if old.is_some_and(|e| e.version >= version) {
            return;
        }
        if let Some(old) = old {
            if old.state == TxState::Proposed {
                self.due.remove(&(old.accept_by, id.to_string()));
            }
        } else {
            // The parties are fixed at the proposal: a later version names
            // the same two.
            self.by_party
                .insert((doc.buyer.to_string(), id.to_string()));
            self.by_party
                .insert((doc.provider.to_string(), id.to_string()));
        }
        if doc.state == TxState::Proposed {
            self.due.insert((doc.accept_by, id.to_string()));
        }
        match self.txs.get_mut(id) {
            Some(e) => {
                e.version = version;
                e.state = doc.state;
                e.accept_by = doc.accept_by;
            }
            None => {
                self.txs.insert(
                    id.to_string(),
                    Entry {
                        version,
                        state: doc.state,
                        accept_by: doc.accept_by,
                        resource: doc.resource.to_string(),
                    },
                );
            }
        }
    }
}

/// The transaction document of a `TX` record (without its step, which
/// carries the signed request and is only read to show it).
pub fn parse_doc(signed: &SignedRecord) -> Option<TxDoc> {
    let r = signed.record();
    if r.identifier.class() != Class::Tx {
        return None;
    }
    r.values
        .iter()
        .find(|v| v.kind.as_str() == CP_TXN)
        .and_then(|v| serde_json::from_str(&v.data).ok())
}

/// The transaction document and step of a `TX` record.
pub fn parse(signed: &SignedRecord) -> Option<(TxDoc, Option<StepDoc>)> {
    let doc = parse_doc(signed)?;
    let r = signed.record();
    let step = r
        .values
        .iter()
        .find(|v| v.kind.as_str() == CP_TXSTEP)
        .and_then(|v| serde_json::from_str(&v.data).ok());
    Some((doc, step))
}

/// What the node knows of its transactions and calendars in memory: a
/// registry [`Observer`], so it is made before the registry loads.
#[derive(Default)]
pub struct Ledger {
    index: RwLock<Index>,
}

impl Ledger {
    /// Reads every calendar row of `store`.
    pub fn open(store: &dyn crate::store::Store) -> Result<Ledger, StoreError> {
        let mut calendars = HashMap::new();
        let mut bad = 0u64;
        store.scan_rows(CALENDAR, b"", &mut |key, value| {
            match (std::str::from_utf8(key), Kept::decode(value)) {
                (Ok(k), Some(c)) => {
                    calendars.insert(k.to_string(), c);
                }
                _ => bad += 1,
            }
            true
        })?;
        if bad > 0 {
            tracing::error!(rows = bad, "calendar rows that do not decode");
        }
        Ok(Ledger {
            index: RwLock::new(Index {
                calendars,
                ..Index::default()
            }),
        })
    }
}

impl Observer for Ledger {
    fn committed(&self, records: &[SignedRecord]) {
        let mut index = None;
        for signed in records {
            let r = signed.record();
            if r.identifier.class() != Class::Tx {
                continue;
            }
            let doc = r
                .values
                .iter()
                .find(|v| v.kind.as_str() == CP_TXN)
                .and_then(|v| serde_json::from_str::<Indexed<'_>>(&v.data).ok());
            if let Some(doc) = doc {
                let index = index
                    .get_or_insert_with(|| self.index.write().unwrap_or_else(|e| e.into_inner()));
                index.apply(&r.identifier.to_string(), r.version, &doc);
            }
        }
    }
}

/// The node's transactions: steps, reads, expiry and the calendars.
pub struct Trades {
    registry: Arc<Registry>,
    clock: Clock,
    /// How long a proposal waits for acceptance.
    proposal_ttl_secs: u64,
    ledger: Arc<Ledger>,
    /// One step at a time per resource, so concurrent acceptances queue
    /// instead of retrying (the calendar's expected row is what makes
    /// them safe; this only saves work).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Trades {
    /// Steps over `registry`, whose observers include `ledger`.
    pub fn new(
        registry: Arc<Registry>,
        ledger: Arc<Ledger>,
        clock: Clock,
        proposal_ttl_secs: u64,
    ) -> Trades {
        Trades {
            registry,
            clock,
            proposal_ttl_secs,
            ledger,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.ledger.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.ledger.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn proposal_ttl_secs(&self) -> u64 {
        self.proposal_ttl_secs
    }

    /// The most units accepted transactions hold at any instant of
    /// `[start, end)` on `resource`.
    pub fn booked(&self, resource: &Identifier, start: u64, end: u64) -> u64 {
        self.read()
            .calendars
            .get(&resource.to_string())
            .map_or(0, |c| c.calendar.peak(start, end))
    }

    /// [`Trades::booked`] for many resources under one lock.
    pub fn booked_many(&self, resources: &[&Identifier], start: u64, end: u64) -> Vec<u64> {
        use std::fmt::Write;
        let index = self.read();
        if index.calendars.is_empty() {
            return vec![0; resources.len()];
        }
        if index.calendars.len() < resources.len() {
            // A wide selection: look up the few resources booked in the
            // window, rather than each resource asked about by its text.
            let busy: HashMap<Identifier, u64> = index
                .calendars
                .iter()
                .filter_map(|(k, c)| {
                    let peak = c.calendar.peak(start, end);
                    (peak > 0).then(|| Some((Identifier::parse(k).ok()?, peak)))?
                })
                .collect();
            if busy.is_empty() {
                return vec![0; resources.len()];
            }
            return resources
                .iter()
                .map(|id| busy.get(*id).copied().unwrap_or(0))
                .collect();
        }
        let mut key = String::new();
        resources
            .iter()
            .map(|id| {
                key.clear();
                let _ = write!(key, "{id}");
                index
                    .calendars
                    .get(key.as_str())
                    .map_or(0, |c| c.calendar.peak(start, end))
            })
            .collect()
    }

    /// The bookings of a resource that have not ended.
    pub fn calendar(&self, resource: &Identifier) -> Calendar {
        let mut c = self
            .read()
            .calendars
            .get(&resource.to_string())
            .map(|c| c.calendar.clone())
            .unwrap_or_default();
        c.prune(self.clock.now());
        c
    }

    /// A transaction record and its document.
    pub fn get(&self, id: &Identifier) -> Result<Option<(SignedRecord, TxDoc)>, TradeError> {
        if id.class() != Class::Tx {
            return Ok(None);
        }
        let Some(signed) = self.registry.get(id)? else {
            return Ok(None);
        };
        Ok(parse_doc(&signed).map(|doc| (signed, doc)))
    }

    /// Transactions a party is in (or all, for `None`), newest identifier
    /// last, optionally in one state, after `after`, at most `limit`.
    pub fn list(
        &self,
        party: Option<&str>,
        state: Option<TxState>,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<String> {
        let index = self.read();
        let keep = |id: &str| state.is_none_or(|s| index.txs.get(id).is_some_and(|e| e.state == s));
        match party {
            Some(p) => {
                let start = (p.to_string(), after.unwrap_or("").to_string());
                index
                    .by_party
                    .range(start..)
                    .take_while(|(who, _)| who == p)
                    .map(|(_, id)| id)
                    .filter(|id| Some(id.as_str()) != after && keep(id))
                    .take(limit)
                    .cloned()
                    .collect()
            }
            None => {
                let mut ids: Vec<&String> = index
                    .txs
                    .keys()
                    .filter(|id| after.is_none_or(|a| id.as_str() > a) && keep(id))
                    .collect();
                ids.sort();
                ids.into_iter().take(limit).cloned().collect()
            }
        }
    }

    /// Counts of transactions per state (for `/metrics`).
    pub fn counts(&self) -> Vec<(TxState, u64)> {
        let index = self.read();
        TxState::ALL
            .into_iter()
            .map(|s| {
                let n = index.txs.values().filter(|e| e.state == s).count();
                (s, u64::try_from(n).unwrap_or(u64::MAX))
            })
            .collect()
    }

    fn lock_for(&self, resource: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(resource.to_string())
            .or_default()
            .clone()
    }

    /// A resource of this node that can be traded, with its descriptor.
    /// A resource of this node that can be booked, with the terms its
    /// descriptor states. Only the fields a transaction needs are read:
    /// every way in checked the whole descriptor when it was registered.
    fn resource(&self, id: &str) -> Result<(Identifier, SignedRecord, Offered), TradeError> {
        let unknown = || TradeError::UnknownResource(id.to_string());
        let rid = Identifier::parse(id).map_err(|_| unknown())?;
        if !is_resource_class(rid.class()) || !self.registry.prefix().contains(rid.prefix()) {
            return Err(unknown());
        }
        let signed = self.registry.get(&rid)?.ok_or_else(unknown)?;
        let r = signed.record();
        if r.status != RecordStatus::Active {
            return Err(TradeError::InactiveResource {
                id: id.to_string(),
                status: r.status.as_str(),
            });
        }
        let terms = r
            .values
            .iter()
            .find(|v| v.kind.as_str() == CP_RESOURCE)
            .and_then(|v| serde_json::from_str::<Offered>(&v.data).ok())
            .ok_or_else(|| {
                invalid(
                    "/resource",
                    format!("{id} has no capacity descriptor, so it cannot be booked"),
                )
            })?;
        Ok((rid, signed, terms))
    }

    /// Checks a proposal; returns the document it would record.
    pub fn check_proposal(
        &self,
        buyer: &Identifier,
        req: &ProposeRequest,
    ) -> Result<TxDoc, TradeError> {
        let now = self.clock.now();
        let Terms {
            resource,
            units,
            start,
            end,
            max_price_per_unit_hour: max_price,
        } = req.terms(now)?;
        let (rid, signed, d) = self.resource(&resource)?;
        if units > d.units_total {
            return Err(invalid(
                "/units",
                format!(
                    "{rid} has {} {} in all; {units} asked",
                    d.units_total,
                    d.unit.as_str()
                ),
            ));
        }
        let price = d.price_per_unit_hour.as_ref().ok_or_else(|| {
            invalid(
                "/resource",
                format!("{rid} has no price_per_unit_hour, so it cannot be booked"),
            )
        })?;
        if let Some(max) = max_price
            && price.amount > max
        {
            return Err(invalid(
                "/max_price_per_unit_hour",
                format!(
                    "{rid} costs {} {} per unit-hour, above {max}",
                    price.amount, price.currency
                ),
            ));
        }
        let provider = signed
            .record()
            .owner
            .clone()
            .ok_or_else(|| invalid("/resource", format!("{rid} has no owning provider")))?;
        let hours = (end - start) as f64 / 3600.0;
        let total = (price.amount * units as f64 * hours * 100.0).round() / 100.0;
        Ok(TxDoc {
            schema: SCHEMA.into(),
            state: TxState::Proposed,
            buyer: buyer.to_string(),
            provider: provider.to_string(),
            resource: rid.to_string(),
            units,
            unit: d.unit.as_str().into(),
            start,
            end,
            price: TxPrice {
                per_unit_hour: price.amount,
                currency: price.currency.clone(),
                total,
            },
            proposed_at: now,
            accept_by: now.saturating_add(self.proposal_ttl_secs),
            settled_amount: None,
            reason: None,
        })
    }

    /// Records a buyer's proposal: a new `TX` record; it holds no units.
    pub async fn propose(
        &self,
        buyer: &Identifier,
        req: &ProposeRequest,
        request: SignedRequest,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, TradeError> {
        let doc = self.check_proposal(buyer, req)?;
        let step = StepDoc {
            step: StepKind::Propose,
            by: buyer.to_string(),
            at: doc.proposed_at,
            request: Some(request),
        };
        let new = NewRecord {
            prefix: None,
            class: Class::Tx,
            owner: None,
            values: values(&doc, &step, doc.proposed_at)?,
            status: RecordStatus::Active,
        };
        Ok(self.registry.issue_async(new, nonce).await?)
    }

    /// Takes `kind` on transaction `id` for `actor`.
    pub async fn step(
        &self,
        id: &Identifier,
        kind: StepKind,
        actor: &Actor,
        body: &StepRequest,
        request: Option<SignedRequest>,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, TradeError> {
        // The resource to queue on, from the index (the record is read
        // under the lock below).
        let known = self
            .read()
            .txs
            .get(&id.to_string())
            .map(|e| e.resource.clone());
        let resource = match known {
            Some(r) => r,
            None => {
                self.get(id)?
                    .ok_or_else(|| TradeError::NotFound(id.to_string()))?
                    .1
                    .resource
            }
        };
        let _one = self.lock_for(&resource).lock_owned().await;
        for attempt in 0..RETRIES {
            let (current, doc) = self
                .get(id)?
                .ok_or_else(|| TradeError::NotFound(id.to_string()))?;
            check_party(id, kind, actor, &doc)?;
            let now = self.clock.now();
            if kind != StepKind::Expire && doc.state == TxState::Proposed && now >= doc.accept_by {
                // Overdue: it expires now, and the step is refused on that.
                self.commit_step(
                    current,
                    &doc,
                    StepKind::Expire,
                    &Actor::Node,
                    &StepRequest::default(),
                    (None, None),
                    true,
                )
                .await
                .ok();
                return Err(illegal(id, kind, TxState::Expired));
            }
            let (from, _) = kind.transition();
            if doc.state != from {
                return Err(illegal(id, kind, doc.state));
            }
            let read_store = attempt > 0;
            match self
                .commit_step(
                    current,
                    &doc,
                    kind,
                    actor,
                    body,
                    (request.clone(), nonce.clone()),
                    read_store,
                )
                .await
            {
                Err(TradeError::Registry(RegistryError::Store(
                    StoreError::RowChanged { .. } | StoreError::Conflict { .. },
                ))) => {
                    // Someone else stepped first (the refused batch consumed
                    // nothing, the nonce included): read again, judge anew.
                    continue;
                }
                other => return other,
            }
        }
        Err(TradeError::Busy(resource))
    }

    /// Builds the next version of `current` (whose document is `doc`) for
    /// `kind` and commits it, with the calendar row when the step books or
    /// releases units. The calendar is the one the ledger holds (what the
    /// last commit wrote) unless `read_store`: a retry after the expected
    /// row changed reads the row itself.
    #[allow(clippy::too_many_arguments)]
    async fn commit_step(
        &self,
        current: SignedRecord,
        doc: &TxDoc,
        kind: StepKind,
        actor: &Actor,
        body: &StepRequest,
        (request, nonce): (Option<SignedRequest>, Option<Nonce>),
        read_store: bool,
    ) -> Result<SignedRecord, TradeError> {
        let now = self.clock.now();
        let id = current.record().identifier.clone();
        let mut next = doc.clone();
        next.state = kind.transition().1;
        let terms = body.terms(kind)?;
        match kind {
            StepKind::Reject | StepKind::Cancel => next.reason = terms.reason,
            StepKind::Settle => {
                let charged = terms.amount.unwrap_or(doc.price.total);
                if charged > doc.price.total {
                    return Err(invalid(
                        "/amount",
                        format!("{charged} is above the agreed total {}", doc.price.total),
                    ));
                }
                next.settled_amount = Some(charged);
            }
            _ => {}
        }
        let step = StepDoc {
            step: kind,
            by: match actor {
                Actor::Party(p) => p.to_string(),
                Actor::Node => "node".into(),
            },
            at: now,
            request,
        };
        let mut plan = Plan {
            steps: vec![Step::ChangeFrom {
                current,
                change: Change::Values(values(&next, &step, now)?),
            }],
            nonce,
            ..Plan::default()
        };
        let calendar = match kind {
            StepKind::Accept | StepKind::Settle => {
                let (expected, planned) = self.plan_calendar(&id, doc, kind, now, read_store)?;
                let key = doc.resource.as_bytes().to_vec();
                plan.rows.push(Row {
                    table: CALENDAR,
                    key: key.clone(),
                    value: planned.row.clone(),
                });
                plan.expect.push(Expect {
                    table: CALENDAR,
                    key,
                    value: expected.clone(),
                });
                Some((expected, planned))
            }
            _ => None,
        };
        let written = self.registry.commit_async(plan).await?.first()?;
        if let Some((expected, planned)) = calendar {
            let mut index = self.write();
            let kept = index.calendars.entry(doc.resource.clone()).or_default();
            kept.apply(expected.as_deref().unwrap_or_default(), planned);
        }
        Ok(written)
    }

    /// The calendar row `kind` on `id` writes, and the row it expects to
    /// find: the ledger's (steps on one resource take turns, so it is what
    /// the last commit wrote), or the store's when `read_store`. An
    /// acceptance that does not fit is refused with the clash.
    fn plan_calendar(
        &self,
        id: &Identifier,
        doc: &TxDoc,
        kind: StepKind,
        now: u64,
        read_store: bool,
    ) -> Result<(Option<Vec<u8>>, Planned), TradeError> {
        let total = match kind {
            StepKind::Accept => self.resource(&doc.resource)?.2.units_total,
            _ => 0,
        };
        let plan = |kept: &Kept| -> Result<Planned, TradeError> {
            if kind == StepKind::Accept {
                let booking = Booking {
                    tx: id.to_string(),
                    start: doc.start,
                    end: doc.end,
                    units: doc.units,
                };
                kept.plan_booking(booking, now, total)
                    .map_err(|clash| TradeError::Conflict {
                        resource: doc.resource.clone(),
                        units: doc.units,
                        unit: doc.unit.clone(),
                        clash,
                    })
            } else {
                Ok(kept.plan_release(&id.to_string(), now))
            }
        };
        if read_store {
            let stored = self
                .registry
                .store()
                .row(CALENDAR, doc.resource.as_bytes())?;
            let kept = match &stored {
                // A row that does not decode is read as empty, as at start.
                Some(row) => Kept::decode(row).unwrap_or_default(),
                None => Kept::default(),
            };
            return Ok((stored, plan(&kept)?));
        }
        let index = self.read();
        match index.calendars.get(&doc.resource) {
            Some(kept) => Ok((Some(kept.row.clone()), plan(kept)?)),
            None => Ok((None, plan(&Kept::default())?)),
        }
    }

    /// Expires every proposal whose acceptance deadline has passed; returns
    /// how many.
    pub async fn expire_due(&self) -> usize {
        let now = self.clock.now();
        let due: Vec<String> = self
            .read()
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect();
        let mut n = 0;
        for id in due {
            let Ok(id) = Identifier::parse(&id) else {
                continue;
            };
            match self
                .step(
                    &id,
                    StepKind::Expire,
                    &Actor::Node,
                    &StepRequest::default(),
                    None,
                    None,
                )
                .await
            {
                Ok(_) => n += 1,
                // Accepted or cancelled in the meantime.
                Err(TradeError::IllegalStep { .. }) => {}
                Err(e) => tracing::warn!(tx = %id, error = %e, "expiring a proposal failed"),
            }
        }
        n
    }
}

fn illegal(id: &Identifier, kind: StepKind, state: TxState) -> TradeError {
    TradeError::IllegalStep {
        tx: id.to_string(),
        step: kind.as_str(),
        state: state.as_str(),
        needs: kind.transition().0.as_str(),
    }
}

fn check_party(
    id: &Identifier,
    kind: StepKind,
    actor: &Actor,
    doc: &TxDoc,
) -> Result<(), TradeError> {
    let (role, who) = match kind.role() {
        Role::Buyer => ("buyer", doc.buyer.as_str()),
        Role::Provider => ("provider", doc.provider.as_str()),
        Role::Node => ("node", "node"),
    };
    let ok = match actor {
        Actor::Party(p) => p.to_string() == who,
        Actor::Node => kind.role() == Role::Node,
    };
    if ok {
        Ok(())
    } else {
        Err(TradeError::NotParty {
            tx: id.to_string(),
            step: kind.as_str(),
            role,
            who: who.to_string(),
        })
    }
}

/// The two values of a transaction version.
fn values(doc: &TxDoc, step: &StepDoc, at: u64) -> Result<Vec<Value>, TradeError> {
    let value = |index: u32, kind: &str, data: String| -> Result<Value, TradeError> {
        if data.len() > crate::ident::record::MAX_DATA_LEN {
            return Err(TradeError::TooLarge(data.len()));
        }
        Ok(Value {
            index,
            kind: ValueType::parse(kind).map_err(|e| invalid("", e.to_string()))?,
            data,
            ttl: 0,
            timestamp: at,
        })
    };
    Ok(vec![
        value(1, CP_TXN, to_json(doc)?)?,
        value(2, CP_TXSTEP, to_json(step)?)?,
    ])
}

fn to_json<T: Serialize>(v: &T) -> Result<String, TradeError> {
    serde_json::to_string(v).map_err(|e| invalid("", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn pointer(e: TradeError) -> String {
        match e {
            TradeError::Invalid { pointer, .. } => pointer,
            other => panic!("not a field refusal: {other}"),
        }
    }

    #[test]
    fn proposal_terms_refuse_each_bad_number_by_its_field() {
        let body = |units: &str, start: u64, end: u64, max: &str| {
            format!(
                r#"{{"resource":"86.31/IC-000001-0","units":{units},"start":{start},"end":{end}{max}}}"#
            )
        };
        let ok = parse_proposal(body("2", NOW, NOW + 7200, "").as_bytes())
            .unwrap()
            .terms(NOW)
            .unwrap();
        assert_eq!((ok.units, ok.start, ok.end), (2, NOW, NOW + 7200));
        let refused = [
            (body("0", NOW, NOW + 60, ""), "/units"),
            (body("1.5", NOW, NOW + 60, ""), "/units"),
            (body("1", NOW, NOW, ""), "/end"),
            (body("1", NOW - 7200, NOW - 3600, ""), "/end"),
            (
                body("1", NOW - START_SLACK_SECS - 1, NOW + 60, ""),
                "/start",
            ),
            (body("1", NOW, NOW + MAX_WINDOW_SECS + 1, ""), "/end"),
            (
                body("1", NOW, NOW + 60, r#","max_price_per_unit_hour":-1"#),
                "/max_price_per_unit_hour",
            ),
        ];
        for (b, field) in refused {
            let e = parse_proposal(b.as_bytes())
                .unwrap()
                .terms(NOW)
                .unwrap_err();
            assert_eq!(pointer(e), field, "{b}");
        }
        for bad in [
            &b"{"[..],
            br#"{"resource":"x","units":1,"start":1,"end":2,"x":1}"#,
        ] {
            assert!(matches!(parse_proposal(bad), Err(TradeError::Body(_))));
        }
    }

    #[test]
    fn a_step_body_is_optional_and_its_amount_counts_only_when_settling() {
        assert_eq!(parse_step(b"").unwrap(), StepRequest::default());
        let step = parse_step(br#"{"amount":-1}"#).unwrap();
        assert_eq!(step.terms(StepKind::Accept).unwrap().amount, None);
        assert_eq!(
            pointer(step.terms(StepKind::Settle).unwrap_err()),
            "/amount"
        );
        let step = parse_step(br#"{"reason":" "}"#).unwrap();
        assert_eq!(
            pointer(step.terms(StepKind::Reject).unwrap_err()),
            "/reason"
        );
        assert!(matches!(parse_step(b"accept"), Err(TradeError::Body(_))));
    }
}
