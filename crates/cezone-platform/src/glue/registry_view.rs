//! What other services read from the registry, over gRPC: a framework version and the org tree.

use cezone_domain::findings::Findings;
use cezone_domain::framework::{Framework, FrameworkDocument};
use cezone_domain::org::{OrgTree, OrgUnit};
use cezone_proto::common::v1::PageRequest;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;
use cezone_proto::registry::v1::{FrameworkRef, ListOrgUnitsRequest};

use crate::access::auth::{AuthChannel, Bearer};

use crate::error::ApiError;
use crate::glue::convert::org_unit_from_proto;

pub type RegistryClient = RegistryServiceClient<AuthChannel>;

pub fn registry_client(
    url: &str,
    max_message_bytes: usize,
    bearer: &Bearer,
) -> Result<RegistryClient, ApiError> {
    let channel = crate::channel::lazy(url, bearer)?;
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

/// Frameworks and org units as other services see them, with a cache: a named edition is
/// immutable once published and is kept; "latest" and the org tree are re-read after a while.
#[derive(Debug, Clone)]
pub struct RegistryView {
    client: RegistryClient,
    cache: std::sync::Arc<tokio::sync::Mutex<ViewCache>>,
}

#[derive(Debug, Default)]
struct ViewCache {
    by_edition: std::collections::HashMap<(String, String), std::sync::Arc<Framework>>,
    latest: std::collections::HashMap<String, (std::time::Instant, String)>,
    tree: Option<(std::time::Instant, std::sync::Arc<OrgTree>)>,
}

const LATEST_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl RegistryView {
    pub fn new(
        url: &str,
        max_message_bytes: usize,
        bearer: &Bearer,
    ) -> Result<RegistryView, ApiError> {
        Ok(RegistryView {
            client: registry_client(url, max_message_bytes, bearer)?,
            cache: Default::default(),
        })
    }

    pub fn client(&self) -> RegistryClient {
        self.client.clone()
    }

    /// The framework and the edition it resolved to.
    pub async fn framework(
        &self,
        framework_id: &str,
        edition: &str,
    ) -> Result<(std::sync::Arc<Framework>, String), ApiError> {
        if framework_id.is_empty() {
            return Err(ApiError::invalid("framework_id", "is empty"));
        }
        let mut cache = self.cache.lock().await;
        let edition = if edition.is_empty() {
            match cache.latest.get(framework_id) {
                Some((at, e)) if at.elapsed() < LATEST_TTL => e.clone(),
                _ => String::new(),
            }
        } else {
            edition.to_string()
        };
        if let Some(fw) = cache
            .by_edition
            .get(&(framework_id.to_string(), edition.clone()))
        {
            return Ok((fw.clone(), edition));
        }
        let mut client = self.client.clone();
        let (fw, resolved) = fetch_framework(&mut client, framework_id, &edition)
            .await
            .map_err(|e| match e.code {
                crate::ErrorCode::NotFound => ApiError::invalid("framework_id", e.message),
                _ => e,
            })?;
        let fw = std::sync::Arc::new(fw);
        if edition.is_empty() {
            cache.latest.insert(
                framework_id.to_string(),
                (std::time::Instant::now(), resolved.clone()),
            );
        }
        cache
            .by_edition
            .insert((framework_id.to_string(), resolved.clone()), fw.clone());
        Ok((fw, resolved))
    }

    /// The org tree, re-read when older than a few seconds or when `fresh` is asked.
    pub async fn org_tree(&self, fresh: bool) -> Result<std::sync::Arc<OrgTree>, ApiError> {
        let mut cache = self.cache.lock().await;
        if !fresh
            && let Some((at, tree)) = &cache.tree
            && at.elapsed() < LATEST_TTL
        {
            return Ok(tree.clone());
        }
        let mut client = self.client.clone();
        let tree = std::sync::Arc::new(fetch_org_tree(&mut client).await?);
        cache.tree = Some((std::time::Instant::now(), tree.clone()));
        Ok(tree)
    }
}
