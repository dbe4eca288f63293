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

/// Lists the checked-in seeds of the fuzz target `name`: the files of `corpus/<name>/`,
/// sorted by path.
///
/// # Panics
///
/// Panics when the folder cannot be read.
pub fn seed_files(name: &str) -> Vec<std::path::PathBuf> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", folder.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

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
