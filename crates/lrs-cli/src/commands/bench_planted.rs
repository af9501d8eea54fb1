//! `lrs bench planted`: the planted deep benchmark. A seeded random BERT teacher whose task `i`
//! computes with `W0 + U*·diag(w*_i)·V*ᵀ + S*_i` labels random texts
//! ([`lrs_train::planted`]); students of every method start from the same `W0`, get their
//! learning rates chosen on validation rows carved from each task's training rows (seed 0,
//! the same grid for every method) and are scored on test rows, for several `m` and seeds.
//! Prints mean ± sd test AUC, the smallest `m` reaching `--target-auc`, and the sparse
//! support's precision/recall against the planted one.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use lrs_nn::testing::{tiny_config, write_seeded_checkpoint};
use lrs_nn::{BertCheckpoint, SparsePart};
use lrs_train::planted::{PlantedSpec, PlantedTruth, TruthParts};
use lrs_train::trainer::{Budget, Method, Part, TaskData, Trainer};
use lrs_train::TrainConfig;
use serde_json::json;

use super::report::mean_sd;

/// Arguments of `lrs bench planted`.
#[derive(Debug, Args)]
pub struct BenchPlantedArgs {
    /// The students' training config (method and seed are set per run; its `target_modules`,
    /// `rank` and budget also define what is planted unless overridden below).
    #[arg(long, default_value = "configs/planted.toml")]
    pub config: PathBuf,
    /// Methods to train.
    #[arg(long, value_delimiter = ',', default_values_t = ["lrs", "shared-only", "sparse-only", "lora", "head-only", "global"].map(String::from).to_vec())]
    pub methods: Vec<String>,
    /// Training rows per task.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10, 20, 40, 80])]
    pub shots: Vec<usize>,
    /// Seeds: each draws its own teacher, data and student initialisation.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Tasks.
    #[arg(long, default_value_t = 64)]
    pub tasks: usize,
    /// Test rows per task.
    #[arg(long, default_value_t = 64)]
    pub test_rows: usize,
    /// Planted rank (default: the config's `rank`).
    #[arg(long)]
    pub planted_rank: Option<usize>,
    /// Planted entries per task and module (default: the config's `budget.count`).
    #[arg(long)]
    pub planted_k: Option<usize>,
    /// Magnitude of the planted sparse values.
    #[arg(long, default_value_t = 2.0)]
    pub sparse_value: f32,
    /// Standard deviation of the planted per-task coordinates `w*`.
    #[arg(long, default_value_t = 1.0)]
    pub core_std: f32,
    /// Hidden size of the random base (2 layers, 4 heads, FFN 2× hidden, vocab 100).
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// Learning-rate multipliers tried per method and m (on every lr of the config), chosen
    /// by mean validation AUC on seed 0 and used for every seed; one value skips tuning.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.5, 1.0, 2.0])]
    pub lr_grid: Vec<f64>,
    /// Share of each task's training rows carved into validation rows for tuning.
    #[arg(long, default_value_t = 0.25)]
    pub validation: f64,
    /// The AUC whose first `m` is reported per method.
    #[arg(long, default_value_t = 0.8)]
    pub target_auc: f64,
    /// Score validation rows instead of test rows (each student trains on the rows left after
    /// carving `--validation`): for choosing the config itself without reading test rows.
    #[arg(long)]
    pub validation_only: bool,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// One student's result.
struct Outcome {
    auc: f64,
    multiplier: f64,
    precision_recall: Option<(f64, f64)>,
    seconds: f64,
}

/// Runs `lrs bench planted`.
pub fn run(mut a: BenchPlantedArgs) -> anyhow::Result<()> {
    a.shots.sort_unstable();
    a.shots.dedup();
    let base = TrainConfig::from_file(&a.config)?;
    let methods: Vec<Method> = a
        .methods
        .iter()
        .map(|m| m.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    if a.seeds == 0 || a.shots.is_empty() || a.lr_grid.is_empty() {
        bail!("--seeds, --shots and --lr-grid need at least one value");
    }
    if a.validation_only && a.lr_grid.len() > 1 {
        bail!("--validation-only takes one --lr-grid value (it scores the rows tuning would use)");
    }
    if a.lr_grid.iter().any(|m| !(m.is_finite() && *m > 0.0)) {
        bail!("--lr-grid values must be positive");
    }
    let k = match (a.planted_k, base.sparsity.budget) {
        (Some(k), _) | (None, Budget::Count(k)) => k,
        (None, Budget::Density(_)) => bail!("give --planted-k with a density budget"),
    };
    if a.hidden == 0 || !a.hidden.is_multiple_of(4) {
        bail!("--hidden must be a positive multiple of 4 (4 heads)");
    }
    let dir = tempfile::tempdir()?;
    let bert = lrs_nn::bert::config::BertConfig {
        hidden_size: a.hidden,
        intermediate_size: 2 * a.hidden,
        ..tiny_config()
    };
    let m_max = a.shots.last().copied().unwrap_or(1); // sorted above

    // results[method][shot] = outcomes over seeds.
    let mut results: Vec<Vec<Vec<Outcome>>> = methods
        .iter()
        .map(|_| a.shots.iter().map(|_| Vec::new()).collect())
        .collect();
    // The lr multiplier of each (method, m), chosen on seed 0's validation rows.
    let mut chosen = vec![vec![1.0; a.shots.len()]; methods.len()];
    let mut oracles: Vec<[f64; 3]> = Vec::new();
    for seed in 0..a.seeds {
        let ckpt_dir = dir.path().join(format!("base-{seed}"));
        std::fs::create_dir_all(&ckpt_dir)?;
        write_seeded_checkpoint(&ckpt_dir, &bert, 1000 + seed)?;
        let ckpt = BertCheckpoint::from_dir(&ckpt_dir)?;
        let spec = PlantedSpec {
            tasks: a.tasks,
            train_rows: m_max,
            test_rows: a.test_rows,
            rank: a.planted_rank.unwrap_or(base.rank),
            k,
            target_modules: base.target_modules.clone(),
            sparse_value: a.sparse_value,
            core_std: a.core_std,
            seed,
            ..PlantedSpec::default()
        };
        let truth = PlantedTruth::generate(&ckpt, &spec).context("generating the teacher")?;
        oracles.push([
            truth.oracle_auc(TruthParts::None)?,
            truth.oracle_auc(TruthParts::LowRank)?,
            truth.oracle_auc(TruthParts::Sparse)?,
        ]);
        for (si, &m) in a.shots.iter().enumerate() {
            let mut data = truth.with_shots(m)?;
            if a.validation_only {
                data.carve_validation(a.validation)?;
            }
            let (scored, rows) = if a.validation_only {
                (Part::Validation, "validation")
            } else {
                (Part::Test, "test")
            };
            for (mi, &method) in methods.iter().enumerate() {
                let mut cfg = base.clone();
                cfg.method = method;
                cfg.seed = seed;
                if seed == 0 {
                    chosen[mi][si] = tune(&ckpt, &cfg, &data, &a)?;
                }
                let outcome = student(&ckpt, &cfg, &data, &truth, chosen[mi][si], scored)?;
                if a.json {
                    println!(
                        "{}",
                        json!({"seed": seed, "m": m, "method": method.name(),
                               "scored": rows, "auc": outcome.auc,
                               "lr_multiplier": outcome.multiplier,
                               "support": outcome.precision_recall, "seconds": outcome.seconds})
                    );
                } else {
                    eprintln!(
                        "seed {seed} m {m:>3} {:<12} {rows} AUC {:.4} (lr ×{}) {:.1} s",
                        method.name(),
                        outcome.auc,
                        outcome.multiplier,
                        outcome.seconds
                    );
                }
                results[mi][si].push(outcome);
            }
        }
    }
    print_table(&a, &methods, &results, &oracles);
    Ok(())
}

/// The `--lr-grid` multiplier with the best mean validation AUC, validation rows carved from
/// `data`'s training rows (the first grid value when the grid has one).
fn tune(
    ckpt: &BertCheckpoint,
    base: &TrainConfig,
    data: &TaskData,
    a: &BenchPlantedArgs,
) -> anyhow::Result<f64> {
    if a.lr_grid.len() == 1 {
        return Ok(a.lr_grid[0]);
    }
    let mut tuning = data.clone();
    tuning.carve_validation(a.validation)?;
    let (mut best, mut multiplier) = (f64::NEG_INFINITY, a.lr_grid[0]);
    for &mult in &a.lr_grid {
        let t = train(ckpt, &scaled(base, mult), &tuning)?;
        let auc = t
            .evaluate(&tuning, Part::Validation)?
            .mean_auc()
            .map_or(0.5, |a| a.0);
        if auc > best {
            (best, multiplier) = (auc, mult);
        }
    }
    Ok(multiplier)
}

/// Trains on all of `data`'s training rows with the learning rates scaled by `multiplier`
/// and scores its `scored` rows.
fn student(
    ckpt: &BertCheckpoint,
    base: &TrainConfig,
    data: &TaskData,
    truth: &PlantedTruth,
    multiplier: f64,
    scored: Part,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let t = train(ckpt, &scaled(base, multiplier), data)?;
    let seconds = start.elapsed().as_secs_f64();
    let auc = t.evaluate(data, scored)?.mean_auc().map_or(0.5, |a| a.0);
    let precision_recall = base
        .method
        .trains_sparse()
        .then(|| support_match(&t, truth));
    Ok(Outcome {
        auc,
        multiplier,
        precision_recall,
        seconds,
    })
}

fn scaled(base: &TrainConfig, mult: f64) -> TrainConfig {
    let mut cfg = base.clone();
    cfg.shared.lr *= mult;
    cfg.task.lr *= mult;
    cfg.task.sparse_lr *= mult;
    cfg
}

fn train(ckpt: &BertCheckpoint, cfg: &TrainConfig, data: &TaskData) -> anyhow::Result<Trainer> {
    let model = Trainer::load_model(ckpt, cfg, &candle_core::Device::Cpu)?;
    let mut t = Trainer::new(model, cfg.clone(), data)?;
    for _ in 0..cfg.rounds {
        t.round(data)?;
    }
    Ok(t)
}

/// Precision and recall of the students' supports, pooled over tasks and modules.
fn support_match(t: &Trainer, truth: &PlantedTruth) -> (f64, f64) {
    let (mut hits, mut found, mut planted) = (0.0, 0.0, 0.0);
    for (i, task) in t.tasks().iter().enumerate() {
        for (module, layer) in &task.layers {
            let (Some(p), SparsePart::Sparse(s)) = (truth.support(i, module), &layer.sparse) else {
                continue;
            };
            hits += s.indices().iter().filter(|i| p.contains(i)).count() as f64;
            found += s.indices().len() as f64;
            planted += p.len() as f64;
        }
    }
    (hits / found.max(1.0), hits / planted.max(1.0))
}

fn print_table(
    a: &BenchPlantedArgs,
    methods: &[Method],
    results: &[Vec<Vec<Outcome>>],
    oracles: &[[f64; 3]],
) {
    let col = |i: usize| oracles.iter().map(|o| o[i]).collect::<Vec<_>>();
    let (none, low, sparse) = (mean_sd(&col(0)), mean_sd(&col(1)), mean_sd(&col(2)));
    println!(
        "teacher with parts removed (test AUC vs its own labels): base only {:.4}, low-rank only {:.4}, sparse only {:.4}",
        none.0, low.0, sparse.0
    );
    if a.validation_only {
        println!(
            "scored: validation rows (the latest {} of each task's m)",
            a.validation
        );
    }
    let mut header = String::from("| method |");
    for m in &a.shots {
        header.push_str(&format!(" m = {m} |"));
    }
    let m_max = a.shots.last().copied().unwrap_or(0);
    header.push_str(&format!(
        " first m with AUC ≥ {} | train s (m = {m_max}) |",
        a.target_auc
    ));
    println!("{header}");
    println!("|---|{}---|---|", "---|".repeat(a.shots.len()));
    for (mi, method) in methods.iter().enumerate() {
        let mut line = format!("| {} |", method.name());
        let mut first = None;
        for (si, &m) in a.shots.iter().enumerate() {
            let aucs: Vec<f64> = results[mi][si].iter().map(|o| o.auc).collect();
            let (mean, sd) = mean_sd(&aucs);
            if first.is_none() && mean >= a.target_auc {
                first = Some(m);
            }
            line.push_str(&format!(" {mean:.4} ± {sd:.4} |"));
        }
        line.push_str(&first.map_or(" — |".to_string(), |m| format!(" {m} |")));
        let last = results[mi].last().map_or(&[][..], Vec::as_slice);
        let secs = mean_sd(&last.iter().map(|o| o.seconds).collect::<Vec<_>>()).0;
        line.push_str(&format!(" {secs:.1} |"));
        println!("{line}");
    }
    for (mi, method) in methods.iter().enumerate() {
        if !method.trains_sparse() {
            continue;
        }
        let mut line = format!("support of {} (precision / recall):", method.name());
        for (si, &m) in a.shots.iter().enumerate() {
            let pr: Vec<(f64, f64)> = results[mi][si]
                .iter()
                .filter_map(|o| o.precision_recall)
                .collect();
            let p = mean_sd(&pr.iter().map(|x| x.0).collect::<Vec<_>>()).0;
            let r = mean_sd(&pr.iter().map(|x| x.1).collect::<Vec<_>>()).0;
            line.push_str(&format!(" m={m}: {p:.2} / {r:.2};"));
        }
        println!("{line}");
    }
}
