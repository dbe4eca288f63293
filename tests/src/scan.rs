//! Scans of data folders for plaintext, for the tests that show confidential content is
//! stored only sealed.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Returns the files under `root` whose bytes contain `needle`. Files that vanish during the
/// scan are skipped, because SQLite removes its -shm and -wal files when the last connection
/// closes and nats-server replaces store files while it runs.
pub fn files_containing(root: &Path, needle: &[u8]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("failed to list {}", folder.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("failed to read {}", path.display()));
                }
            };
            if bytes.windows(needle.len()).any(|window| window == needle) {
                found.push(path);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_nested_files_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/b")).unwrap();
        std::fs::write(root.path().join("a/b/hit.db"), b"xx marker-91 yy").unwrap();
        std::fs::write(root.path().join("a/miss.db"), b"nothing here").unwrap();
        let found = files_containing(root.path(), b"marker-91").unwrap();
        assert_eq!(found, vec![root.path().join("a/b/hit.db")]);
    }
}
