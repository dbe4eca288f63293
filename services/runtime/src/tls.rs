//! TLS of the gRPC server from PEM files, with optional client certificates (mutual TLS).

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::{ConfigError, TlsSettings};

fn read(key: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|error| ConfigError::invalid(key, format!("failed to read {path}: {error}")))
}

/// Builds the server TLS configuration; errors name the configuration key.
pub fn server_config(settings: &TlsSettings) -> Result<ServerTlsConfig, ConfigError> {
    let cert = read("tls.cert_file", &settings.cert_file)?;
    let key = read("tls.key_file", &settings.key_file)?;
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(path) = &settings.client_ca_file {
        let ca = read("tls.client_ca_file", path)?;
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(config)
}
