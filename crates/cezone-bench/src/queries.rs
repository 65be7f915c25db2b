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

/// Runs `clients` loops of `call` until `duration` has passed; counts successful calls.
async fn drive<C, F, Fut>(clients: Vec<C>, duration: Duration, call: F) -> Load
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
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            let mut n = (k as u64) << 32;
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
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = ok.load(Ordering::Relaxed);
    Load {
        requests,
        errors: bad.load(Ordering::Relaxed),
        seconds,
        per_second: requests as f64 / seconds,
    }
}

/// Ours: `GetScores` for a random org unit (district, town or community) per request.
pub async fn get_scores(stack: &Stack, clients: usize, duration: Duration) -> Result<Load> {
    let units: Arc<Vec<String>> = Arc::new(
        stack
            .district
            .units
            .iter()
            .map(|u| u.id.to_string())
            .collect(),
    );
    let mut cs = Vec::with_capacity(clients);
    for _ in 0..clients {
        cs.push(
            stack
                .services
                .scores()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    // Warm-up: every connection answers once.
    for c in &mut cs {
        c.get_scores(ps::GetScoresRequest {
            org_unit: units[0].clone(),
            ..Default::default()
        })
        .await
        .context("GetScores")?;
    }
    Ok(drive(cs, duration, move |mut c, n| {
        let units = units.clone();
        async move {
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
    })
    .await)
}

/// Baseline: the health `Check` served by the same scoring server.
pub async fn health_check(stack: &Stack, clients: usize, duration: Duration) -> Result<Load> {
    let url = stack.services.scoring.url();
    let mut cs = Vec::with_capacity(clients);
    for _ in 0..clients {
        cs.push(HealthClient::new(channel(&url).await?));
    }
    for c in &mut cs {
        c.check(HealthCheckRequest::default())
            .await
            .context("health Check")?;
    }
    Ok(drive(cs, duration, |mut c, _| async move {
        let fine = c.check(HealthCheckRequest::default()).await.is_ok();
        (c, fine)
    })
    .await)
}
