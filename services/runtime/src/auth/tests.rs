//! Tests with real signed tokens: HS256 with secrets, RS256 and ES256 with the key pairs in
//! `test-rsa-key.pem` and `test-ec-key.pem` (generated with `openssl genpkey`, test-only).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::{Code, Request, Status};

use super::*;
use crate::config::DEVELOPMENT_SECRET;

const RSA_KEY: &[u8] = include_bytes!("test-rsa-key.pem");
const EC_KEY: &[u8] = include_bytes!("test-ec-key.pem");
const OTHER_SECRET: &str = "another-secret-that-is-long-enough-for-hs256";

const DIRECTORY: &str = r#"
[[departments]]
id = "admin-office"
name = "行政部"
head = "li.na"

[[employees]]
id = "li.na"
name = "李娜"
department = "admin-office"
position = "行政主管"
roles = ["department_head", "administration"]
"#;

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Registered and trace claims of a valid token for `sub`, to be edited per case.
fn claims(sub: &str) -> Value {
    json!({
        "sub": sub,
        "name": "Token Name",
        "department": "sales",
        "roles": ["finance"],
        "clearance": "confidential",
        "iss": "trace-dev",
        "aud": "trace",
        "iat": now(),
        "exp": now() + 600,
    })
}

fn hs256(claims: &Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

fn signed(claims: &Value, algorithm: Algorithm, key: &EncodingKey, kid: &str) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_KEY).unwrap()
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_KEY).unwrap()
}

/// Writes a JWKS with the public halves of the test keys, as `rsa-1` and `ec-1`.
fn jwks_file(folder: &tempfile::TempDir) -> String {
    let mut rsa = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).unwrap();
    rsa.common.key_id = Some("rsa-1".to_owned());
    let mut ec = Jwk::from_encoding_key(&ec_key(), Algorithm::ES256).unwrap();
    ec.common.key_id = Some("ec-1".to_owned());
    let path = folder.path().join("jwks.json");
    let set = JwkSet {
        keys: vec![rsa, ec],
    };
    std::fs::write(&path, serde_json::to_string(&set).unwrap()).unwrap();
    path.display().to_string()
}

fn request_with(authorization: &str) -> Request<()> {
    let mut request = Request::new(());
    request
        .metadata_mut()
        .insert(AUTHORIZATION_HEADER, authorization.parse().unwrap());
    request
}

fn development() -> Authenticator {
    Authenticator::new(&AuthSettings::default(), Arc::new(Directory::default())).unwrap()
}

/// Authenticator that accepts only JWKS keys, as production would be configured.
fn jwks_only(folder: &tempfile::TempDir) -> Authenticator {
    let settings = AuthSettings {
        jwks_file: Some(jwks_file(folder)),
        allow_development_secret: false,
        ..AuthSettings::default()
    };
    Authenticator::new(&settings, Arc::new(Directory::default())).unwrap()
}

fn rejection(authenticator: &Authenticator, token: &str) -> Status {
    authenticator
        .authenticate(request_with(&format!("Bearer {token}")))
        .unwrap_err()
}

#[test]
fn directory_wins_over_token_claims() {
    let directory = Arc::new(Directory::parse(DIRECTORY).unwrap());
    let authenticator = Authenticator::new(&AuthSettings::default(), directory).unwrap();
    let token = hs256(&claims("li.na"), DEVELOPMENT_SECRET);

    let request = authenticator
        .authenticate(request_with(&format!("Bearer {token}")))
        .unwrap();

    let context = CallContext::of(&request).unwrap();
    assert_eq!(context.principal.user_id, "li.na");
    assert_eq!(context.principal.display_name, "李娜");
    assert_eq!(context.principal.department, "admin-office");
    assert_eq!(
        context.principal.roles,
        vec!["department_head", "administration"]
    );
    assert_eq!(context.clearance, Some(Clearance::Confidential));
    assert!(uuid::Uuid::try_parse(&context.correlation_id).is_ok());
}

