//! The crates cpid was built with, checked against an offline copy of the
//! RustSec advisory database (<https://github.com/rustsec/advisory-db>).
//!
//! The crate's `Cargo.lock` is compiled in ([`BUILT_WITH`]), so the binary
//! answers for exactly the versions it was built from (dev- and
//! bench-only crates included: the lock file does not tell them apart, and
//! neither does `cargo audit`). An advisory is the TOML front matter of
//! `crates/<name>/RUSTSEC-*.md`: `[advisory]` (`id`, `package`,
//! `informational`, `withdrawn`) and `[versions]` (`patched`,
//! `unaffected`, each a list of semver requirements). A version is
//! affected when it matches none of them, as `cargo audit` decides.
//! Withdrawn advisories are skipped. This module only reads; it never
//! fetches a database.

use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::Deserialize;

/// The `Cargo.lock` this binary was built from.
pub const BUILT_WITH: &str = include_str!("../../Cargo.lock");

/// Why the lock file or the advisory database could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdvisoryError {
    #[error("Cargo.lock: {0}")]
    Lock(String),
    #[error("advisory database {path}: {reason}")]
    Database { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Advisory { path: PathBuf, reason: String },
}

/// One crate at one version, from a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: Version,
}

#[derive(Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    /// Absent for the workspace's own crates, which no advisory names.
    source: Option<String>,
}

/// The registry crates of a `Cargo.lock`.
pub fn packages(lock: &str) -> Result<Vec<Package>, AdvisoryError> {
    let file: LockFile = toml::from_str(lock).map_err(|e| AdvisoryError::Lock(e.to_string()))?;
    file.package
        .into_iter()
        .filter(|p| {
            p.source
                .as_deref()
                .is_some_and(|s| s.starts_with("registry+"))
        })
        .map(|p| {
            let version = Version::parse(&p.version)
                .map_err(|e| AdvisoryError::Lock(format!("{} {}: {e}", p.name, p.version)))?;
            Ok(Package {
                name: p.name,
                version,
            })
        })
        .collect()
}

/// What kind of advisory: a vulnerability, or an informational one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Vulnerability,
    /// `unmaintained`, `unsound`, `notice` …
    Informational(String),
}

/// One advisory, read from its front matter.
#[derive(Debug, Clone)]
pub struct Advisory {
    pub id: String,
    pub package: String,
    pub kind: Kind,
    /// The first `# ` heading of the text.
    pub title: String,
    pub patched: Vec<VersionReq>,
    pub unaffected: Vec<VersionReq>,
}

#[derive(Deserialize)]
struct Front {
    advisory: FrontAdvisory,
    #[serde(default)]
    versions: FrontVersions,
}

#[derive(Deserialize)]
struct FrontAdvisory {
    id: String,
    package: String,
    #[serde(default)]
    informational: Option<String>,
    #[serde(default)]
    withdrawn: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
struct FrontVersions {
    #[serde(default)]
    patched: Vec<String>,
    #[serde(default)]
    unaffected: Vec<String>,
}

impl Advisory {
    /// Reads an advisory file's text; `None` for a withdrawn advisory.
    pub fn parse(text: &str) -> Result<Option<Advisory>, String> {
        let rest = text
            .trim_start()
            .strip_prefix("```toml")
            .ok_or("does not start with a ```toml block")?;
        let (front, body) = rest
            .split_once("\n```")
            .ok_or("the ```toml block is not closed")?;
        let front: Front = toml::from_str(front).map_err(|e| e.to_string())?;
        if front.advisory.withdrawn.is_some() {
            return Ok(None);
        }
        let reqs = |list: &[String]| -> Result<Vec<VersionReq>, String> {
            list.iter()
                .map(|r| {
                    VersionReq::parse(r).map_err(|e| format!("version requirement {r:?}: {e}"))
                })
                .collect()
        };
        let title = body
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok(Some(Advisory {
            patched: reqs(&front.versions.patched)?,
            unaffected: reqs(&front.versions.unaffected)?,
            id: front.advisory.id,
            package: front.advisory.package,
            kind: match front.advisory.informational {
                Some(kind) => Kind::Informational(kind),
                None => Kind::Vulnerability,
            },
            title,
        }))
    }

    /// Whether `version` is affected: it matches neither a patched nor an
    /// unaffected requirement.
    pub fn affects(&self, version: &Version) -> bool {
        !self
            .patched
            .iter()
            .chain(&self.unaffected)
            .any(|r| r.matches(version))
    }

