//! Shared fixtures of the trainer tests: a tiny random BERT and generated tasks.
#![allow(dead_code)]

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use lrs_nn::testing::{tiny_config, write_seeded_checkpoint};
use lrs_nn::{BertCheckpoint, SparsePart, TaskDelta};
use lrs_train::trainer::{Budget, Method, TaskData, TextEncoder, TrainConfig, Trainer};
use lrs_train::{Example, Split};

/// Words → ids `3 + (fnv(word) mod 90)` between `[CLS]` = 1 and `[SEP]` = 2 (tiny vocab 100).
pub struct HashEncoder;

impl TextEncoder for HashEncoder {
    fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut ids = vec![1];
        for w in text.split_whitespace() {
            let h = w.bytes().fold(0xcbf2_9ce4u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            ids.push(3 + h % 90);
        }
        ids.push(2);
        Ok(ids)
    }
}

pub const WORDS: [&str; 8] = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree"];

/// `tasks` tasks of `rows` train and 6 test rows: a row is positive iff it holds the task's
/// own "key" word (so tasks disagree and personalization matters).
pub fn tiny_data(tasks: usize, rows: usize) -> TaskData {
    let mut splits = Vec::new();
    for t in 0..tasks {
        let key = WORDS[t % WORDS.len()];
        let make = |n: usize, offset: usize| -> Vec<Example> {
            (0..n)
                .map(|j| {
                    let i = j + offset;
                    let positive = i % 2 == 0;
                    let a = WORDS[(i * 3 + t + 1) % WORDS.len()];
                    let b = WORDS[(i * 5 + 2 * t + 3) % WORDS.len()];
                    let text = if positive {
                        format!("{a} {key} {b}")
                    } else {
                        format!("{a} {b}").replace(key, "sky")
                    };
                    Example {
                        task: format!("t{t}"),
                        text,
                        label: if positive { 1.0 } else { 0.0 },
                        timestamp: None,
                    }
                })
                .collect()
        };
        splits.push(Split {
            task: format!("t{t}"),
            train: make(rows, 0),
            test: make(6, rows),
        });
    }
    TaskData::from_splits(&splits, &HashEncoder).expect("generated texts encode")
}

pub fn tiny_config_toml(method: Method) -> TrainConfig {
    TrainConfig {
        method,
        rank: 2,
        rounds: 2,
        sparsity: lrs_train::trainer::SparsityConfig {
            budget: Budget::Count(6),
            anneal_start: 3.0,
            anneal_rounds: None,
        },
        shared: lrs_train::trainer::SharedPhaseConfig {
            steps: 8,
            lr: 1e-2,
            weight_decay: 0.0,
            batch_size: 8,
            ..Default::default()
        },
        task: lrs_train::trainer::TaskPhaseConfig {
            steps: 8,
            lr: 5e-2,
            sparse_steps: 6,
            sparse_lr: 0.05,
            regrow: 0.0,
            support_stages: 1,
            support_swaps: 0,
            head_nnz: 0,
            head_weight: true,
            core_init_std: 0.0,
        },
        seed: 11,
        ..TrainConfig::default()
    }
}

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub ckpt: BertCheckpoint,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    write_seeded_checkpoint(dir.path(), &tiny_config(), 7).expect("tiny checkpoint");
    let ckpt = BertCheckpoint::from_dir(dir.path()).expect("checkpoint dir");
    Fixture { _dir: dir, ckpt }
}

pub fn trainer(f: &Fixture, cfg: TrainConfig, data: &TaskData) -> Trainer {
    let model = Trainer::load_model(&f.ckpt, &cfg, &Device::Cpu).expect("model");
    Trainer::new(model, cfg, data).expect("trainer")
}

pub fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32 tensor")
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Every shared var, bit for bit.
pub fn shared_snapshot(t: &Trainer) -> BTreeMap<String, Vec<u32>> {
    let vars = t.model().shared_vars().expect("shared vars");
    let data = vars.data().lock().expect("lock");
    data.iter()
        .map(|(k, v)| (k.clone(), bits(v.as_tensor())))
        .collect()
}

/// Every per-task part (w, S indices and values, head), bit for bit.
pub fn task_snapshot(tasks: &[TaskDelta]) -> Vec<BTreeMap<String, Vec<u32>>> {
    tasks
        .iter()
        .map(|task| {
            let mut m = BTreeMap::new();
            for (name, layer) in &task.layers {
                if let Some(w) = &layer.w {
                    m.insert(format!("{name}.w"), bits(w));
                }
                match &layer.sparse {
                    SparsePart::None => {}
                    SparsePart::Sparse(s) => {
                        m.insert(format!("{name}.idx"), s.indices().to_vec());
                        m.insert(format!("{name}.val"), bits(s.values()));
                    }
                    SparsePart::Dense(_) | SparsePart::RowScratch(_) => {
                        panic!("{name}: dense scratch left behind")
                    }
                }
            }
            for (name, h) in &task.head {
                m.insert(name.clone(), bits(h));
            }
            m
        })
        .collect()
}
