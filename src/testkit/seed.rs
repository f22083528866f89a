//! Realistic synthetic resource identifiers for benchmarks (`cpid bench
//! seed`): providers and compute, storage and network resources spread over
//! regional and industry prefixes, with capacity descriptors and endpoints.
//! Deterministic for a given count, so runs are comparable.

use crate::ident::identifier::{Class, Prefix};
use crate::ident::record::{RecordError, RecordStatus, Value, ValueType};
use crate::registry::NewRecord;

/// GB/T 2260 province codes used for regional prefixes.
const REGIONS: [&str; 8] = ["11", "31", "44", "51", "32", "33", "42", "61"];
const ACCELERATORS: [(&str, u32); 4] =
    [("A800", 312), ("H800", 989), ("910B", 320), ("MI250", 383)];

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
    let (model, tflops) = rng.pick(&ACCELERATORS);
    let count = 1 << rng.below(4);
    let resource = format!(
        r#"{{"class":"{}","accelerator":"{model}","count":{count},"tflops_fp16":{},"cpu_cores":{},"memory_gib":{},"storage_tib":{},"region":"{region}","price_per_hour":{:.2}}}"#,
        class.code(),
        tflops * count,
        32 << rng.below(3),
        256 << rng.below(3),
        1 + rng.below(100),
        (rng.below(20_000) as f64) / 100.0
    );
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
                rng.below(u64::from(count) + 1)
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

fn value(index: u32, kind: &str, data: String, ttl: u32, at: u64) -> Result<Value, RecordError> {
    Ok(Value {
        index,
        kind: ValueType::parse(kind)?,
        data,
        ttl,
        timestamp: at,
    })
}