#[test]
fn empty_directory_uses_token_claims() {
    let token = hs256(&claims("wang.fang"), DEVELOPMENT_SECRET);
    let mut request = request_with(&format!("bearer {token}"));
    let correlation_id = uuid::Uuid::now_v7().to_string();
    let metadata = request.metadata_mut();
    metadata.insert(CORRELATION_HEADER, correlation_id.parse().unwrap());
    metadata.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );

    let request = development().authenticate(request).unwrap();

    let context = CallContext::of(&request).unwrap();
    assert_eq!(context.principal.user_id, "wang.fang");
    assert_eq!(context.principal.display_name, "Token Name");
    assert_eq!(context.principal.department, "sales");
    assert_eq!(context.principal.roles, vec!["finance"]);
    assert_eq!(context.clearance, Some(Clearance::Confidential));
    assert_eq!(context.correlation_id, correlation_id);
    assert!(context.traceparent.starts_with("00-0af7"));
}

#[test]
fn user_missing_from_directory_uses_token_claims() {
    let directory = Arc::new(Directory::parse(DIRECTORY).unwrap());
    let authenticator = Authenticator::new(&AuthSettings::default(), directory).unwrap();
    let token = hs256(&claims("wang.fang"), DEVELOPMENT_SECRET);

    let request = authenticator
        .authenticate(request_with(&format!("Bearer {token}")))
        .unwrap();

    let context = CallContext::of(&request).unwrap();
    assert_eq!(context.principal.department, "sales");
}

#[test]
fn minted_token_round_trips() {
    let claims = Claims {
        sub: "li.wei".to_owned(),
        name: "李偉".to_owned(),
        department: "admin-office".to_owned(),
        roles: vec![role::ADMINISTRATION.to_owned()],
        clearance: Some(Clearance::Secret),
    };
    let token = mint_token(&AuthSettings::default(), &claims, Duration::from_secs(60)).unwrap();

    let verified = development().verify(&token).unwrap();

    assert_eq!(verified, claims);
}

#[test]
fn rejected_requests_are_unauthenticated() {
    let authenticator = development();
    let mut without_header = Request::new(());
    without_header
        .metadata_mut()
        .insert("x-trace-user-id", "li.na".parse().unwrap());
    let token = hs256(&claims("li.na"), DEVELOPMENT_SECRET);
    let cases = [
        ("missing header", without_header),
        ("basic scheme", request_with("Basic bGkubmE6cGFzc3dvcmQ=")),
        ("scheme only", request_with("Bearer")),
        ("empty token", request_with("Bearer   ")),
        (
            "two tokens",
            request_with(&format!("Bearer {token} {token}")),
        ),
        ("not a jwt", request_with("Bearer not-a-jwt")),
        (
            "truncated jwt",
            request_with(&format!("Bearer {}", &token[..token.len() / 2])),
        ),
    ];
    for (case, request) in cases {
        let status = authenticator.authenticate(request).unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
    }
}

#[test]
fn invalid_tokens_are_unauthenticated() {
    let authenticator = development();
    let mut expired = claims("li.na");
    expired["exp"] = json!(now() - 120);
    let mut not_yet_valid = claims("li.na");
    not_yet_valid["nbf"] = json!(now() + 120);
    let mut wrong_audience = claims("li.na");
    wrong_audience["aud"] = json!("billing");
    let mut wrong_issuer = claims("li.na");
    wrong_issuer["iss"] = json!("someone-else");
    let mut without_expiry = claims("li.na");
    without_expiry.as_object_mut().unwrap().remove("exp");
    let mut unknown_role = claims("li.na");
    unknown_role["roles"] = json!(["root"]);

    let cases = [
        ("expired", hs256(&expired, DEVELOPMENT_SECRET), "expired"),
        (
            "not yet valid",
            hs256(&not_yet_valid, DEVELOPMENT_SECRET),
            "not valid yet",
        ),
        (
            "wrong audience",
            hs256(&wrong_audience, DEVELOPMENT_SECRET),
            "aud",
        ),
        (
            "wrong issuer",
            hs256(&wrong_issuer, DEVELOPMENT_SECRET),
            "iss",
        ),
        (
            "no expiry",
            hs256(&without_expiry, DEVELOPMENT_SECRET),
            "exp",
        ),
        (
            "wrong signature",
            hs256(&claims("li.na"), OTHER_SECRET),
            "signature",
        ),
        (
            "unknown role",
            hs256(&unknown_role, DEVELOPMENT_SECRET),
            "root",
        ),
        (
            "rs256 without jwks",
            signed(&claims("li.na"), Algorithm::RS256, &rsa_key(), "rsa-1"),
            "kid",
        ),
    ];
    for (case, token, reason) in cases {
        let status = rejection(&authenticator, &token);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
        assert!(
            status.message().contains(reason),
            "{case}: {}",
            status.message()
        );
    }
}

