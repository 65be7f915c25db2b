//! Mutual TLS from configuration: the services call each other with their certificates, and a
//! caller without a certificate from the deployment's CA, or without TLS at all, gets nothing.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::*;

/// A CA, and one certificate it signs for 127.0.0.1 used by every process of the test.
fn write_pki(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "cezone test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "cezone");
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("cezone.pem"),
        dir.join("cezone.key"),
        dir.join("ca.pem"),
    );
    std::fs::write(&paths.0, leaf.pem()).unwrap();
    std::fs::write(&paths.1, key.serialize_pem()).unwrap();
    std::fs::write(&paths.2, ca.pem()).unwrap();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_call_each_other_over_mutual_tls_and_refuse_callers_without_a_certificate() {
    let bus = cezone_bus::connect(&cezone_platform::testing::in_process_bus(
        &cezone_platform::testing::fresh_bus_prefix(),
    ))
    .await
    .unwrap();
    let mut env = test_env(Backend::Sqlite).await;
    let (cert, key, ca) = write_pki(env.dir.path());
    env.settings.grpc.tls_cert_file = cert;
    env.settings.grpc.tls_key_file = key;
    env.settings.grpc.tls_ca_file = ca.clone();
    let services = Services::start(&env.settings, bus).await.unwrap();
    // The demo is loaded over TLS, and scoring rebuilds from the other three over TLS.
    services
        .load(&cezone_testkit::district(2, 6, 10, 7))
        .await
        .unwrap();
    let mut scores = services.scores().await.unwrap();
    let r = scores
        .recompute(ps::RecomputeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(r.org_units > 1 && r.evidence > 0, "{r:?}");

    let url = services.registry.url();
    let office = cezone_platform::testing::as_role(Role::EvaluationOffice);
    // TLS that trusts the CA but shows no certificate of its own.
    let anonymous = Endpoint::from_shared(cezone_platform::tls::https(&url))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap())),
        )
        .unwrap();
    // A certificate of its own, signed by another CA.
    let elsewhere = tempfile::tempdir().unwrap();
    let (their_cert, their_key, _) = write_pki(elsewhere.path());
    let impostor = Endpoint::from_shared(cezone_platform::tls::https(&url))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap()))
                .identity(tonic::transport::Identity::from_pem(
                    std::fs::read(their_cert).unwrap(),
                    std::fs::read(their_key).unwrap(),
                )),
        )
        .unwrap();
    // Plain HTTP/2, as before TLS was configured.
    let plain = Endpoint::from_shared(url.clone()).unwrap();
    for (what, endpoint) in [
        ("no client certificate", anonymous),
        ("a certificate from another CA", impostor),
        ("no TLS", plain),
    ] {
        let outcome = match endpoint.connect().await {
            Err(e) => Err(e.to_string()),
            Ok(channel) => reg::client(office.attach(channel))
                .list_frameworks(pr::ListFrameworksRequest::default())
                .await
                .map(|_| ())
                .map_err(|s| s.to_string()),
        };
        assert!(outcome.is_err(), "{what}: a call got through");
    }
    services.stop().await;
}
