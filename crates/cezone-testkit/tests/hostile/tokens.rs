//! Only the registry signs tokens: the other services verify with its public keys, fetched
//! from it; a service gets its own token from the registry for the service secret, which
//! signs nothing itself; and a rotated key reaches every service without a restart, while
//! tokens of the key it replaced keep working.

use std::time::Duration;

use cezone_platform::access::auth::keyset::KeySet;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;
use cezone_proto::surveys::v1 as psv;

use super::*;

async fn signing_keys(url: &str) -> Vec<pr::SigningKey> {
    // No token: the public keys are public.
    RegistryServiceClient::new(cezone_client::connect_plain(url).await.unwrap())
        .get_signing_keys(pr::GetSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys
}

/// A call any signed-in caller may make, to the surveys service (which verifies with the
/// keys it fetched from the registry).
async fn read_lock(s: &Services, bearer: &Bearer) -> Result<(), tonic::Status> {
    let channel = cezone_client::connect_plain(&s.surveys.url())
        .await
        .unwrap();
    sv::client(bearer.attach(channel))
        .get_period_lock(psv::GetPeriodLockRequest { period: 2013 })
        .await
        .map(|_| ())
}

async fn service_token(s: &Services, service: &str, secret: &str) -> Result<String, tonic::Status> {
    RegistryServiceClient::new(
        cezone_client::connect_plain(&s.registry.url())
            .await
            .unwrap(),
    )
    .issue_service_token(pr::IssueServiceTokenRequest {
        service: service.into(),
        secret: secret.into(),
    })
    .await
    .map(|r| r.into_inner().access_token)
}

pub async fn only_the_registry_signs_and_a_rotated_key_reaches_every_service(backend: Backend) {
    let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
        &cezone_platform::testing::fresh_bus_prefix(),
    ))
    .await
    .unwrap();
    let mut env = test_env(backend).await;
    // This deployment's own signing keys, made by the registry at its start; the other
    // services fetch the public keys from it (no public key file).
    let key_file = env.dir.path().join("registry/token-signing-keys.json");
    env.settings.auth.signing_keys_file = key_file.clone();
    env.settings.auth.public_keys_file = std::path::PathBuf::new();
    env.settings.auth.keys_refresh_seconds = 1;
    let services = Services::start(&env.settings, bus).await.unwrap();
    let secret = cezone_platform::testing::test_secret();

    // The registry publishes the public half of the key it made, and nothing else.
    let published = signing_keys(&services.registry.url()).await;
    let set = KeySet::read(&key_file).unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].kid, set.keys[0].kid);
    assert_eq!(published[0].algorithm, "EdDSA");
    assert_eq!(published[0].public_key, set.keys[0].public().unwrap().x);
    assert!(published[0].active_from.ends_with('Z'), "{published:?}");

    // The office's token, signed with the registry's key, is accepted by the surveys service.
    let office = cezone_platform::testing::bearer_for(&services.settings, Role::EvaluationOffice);
    read_lock(&services, &office).await.unwrap();
    // Services reach each other with tokens the registry issued them: the demo load makes
    // evidence and surveys ask the registry for the org tree and framework.
    services
        .load(&cezone_testkit::district(1, 3, 5, 7))
        .await
        .unwrap();

    // A service's token for the secret; refused for a wrong secret or a name that is no service.
    let token = service_token(&services, "scoring", secret).await.unwrap();
    let claims: serde_json::Value = {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert_eq!(claims["role"], "service");
    assert_eq!(claims["sub"], "scoring");
    read_lock(&services, &Bearer::token(&token).unwrap())
        .await
        .unwrap();
    let wrong = service_token(&services, "scoring", &"x".repeat(64))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    assert!(wrong.message().contains("service secret"), "{wrong:?}");
    let stranger = service_token(&services, "mallory", secret)
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::InvalidArgument, "{stranger:?}");
    assert!(stranger.message().contains("service"), "{stranger:?}");

    // The secret itself signs nothing: a token made with it is refused.
    let now = chrono::Utc::now().timestamp();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({
            "sub": "mallory", "role": "evaluation_office", "iss": "cezone",
            "iat": now, "exp": now + 600, "jti": "x"
        }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let refused = read_lock(&services, &Bearer::token(&forged).unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // A token of the first key, minted now and first shown after the rotation.
    let old_keys = Keys::load_existing(&services.settings.auth).unwrap();
    let old_token = old_keys
        .issue(&p(Role::Inspector, None, None), 600)
        .unwrap();

    // Rotation, as `cezone keys rotate` does it: the next key signs in 3 seconds.
    let mut set = KeySet::read(&key_file).unwrap();
    let now = chrono::Utc::now().timestamp();
    let (next, dropped) = set.rotate(now, now + 3, 3600).unwrap();
    assert!(dropped.is_empty());
    set.write(&key_file).unwrap();
    // The registry re-reads the file and publishes both keys before the next one signs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while signing_keys(&services.registry.url()).await.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new key was never published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep_until(
        tokio::time::Instant::now() + Duration::from_secs((next.active_from - now + 1) as u64),
    )
    .await;
    // Tokens from now on carry the new key's id, and the surveys service accepts them.
    let new_keys = Keys::load_existing(&services.settings.auth).unwrap();
    let new_token = new_keys
        .issue(&p(Role::Inspector, None, None), 600)
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        Some(next.kid.clone())
    );
    read_lock(&services, &Bearer::token(&new_token).unwrap())
        .await
        .unwrap();
    // The key it replaced still verifies its tokens.
    read_lock(&services, &Bearer::token(&old_token).unwrap())
        .await
        .unwrap();
    // And the registry's own sign-in answers now carry the new key too.
    let service = service_token(&services, "evidence", secret).await.unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&service).unwrap().kid,
        Some(next.kid)
    );
    services.stop().await;
}
