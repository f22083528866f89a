//! C2SP tiles (c2sp.org/tlog-tiles): how a log serves its Merkle tree and
//! entries as static, cacheable resources.
//!
//! A tile at level `L` and index `N` holds up to 256 consecutive stored
//! hashes of level `8·L`, those at indices `N·256 ..`; a full tile holds
//! 256, a partial one 1 to 255. Tiles live at `tile/<L>/<N>[.p/<W>]`, the
//! entries of the leaves of level-0 tile `N` at `tile/entries/<N>[.p/<W>]`,
//! where `N` is written in three-digit groups, all but the last prefixed
//! with `x` (1234067 is `x001/x234/067`).
//!
//! An entry bundle is the entries one after another, each as a big-endian
//! u16 length and its bytes.
//!
//! Path parsing accepts only the one canonical spelling of each tile, so
//! one resource never has two names.

use crate::tlog::error::TlogError;
use crate::tlog::merkle::HashReader;

/// Hashes in a full tile.
pub const FULL_WIDTH: u16 = 256;

/// Tree levels a tile spans: a tile of level `L` holds hashes of level `8·L`.
pub const TILE_HEIGHT: u8 = 8;

/// The largest tile level a path may name (c2sp.org/tlog-tiles).
pub const MAX_LEVEL: u8 = 63;

/// One tile: which hashes (or which leaves' entries) and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Tile level `L`: the tile holds stored hashes of level `8·L`.
    pub level: u8,
    /// Tile index `N` within its level.
    pub index: u64,
    /// Hashes in the tile, 1..=256; 256 is a full tile.
    pub width: u16,
}

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileResource {
    /// `tile/<L>/<N>[.p/<W>]`: a tile of hashes.
    Hashes(Tile),
    /// `tile/entries/<N>[.p/<W>]`: the entry bundle of a level-0 tile.
    Entries(Tile),
}

impl TileResource {
    /// The resource's path (without the log's prefix).
    pub fn path(&self) -> String {
        match self {
            TileResource::Hashes(tile) => tile.path(),
            TileResource::Entries(tile) => tile.entries_path(),
        }
    }

    /// The tile (level 0 for an entry bundle).
    pub fn tile(&self) -> Tile {
        match self {
            TileResource::Hashes(tile) | TileResource::Entries(tile) => *tile,
        }
    }
}

impl Tile {
    /// Whether the tile holds fewer than 256 hashes.
    pub fn is_partial(&self) -> bool {
        self.width < FULL_WIDTH
    }

    /// `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.index_and_width())
    }

    /// `tile/entries/<N>[.p/<W>]`, the entry bundle of the level-0 tile
    /// with this index and width.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.index_and_width())
    }

    fn index_and_width(&self) -> String {
        let n = encode_index(self.index);
        if self.is_partial() {
            format!("{n}.p/{}", self.width)
        } else {
            n
        }
    }

    /// Reads a tile path: `tile/<L>/<N>[.p/<W>]` or
    /// `tile/entries/<N>[.p/<W>]`, in its one canonical spelling.
    pub fn parse(path: &str) -> Result<TileResource, TlogError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or_else(|| bad_path("does not start with tile/"))?;
        let (first, rest) = rest
            .split_once('/')
            .ok_or_else(|| bad_path("no tile index"))?;
        let (n, width) = match rest.split_once(".p/") {
            Some((n, w)) => (n, parse_width(w)?),
            None => (rest, FULL_WIDTH),
        };
        let index = decode_index(n)?;
        if first == "entries" {
            return Ok(TileResource::Entries(Tile {
                level: 0,
                index,
                width,
            }));
        }
        let level = parse_decimal(first)
            .and_then(|l| u8::try_from(l).ok())
            .filter(|&l| l <= MAX_LEVEL)
            .ok_or_else(|| bad_path("level is not a decimal 0..=63 without leading zeros"))?;
        Ok(TileResource::Hashes(Tile {
            level,
            index,
            width,
        }))
    }
}

/// The tile's contents: its `width` stored hashes of level `8·L`,
/// concatenated (32 bytes each).
pub fn tile_hashes(tile: &Tile, r: &dyn HashReader) -> Result<Vec<u8>, TlogError> {
    const WHAT: &str = "tile";
    if tile.width == 0 || tile.width > FULL_WIDTH {
        return Err(TlogError::malformed(
            WHAT,
            format!("width {} is not 1..=256", tile.width),
        ));
    }
    // Stored hashes exist for levels 0..=63 only (trees of < 2^64 leaves).
    let level = tile
        .level
        .checked_mul(TILE_HEIGHT)
        .filter(|&l| l < 64)
        .ok_or_else(|| {
            TlogError::malformed(WHAT, format!("level {} holds no stored hash", tile.level))
        })?;
    let start = tile
        .index
        .checked_mul(u64::from(FULL_WIDTH))
        .ok_or_else(|| TlogError::malformed(WHAT, format!("index {} is too large", tile.index)))?;
    let mut out = Vec::with_capacity(usize::from(tile.width) * 32);
    for i in 0..u64::from(tile.width) {
        let index = start.checked_add(i).ok_or_else(|| {
            TlogError::malformed(WHAT, format!("index {} is too large", tile.index))
        })?;
        out.extend_from_slice(&r.hash(level, index)?);
    }
    Ok(out)
}

