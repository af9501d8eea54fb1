//! Locating a BERT checkpoint: a local directory, or a Hugging Face hub model id resolved
//! through the local hf-hub cache first (so a seeded cache works offline) and the network second.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use crate::{NnError, Result};

/// The files of a BERT checkpoint.
#[derive(Debug, Clone)]
pub struct BertCheckpoint {
    /// `config.json`.
    pub config: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
    /// `tokenizer.json`, if the checkpoint has one.
    pub tokenizer: Option<PathBuf>,
    /// Provenance recorded in shared files: `id@commit` or the directory path.
    pub source: String,
}

impl BertCheckpoint {
    /// A checkpoint directory holding `config.json`, `model.safetensors` (and `tokenizer.json`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(NnError::Hub {
                    repo: dir.display().to_string(),
                    file: name.into(),
                    reason: "not found in checkpoint directory".into(),
                })
            }
        };
        let tokenizer = dir.join("tokenizer.json");
        Ok(Self {
            config: need("config.json")?,
            weights: need("model.safetensors")?,
            tokenizer: tokenizer.is_file().then_some(tokenizer),
            source: dir.display().to_string(),
        })
    }

    /// A hub model id (`sentence-transformers/all-MiniLM-L6-v2`) at `revision` (default
    /// `main`). Files already in the hf-hub cache (`$HF_HOME/hub`) are used without network;
    /// missing ones are downloaded with `hf_hub::api::sync`.
    pub fn from_hub(model_id: &str, revision: Option<&str>) -> Result<Self> {
        let revision = revision.unwrap_or("main").to_string();
        let repo = Repo::with_revision(model_id.to_string(), RepoType::Model, revision.clone());
        let cache = Cache::from_env();
        let cached = cache.repo(repo.clone());
        let mut api_repo = None;
        let mut fetch = |file: &str, required: bool| -> Result<Option<PathBuf>> {
            if let Some(p) = cached.get(file) {
                return Ok(Some(p));
            }
            // A revision that is a commit (what shared files record) names its snapshot
            // directory directly; the cache has no `refs/<commit>` for it.
            let pinned = cache
                .path()
                .join(repo.folder_name())
                .join("snapshots")
                .join(&revision)
                .join(file);
            if pinned.is_file() {
                return Ok(Some(pinned));
            }
            let hub_err = |reason: String| NnError::Hub {
                repo: model_id.to_string(),
                file: file.to_string(),
                reason,
            };
            if api_repo.is_none() {
                let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
                    .with_progress(false)
                    .build()
                    .map_err(|e| hub_err(e.to_string()))?;
                api_repo = Some(api.repo(repo.clone()));
            }
            let Some(r) = api_repo.as_ref() else {
                return Err(hub_err("no api".into()));
            };
            match r.get(file) {
                Ok(p) => Ok(Some(p)),
                Err(_) if !required => Ok(None),
                Err(e) => Err(hub_err(format!(
                    "not in the hf-hub cache ({}) and download failed: {e}",
                    cache.path().display()
                ))),
            }
        };
        let config = fetch("config.json", true)?;
        let weights = fetch("model.safetensors", true)?;
        let tokenizer = fetch("tokenizer.json", false)?;
        let (Some(config), Some(weights)) = (config, weights) else {
            return Err(NnError::Hub {
                repo: model_id.into(),
                file: "config.json".into(),
                reason: "unavailable".into(),
            });
        };
        // The snapshot directory is named by the commit the revision resolved to.
        let commit = weights
            .parent()
            .and_then(Path::file_name)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or(revision);
        Ok(Self {
            config,
            weights,
            tokenizer,
            source: format!("{model_id}@{commit}"),
        })
    }

    /// A local directory if `spec` is one, a hub model id otherwise (`id` or `id@revision`).
    pub fn resolve(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::from_dir(path);
        }
        match spec.split_once('@') {
            Some((id, rev)) => Self::from_hub(id, Some(rev)),
            None => Self::from_hub(spec, None),
        }
    }
}
