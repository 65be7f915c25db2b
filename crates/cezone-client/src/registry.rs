//! Frameworks and org units through the registry's API.

use cezone_domain::guangdong;
use cezone_domain::org::OrgUnit;
use cezone_platform::access::auth::AuthChannel;
use cezone_platform::glue::convert::org_unit_to_proto;
use cezone_proto::registry::v1 as pr;
use cezone_proto::registry::v1::framework_source::Source;
use cezone_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::Code;

use crate::{ClientError, MAX_MESSAGE_BYTES};

pub type Registry = RegistryServiceClient<AuthChannel>;

pub fn client(channel: AuthChannel) -> Registry {
    RegistryServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The embedded Guangdong table as an import request.
pub fn guangdong_source() -> pr::FrameworkSource {
    pr::FrameworkSource {
        source: Some(Source::Table(guangdong::TABLE.as_bytes().to_vec())),
        file_name: "indicators.csv".into(),
        ..Default::default()
    }
}

/// Imports and publishes a framework; an edition already published is left as it is.
pub async fn import_and_publish(
    client: &mut Registry,
    source: pr::FrameworkSource,
) -> Result<pr::FrameworkVersion, ClientError> {
    let version = match client.import_framework(source.clone()).await {
        Ok(v) => v.into_inner(),
        Err(s) if s.code() == Code::AlreadyExists => {
            let (fw, _) = guangdong::framework();
            let id = if source.framework_id.is_empty() {
                fw.meta.id.to_string()
            } else {
                source.framework_id.clone()
            };
            let edition = if source.edition.is_empty() {
                fw.meta.edition.clone()
            } else {
                source.edition.clone()
            };
            let got = client
                .get_framework(pr::FrameworkRef {
                    framework_id: id,
                    edition,
                })
                .await
                .map_err(|s| ClientError::call("GetFramework", s))?;
            return got
                .into_inner()
                .version
                .ok_or_else(|| ClientError::Invalid("framework without version".into()));
        }
        Err(s) => return Err(ClientError::call("ImportFramework", s)),
    };
    client
        .publish_framework(pr::FrameworkRef {
            framework_id: version.framework_id.clone(),
            edition: version.edition.clone(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| ClientError::call("PublishFramework", s))
}

/// Creates org units (parents before children); units that already exist are skipped.
pub async fn create_org_units(
    client: &mut Registry,
    units: &[OrgUnit],
) -> Result<usize, ClientError> {
    let mut created = 0;
    for u in units {
        match client.create_org_unit(org_unit_to_proto(u, 0)).await {
            Ok(_) => created += 1,
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(ClientError::call("CreateOrgUnit", s)),
        }
    }
    Ok(created)
}

/// Units sorted so that every parent comes before its children.
pub fn parents_first(units: &[OrgUnit]) -> Vec<OrgUnit> {
    let mut out: Vec<OrgUnit> = Vec::with_capacity(units.len());
    let mut placed = std::collections::HashSet::new();
    let mut rest: Vec<&OrgUnit> = units.iter().collect();
    while !rest.is_empty() {
        let before = rest.len();
        rest.retain(|u| {
            let ready = u.parent.as_ref().is_none_or(|p| placed.contains(p));
            if ready {
                placed.insert(u.id.clone());
                out.push((*u).clone());
            }
            !ready
        });
        if rest.len() == before {
            // Dangling parents: let the registry report them.
            out.extend(rest.drain(..).cloned());
        }
    }
    out
}
