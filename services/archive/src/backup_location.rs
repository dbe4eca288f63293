//! Backup locations by URL: a local folder (`file:///folder`), memory (`memory:///`, for
//! tests), Amazon S3 or an S3-compatible server (`s3://bucket/prefix`), Google Cloud Storage
//! (`gs://bucket/prefix`) and Azure Blob Storage (`az://container/prefix`, or the `abfs`,
//! `adl` and `https` URL forms that `object_store` recognises).
//!
//! Cloud stores are built by `object_store::parse_url_opts`. That function reads no
//! environment variables itself, so this module passes it the standard variables of the
//! URL's cloud (`AWS_*`, `GOOGLE_*` or `AZURE_*`, for example `AWS_ACCESS_KEY_ID`), then the
//! configured options, which win. Messages and the stored URL leave out any user name,
//! password and query string, because a shared-access signature travels in the query.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreScheme, PutPayload};
use url::Url;

use crate::backup::{BackupError, Manifest};

/// A backup location.
#[derive(Clone)]
pub struct BackupLocation {
    store: Arc<dyn ObjectStore>,
    /// The URL without credentials or query string, safe to log and to record in events.
    pub url: String,
    pub medium: &'static str,
}

/// Leaves the store out, because a cloud store's debug form can include its credentials.
impl std::fmt::Debug for BackupLocation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BackupLocation")
            .field("url", &self.url)
            .field("medium", &self.medium)
            .finish_non_exhaustive()
    }
}

/// Returns `url` without user name, password and query string.
pub fn redacted(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        // An unparsable URL is cut at the first '@' or '?' that could start a secret.
        let end = url.find(['@', '?']).unwrap_or(url.len());
        return url[..end].to_owned();
    };
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_query(None);
    parsed.set_fragment(None);
    parsed.to_string()
}

/// Environment variable prefix of the cloud that serves `scheme`.
fn environment_prefix(scheme: &ObjectStoreScheme) -> Option<(&'static str, &'static str)> {
    match scheme {
        ObjectStoreScheme::AmazonS3 => Some(("AWS_", "Amazon S3")),
        ObjectStoreScheme::GoogleCloudStorage => Some(("GOOGLE_", "Google Cloud Storage")),
        ObjectStoreScheme::MicrosoftAzure => Some(("AZURE_", "Azure Blob Storage")),
        _ => None,
    }
}

/// Builder options for a cloud store: the cloud's environment variables, lowercased as the
/// builders' own `from_env` does, then `configured`.
fn cloud_options(
    prefix: &str,
    environment: impl IntoIterator<Item = (String, String)>,
    configured: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut options: BTreeMap<String, String> = environment
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    for (name, value) in configured {
        options.insert(name.to_ascii_lowercase(), value.clone());
    }
    options
}

fn unsupported(url: &str) -> BackupError {
    BackupError::Other(format!(
        "unsupported backup URL {}; use file:///absolute/folder, s3://bucket/prefix, \
         gs://bucket/prefix or az://container/prefix",
        redacted(url)
    ))
}

