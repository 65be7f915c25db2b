//! Score queries: `GetScores` (every item, no explanation) for random org units of the loaded
//! district from concurrent clients, each on its own connection, for a fixed time. Beside it, the
//! gRPC health `Check` (a trivial RPC) on the very same scoring server, from the same number of
//! clients on their own connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cezone_proto::scoring::v1 as ps;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::stack::Stack;

type ScoringClient = cezone_proto::scoring::v1::scoring_service_client::ScoringServiceClient<
    cezone_platform::access::auth::AuthChannel,
>;

#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
}

async fn channel(url: &str) -> Result<Channel> {
    Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Runs `clients` loops of `call` until `duration` has passed; counts successful calls and
/// gives the clients back.
async fn drive<C, F, Fut>(clients: Vec<C>, duration: Duration, call: F) -> (Load, Vec<C>)
where
    C: Send + 'static,
    F: Fn(C, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (C, bool)> + Send,
{
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for (k, client) in clients.into_iter().enumerate() {
        let (ok, bad, call) = (ok.clone(), bad.clone(), call.clone());
        let seed = (k as u64) << 32;
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            let mut n = seed;
            while Instant::now() < deadline {
                let (c, fine) = call(client, n).await;
                client = c;
                n += 1;
                if fine {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
            client
        }));
    }
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(c) = t.await {
            back.push(c);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = ok.load(Ordering::Relaxed);
    let load = Load {
        requests,
        errors: bad.load(Ordering::Relaxed),
        seconds,
        per_second: requests as f64 / seconds,
    };
    (load, back)
}

/// Every window of both sides, in the order they ran (ours, baseline, ours, …).
#[derive(Debug, Clone, Default)]
pub struct Windows {
    pub ours: Vec<Load>,
    pub baseline: Vec<Load>,
}

impl Windows {
    fn total(loads: &[Load]) -> (u64, u64, f64) {
        loads.iter().fold((0, 0, 0.0), |(r, e, s), l| {
            (r + l.requests, e + l.errors, s + l.seconds)
        })
    }
    /// Requests, errors and seconds of ours over all windows.
    pub fn ours_total(&self) -> (u64, u64, f64) {
        Self::total(&self.ours)
    }
    pub fn baseline_total(&self) -> (u64, u64, f64) {
        Self::total(&self.baseline)
    }
}

/// Ours (`GetScores` for a random org unit — district, town or community — per request) and
/// the baseline (the health `Check` served by the same scoring server), `clients` each on their
/// own connection, in alternating windows of `window`, `windows` of each, after a warm-up
/// window of each that is not counted.
pub async fn interleaved(
    stack: &Stack,
    clients: usize,
    window: Duration,
    windows: usize,
) -> Result<Windows> {
    let units = unit_ids(stack);
    let mut scores = scoring_clients(stack, clients).await?;
    let url = stack.settings.services.scoring_url.clone();
    let mut health = Vec::with_capacity(clients);
    for _ in 0..clients {
        health.push(HealthClient::new(channel(&url).await?));
    }
    // Every connection answers once.
    for c in &mut scores {
        c.get_scores(ps::GetScoresRequest {
            org_unit: units[0].clone(),
            ..Default::default()
        })
        .await
        .context("GetScores")?;
    }
    for c in &mut health {
        c.check(HealthCheckRequest::default())
            .await
            .context("health Check")?;
    }
    let get_scores = move |c, n| get_scores_once(units.clone(), c, n);
    let check = |mut c: HealthClient<Channel>, _| async move {
        let fine = c.check(HealthCheckRequest::default()).await.is_ok();
        (c, fine)
    };
    Ok(alternate(scores, get_scores, health, check, window, windows).await)
}

/// An HTTP/1.1 client on its own connection (keep-alive), as a system integrating over
/// HTTP/JSON holds one.
type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// Ours (`GET /api/v1/scores/{org_unit}` on the web port: HTTP/JSON → gRPC → JSON) and the
/// baseline (`GetScores` over gRPC to the scoring server, as before), for random org units,
/// `clients` each on their own connection, in alternating windows after a warm-up of each.
pub async fn http_against_grpc(
    stack: &Stack,
    clients: usize,
    window: Duration,
    windows: usize,
) -> Result<Windows> {
    let mut settings = stack.settings.clone();
    settings.web.port = 0;
    let web = cezone_web::Application::build(&settings)
        .await
        .map_err(|e| anyhow::anyhow!("starting the web port: {e}"))?;
    let keys = cezone_platform::access::auth::Keys::load(&settings.auth)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let who = cezone_domain::access::Principal::new(
        "bench",
        cezone_domain::access::Role::EvaluationOffice,
        None,
        None,
    )
    .map_err(anyhow::Error::msg)?;
    let token = Arc::new(format!(
        "Bearer {}",
        keys.issue(&who, 3600).map_err(|e| anyhow::anyhow!("{e}"))?
    ));
    let base = Arc::new(web.url().trim_end_matches('/').to_string());
    let units = unit_ids(stack);
    let mut http = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        let c: HttpClient =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .build(connector);
        http.push(c);
    }
    let grpc = scoring_clients(stack, clients).await?;
    let get_http = {
        let (units, token, base) = (units.clone(), token.clone(), base.clone());
        move |c: HttpClient, n: u64| {
            let (units, token, base) = (units.clone(), token.clone(), base.clone());
            async move {
                let mut rng = ChaCha8Rng::seed_from_u64(n);
                let unit = &units[rng.random_range(0..units.len())];
                let req = http::Request::get(format!("{base}/api/v1/scores/{unit}"))
                    .header(http::header::AUTHORIZATION, token.as_str())
                    .body(http_body_util::Empty::new())
                    .expect("a valid request");
                let fine = match c.request(req).await {
                    Ok(resp) if resp.status().is_success() => {
                        use http_body_util::BodyExt;
                        resp.into_body()
                            .collect()
                            .await
                            .is_ok_and(|b| b.to_bytes().len() > 2)
                    }
                    _ => false,
                };
                (c, fine)
            }
        }
    };
    let get_grpc = move |c, n| get_scores_once(units.clone(), c, n);
    let out = alternate(http, get_http, grpc, get_grpc, window, windows).await;
    web.stop().await;
    Ok(out)
}

/// Every org unit id of the stack's district, to pick random ones from.
fn unit_ids(stack: &Stack) -> Arc<Vec<String>> {
    Arc::new(
        stack
            .district
            .units
            .iter()
            .map(|u| u.id.to_string())
            .collect(),
    )
}

/// `clients` scoring clients, each on its own connection.
async fn scoring_clients(stack: &Stack, clients: usize) -> Result<Vec<ScoringClient>> {
    let mut out = Vec::with_capacity(clients);
    for _ in 0..clients {
        out.push(stack.scores().await?);
    }
    Ok(out)
}

/// `GetScores` (every item, no explanation) for the random org unit of `units` that call `n`
/// picks.
async fn get_scores_once(
    units: Arc<Vec<String>>,
    mut c: ScoringClient,
    n: u64,
) -> (ScoringClient, bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(n);
    let unit = units[rng.random_range(0..units.len())].clone();
    let fine = c
        .get_scores(ps::GetScoresRequest {
            org_unit: unit,
            items: Vec::new(),
            explain: false,
        })
        .await
        .is_ok_and(|r| !r.into_inner().items.is_empty());
    (c, fine)
}

/// Ours and the baseline in alternating windows (ours, baseline, ours, …), `windows` of each
/// after a warm-up window of each that is not counted.
async fn alternate<A, FA, FutA, B, FB, FutB>(
    mut ours: Vec<A>,
    ours_call: FA,
    mut base: Vec<B>,
    base_call: FB,
    window: Duration,
    windows: usize,
) -> Windows
where
    A: Send + 'static,
    FA: Fn(A, u64) -> FutA + Clone + Send + 'static,
    FutA: std::future::Future<Output = (A, bool)> + Send,
    B: Send + 'static,
    FB: Fn(B, u64) -> FutB + Clone + Send + 'static,
    FutB: std::future::Future<Output = (B, bool)> + Send,
{
    let mut out = Windows::default();
    for i in 0..=windows {
        let (o, back) = drive(ours, window, ours_call.clone()).await;
        ours = back;
        let (b, back) = drive(base, window, base_call.clone()).await;
        base = back;
        if i > 0 {
            out.ours.push(o);
            out.baseline.push(b);
        }
    }
    out
}
