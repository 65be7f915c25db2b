//! Mutual TLS from configuration (`grpc.tls_cert_file`, `grpc.tls_key_file`,
//! `grpc.tls_ca_file`): servers accept only clients whose certificate the deployment's CA
//! signed, and clients check the server's certificate against the same CA and present their
//! own. Files are read at start; a missing or unreadable one stops the start naming the setting.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::error::ApiError;
use crate::settings::GrpcSettings;

fn read(key: &str, path: &Path) -> Result<Vec<u8>, ApiError> {
    std::fs::read(path)
        .map_err(|e| ApiError::invalid(key, format!("{} cannot be read: {e}", path.display())))
}

fn identity(g: &GrpcSettings) -> Result<(Identity, Certificate), ApiError> {
    let cert = read("grpc.tls_cert_file", &g.tls_cert_file)?;
    let key = read("grpc.tls_key_file", &g.tls_key_file)?;
    let ca = read("grpc.tls_ca_file", &g.tls_ca_file)?;
    Ok((Identity::from_pem(cert, key), Certificate::from_pem(ca)))
}

/// What a server needs to require client certificates; None without TLS settings.
pub fn server_config(g: &GrpcSettings) -> Result<Option<ServerTlsConfig>, ApiError> {
    if !g.tls() {
        return Ok(None);
    }
    let (id, ca) = identity(g)?;
    Ok(Some(ServerTlsConfig::new().identity(id).client_ca_root(ca)))
}

/// What a client needs to call such a server; None without TLS settings.
pub fn client_config(g: &GrpcSettings) -> Result<Option<ClientTlsConfig>, ApiError> {
    if !g.tls() {
        return Ok(None);
    }
    let (id, ca) = identity(g)?;
    Ok(Some(ClientTlsConfig::new().ca_certificate(ca).identity(id)))
}

/// The URL a TLS client dials: the configured one with `https`.
pub fn https(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn no_files_no_tls_and_a_missing_file_is_named() {
        let mut g = Settings::defaults().grpc;
        assert!(server_config(&g).unwrap().is_none());
        assert!(client_config(&g).unwrap().is_none());
        g.tls_cert_file = "/nonexistent/cert.pem".into();
        g.tls_key_file = "/nonexistent/key.pem".into();
        g.tls_ca_file = "/nonexistent/ca.pem".into();
        let e = server_config(&g).unwrap_err();
        assert!(e.message.contains("grpc.tls_cert_file"), "{e}");
        assert!(e.message.contains("/nonexistent/cert.pem"), "{e}");
        assert_eq!(https("http://registry:50051"), "https://registry:50051");
    }
}
