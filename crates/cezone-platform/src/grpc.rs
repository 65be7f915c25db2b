//! Serving a gRPC service: bound listener (port 0 in tests), health checking, server reflection,
//! request spans, message size limits and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::service::interceptor::InterceptedService;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::LatencyUnit;
use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultMakeSpan, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer,
};
use tracing::Level;

pub use tonic_health::server::HealthReporter;

use crate::access::auth::{Authenticate, CalledPath, Keys};

pub async fn bind(host: std::net::IpAddr, port: u16) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind((host, port)).await?;
    Ok(listener)
}

/// The health checking service's full name, listed by every port's reflection.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// The reflection services' full names; every port serves both versions.
pub const REFLECTION_SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Reflection builder advertising only `services` (the port's own service and health checking)
/// and both reflection versions: a client that lists a port can call what it lists.
fn reflection_builder(services: &[&str]) -> tonic_reflection::server::Builder<'static> {
    services.iter().chain(REFLECTION_SERVICES.iter()).fold(
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(cezone_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ),
        |b, name| b.with_service_name(*name),
    )
}

/// gRPC server reflection, version v1, over the port's own services.
pub fn reflection_v1(
    services: &[&str],
) -> tonic_reflection::server::v1::ServerReflectionServer<
    impl tonic_reflection::server::v1::ServerReflection,
> {
    reflection_builder(services)
        .build_v1()
        .expect("the embedded descriptors are valid")
}

/// The same in version v1alpha, which some clients (Evans, older grpcurl) alone speak.
pub fn reflection_v1alpha(
    services: &[&str],
) -> tonic_reflection::server::v1alpha::ServerReflectionServer<
    impl tonic_reflection::server::v1alpha::ServerReflection,
> {
    reflection_builder(services)
        .build_v1alpha()
        .expect("the embedded descriptors are valid")
}

/// A span per request with the gRPC method, and status and latency on completion. Answers
/// about bad input (InvalidArgument, NotFound, …) are not server failures; they log at debug.
pub fn trace_layer() -> TraceLayer<
    SharedClassifier<GrpcErrorsAsFailures>,
    DefaultMakeSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    tower_http::trace::DefaultOnBodyChunk,
    tower_http::trace::DefaultOnEos,
    DefaultOnFailure,
> {
    let classifier = [
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::FailedPrecondition,
        GrpcCode::PermissionDenied,
        GrpcCode::Unauthenticated,
        GrpcCode::OutOfRange,
        GrpcCode::Cancelled,
    ]
    .into_iter()
    .fold(
        GrpcErrorsAsFailures::new(),
        GrpcErrorsAsFailures::with_success,
    );
    TraceLayer::new(SharedClassifier::new(classifier))
        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(
            DefaultOnResponse::new()
                .level(Level::DEBUG)
                .latency_unit(LatencyUnit::Micros),
        )
        .on_failure(
            DefaultOnFailure::new()
                .level(Level::WARN)
                .latency_unit(LatencyUnit::Micros),
        )
}

/// HTTP/2 frames the servers accept, and how much a stream or a connection may send before
/// the server has read it.
pub const MAX_FRAME_BYTES: u32 = 256 * 1024;
pub const STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// How long a streaming call may stay silent and last in all (`grpc.stream_idle_seconds`,
/// `grpc.stream_total_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub idle: std::time::Duration,
    pub total: std::time::Duration,
}

impl StreamLimits {
    pub fn of(settings: &crate::settings::GrpcSettings) -> StreamLimits {
        StreamLimits {
            idle: std::time::Duration::from_secs(settings.stream_idle_seconds),
            total: std::time::Duration::from_secs(settings.stream_total_seconds),
        }
    }

    /// The stream's next message, or DEADLINE_EXCEEDED once the client has sent nothing for
    /// `idle` or the call has lasted `total` since `started`. The caller then drops what it
    /// holds (rolling back), so a stalled upload stores nothing.
    pub async fn next<T>(
        &self,
        stream: &mut tonic::Streaming<T>,
        started: std::time::Instant,
    ) -> Result<Option<T>, tonic::Status> {
        let deadline = started + self.total;
        let until = (std::time::Instant::now() + self.idle).min(deadline);
        match tokio::time::timeout_at(until.into(), stream.message()).await {
            Ok(next) => next,
            Err(_) if std::time::Instant::now() >= deadline => {
                tracing::warn!(
                    seconds = self.total.as_secs(),
                    "streaming call too long, abandoned"
                );
                Err(tonic::Status::deadline_exceeded(format!(
                    "the call lasted more than {} s (grpc.stream_total_seconds); nothing was stored",
                    self.total.as_secs()
                )))
            }
            Err(_) => {
                tracing::warn!(
                    seconds = self.idle.as_secs(),
                    "streaming call stalled, abandoned"
                );
                Err(tonic::Status::deadline_exceeded(format!(
                    "nothing was received for {} s (grpc.stream_idle_seconds); the call was \
                     abandoned and nothing was stored",
                    self.idle.as_secs()
                )))
            }
        }
    }
}

