//! A BERT encoder on candle-nn whose linear layers are [`LrsLinear`]s: adapted (shared low-rank
//! factor + per-task deltas) when their module name matches [`LrsOptions::target_modules`],
//! plain otherwise. Module names are the base checkpoint's (`encoder.layer.3.attention.self.query`).

pub mod attention;
pub mod binary_head;
pub mod config;
pub mod embeddings;
pub mod encoder;
pub mod head;
pub mod model;
pub mod packing;
pub mod prefix;

use candle_core::Tensor;
use candle_nn::{Module, VarBuilder};

use crate::lrs_linear::{lrs_linear, LowRankInit, LrsLinear};
use crate::task_batch::TaskBatch;

/// Which linear layers get an LRS adapter, and its rank and scale.
#[derive(Debug, Clone, PartialEq)]
pub struct LrsOptions {
    /// Module-name patterns; a module is adapted when its full name equals a pattern or ends
    /// with `.` + pattern (PEFT's convention): `output.dense` adapts both
    /// `encoder.layer.N.attention.output.dense` and `encoder.layer.N.output.dense`.
    pub target_modules: Vec<String>,
    /// Rank `r`.
    pub rank: usize,
    /// Scale `s` of the low-rank path.
    pub scale: f64,
}

impl LrsOptions {
    /// The four BERT targets of docs/DESIGN.md §The model with rank `r` and `s = 1`.
    pub fn bert_default(rank: usize) -> Self {
        Self {
            target_modules: [
                "attention.self.query",
                "attention.self.value",
                "intermediate.dense",
                "output.dense",
            ]
            .map(String::from)
            .to_vec(),
            rank,
            scale: 1.0,
        }
    }

    /// Whether the module called `name` is adapted.
    pub fn matches(&self, name: &str) -> bool {
        self.target_modules.iter().any(|p| {
            name == p
                || name
                    .strip_suffix(p.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

/// Threads the frozen-base and shared-factor builders through the module tree together, so
/// both see the same (checkpoint) names.
#[derive(Clone)]
pub(crate) struct Builder<'a> {
    pub base: VarBuilder<'a>,
    pub shared: Option<(&'a LrsOptions, VarBuilder<'a>)>,
}

impl<'a> Builder<'a> {
    pub fn pp(&self, name: &str) -> Self {
        Self {
            base: self.base.pp(name),
            shared: self.shared.as_ref().map(|(o, vb)| (*o, vb.pp(name))),
        }
    }

    /// An [`LrsLinear`] named by the current prefix, adapted iff the name matches a target.
    pub fn linear(&self, in_dim: usize, out_dim: usize) -> candle_core::Result<LrsLinear> {
        let name = self.base.prefix();
        let shared = match &self.shared {
            Some((opts, vb)) if opts.matches(&name) => Some((
                LowRankInit {
                    rank: opts.rank,
                    scale: opts.scale,
                },
                vb.clone(),
            )),
            _ => None,
        };
        lrs_linear(in_dim, out_dim, self.base.clone(), shared)
    }
}

/// Applies a linear layer with the batch's tasks if there are any.
pub(crate) fn apply(
    layer: &LrsLinear,
    x: &Tensor,
    tasks: Option<&TaskBatch>,
) -> candle_core::Result<Tensor> {
    match tasks {
        Some(t) => layer.forward_tasks(x, t),
        None => layer.forward(x),
    }
}

#[cfg(test)]
mod tests;
