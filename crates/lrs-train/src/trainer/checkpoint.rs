//! Checkpoints: everything a resumed run needs to continue exactly as an uninterrupted one
//! would — the shared vars, the shared optimizer's moments and step count, every task's parts
//! (f32, not the f16 of published task files), the minibatch RNG's position and the round.
//!
//! Layout under a checkpoint root (e.g. `<run>/checkpoint/`): one directory per saved round
//! (`round-0003/`) holding `shared.safetensors`, `optimizer.safetensors`, `tasks/NNNNN.safetensors`
//! and `state.json`; the file `LATEST` names the newest complete one.
//!
//! Crash safety: a checkpoint is written into a staging directory (`.round-0003.partial/`),
//! every file and directory in it synced, then renamed to `round-0003/`, and only then is
//! `LATEST` replaced (atomically). Superseded checkpoints are renamed to a hidden
//! `.round-*.old` name before they are deleted. So every `round-*` directory is complete,
//! `LATEST` always names one, and a process killed at any point leaves the previous
//! checkpoint in force. The next save removes what a killed one left: hidden `.round-*`
//! directories, superseded `round-*` directories and `LATEST`'s temp files (a run has one
//! trainer, the root's only writer).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use lrs_nn::files::atomic::write_atomic;
use lrs_nn::ModelFile;
use lrs_nn::{TaskDelta, TaskProvenance};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use super::error::{io, Result, TrainError};
use super::Trainer;

/// The pointer file naming the newest complete checkpoint directory.
pub const LATEST: &str = "LATEST";

/// Name suffix of a checkpoint directory still being written.
const PARTIAL_SUFFIX: &str = ".partial";

/// Name suffix of a checkpoint directory being deleted.
const TRASH_SUFFIX: &str = ".old";

/// `state.json`: the scalar part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    round: usize,
    rng_seed: String,
    rng_stream: u64,
    rng_word_pos: String,
    optimizer_steps: usize,
    config: String,
    tasks: Vec<String>,
    shared_sha256: String,
    #[serde(default)]
    private_steps: u64,
}

fn bad(reason: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        reason: reason.into(),
    }
}

/// Writes `tensors` as safetensors and syncs the file.
fn save_synced(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<Vec<u8>> {
    candle_core::safetensors::save(tensors, path)?;
    let bytes = std::fs::read(path).map_err(io(path))?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))?;
    Ok(bytes)
}

