//! Evidence upload: files of 1–50 MiB (sizes and content from a seeded RNG, every file
//! different, so content deduplication stores each one) uploaded one after another with the
//! client-streaming `Upload` call into the evidence service (storage root on local disk),
//! timed from reading the first file to the last record returned — received, hashed, synced,
//! stored and recorded. Beside it, `sha256sum` over the same files, `cp` of them into another
//! directory and `sync` of the copy (made durable as the service makes what it stores), run
//! as the commands themselves.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cezone_bus::{Bus, BusConfig, InProcessBus};
use cezone_client::{evidence, registry};
use cezone_domain::demo::{DemoParams, generate};
use cezone_domain::guangdong;
use cezone_platform::scratch;
use cezone_stack::Part;

use crate::throwaway::Throwaway;
use cezone_proto::evidence::v1 as pe;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MIB: u64 = 1 << 20;
const MIN_FILE: u64 = MIB;
const MAX_FILE: u64 = 50 * MIB;

#[derive(Debug, Clone)]
pub struct Run {
    pub seconds: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_second: f64,
}

impl Run {
    fn new(bytes: u64, started: Instant) -> Run {
        let seconds = started.elapsed().as_secs_f64();
        Run {
            seconds,
            mb_per_second: bytes as f64 / 1e6 / seconds,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Measured {
    pub files: usize,
    pub bytes: u64,
    /// Upload into the evidence service, per file.
    pub ours: Vec<Run>,
    /// `sha256sum` + `cp` + `sync` of the copy, per file, each right before ours.
    pub baseline: Vec<Run>,
}

/// File sizes between 1 and 50 MiB adding up to `total` (the last one may be smaller when
/// `total` is under 1 MiB).
pub fn sizes(total: u64, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let mut s = rng.random_range(MIN_FILE..=MAX_FILE);
        if s >= left || left - s < MIN_FILE {
            s = if left > MAX_FILE {
                left - MIN_FILE
            } else {
                left
            };
        }
        out.push(s);
        left -= s;
    }
    out
}

/// Writes the files (synced, so writeback does not land in the timed runs).
fn write_files(dir: &Path, sizes: &[u64], seed: u64) -> Result<Vec<PathBuf>> {
    use std::io::Write;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x000F_11E5);
    let mut buf = vec![0u8; MIB as usize];
    let mut paths = Vec::with_capacity(sizes.len());
    for (i, &size) in sizes.iter().enumerate() {
        let path = dir.join(format!("evidence-{i:04}.bin"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut left = size;
        while left > 0 {
            let n = left.min(MIB) as usize;
            rng.fill_bytes(&mut buf[..n]);
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        paths.push(path);
    }
    Ok(paths)
}

async fn command(program: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Generates files totalling `total` bytes in a temporary directory and starts an evidence
/// service on a fresh database; then, file by file, runs the baseline (`sha256sum`, then `cp`
/// into another directory and `sync` of the copy, then an untimed `sync` of everything so no
/// writeback of its stays for ours) and
/// uploads the same file (after one warm-up upload that is not counted); removes everything
/// after.
pub async fn measure(total: u64, seed: u64) -> Result<Measured> {
    let dir = tempfile::Builder::new()
        .prefix("cezone-bench-upload-")
        .tempdir()
        .context("creating a temporary directory")?;
    let (src, copies, storage) = (
        dir.path().join("files"),
        dir.path().join("copies"),
        dir.path().join("evidence"),
    );
    std::fs::create_dir_all(&src)?;
    std::fs::create_dir_all(&copies)?;
    let sizes = sizes(total, seed);
    let bytes: u64 = sizes.iter().sum();
    let paths = {
        let (src, sizes) = (src.clone(), sizes.clone());
        tokio::task::spawn_blocking(move || write_files(&src, &sizes, seed)).await??
    };

    let settings = Throwaway::prepare(|s| {
        s.evidence.storage_root = storage;
        s.evidence.max_file_bytes = MAX_FILE + MIB;
    })
    .await?;
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::connect(&BusConfig::in_process(
        &scratch::bus_prefix("t"),
    ))?);
    let deployment = Throwaway::start(&settings, bus, &[Part::Registry, Part::Evidence]).await?;
    let (settings, office) = (&deployment.stack.settings, &deployment.office);
    let result = async {
        let (fw, _) = guangdong::framework();
        let district = generate(
            &fw,
            &DemoParams {
                towns: 1,
                communities: 3,
                responses_per_community: 1,
                ..DemoParams::nanhai(seed)
            },
        );
        let mut reg = registry::client(
            cezone_client::connect(&settings.services.registry_url, office).await?,
        );
        registry::import_and_publish(&mut reg, registry::guangdong_source()).await?;
        registry::create_org_units(&mut reg, &registry::parents_first(&district.units)).await?;
        let f = district
            .evidence
            .first()
            .context("the demo district has no evidence to model the uploads on")?;
        let meta = |i: usize, name: &str| pe::UploadMetadata {
            framework_id: fw.meta.id.to_string(),
            edition: fw.meta.edition.clone(),
            criterion: f.criterion.to_string(),
            org_unit: f.org_unit.to_string(),
            responsible_unit: f.unit.to_string(),
            period: district.params.period,
            title: format!("bench file {i}"),
            material_type: f.material.clone().unwrap_or_default(),
            file_name: name.to_string(),
            content_type: "application/octet-stream".into(),
            replaces: String::new(),
            submitted_by: "bench".into(),
        };
        let mut client = evidence::client(
            cezone_client::connect(&settings.services.evidence_url, office).await?,
        );
        // Warm-up: a small file of its own, not counted.
        let warm: Vec<u8> = (0..MIB as usize).map(|i| (i * 7 + 3) as u8).collect();
        evidence::upload(&mut client, meta(usize::MAX, "warm-up.bin"), warm)
            .await
            .context("the warm-up upload")?;
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for (i, (path, &size)) in paths.iter().zip(&sizes).enumerate() {
            let started = Instant::now();
            let sum = command("sha256sum", &[path.as_os_str()]).await?;
            command("cp", &[path.as_os_str(), copies.as_os_str()]).await?;
            // The copy made durable, as the service syncs what it stores: both sides wait
            // for the disk, so the ratio compares the work rather than the page cache.
            let copy = copies.join(path.file_name().context("a file name")?);
            command("sync", &[copy.as_os_str()]).await?;
            base.push(Run::new(size, started));
            command("sync", &[]).await?;
            let want = sum
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();

            let started = Instant::now();
            let content = tokio::fs::read(path).await?;
            let rec = evidence::upload(
                &mut client,
                meta(i, &format!("evidence-{i:04}.bin")),
                content,
            )
            .await
            .with_context(|| format!("uploading {}", path.display()))?;
            ours.push(Run::new(size, started));
            if rec.current.map(|v| v.sha256).unwrap_or_default() != want {
                bail!(
                    "the stored hash of {} differs from sha256sum's",
                    path.display()
                );
            }
        }
        Ok((ours, base))
    }
    .await;
    deployment.stop().await;
    let (ours, baseline) = result?;
    drop(dir);
    Ok(Measured {
        files: paths.len(),
        bytes,
        ours,
        baseline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_add_up_within_bounds() {
        for (total, seed) in [(128 * MIB, 1), (1024 * MIB, 2), (MIB / 2, 3), (51 * MIB, 4)] {
            let s = sizes(total, seed);
            assert_eq!(s.iter().sum::<u64>(), total);
            if total >= MIN_FILE {
                assert!(
                    s.iter().all(|&x| (MIN_FILE..=MAX_FILE).contains(&x)),
                    "{s:?}"
                );
            }
        }
    }
}
