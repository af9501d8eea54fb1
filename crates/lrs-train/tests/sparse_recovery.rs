//! The task phase's sparse fit on a planted case: a teacher is the tiny BERT with a known
//! k-sparse delta `S*` in one layer; its task's labels are the teacher's decisions on random
//! token sequences. A student that starts at `S = 0` (same base and shared head) must fit the
//! held-out labels clearly better than the base does within the budget; the support it finds
//! is printed (precision/recall against the planted one).

mod common;

use candle_core::{Device, Tensor};
use common::*;
use lrs_nn::{LayerDelta, SparseDelta, SparsePart, TaskDelta};
use lrs_train::planted::{precision_recall, PlantedSpec, PlantedTruth, TruthParts};
use lrs_train::trainer::{
    Budget, Method, Part, Row, SparsityConfig, TaskData, TaskPhaseConfig, TaskRows, TrainConfig,
    Trainer,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const MODULE: &str = "encoder.layer.1.output.dense";
/// Planted entries.
const K: usize = 4;

fn config() -> TrainConfig {
    TrainConfig {
        method: Method::SparseOnly,
        rank: 2,
        target_modules: vec![MODULE.into()],
        rounds: 3,
        task_head: false,
        sparsity: SparsityConfig {
            budget: Budget::Count(K),
            anneal_start: 3.0,
            anneal_rounds: None,
        },
        shared: lrs_train::trainer::SharedPhaseConfig {
            steps: 0,
            ..Default::default()
        },
        task: TaskPhaseConfig {
            steps: 0,
            sparse_steps: 40,
            sparse_lr: 0.05,
            ..TaskPhaseConfig::default()
        },
        seed: 3,
        ..TrainConfig::default()
    }
}

/// `n` random texts of 5–9 word tokens (ids 3..100) between `[CLS]` and `[SEP]`.
fn texts(n: usize, rng: &mut ChaCha20Rng) -> Vec<Vec<u32>> {
    (0..n)
        .map(|_| {
            let len = rng.gen_range(5..10);
            let mut ids = vec![1];
            ids.extend((0..len).map(|_| rng.gen_range(3..100u32)));
            ids.push(2);
            ids
        })
        .collect()
}

fn data(train: &[Vec<u32>], test: &[Vec<u32>], labels: Option<(&[bool], &[bool])>) -> TaskData {
    let rows = |ids: &[Vec<u32>], y: Option<&[bool]>| -> Vec<Row> {
        ids.iter()
            .enumerate()
            .map(|(j, ids)| Row {
                ids: ids.clone(),
                positive: y.is_some_and(|y| y[j]),
            })
            .collect()
    };
    TaskData {
        tasks: vec![TaskRows {
            task: "planted".into(),
            train: rows(train, labels.map(|l| l.0)),
            validation: Vec::new(),
            test: rows(test, labels.map(|l| l.1)),
        }],
    }
}

/// The teacher's decisions: positive where its logit is above the median.
fn teacher_labels(teacher: &Trainer, truth: &TaskDelta, ids: &[Vec<u32>]) -> Vec<bool> {
    let rows = data(ids, &[], None).tasks.remove(0).train;
    let z = teacher.logits_of(truth, &rows).expect("teacher logits");
    let mut sorted = z.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    z.iter().map(|&v| v > median).collect()
}

/// Mean per-task test AUC.
fn test_auc(t: &Trainer, data: &TaskData) -> f64 {
    t.evaluate(data, Part::Test)
        .expect("eval")
        .mean_auc()
        .expect("auc")
        .0
}

/// Sets the shared head to a fixed seeded vector so logits vary from row to row.
fn set_head(t: &Trainer, rng: &mut ChaCha20Rng) {
    let vars = t.model().shared_vars().expect("shared vars");
    let data = vars.data().lock().expect("lock");
    let w: Vec<f32> = (0..32).map(|_| rng.gen_range(-1.0..1.0f32)).collect();
    data["head.weight"]
        .set(&Tensor::from_vec(w, (1, 32), &Device::Cpu).expect("head"))
        .expect("set head");
}

#[test]
fn the_sparse_fit_learns_a_planted_encoder_delta() {
    let f = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let (train_ids, test_ids) = (texts(384, &mut rng), texts(128, &mut rng));
    let unlabelled = data(&train_ids, &test_ids, None);

    // The teacher: the planted delta on MODULE ([32, 64]), K entries of size 20, random sign.
    let teacher = trainer(&f, config(), &unlabelled);
    set_head(&teacher, &mut ChaCha20Rng::seed_from_u64(5));
    let mut planted: Vec<u32> = rand::seq::index::sample(&mut rng, 32 * 64, K)
        .into_iter()
        .map(|i| i as u32)
        .collect();
    planted.sort_unstable();
    let values: Vec<f32> = (0..K)
        .map(|_| if rng.gen_bool(0.5) { 20.0 } else { -20.0 })
        .collect();
    let mut truth = TaskDelta::new("planted", 2);
    truth.layers.insert(
        MODULE.into(),
        LayerDelta {
            w: None,
            sparse: SparsePart::Sparse(
                SparseDelta::new(
                    32,
                    64,
                    planted.clone(),
                    Tensor::new(values.as_slice(), &Device::Cpu).expect("values"),
                )
                .expect("planted delta"),
            ),
        },
    );
    let labelled = data(
        &train_ids,
        &test_ids,
        Some((
            &teacher_labels(&teacher, &truth, &train_ids),
            &teacher_labels(&teacher, &truth, &test_ids),
        )),
    );

    // The student: same base and head, S = 0, three rounds of the task phase (budget 3K → K).
    let mut student = trainer(&f, config(), &labelled);
    set_head(&student, &mut ChaCha20Rng::seed_from_u64(5));
    let auc = |t: &Trainer| test_auc(t, &labelled);
    let base = auc(&student);
    for _ in 0..3 {
        student.round(&labelled).expect("round");
    }
    let fitted = auc(&student);
    let found: Vec<u32> = match &student.tasks()[0].layers[MODULE].sparse {
        SparsePart::Sparse(s) => s.indices().to_vec(),
        other => panic!("not hardened: {other:?}"),
    };
    let (precision, recall) = precision_recall(&found, &planted);
    eprintln!(
        "planted {planted:?} found {found:?}: precision {precision:.2} recall {recall:.2}, \
         test AUC {base:.4} → {fitted:.4}"
    );
    assert!(found.len() <= K, "{} entries > budget {K}", found.len());
    // Behind this layer sit only a layer norm, mean pooling and a linear head, so the logit
    // sees `S` through `Σ S_oi a_o X_i`: output rows with similar head weights are
    // interchangeable and the planted positions are not identifiable from labels. What must
    // hold is that the fit learns the planted effect.
    assert!(fitted > base + 0.05, "test AUC {base} → {fitted}");
}

/// What a student with a `K`-sparse task head found of a planted head delta.
struct HeadFit {
    planted: Vec<u32>,
    found: Vec<u32>,
    base_auc: f64,
    fitted_auc: f64,
    /// The training rows as the task head sees them: each row's pooled embedding, its logit
    /// without a task head (the offset), its label.
    features: Vec<Vec<f64>>,
    offset: Vec<f64>,
    labels: Vec<f64>,
}

/// How a planted head case labels its rows.
#[derive(Clone, Copy, PartialEq)]
enum Labels {
    /// The teacher's decisions (logit above its median); planted weights ±4.
    Decisions,
    /// Draws from the teacher's probability `σ(z − median)`, so the student's logistic model
    /// is the truth; each planted weight moves the logit by ±2 standard deviations of its
    /// feature over the training rows, so no planted entry is too faint to count.
    Drawn,
}

/// A planted head case: `rows` training rows labelled by `labels` from seed `seed`, and how
/// the student fits them (`rounds` rounds, budget 3K → K over them; `stages` growth stages of
/// `steps` AdamW steps each; then up to `swaps` swap steps).
#[derive(Clone, Copy)]
struct HeadCase {
    seed: u64,
    rows: usize,
    labels: Labels,
    rounds: usize,
    stages: usize,
    swaps: usize,
    steps: usize,
}

impl HeadCase {
    /// Decision labels on 384 rows, no swaps.
    fn decisions(seed: u64, rounds: usize, stages: usize, steps: usize) -> Self {
        Self {
            seed,
            rows: 384,
            labels: Labels::Decisions,
            rounds,
            stages,
            swaps: 0,
            steps,
        }
    }
}

/// The pooled embedding of each of `rows` (one feature per hidden unit, read off the logit of
/// a unit task head) and each row's logit without a task head.
fn pooled_features(t: &Trainer, rows: &[Row]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let blank = t.blank_task("planted").expect("blank");
    let offset = t.logits_of(&blank, rows).expect("logits");
    let mut features = vec![vec![0.0; 32]; rows.len()];
    for j in 0..32 {
        let mut unit = blank.clone();
        let mut e = vec![0f32; 32];
        e[j] = 1.0;
        unit.head.insert(
            "head.weight".into(),
            Tensor::from_vec(e, (1, 32), &Device::Cpu).expect("head"),
        );
        let z = t.logits_of(&unit, rows).expect("logits");
        for (row, (&z, &z0)) in features.iter_mut().zip(z.iter().zip(&offset)) {
            row[j] = f64::from(z - z0);
        }
    }
    (features, offset.into_iter().map(f64::from).collect())
}

/// One task labelled by a teacher whose head carries a planted delta on `K` of the 32 pooled
/// features (support, texts and labels drawn from the case's seed); a student with the same
/// base and shared head fits a `K`-sparse task head as the case says.
fn fit_planted_head(case: HeadCase) -> HeadFit {
    let f = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(case.seed);
    let (train_ids, test_ids) = (texts(case.rows, &mut rng), texts(128, &mut rng));
    let mut cfg = config();
    cfg.method = Method::HeadOnly;
    cfg.rounds = case.rounds;
    cfg.task.steps = case.steps;
    cfg.task.lr = 0.1;
    cfg.task.sparse_steps = 0;
    cfg.task.head_nnz = K;
    cfg.task.support_stages = case.stages;
    cfg.task.support_swaps = case.swaps;
    cfg.validate().expect("config");
    let unlabelled = data(&train_ids, &test_ids, None);
    let teacher = trainer(&f, cfg.clone(), &unlabelled);
    set_head(&teacher, &mut ChaCha20Rng::seed_from_u64(5));
    let (features, offset) = pooled_features(&teacher, &unlabelled.tasks[0].train);
    let mut planted: Vec<u32> = rand::seq::index::sample(&mut rng, 32, K)
        .into_iter()
        .map(|i| i as u32)
        .collect();
    planted.sort_unstable();
    let mut a = vec![0f32; 32];
    for &i in &planted {
        let size = match case.labels {
            Labels::Decisions => 4.0,
            Labels::Drawn => {
                let column: Vec<f64> = features.iter().map(|r| r[i as usize]).collect();
                let mean = column.iter().sum::<f64>() / column.len() as f64;
                let var =
                    column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / column.len() as f64;
                (2.0 / var.sqrt()) as f32
            }
        };
        a[i as usize] = if rng.gen_bool(0.5) { size } else { -size };
    }
    let mut truth = teacher.blank_task("planted").expect("blank");
    truth.head.insert(
        "head.weight".into(),
        Tensor::from_vec(a, (1, 32), &Device::Cpu).expect("head"),
    );
    let (train_y, test_y) = match case.labels {
        Labels::Decisions => (
            teacher_labels(&teacher, &truth, &train_ids),
            teacher_labels(&teacher, &truth, &test_ids),
        ),
        Labels::Drawn => (
            teacher_draws(&teacher, &truth, &train_ids, &mut rng),
            teacher_draws(&teacher, &truth, &test_ids, &mut rng),
        ),
    };
    let labelled = data(&train_ids, &test_ids, Some((&train_y, &test_y)));
    let mut student = trainer(&f, cfg, &labelled);
    set_head(&student, &mut ChaCha20Rng::seed_from_u64(5));
    let base_auc = test_auc(&student, &labelled);
    for _ in 0..case.rounds {
        student.round(&labelled).expect("round");
    }
    let head: Vec<f32> = student.tasks()[0].head["head.weight"]
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("head");
    HeadFit {
        planted,
        found: (0..32u32).filter(|&i| head[i as usize] != 0.0).collect(),
        base_auc,
        fitted_auc: test_auc(&student, &labelled),
        features,
        offset,
        labels: train_y.iter().map(|&y| if y { 1.0 } else { 0.0 }).collect(),
    }
}

/// Labels drawn from the teacher's probability `σ(z − median)`.
fn teacher_draws(
    teacher: &Trainer,
    truth: &TaskDelta,
    ids: &[Vec<u32>],
    rng: &mut ChaCha20Rng,
) -> Vec<bool> {
    let rows = data(ids, &[], None).tasks.remove(0).train;
    let z = teacher.logits_of(truth, &rows).expect("teacher logits");
    let mut sorted = z.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    z.iter()
        .map(|&v| rng.gen_bool(1.0 / (1.0 + f64::from(median - v).exp())))
        .collect()
}

/// The maximised log-likelihood of a logistic regression of `labels` on the `features`
/// columns `support`, with an intercept and the fixed `offset` (Newton's method).
fn log_likelihood(fit: &HeadFit, support: &[usize]) -> f64 {
    let d = support.len() + 1;
    // Rows of [1, x_support], contiguous.
    let x: Vec<f64> = fit
        .features
        .iter()
        .flat_map(|r| std::iter::once(1.0).chain(support.iter().map(|&j| r[j])))
        .collect();
    let mut beta = vec![0.0; d];
    let mut ll = 0.0;
    for _ in 0..8 {
        let (mut g, mut h) = (vec![0.0; d], vec![0.0; d * d]);
        ll = 0.0;
        for ((row, &y), &o) in x.chunks_exact(d).zip(&fit.labels).zip(&fit.offset) {
            let z = o + row.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            ll += y * z - z.max(0.0) - (-z.abs()).exp().ln_1p();
            let w = p * (1.0 - p);
            for i in 0..d {
                g[i] += (y - p) * row[i];
                for j in 0..=i {
                    h[i * d + j] += w * row[i] * row[j];
                }
            }
        }
        for i in 0..d {
            for j in i + 1..d {
                h[i * d + j] = h[j * d + i];
            }
        }
        // β += H⁻¹ g by Gaussian elimination (H is d × d, positive definite).
        for c in 0..d {
            for r in c + 1..d {
                let m = h[r * d + c] / h[c * d + c];
                for k in c..d {
                    h[r * d + k] -= m * h[c * d + k];
                }
                g[r] -= m * g[c];
            }
        }
        for c in (0..d).rev() {
            let rest: f64 = (c + 1..d).map(|k| h[c * d + k] * g[k]).sum();
            g[c] = (g[c] - rest) / h[c * d + c];
            beta[c] += g[c];
        }
    }
    ll
}

/// The `K` features whose logistic regression fits the training labels best (every one of
/// the C(32, K) supports tried), and that fit's log-likelihood.
fn best_subset(fit: &HeadFit) -> (Vec<u32>, f64) {
    let mut supports = Vec::new();
    let mut s: Vec<usize> = (0..K).collect();
    loop {
        supports.push(s.clone());
        let Some(i) = (0..K).rev().find(|&i| s[i] < 32 - K + i) else {
            break;
        };
        s[i] += 1;
        for j in i + 1..K {
            s[j] = s[j - 1] + 1;
        }
    }
    use rayon::prelude::*;
    let (best, ll) = supports
        .par_iter()
        .map(|s| (s, log_likelihood(fit, s)))
        .reduce_with(|a, b| if b.1 > a.1 { b } else { a })
        .expect("supports");
    (best.iter().map(|&i| i as u32).collect(), ll)
}

#[test]
fn a_sparse_task_head_learns_a_planted_head_delta() {
    let fit = fit_planted_head(HeadCase::decisions(8, 3, 1, 200));
    let (precision, recall) = precision_recall(&fit.found, &fit.planted);
    eprintln!(
        "head: planted {:?} found {:?}: P {precision:.2} R {recall:.2}, test AUC {:.4} → {:.4}",
        fit.planted, fit.found, fit.base_auc, fit.fitted_auc
    );
    assert!(fit.found.len() <= K, "{:?}", fit.found);
    // The pooled features of this random encoder are strongly correlated, so other features
    // can stand in for planted ones (P = R = 0.5 here); the fit must still learn the delta.
    assert!(
        fit.fitted_auc > fit.base_auc + 0.05,
        "test AUC {} → {}",
        fit.base_auc,
        fit.fitted_auc
    );
}

#[test]
fn growing_the_head_support_in_stages_finds_more_of_a_planted_one() {
    // Six planted heads, each fitted in one round with the support grown at once (800 steps)
    // and in 4 stages of 200 steps, each stage scored at the values the previous one fitted:
    // the same optimizer steps. The staged search finds more planted entries in all and ranks
    // the test rows better on average, and every fit learns its delta.
    let (mut once, mut staged) = ((0, 0.0), (0, 0.0));
    for seed in 8..14 {
        for (stages, steps, sums) in [(1, 800, &mut once), (4, 200, &mut staged)] {
            let fit = fit_planted_head(HeadCase::decisions(seed, 1, stages, steps));
            let found = fit.found.iter().filter(|i| fit.planted.contains(i)).count();
            eprintln!(
                "seed {seed}, {stages} stage(s): {found} of {K} planted entries, \
                 test AUC {:.4} → {:.4}",
                fit.base_auc, fit.fitted_auc
            );
            assert!(fit.found.len() <= K, "{:?}", fit.found);
            assert!(
                fit.fitted_auc > fit.base_auc + 0.05,
                "seed {seed}, {stages} stages"
            );
            sums.0 += found;
            sums.1 += fit.fitted_auc / 6.0;
        }
    }
    eprintln!(
        "planted entries found of {}: at once {} (mean test AUC {:.4}), in stages {} ({:.4})",
        6 * K,
        once.0,
        once.1,
        staged.0,
        staged.1
    );
    assert!(staged.0 > once.0, "staged {staged:?} vs at once {once:?}");
    assert!(staged.1 > once.1, "staged {staged:?} vs at once {once:?}");
}

#[test]
fn swap_steps_recover_a_planted_head_support_where_the_labels_single_it_out() {
    // Six planted heads, labels drawn from the teacher's probability on 1 024 rows. A head's
    // support is identifiable where the labels single it out: the planted K features are the
    // best-fitting K of the 32 (every support tried). On those heads a student that grows its
    // support in 4 stages of 200 steps and then swaps (up to 8 swap steps) must find the
    // planted entries with precision and recall ≥ 0.8, and more of them than the same
    // growth without the swaps; and it must reach the best-fitting support more often.
    let case = |seed, swaps| HeadCase {
        seed,
        rows: 1024,
        labels: Labels::Drawn,
        rounds: 1,
        stages: 4,
        swaps,
        steps: 200,
    };
    let (mut heads, mut found_with, mut found_without, mut planted_count) = (0, 0, 0, 0);
    let (mut at_best_with, mut at_best_without) = (0, 0);
    for seed in 8..14 {
        let with = fit_planted_head(case(seed, 8));
        let without = fit_planted_head(case(seed, 0));
        assert_eq!(with.planted, without.planted);
        assert_eq!(with.labels, without.labels);
        let (best, best_ll) = best_subset(&with);
        let hits = |found: &[u32]| found.iter().filter(|i| with.planted.contains(i)).count();
        let identifiable = best == with.planted;
        eprintln!(
            "seed {seed}: planted {:?}, best-fitting {best:?} (log-likelihood {best_ll:.2}); \
             with swaps {:?}, without {:?}; test AUC {:.4} → {:.4} with, {:.4} without",
            with.planted,
            with.found,
            without.found,
            with.base_auc,
            with.fitted_auc,
            without.fitted_auc
        );
        assert!(with.found.len() <= K && without.found.len() <= K);
        at_best_with += usize::from(with.found == best);
        at_best_without += usize::from(without.found == best);
        if identifiable {
            heads += 1;
            planted_count += K;
            found_with += hits(&with.found);
            found_without += hits(&without.found);
        }
    }
    let recall = found_with as f64 / planted_count as f64;
    eprintln!(
        "{heads} of 6 heads identifiable; planted entries found there: with swaps \
         {found_with} of {planted_count} (P = R = {recall:.2}), without {found_without}; \
         the best-fitting support reached on {at_best_with} of 6 heads with swaps, \
         {at_best_without} without"
    );
    assert!(heads >= 4, "only {heads} identifiable heads");
    // Every fit keeps K entries, so precision equals recall.
    assert!(recall >= 0.8, "P = R = {recall:.2}");
    assert!(
        found_with > found_without,
        "{found_with} vs {found_without}"
    );
    assert!(at_best_with > at_best_without);
}

#[test]
fn validation_rows_come_from_training_rows_never_from_test_rows() {
    let mut d = tiny_data(3, 10);
    let before = d.clone();
    d.carve_validation(0.25).expect("carve");
    for (t, b) in d.tasks.iter().zip(&before.tasks) {
        // ⌈0.25 · 10⌉ = 3 latest training rows moved, in order; test untouched.
        assert_eq!(t.validation.len(), 3);
        assert_eq!(t.train.len(), 7);
        assert_eq!(t.test, b.test);
        assert_eq!([&t.train[..], &t.validation[..]].concat(), b.train);
    }
    // Never the last training row; bad fractions are errors.
    let mut one = tiny_data(1, 1);
    one.carve_validation(0.9).expect("carve");
    assert_eq!(
        (one.tasks[0].train.len(), one.tasks[0].validation.len()),
        (1, 0)
    );
    assert!(d.carve_validation(1.0).is_err());
    assert!(d.carve_validation(f64::NAN).is_err());
}

/// Copies the teacher's shared head into the student.
fn copy_head(from: &Trainer, to: &Trainer) {
    let src = from.model().shared_vars().expect("teacher vars");
    let dst = to.model().shared_vars().expect("student vars");
    let (src, dst) = (
        src.data().lock().expect("lock"),
        dst.data().lock().expect("lock"),
    );
    for name in [
        lrs_train::trainer::HEAD_WEIGHT,
        lrs_train::trainer::HEAD_BIAS,
    ] {
        dst[name].set(src[name].as_tensor()).expect("same shapes");
    }
}

#[test]
fn a_student_given_the_planted_parts_reproduces_the_teachers_labels() {
    // The planted generator's teacher and a student's forward pass agree: with the planted
    // sparse parts installed (and the teacher's head), a student ranks every task's test rows
    // as the teacher labelled them; without them it does clearly worse.
    let f = fixture();
    let spec = PlantedSpec {
        tasks: 3,
        train_rows: 8,
        test_rows: 64,
        rank: 2,
        k: K,
        target_modules: vec!["encoder.layer.0.intermediate.dense".into()],
        sparse_value: 10.0,
        core_std: 0.0,
        seed: 4,
        ..PlantedSpec::default()
    };
    let truth = PlantedTruth::generate(&f.ckpt, &spec).expect("planted");
    assert_eq!(truth.data.tasks.len(), 3);
    for (i, t) in truth.data.tasks.iter().enumerate() {
        let positives = t.test.iter().filter(|r| r.positive).count();
        assert!(
            (24..=40).contains(&positives),
            "task {i}: {positives} of 64 positive"
        );
        assert_eq!(
            truth.support(i, &spec.target_modules[0]).map(<[u32]>::len),
            Some(K)
        );
    }
    let mut cfg = config();
    cfg.target_modules = spec.target_modules.clone();
    let mut student = trainer(&f, cfg, &truth.data);
    copy_head(truth.teacher(), &student);
    let without = test_auc(&student, &truth.data);
    let mut tasks = truth.tasks.clone();
    for t in &mut tasks {
        for layer in t.layers.values_mut() {
            layer.w = None; // a sparse-only student has no core; U = 0 anyway
        }
    }
    student.install_tasks(tasks).expect("install");
    let with = test_auc(&student, &truth.data);
    eprintln!("test AUC without the planted parts {without:.4}, with them {with:.4}");
    assert!(with > 0.999, "{with}");
    assert!(without < 0.95, "{without}");
    let base_only = truth.oracle_auc(TruthParts::None).expect("oracle");
    assert!(
        (base_only - without).abs() < 1e-6,
        "{base_only} vs {without}"
    );
    assert!(truth.oracle_auc(TruthParts::Both).expect("oracle") > 0.999);
}
