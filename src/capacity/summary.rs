//! The signed situation summary (`schema/summary.md`, `cpid.summary/1`):
//! a node's own totals and its children's signed summaries carried
//! verbatim, signed by the node key. A parent checks a child's summary
//! against the key in its delegation record, and each embedded summary
//! against the key its signer names for that child, so the national node
//! can check every node's figures down the tree without trusting the
//! nodes in between to add them up.
//!
//! The signed bytes are the summary's JSON exactly as the signer wrote it,
//! carried base64-encoded: nothing is re-serialised, so nothing has to be
//! canonical.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::totals::{ByFreshness, Rows};
use crate::ident::identifier::Prefix;
use crate::ident::keys::{NodeKey, PublicKey, Signature, SigningContext, to_hex};

/// The format's name and version.
pub const SCHEMA: &str = "cpid.summary/1";
/// How deep summaries may nest (national → region → industry … ).
pub const MAX_DEPTH: usize = 8;
/// Most rows one node's totals may hold.
pub const MAX_ROWS: usize = 100_000;
/// Most children one summary may list.
pub const MAX_CHILDREN: usize = 1_000;
/// How far in the future a summary's time may be (clock skew), seconds.
pub const MAX_SKEW_SECS: u64 = 300;

/// A signed summary as served and carried: the summary's bytes, who signed
/// them, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSummary {
    /// Base64 (RFC 4648 §4, padded) of the summary's JSON bytes.
    pub summary: String,
    /// The signer's Ed25519 public key, 64 hex digits. Informative: a
    /// verifier uses the key it already trusts for that prefix.
    pub key: String,
    /// Base64 of the Ed25519 signature over `cpid/summary/v1\0 || bytes`.
    pub signature: String,
}

/// What a node states about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The node's prefix.
    pub prefix: String,
    /// Unix seconds at which the totals were read.
    pub at: u64,
    /// The node's own totals: only resources registered at this node.
    pub rows: Rows,
    /// The node's delegated children, in prefix order.
    pub children: Vec<ChildEntry>,
}

/// One delegated child as its parent last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildEntry {
    pub prefix: String,
    /// The child's key from the delegation record, 64 hex digits: the key
    /// its summary is checked against.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The child's last summary that verified, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedSummary>,
    /// Why the latest pull failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a summary is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    #[error("malformed summary: {0}")]
    Malformed(String),
    #[error("summary of {prefix} is signed by key {got}, the delegation names {expected}")]
    WrongKey {
        prefix: String,
        expected: String,
        got: String,
    },
    #[error("summary of {prefix}: the signature does not verify")]
    BadSignature { prefix: String },
    #[error("summary is of {got}, expected {expected}")]
    WrongPrefix { expected: String, got: String },
    #[error("summary of {prefix} lists {child}, which is not one level below it")]
    NotAChild { prefix: String, child: String },
    #[error("summary of {prefix} is dated {at}, more than {MAX_SKEW_SECS} s ahead of {now}")]
    Future { prefix: String, at: u64, now: u64 },
    #[error("summary of {prefix} is dated {at}, older than the one accepted before ({last})")]
    Older { prefix: String, at: u64, last: u64 },
    #[error("summary of {prefix}: {why}")]
    Impossible { prefix: String, why: String },
    #[error("summaries nest deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// One node's figures, as verified.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFigures {
    pub prefix: String,
    pub api: Option<String>,
    /// When the figures were read at that node; `None` when none verified.
    pub at: Option<u64>,
    /// The node's own totals; `None` when none verified.
    pub rows: Option<Rows>,
    /// Why the latest summary of this node was not used.
    pub error: Option<String>,
}

impl Summary {
    /// Signs the summary's JSON with `key`.
    pub fn sign(&self, key: &NodeKey) -> Result<SignedSummary, serde_json::Error> {
        let bytes = serde_json::to_vec(self)?;
        let signature = key.sign(SigningContext::Summary, &bytes);
        Ok(SignedSummary {
            summary: STANDARD.encode(&bytes),
            key: to_hex(&key.public().to_bytes()),
            signature: STANDARD.encode(signature.0),
        })
    }

