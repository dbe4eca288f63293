//! Content-addressed blob storage through `object_store`: a local folder by default, memory in
//! tests. Blobs live at `sha256/<first two hex digits>/<hex digest>`.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, PutPayload, path::Path};
use sha2::{Digest, Sha256};
use trace_proto::common::v1::BlobRef;

/// Checks a blob store URL without opening it; returns the reason when it is not supported.
pub fn parse_url(url: &str) -> Result<(), String> {
    if url.starts_with("memory://") {
        return Ok(());
    }
    match url.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => Ok(()),
        Some(_) => Err("a file:// URL needs an absolute path (file:///folder)".to_owned()),
        None => Err(format!(
            "unsupported blob store URL {url:?}; use file:///folder or memory:///"
        )),
    }
}

/// A content-addressed blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl BlobStore {
    /// Opens the store at `url`, creating a local folder when missing.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        parse_url(url).map_err(anyhow::Error::msg)?;
        let store: Arc<dyn ObjectStore> = match url.strip_prefix("file://") {
            Some(folder) => {
                std::fs::create_dir_all(folder)?;
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
                    folder,
                )?)
            }
            None => Arc::new(object_store::memory::InMemory::new()),
        };
        Ok(Self { store })
    }

    /// Stores `content` unless a blob with the same digest exists, and returns its reference.
    pub async fn put(&self, content: Bytes, media_type: &str) -> anyhow::Result<BlobRef> {
        let sha256 = sha256_hex(&content);
        let path = blob_path(&sha256);
        let size_bytes = content.len() as u64;
        if self.store.head(&path).await.is_err() {
            self.store.put(&path, PutPayload::from(content)).await?;
        }
        Ok(BlobRef {
            sha256,
            size_bytes,
            media_type: media_type.to_owned(),
        })
    }

    /// Reads a blob and checks that its bytes still match the digest.
    pub async fn get(&self, sha256: &str) -> anyhow::Result<Bytes> {
        let content = self.store.get(&blob_path(sha256)).await?.bytes().await?;
        let actual = sha256_hex(&content);
        anyhow::ensure!(
            actual == sha256,
            "blob {sha256} is corrupt: its content hashes to {actual}"
        );
        Ok(content)
    }
}

impl BlobStore {
    /// Stores the sealed content of `record_id` whose plaintext hashes to `sha256`, at
    /// `sealed/<record id>/<sha256>`. Sealed values are per record, because each binds its
    /// record id, so equal plaintexts of two records are two objects.
    pub async fn put_sealed(
        &self,
        record_id: &str,
        sha256: &str,
        sealed: Vec<u8>,
    ) -> anyhow::Result<()> {
        let path = sealed_path(record_id, sha256)?;
        self.store.put(&path, PutPayload::from(sealed)).await?;
        Ok(())
    }

    /// Reads the sealed content of `record_id` stored by [`Self::put_sealed`].
    pub async fn get_sealed(&self, record_id: &str, sha256: &str) -> anyhow::Result<Bytes> {
        let path = sealed_path(record_id, sha256)?;
        Ok(self.store.get(&path).await?.bytes().await?)
    }

    /// Lists every sealed object as (record id, sha256), for key rotation.
    pub async fn list_sealed(&self) -> anyhow::Result<Vec<(String, String)>> {
        use futures::TryStreamExt;
        let prefix = Path::from(SEALED_PREFIX);
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut found = Vec::with_capacity(objects.len());
        for object in objects {
            let parts: Vec<_> = object.location.parts().collect();
            if let [_, record, sha] = parts.as_slice() {
                found.push((record.as_ref().to_owned(), sha.as_ref().to_owned()));
            }
        }
        found.sort();
        Ok(found)
    }
}

/// Folder of sealed objects.
const SEALED_PREFIX: &str = "sealed";

fn sealed_path(record_id: &str, sha256: &str) -> anyhow::Result<Path> {
    let safe = |part: &str| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    anyhow::ensure!(
        safe(record_id) && safe(sha256),
        "invalid sealed object name {record_id:?}/{sha256:?}"
    );
    Ok(Path::from(format!("{SEALED_PREFIX}/{record_id}/{sha256}")))
}

fn blob_path(sha256: &str) -> Path {
    Path::from(format!(
        "sha256/{}/{sha256}",
        &sha256[..2.min(sha256.len())]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_then_get_returns_same_bytes() {
        let folder = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&format!("file://{}", folder.path().display())).unwrap();
        let blob = store
            .put(Bytes::from_static("留痕".as_bytes()), "text/plain")
            .await
            .unwrap();
        assert_eq!(blob.size_bytes, 6);
        assert_eq!(blob.sha256, sha256_hex("留痕".as_bytes()));
        assert_eq!(
            store.get(&blob.sha256).await.unwrap(),
            Bytes::from_static("留痕".as_bytes())
        );
    }

    #[tokio::test]
    async fn corrupted_blob_is_detected() {
        let folder = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&format!("file://{}", folder.path().display())).unwrap();
        let blob = store
            .put(Bytes::from_static(b"original"), "text/plain")
            .await
            .unwrap();
        let file = folder
            .path()
            .join("sha256")
            .join(&blob.sha256[..2])
            .join(&blob.sha256);
        std::fs::write(file, b"tampered").unwrap();
        assert!(store.get(&blob.sha256).await.is_err());
    }

    #[test]
    fn relative_file_url_is_rejected() {
        assert!(parse_url("file://var/blobs").is_err());
        assert!(parse_url("s3://bucket").is_err());
    }
}
