//! The agent's durable state: the last sequence number it used per agent
//! id, and the identifier of each inventory name, in one JSON file.
//!
//! ```json
//! {"version": 1, "agents": {"dc1-rack7": {"last_seq": 42,
//!   "ids": {"gpu-pool-a": "86.31.1005/IC-000001-4"},
//!   "provider": "86.31.1005/PV-000001-2"}}}
//! ```
//!
//! The file is replaced atomically (temporary file, fsync, rename, fsync
//! of the directory), so a crash leaves the old state or the new one,
//! never a torn one. A file that does not read is an error, never a fresh
//! start: starting again at 1 would make the node refuse every report as
//! out of order (or, worse, if a state had been copied, accept a
//! sequence number twice). A missing file is a fresh start.
//!
//! **The sequence number is written before the report is sent.** The node
//! takes a report only with a sequence number above the last it accepted
//! from this (key, agent). Were it written after, a crash between the
//! node's accepting a report and the write would make the restarted agent
//! send the same number again, and be refused. Written first, a crash can
//! at worst skip a number, which the node allows (numbers grow; they need
//! not be consecutive).
//!
//! [`StateFile::open`] holds an exclusive lock (`<state>.lock`) for as
//! long as it lives, so two agents never share one sequence.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format written.
pub const STATE_VERSION: u32 = 1;
/// Largest state file read.
const MAX_STATE_LEN: u64 = 16 << 20;

/// A state that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a readable agent state ({reason}); refusing to start again at sequence 1: repair the file or move it away"
    )]
    Corrupt { path: String, reason: String },
    #[error("{path}: held by another agent (lock {lock})")]
    Locked { path: String, lock: String },
    #[error("agent {agent}: sequence numbers exhausted")]
    SeqExhausted { agent: String },
}

/// What is kept per agent id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    /// The last sequence number used (sent or about to be); 0 = none yet.
    pub last_seq: u64,
    /// Inventory name → identifier.
    #[serde(default)]
    pub ids: BTreeMap<String, String>,
    /// The provider (`PV`) identifier the agent acts for, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentState {
    pub version: u32,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentEntry>,
}

impl Default for AgentState {
    fn default() -> Self {
        AgentState {
            version: STATE_VERSION,
            agents: BTreeMap::new(),
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

impl AgentState {
    /// Reads the state at `path`; a missing file is a fresh state.
    pub fn load(path: &Path) -> Result<AgentState, StateError> {
        use std::io::Read;
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AgentState::default()),
            Err(e) => return Err(io(path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_STATE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io(path))?;
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.display().to_string(),
            reason,
        };
        if bytes.len() as u64 > MAX_STATE_LEN {
            return Err(corrupt(format!("larger than {MAX_STATE_LEN} bytes")));
        }
        let state: AgentState =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if state.version != STATE_VERSION {
            return Err(corrupt(format!(
                "version {} (this agent writes {STATE_VERSION})",
                state.version
            )));
        }
        Ok(state)
    }

    /// Writes the state to `path` atomically: a temporary file beside it,
    /// fsync, rename over, fsync of the directory.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StateError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let tmp = beside(path, ".tmp");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.write_all(b"\n").map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io(path))?;
        sync_dir(path)
    }
}

/// Makes a rename in `path`'s directory durable.
#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<(), StateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<(), StateError> {
    Ok(())
}

/// The state file of one running agent: loaded, locked, and written
/// through on every change.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: AgentState,
    /// Held for the lock; released on drop.
    _lock: File,
}

