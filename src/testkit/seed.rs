//! Realistic synthetic resource identifiers for benchmarks (`cpid bench
//! seed`): providers and compute, storage and network resources spread over
//! regional and industry prefixes, with capacity descriptors of the
//! standard (`schema/resource.md`; device peaks from `schema/devices.toml`)
//! and endpoints. Deterministic for a given count, so runs are comparable.

use crate::ident::identifier::{Class, Prefix};
use crate::ident::record::{RecordError, RecordStatus, Value, ValueType};
use crate::ident::resource::{Device, DeviceTable, Link, Price, ResourceDescriptor, SCHEMA, Unit};
use crate::registry::NewRecord;

/// GB/T 2260 province codes used for regional prefixes.
const REGIONS: [&str; 8] = ["11", "31", "44", "51", "32", "33", "42", "61"];
/// Models of the device table the seed installs.
const ACCELERATORS: [&str; 4] = ["A800", "H800", "Ascend 910B", "MI250X"];

/// A small deterministic generator (xorshift64*), enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// One entry of a non-empty table, chosen uniformly.
    #[allow(clippy::indexing_slicing)]
    fn pick<T: Copy, const N: usize>(&mut self, table: &[T; N]) -> T {
        // why: `below(N)` is < N, and N > 0 is checked at compile time.
        const { assert!(N > 0) };
        table[self.below(N as u64) as usize]
    }
}

/// The `n`-th synthetic record under `node` (0-based).
pub fn synthetic(node: &Prefix, n: u64, at: u64) -> Result<NewRecord, RecordError> {
    let mut rng = Rng(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let region = rng.pick(&REGIONS);
    // Under the national root, spread over regions and industry nodes;
    // under any other node, stay in its own prefix.
    let prefix = if node.depth() == 1 {
        let regional = node.child(region).unwrap_or_else(|_| node.clone());
        if rng.below(2) == 0 {
            regional
                .child(&format!("{}", 1000 + rng.below(8)))
                .unwrap_or(regional)
        } else {
            regional
        }
    } else {
        node.clone()
    };
    let class = match rng.below(10) {
        0..=3 => Class::Ic,
        4..=5 => Class::Gc,
        6 => Class::Sc,
        7 => Class::St,
        8 => Class::Nl,
        _ => Class::As,
    };
    let (resource, units) = descriptor(class, region, &mut rng);
    let resource =
        serde_json::to_string(&resource).map_err(|e| RecordError::Encoding(e.to_string()))?;
    let host = format!("r{n:07}.dc{region}.example.internal");
    let values = vec![
        value(
            1,
            "DESC",
            format!("{} resource {n} in region {region}", class.description()),
            0,
            at,
        )?,
        value(2, "CP.RESOURCE", resource, 0, at)?,
        value(3, "CP.ENDPOINT", format!("https://{host}/api"), 300, at)?,
        value(
            4,
            "CP.STATUS",
            format!(
                r#"{{"available":{},"heartbeat":{at}}}"#,
                rng.below(units + 1)
            ),
            60,
            at,
        )?,
    ];
    Ok(NewRecord {
        prefix: Some(prefix),
        class,
        owner: None,
        values,
        status: RecordStatus::Active,
    })
}

/// A capacity descriptor for `class` in `region`, and its units.
// why: the seed's models are in the compiled-in device table (tested).
#[allow(clippy::expect_used)]
fn descriptor(class: Class, region: &str, rng: &mut Rng) -> (ResourceDescriptor, u64) {
    let model = rng.pick(&ACCELERATORS);
    let spec = DeviceTable::builtin()
        .find(model)
        .expect("the seed's models are in schema/devices.toml");
    let cards = 8u64 << rng.below(4);
    let cpu_cores = 32u64 << rng.below(3);
    let memory_gib = f64::from(256u32 << rng.below(3));
    let storage_tib = (1 + rng.below(100)) as f64;
    let price = Price {
        amount: (rng.below(20_000) as f64) / 100.0,
        currency: "CNY".into(),
    };
    let devices = vec![Device {
        model: spec.model.clone(),
        count: cards,
        peak_tflops: spec.peak_tflops,
        memory_gib: None,
        serials: None,
    }];
    let mut d = ResourceDescriptor {
        schema: SCHEMA.into(),
        class: class.code().into(),
        region: Some(region.into()),
        unit: Unit::Node,
        units_total: 1,
        devices: None,
        cpu_cores: Some(cpu_cores),
        memory_gib: Some(memory_gib),
        storage_tib: None,
        network_gbps: Some(100.0),
        pue: Some(1.3),
        price_per_unit_hour: Some(price),
        declared_peak_tflops: None,
        link: None,
    };
    match class {
        Class::Ic => {
            d.unit = Unit::Card;
            d.units_total = cards;
            d.devices = Some(devices);
            d.storage_tib = Some(storage_tib);
        }
        Class::Sc => {
            d.units_total = cards / 4;
            d.devices = Some(devices);
        }
        Class::Gc => {
            d.unit = Unit::Core;
            d.units_total = cpu_cores;
        }
        Class::St => {
            d.unit = Unit::Tib;
            d.units_total = storage_tib as u64;
            d.storage_tib = Some(storage_tib);
            d.cpu_cores = None;
            d.memory_gib = None;
        }
        Class::Nl => {
            let other = rng.pick(&REGIONS);
            let bandwidth = 10u64 << rng.below(4);
            d = ResourceDescriptor {
                region: None,
                unit: Unit::Gbps,
                units_total: bandwidth,
                cpu_cores: None,
                memory_gib: None,
                network_gbps: None,
                pue: None,
                link: Some(Link {
                    regions: [region.into(), other.into()],
                    bandwidth_gbps: bandwidth as f64,
                    latency_ms: (1 + rng.below(30)) as f64,
                }),
                ..d
            };
        }
        _ => {
            d.unit = Unit::Instance;
            d.units_total = 1 + rng.below(64);
        }
    }
    let units = d.units_total;
    (d, units)
}

fn value(index: u32, kind: &str, data: String, ttl: u32, at: u64) -> Result<Value, RecordError> {
    Ok(Value {
        index,
        kind: ValueType::parse(kind)?,
        data,
        ttl,
        timestamp: at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_synthetic_descriptor_obeys_the_standard() {
        let root = Prefix::parse("86").unwrap();
        for n in 0..500 {
            let r = synthetic(&root, n, 1).unwrap();
            let data = &r.values[1].data;
            ResourceDescriptor::parse_for(data, r.class).unwrap_or_else(|e| panic!("{data}: {e}"));
        }
    }
}
