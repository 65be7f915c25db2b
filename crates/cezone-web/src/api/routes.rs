//! The API's one table: each route, the RPC it calls and how the request and answer travel.
//! The router and the OpenAPI document are both made from it.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use cezone_proto::common::v1::{ListAuditRequest, ListAuditResponse};
use cezone_proto::evidence::v1 as pe;
use cezone_proto::registry::v1 as pr;
use cezone_proto::scheduler::v1 as psch;
use cezone_proto::scoring::v1 as ps;
use cezone_proto::surveys::v1 as psv;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::errors::GatewayError;
use super::{Gateway, Service, json, streams};

/// How a route's request and answer travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// POST; the request message as a JSON body; the answer as JSON.
    Json,
    /// GET; the request message from the query string and the path; the answer as JSON.
    Query,
    /// POST; the file as the raw body, its metadata (`query`) in the query string; JSON answer.
    UploadFile,
    /// GET; the request from the query string and the path; the file as the raw body, its
    /// first message's description in the headers.
    DownloadFile,
    /// POST; one JSON message (`body`) per line (`application/x-ndjson`), the stream's opening
    /// fields in the query string (`query`); JSON answer.
    NdjsonIn,
    /// GET; the request from the query string; one JSON message per line as they come.
    NdjsonOut,
}

impl Shape {
    pub fn method(self) -> Method {
        match self {
            Shape::Json | Shape::UploadFile | Shape::NdjsonIn => Method::POST,
            Shape::Query | Shape::DownloadFile | Shape::NdjsonOut => Method::GET,
        }
    }
}

/// One route of the API.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// axum's path syntax, parameters in braces: `/api/v1/scores/{orgUnit}`.
    pub path: String,
    pub service: Service,
    pub method: &'static str,
    pub shape: Shape,
    /// The message the query string (and path) fills, full name.
    pub query: Option<&'static str>,
    /// The message of each line or of the JSON body, full name.
    pub body: Option<&'static str>,
    /// The Rust types of the RPC's request and answer, checked against the descriptors.
    pub rust_types: (&'static str, &'static str),
}

/// The router under `/api/v1` and the table it was made from.
#[derive(Debug)]
pub struct Api {
    pub endpoints: Vec<Endpoint>,
    routes: BTreeMap<String, MethodRouter<Gateway>>,
}

fn short<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// The full proto name of a generated message type, from its Rust path
/// (`cezone_proto::scoring::v1::GetScoresRequest` → `cezone.scoring.v1.GetScoresRequest`).
pub fn proto_name<T>() -> &'static str {
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<BTreeMap<&'static str, &'static str>>> = OnceLock::new();
    let rust = std::any::type_name::<T>();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    names.entry(rust).or_insert_with(|| {
        let name = rust.trim_start_matches("cezone_proto::").replace("::", ".");
        Box::leak(format!("cezone.{name}").into_boxed_str())
    })
}

type Pairs = Vec<(String, String)>;

/// The reads whose JSON answers are kept by their bytes (see `answers`): the ones other
/// systems poll.
fn kept(method: &str) -> bool {
    method == "GetScores"
}

/// The methods each path of `endpoints` takes, as an `Allow` header lists them (`GET, HEAD`,
/// `POST`, or `GET, HEAD, POST`), by axum's path syntax.
pub fn allowed(endpoints: &[Endpoint]) -> BTreeMap<String, String> {
    let mut by_path: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for e in endpoints {
        let slot = by_path.entry(e.path.clone()).or_default();
        if e.shape.method() == Method::GET {
            slot.0 = true;
        } else {
            slot.1 = true;
        }
    }
    by_path
        .into_iter()
        .map(|(path, (get, post))| {
            let mut methods = Vec::new();
            if get {
                methods.extend(["GET", "HEAD"]);
            }
            if post {
                methods.push("POST");
            }
            (path, methods.join(", "))
        })
        .collect()
}