    fn check(&self) -> Result<(), SummaryError> {
        let impossible = |why: String| SummaryError::Impossible {
            prefix: self.prefix.clone(),
            why,
        };
        if self.schema != SCHEMA {
            return Err(SummaryError::Malformed(format!(
                "schema {:?}, expected {SCHEMA:?}",
                self.schema
            )));
        }
        let rows = self.rows.units.len() + self.rows.peaks.len();
        if rows > MAX_ROWS {
            return Err(impossible(format!("{rows} rows, at most {MAX_ROWS}")));
        }
        if self.children.len() > MAX_CHILDREN {
            return Err(impossible(format!(
                "{} children, at most {MAX_CHILDREN}",
                self.children.len()
            )));
        }
        let mut prefixes = std::collections::BTreeSet::new();
        if let Some(dup) = self.children.iter().find(|c| !prefixes.insert(&c.prefix)) {
            return Err(impossible(format!("child {} listed twice", dup.prefix)));
        }
        // Keys as `schema/resource.md` writes them: a region is a GB/T 2260
        // province code, two of them for a dedicated line, or `-`.
        let province = |c: &str| {
            crate::ident::identifier::PROVINCES
                .iter()
                .any(|(p, _)| *p == c)
        };
        let region_ok = |r: &str| {
            r == "-"
                || province(r)
                || r.split_once('-')
                    .is_some_and(|(a, b)| province(a) && province(b))
        };
        let class_ok = |c: &str| {
            crate::ident::identifier::Class::parse(c)
                .is_ok_and(crate::ident::values::is_resource_class)
        };
        for (region, class) in self
            .rows
            .units
            .iter()
            .map(|u| (&u.region, &u.class))
            .chain(self.rows.peaks.iter().map(|p| (&p.region, &p.class)))
        {
            if !region_ok(region) {
                return Err(impossible(format!(
                    "region {region:?} is not a GB/T 2260 code"
                )));
            }
            if !class_ok(class) {
                return Err(impossible(format!(
                    "class {class:?} is not a resource class"
                )));
            }
        }
        for p in &self.rows.peaks {
            if !crate::ident::resource::Precision::ALL
                .iter()
                .any(|x| x.as_str() == p.precision)
            {
                return Err(impossible(format!("precision {:?}", p.precision)));
            }
            let model_ok = (1..=64).contains(&p.model.chars().count())
                && p.model != "*"
                && !p.model.chars().any(char::is_control);
            if !model_ok {
                return Err(impossible(format!("model {:?}", p.model)));
            }
        }
        let negative = |b: &ByFreshness| b.fresh < 0 || b.stale < 0 || b.unknown < 0;
        for u in &self.rows.units {
            if [
                &u.resources,
                &u.units_total,
                &u.units_available,
                &u.units_in_use,
            ]
            .into_iter()
            .any(negative)
            {
                return Err(impossible(format!("negative count in region {}", u.region)));
            }
        }
        for p in &self.rows.peaks {
            if [&p.devices, &p.total_gflops, &p.available_gflops]
                .into_iter()
                .any(negative)
            {
                return Err(impossible(format!("negative peak in region {}", p.region)));
            }
        }
        Ok(())
    }
}

impl SignedSummary {
    /// Parses a served summary (the body of `GET /v1/situation/summary`).
    pub fn parse(body: &[u8]) -> Result<SignedSummary, SummaryError> {
        serde_json::from_slice(body).map_err(|e| SummaryError::Malformed(e.to_string()))
    }

    /// Checks the signature with `key`, the summary's prefix, time and
    /// figures, and every embedded child summary with the key the signer
    /// names for it. `last` is the time of the summary of `prefix`
    /// accepted before: an older one is a rollback and refused. Returns
    /// the node's figures first, then its descendants'; a descendant whose
    /// summary fails is listed with its error and no figures.
    pub fn verify(
        &self,
        key: &PublicKey,
        prefix: &str,
        last: Option<u64>,
        now: u64,
    ) -> Result<Vec<NodeFigures>, SummaryError> {
        let mut out = Vec::new();
        let summary = self.open(key, prefix, last, now)?;
        push(&summary, None, now, 0, &mut out)?;
        Ok(out)
    }

