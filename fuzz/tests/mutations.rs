//! Runs each fuzz target's check on inputs mutated from its checked-in seeds, so that every
//! `make test` fuzzes each target for a short while on the stable toolchain. The mutations
//! are random and not guided by coverage, so these runs only complement libFuzzer's in
//! `make fuzz`, whose sanitizer build is too slow for CI.
//!
//! Each run draws a new seed for its mutations and prints it to standard error past the
//! test harness's capture, so that every log has it. `TRACE_FUZZ_SEED` replays a run, and
//! `TRACE_FUZZ_ROUNDS` sets the inputs tried per target. An input whose check fails is
//! written to `target/fuzz-mutations/<target>/` before the test fails, ready to become a
//! seed in `corpus/<target>/` once the code is fixed.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Inputs tried per target when `TRACE_FUZZ_ROUNDS` is not set.
const DEFAULT_ROUNDS: u64 = 2_000;

/// Each input is a seed with one up to this many mutations applied. A mutation inserts,
/// removes or swaps bytes, or changes one byte.
const MAX_MUTATIONS: u64 = 8;

/// Maximum input length in bytes, as libFuzzer's default `-max_len`.
const MAX_LEN: usize = 4_096;

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|error| panic!("{name}={value:?} is not a whole number: {error}")),
    )
}

/// Returns the folder that keeps the inputs that failed a check,
/// `target/fuzz-mutations/<target>/`.
fn failure_folder(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("fuzz-mutations")
        .join(target)
}

fn run_mutations(target: &str) {
    let seed = env_number("TRACE_FUZZ_SEED").unwrap_or_else(|| {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970");
        since_epoch.as_nanos() as u64
    });
    let rounds = env_number("TRACE_FUZZ_ROUNDS").unwrap_or(DEFAULT_ROUNDS);
    // The harness captures `eprintln!` and shows it only for a failed test.
    writeln!(
        std::io::stderr(),
        "{target}: {rounds} mutated inputs, replay with TRACE_FUZZ_SEED={seed}"
    )
    .expect("standard error written");
    let seeds: Vec<Vec<u8>> = trace_fuzz::seed_files(target)
        .iter()
        .map(|file| std::fs::read(file).expect("a readable seed"))
        .collect();
    assert!(!seeds.is_empty(), "corpus/{target} has no seeds");

    let mut session = mutatis::Session::new().seed(seed);
    let mut changed = 0u64;
    for round in 0..rounds {
        // Every seed gets each count of mutations in turn, whatever the number of seeds.
        let count = seeds.len() as u64;
        let original = &seeds[(round % count) as usize];
        let mutations = (round / count) % MAX_MUTATIONS + 1;
        let mut input = original.clone();
        for _ in 0..mutations {
            session
                .mutate(&mut input)
                .expect("a mutation of a byte vector");
        }
        input.truncate(MAX_LEN);
        if input != *original {
            changed += 1;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| trace_fuzz::run(target, &input)));
        if let Err(panic) = outcome {
            let folder = failure_folder(target);
            std::fs::create_dir_all(&folder).expect("a folder for the failing input");
            let path = folder.join(format!("seed-{seed}-round-{round}"));
            std::fs::write(&path, &input).expect("the failing input written");
            writeln!(
                std::io::stderr(),
                "{target}: round {round} of TRACE_FUZZ_SEED={seed} failed; input in {}",
                path.display()
            )
            .expect("standard error written");
            resume_unwind(panic);
        }
    }
    // Most inputs must differ from their seed, or the run only repeated the seeds test.
    assert!(
        rounds == 0 || changed * 2 > rounds,
        "{target}: only {changed} of {rounds} inputs differed from their seed"
    );
}

#[test]
fn envelope_decode_mutations() {
    run_mutations("envelope_decode");
}

#[test]
fn subject_token_mutations() {
    run_mutations("subject_token");
}

#[test]
fn proof_verify_mutations() {
    run_mutations("proof_verify");
}

#[test]
fn config_parse_mutations() {
    run_mutations("config_parse");
}
