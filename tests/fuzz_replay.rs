//! The fuzz targets' properties under plain `cargo test` (stable toolchain, no libFuzzer):
//! every committed corpus file under `fuzz/corpus/<target>/` is replayed (seeds and the
//! regression inputs of fixed crashes), then a bounded, deterministic random-mutation loop runs
//! from those seeds. Coverage-guided fuzzing proper is `scripts/fuzz.sh` (docs/FUZZING.md).

// A test harness: failing loudly on a broken property is its job.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

/// Mutated inputs per target; about a second in total in a debug build.
const RANDOM_RUNS: usize = 3000;

/// Tokens spliced into inputs, from `fuzz/dict/scim.dict`.
fn dictionary() -> Vec<Vec<u8>> {
    let text = include_str!("../fuzz/dict/scim.dict");
    text.lines()
        .filter(|l| l.starts_with('"') && l.ends_with('"') && l.len() >= 2)
        .map(|l| {
            l[1..l.len() - 1]
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
                .into_bytes()
        })
        .collect()
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&p).expect("corpus file"))
        })
        .collect()
}

/// xorshift64*: deterministic, so a failure reproduces from the printed input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, dict: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(7) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, rng.next() as u8),
            2 if at < input.len() => {
                let end = (at + 1 + rng.below(8)).min(input.len());
                input.drain(at..end);
            }
            3 => {
                let word = &dict[rng.below(dict.len())];
                input.splice(at..at, word.iter().copied());
            }
            4 => input.truncate(at),
            5 if !input.is_empty() => {
                // Duplicate a slice: repeats brackets, operators and nesting.
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(16)).min(input.len());
                let piece: Vec<u8> = input[start..end].to_vec();
                input.splice(at..at, piece);
            }
            _ => {
                let b = [
                    b'(', b')', b'[', b']', b'"', b'.', b':', b' ', b'{', b'}', b',', 0, 0xff,
                ];
                input.insert(at, b[rng.below(b.len())]);
            }
        }
    }
}

fn run(target: &str, check: fn(&[u8])) {
    let seeds = corpus(target);
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} has seeds");
    for (name, data) in &seeds {
        let r = std::panic::catch_unwind(|| check(data));
        assert!(r.is_ok(), "fuzz/corpus/{target}/{name} fails");
    }
    let dict = dictionary();
    let mut rng = Rng(0x5eed_0000 ^ (target.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for i in 0..RANDOM_RUNS {
        let mut input = seeds[i % seeds.len()].1.clone();
        mutate(&mut rng, &mut input, &dict);
        let r = std::panic::catch_unwind(|| check(&input));
        assert!(
            r.is_ok(),
            "{target}: mutated input {i} panics: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

#[test]
fn fuzz_properties_hold_on_the_corpus_and_random_mutations() {
    for (target, check) in checks::TARGETS {
        run(target, check);
    }
}
