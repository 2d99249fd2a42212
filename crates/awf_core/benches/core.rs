//! Benchmarks of awf_core's per-turn work on realistic session states (docs/performance.md).
//!
//! Run with `cargo bench -p awf_core --bench core`. States come from [`awf_sample`] at
//! about 20 KB and 200 KB of canonical JSON; "a turn" is [`next_turn`] applied once. Before
//! measuring, the fixture sizes (state, compressed blobs, patches over 100 turns) are printed.

use std::time::Duration;

use awf_core::canonical::{canonical_bytes, content_hash};
use awf_core::codec::{decode, encode, DataKey, EncodeOptions, NoKeys};
use awf_core::diff::{diff, diff_value};
use awf_core::merge::{merge, MergeRule};
use awf_core::patch::{apply, apply_in_place};
use awf_sample::{game_state, next_turn, turn_of};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::Value;

/// The state sizes measured, with the label used in group names.
const SIZES: [(&str, usize); 2] = [("20KB", 20_000), ("200KB", 200_000)];
/// Seed of the generated states.
const STATE_SEED: u64 = 2024;
/// Seeds of the two devices' turns ("ours" is also the turn that diff and apply use).
const OURS_SEED: u64 = 0xA;
const THEIRS_SEED: u64 = 0xB;

/// Everything one size's benchmarks need, prepared outside the timing.
struct Fixture {
    label: &'static str,
    /// The state at turn t.
    base: Value,
    /// The state at turn t+1, from `OURS_SEED`.
    ours: Value,
    /// The state at turn t+1, from `THEIRS_SEED`.
    theirs: Value,
    /// Canonical bytes of `base`.
    base_bytes: Vec<u8>,
    /// RFC 6902 patch from `base` to `ours`, and its canonical bytes.
    patch: Value,
    patch_bytes: Vec<u8>,
}

impl Fixture {
    fn new(label: &'static str, target: usize) -> Fixture {
        let base = game_state(target, STATE_SEED);
        let turn = turn_of(&base) + 1;
        let mut ours = base.clone();
        next_turn(&mut ours, turn, OURS_SEED);
        let mut theirs = base.clone();
        next_turn(&mut theirs, turn, THEIRS_SEED);
        let base_bytes = canonical_bytes(&base).expect("sample state canonicalizes");
        let patch = diff_value(&base, &ours, &mut awf_core::Budget::default()).unwrap();
        let patch_bytes = canonical_bytes(&patch).expect("patch canonicalizes");
        Fixture {
            label,
            base,
            ours,
            theirs,
            base_bytes,
            patch,
            patch_bytes,
        }
    }

    fn group(&self, what: &str) -> String {
        format!("{what}/{}", self.label)
    }

    /// Prints the sizes the benchmarks work on (they go into docs/performance.md).
    fn report(&self, key: &DataKey) {
        let len = |level: i32| encode(&self.base_bytes, &EncodeOptions::level(level)).unwrap();
        let sealed = encode(&self.base_bytes, &EncodeOptions::level(3).with_key(key)).unwrap();
        let outcome = merge(
            &self.base,
            &self.ours,
            &self.theirs,
            MergeRule::Ours,
            &mut awf_core::Budget::default(),
        )
        .unwrap();
        eprintln!(
            "fixture {}: state {} B; blob zstd-3 {} B, zstd-10 {} B, zstd-3+AES {} B; \
             bench patch {} ops, {} B (zstd-3 blob {} B); merge conflicts: {}",
            self.label,
            self.base_bytes.len(),
            len(3).len(),
            len(10).len(),
            sealed.len(),
            diff(&self.base, &self.ours, &mut awf_core::Budget::default())
                .unwrap()
                .len(),
            self.patch_bytes.len(),
            encode(&self.patch_bytes, &EncodeOptions::level(3))
                .unwrap()
                .len(),
            outcome.conflicts.len(),
        );
        // Patch sizes over a run of turns: one turn differs from the next.
        let mut state = self.base.clone();
        let first = turn_of(&state) + 1;
        let (mut ops, mut bytes, mut blobs) = (Vec::new(), Vec::new(), Vec::new());
        for turn in first..first + 100 {
            let before = state.clone();
            next_turn(&mut state, turn, OURS_SEED);
            let d = diff(&before, &state, &mut awf_core::Budget::default()).unwrap();
            ops.push(d.len());
            let patch = canonical_bytes(
                &diff_value(&before, &state, &mut awf_core::Budget::default()).unwrap(),
            )
            .unwrap();
            blobs.push(encode(&patch, &EncodeOptions::level(3)).unwrap().len());
            bytes.push(patch.len());
        }
        eprintln!(
            "fixture {}: 100 turns: ops {}; patch bytes {}; zstd-3 patch blob bytes {}; \
             state after {} B",
            self.label,
            summary(&mut ops),
            summary(&mut bytes),
            summary(&mut blobs),
            canonical_bytes(&state).unwrap().len(),
        );
    }
}