/// The methods `path` takes, from `allowed`: its own entry, or else the first pattern with
/// parameters (`/api/v1/scores/{org_unit}`) it fills, as the router picks them.
pub fn allowed_for(allowed: &BTreeMap<String, String>, path: &str) -> Option<String> {
    if let Some(a) = allowed.get(path) {
        return Some(a.clone());
    }
    let given: Vec<&str> = path.split('/').collect();
    allowed.iter().find_map(|(pattern, methods)| {
        let segments: Vec<&str> = pattern.split('/').collect();
        let fits = segments.len() == given.len()
            && segments.iter().zip(&given).all(|(p, g)| {
                if p.starts_with('{') && p.ends_with('}') {
                    !g.is_empty()
                } else {
                    p == g
                }
            });
        fits.then(|| methods.clone())
    })
}

/// The query string's parameters, or a 400 naming it.
pub fn pairs(
    q: Result<Query<Pairs>, axum::extract::rejection::QueryRejection>,
) -> Result<Pairs, GatewayError> {
    q.map(|Query(p)| p)
        .map_err(|e| GatewayError::bad("query", e.body_text()))
}

fn path_pairs(
    p: Result<Path<Pairs>, axum::extract::rejection::PathRejection>,
) -> Result<Pairs, GatewayError> {
    p.map(|Path(p)| p)
        .map_err(|e| GatewayError::bad("path", e.body_text()))
}

impl Api {
    fn add(&mut self, e: Endpoint, handler: MethodRouter<Gateway>) {
        let slot = self.routes.remove(&e.path).unwrap_or_default();
        self.routes.insert(e.path.clone(), slot.merge(handler));
        self.endpoints.push(e);
    }