    /// The signed summary, after the signature and the format checks.
    fn open(
        &self,
        key: &PublicKey,
        prefix: &str,
        last: Option<u64>,
        now: u64,
    ) -> Result<Summary, SummaryError> {
        let expected = to_hex(&key.to_bytes());
        if !self.key.eq_ignore_ascii_case(&expected) {
            return Err(SummaryError::WrongKey {
                prefix: prefix.into(),
                expected,
                got: self.key.clone(),
            });
        }
        let bytes = STANDARD
            .decode(&self.summary)
            .map_err(|e| SummaryError::Malformed(format!("summary: {e}")))?;
        let sig: [u8; 64] = STANDARD
            .decode(&self.signature)
            .map_err(|e| SummaryError::Malformed(format!("signature: {e}")))?
            .try_into()
            .map_err(|_| SummaryError::Malformed("signature: not 64 bytes".into()))?;
        key.verify_strict(SigningContext::Summary, &bytes, &Signature(sig))
            .map_err(|_| SummaryError::BadSignature {
                prefix: prefix.into(),
            })?;
        let summary: Summary =
            serde_json::from_slice(&bytes).map_err(|e| SummaryError::Malformed(e.to_string()))?;
        if summary.prefix != prefix {
            return Err(SummaryError::WrongPrefix {
                expected: prefix.into(),
                got: summary.prefix,
            });
        }
        summary.check()?;
        if summary.at > now.saturating_add(MAX_SKEW_SECS) {
            return Err(SummaryError::Future {
                prefix: prefix.into(),
                at: summary.at,
                now,
            });
        }
        if let Some(last) = last
            && summary.at < last
        {
            return Err(SummaryError::Older {
                prefix: prefix.into(),
                at: summary.at,
                last,
            });
        }
        Ok(summary)
    }
}

