//! A JWKS fetched from the identity provider's URL. The keys are fetched at start, again every
//! `auth.jwks_refresh_secs`, and early when a token names a key id that is not known yet, so
//! that the provider can rotate its signing keys without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::AuthError;
use super::keys::{JwksKey, parse_jwks};

/// Maximum duration of one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted, in bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Minimum pause between two fetches requested by unknown key ids, so that tokens with
/// made-up key ids cannot make the service flood the provider.
const MIN_EARLY_REFRESH: Duration = Duration::from_secs(10);
/// Maximum pause between retries after a failed fetch.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// The keys of a JWKS URL and the means to refresh them.
pub(super) struct RemoteJwks {
    url: reqwest::Url,
    client: reqwest::Client,
    refresh: Duration,
    keys: RwLock<Arc<BTreeMap<String, Arc<JwksKey>>>>,
    wake: Notify,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RemoteJwks")
            .field("url", &self.url.as_str())
            .field("key_ids", &self.current().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Parses the JWKS URL: `https`, or `http` only to a loopback host, because keys fetched in
/// clear text over a network could be replaced on the way.
pub(super) fn parse_url(text: &str) -> Result<reqwest::Url, AuthError> {
    let url = reqwest::Url::parse(text)
        .map_err(|error| AuthError::invalid("auth.jwks_url", format!("{text:?}: {error}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(AuthError::invalid(
            "auth.jwks_url",
            format!("{text:?} must use https unless the host is a loopback address"),
        )),
        other => Err(AuthError::invalid(
            "auth.jwks_url",
            format!("{text:?} has the scheme {other:?}; use https"),
        )),
    }
}

impl RemoteJwks {
    pub(super) fn new(url: reqwest::Url, refresh: Duration) -> Result<Self, AuthError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| AuthError::invalid("auth.jwks_url", error.to_string()))?;
        Ok(Self {
            url,
            client,
            refresh,
            keys: RwLock::new(Arc::new(BTreeMap::new())),
            wake: Notify::new(),
        })
    }

    /// Returns the keys of the last successful fetch.
    pub(super) fn current(&self) -> Arc<BTreeMap<String, Arc<JwksKey>>> {
        self.keys
            .read()
            .expect("the JWKS lock is never poisoned")
            .clone()
    }

    /// Returns the key named `kid`. When there is none, it wakes the refresh task for an early
    /// fetch.
    pub(super) fn key(&self, kid: &str) -> Option<Arc<JwksKey>> {
        let key = self.current().get(kid).cloned();
        if key.is_none() {
            self.wake.notify_one();
        }
        key
    }

    /// Fetches the JWKS once and replaces the keys. Returns the number of keys.
    pub(super) async fn fetch(&self) -> Result<usize, String> {
        let response = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the provider answered HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("reading the body failed: {error}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let text = std::str::from_utf8(&body).map_err(|_| "the JWKS is not UTF-8".to_owned())?;
        let keys = parse_jwks(text, "auth.jwks_url", self.url.as_str())
            .map_err(|error| error.to_string())?;
        let count = keys.len();
        let keys = keys
            .into_iter()
            .map(|(kid, key)| (kid, Arc::new(key)))
            .collect();
        *self.keys.write().expect("the JWKS lock is never poisoned") = Arc::new(keys);
        Ok(count)
    }

    /// Refreshes the keys until `shutdown`: every refresh interval, early when a token names
    /// an unknown key id (at most once per [`MIN_EARLY_REFRESH`]), and with a growing pause
    /// after failures. A failed fetch keeps the keys of the last successful one. `primed` is
    /// true when the fetch at start succeeded.
    pub(super) async fn run(self: Arc<Self>, primed: bool, shutdown: CancellationToken) {
        let mut retry = Duration::from_secs(1);
        let mut wait = if primed { self.refresh } else { retry };
        let mut last_fetch = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {
                    let since = last_fetch.elapsed();
                    if since < MIN_EARLY_REFRESH {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(MIN_EARLY_REFRESH - since) => {}
                        }
                    }
                }
            }
            last_fetch = Instant::now();
            wait = match self.fetch().await {
                Ok(count) => {
                    tracing::debug!(url = %self.url, keys = count, "JWKS refreshed");
                    retry = Duration::from_secs(1);
                    self.refresh
                }
                Err(error) => {
                    tracing::warn!(url = %self.url, %error, ?retry, "failed to refresh the JWKS; keeping the last keys");
                    let wait = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                    wait
                }
            };
        }
    }
}
