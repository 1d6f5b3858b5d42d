//! The stable stand-in for `cargo +nightly fuzz run`: a fuzz target body run
//! over its committed seed corpus, then over deterministic mutations of it.
//! Each protocol crate's `tests/fuzz_smoke.rs` calls [`smoke`] per target.

use std::fs;
use std::path::Path;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One to four random edits of `input`: bit flips, random or `magic` bytes,
/// inserts, deletes, truncation, duplicated runs, splices with another seed,
/// 32-bit edge values.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], magic: &[u8], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = if rng.below(2) == 0 || magic.is_empty() {
                    rng.next() as u8
                } else {
                    magic[rng.below(magic.len())]
                };
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                input.drain(i..i + n);
            }
            4 if len > 0 => {
                input.truncate(rng.below(len));
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let copy = input[i..i + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, copy);
            }
            6 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ if len >= 4 => {
                // Overwrite a 32-bit field with an edge value.
                let i = rng.below(len - 3);
                let v: u32 =
                    [0, 1, 0x7f, 0x80, 0xffff, 0xff_ffff, 0x7fff_ffff, u32::MAX][rng.below(8)];
                input[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            _ => input.push(rng.next() as u8),
        }
    }
}

/// A fuzz target's body, as the cargo-fuzz target and the smoke test call it.
pub type Target = fn(&[u8]);

/// A named seed file of a corpus.
pub type Seed = (&'static str, Vec<u8>);

/// `<crate>/fuzz/corpus/<target>`, for a crate's `CARGO_MANIFEST_DIR`.
pub fn corpus_dir(manifest_dir: &str, target: &str) -> std::path::PathBuf {
    Path::new(manifest_dir).join("fuzz/corpus").join(target)
}

/// [`smoke`] for each of a crate's targets: (name, body, rounds, seed),
/// over their committed corpora.
pub fn smoke_all(manifest_dir: &str, targets: &[(&str, Target, usize, u64)], magic: &[u8]) {
    for &(name, target, rounds, seed) in targets {
        smoke(
            name,
            &corpus_dir(manifest_dir, name),
            target,
            rounds,
            seed,
            magic,
        );
    }
}

/// Writes each target's seeds into its corpus directory (the generators
/// of the `#[ignore]`d `write_seed_corpus` tests).
pub fn write_corpus(manifest_dir: &str, sets: Vec<(&str, Vec<Seed>)>) {
    for (target, seeds) in sets {
        let dir = corpus_dir(manifest_dir, target);
        fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// Runs `target` (the fuzz target `name`) over every file in `corpus_dir`
/// (at least 3), then over `rounds` inputs: a seed mutated, or pure noise
/// every tenth round, mutated too. `seed` picks the mutations (the same
/// seed, the same inputs); `magic` is bytes worth planting for the
/// protocol (markers, type ids, lengths). A property that fails panics
/// inside `target`.
pub fn smoke(
    name: &str,
    corpus_dir: &Path,
    target: fn(&[u8]),
    rounds: usize,
    seed: u64,
    magic: &[u8],
) {
    let mut seeds: Vec<Vec<u8>> = fs::read_dir(corpus_dir)
        .unwrap_or_else(|e| panic!("corpus for {name} ({}): {e}", corpus_dir.display()))
        .map(|e| fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 3, "{name}: seed corpus too small");
    for seed in &seeds {
        target(seed);
    }
    // xorshift never leaves 0.
    let mut rng = Rng((0x9E37_79B9_7F4A_7C15 ^ seed).max(1));
    for round in 0..rounds {
        let mut input = if round % 10 == 9 {
            // Pure noise now and then.
            (0..rng.below(512)).map(|_| rng.next() as u8).collect()
        } else {
            seeds[rng.below(seeds.len())].clone()
        };
        mutate(&mut rng, &seeds, magic, &mut input);
        target(&input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic() {
        let seeds = vec![vec![1, 2, 3, 4, 5, 6], vec![9; 40]];
        let run = |s: u64| {
            let mut rng = Rng(s);
            let mut outs = Vec::new();
            for i in 0..200 {
                let mut input = seeds[i % 2].clone();
                mutate(&mut rng, &seeds, &[0xAA], &mut input);
                outs.push(input);
            }
            outs
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn smoke_runs_every_seed_and_round() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("rill-fuzz-smoke-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for (n, bytes) in [
            ("a", &b"abc"[..]),
            ("b", b""),
            ("c", b"\x00\x01\x02\x03\x04"),
        ] {
            fs::write(dir.join(n), bytes).unwrap();
        }
        let count = |_: &[u8]| {
            CALLS.fetch_add(1, Ordering::Relaxed);
        };
        smoke("t", &dir, count, 50, 1, b"\xff");
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(CALLS.load(Ordering::Relaxed), 3 + 50);
    }
}