    /// `POST /api/v1/{service}/{Method}` with a JSON body, and with `read` also `GET` with the
    /// request in the query string.
    fn unary<Req, Resp>(&mut self, service: Service, method: &'static str, read: bool)
    where
        Req: prost::Message + DeserializeOwned + Default + Send + Sync + 'static,
        Resp: prost::Message + Serialize + Default + Send + Sync + 'static,
    {
        let path = format!("/api/v1/{}/{method}", service.segment());
        let endpoint = |shape| Endpoint {
            path: path.clone(),
            service,
            method,
            shape,
            query: (shape == Shape::Query).then(proto_name::<Req>),
            body: (shape == Shape::Json).then(proto_name::<Req>),
            rust_types: (short::<Req>(), short::<Resp>()),
        };
        self.add(
            endpoint(Shape::Json),
            axum::routing::post(
                move |State(g): State<Gateway>, headers: HeaderMap, body: Bytes| async move {
                    let result: Result<Response, GatewayError> = async {
                        let request: Req = json::from_body(&body)?;
                        g.json_answer::<Req, Resp>(service, method, &headers, request, kept(method))
                            .await
                    }
                    .await;
                    result.unwrap_or_else(IntoResponse::into_response)
                },
            ),
        );
        if read {
            self.add(
                endpoint(Shape::Query),
                axum::routing::get(
                    move |State(g): State<Gateway>,
                          headers: HeaderMap,
                          q: Result<Query<Pairs>, _>| async move {
                        query_call::<Req, Resp>(
                            g,
                            service,
                            method,
                            headers,
                            pairs(q),
                            Ok(Vec::new()),
                        )
                        .await
                    },
                ),
            );
        }
    }

    /// `GET path` calling `method` with the request from the path's parameters and the
    /// query string: a resource-shaped address for a read.
    fn get_alias<Req, Resp>(&mut self, path: &str, service: Service, method: &'static str)
    where
        Req: prost::Message + DeserializeOwned + Default + Send + Sync + 'static,
        Resp: prost::Message + Serialize + Default + Send + Sync + 'static,
    {
        let has_params = path.contains('{');
        self.add(
            Endpoint {
                path: path.to_string(),
                service,
                method,
                shape: Shape::Query,
                query: Some(proto_name::<Req>()),
                body: None,
                rust_types: (short::<Req>(), short::<Resp>()),
            },
            axum::routing::get(
                move |State(g): State<Gateway>,
                      headers: HeaderMap,
                      p: Result<Path<Pairs>, _>,
                      q: Result<Query<Pairs>, _>| async move {
                    let p = if has_params {
                        path_pairs(p)
                    } else {
                        Ok(Vec::new())
                    };
                    query_call::<Req, Resp>(g, service, method, headers, pairs(q), p).await
                },
            ),
        );
    }

    /// The router, with JSON bodies bounded by the services' own message limit (file uploads
    /// and line streams are read as they come and are not bounded here).
    pub fn router(self, gateway: Gateway) -> Router {
        let limit = gateway.max_message_bytes();
        let mut router = Router::new();
        for (path, handler) in self.routes {
            router = router.route(&path, handler);
        }
        router
            .layer(DefaultBodyLimit::max(limit))
            .with_state(gateway)
    }
}

async fn query_call<Req, Resp>(
    g: Gateway,
    service: Service,
    method: &'static str,
    headers: HeaderMap,
    query: Result<Pairs, GatewayError>,
    path: Result<Pairs, GatewayError>,
) -> Response
where
    Req: prost::Message + DeserializeOwned + Default + Send + Sync + 'static,
    Resp: prost::Message + Serialize + Default + Send + Sync + 'static,
{
    let result: Result<Response, GatewayError> = async {
        let mut all = path?;
        all.extend(query?);
        let request: Req = json::from_value(json::query_object(proto_name::<Req>(), &all)?)?;
        g.json_answer::<Req, Resp>(service, method, &headers, request, kept(method))
            .await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Every route of the API.
pub fn api() -> Api {
    use Service::*;
    let mut a = Api {
        endpoints: Vec::new(),
        routes: BTreeMap::new(),
    };

    // Registry.
    a.unary::<pr::FrameworkSource, pr::ValidateFrameworkResponse>(
        Registry,
        "ValidateFramework",
        false,
    );
    a.unary::<pr::FrameworkSource, pr::FrameworkVersion>(Registry, "ImportFramework", false);
    a.unary::<pr::FrameworkRef, pr::FrameworkVersion>(Registry, "PublishFramework", false);
    a.unary::<pr::FrameworkRef, pr::Framework>(Registry, "GetFramework", true);
    a.unary::<pr::ListFrameworksRequest, pr::ListFrameworksResponse>(
        Registry,
        "ListFrameworks",
        true,
    );
    a.unary::<pr::ListCriteriaRequest, pr::ListCriteriaResponse>(Registry, "ListCriteria", true);
    a.unary::<pr::FrameworkRef, pr::ResponsibilityMatrix>(
        Registry,
        "GetResponsibilityMatrix",
        true,
    );
    a.unary::<pr::FrameworkRef, pr::Calendar>(Registry, "GetCalendar", true);
    a.unary::<pr::OrgUnit, pr::OrgUnit>(Registry, "CreateOrgUnit", false);
    a.unary::<pr::GetOrgUnitRequest, pr::OrgUnit>(Registry, "GetOrgUnit", true);
    a.unary::<pr::UpdatePopulationRequest, pr::OrgUnit>(Registry, "UpdatePopulation", false);
    a.unary::<pr::MoveOrgUnitRequest, pr::OrgUnit>(Registry, "MoveOrgUnit", false);
    a.unary::<pr::ListOrgUnitsRequest, pr::ListOrgUnitsResponse>(Registry, "ListOrgUnits", true);
    a.unary::<pr::ImportOrgUnitsRequest, pr::ImportOrgUnitsResponse>(
        Registry,
        "ImportOrgUnits",
        false,
    );
    a.unary::<pr::CreateAccountRequest, pr::Account>(Registry, "CreateAccount", false);
    a.unary::<pr::ListAccountsRequest, pr::ListAccountsResponse>(Registry, "ListAccounts", true);
    a.unary::<pr::DisableAccountRequest, pr::Account>(Registry, "DisableAccount", false);
    a.unary::<pr::EnableAccountRequest, pr::Account>(Registry, "EnableAccount", false);
    a.unary::<pr::ResetPasswordRequest, pr::Account>(Registry, "ResetPassword", false);
    a.unary::<pr::UpdateAccountRequest, pr::Account>(Registry, "UpdateAccount", false);
    a.unary::<pr::ListRecipientsRequest, pr::ListRecipientsResponse>(
        Registry,
        "ListRecipients",
        true,
    );
    // Signing in: POST only (a password never travels in a query string), without a token.
    a.unary::<pr::LoginRequest, pr::LoginResponse>(Registry, "Login", false);
    a.unary::<pr::RefreshRequest, pr::LoginResponse>(Registry, "Refresh", false);
    a.unary::<pr::LogoutRequest, pr::LogoutResponse>(Registry, "Logout", false);
    // The registry's public keys (also at /.well-known/jwks.json) and a service's token.
    a.unary::<pr::GetSigningKeysRequest, pr::SigningKeys>(Registry, "GetSigningKeys", true);
    a.unary::<pr::IssueServiceTokenRequest, pr::ServiceToken>(Registry, "IssueServiceToken", false);

    // Evidence.
    a.unary::<pe::ReviewRequest, pe::Evidence>(Evidence, "Review", false);
    a.unary::<pe::GetEvidenceRequest, pe::Evidence>(Evidence, "GetEvidence", true);
    a.unary::<pe::ListEvidenceRequest, pe::ListEvidenceResponse>(Evidence, "ListEvidence", true);
    a.unary::<pe::GetCompletenessRequest, pe::Completeness>(Evidence, "GetCompleteness", true);
    streams::evidence(&mut a);

    // Surveys.
    a.unary::<psv::Survey, psv::Survey>(Surveys, "DefineSurvey", false);
    a.unary::<psv::GetSurveyRequest, psv::Survey>(Surveys, "GetSurvey", true);
    a.unary::<psv::StatisticReturn, psv::StatisticReturn>(Surveys, "RecordStatistic", false);
    a.unary::<psv::RecordStatisticsRequest, psv::RecordStatisticsResponse>(
        Surveys,
        "RecordStatistics",
        false,
    );
    a.unary::<psv::ListStatisticsRequest, psv::ListStatisticsResponse>(
        Surveys,
        "ListStatistics",
        true,
    );
    a.unary::<psv::ReviewStatisticsRequest, psv::ReviewStatisticsResponse>(
        Surveys,
        "ReviewStatistics",
        false,
    );
    a.unary::<psv::ReviewSurveyBatchRequest, psv::SurveyBatch>(Surveys, "ReviewSurveyBatch", false);
    a.unary::<psv::ListSurveyBatchesRequest, psv::ListSurveyBatchesResponse>(
        Surveys,
        "ListSurveyBatches",
        true,
    );
    a.unary::<psv::LockPeriodRequest, psv::PeriodLock>(Surveys, "LockPeriod", false);
    a.unary::<psv::UnlockOrgUnitRequest, psv::PeriodLock>(Surveys, "UnlockOrgUnit", false);
    a.unary::<psv::GetPeriodLockRequest, psv::PeriodLock>(Surveys, "GetPeriodLock", true);
    a.unary::<psv::ListObligationsRequest, psv::Obligations>(Surveys, "ListObligations", true);
    a.unary::<psv::ListTalliesRequest, psv::ListTalliesResponse>(Surveys, "ListTallies", true);
    a.unary::<psv::GetAggregatesRequest, psv::Aggregates>(Surveys, "GetAggregates", true);
    streams::surveys(&mut a);

    // Scoring.
    a.unary::<ps::RecomputeRequest, ps::RecomputeResponse>(Scoring, "Recompute", false);
    a.unary::<ps::GetScoresRequest, ps::OrgUnitScores>(Scoring, "GetScores", true);
    a.get_alias::<ps::GetScoresRequest, ps::OrgUnitScores>("/api/v1/scores", Scoring, "GetScores");
    a.get_alias::<ps::GetScoresRequest, ps::OrgUnitScores>(
        "/api/v1/scores/{org_unit}",
        Scoring,
        "GetScores",
    );
    a.unary::<ps::GetSummaryRequest, ps::Summary>(Scoring, "GetSummary", true);
    a.unary::<ps::GetReadinessRequest, ps::Readiness>(Scoring, "GetReadiness", true);
    a.unary::<ps::FreezeSnapshotRequest, ps::Snapshot>(Scoring, "FreezeSnapshot", false);
    a.unary::<ps::ListSnapshotsRequest, ps::ListSnapshotsResponse>(Scoring, "ListSnapshots", true);
    a.unary::<ps::GetSnapshotRequest, ps::SnapshotScores>(Scoring, "GetSnapshot", true);
    a.unary::<ps::DiffSnapshotsRequest, ps::SnapshotDiff>(Scoring, "DiffSnapshots", true);
    streams::scoring(&mut a);

    // Scheduler.
    a.unary::<psch::ListRunsRequest, psch::ListRunsResponse>(Scheduler, "ListRuns", true);
    a.unary::<psch::RunNowRequest, psch::RunRecord>(Scheduler, "RunNow", false);
    a.unary::<psch::ListNotificationsRequest, psch::ListNotificationsResponse>(
        Scheduler,
        "ListNotifications",
        true,
    );

    // Every service's audit log.
    for service in [Registry, Evidence, Surveys, Scoring, Scheduler] {
        a.unary::<ListAuditRequest, ListAuditResponse>(service, "ListAudit", true);
    }
    a
}

impl Api {
    /// Adds a streaming route (see `streams`).
    pub(super) fn add_stream<Req, Resp>(
        &mut self,
        path: &str,
        service: Service,
        method: &'static str,
        shape: Shape,
        query: Option<&'static str>,
        body: Option<&'static str>,
        handler: MethodRouter<Gateway>,
    ) {
        self.add(
            Endpoint {
                path: path.to_string(),
                service,
                method,
                shape,
                query,
                body,
                rust_types: (short::<Req>(), short::<Resp>()),
            },
            handler,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::descriptors::index;

    #[test]
    fn every_rpc_is_served_with_its_own_types() {
        let api = api();
        let ix = index();
        for (name, service) in &ix.services {
            for m in &service.method {
                let served: Vec<&Endpoint> = api
                    .endpoints
                    .iter()
                    .filter(|e| e.service.grpc_name() == name && e.method == m.name())
                    .collect();
                assert!(!served.is_empty(), "{name}/{} has no HTTP route", m.name());
                let want = (
                    m.input_type().rsplit('.').next().unwrap(),
                    m.output_type().rsplit('.').next().unwrap(),
                );
                for e in served {
                    assert_eq!(e.rust_types, want, "{} {}", e.shape.method(), e.path);
                    for full in e.query.iter().chain(e.body.iter()) {
                        assert!(ix.message(full).is_some(), "{full} is not a message");
                    }
                }
            }
        }
        // And nothing is routed to an RPC the protos do not have.
        for e in &api.endpoints {
            assert!(
                ix.method(e.service.grpc_name(), e.method).is_some(),
                "{} {} calls {}/{}, which the protos do not define",
                e.shape.method(),
                e.path,
                e.service.grpc_name(),
                e.method
            );
        }
    }

    #[test]
    fn routes_are_unique() {
        let api = api();
        let mut seen = std::collections::HashSet::new();
        for e in &api.endpoints {
            assert!(
                seen.insert((e.shape.method(), e.path.clone())),
                "{} {} twice",
                e.shape.method(),
                e.path
            );
        }
    }
}