    /// The lowest version a patched requirement starts at (`>= x.y.z`,
    /// `^x.y.z`), to name in a fix.
    pub fn first_patched(&self) -> Option<Version> {
        self.patched
            .iter()
            .flat_map(|r| r.comparators.iter())
            .filter(|c| {
                matches!(
                    c.op,
                    semver::Op::GreaterEq | semver::Op::Caret | semver::Op::Tilde
                )
            })
            .map(|c| Version::new(c.major, c.minor.unwrap_or(0), c.patch.unwrap_or(0)))
            .min()
    }
}

/// An offline advisory database: `crates/<name>/RUSTSEC-*.md`.
#[derive(Debug, Clone)]
pub struct Database {
    path: PathBuf,
}

/// A package a database has advisories against, with them.
#[derive(Debug, Clone)]
pub struct Hit {
    pub package: Package,
    pub advisories: Vec<Advisory>,
}

/// What matching a lock against a database found.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub hits: Vec<Hit>,
    /// Advisory files that could not be read (path: reason).
    pub unreadable: Vec<String>,
    /// How many advisories were looked at.
    pub advisories: usize,
}

impl Database {
    /// The database at `path`, which must hold a `crates` folder.
    pub fn open(path: &Path) -> Result<Database, AdvisoryError> {
        if !path.join("crates").is_dir() {
            return Err(AdvisoryError::Database {
                path: path.to_owned(),
                reason: "no crates/ folder: not a RustSec advisory database".into(),
            });
        }
        Ok(Database {
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The advisories about crate `name` (none when it has no folder).
    pub fn advisories(&self, name: &str) -> (Vec<Advisory>, Vec<String>) {
        let mut found = Vec::new();
        let mut unreadable = Vec::new();
        // A crate name is a plain file name; anything else cannot be one.
        if name.is_empty() || name.contains(['/', '\\', '.']) {
            return (found, unreadable);
        }
        let Ok(entries) = std::fs::read_dir(self.path.join("crates").join(name)) else {
            return (found, unreadable);
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "md")
                    && p.file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with("RUSTSEC-"))
            })
            .collect();
        files.sort();
        for file in files {
            let parsed = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|text| Advisory::parse(&text));
            match parsed {
                Ok(Some(a)) if a.package == name => found.push(a),
                Ok(Some(a)) => unreadable.push(format!(
                    "{}: names package {}, not {name}",
                    file.display(),
                    a.package
                )),
                Ok(None) => {}
                Err(reason) => unreadable.push(format!("{}: {reason}", file.display())),
            }
        }
        (found, unreadable)
    }

    /// Matches every package against its advisories.
    pub fn audit(&self, packages: &[Package]) -> Audit {
        let mut audit = Audit::default();
        for p in packages {
            let (advisories, unreadable) = self.advisories(&p.name);
            audit.advisories += advisories.len();
            audit.unreadable.extend(unreadable);
            let affecting: Vec<Advisory> = advisories
                .into_iter()
                .filter(|a| a.affects(&p.version))
                .collect();
            if !affecting.is_empty() {
                audit.hits.push(Hit {
                    package: p.clone(),
                    advisories: affecting,
                });
            }
        }
        audit.unreadable.sort();
        audit.unreadable.dedup();
        audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advisory(versions: &str) -> Advisory {
        let text = format!(
            "```toml\n[advisory]\nid = \"RUSTSEC-2099-0001\"\npackage = \"demo\"\n\
             date = \"2099-01-01\"\n\n[versions]\n{versions}\n```\n\n# A demo flaw\n\nText.\n"
        );
        Advisory::parse(&text).unwrap().unwrap()
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn a_version_below_the_patched_range_is_affected() {
        let a = advisory("patched = [\">= 1.2.3\"]");
        assert!(a.affects(&v("1.2.2")));
        assert!(a.affects(&v("0.9.0")));
        assert!(!a.affects(&v("1.2.3")));
        assert!(!a.affects(&v("2.0.0")));
        assert_eq!(a.title, "A demo flaw");
        assert_eq!(a.kind, Kind::Vulnerability);
        assert_eq!(a.first_patched(), Some(v("1.2.3")));
    }

    #[test]
    fn several_patched_branches_each_cover_their_own_line() {
        let a = advisory("patched = [\">= 0.5.7, < 0.6.0\", \">= 0.6.2\"]");
        assert!(a.affects(&v("0.5.6")));
        assert!(!a.affects(&v("0.5.9")));
        assert!(a.affects(&v("0.6.0")));
        assert!(a.affects(&v("0.6.1")));
        assert!(!a.affects(&v("0.6.2")));
        assert!(!a.affects(&v("1.0.0")));
        assert_eq!(a.first_patched(), Some(v("0.5.7")));
    }

    #[test]
    fn unaffected_versions_are_not_affected_even_without_a_patch() {
        let a = advisory("patched = []\nunaffected = [\"< 0.3.0\"]");
        assert!(!a.affects(&v("0.2.9")));
        assert!(a.affects(&v("0.3.0")));
        assert!(a.affects(&v("9.0.0")));
        assert_eq!(a.first_patched(), None);
    }

    #[test]
    fn caret_requirements_follow_cargo_semantics() {
        let a = advisory("patched = [\"^0.4.5\", \"^1.1\"]");
        assert!(!a.affects(&v("0.4.9")));
        assert!(a.affects(&v("0.4.4")));
        assert!(a.affects(&v("0.5.0")), "^0.4.5 stops before 0.5.0");
        assert!(a.affects(&v("1.0.9")));
        assert!(!a.affects(&v("1.9.0")));
    }

    #[test]
    fn no_versions_at_all_affects_everything() {
        let a = advisory("");
        assert!(a.affects(&v("0.0.1")));
    }

    #[test]
    fn withdrawn_and_informational_advisories_are_told_apart() {
        let withdrawn = "```toml\n[advisory]\nid = \"RUSTSEC-2099-0002\"\npackage = \"demo\"\n\
                         withdrawn = \"2099-02-01\"\n[versions]\npatched = []\n```\n";
        assert!(Advisory::parse(withdrawn).unwrap().is_none());
        let info = "```toml\n[advisory]\nid = \"RUSTSEC-2099-0003\"\npackage = \"demo\"\n\
                    informational = \"unmaintained\"\n[versions]\npatched = []\n```\n# Gone\n";
        let a = Advisory::parse(info).unwrap().unwrap();
        assert_eq!(a.kind, Kind::Informational("unmaintained".into()));
    }

    #[test]
    fn malformed_front_matter_is_an_error_not_a_panic() {
        assert!(Advisory::parse("no front matter").is_err());
        assert!(Advisory::parse("```toml\n[advisory]\nid = 1\n").is_err());
        assert!(
            Advisory::parse(
                "```toml\n[advisory]\nid = \"X\"\npackage = \"p\"\n[versions]\npatched = [\"not a req\"]\n```"
            )
            .is_err()
        );
    }

    #[test]
    fn the_embedded_lock_lists_registry_crates_only() {
        let all = packages(BUILT_WITH).unwrap();
        assert!(all.iter().any(|p| p.name == "redb"));
        assert!(all.iter().all(|p| p.name != "cpid"));
    }

    #[test]
    fn a_database_directory_is_matched_against_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let crates = dir.path().join("crates").join("demo");
        std::fs::create_dir_all(&crates).unwrap();
        std::fs::write(
            crates.join("RUSTSEC-2099-0001.md"),
            "```toml\n[advisory]\nid = \"RUSTSEC-2099-0001\"\npackage = \"demo\"\n\
             [versions]\npatched = [\">= 1.0.1\"]\n```\n# Flaw\n",
        )
        .unwrap();
        std::fs::write(crates.join("RUSTSEC-2099-0009.md"), "garbage").unwrap();
        let lock = "version = 4\n\n[[package]]\nname = \"demo\"\nversion = \"1.0.0\"\n\
                    source = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n\
                    [[package]]\nname = \"other\"\nversion = \"1.0.0\"\n\
                    source = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        let db = Database::open(dir.path()).unwrap();
        let audit = db.audit(&packages(lock).unwrap());
        assert_eq!(audit.hits.len(), 1);
        assert_eq!(audit.hits[0].package.name, "demo");
        assert_eq!(audit.hits[0].advisories[0].id, "RUSTSEC-2099-0001");
        assert_eq!(audit.unreadable.len(), 1, "{:?}", audit.unreadable);
        assert!(Database::open(&dir.path().join("crates")).is_err());
    }
}