#[test]
fn expiry_within_leeway_is_accepted() {
    let mut recently_expired = claims("li.na");
    recently_expired["exp"] = json!(now() - 5);

    let verified = development().verify(&hs256(&recently_expired, DEVELOPMENT_SECRET));

    assert!(verified.is_ok());
}

#[test]
fn alg_none_is_unauthenticated() {
    use base64::Engine as _;
    let encode =
        |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let header = encode(&json!({"alg": "none", "typ": "JWT"}));
    let payload = encode(&claims("li.na"));

    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let status = rejection(&development(), &token);
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

#[test]
fn jwks_keys_verify_rs256_and_es256() {
    let folder = tempfile::tempdir().unwrap();
    let authenticator = jwks_only(&folder);

    let rs256 = signed(&claims("li.na"), Algorithm::RS256, &rsa_key(), "rsa-1");
    let es256 = signed(&claims("li.na"), Algorithm::ES256, &ec_key(), "ec-1");

    assert_eq!(authenticator.verify(&rs256).unwrap().sub, "li.na");
    assert_eq!(authenticator.verify(&es256).unwrap().sub, "li.na");
    assert!(!authenticator.uses_development_secret());
}

#[test]
fn hs256_rejected_when_only_jwks_configured() {
    let folder = tempfile::tempdir().unwrap();
    let authenticator = jwks_only(&folder);

    let status = rejection(&authenticator, &hs256(&claims("li.na"), DEVELOPMENT_SECRET));

    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("HS256"), "{}", status.message());
}

#[test]
fn algorithm_confusion_is_unauthenticated() {
    let folder = tempfile::tempdir().unwrap();
    let settings = AuthSettings {
        jwks_file: Some(jwks_file(&folder)),
        ..AuthSettings::default()
    };
    let authenticator = Authenticator::new(&settings, Arc::new(Directory::default())).unwrap();
    let rsa_jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).unwrap();
    let public_key_json = serde_json::to_string(&rsa_jwk).unwrap();
    let cases = [
        // An HS256 token keyed with public RSA material, naming the RSA key.
        (
            "hs256 with rsa kid",
            signed(
                &claims("li.na"),
                Algorithm::HS256,
                &EncodingKey::from_secret(public_key_json.as_bytes()).unwrap(),
                "rsa-1",
            ),
        ),
        // An ES256 token naming the RSA key.
        (
            "es256 with rsa kid",
            signed(&claims("li.na"), Algorithm::ES256, &ec_key(), "rsa-1"),
        ),
        ("rs256 without kid", {
            let key = rsa_key();
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims("li.na"), &key).unwrap()
        }),
        (
            "unknown kid",
            signed(&claims("li.na"), Algorithm::RS256, &rsa_key(), "rsa-2"),
        ),
        (
            "rs384",
            signed(&claims("li.na"), Algorithm::RS384, &rsa_key(), "rsa-1"),
        ),
        ("hs512", hs256_with(Algorithm::HS512)),
    ];
    for (case, token) in cases {
        let status = rejection(&authenticator, &token);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
    }
}

fn hs256_with(algorithm: Algorithm) -> String {
    let key = EncodingKey::from_secret(DEVELOPMENT_SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(algorithm), &claims("li.na"), &key).unwrap()
}

#[test]
fn development_secret_disallowed_without_keys_fails() {
    let settings = AuthSettings {
        allow_development_secret: false,
        ..AuthSettings::default()
    };

    let error = Authenticator::new(&settings, Arc::new(Directory::default())).unwrap_err();

    assert!(
        error.to_string().contains("auth.allow_development_secret"),
        "{error}"
    );
}

