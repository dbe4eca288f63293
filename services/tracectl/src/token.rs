//! `tracectl token`: mints an HS256 bearer token for an employee of the company directory.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use trace_runtime::auth::{Claims, mint_token};
use trace_runtime::config::AuthSettings;
use trace_runtime::directory::Directory;

/// Options of `tracectl token`: user, lifetime, secret file, issuer and audience.
#[derive(Debug)]
pub struct TokenOptions {
    /// User id; required, so that a token is never minted for a default user by accident.
    pub user_id: Option<String>,
    pub ttl: Duration,
    /// HS256 secret file; `None` signs with the public development secret.
    pub secret_file: Option<String>,
    pub issuer: String,
    pub audience: String,
    pub directory: PathBuf,
}

/// Prints the token on stdout, alone or as JSON with the user and expiry.
pub fn print(options: &TokenOptions, json: bool) -> anyhow::Result<bool> {
    let token = mint(options)?;
    if json {
        let output = serde_json::json!({
            "token": token,
            "user_id": options.user_id,
            "expires_in_secs": options.ttl.as_secs(),
        });
        out!("{output}");
    } else {
        out!("{token}");
    }
    Ok(true)
}

/// Mints the token, taking name, department and roles from the directory.
pub fn mint(options: &TokenOptions) -> anyhow::Result<String> {
    let user_id = options
        .user_id
        .as_deref()
        .context("missing --user: name the user to mint a token for")?;
    if options.ttl.is_zero() {
        anyhow::bail!("invalid --ttl-secs 0: a token must be valid for at least one second");
    }
    let directory = Directory::load(&options.directory)?;
    let employee = directory.employee(user_id).with_context(|| {
        format!(
            "user {user_id} not found in directory {}",
            options.directory.display()
        )
    })?;

    let claims = Claims {
        sub: employee.id.clone(),
        name: employee.name.clone(),
        department: employee.department.clone(),
        roles: employee.roles.clone(),
        clearance: None,
    };
    let settings = AuthSettings {
        issuer: options.issuer.clone(),
        audience: options.audience.clone(),
        hs256_secret_file: options.secret_file.clone(),
        ..AuthSettings::default()
    };
    Ok(mint_token(&settings, &claims, options.ttl)?)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use trace_runtime::auth::Authenticator;

    use super::*;

    fn options(user_id: &str) -> TokenOptions {
        TokenOptions {
            user_id: Some(user_id.to_owned()),
            ttl: Duration::from_secs(60),
            secret_file: None,
            issuer: "trace-dev".to_owned(),
            audience: "trace".to_owned(),
            directory: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/local/directory.toml"),
        }
    }

    #[test]
    fn token_carries_directory_identity() {
        let token = mint(&options("li.na")).unwrap();

        let claims = Authenticator::new(&AuthSettings::default(), Arc::default())
            .unwrap()
            .verify(&token)
            .unwrap();

        assert_eq!(claims.sub, "li.na");
        assert_eq!(claims.department, "admin-office");
        assert!(!claims.roles.is_empty());
    }

    #[test]
    fn unknown_user_is_named() {
        let error = mint(&options("nobody.here")).unwrap_err().to_string();

        assert!(error.contains("nobody.here"), "{error}");
    }

    #[test]
    fn missing_user_is_an_error() {
        let mut options = options("li.na");
        options.user_id = None;

        let error = mint(&options).unwrap_err().to_string();

        assert!(error.contains("--user"), "{error}");
    }
}
