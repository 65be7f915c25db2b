//! The scoreboard web page, served over HTTP beside the gRPC services: the page itself (static
//! assets embedded in the binary), a JSON document built from the services' gRPC answers, and a
//! Server-Sent Events stream fed by the scoring service's `WatchScores`, on which the page
//! fetches its data again. Beside the page, the HTTP/JSON API (`api`): every operation of the
//! services under `/api/v1/`, and its OpenAPI document at `/api/v1/openapi.json`; and the
//! workbench (`workbench`) under `/work/`, where people sign in and do their part.

pub mod api;
mod data;
pub mod workbench;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cezone_platform::access::auth::{AuthChannel, Bearer};
use cezone_platform::settings::Settings;
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use data::{Backends, ScoreboardData};

const INDEX_HTML: &str = include_str!("assets/index.html");
const SCOREBOARD_JS: &str = include_str!("assets/scoreboard.js");
const SCOREBOARD_CSS: &str = include_str!("assets/scoreboard.css");

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {host}:{port}: {source}")]
    Bind {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("{0}")]
    Auth(String),
    #[error("service url {url}: {reason}")]
    Url { url: String, reason: String },
}

fn lazy(url: &str, bearer: &Bearer) -> Result<AuthChannel, WebError> {
    cezone_platform::channel::lazy(url, bearer).map_err(|e| WebError::Url {
        url: url.to_string(),
        reason: e.message,
    })
}

/// A channel to `url` without credentials of its own: the API's calls carry their caller's.
fn bare(url: &str, bearer: &Bearer) -> Result<tonic::transport::Channel, WebError> {
    cezone_platform::channel::lazy_bare(url, bearer).map_err(|e| WebError::Url {
        url: url.to_string(),
        reason: e.message,
    })
}

#[derive(Debug, Clone)]
struct AppState {
    backends: Arc<Backends>,
    shutdown: CancellationToken,
}

/// The running web server.
#[derive(Debug)]
pub struct Application {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Application {
    /// Listens on `grpc.host`:`web.port` and reaches the services at `services.*_url`.
    pub async fn build(settings: &Settings) -> Result<Application, WebError> {
        let s = &settings.services;
        let max = settings.grpc.max_message_bytes;
        // The page reads as a service; it changes nothing.
        let tls = cezone_platform::tls::client_config(&settings.grpc)
            .map_err(|e| WebError::Auth(e.message))?;
        let bearer = Bearer::service(settings, "web")
            .map_err(|e| WebError::Auth(e.to_string()))?
            .with_tls(tls);
        let backends = Backends::new(
            lazy(&s.scoring_url, &bearer)?,
            lazy(&s.registry_url, &bearer)?,
            lazy(&s.evidence_url, &bearer)?,
            settings.scoring.framework_id.clone(),
            settings.scoring.edition.clone(),
            settings.scheduler.utc_offset_hours,
            max,
        );
        let host = settings.grpc.host;
        let port = settings.web.port;
        let listener = TcpListener::bind((host, port))
            .await
            .map_err(|source| WebError::Bind {
                host: host.to_string(),
                port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WebError::Bind {
            host: host.to_string(),
            port,
            source,
        })?;
        let shutdown = CancellationToken::new();
        let state = AppState {
            backends: Arc::new(backends),
            shutdown: shutdown.clone(),
        };
        let registry_view =
            cezone_platform::glue::registry_view::RegistryView::new(&s.registry_url, max, &bearer)
                .map_err(|e| WebError::Url {
                    url: s.registry_url.clone(),
                    reason: e.message,
                })?;
        let gateway = api::Gateway::new(
            api::Channels {
                registry: bare(&s.registry_url, &bearer)?,
                evidence: bare(&s.evidence_url, &bearer)?,
                surveys: bare(&s.surveys_url, &bearer)?,
                scoring: bare(&s.scoring_url, &bearer)?,
                scheduler: bare(&s.scheduler_url, &bearer)?,
            },
            max,
            shutdown.clone(),
        );
        let bench = workbench::Workbench::new(
            gateway.clone(),
            registry_view,
            workbench::Config {
                framework_id: settings.scoring.framework_id.clone(),
                edition: settings.scoring.edition.clone(),
                period: settings.scoring.period,
                utc_offset_hours: settings.scheduler.utc_offset_hours,
                max_file_bytes: settings.evidence.max_file_bytes,
                session_idle: Duration::from_secs(settings.web.session_idle_seconds),
            },
        );
        // gRPC health checks answer on the same port (HTTP/2), as on every service.
        let (_reporter, health) = tonic_health::server::health_reporter();
        let app = router(state)
            .merge(api_router(gateway))
            .merge(workbench::router(bench))
            .merge(tonic::service::Routes::new(health).into_axum_router())
            // Set after the merge: gRPC's own fallback would answer any path with 200.
            .fallback(not_found)
            .layer(axum::middleware::map_response(secure_headers));
        let stop = shutdown.clone();
        let limits = ServeLimits {
            header_read: Duration::from_secs(settings.web.header_read_seconds),
            connections: cezone_platform::grpc::ConnectionLimit::new(settings.grpc.max_connections),
        };
        let task = tokio::spawn(serve(listener, app, limits, stop));
        tracing::info!(service = "web", address = %addr, "listening");
        Ok(Application {
            addr,
            shutdown,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The page's address, e.g. `http://127.0.0.1:8080/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Ends the event streams, stops accepting and waits for requests in flight.
    pub async fn stop(self) {
        self.shutdown.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(service = "web", error = %e, "server stopped with an error")
            }
            Err(e) => tracing::error!(service = "web", error = %e, "server task panicked"),
        }
    }
}

/// What a client may hold of the web port: the time to send a request's headers (a client that
/// connects and sends nothing is let go) and the connections served at once.
#[derive(Debug, Clone)]
struct ServeLimits {
    header_read: Duration,
    connections: cezone_platform::grpc::ConnectionLimit,
}

/// Accepts connections until `stop`, serving each with HTTP/1.1 or HTTP/2 (gRPC health checks
/// share the port) under `limits`; then waits for the connections in flight.
async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(service = "web", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(permit) = limits.connections.admit(Some(peer)) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(service = "web", remote = %peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            service = "web",
            "connections still open 10 s after shutdown began"
        );
    }
    Ok(())
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/scoreboard.js", get(script))
        .route("/scoreboard.css", get(style))
        .route("/api/scoreboard", get(scoreboard))
        .route("/api/events", get(events))
        .route("/healthz", get(|| async { "ok" }))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

/// The HTTP/JSON API and its OpenAPI document, both made from one route table. A method a
/// route does not take is answered 405 with the API's JSON error body and an `Allow` header.
fn api_router(gateway: api::Gateway) -> Router {
    let table = api::routes::api();
    let document = axum::body::Bytes::from(api::openapi::document(&table.endpoints).to_string());
    let mut allowed = api::routes::allowed(&table.endpoints);
    allowed.insert("/api/v1/openapi.json".into(), "GET, HEAD".into());
    let allowed = Arc::new(allowed);
    table
        .router(gateway)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        document,
                    )
                }
            }),
        )
        .method_not_allowed_fallback(move |method: axum::http::Method, uri: axum::http::Uri| {
            let allow = api::routes::allowed_for(&allowed, uri.path()).unwrap_or_default();
            async move {
                api::errors::GatewayError::MethodNotAllowed {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    allow,
                }
                .into_response()
            }
        })
}