impl StateFile {
    /// Locks and reads the state at `path` (missing = fresh).
    pub fn open(path: &Path) -> Result<StateFile, StateError> {
        let lock_path = beside(path, ".lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    path: path.display().to_string(),
                    lock: lock_path.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        Ok(StateFile {
            path: path.to_path_buf(),
            state: AgentState::load(path)?,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// Applies `change` to a copy, writes it, and only then keeps it: the
    /// state in memory is never ahead of the file.
    fn commit(&mut self, change: impl FnOnce(&mut AgentState)) -> Result<(), StateError> {
        let mut next = self.state.clone();
        change(&mut next);
        next.save(&self.path)?;
        self.state = next;
        Ok(())
    }

    /// The last sequence number `agent` used (0 = none).
    pub fn last_seq(&self, agent: &str) -> u64 {
        self.state.agents.get(agent).map_or(0, |e| e.last_seq)
    }

    /// The next sequence number for `agent`, above both the last one used
    /// and `floor`; durable when this returns (see the module doc).
    pub fn next_seq_above(&mut self, agent: &str, floor: u64) -> Result<u64, StateError> {
        let seq = self
            .last_seq(agent)
            .max(floor)
            .checked_add(1)
            .ok_or_else(|| StateError::SeqExhausted {
                agent: agent.to_string(),
            })?;
        self.commit(|s| s.agents.entry(agent.to_string()).or_default().last_seq = seq)?;
        Ok(seq)
    }

    /// The next sequence number for `agent`; durable when this returns.
    pub fn next_seq(&mut self, agent: &str) -> Result<u64, StateError> {
        self.next_seq_above(agent, 0)
    }

    /// `agent`'s inventory names and their identifiers.
    pub fn ids(&self, agent: &str) -> BTreeMap<String, String> {
        self.state
            .agents
            .get(agent)
            .map(|e| e.ids.clone())
            .unwrap_or_default()
    }

    /// Replaces `agent`'s names and identifiers (written only when they
    /// changed).
    pub fn set_ids(
        &mut self,
        agent: &str,
        ids: BTreeMap<String, String>,
    ) -> Result<(), StateError> {
        if self.state.agents.get(agent).map(|e| &e.ids) == Some(&ids) {
            return Ok(());
        }
        self.commit(|s| s.agents.entry(agent.to_string()).or_default().ids = ids)
    }

    /// The provider `agent` acts for, when remembered.
    pub fn provider(&self, agent: &str) -> Option<String> {
        self.state
            .agents
            .get(agent)
            .and_then(|e| e.provider.clone())
    }

    /// Remembers the provider `agent` acts for (written only when it
    /// changed).
    pub fn set_provider(&mut self, agent: &str, provider: &str) -> Result<(), StateError> {
        if self.provider(agent).as_deref() == Some(provider) {
            return Ok(());
        }
        self.commit(|s| {
            s.agents.entry(agent.to_string()).or_default().provider = Some(provider.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_a_fresh_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFile::open(&dir.path().join("state.json")).unwrap();
        assert_eq!(s.last_seq("a"), 0);
        assert!(s.ids("a").is_empty());
        assert_eq!(s.state(), &AgentState::default());
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        {
            let mut s = StateFile::open(&path).unwrap();
            assert_eq!(s.next_seq("a").unwrap(), 1);
            assert_eq!(s.next_seq("a").unwrap(), 2);
            assert_eq!(s.next_seq("b").unwrap(), 1);
            assert_eq!(s.next_seq_above("b", 40).unwrap(), 41);
            assert_eq!(s.next_seq_above("b", 3).unwrap(), 42);
            let ids = BTreeMap::from([("pool".to_string(), "86.31/IC-1".to_string())]);
            s.set_ids("a", ids).unwrap();
        }
        let s = StateFile::open(&path).unwrap();
        assert_eq!(s.last_seq("a"), 2);
        assert_eq!(s.last_seq("b"), 42);
        assert_eq!(s.ids("a")["pool"], "86.31/IC-1");
        assert_eq!(AgentState::load(&path).unwrap(), *s.state());
        assert!(!beside(&path, ".tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for bad in [
            "",
            "{",
            "[]",
            r#"{"version": 1, "agents": {"a": {"last_seq": -1}}}"#,
            r#"{"version": 2, "agents": {}}"#,
            r#"{"version": 1, "agents": {}, "extra": 0}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = StateFile::open(&path).unwrap_err();
            assert!(matches!(e, StateError::Corrupt { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("refusing to start again"), "{e}");
        }
    }

    #[test]
    fn a_second_agent_cannot_open_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let first = StateFile::open(&path).unwrap();
        assert!(matches!(
            StateFile::open(&path),
            Err(StateError::Locked { .. })
        ));
        drop(first);
        StateFile::open(&path).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_memory_as_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut s = StateFile::open(&path).unwrap();
        assert_eq!(s.next_seq("a").unwrap(), 1);
        std::fs::remove_dir_all(dir.path().join("sub")).unwrap();
        assert!(s.next_seq("a").is_err());
        assert_eq!(s.last_seq("a"), 1);
    }
}
