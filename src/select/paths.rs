//! Path selection: the latency between two regions from a documented
//! matrix, and the dedicated lines (`NL` resources) that beat it or carry a
//! bandwidth the public network does not promise.
//!
//! The matrix defaults follow the published targets of the national
//! computing network: within one region (province) 1 ms, between nearby
//! regions (the same of China's six geographic areas) 5 ms, between hub
//! regions farther apart 20 ms. Any pair can be set in the configuration.
//! A path is the buyer's region → (lines) → the resource's region, the
//! fastest there is, its latency the sum of its legs (the matrix figure
//! for a public leg between two regions, the line's own for a line), or
//! the same-region figure when buyer and resource share a region; with a minimum bandwidth asked, every leg between two
//! regions must be a line at least that wide (bandwidth inside a region is
//! not the constraint). Line bandwidth is advisory: it is not booked.

use serde::{Deserialize, Serialize};

/// The six geographic areas the matrix calls "nearby": North, Northeast,
/// East, Central-South, Southwest, Northwest (GB/T 2260 first digit, with
/// Taiwan in the East and Hong Kong and Macao in the Central-South).
fn area(region: &str) -> Option<u8> {
    let first = region.as_bytes().first()?;
    Some(match (first, region) {
        (_, "71") => 3,
        (_, "81" | "82") => 4,
        (b'1'..=b'6', _) => first - b'0',
        _ => return None,
    })
}

/// One pair's latency, set in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairLatency {
    /// GB/T 2260 province codes; the pair is symmetric.
    pub a: String,
    pub b: String,
    pub ms: f64,
}

/// The region-to-region latency matrix (`[select.paths]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// Within one region, milliseconds.
    pub same_region_ms: f64,
    /// Between regions of the same geographic area.
    pub nearby_ms: f64,
    /// Between regions of different areas (hub to hub).
    pub distant_ms: f64,
    /// Pairs that differ from the rule above.
    pub pairs: Vec<PairLatency>,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            same_region_ms: 1.0,
            nearby_ms: 5.0,
            distant_ms: 20.0,
            pairs: Vec::new(),
        }
    }
}

impl PathsConfig {
    /// The public-network latency from `a` to `b`, milliseconds.
    pub fn latency(&self, a: &str, b: &str) -> f64 {
        if let Some(p) = self
            .pairs
            .iter()
            .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
        {
            return p.ms;
        }
        if a == b {
            self.same_region_ms
        } else if area(a).is_some() && area(a) == area(b) {
            self.nearby_ms
        } else {
            self.distant_ms
        }
    }

    /// Why the matrix is unusable, if it is.
    pub fn check(&self) -> Result<(), String> {
        let ok =
            |v: f64| v.is_finite() && (0.0..=crate::ident::resource::MAX_LATENCY_MS).contains(&v);
        for (name, v) in [
            ("same_region_ms", self.same_region_ms),
            ("nearby_ms", self.nearby_ms),
            ("distant_ms", self.distant_ms),
        ] {
            if !ok(v) {
                return Err(format!("{name} must be 0 to 10000"));
            }
        }
        for p in &self.pairs {
            for r in [&p.a, &p.b] {
                if crate::ident::identifier::province(r).is_none() {
                    return Err(format!("pairs: {r:?} is not a GB/T 2260 province code"));
                }
            }
            if !ok(p.ms) {
                return Err(format!("pairs: {}-{} ms must be 0 to 10000", p.a, p.b));
            }
        }
        Ok(())
    }
}

/// A dedicated line as the selector knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub id: String,
    pub regions: [String; 2],
    pub bandwidth_gbps: f64,
    pub latency_ms: f64,
}

/// How a buyer reaches a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Path {
    /// The buyer's region.
    pub from: String,
    /// The resource's region.
    pub to: String,
    /// The dedicated lines taken, in order (none: the public network).
    pub via: Vec<String>,
    pub latency_ms: f64,
    /// The narrowest line's bandwidth; absent when a leg between two
    /// regions is the public network (no bandwidth promised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_gbps: Option<f64>,
}

/// Dijkstra's working state for one region.
struct Slot {
    dist: f64,
    /// The region before and the line taken from it (`None`: public leg).
    prev: Option<(usize, Option<usize>)>,
    done: bool,
}

/// Every region's best path from one buyer region.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    by_region: std::collections::HashMap<String, Path>,
}