/// At most `max` connections served at once: each accepted connection holds a permit until it
/// closes; one arriving when none is left is closed at once.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    permits: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl ConnectionLimit {
    pub fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }

    /// A permit for a new connection from `peer`, or None (logged) when the process is full.
    pub fn admit(&self, peer: Option<SocketAddr>) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                tracing::warn!(
                    remote = %peer.map_or_else(|| "unknown".to_string(), |a| a.to_string()),
                    max = self.max,
                    "connection refused: the process serves its most connections (grpc.max_connections)"
                );
                None
            }
        }
    }
}

/// A TCP connection holding its place under a `ConnectionLimit`.
#[derive(Debug)]
pub struct Limited {
    inner: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Limited {
    pub fn new(inner: tokio::net::TcpStream, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        Limited {
            inner,
            _permit: permit,
        }
    }
}

impl tokio::io::AsyncRead for Limited {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Limited {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Limited {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// How long a stopping server lets in-flight requests finish.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// A running server: its address, a handle to stop it and the task to await.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops as `stop` does, logging a failure under the service's name.
    pub async fn stop_logged(self, service: &str) {
        if let Err(e) = self.stop().await {
            tracing::error!(service, error = %e, "server stopped with an error");
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to [`SHUTDOWN_GRACE`], and
    /// waits; connections still busy then (a long stream, a client that keeps its calls open)
    /// are closed, so a stopping process never waits on its clients.
    pub async fn stop(mut self) -> Result<(), tonic::transport::Error> {
        self.shutdown.cancel();
        let joined = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::warn!(
                    addr = %self.addr,
                    grace_s = SHUTDOWN_GRACE.as_secs(),
                    "requests still in flight after the grace period; closing their connections"
                );
                self.task.abort();
                return Ok(());
            }
        };
        match joined {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "server task panicked");
                Ok(())
            }
        }
    }
}

/// Serves `routes` (the service plus health and reflection) on a bound listener until the
/// returned handle is stopped.
/// With `tls`, only clients presenting a certificate from the deployment's CA are served.
/// At most `max_connections` are served at once (`grpc.max_connections`).
pub fn spawn(
    listener: TcpListener,
    routes: tonic::service::Routes,
    tls: Option<tonic::transport::ServerTlsConfig>,
    max_connections: usize,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let limit = ConnectionLimit::new(max_connections);
    // Without TCP_NODELAY an answer written as several frames waits for the client's delayed
    // ACK (about 40 ms on Linux) before its last frame leaves.
    let incoming = tokio_stream::StreamExt::filter_map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        move |conn| match conn {
            Ok(stream) => {
                // Dropping the stream closes a connection past the limit.
                let permit = limit.admit(stream.peer_addr().ok())?;
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                Some(Ok(Limited::new(stream, permit)))
            }
            Err(e) => Some(Err(e)),
        },
    );
    // Uploads and survey batches stream megabytes per call: bigger frames and windows than
    // HTTP/2's 16 KiB and 1 MiB defaults cut the frames and window updates per byte.
    let mut builder = tonic::transport::Server::builder()
        .max_frame_size(MAX_FRAME_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| std::io::Error::other(format!("TLS configuration: {e}")))?;
    }
    let task = tokio::spawn(async move {
        builder
            .layer(trace_layer())
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await })
            .await
    });
    Ok(Running {
        addr,
        shutdown,
        task,
    })
}

/// A service whose requests carry their gRPC path as an extension ([`CalledPath`]), which
/// tonic's interceptors do not otherwise see.
#[derive(Debug, Clone)]
pub struct WithPath<S>(pub S);

impl<S: tonic::server::NamedService> tonic::server::NamedService for WithPath<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tonic::codegen::Service<http::Request<B>> for WithPath<S>
where
    S: tonic::codegen::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = CalledPath(req.uri().path().to_string());
        req.extensions_mut().insert(path);
        self.0.call(req)
    }
}

/// Routes of one service, every call authenticated by a bearer token signed with `keys`, with
/// health checking (reported SERVING) and reflection (v1 and v1alpha, listing this port's
/// services only), which stay open to probes and tools.
pub async fn routes_with_health<S>(service: S, keys: Arc<Keys>) -> tonic::service::Routes
where
    S: tonic::codegen::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    routes_allowing(service, keys, &[]).await
}

/// As [`routes_with_health`], but the calls to `open` (full gRPC paths, the sign-in methods)
/// are served without a token.
pub async fn routes_allowing<S>(
    service: S,
    keys: Arc<Keys>,
    open: &'static [&'static str],
) -> tonic::service::Routes
where
    S: tonic::codegen::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<S>().await;
    let listed = [S::NAME, HEALTH_SERVICE];
    tonic::service::Routes::new(health)
        .add_service(reflection_v1(&listed))
        .add_service(reflection_v1alpha(&listed))
        .add_service(WithPath(InterceptedService::new(
            service,
            Authenticate::allowing(keys, open),
        )))
}