#[test]
fn secret_file_overrides_secret() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("secret");
    std::fs::write(&path, format!("{OTHER_SECRET}\n")).unwrap();
    let settings = AuthSettings {
        hs256_secret_file: Some(path.display().to_string()),
        allow_development_secret: false,
        ..AuthSettings::default()
    };
    let authenticator = Authenticator::new(&settings, Arc::new(Directory::default())).unwrap();

    let minted = mint_token(&settings, &claims_for("li.na"), Duration::from_secs(60));

    assert!(authenticator.verify(&minted.unwrap()).is_ok());
    assert!(!authenticator.uses_development_secret());
    let status = rejection(&authenticator, &hs256(&claims("li.na"), DEVELOPMENT_SECRET));
    assert_eq!(status.code(), Code::Unauthenticated);
}

fn claims_for(sub: &str) -> Claims {
    Claims {
        sub: sub.to_owned(),
        name: String::new(),
        department: "sales".to_owned(),
        roles: Vec::new(),
        clearance: None,
    }
}

#[test]
fn short_secret_is_rejected() {
    let settings = AuthSettings {
        hs256_secret: "short".to_owned(),
        ..AuthSettings::default()
    };

    let error = Authenticator::new(&settings, Arc::new(Directory::default())).unwrap_err();

    assert!(error.to_string().contains("auth.hs256_secret"), "{error}");
    assert!(!error.to_string().contains("short"), "{error}");
}

#[test]
fn jwks_key_without_kid_is_rejected() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("jwks.json");
    let jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).unwrap();
    std::fs::write(&path, json!({ "keys": [jwk] }).to_string()).unwrap();
    let settings = AuthSettings {
        jwks_file: Some(path.display().to_string()),
        ..AuthSettings::default()
    };

    let error = Authenticator::new(&settings, Arc::new(Directory::default())).unwrap_err();

    assert!(error.to_string().contains("no kid"), "{error}");
}

#[test]
fn messages_and_debug_never_show_secrets() {
    let secret = "a-production-secret-nobody-may-see-0123456789";
    let settings = AuthSettings {
        hs256_secret: secret.to_owned(),
        ..AuthSettings::default()
    };
    let authenticator = Authenticator::new(&settings, Arc::new(Directory::default())).unwrap();
    let mut expired = claims("li.na");
    expired["exp"] = json!(now() - 120);
    let tokens = [
        hs256(&claims("li.na"), DEVELOPMENT_SECRET),
        hs256(&expired, secret),
        hs256(&claims("li.na"), OTHER_SECRET),
        "not-a-jwt-but-still-secret".to_owned(),
    ];

    for token in &tokens {
        let status = rejection(&authenticator, token);
        assert!(
            !status.message().contains(token.as_str()),
            "{}",
            status.message()
        );
        for part in token.split('.') {
            assert!(!status.message().contains(part), "{}", status.message());
        }
        assert!(!status.message().contains(secret), "{}", status.message());
    }
    let debug_output = format!(
        "{settings:?} {authenticator:?} {:?}",
        AuthSettings::default()
    );
    assert!(!debug_output.contains(secret), "{debug_output}");
    assert!(!debug_output.contains(DEVELOPMENT_SECRET), "{debug_output}");
}

#[tokio::test]
async fn interceptor_guards_a_tonic_service() {
    use tokio_stream::wrappers::TcpListenerStream;
    use trace_proto::event::v1::outbox_service_client::OutboxServiceClient;
    use trace_proto::event::v1::outbox_service_server::OutboxServiceServer;

    let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = OutboxServiceServer::with_interceptor(
        crate::outbox::service::OutboxStatus::new(db),
        development().interceptor(),
    );
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut client = OutboxServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();

    let anonymous = client
        .get_event_status(Request::new(Default::default()))
        .await;
    let mut signed_in = Request::new(Default::default());
    crate::context::attach_identity(
        &mut signed_in,
        "li.na",
        "admin-office",
        &[role::AUDIT],
        None,
    );
    let authenticated = client.get_event_status(signed_in).await;

    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
    // The empty event id passes authentication and fails validation in the handler.
    assert_eq!(authenticated.unwrap_err().code(), Code::InvalidArgument);
    server.abort();
}