impl Paths {
    /// The fastest path from `from` to every region, over the matrix and
    /// `lines`; with `min_bandwidth` every leg between regions is a line at
    /// least that wide. Dijkstra over the (few dozen) regions.
    pub fn from(
        from: &str,
        config: &PathsConfig,
        lines: &[Line],
        min_bandwidth: Option<f64>,
    ) -> Paths {
        let regions: Vec<&str> = crate::ident::identifier::PROVINCES
            .iter()
            .map(|(code, _)| *code)
            .collect();
        let Some(src) = regions.iter().position(|r| *r == from) else {
            return Paths::default();
        };
        let index = |r: &str| regions.iter().position(|x| *x == r);
        let mut slots: Vec<Slot> = regions
            .iter()
            .map(|_| Slot {
                dist: f64::INFINITY,
                prev: None,
                done: false,
            })
            .collect();
        // Inside the buyer's own region the matrix's same-region figure
        // applies (below); a path out of it costs its legs alone.
        if let Some(s) = slots.get_mut(src) {
            s.dist = 0.0;
        }
        // (line, one end, other end, latency) of the lines wide enough.
        let usable: Vec<(usize, usize, usize, f64)> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| min_bandwidth.is_none_or(|m| l.bandwidth_gbps >= m))
            .filter_map(|(i, l)| {
                let [a, b] = &l.regions;
                Some((i, index(a)?, index(b)?, l.latency_ms))
            })
            .collect();
        loop {
            let next = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.done && s.dist.is_finite())
                .min_by(|a, b| a.1.dist.total_cmp(&b.1.dist))
                .map(|(i, _)| i);
            let Some(u) = next else { break };
            let Some(du) = slots.get_mut(u).map(|s| {
                s.done = true;
                s.dist
            }) else {
                break;
            };
            let ru = regions.get(u).copied().unwrap_or_default();
            let mut edges: Vec<(usize, f64, Option<usize>)> = Vec::new();
            if min_bandwidth.is_none() {
                for (v, rv) in regions.iter().enumerate() {
                    if v != u {
                        edges.push((v, config.latency(ru, rv), None));
                    }
                }
            }
            for &(i, a, b, ms) in &usable {
                if a == u && b != u {
                    edges.push((b, ms, Some(i)));
                } else if b == u && a != u {
                    edges.push((a, ms, Some(i)));
                }
            }
            for (v, cost, line) in edges {
                if let Some(s) = slots.get_mut(v)
                    && du + cost < s.dist
                {
                    s.dist = du + cost;
                    s.prev = Some((u, line));
                }
            }
        }
        let mut by_region = std::collections::HashMap::new();
        for (v, (to, slot)) in regions.iter().zip(&slots).enumerate() {
            if !slot.dist.is_finite() {
                continue;
            }
            let mut via = Vec::new();
            let mut public_leg = false;
            let mut narrowest: Option<f64> = None;
            let mut at = v;
            // A shortest-path tree has no cycle; the bound is belt and braces.
            for _ in 0..regions.len() {
                let Some((u, line)) = slots.get(at).and_then(|s| s.prev) else {
                    break;
                };
                match line.and_then(|i| lines.get(i)) {
                    Some(l) => {
                        via.push(l.id.clone());
                        narrowest = Some(
                            narrowest.map_or(l.bandwidth_gbps, |m: f64| m.min(l.bandwidth_gbps)),
                        );
                    }
                    None => public_leg = true,
                }
                at = u;
            }
            via.reverse();
            let latency = if v == src {
                config.latency(from, from)
            } else {
                slot.dist
            };
            by_region.insert(
                (*to).to_string(),
                Path {
                    from: from.to_string(),
                    to: (*to).to_string(),
                    via,
                    latency_ms: (latency * 1000.0).round() / 1000.0,
                    bandwidth_gbps: if public_leg { None } else { narrowest },
                },
            );
        }
        Paths { by_region }
    }

    /// The path to `region`, if there is one.
    pub fn to(&self, region: &str) -> Option<&Path> {
        self.by_region.get(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, a: &str, b: &str, bw: f64, ms: f64) -> Line {
        Line {
            id: id.into(),
            regions: [a.into(), b.into()],
            bandwidth_gbps: bw,
            latency_ms: ms,
        }
    }

    #[test]
    fn the_matrix_follows_the_published_targets() {
        let c = PathsConfig::default();
        assert_eq!(c.latency("31", "31"), 1.0);
        assert_eq!(c.latency("31", "32"), 5.0, "Shanghai–Jiangsu: both East");
        assert_eq!(c.latency("11", "51"), 20.0, "Beijing–Sichuan: hub to hub");
        let mut c = c;
        c.pairs.push(PairLatency {
            a: "51".into(),
            b: "11".into(),
            ms: 12.0,
        });
        assert_eq!(c.latency("11", "51"), 12.0, "pairs are symmetric");
        assert!(c.check().is_ok());
        c.distant_ms = f64::NAN;
        assert!(c.check().is_err());
    }

    #[test]
    fn a_line_wins_when_faster_and_is_the_only_way_with_bandwidth() {
        let c = PathsConfig::default();
        let lines = [line("CN.NL.A", "11", "51", 100.0, 8.0)];
        let p = Paths::from("11", &c, &lines, None);
        let to = p.to("51").unwrap();
        assert_eq!(to.via, vec!["CN.NL.A".to_string()]);
        assert_eq!(to.latency_ms, 8.0, "the line from the buyer's region");
        assert_eq!(p.to("11").unwrap().latency_ms, 1.0, "inside the region");
        assert_eq!(to.bandwidth_gbps, Some(100.0));
        let public = p.to("44").unwrap();
        assert!(public.via.is_empty());
        assert_eq!(public.latency_ms, 20.0, "the matrix, hub to hub");
        assert_eq!(public.bandwidth_gbps, None);

        let wide = Paths::from("11", &c, &lines, Some(50.0));
        assert_eq!(wide.to("51").unwrap().bandwidth_gbps, Some(100.0));
        assert!(wide.to("44").is_none(), "no line reaches Guangdong");
        let too_wide = Paths::from("11", &c, &lines, Some(400.0));
        assert!(too_wide.to("51").is_none());
        assert!(
            too_wide.to("11").is_some(),
            "inside the region is no constraint"
        );
    }

    #[test]
    fn lines_chain_and_the_narrowest_names_the_bandwidth() {
        let c = PathsConfig::default();
        let lines = [
            line("L1", "11", "61", 40.0, 6.0),
            line("L2", "61", "65", 10.0, 6.0),
        ];
        let p = Paths::from("11", &c, &lines, Some(5.0));
        let to = p.to("65").unwrap();
        assert_eq!(to.via, vec!["L1".to_string(), "L2".to_string()]);
        assert_eq!(to.bandwidth_gbps, Some(10.0));
        assert!(Paths::from("99", &c, &lines, None).to("11").is_none());
    }
}