impl BackupLocation {
    /// Opens a location by URL. `options` are `object_store` builder options for a cloud
    /// store (for example `aws_endpoint` or `aws_region`) and are ignored for a folder.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Self, BackupError> {
        Self::open_with_environment(url, options, std::env::vars())
    }

    /// Opens a location like [`open`](Self::open), with the given environment.
    pub fn open_with_environment(
        url: &str,
        options: &BTreeMap<String, String>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, BackupError> {
        if let Some(folder) = url.strip_prefix("file://") {
            return Self::open_folder(url, folder);
        }
        let parsed = Url::parse(url).map_err(|_| unsupported(url))?;
        let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|_| unsupported(url))?;
        if scheme == ObjectStoreScheme::Memory {
            return Ok(Self {
                store: Arc::new(object_store::memory::InMemory::new()),
                url: redacted(url),
                medium: "memory",
            });
        }
        let (prefix, medium) = environment_prefix(&scheme).ok_or_else(|| unsupported(url))?;
        let options = cloud_options(prefix, environment, options);
        let (store, _) = object_store::parse_url_opts(&parsed, options)?;
        let store: Arc<dyn ObjectStore> = if path.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(PrefixStore::new(store, path))
        };
        Ok(Self {
            store,
            url: redacted(url),
            medium,
        })
    }

    /// Opens `file:///folder`, creating the folder when missing.
    fn open_folder(url: &str, folder: &str) -> Result<Self, BackupError> {
        if !folder.starts_with('/') {
            return Err(BackupError::Other(format!(
                "backup URL {url:?} needs an absolute path"
            )));
        }
        std::fs::create_dir_all(folder).map_err(|error| BackupError::Other(error.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(folder)?;
        Ok(Self {
            store: Arc::new(store),
            url: url.to_owned(),
            medium: "local folder",
        })
    }

    /// Reads every manifest in the location, ordered by first sequence.
    pub async fn manifests(&self) -> Result<Vec<Manifest>, BackupError> {
        let prefix = ObjectPath::from("segments");
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut manifests = Vec::new();
        for object in objects {
            if !object.location.as_ref().ends_with(".manifest.json") {
                continue;
            }
            let bytes = self.store.get(&object.location).await?.bytes().await?;
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|_| BackupError::Tampered {
                    name: object.location.to_string(),
                    reason: "the manifest is not valid JSON".to_owned(),
                })?;
            manifests.push(manifest);
        }
        manifests.sort_by_key(|manifest| manifest.from_sequence);
        Ok(manifests)
    }

    pub(crate) async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        self.store
            .put(&ObjectPath::from(name), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    pub(crate) async fn get(&self, name: &str) -> Result<Vec<u8>, BackupError> {
        match self.store.get(&ObjectPath::from(name)).await {
            Ok(object) => Ok(object.bytes().await?.to_vec()),
            Err(object_store::Error::NotFound { .. }) => Err(BackupError::MissingSegment {
                name: name.to_owned(),
            }),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(url: &str) -> Result<BackupLocation, BackupError> {
        BackupLocation::open_with_environment(url, &BTreeMap::new(), Vec::new())
    }

    #[test]
    fn unknown_scheme_is_rejected_without_secrets() {
        let error = open("ftp://backup:hunter2@files.example/ledger?token=abc")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unsupported backup URL"), "{error}");
        assert!(error.contains("ftp://files.example/ledger"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(!error.contains("token=abc"), "{error}");
    }

    #[test]
    fn plain_https_host_is_rejected() {
        let error = open("https://files.example/ledger")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unsupported backup URL"), "{error}");
    }

    #[test]
    fn relative_folder_is_rejected() {
        let error = open("file://var/backup").unwrap_err().to_string();
        assert!(error.contains("absolute path"), "{error}");
    }

    #[test]
    fn cloud_urls_open_with_their_medium() {
        let cases = [
            ("s3://ledger-backups/archive", "Amazon S3"),
            ("gs://ledger-backups/archive", "Google Cloud Storage"),
            ("az://ledger-backups/archive", "Azure Blob Storage"),
            ("memory:///", "memory"),
        ];
        let options = BTreeMap::from([
            ("azure_storage_account_name".to_owned(), "trace".to_owned()),
            ("aws_region".to_owned(), "eu-central-1".to_owned()),
        ]);
        for (url, medium) in cases {
            let location = BackupLocation::open_with_environment(url, &options, Vec::new())
                .unwrap_or_else(|error| panic!("{url}: {error}"));
            assert_eq!(location.medium, medium);
            assert_eq!(location.url, url);
        }
    }

    #[test]
    fn stored_url_drops_the_query() {
        let url = "az://ledger-backups/archive?sig=secret";
        let options =
            BTreeMap::from([("azure_storage_account_name".to_owned(), "trace".to_owned())]);
        let location = BackupLocation::open_with_environment(url, &options, Vec::new()).unwrap();
        assert_eq!(location.url, "az://ledger-backups/archive");
        assert!(!format!("{location:?}").contains("secret"));
    }

    #[test]
    fn configured_options_override_the_environment() {
        let environment = vec![
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "from-env".to_owned()),
            ("GOOGLE_BUCKET".to_owned(), "other".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        let configured = BTreeMap::from([("AWS_REGION".to_owned(), "eu-west-1".to_owned())]);
        let options = cloud_options("AWS_", environment, &configured);
        let expected = BTreeMap::from([
            ("aws_access_key_id".to_owned(), "from-env".to_owned()),
            ("aws_region".to_owned(), "eu-west-1".to_owned()),
        ]);
        assert_eq!(options, expected);
    }
}
