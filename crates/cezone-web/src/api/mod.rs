//! The HTTP/JSON API under `/api/v1/`: every operation of the five services, forwarded to the
//! service over gRPC with the caller's own `Authorization: Bearer` token, so every rule stays
//! enforced by the services, once. Messages travel in the proto3 JSON mapping; errors are an
//! HTTP status and a JSON body naming the field; files travel as streamed bodies.
//!
//! One table (`routes`) makes both the router and the OpenAPI document (`openapi`), and a test
//! checks the table against the services' descriptors, so neither can drift from the protos.

mod answers;
pub mod descriptors;
pub mod errors;
pub mod json;
pub mod openapi;
pub mod routes;
pub(crate) mod streams;

use axum::http::uri::PathAndQuery;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

use errors::GatewayError;

/// The services behind the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Registry,
    Evidence,
    Surveys,
    Scoring,
    Scheduler,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Registry,
        Service::Evidence,
        Service::Surveys,
        Service::Scoring,
        Service::Scheduler,
    ];

    /// The path segment after `/api/v1/`.
    pub fn segment(self) -> &'static str {
        match self {
            Service::Registry => "registry",
            Service::Evidence => "evidence",
            Service::Surveys => "surveys",
            Service::Scoring => "scoring",
            Service::Scheduler => "scheduler",
        }
    }

    /// The gRPC service's full name.
    pub fn grpc_name(self) -> &'static str {
        match self {
            Service::Registry => "cezone.registry.v1.RegistryService",
            Service::Evidence => "cezone.evidence.v1.EvidenceService",
            Service::Surveys => "cezone.surveys.v1.SurveyService",
            Service::Scoring => "cezone.scoring.v1.ScoringService",
            Service::Scheduler => "cezone.scheduler.v1.SchedulerService",
        }
    }

    /// The gRPC path of `method`, e.g. `/cezone.scoring.v1.ScoringService/GetScores`.
    pub fn grpc_path(self, method: &str) -> PathAndQuery {
        PathAndQuery::try_from(format!("/{}/{method}", self.grpc_name()))
            .expect("service and method names are valid path segments")
    }
}

/// Channels to the services (no credentials of their own: each call carries its caller's).
#[derive(Debug, Clone)]
pub struct Gateway {
    registry: Channel,
    evidence: Channel,
    surveys: Channel,
    scoring: Channel,
    scheduler: Channel,
    max_message_bytes: usize,
    /// JSON answers kept by their protobuf bytes (see `answers`).
    answers: Arc<answers::Answers>,
    /// Ends the open answer streams (scores watched) when the server stops.
    shutdown: CancellationToken,
}

/// Where the gateway reaches each service.
#[derive(Debug, Clone)]
pub struct Channels {
    pub registry: Channel,
    pub evidence: Channel,
    pub surveys: Channel,
    pub scoring: Channel,
    pub scheduler: Channel,
}

/// A reply a client library made because a call could not be made: logged, answered 503.
fn unreachable(service: Service, e: impl std::fmt::Display) -> GatewayError {
    tracing::warn!(service = service.segment(), error = %e, "service cannot be reached");
    GatewayError::status(
        service.segment(),
        tonic::Status::unavailable(format!(
            "the {} service cannot be reached",
            service.segment()
        )),
    )
}

impl Gateway {
    pub fn new(channels: Channels, max_message_bytes: usize, shutdown: CancellationToken) -> Self {
        Gateway {
            registry: channels.registry,
            evidence: channels.evidence,
            surveys: channels.surveys,
            scoring: channels.scoring,
            scheduler: channels.scheduler,
            max_message_bytes,
            answers: Arc::default(),
            shutdown,
        }
    }

    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    async fn client(&self, service: Service) -> Result<tonic::client::Grpc<Channel>, GatewayError> {
        let channel = match service {
            Service::Registry => &self.registry,
            Service::Evidence => &self.evidence,
            Service::Surveys => &self.surveys,
            Service::Scoring => &self.scoring,
            Service::Scheduler => &self.scheduler,
        };
        let mut grpc = tonic::client::Grpc::new(channel.clone())
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes);
        grpc.ready().await.map_err(|e| unreachable(service, e))?;
        Ok(grpc)
    }

    /// One unary call as the caller whose headers these are.
    pub async fn unary<Req, Resp>(
        &self,
        service: Service,
        method: &'static str,
        headers: &HeaderMap,
        message: Req,
    ) -> Result<Resp, GatewayError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.client(service).await?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.unary(
            as_caller(headers, message),
            service.grpc_path(method),
            codec,
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| GatewayError::status(service.segment(), s))
    }

    /// One unary call answered in JSON. With `keep`, the JSON made from an answer is kept and
    /// sent again while the service answers the same request with the same bytes.
    pub async fn json_answer<Req, Resp>(
        &self,
        service: Service,
        method: &'static str,
        headers: &HeaderMap,
        message: Req,
        keep: bool,
    ) -> Result<Response, GatewayError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + serde::Serialize + Default + Send + Sync + 'static,
    {
        if !keep {
            let answer: Resp = self.unary(service, method, headers, message).await?;
            return Ok(json::answer(&answer));
        }
        let request = message.encode_to_vec();
        let mut grpc = self.client(service).await?;
        let raw = grpc
            .unary(
                as_caller(headers, message),
                service.grpc_path(method),
                answers::RawAnswer::<Req>::default(),
            )
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| GatewayError::status(service.segment(), s))?;
        if let Some(json) = self.answers.get(method, &request, &raw) {
            return Ok(json::answer_bytes(json));
        }
        let answer = Resp::decode(raw.clone()).map_err(|e| {
            tracing::error!(service = service.segment(), method, error = %e, "an answer could not be decoded");
            GatewayError::status(service.segment(), tonic::Status::internal("internal error"))
        })?;
        let json = json::to_json(&answer)?;
        self.answers.put(method, request, raw, json.clone());
        Ok(json::answer_bytes(json))
    }

    /// A call whose request is a stream of messages.
    pub async fn client_stream<Req, Resp, S>(
        &self,
        service: Service,
        method: &'static str,
        headers: &HeaderMap,
        messages: S,
    ) -> Result<Resp, GatewayError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
        S: Stream<Item = Req> + Send + 'static,
    {
        let mut grpc = self.client(service).await?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.client_streaming(
            as_caller(headers, messages),
            service.grpc_path(method),
            codec,
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| GatewayError::status(service.segment(), s))
    }

    /// A call whose answer is a stream of messages.
    pub async fn server_stream<Req, Resp>(
        &self,
        service: Service,
        method: &'static str,
        headers: &HeaderMap,
        message: Req,
    ) -> Result<tonic::Streaming<Resp>, GatewayError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.client(service).await?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.server_streaming(
            as_caller(headers, message),
            service.grpc_path(method),
            codec,
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| GatewayError::status(service.segment(), s))
    }
}

/// A gRPC request carrying the HTTP caller's `Authorization` header as it came; a caller
/// without one (or with one that is not ASCII) calls without, and the service refuses it.
fn as_caller<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| MetadataValue::try_from(v.as_bytes()).ok())
    {
        let v: AsciiMetadataValue = v;
        request.metadata_mut().insert("authorization", v);
    }
    request
}
