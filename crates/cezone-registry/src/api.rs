//! gRPC edge of the registry: translate requests to the core and results back.

use cezone_domain::access::Action;
use cezone_platform::ApiError;
use cezone_platform::access::auth::{caller, permit};
use cezone_platform::glue::convert::{
    finding_to_proto, level_to_proto, org_unit_from_proto, org_unit_to_proto,
};
use cezone_platform::paging::Page;
use cezone_proto::registry::v1 as pr;
use cezone_proto::registry::v1::registry_service_server::RegistryService;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{accounts, frameworks, org_units, service_tokens};

#[derive(Debug, Clone)]
pub struct RegistryApi {
    pub db: DatabaseConnection,
    /// Woken after a committed change whose event sits in the outbox.
    pub relay: cezone_bus::outbox::RelayHandle,
    /// The registry's signing keys: sign the access tokens of people signing in and of
    /// services.
    pub keys: std::sync::Arc<cezone_platform::access::auth::Keys>,
    /// What a service proves itself with to get a token.
    pub secret: cezone_platform::access::auth::ServiceSecret,
}

type Reply<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> Reply<T> {
    Ok(Response::new(v))
}

impl RegistryApi {
    async fn framework(
        &self,
        r: &pr::FrameworkRef,
    ) -> Result<
        (
            crate::entities::framework_version::Model,
            cezone_domain::Framework,
        ),
        ApiError,
    > {
        let m = frameworks::find(&self.db, &r.framework_id, &r.edition).await?;
        let fw = frameworks::parse_stored(&m)?;
        Ok((m, fw))
    }
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    async fn list_audit(
        &self,
        req: tonic::Request<cezone_proto::common::v1::ListAuditRequest>,
    ) -> Result<tonic::Response<cezone_proto::common::v1::ListAuditResponse>, tonic::Status> {
        let who = cezone_platform::access::auth::caller(&req)?;
        let page =
            cezone_platform::access::audit_list::list(&self.db, "registry", &who, req.get_ref())
                .await?;
        Ok(tonic::Response::new(page))
    }

    async fn validate_framework(
        &self,
        req: Request<pr::FrameworkSource>,
    ) -> Reply<pr::ValidateFrameworkResponse> {
        let (_, findings) = frameworks::read_source(req.get_ref())?;
        ok(pr::ValidateFrameworkResponse {
            findings: findings.iter().map(finding_to_proto).collect(),
            errors: findings.errors() as u32,
            warnings: findings.warnings() as u32,
        })
    }

    async fn import_framework(
        &self,
        req: Request<pr::FrameworkSource>,
    ) -> Reply<pr::FrameworkVersion> {
        let who = caller(&req)?;
        permit(&who, &Action::ImportFramework, None)?;
        let (fw, findings) = frameworks::read_source(req.get_ref())?;
        if findings.has_errors() {
            return Err(frameworks::error_for_findings(&findings).into());
        }
        let stored = frameworks::store_draft(&self.db, &who, &fw, &findings).await?;
        tracing::info!(framework = %fw.meta.id, edition = %fw.meta.edition, warnings = findings.warnings(), "framework draft imported");
        ok(frameworks::version_to_proto(&stored, true))
    }

    async fn publish_framework(
        &self,
        req: Request<pr::FrameworkRef>,
    ) -> Reply<pr::FrameworkVersion> {
        let who = caller(&req)?;
        // Past the outbox's backlog limit, refused with a retry hint: the lag stays bounded.
        self.relay.admit().map_err(ApiError::from)?;
        permit(&who, &Action::PublishFramework, None)?;
        let r = req.into_inner();
        let m = frameworks::publish(&self.db, &who, &r.framework_id, &r.edition).await?;
        self.relay.notify();
        tracing::info!(framework = %r.framework_id, edition = %r.edition, "framework published");
        ok(frameworks::version_to_proto(&m, false))
    }

    async fn get_framework(&self, req: Request<pr::FrameworkRef>) -> Reply<pr::Framework> {
        let (m, fw) = self.framework(req.get_ref()).await?;
        ok(pr::Framework {
            version: Some(frameworks::version_to_proto(&m, true)),
            items: frameworks::items_to_proto(&fw, false),
            document_json: m.document_json.clone(),
        })
    }

