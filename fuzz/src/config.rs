//! Configuration text: `trace_runtime::config::load` of the archive's configuration and of
//! the settings every service has, their `validate`, and the company directory file
//! (`trace_runtime::directory::Directory::parse`). Arbitrary text must load, or fail with an
//! error, and never panic.

use std::path::PathBuf;
use std::sync::OnceLock;

use trace_archive::config::ArchiveConfig;
use trace_runtime::config::{self, ServiceSettings};
use trace_runtime::directory::Directory;

/// Returns the file that each check rewrites, because `config::load` reads a path. The
/// `.toml` extension selects the TOML parser.
///
/// NOTE: the folder is never removed, because a static is not dropped at exit; each process
/// leaves one small folder in the system temporary folder.
fn config_path() -> &'static PathBuf {
    static FOLDER: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FOLDER.get_or_init(|| {
        let folder = tempfile::tempdir().expect("a temporary folder for the configuration");
        let path = folder.path().join("service.toml");
        (folder, path)
    });
    path
}

/// Loads `data` as a configuration file and as a directory file.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = config_path();
    std::fs::write(path, text.as_bytes()).expect("writing the configuration file");

    if let Ok(archive) = config::load(&ArchiveConfig::default(), Some(path))
        && let Err(error) = archive.validate()
    {
        assert!(!error.to_string().is_empty(), "an error has a message");
    }
    let defaults = ServiceSettings::defaults("document", 50051);
    if let Ok(settings) = config::load(&defaults, Some(path)) {
        let _ = settings.validate();
        let _ = settings.time_zone();
    }

    match Directory::parse(&text) {
        Ok(directory) => {
            for employee in directory.employees() {
                assert!(
                    directory.employee(&employee.id).is_some(),
                    "employee {:?} is found by id",
                    employee.id
                );
            }
        }
        Err(error) => assert!(!error.to_string().is_empty(), "an error has a message"),
    }
}