/// An entry bundle: each entry as a big-endian u16 length and its bytes.
/// A bundle holds 1 to 256 entries of at most 65535 bytes each.
pub fn entry_bundle(entries: &[&[u8]]) -> Result<Vec<u8>, TlogError> {
    check_count(entries.len())?;
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for entry in entries {
        let len = u16::try_from(entry.len()).map_err(|_| {
            TlogError::malformed(
                "entry bundle",
                format!("an entry of {} bytes is over 65535", entry.len()),
            )
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Reads an entry bundle back into its entries; every byte must belong to
/// an entry.
pub fn parse_entry_bundle(bundle: &[u8]) -> Result<Vec<&[u8]>, TlogError> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let (len, after) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| TlogError::malformed("entry bundle", "truncated length"))?;
        let (entry, after) = after
            .split_at_checked(usize::from(u16::from_be_bytes(*len)))
            .ok_or_else(|| TlogError::malformed("entry bundle", "truncated entry"))?;
        entries.push(entry);
        rest = after;
        check_count(entries.len())?;
    }
    check_count(entries.len())?;
    Ok(entries)
}

fn check_count(n: usize) -> Result<(), TlogError> {
    if n == 0 || n > usize::from(FULL_WIDTH) {
        return Err(TlogError::malformed(
            "entry bundle",
            format!("{n} entries, not 1..=256"),
        ));
    }
    Ok(())
}

fn bad_path(reason: &str) -> TlogError {
    TlogError::malformed("tile path", reason)
}

/// `W` of `.p/<W>`: decimal 1..=255 without leading zeros.
fn parse_width(w: &str) -> Result<u16, TlogError> {
    parse_decimal(w)
        .and_then(|w| u16::try_from(w).ok())
        .filter(|w| (1..FULL_WIDTH).contains(w))
        .ok_or_else(|| bad_path("partial width is not a decimal 1..=255 without leading zeros"))
}

/// ASCII decimal digits without a leading zero (but `0` itself), as u64.
fn parse_decimal(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// `N` as three-digit groups, all but the last prefixed with `x`.
fn encode_index(mut n: u64) -> String {
    let mut groups = Vec::new();
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i == last {
                format!("{g:03}")
            } else {
                format!("x{g:03}")
            }
        })
        .collect::<Vec<String>>()
        .join("/")
}