/// The page's policy: its own script, style, data and events only; no inline script or style
/// markup, no plugins, never inside another site's frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Headers every HTTP answer carries (gRPC answers, sent with HTTP/2 and a grpc content type,
/// are left as they are).
async fn secure_headers(mut res: Response) -> Response {
    let grpc = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !grpc {
        let h = res.headers_mut();
        // A page with a policy of its own (the workbench's, a document shown in a frame) keeps it.
        h.entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(header::HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
        h.entry(header::X_FRAME_OPTIONS)
            .or_insert(header::HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("no-referrer"),
        );
    }
    res
}

async fn not_found(uri: axum::http::Uri) -> Response {
    // The API's clients read JSON, errors included.
    if uri.path() == "/api/v1" || uri.path().starts_with("/api/v1/") {
        return api::errors::GatewayError::NoRoute(uri.path().to_string()).into_response();
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("未找到 Not found: {}\n", uri.path()),
    )
        .into_response()
}

/// An asset embedded in the binary; revalidated on every use, so a new release shows at once.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCOREBOARD_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", SCOREBOARD_CSS)
}

async fn scoreboard(State(state): State<AppState>) -> Response {
    match state.backends.scoreboard().await {
        Ok(data) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(data)).into_response(),
        Err(status) => {
            let code = match status.code() {
                tonic::Code::FailedPrecondition => StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::warn!(code = ?status.code(), message = status.message(), "scoreboard data unavailable");
            (
                code,
                axum::Json(serde_json::json!({ "error": status.message() })),
            )
                .into_response()
        }
    }
}

/// The public keys cezone tokens are verified with, for systems that verify them themselves.
async fn jwks(State(state): State<AppState>) -> Response {
    match state.backends.jwks().await {
        Ok(set) => (
            [
                (header::CONTENT_TYPE, "application/jwk-set+json"),
                (header::CACHE_CONTROL, "max-age=60"),
            ],
            set,
        )
            .into_response(),
        Err(status) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "signing keys unavailable");
            (
                StatusCode::BAD_GATEWAY,
                axum::Json(serde_json::json!({ "error": "the registry cannot be reached for its signing keys" })),
            )
                .into_response()
        }
    }
}

/// `scores` events (the district's totals, each time scoring applies a change — its live
/// stream, ahead of the persisted cells), first the current ones. When the scores stream
/// cannot be opened one `waiting` event says why and the stream ends; the browser reconnects
/// by itself.
async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let shutdown = state.shutdown.clone();
    let stream = async_stream(state)
        .await
        .take_until(shutdown.cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn async_stream(
    state: AppState,
) -> futures::stream::BoxStream<'static, Result<Event, Infallible>> {
    let retry = Duration::from_secs(3);
    let offset = state.backends.utc_offset_hours();
    match state.backends.watch().await {
        Ok(updates) => updates
            .map(move |u| {
                let ev = match u {
                    Ok(u) => {
                        let total = u.unit.and_then(|x| x.total).unwrap_or_default();
                        Event::default().event("scores").retry(retry).data(
                            serde_json::json!({
                                "computed_at_local": cezone_platform::time::local(&u.computed_at, offset),
                                "computed_at": u.computed_at,
                                "confirmed": total.confirmed,
                                "projected": total.projected,
                                "cells_recomputed": u.cells_recomputed,
                            })
                            .to_string(),
                        )
                    }
                    Err(s) => Event::default()
                        .event("waiting")
                        .retry(retry)
                        .data(s.message()),
                };
                Ok(ev)
            })
            .boxed(),
        Err(s) => futures::stream::once(async move {
            Ok(Event::default()
                .event("waiting")
                .retry(retry)
                .data(s.message()))
        })
        .boxed(),
    }
}