/// `median (min..max, mean m)` of a sample.
fn summary(xs: &mut [usize]) -> String {
    xs.sort_unstable();
    let mean = xs.iter().sum::<usize>() as f64 / xs.len() as f64;
    format!(
        "median {} (min {}, p90 {}, max {}, mean {:.0})",
        xs[xs.len() / 2],
        xs[0],
        xs[xs.len() * 9 / 10],
        xs[xs.len() - 1],
        mean
    )
}

fn benches(c: &mut Criterion) {
    let key = DataKey::from_bytes("bench-key", &[7u8; 32]).expect("32-byte key");
    for (label, target) in SIZES {
        let f = Fixture::new(label, target);
        f.report(&key);
        let state_len = f.base_bytes.len() as u64;

        let mut g = c.benchmark_group(f.group("canonical"));
        g.throughput(Throughput::Bytes(state_len));
        g.bench_function("canonical_bytes", |b| {
            b.iter(|| canonical_bytes(black_box(&f.base)).unwrap())
        });
        g.finish();

        let mut g = c.benchmark_group(f.group("content_hash"));
        g.throughput(Throughput::Bytes(state_len));
        g.bench_function("content_hash", |b| {
            b.iter(|| content_hash(black_box(&f.base)).unwrap())
        });
        g.finish();

        let mut g = c.benchmark_group(f.group("diff"));
        g.throughput(Throughput::Bytes(state_len));
        g.bench_function("diff_value(t, t+1)", |b| {
            b.iter(|| {
                diff_value(
                    black_box(&f.base),
                    black_box(&f.ours),
                    &mut awf_core::Budget::default(),
                )
                .unwrap()
            })
        });
        g.finish();

        // In-place apply costs what the patch touches, so its throughput is in patch bytes;
        // apply() clones the whole state first, so its throughput is in state bytes.
        let mut g = c.benchmark_group(f.group("apply"));
        g.throughput(Throughput::Bytes(f.patch_bytes.len() as u64));
        g.bench_function("apply_in_place", |b| {
            b.iter_batched(
                || f.base.clone(),
                |mut doc| {
                    apply_in_place(
                        &mut doc,
                        black_box(&f.patch),
                        &mut awf_core::Budget::default(),
                    )
                    .unwrap();
                    doc
                },
                BatchSize::SmallInput,
            )
        });
        g.throughput(Throughput::Bytes(state_len));
        g.bench_function("apply (clone + patch)", |b| {
            b.iter(|| {
                apply(
                    black_box(&f.base),
                    black_box(&f.patch),
                    &mut awf_core::Budget::default(),
                )
                .unwrap()
            })
        });
        g.finish();

        let mut g = c.benchmark_group(f.group("merge"));
        g.throughput(Throughput::Bytes(state_len));
        g.bench_function("three_way", |b| {
            b.iter(|| {
                merge(
                    black_box(&f.base),
                    black_box(&f.ours),
                    black_box(&f.theirs),
                    MergeRule::Ours,
                    &mut awf_core::Budget::default(),
                )
                .unwrap()
            })
        });
        g.finish();

        let variants = [
            ("zstd3", EncodeOptions::level(3)),
            ("zstd10", EncodeOptions::level(10)),
            ("zstd3+aes", EncodeOptions::level(3).with_key(&key)),
        ];
        let mut g = c.benchmark_group(f.group("encode"));
        g.throughput(Throughput::Bytes(state_len));
        for (name, opts) in &variants {
            g.bench_function(*name, |b| {
                b.iter(|| encode(black_box(&f.base_bytes), opts).unwrap())
            });
        }
        g.finish();

        let mut g = c.benchmark_group(f.group("decode"));
        g.throughput(Throughput::Bytes(state_len));
        for (name, opts) in &variants {
            let blob = encode(&f.base_bytes, opts).unwrap();
            g.bench_function(*name, |b| {
                if opts.key.is_some() {
                    b.iter(|| decode(black_box(&blob), &key).unwrap())
                } else {
                    b.iter(|| decode(black_box(&blob), &NoKeys).unwrap())
                }
            });
        }
        g.finish();

        let mut g = c.benchmark_group(f.group("patch_encode"));
        g.throughput(Throughput::Bytes(f.patch_bytes.len() as u64));
        g.bench_function("zstd3", |b| {
            b.iter(|| encode(black_box(&f.patch_bytes), &EncodeOptions::level(3)).unwrap())
        });
        g.bench_function("canonical+zstd3", |b| {
            b.iter(|| {
                let bytes = canonical_bytes(black_box(&f.patch)).unwrap();
                encode(&bytes, &EncodeOptions::level(3)).unwrap()
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = core;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = benches
}
criterion_main!(core);