/// The inverse of [`encode_index`], refusing every other spelling: groups
/// of exactly three digits, `x` on all but the last, no leading `x000`.
fn decode_index(path: &str) -> Result<u64, TlogError> {
    let groups: Vec<&str> = path.split('/').collect();
    let Some((last, leading)) = groups.split_last() else {
        return Err(bad_path("no tile index"));
    };
    if leading.first() == Some(&"x000") {
        return Err(bad_path("tile index has a leading zero group"));
    }
    let mut n: u64 = 0;
    for group in leading
        .iter()
        .map(|g| g.strip_prefix('x'))
        .chain([Some(*last)])
    {
        let digits = group
            .filter(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad_path("tile index is not x-prefixed groups of three digits"))?;
        let value: u64 = digits
            .parse()
            .map_err(|_| bad_path("tile index is not x-prefixed groups of three digits"))?;
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(value))
            .ok_or_else(|| bad_path("tile index is too large"))?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::tlog::merkle::{Frontier, Hash, leaf_hash};

    fn hashes(level: u8, index: u64, width: u16) -> TileResource {
        TileResource::Hashes(Tile {
            level,
            index,
            width,
        })
    }

    fn entries(index: u64, width: u16) -> TileResource {
        TileResource::Entries(Tile {
            level: 0,
            index,
            width,
        })
    }

    #[test]
    fn paths_follow_the_spec_examples() {
        let cases = [
            (hashes(0, 1234067, 256), "tile/0/x001/x234/067"),
            (hashes(0, 0, 256), "tile/0/000"),
            (hashes(1, 999, 256), "tile/1/999"),
            (hashes(2, 1000, 17), "tile/2/x001/000.p/17"),
            (hashes(63, 5, 1), "tile/63/005.p/1"),
            (entries(1234067, 256), "tile/entries/x001/x234/067"),
            (entries(0, 255), "tile/entries/000.p/255"),
            (
                hashes(0, u64::MAX, 256),
                "tile/0/x018/x446/x744/x073/x709/x551/615",
            ),
        ];
        for (resource, path) in cases {
            assert_eq!(resource.path(), path);
            assert_eq!(Tile::parse(path), Ok(resource), "{path}");
        }
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        let bad = [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "/tile/0/000",
            "tiles/0/000",
            "tile/0/0",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/x000/001",
            "tile/0/x001",
            "tile/0/001/002",
            "tile/0/x001/x002",
            "tile/0/X001/002",
            "tile/0/xx01/002",
            "tile/0/+01",
            "tile/0/-01",
            "tile/0/0a1",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/256/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/01",
            "tile/0/000.p/",
            "tile/0/000.p/1/",
            "tile/0/000.p/1.p/1",
            "tile/0/000.p",
            "tile/0/000/",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
            "tile/entries/",
            "tile/entries/0",
            "tile/entries/000.p/256",
            "tile/Entries/000",
            "tile/0/\u{0663}00",
        ];
        for path in bad {
            assert!(
                matches!(Tile::parse(path), Err(TlogError::Malformed { .. })),
                "{path:?}"
            );
        }
    }

    #[test]
    fn every_index_round_trips() {
        for index in (0..5000).chain([999_999, 1_000_000, u64::MAX - 1, u64::MAX]) {
            let r = hashes(3, index, 256);
            assert_eq!(Tile::parse(&r.path()), Ok(r));
        }
    }

    #[test]
    fn tile_hashes_are_the_stored_hashes_of_level_8l() {
        let mut stored: HashMap<(u8, u64), Hash> = HashMap::new();
        let mut f = Frontier::empty();
        for i in 0u32..70_000 {
            for (level, index, hash) in f.append(leaf_hash(&i.to_be_bytes())) {
                stored.insert((level, index), hash);
            }
        }
        // Tree size 70,000: 273 full level-0 tiles and one of width 112,
        // one full level-1 tile and one of width 17, a level-2 tile of width 1.
        let full = tile_hashes(
            &Tile {
                level: 0,
                index: 272,
                width: 256,
            },
            &stored,
        )
        .unwrap();
        assert_eq!(full.len(), 256 * 32);
        assert_eq!(full[..32], stored[&(0, 272 * 256)]);
        assert_eq!(full[255 * 32..], stored[&(0, 272 * 256 + 255)]);
        let partial = tile_hashes(
            &Tile {
                level: 0,
                index: 273,
                width: 112,
            },
            &stored,
        )
        .unwrap();
        assert_eq!(partial[111 * 32..], stored[&(0, 273 * 256 + 111)]);
        assert!(
            tile_hashes(
                &Tile {
                    level: 0,
                    index: 273,
                    width: 113
                },
                &stored
            )
            .is_err()
        );
        let l1 = tile_hashes(
            &Tile {
                level: 1,
                index: 1,
                width: 17,
            },
            &stored,
        )
        .unwrap();
        assert_eq!(l1[16 * 32..], stored[&(8, 256 + 16)]);
        let l2 = tile_hashes(
            &Tile {
                level: 2,
                index: 0,
                width: 1,
            },
            &stored,
        )
        .unwrap();
        assert_eq!(l2[..], stored[&(16, 0)]);
        assert!(
            tile_hashes(
                &Tile {
                    level: 8,
                    index: 0,
                    width: 1
                },
                &stored
            )
            .is_err()
        );
        assert!(
            tile_hashes(
                &Tile {
                    level: 0,
                    index: 0,
                    width: 0
                },
                &stored
            )
            .is_err()
        );
        assert!(
            tile_hashes(
                &Tile {
                    level: 0,
                    index: 0,
                    width: 257
                },
                &stored
            )
            .is_err()
        );
        assert!(
            tile_hashes(
                &Tile {
                    level: 0,
                    index: u64::MAX,
                    width: 1
                },
                &stored
            )
            .is_err()
        );
    }

    #[test]
    fn entry_bundles_round_trip() {
        let big = vec![7u8; 65535];
        let list: Vec<&[u8]> = vec![&b""[..], &b"a"[..], &b"hello"[..], &big[..]];
        let bundle = entry_bundle(&list).unwrap();
        assert_eq!(bundle[..9], [0, 0, 0, 1, b'a', 0, 5, b'h', b'e']);
        assert_eq!(bundle.len(), 2 * 4 + 1 + 5 + 65535);
        assert_eq!(parse_entry_bundle(&bundle).unwrap(), list);
        let full: Vec<&[u8]> = vec![b"x"; 256];
        assert_eq!(
            parse_entry_bundle(&entry_bundle(&full).unwrap()).unwrap(),
            full
        );
    }

    #[test]
    fn bad_entry_bundles_are_refused() {
        let too_big = vec![0u8; 65536];
        assert!(entry_bundle(&[&too_big]).is_err());
        assert!(entry_bundle(&[]).is_err());
        assert!(entry_bundle(&vec![&b"x"[..]; 257]).is_err());
        for bad in [
            &b""[..],
            &[0],
            &[0, 2, 1],
            &[0, 1, 1, 0],
            &[0, 1, 1, 0, 2, 1],
            &[0xff, 0xff],
        ] {
            assert!(parse_entry_bundle(bad).is_err(), "{bad:?}");
        }
        let many = [0u8; 2 * 257];
        assert!(parse_entry_bundle(&many).is_err());
    }
}
