//! C2SP checkpoints (c2sp.org/tlog-checkpoint): the signed-note text that
//! names a log's tree head.
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zero>
//! <base64 of the 32-byte RFC 6962 root hash>
//! [extension lines, each non-empty]
//! ```
//!
//! Each line ends in a newline. [`Checkpoint::parse`] accepts exactly the
//! text [`Checkpoint::to_text`] writes and nothing else: it is the body a
//! log signs and a witness cosigns, so two spellings of one tree head must
//! not both pass. Signing and opening the note is [`crate::tlog::note`]'s.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::tlog::error::TlogError;
use crate::tlog::merkle::Hash;
use crate::tlog::note::MAX_NOTE_BYTES;

const WHAT: &str = "checkpoint";

/// A log's tree head: origin, size and root, and any extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `example.com/log42`; non-empty.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The RFC 6962 root hash of the tree of `size` leaves.
    pub root: Hash,
    /// Opaque extension lines, each non-empty, without newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint body, final newline included. Round-trips through
    /// [`Checkpoint::parse`] when the origin and extensions are valid lines
    /// (non-empty, no control character).
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Reads a checkpoint body strictly.
    pub fn parse(text: &str) -> Result<Checkpoint, TlogError> {
        if text.len() > MAX_NOTE_BYTES {
            return Err(TlogError::malformed(WHAT, "longer than MAX_NOTE_BYTES"));
        }
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| TlogError::malformed(WHAT, "does not end in a newline"))?;
        if let Some(c) = body.chars().find(|&c| c < ' ' && c != '\n') {
            return Err(TlogError::malformed(
                WHAT,
                format!("control character {c:?}"),
            ));
        }
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(TlogError::malformed(WHAT, "fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(TlogError::malformed(WHAT, "empty origin"));
        }
        let size = parse_size(size)?;
        let root = parse_root(root)?;
        let extensions = lines
            .map(|line| {
                if line.is_empty() {
                    Err(TlogError::malformed(WHAT, "empty extension line"))
                } else {
                    Ok(line.to_owned())
                }
            })
            .collect::<Result<Vec<String>, TlogError>>()?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// ASCII decimal, no sign, no leading zero except for `0` itself.
fn parse_size(line: &str) -> Result<u64, TlogError> {
    let digits = !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit());
    if !digits || (line.len() > 1 && line.starts_with('0')) {
        return Err(TlogError::malformed(
            WHAT,
            format!("tree size {line:?} is not a decimal number without leading zeros"),
        ));
    }
    line.parse()
        .map_err(|_| TlogError::malformed(WHAT, format!("tree size {line} is too large")))
}

/// Canonical base64 of exactly 32 bytes.
fn parse_root(line: &str) -> Result<Hash, TlogError> {
    BASE64
        .decode(line)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or_else(|| TlogError::malformed(WHAT, "root hash is not canonical base64 of 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of c2sp.org/tlog-checkpoint.
    const EXAMPLE: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn the_spec_example_round_trips() {
        let c = Checkpoint::parse(EXAMPLE).unwrap();
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20852163);
        assert_eq!(
            BASE64.encode(c.root),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert!(c.extensions.is_empty());
        assert_eq!(c.to_text(), EXAMPLE);
    }

    #[test]
    fn extension_lines_round_trip() {
        let text = format!("{EXAMPLE}ext one\n\u{1F642} two\n");
        let c = Checkpoint::parse(&text).unwrap();
        assert_eq!(c.extensions, ["ext one", "\u{1F642} two"]);
        assert_eq!(c.to_text(), text);
    }

    #[test]
    fn an_empty_tree_has_size_zero() {
        let c = Checkpoint {
            origin: "o".to_owned(),
            size: 0,
            root: crate::tlog::merkle::empty_root(),
            extensions: Vec::new(),
        };
        assert_eq!(Checkpoint::parse(&c.to_text()).unwrap(), c);
        let max = Checkpoint {
            size: u64::MAX,
            ..c
        };
        assert_eq!(Checkpoint::parse(&max.to_text()).unwrap(), max);
    }

    #[test]
    fn non_canonical_checkpoints_are_refused() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let bad = [
            String::new(),
            "\n".to_owned(),
            EXAMPLE.trim_end().to_owned(),
            format!("example.com/behind-the-sofa\n20852163\n{root}"),
            format!("\n20852163\n{root}\n"),
            format!("o\n020852163\n{root}\n"),
            format!("o\n00\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n 1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2Iq\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n".to_owned(),
            format!("o\n1\n{root} \n"),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\n"),
            format!("o\n1\n{root}\r\n"),
            format!("o\r\n1\n{root}\n"),
            "o\n1\n".to_owned(),
        ];
        for text in bad {
            assert!(
                matches!(Checkpoint::parse(&text), Err(TlogError::Malformed { .. })),
                "{text:?}"
            );
        }
    }
}