    async fn list_frameworks(
        &self,
        req: Request<pr::ListFrameworksRequest>,
    ) -> Reply<pr::ListFrameworksResponse> {
        let page = Page::parse(req.get_ref().page.as_ref())?;
        let all: Vec<pr::FrameworkVersion> = frameworks::list(&self.db)
            .await?
            .iter()
            .map(|m| frameworks::version_to_proto(m, false))
            .collect();
        let (versions, page) = page.slice(&all);
        ok(pr::ListFrameworksResponse { versions, page })
    }

    async fn list_criteria(
        &self,
        req: Request<pr::ListCriteriaRequest>,
    ) -> Reply<pr::ListCriteriaResponse> {
        let r = req.into_inner();
        let page = Page::parse(r.page.as_ref())?;
        let fref = r
            .framework
            .ok_or_else(|| ApiError::invalid("framework", "is missing"))?;
        let (_, fw) = self.framework(&fref).await?;
        if !r.responsible_unit.is_empty()
            && !fw
                .units
                .units
                .iter()
                .any(|u| u.id.as_str() == r.responsible_unit)
        {
            return Err(ApiError::invalid(
                "responsible_unit",
                format!("'{}' is not a unit of this framework", r.responsible_unit),
            )
            .into());
        }
        let all: Vec<pr::Item> = frameworks::items_to_proto(&fw, true)
            .into_iter()
            .filter(|i| !r.key_only || i.key)
            .filter(|i| {
                r.responsible_unit.is_empty() || i.responsible_units.contains(&r.responsible_unit)
            })
            .collect();
        let (criteria, page) = page.slice(&all);
        ok(pr::ListCriteriaResponse { criteria, page })
    }

    async fn get_responsibility_matrix(
        &self,
        req: Request<pr::FrameworkRef>,
    ) -> Reply<pr::ResponsibilityMatrix> {
        let (_, fw) = self.framework(req.get_ref()).await?;
        ok(pr::ResponsibilityMatrix {
            units: fw
                .units
                .units
                .iter()
                .map(|u| pr::ResponsibleUnit {
                    id: u.id.to_string(),
                    name: u.name.clone(),
                    aliases: u.aliases.clone(),
                    kind: match u.kind {
                        cezone_domain::units::UnitKind::Department => "department",
                        cezone_domain::units::UnitKind::EachOrgLevel => "each_org_level",
                    }
                    .to_string(),
                    level: u.expands_to().map_or(0, |l| level_to_proto(l) as i32),
                    duties: u.duties.clone(),
                    plan_name: u.plan_name.clone().unwrap_or_default(),
                    added_aliases: u.added_aliases.clone(),
                    duties_source: u.duties_source.clone(),
                })
                .collect(),
            rows: fw
                .leaves()
                .map(|c| {
                    let it = fw.item(c);
                    pr::MatrixRow {
                        criterion: it.code.to_string(),
                        key: it.key,
                        points: it.points.to_string(),
                        unit_ids: it.responsible.iter().map(ToString::to_string).collect(),
                    }
                })
                .collect(),
        })
    }

    async fn get_calendar(&self, req: Request<pr::FrameworkRef>) -> Reply<pr::Calendar> {
        let (_, fw) = self.framework(req.get_ref()).await?;
        ok(pr::Calendar {
            phases: fw
                .calendar
                .phases
                .iter()
                .map(|p| pr::Phase {
                    id: p.id.clone(),
                    number: p.number,
                    name: p.name.clone(),
                    original: p.original.clone(),
                    start: p.start.to_string(),
                    end: p.end.to_string(),
                    correction: p.correction.clone().unwrap_or_default(),
                })
                .collect(),
            checkpoints: fw
                .calendar
                .checkpoints
                .iter()
                .map(|c| pr::Checkpoint {
                    id: c.id.clone(),
                    phase: c.phase.clone(),
                    name: c.name.clone(),
                    original: c.original.clone(),
                    due: c.due.to_string(),
                    correction: c.correction.clone().unwrap_or_default(),
                })
                .collect(),
        })
    }

