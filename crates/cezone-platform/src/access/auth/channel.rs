//! A gRPC channel that puts the caller's bearer token on every call. The token may have to be
//! fetched first (a service asks the registry for its own), so this is an asynchronous layer
//! rather than tonic's synchronous interceptor.

use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::transport::Channel;

use super::Bearer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
pub struct AuthChannel {
    inner: Channel,
    bearer: Bearer,
}

impl AuthChannel {
    pub fn new(inner: Channel, bearer: Bearer) -> AuthChannel {
        AuthChannel { inner, bearer }
    }
}

impl Service<http::Request<Body>> for AuthChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The channel polled ready is the one that sends; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let bearer = self.bearer.clone();
        Box::pin(async move {
            // A refusal (no token to be had) reaches the caller as its gRPC status.
            let value = bearer.header().await.map_err(BoxError::from)?;
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
            inner.call(req).await.map_err(Into::into)
        })
    }
}
