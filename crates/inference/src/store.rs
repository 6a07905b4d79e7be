//! The model store port, and its local-directory adapter.
//!
//! Laid out as Triton and KServe lay out a repository:
//! `{root}/{name}/{version}/model.onnx` with `model.toml` and an optional
//! drift `reference.json` beside it. Directories whose names are not valid
//! model names or versions are skipped, so nothing outside the layout is
//! ever read. An object-store adapter implements the same trait.

use crate::names::{ModelName, Version};
use async_trait::async_trait;
use std::path::PathBuf;

/// The files of one model version.
pub struct ModelFiles {
    pub onnx: Vec<u8>,
    /// `model.toml`, if present.
    pub manifest: Option<String>,
    /// `reference.json` (the drift reference), if present.
    pub reference: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("model {0} is not in the repository")]
    NoSuchModel(String),
    #[error("model {0} version {1} is not in the repository")]
    NoSuchVersion(String, u64),
    #[error("{file}: larger than the {limit}-byte limit")]
    TooLarge { file: String, limit: u64 },
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
}

/// Where model versions are read from.
#[async_trait]
pub trait ModelStore: Send + Sync {
    /// Every model and its versions, ascending.
    async fn list(&self) -> Result<Vec<(ModelName, Vec<Version>)>, RepositoryError>;
    /// The versions of one model, ascending.
    async fn versions(&self, name: &ModelName) -> Result<Vec<Version>, RepositoryError>;
    /// One version's files.
    async fn read(&self, name: &ModelName, version: Version)
        -> Result<ModelFiles, RepositoryError>;
}

/// A repository on the local file system.
pub struct LocalStore {
    root: PathBuf,
    max_file_bytes: u64,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>, max_file_bytes: u64) -> Self {
        Self {
            root: root.into(),
            max_file_bytes,
        }
    }

    fn io(&self, path: &std::path::Path, error: std::io::Error) -> RepositoryError {
        RepositoryError::Io {
            file: path.display().to_string(),
            error,
        }
    }

    async fn read_file(&self, path: PathBuf) -> Result<Option<Vec<u8>>, RepositoryError> {
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.len() > self.max_file_bytes => Err(RepositoryError::TooLarge {
                file: path.display().to_string(),
                limit: self.max_file_bytes,
            }),
            Ok(_) => tokio::fs::read(&path)
                .await
                .map(Some)
                .map_err(|e| self.io(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path, e)),
        }
    }

    async fn subdirectories(&self, path: &std::path::Path) -> Result<Vec<String>, std::io::Error> {
        let mut names = Vec::new();
        let mut entries = tokio::fs::read_dir(path).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_type().await?.is_dir() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }
}

#[async_trait]
impl ModelStore for LocalStore {
    async fn list(&self) -> Result<Vec<(ModelName, Vec<Version>)>, RepositoryError> {
        let names = self
            .subdirectories(&self.root)
            .await
            .map_err(|e| self.io(&self.root, e))?;
        let mut models: Vec<ModelName> = names
            .iter()
            .filter_map(|n| ModelName::parse(n).ok())
            .collect();
        models.sort();
        let mut listed = Vec::with_capacity(models.len());
        for name in models {
            let versions = self.versions(&name).await?;
            if !versions.is_empty() {
                listed.push((name, versions));
            }
        }
        Ok(listed)
    }

    async fn versions(&self, name: &ModelName) -> Result<Vec<Version>, RepositoryError> {
        let dir = self.root.join(name.as_str());
        let names = match self.subdirectories(&dir).await {
            Ok(names) => names,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RepositoryError::NoSuchModel(name.to_string()))
            }
            Err(e) => return Err(self.io(&dir, e)),
        };
        let mut versions: Vec<Version> = names.iter().filter_map(|n| n.parse().ok()).collect();
        versions.sort();
        Ok(versions)
    }

    async fn read(
        &self,
        name: &ModelName,
        version: Version,
    ) -> Result<ModelFiles, RepositoryError> {
        let dir = self.root.join(name.as_str()).join(version.to_string());
        let onnx = self
            .read_file(dir.join("model.onnx"))
            .await?
            .ok_or_else(|| RepositoryError::NoSuchVersion(name.to_string(), version.get()))?;
        let text = |bytes: Option<Vec<u8>>,
                    file: &str|
         -> Result<Option<String>, RepositoryError> {
            bytes
                .map(|b| {
                    String::from_utf8(b).map_err(|_| RepositoryError::Io {
                        file: dir.join(file).display().to_string(),
                        error: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
                    })
                })
                .transpose()
        };
        let manifest = text(self.read_file(dir.join("model.toml")).await?, "model.toml")?;
        let reference = text(
            self.read_file(dir.join("reference.json")).await?,
            "reference.json",
        )?;
        Ok(ModelFiles {
            onnx,
            manifest,
            reference,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_only_the_layout() {
        let root = tempfile::tempdir().unwrap();
        for dir in [
            "digits/1",
            "digits/2",
            "digits/latest",
            ".hidden/1",
            "empty",
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        std::fs::write(root.path().join("digits/1/model.onnx"), b"onnx").unwrap();
        std::fs::write(
            root.path().join("digits/1/model.toml"),
            b"description = 'x'",
        )
        .unwrap();
        let store = LocalStore::new(root.path(), 1024);
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0.as_str(), "digits");
        assert_eq!(
            listed[0].1.iter().map(|v| v.get()).collect::<Vec<_>>(),
            [1, 2]
        );
        let name = ModelName::parse("digits").unwrap();
        let files = store.read(&name, Version::new(1).unwrap()).await.unwrap();
        assert_eq!(files.onnx, b"onnx");
        assert!(files.manifest.is_some() && files.reference.is_none());
        assert!(matches!(
            store.read(&name, Version::new(2).unwrap()).await,
            Err(RepositoryError::NoSuchVersion(..))
        ));
        let missing = ModelName::parse("nope").unwrap();
        assert!(matches!(
            store.versions(&missing).await,
            Err(RepositoryError::NoSuchModel(_))
        ));
        std::fs::write(root.path().join("digits/2/model.onnx"), vec![0u8; 2048]).unwrap();
        assert!(matches!(
            store.read(&name, Version::new(2).unwrap()).await,
            Err(RepositoryError::TooLarge { .. })
        ));
    }
}