/// `summary`'s figures, then its children's, depth first.
fn push(
    summary: &Summary,
    api: Option<String>,
    now: u64,
    depth: usize,
    out: &mut Vec<NodeFigures>,
) -> Result<(), SummaryError> {
    if depth >= MAX_DEPTH {
        return Err(SummaryError::TooDeep);
    }
    out.push(NodeFigures {
        prefix: summary.prefix.clone(),
        api,
        at: Some(summary.at),
        rows: Some(summary.rows.clone()),
        error: None,
    });
    let parent = Prefix::parse(&summary.prefix).map_err(|e| SummaryError::WrongPrefix {
        expected: "a prefix".into(),
        got: format!("{}: {e}", summary.prefix),
    })?;
    for child in &summary.children {
        let below = Prefix::parse(&child.prefix)
            .ok()
            .is_some_and(|p| p.parent().as_ref() == Some(&parent));
        if !below {
            return Err(SummaryError::NotAChild {
                prefix: summary.prefix.clone(),
                child: child.prefix.clone(),
            });
        }
        let opened = match &child.signed {
            None => Err(child
                .error
                .clone()
                .unwrap_or_else(|| "no summary pulled yet".into())),
            Some(signed) => crate::ident::delegation::hex32(&child.key)
                .ok_or_else(|| format!("key of {} is not 64 hex digits", child.prefix))
                .and_then(|k| PublicKey::from_bytes(&k).map_err(|e| e.to_string()))
                .and_then(|k| {
                    signed
                        .open(&k, &child.prefix, None, now)
                        .map_err(|e| e.to_string())
                }),
        };
        // Strings from below are shown to people: an API only if it is one,
        // an error cut short.
        let api = child
            .api
            .clone()
            .filter(|a| crate::ident::delegation::check_api_url(a).is_ok());
        match opened {
            Ok(s) => push(&s, api, now, depth + 1, out)?,
            Err(error) => out.push(NodeFigures {
                prefix: child.prefix.clone(),
                api,
                at: None,
                rows: None,
                error: Some(error.chars().take(200).collect()),
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::totals::UnitRow;

    fn rows(region: &str, fresh: i64) -> Rows {
        Rows {
            units: vec![UnitRow {
                region: region.into(),
                class: "IC".into(),
                resources: ByFreshness {
                    fresh,
                    stale: 0,
                    unknown: 0,
                },
                ..UnitRow::default()
            }],
            peaks: vec![],
        }
    }

    fn summary(prefix: &str, at: u64, children: Vec<ChildEntry>) -> Summary {
        Summary {
            schema: SCHEMA.into(),
            prefix: prefix.into(),
            at,
            rows: rows("31", 2),
            children,
        }
    }

    fn entry(prefix: &str, key: &NodeKey, signed: Option<SignedSummary>) -> ChildEntry {
        ChildEntry {
            prefix: prefix.into(),
            key: to_hex(&key.public().to_bytes()),
            api: None,
            signed,
            error: None,
        }
    }

    #[test]
    fn a_tree_of_summaries_verifies_down_to_the_leaves() {
        let (region, industry) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
        let leaf = summary("86.31.1005", 100, vec![]).sign(&industry).unwrap();
        let mid = summary(
            "86.31",
            101,
            vec![entry("86.31.1005", &industry, Some(leaf))],
        )
        .sign(&region)
        .unwrap();
        let nodes = mid.verify(&region.public(), "86.31", None, 101).unwrap();
        let prefixes: Vec<_> = nodes.iter().map(|n| n.prefix.as_str()).collect();
        assert_eq!(prefixes, ["86.31", "86.31.1005"]);
        assert!(nodes.iter().all(|n| n.rows.is_some() && n.error.is_none()));
        // The served form round-trips through JSON.
        let text = serde_json::to_vec(&mid).unwrap();
        assert_eq!(SignedSummary::parse(&text).unwrap(), mid);
    }

    #[test]
    fn a_summary_that_does_not_verify_is_refused_with_its_reason() {
        let (key, other) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
        let signed = summary("86.31", 100, vec![]).sign(&key).unwrap();
        let err = signed
            .verify(&other.public(), "86.31", None, 100)
            .unwrap_err();
        assert!(matches!(err, SummaryError::WrongKey { .. }), "{err}");
        // The key field claims the trusted key, the signature is another's.
        let mut forged = summary("86.31", 100, vec![]).sign(&other).unwrap();
        forged.key = signed.key.clone();
        let err = forged
            .verify(&key.public(), "86.31", None, 100)
            .unwrap_err();
        assert!(matches!(err, SummaryError::BadSignature { .. }), "{err}");
        let err = signed
            .verify(&key.public(), "86.44", None, 100)
            .unwrap_err();
        assert!(matches!(err, SummaryError::WrongPrefix { .. }), "{err}");
        let err = signed
            .verify(&key.public(), "86.31", Some(101), 100)
            .unwrap_err();
        assert!(matches!(err, SummaryError::Older { .. }), "{err}");
        let ahead = summary("86.31", 100 + MAX_SKEW_SECS + 1, vec![])
            .sign(&key)
            .unwrap();
        let err = ahead.verify(&key.public(), "86.31", None, 100).unwrap_err();
        assert!(matches!(err, SummaryError::Future { .. }), "{err}");
        for region in ["*", "99", "31-"] {
            let mut odd = summary("86.31", 100, vec![]);
            odd.rows.units[0].region = region.into();
            let err = odd
                .sign(&key)
                .unwrap()
                .verify(&key.public(), "86.31", None, 100);
            assert!(
                matches!(err, Err(SummaryError::Impossible { .. })),
                "{region}: {err:?}"
            );
        }
        let mut bad = summary("86.31", 100, vec![]);
        bad.rows.units[0].resources.fresh = -1;
        let err = bad
            .sign(&key)
            .unwrap()
            .verify(&key.public(), "86.31", None, 100);
        assert!(
            matches!(err, Err(SummaryError::Impossible { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn an_embedded_summary_that_fails_is_listed_without_figures() {
        let (region, industry, stranger) = (
            NodeKey::generate().unwrap(),
            NodeKey::generate().unwrap(),
            NodeKey::generate().unwrap(),
        );
        let leaf = summary("86.31.1005", 100, vec![]).sign(&stranger).unwrap();
        let mid = summary(
            "86.31",
            101,
            vec![entry("86.31.1005", &industry, Some(leaf))],
        )
        .sign(&region)
        .unwrap();
        let nodes = mid.verify(&region.public(), "86.31", None, 101).unwrap();
        assert_eq!(nodes.len(), 2);
        assert!(nodes[1].rows.is_none());
        assert!(nodes[1].error.as_deref().unwrap().contains("signed by key"));
        // A child entry outside the signer's prefix refuses the whole summary.
        let leaf = summary("86.44.1", 100, vec![]).sign(&industry).unwrap();
        let mid = summary("86.31", 101, vec![entry("86.44.1", &industry, Some(leaf))])
            .sign(&region)
            .unwrap();
        let err = mid
            .verify(&region.public(), "86.31", None, 101)
            .unwrap_err();
        assert!(matches!(err, SummaryError::NotAChild { .. }), "{err}");
    }
}
