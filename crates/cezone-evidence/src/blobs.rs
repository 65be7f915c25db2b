//! Content-addressed file store: `root/sha256/ab/cd/<hash>`. A file is written to a temporary
//! name while it is hashed, then renamed into place, so identical content is stored once and a
//! half-written file is never visible under its hash.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::fs::{self, File};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the file exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the stored file {sha256} is missing")]
    Missing { sha256: String },
    #[error(
        "the stored file {sha256} does not match its hash (now {actual}, {size} bytes): it was changed on disk"
    )]
    Corrupted {
        sha256: String,
        actual: String,
        size: u64,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Creates `dir` and any missing parents owner-only (an existing directory keeps its mode:
/// the operator chose it).
async fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .await
}

impl BlobStore {
    /// Opens the store at `root`, creating it (directories 0700, files 0600: evidence is for
    /// the service alone, as the key file is).
    pub async fn open(root: &Path) -> std::io::Result<BlobStore> {
        private_dir(root).await?;
        private_dir(&root.join("tmp")).await?;
        private_dir(&root.join("sha256")).await?;
        Ok(BlobStore {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        let (a, b) = (
            &sha256[..2.min(sha256.len())],
            &sha256[2.min(sha256.len())..4.min(sha256.len())],
        );
        self.root.join("sha256").join(a).join(b).join(sha256)
    }

    pub async fn writer(&self, limit: u64) -> std::io::Result<BlobWriter> {
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut open = fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        open.mode(0o600);
        let file = open.open(&tmp).await?;
        Ok(BlobWriter {
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            tmp,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    /// Re-hashes a stored file before it is served; a changed file is an error, never data.
    pub async fn verify(&self, sha256: &str, chunk: usize) -> Result<PathBuf, BlobError> {
        let path = self.path(sha256);
        let mut f = match File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing {
                    sha256: sha256.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; chunk.max(64 * 1024)];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        let actual = hex::encode(hasher.finalize());
        if actual != sha256 {
            return Err(BlobError::Corrupted {
                sha256: sha256.to_string(),
                actual,
                size,
            });
        }
        Ok(path)
    }
}

/// A file being received. Dropped without `finish`, its temporary file is removed.
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
    /// False when identical content was already stored.
    pub new: bool,
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk).await?;
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn finish(mut self, store: &BlobStore) -> Result<Stored, BlobError> {
        let mut f = self.file.take().expect("finish once");
        f.flush().await?;
        let file = f.into_inner();
        file.sync_all().await?;
        drop(file);
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let dest = store.path(&sha256);
        let new = if fs::try_exists(&dest).await? {
            fs::remove_file(&self.tmp).await?;
            false
        } else {
            if let Some(dir) = dest.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .await?;
            }
            fs::rename(&self.tmp, &dest).await?;
            true
        };
        Ok(Stored {
            sha256,
            size: self.size,
            new,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn the_store_and_its_files_are_the_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("evidence");
        let store = BlobStore::open(&root).await.unwrap();
        let mut w = store.writer(1 << 20).await.unwrap();
        w.write(b"a file's bytes").await.unwrap();
        let stored = w.finish(&store).await.unwrap();
        let path = store.path(&stored.sha256);
        assert_eq!(mode(&path), 0o600);
        let mut p = path.parent();
        while let Some(d) = p {
            assert_eq!(mode(d), 0o700, "{}", d.display());
            if d == root {
                break;
            }
            p = d.parent();
        }
        assert_eq!(mode(&root.join("tmp")), 0o700);
    }
}