    async fn create_org_unit(&self, req: Request<pr::OrgUnit>) -> Reply<pr::OrgUnit> {
        let who = caller(&req)?;
        // Past the outbox's backlog limit, refused with a retry hint: the lag stays bounded.
        self.relay.admit().map_err(ApiError::from)?;
        permit(&who, &Action::ManageOrgUnits, None)?;
        let unit = org_unit_from_proto(req.get_ref())?;
        let (u, rev) = org_units::create(&self.db, &who, unit).await?;
        self.relay.notify();
        ok(org_unit_to_proto(&u, rev))
    }

    async fn get_org_unit(&self, req: Request<pr::GetOrgUnitRequest>) -> Reply<pr::OrgUnit> {
        let (u, rev) = org_units::get(&self.db, &req.get_ref().id).await?;
        ok(org_unit_to_proto(&u, rev))
    }

    async fn update_population(
        &self,
        req: Request<pr::UpdatePopulationRequest>,
    ) -> Reply<pr::OrgUnit> {
        let who = caller(&req)?;
        // Past the outbox's backlog limit, refused with a retry hint: the lag stays bounded.
        self.relay.admit().map_err(ApiError::from)?;
        permit(&who, &Action::ManageOrgUnits, None)?;
        let r = req.into_inner();
        let (u, rev) =
            org_units::update_population(&self.db, &who, &r.id, r.year, r.residents).await?;
        self.relay.notify();
        ok(org_unit_to_proto(&u, rev))
    }

    async fn move_org_unit(&self, req: Request<pr::MoveOrgUnitRequest>) -> Reply<pr::OrgUnit> {
        let who = caller(&req)?;
        // Past the outbox's backlog limit, refused with a retry hint: the lag stays bounded.
        self.relay.admit().map_err(ApiError::from)?;
        permit(&who, &Action::ManageOrgUnits, None)?;
        let r = req.into_inner();
        let (u, rev) = org_units::move_unit(&self.db, &who, &r.id, &r.new_parent_id).await?;
        self.relay.notify();
        ok(org_unit_to_proto(&u, rev))
    }

    async fn import_org_units(
        &self,
        req: Request<pr::ImportOrgUnitsRequest>,
    ) -> Reply<pr::ImportOrgUnitsResponse> {
        let who = caller(&req)?;
        self.relay.admit().map_err(ApiError::from)?;
        permit(&who, &Action::ManageOrgUnits, None)?;
        let r = req.into_inner();
        if r.units.is_empty() {
            return Err(ApiError::invalid("units", "no org units were sent").into());
        }
        let mut units = Vec::with_capacity(r.units.len());
        let mut refused: Vec<(String, String)> = Vec::new();
        for (i, u) in r.units.iter().enumerate() {
            match org_unit_from_proto(u) {
                Ok(u) => units.push(u),
                Err(e) => refused.extend(
                    e.violations
                        .into_iter()
                        .map(|v| (format!("units[{i}].{}", v.field), v.description)),
                ),
            }
        }
        if !refused.is_empty() {
            return Err(match refused.len() {
                1 => ApiError::invalid(&refused[0].0, refused[0].1.clone()),
                n => ApiError::invalid_many(
                    format!("{n} fields are refused; nothing was stored"),
                    refused,
                ),
            }
            .into());
        }
        let done = org_units::import(&self.db, &who, units, r.dry_run).await?;
        if !r.dry_run {
            self.relay.notify();
            tracing::info!(
                created = done.created,
                updated = done.updated,
                moved = done.moved,
                unchanged = done.unchanged,
                "org units imported"
            );
        }
        ok(pr::ImportOrgUnitsResponse {
            created: done.created,
            updated: done.updated,
            moved: done.moved,
            unchanged: done.unchanged,
            changes: done
                .changes
                .iter()
                .map(|c| pr::OrgUnitChange {
                    id: c.unit.id.to_string(),
                    kind: c.kind.to_string(),
                    fields: c.fields.clone(),
                    unit: Some(org_unit_to_proto(&c.unit, c.revision)),
                })
                .collect(),
        })
    }

