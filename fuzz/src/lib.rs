//! Fuzz checks over the inputs that reach the trace services from outside. Each module has
//! one `check` function that takes the raw fuzzer input: it must never panic on any input, and
//! it asserts the properties that the code under test promises. The cargo-fuzz targets in
//! `fuzz_targets/` call these functions, and `tests/seeds.rs` runs the checked-in seeds
//! under `corpus/<target>/` through them as ordinary tests.

pub mod config;
pub mod envelope;
pub mod proofs;
pub mod subject;

/// Names of the fuzz targets, which are also the folders of their seed corpora.
pub const TARGETS: [&str; 4] = [
    "envelope_decode",
    "subject_token",
    "proof_verify",
    "config_parse",
];

/// Runs the check of the fuzz target `name` on `data`.
///
/// # Panics
///
/// Panics when `name` is not one of [`TARGETS`], or when the check fails.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "envelope_decode" => envelope::check(data),
        "subject_token" => subject::check(data),
        "proof_verify" => proofs::check(data),
        "config_parse" => config::check(data),
        other => panic!("unknown fuzz target {other:?}"),
    }
}