impl Trainer {
    /// Saves the full training state under `root` (see the module docs) and returns the
    /// checkpoint directory.
    pub fn save_checkpoint(&self, root: &Path) -> Result<PathBuf> {
        let round_name = format!("round-{:04}", self.round);
        let dir = root.join(format!(".{round_name}{PARTIAL_SUFFIX}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        let task_dir = dir.join("tasks");
        std::fs::create_dir_all(&task_dir).map_err(io(&task_dir))?;

        let vars = self
            .model
            .shared_vars()
            .ok_or_else(|| bad("model has no shared vars"))?;
        let shared: HashMap<String, Tensor> = {
            let data = vars.data().lock().map_err(|_| bad("var map poisoned"))?;
            data.iter()
                .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
                .collect()
        };
        let shared_path = dir.join("shared.safetensors");
        let shared_sha256 = lrs_nn::files::sha256_hex(&save_synced(&shared, &shared_path)?);

        let mut opt_tensors = HashMap::new();
        let optimizer_steps = match &self.shared_opt {
            Some(opt) => {
                let (m, v) = opt.moments();
                for (i, (m, v)) in m.iter().zip(v).enumerate() {
                    opt_tensors.insert(format!("m.{i}"), m.clone());
                    opt_tensors.insert(format!("v.{i}"), v.clone());
                }
                opt.steps_taken()
            }
            None => 0,
        };
        save_synced(&opt_tensors, &dir.join("optimizer.safetensors"))?;

        let provenance = TaskProvenance {
            base_sha256: self.model.base_info().sha256.clone(),
            shared_sha256: shared_sha256.clone(),
        };
        for (i, task) in self.tasks.iter().enumerate() {
            task.save(
                &task_dir.join(format!("{i:05}.safetensors")),
                &provenance,
                DType::F32,
            )?;
        }
        let state = State {
            round: self.round,
            rng_seed: hex_encode(&self.rng.get_seed()),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
            optimizer_steps,
            config: toml::to_string(&self.config).map_err(|e| bad(e.to_string()))?,
            tasks: self.tasks.iter().map(|t| t.task_id.clone()).collect(),
            shared_sha256,
            private_steps: self.private.map_or(0, |p| p.steps_done),
        };
        let state_path = dir.join("state.json");
        let json = serde_json::to_vec_pretty(&state).map_err(|e| bad(e.to_string()))?;
        write_atomic(&state_path, &json)?;
        // The files are synced; their directory entries must be too before the rename.
        sync_dir(&task_dir)?;
        sync_dir(&dir)?;
        let name = Self::free_round_name(root, &round_name)?;
        let final_dir = root.join(&name);
        std::fs::rename(&dir, &final_dir).map_err(io(&final_dir))?;
        sync_dir(root)?;
        write_atomic(&root.join(LATEST), name.as_bytes())?;
        // Everything else under the root is superseded or left by a killed save. A
        // superseded checkpoint is first renamed out of the `round-*` names, so no visible
        // checkpoint directory is ever half-deleted.
        let entries = std::fs::read_dir(root).map_err(io(root))?;
        for e in entries.flatten() {
            let p = e.path();
            let Some(other) = p.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !p.is_dir() || other == name {
                continue;
            }
            if other.starts_with("round-") {
                let _ = discard(root, other);
            } else if other.starts_with(".round-")
                && (other.ends_with(PARTIAL_SUFFIX) || other.ends_with(TRASH_SUFFIX))
            {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        lrs_nn::files::atomic::remove_stale_temps(root, std::time::Duration::ZERO)?;
        Ok(final_dir)
    }

    /// The name a new checkpoint of round `round_name` takes under `root`: `round_name`
    /// itself, after removing a directory of that name that `LATEST` does not name (a killed
    /// save's); if `LATEST` names it (the same round saved again), `round_name.N` for the
    /// first free `N`, so the checkpoint in force is never touched.
    fn free_round_name(root: &Path, round_name: &str) -> Result<String> {
        let current = match Self::latest_checkpoint(root) {
            Ok(Some(p)) => p.file_name().and_then(|n| n.to_str()).map(String::from),
            _ => None,
        };
        let mut name = round_name.to_string();
        let mut n = 0;
        loop {
            let p = root.join(&name);
            if current.as_deref() != Some(name.as_str()) {
                if p.exists() {
                    discard(root, &name)?;
                }
                return Ok(name);
            }
            n += 1;
            name = format!("{round_name}.{n}");
        }
    }

    /// The newest complete checkpoint under `root`, if any.
    pub fn latest_checkpoint(root: &Path) -> Result<Option<PathBuf>> {
        let pointer = root.join(LATEST);
        match std::fs::read_to_string(&pointer) {
            Ok(name) => {
                let name = name.trim();
                if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                    return Err(bad(format!(
                        "{}: bad checkpoint name `{name}`",
                        pointer.display()
                    )));
                }
                Ok(Some(root.join(name)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&pointer)(e)),
        }
    }

    /// Restores a checkpoint written by [`Self::save_checkpoint`] into this trainer, which
    /// must have been built by [`Trainer::new`] with the same model, config and data.
    pub fn restore_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let state_path = dir.join("state.json");
        let text = std::fs::read(&state_path).map_err(io(&state_path))?;
        let state: State = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("{}: {e}", state_path.display())))?;
        let ours = toml::to_string(&self.config).map_err(|e| bad(e.to_string()))?;
        if state.config != ours {
            return Err(bad(format!(
                "{} was written with a different config; resume with the run's own config",
                dir.display()
            )));
        }
        let ids: Vec<String> = self.tasks.iter().map(|t| t.task_id.clone()).collect();
        if state.tasks != ids {
            return Err(bad(format!(
                "{} holds {} tasks that differ from the trainer's {}",
                dir.display(),
                state.tasks.len(),
                ids.len()
            )));
        }
        let device = self.model.device().clone();
        let shared_path = dir.join("shared.safetensors");
        let bytes = std::fs::read(&shared_path).map_err(io(&shared_path))?;
        if lrs_nn::files::sha256_hex(&bytes) != state.shared_sha256 {
            return Err(bad(format!(
                "{} does not match state.json",
                shared_path.display()
            )));
        }
        let shared = candle_core::safetensors::load_buffer(&bytes, &device)?;
        {
            let vars = self
                .model
                .shared_vars()
                .ok_or_else(|| bad("model has no shared vars"))?;
            let data = vars.data().lock().map_err(|_| bad("var map poisoned"))?;
            if data.len() != shared.len() {
                return Err(bad(format!(
                    "checkpoint has {} shared tensors, model {}",
                    shared.len(),
                    data.len()
                )));
            }
            for (name, var) in data.iter() {
                let t = shared
                    .get(name)
                    .ok_or_else(|| bad(format!("checkpoint lacks shared var {name}")))?;
                if t.dims() != var.dims() {
                    return Err(bad(format!(
                        "shared var {name}: shape {:?} vs {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                var.set(t)?;
            }
        }
        let opt_path = dir.join("optimizer.safetensors");
        let opt_tensors = candle_core::safetensors::load(&opt_path, &device)?;
        if let Some(opt) = &mut self.shared_opt {
            let n = opt.vars().len();
            let get = |k: String| {
                opt_tensors
                    .get(&k)
                    .cloned()
                    .ok_or_else(|| bad(format!("optimizer state lacks {k}")))
            };
            let m = (0..n)
                .map(|i| get(format!("m.{i}")))
                .collect::<Result<Vec<_>>>()?;
            let v = (0..n)
                .map(|i| get(format!("v.{i}")))
                .collect::<Result<Vec<_>>>()?;
            opt.restore(state.optimizer_steps, m, v)?;
        }
        let check = self.model.load_check(Some(&state.shared_sha256));
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for i in 0..self.tasks.len() {
            let p = dir.join("tasks").join(format!("{i:05}.safetensors"));
            tasks.push(TaskDelta::load(&p, &check, &device, DType::F32)?);
        }
        let seed = hex_decode(&state.rng_seed).ok_or_else(|| bad("bad rng seed"))?;
        let word_pos: u128 = state
            .rng_word_pos
            .parse()
            .map_err(|_| bad("bad rng word position"))?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_stream(state.rng_stream);
        rng.set_word_pos(word_pos);
        if let Some(p) = &mut self.private {
            p.steps_done = state.private_steps;
        }
        self.tasks = tasks;
        self.rng = rng;
        self.round = state.round;
        Ok(())
    }
}

/// Deletes checkpoint directory `root/name` without ever showing it half-deleted: renamed to
/// the hidden `.name.old` first (replacing a leftover of that name; never the staging
/// directory `.name.partial`, which may hold the checkpoint being saved).
fn discard(root: &Path, name: &str) -> Result<()> {
    let trash = root.join(format!(".{name}{TRASH_SUFFIX}"));
    if trash.exists() {
        std::fs::remove_dir_all(&trash).map_err(io(&trash))?;
    }
    std::fs::rename(root.join(name), &trash).map_err(io(&trash))?;
    std::fs::remove_dir_all(&trash).map_err(io(&trash))
}

/// Makes the entries of directory `dir` durable (a no-op off Unix).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