    async fn create_account(&self, req: Request<pr::CreateAccountRequest>) -> Reply<pr::Account> {
        let who = caller(&req)?;
        let m = accounts::create(&self.db, &who, req.get_ref()).await?;
        ok(accounts::to_proto(&m))
    }

    async fn list_accounts(
        &self,
        req: Request<pr::ListAccountsRequest>,
    ) -> Reply<pr::ListAccountsResponse> {
        let who = caller(&req)?;
        let page = Page::parse(req.get_ref().page.as_ref())?;
        let all: Vec<pr::Account> = accounts::list(&self.db, &who)
            .await?
            .iter()
            .map(accounts::to_proto)
            .collect();
        let (accounts, page) = page.slice(&all);
        ok(pr::ListAccountsResponse { accounts, page })
    }

    async fn disable_account(&self, req: Request<pr::DisableAccountRequest>) -> Reply<pr::Account> {
        let who = caller(&req)?;
        let m = accounts::disable(&self.db, &who, &req.get_ref().login).await?;
        ok(accounts::to_proto(&m))
    }

    async fn enable_account(&self, req: Request<pr::EnableAccountRequest>) -> Reply<pr::Account> {
        let who = caller(&req)?;
        let m = accounts::enable(&self.db, &who, &req.get_ref().login).await?;
        ok(accounts::to_proto(&m))
    }

    async fn reset_password(&self, req: Request<pr::ResetPasswordRequest>) -> Reply<pr::Account> {
        let who = caller(&req)?;
        let r = req.get_ref();
        let m = accounts::reset_password(&self.db, &who, &r.login, &r.new_password).await?;
        ok(accounts::to_proto(&m))
    }

    async fn login(&self, req: Request<pr::LoginRequest>) -> Reply<pr::LoginResponse> {
        let r = req.get_ref();
        let issued = accounts::login(&self.db, &self.keys, &r.login, &r.password).await?;
        ok(issued.to_proto())
    }

    async fn refresh(&self, req: Request<pr::RefreshRequest>) -> Reply<pr::LoginResponse> {
        let issued = accounts::refresh(&self.db, &self.keys, &req.get_ref().refresh_token).await?;
        ok(issued.to_proto())
    }

    async fn update_account(&self, req: Request<pr::UpdateAccountRequest>) -> Reply<pr::Account> {
        let who = caller(&req)?;
        let m = accounts::update(&self.db, &who, req.get_ref()).await?;
        ok(accounts::to_proto(&m))
    }

    async fn list_recipients(
        &self,
        req: Request<pr::ListRecipientsRequest>,
    ) -> Reply<pr::ListRecipientsResponse> {
        let who = caller(&req)?;
        let recipients = accounts::recipients(&self.db, &who, req.get_ref()).await?;
        ok(pr::ListRecipientsResponse { recipients })
    }

    async fn get_signing_keys(
        &self,
        _req: Request<pr::GetSigningKeysRequest>,
    ) -> Reply<pr::SigningKeys> {
        ok(service_tokens::signing_keys(&self.keys)?)
    }

    async fn issue_service_token(
        &self,
        req: Request<pr::IssueServiceTokenRequest>,
    ) -> Reply<pr::ServiceToken> {
        ok(service_tokens::issue(
            &self.keys,
            &self.secret,
            req.get_ref(),
        )?)
    }

    async fn logout(&self, req: Request<pr::LogoutRequest>) -> Reply<pr::LogoutResponse> {
        let who = caller(&req)?;
        let revoked = accounts::logout(&self.db, &who, &req.get_ref().refresh_token).await?;
        ok(pr::LogoutResponse { revoked })
    }

    async fn list_org_units(
        &self,
        req: Request<pr::ListOrgUnitsRequest>,
    ) -> Reply<pr::ListOrgUnitsResponse> {
        let r = req.into_inner();
        let page = Page::parse(r.page.as_ref())?;
        let all = org_units::subtree(&self.db, &r.root_id).await?;
        let (units, page) = page.slice(&all);
        ok(pr::ListOrgUnitsResponse {
            units: units
                .iter()
                .map(|(u, rev)| org_unit_to_proto(u, *rev))
                .collect(),
            page,
        })
    }
}