/// Serves `body` as `application/json` on a free port of 127.0.0.1 and counts the requests.
/// The body can be replaced while the server runs.
struct JwksServer {
    url: String,
    body: Arc<std::sync::Mutex<String>>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let body = Arc::new(std::sync::Mutex::new(body));
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (served, counted) = (body.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = vec![0; 4096];
                let _ = stream.read(&mut buffer).await;
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = served.lock().unwrap().clone();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        Self {
            url,
            body,
            requests,
        }
    }
}

fn jwks_of(keys: Vec<Jwk>) -> String {
    serde_json::to_string(&JwkSet { keys }).unwrap()
}

fn rsa_jwk(kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn ec_jwk(kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(&ec_key(), Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

#[tokio::test]
async fn jwks_url_keys_verify_and_rotate() {
    let server = JwksServer::start(jwks_of(vec![rsa_jwk("rsa-url-1")])).await;
    let settings = AuthSettings {
        jwks_url: Some(server.url.clone()),
        jwks_refresh_secs: 1,
        allow_development_secret: false,
        ..AuthSettings::default()
    };
    let authenticator = Authenticator::new(&settings, Arc::new(Directory::default())).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let refresh = authenticator
        .start_jwks_refresh(shutdown.clone())
        .await
        .expect("a refresh task for the URL");
    let refresher = tokio::spawn(refresh);

    let rs256 = signed(&claims("li.na"), Algorithm::RS256, &rsa_key(), "rsa-url-1");
    assert_eq!(authenticator.verify(&rs256).unwrap().sub, "li.na");

    // The provider rotates to a new key; a token signed with it verifies after a refresh, and
    // the old key stops verifying.
    *server.body.lock().unwrap() = jwks_of(vec![ec_jwk("ec-url-2")]);
    let es256 = signed(&claims("li.na"), Algorithm::ES256, &ec_key(), "ec-url-2");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while authenticator.verify(&es256).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated key was not fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = Status::from(authenticator.verify(&rs256).unwrap_err());
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("kid"), "{}", status.message());
    assert!(server.requests.load(std::sync::atomic::Ordering::SeqCst) >= 2);

    shutdown.cancel();
    refresher.await.unwrap();
}

#[tokio::test]
async fn unreachable_jwks_url_rejects_tokens_until_it_answers() {
    // Bind and drop a listener to get a port that refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = AuthSettings {
        jwks_url: Some(format!("http://127.0.0.1:{port}/jwks.json")),
        allow_development_secret: false,
        ..AuthSettings::default()
    };
    let authenticator = Authenticator::new(&settings, Arc::new(Directory::default())).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    assert!(
        authenticator
            .start_jwks_refresh(shutdown.clone())
            .await
            .is_some()
    );
    let rs256 = signed(&claims("li.na"), Algorithm::RS256, &rsa_key(), "rsa-url-1");
    let status = Status::from(authenticator.verify(&rs256).unwrap_err());
    assert_eq!(status.code(), Code::Unauthenticated);
    shutdown.cancel();
}

#[test]
fn jwks_url_needs_https_off_loopback() {
    let with_url = |url: &str| {
        let settings = AuthSettings {
            jwks_url: Some(url.to_owned()),
            allow_development_secret: false,
            ..AuthSettings::default()
        };
        Authenticator::new(&settings, Arc::new(Directory::default()))
    };
    for accepted in [
        "https://login.example.com/.well-known/jwks.json",
        "http://127.0.0.1:8080/jwks.json",
        "http://localhost/jwks.json",
        "http://[::1]/jwks.json",
    ] {
        assert!(with_url(accepted).is_ok(), "{accepted}");
    }
    for (rejected, expected) in [
        ("http://login.example.com/jwks.json", "https"),
        ("ftp://127.0.0.1/jwks.json", "scheme"),
        ("not a url", "auth.jwks_url"),
    ] {
        let error = with_url(rejected).unwrap_err().to_string();
        assert!(error.contains(expected), "{rejected}: {error}");
        assert!(error.contains("auth.jwks_url"), "{rejected}: {error}");
    }
}
