//! What other services read from the registry, over gRPC: a framework version and the org tree.

use cezone_domain::findings::Findings;
use cezone_domain::framework::{Framework, FrameworkDocument};
use cezone_domain::org::{OrgTree, OrgUnit};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;
use cezone_proto::registry::v1::{FrameworkRef, ListOrgUnitsRequest};
use tonic::transport::Channel;

use crate::convert::org_unit_from_proto;
use crate::error::ApiError;

pub type RegistryClient = RegistryServiceClient<Channel>;

/// A lazily connecting client: services start in any order.
pub fn registry_client(url: &str, max_message_bytes: usize) -> Result<RegistryClient, ApiError> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| ApiError::internal_msg(format!("registry url {url}: {e}")))?
        .connect_lazy();
    Ok(RegistryServiceClient::new(channel)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes))
}

fn upstream(what: &str, s: tonic::Status) -> ApiError {
    match s.code() {
        tonic::Code::NotFound => ApiError::not_found(s.message().to_string()),
        tonic::Code::InvalidArgument => ApiError::invalid("framework", s.message().to_string()),
        _ => ApiError::unavailable(format!(
            "the registry cannot be reached for {what}: {}",
            s.message()
        )),
    }
}

/// A framework version; edition empty means the latest published one.
pub async fn fetch_framework(
    client: &mut RegistryClient,
    framework_id: &str,
    edition: &str,
) -> Result<(Framework, String), ApiError> {
    let fw = client
        .get_framework(FrameworkRef {
            framework_id: framework_id.to_string(),
            edition: edition.to_string(),
        })
        .await
        .map_err(|s| upstream("the framework", s))?
        .into_inner();
    let doc: FrameworkDocument = serde_json::from_str(&fw.document_json).map_err(|e| {
        ApiError::internal_msg(format!("the registry sent an unreadable framework: {e}"))
    })?;
    let (framework, findings): (Framework, Findings) = Framework::from_document(doc);
    if findings.has_errors() {
        return Err(ApiError::internal_msg(
            "the registry sent a framework with errors",
        ));
    }
    let edition = fw.version.map(|v| v.edition).unwrap_or_default();
    Ok((framework, edition))
}

/// Every org unit with its revision, parents first.
pub async fn fetch_org_units(client: &mut RegistryClient) -> Result<Vec<(OrgUnit, u64)>, ApiError> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let resp = client
            .list_org_units(ListOrgUnitsRequest {
                root_id: String::new(),
                page: Some(PageRequest {
                    page_size: 1000,
                    page_token: token.clone(),
                }),
            })
            .await
            .map_err(|s| upstream("org units", s))?
            .into_inner();
        for u in &resp.units {
            out.push((org_unit_from_proto(u)?, u.revision));
        }
        token = resp.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            return Ok(out);
        }
    }
}

pub async fn fetch_org_tree(client: &mut RegistryClient) -> Result<OrgTree, ApiError> {
    let units = fetch_org_units(client)
        .await?
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    OrgTree::build(units)
        .map_err(|e| ApiError::precondition(format!("the org tree is not usable: {e}")))
}
