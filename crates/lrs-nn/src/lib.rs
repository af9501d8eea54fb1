//! Candle layers for low-rank + sparse personalization (docs/DESIGN.md §The model).
//!
//! Every adapted linear layer of a frozen BERT computes
//! `y = x W0ᵀ + b0 + s·((x V) ⊙ w_task) Uᵀ + x S_taskᵀ` ([`LrsLinear`]): `U`, `V` shared by all
//! tasks ([`SharedFactor`], `shared.safetensors`), `w` and a sparse `S` per task
//! ([`TaskDelta`], `<task>.safetensors`). A batch may mix tasks ([`TaskBatch`]).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use lrs_nn::bert::{config::BertConfig, model::{BertInput, BertModel, Pooling}, LrsOptions};
//! use lrs_nn::{hard_threshold, LayerDelta, SparsePart, TaskBatch, TaskDelta};
//!
//! # fn main() -> lrs_nn::Result<()> {
//! let dev = Device::Cpu;
//! let cfg: BertConfig = serde_json::from_str(r#"{"vocab_size": 50, "hidden_size": 16,
//!     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
//!     "max_position_embeddings": 16}"#).map_err(|e| lrs_nn::NnError::Invalid(e.to_string()))?;
//! // A random frozen base (use `BertModel::load(&BertCheckpoint::from_hub(..)?, ..)` for real).
//! let base = VarMap::new();
//! let base_vb = VarBuilder::from_varmap(&base, DType::F32, &dev);
//! let shared = VarMap::new();
//! let opts = LrsOptions::bert_default(4);
//! let model = BertModel::new(&cfg, base_vb, Some((&opts, &shared)))?;
//!
//! // One task: a core scaling and a 1%-dense sparse correction on one layer.
//! let mut task = TaskDelta::new("alice", 4);
//! let name = "encoder.layer.0.attention.self.query";
//! let s = hard_threshold(&lrs_nn::testing::seeded_tensor(&[16, 16], 0.0, 1.0, 3)?, 3)?;
//! task.layers.insert(name.into(), LayerDelta {
//!     w: Some(Tensor::new(&[1f32, 2.0, 0.5, 1.0], &dev)?),
//!     sparse: SparsePart::Sparse(s),
//! });
//! let plain = TaskDelta::new("bob", 4);
//!
//! let ids = Tensor::new(&[[1u32, 5, 7, 2], [1, 9, 2, 0]], &dev)?;
//! let input = BertInput::from_ids(ids)?;
//! let rows = TaskBatch::per_row(&[&task, &plain], &dev)?;
//! let emb = model.embed(&input, Some(&rows), Pooling::Mean)?;
//! assert_eq!(emb.dims(), &[2, 16]);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod bert;
mod csr;
pub mod error;
pub mod export;
pub mod files;
pub mod fused;
pub mod hub;
pub mod layer_delta;
pub mod layer_norm;
pub mod lora_part;
pub mod lrs_linear;
mod matmul;
mod multi_task_sparse;
mod sparse_apply;
pub mod sparse_delta;
pub mod task_batch;
pub mod testing;
pub mod tokenize;

pub use bert::model::{BertInput, BertModel, Pooling};
pub use bert::LrsOptions;
pub use error::{FileError, NnError, Result};
pub use files::shared_factor::SharedFactor;
pub use files::task_delta::{TaskDelta, TaskProvenance};
pub use files::{LoadCheck, ModelFile};
pub use hub::BertCheckpoint;
pub use layer_delta::{LayerDelta, SparsePart};
pub use lora_part::LoraPart;
pub use lrs_linear::{lrs_linear, LowRank, LowRankInit, LrsLinear, Projection};
pub use sparse_delta::{hard_threshold, SparseDelta};
pub use task_batch::TaskBatch;
pub use tokenize::BertTokenizer;
