//! Crash safety: the real `lrs` binary is SIGKILLed in the middle of writing
//! checkpoints, run files, task files and uploaded task files, on a tiny seeded BERT and
//! generated data; after every kill each file on disk must be its old or its new complete
//! version and load, and the work must then finish exactly as if never interrupted.
//!
//! How the kills land inside writes (see `common::kill`): the test polls the files on disk;
//! when a write is visibly in progress (a checkpoint staging directory, a `.lrs-tmp-*` temp
//! file, a superseded checkpoint not yet removed) it freezes the process with
//! SIGSTOP, looks again, and SIGKILLs it only if the write is still in progress — so every
//! kill counted here landed mid-write, whatever the disk's speed. Varying the delay between
//! noticing a write and freezing spreads the kills over the phases of a write.
//!
//! Linux only: freezing reads thread states from `/proc`.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::kill::{kill_mid_write, names, new_temps, Outcome};
use common::{
    backdate, config_toml, content_hash, lrs, ok, task_hashes, temp_files, write_data,
    write_tiny_model, RunCheck,
};

/// Delays between noticing a write and freezing the writer, cycled over the kills.
const DELAYS_US: [u64; 4] = [0, 300, 0, 1500];

fn delay(k: usize) -> Duration {
    Duration::from_micros(DELAYS_US[k % DELAYS_US.len()])
}

/// Runs a process is given to catch one write before the test gives up.
const ATTEMPTS: usize = 10;

/// The state a process was killed in, or `None` if it finished (successfully: else panics
/// with its log) before a write could be caught.
fn finished_or_killed(outcome: Outcome, log: &Path) -> Option<String> {
    match outcome {
        Outcome::Killed(state) => Some(state),
        Outcome::Exited(status) => {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            assert!(status.success(), "lrs failed ({status}):\n{log}");
            None
        }
    }
}

/// A temporary directory with a tiny base model, `users` users' data and a training config
/// of `rounds` rounds over them; returns it and the config's path.
fn train_setup(users: usize, rounds: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = tmp.path().join("base");
    write_tiny_model(&model);
    let data = tmp.path().join("data.jsonl");
    write_data(&data, "u", users, 20, false);
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(&cfg, config_toml(&model, &data, rounds)).expect("config");
    (tmp, cfg)
}

/// `lrs train --config cfg --run run [--resume]`.
fn train_command(cfg: &Path, run: &Path, resume: bool) -> Command {
    let mut cmd = lrs();
    cmd.args(["train", "--config"])
        .arg(cfg)
        .arg("--run")
        .arg(run);
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

/// `lrs train` on `cfg` into `run`, stderr to `log`.
fn spawn_train(cfg: &Path, run: &Path, resume: bool, log: &Path) -> Child {
    train_command(cfg, run, resume)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn lrs train")
}

/// `lrs train --config cfg --run run [--resume]` to completion.
fn train(cfg: &Path, run: &Path, resume: bool) {
    ok(&train_command(cfg, run, resume).output().expect("lrs train"));
}

/// Copies directory `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for n in names(from) {
        let (a, b) = (from.join(&n), to.join(&n));
        if a.is_dir() {
            copy_dir(&a, &b);
        } else {
            std::fs::copy(&a, &b).expect("copy");
        }
    }
}

/// Content hash of the run's `shared.safetensors`.
fn shared_hash(run: &Path) -> String {
    let p = run.join("shared.safetensors");
    content_hash(&std::fs::read(&p).expect("shared.safetensors"), &p)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

/// `summary.json` without its wall time.
fn summary(run: &Path) -> serde_json::Value {
    let mut s = read_json(&run.join("summary.json"));
    s.as_object_mut().expect("object").remove("train_s");
    s
}

/// `metrics.jsonl` records without their wall time.
fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("record");
            v.as_object_mut().expect("object").remove("round_s");
            v
        })
        .collect()
}

/// The outputs of a finished run equal those of the reference run: `eval.jsonl` bit for bit,
/// shared and task files by content (tensors and metadata but `created`), summary and
/// metrics up to wall times; everything loads.
fn assert_same_outputs(run: &Path, reference: &Path) {
    assert_eq!(
        shared_hash(run),
        shared_hash(reference),
        "shared files differ"
    );
    assert!(
        std::fs::read(run.join("eval.jsonl")).expect("eval")
            == std::fs::read(reference.join("eval.jsonl")).expect("eval"),
        "eval.jsonl differs from the uninterrupted run's"
    );
    assert_eq!(
        task_hashes(&run.join("tasks")),
        task_hashes(&reference.join("tasks"))
    );
    assert_eq!(summary(run), summary(reference));
    assert_eq!(metrics(run), metrics(reference));
    let check = RunCheck::new(run);
    assert_eq!(check.outputs().len(), summary(reference)["tasks"]);
}

/// The part of a checkpoint save (or of a round) that a kill in scenario 1 aims at.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Writing the next checkpoint's staging directory.
    Staging,
    /// Removing superseded checkpoints after `LATEST` moved on.
    Cleanup,
    /// Replacing `metrics.jsonl` (or another run file).
    RunFile,
}

/// Every write in progress under `run` (beyond the names in `before`: the run directory's
/// and `tasks/`'s when the process started), each with its phase.
fn writes_in_progress(run: &Path, before: &[Vec<String>; 2]) -> Vec<(Phase, String)> {
    let cp = run.join("checkpoint");
    let latest = std::fs::read_to_string(cp.join("LATEST")).unwrap_or_default();
    let mut state = Vec::new();
    for n in names(&cp) {
        let hidden = n.strip_prefix('.').and_then(|n| n.strip_suffix(".partial"));
        if n.starts_with(".round-") && n.ends_with(".old") {
            state.push((Phase::Cleanup, format!("deleting {n}")));
            continue;
        }
        match hidden {
            Some(round) if round > latest.as_str() => {
                let tasks = names(&cp.join(&n).join("tasks")).len();
                state.push((Phase::Staging, format!("staging {n} ({tasks} task files)")));
            }
            Some(_) => state.push((Phase::Cleanup, format!("deleting {n}"))),
            None if n.starts_with(".lrs-tmp-") => {
                state.push((Phase::Staging, format!("replacing LATEST (now {latest})")));
            }
            None if n.starts_with("round-") && n > latest => {
                let what = format!("{n} renamed into place, LATEST still {latest}");
                state.push((Phase::Staging, what));
            }
            None if n.starts_with("round-") && n < latest => {
                let what = format!("{n} superseded by {latest}, not yet deleted");
                state.push((Phase::Cleanup, what));
            }
            None => {}
        }
    }
    for (dir, was, what) in [
        (run.to_path_buf(), &before[0], "run file"),
        (run.join("tasks"), &before[1], "task file"),
    ] {
        for t in new_temps(&dir, &[".lrs-tmp-"], was) {
            state.push((Phase::RunFile, format!("writing a {what} ({t})")));
        }
    }
    state
}

/// Kill `k` (from 0) of a crash test: `lrs train` on `cfg` into `run` (resumed from the second
/// kill on), SIGKILLed once `watched` (the run directory, or its `refit/`) has committed a
/// checkpoint in this process and a write of phase `target` is in progress there. Returns
/// the writes in progress at the kill; panics if the process ended first.
fn kill_train_mid_write(
    cfg: &Path,
    run: &Path,
    watched: &Path,
    k: usize,
    target: Phase,
    log: &Path,
) -> String {
    let cp = watched.join("checkpoint");
    let before = [names(watched), names(&watched.join("tasks"))];
    let latest_before = std::fs::read_to_string(cp.join("LATEST")).unwrap_or_default();
    let mut child = spawn_train(cfg, run, k > 0, log);
    // Armed once this process has committed a checkpoint of its own (LATEST changed): what an
    // earlier kill left is then no longer mistaken for a write in progress.
    let outcome = kill_mid_write(&mut child, delay(k), || {
        let latest = std::fs::read_to_string(cp.join("LATEST")).unwrap_or_default();
        if latest.is_empty() || latest == latest_before {
            return None;
        }
        let state = writes_in_progress(watched, &before);
        state.iter().any(|(p, _)| *p == target).then(|| {
            let what: Vec<_> = state.into_iter().map(|(_, w)| w).collect();
            what.join("; ")
        })
    });
    match outcome {
        Outcome::Killed(state) => state,
        other => {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!(
                "lrs train ended before kill {} ({target:?}) in {}: {other:?}\n{log}",
                k + 1,
                watched.display()
            );
        }
    }
}

#[test]
fn train_killed_mid_checkpoint_resumes_to_the_uninterrupted_result() {
    const ROUNDS: usize = 14;
    // What each kill waits for: three kills while the next checkpoint is being staged
    // (spread over its phases by `delay`), one while superseded ones are deleted, one
    // while `metrics.jsonl` is replaced.
    const TARGETS: [Phase; 5] = [
        Phase::Staging,
        Phase::Staging,
        Phase::Cleanup,
        Phase::Staging,
        Phase::RunFile,
    ];
    let (tmp, cfg) = train_setup(6, ROUNDS);
    let reference = tmp.path().join("reference");
    train(&cfg, &reference, false);

    let run = tmp.path().join("run");
    let cp = run.join("checkpoint");
    let mut resumed = 0;
    for (k, &target) in TARGETS.iter().enumerate() {
        let log = tmp.path().join(format!("train-{k}.log"));
        let state = kill_train_mid_write(&cfg, &run, &run, k, target, &log);
        // LATEST names a complete checkpoint, newer than the last one; every `round-*`
        // directory restores; every run file in place loads.
        let mut check = RunCheck::new(&run);
        let now = check.checkpoints();
        assert!(now > resumed, "LATEST did not move on: {resumed} → {now}");
        check.outputs();
        eprintln!("kill {} after round {now}: {state}", k + 1);
        resumed = now;
    }

    // A kill between renaming a checkpoint into place and replacing LATEST leaves a complete
    // `round-*` directory that LATEST does not name; the resumed run saves that round again
    // over it. The window is short, so it is made here rather than waited for: a copy of
    // the checkpoint in force under the next round's name.
    let next = cp.join(format!("round-{:04}", resumed + 1));
    copy_dir(&cp.join(format!("round-{resumed:04}")), &next);
    // Temp files of killed writes are ignored by everything above; an old one is deleted
    // when the run is opened again (a fresh one may belong to a live writer).
    let leftovers = temp_files(&run);
    leftovers.iter().for_each(|p| backdate(p));
    train(&cfg, &run, true);
    eprintln!("{} temp files left before the last resume", leftovers.len());
    assert_eq!(temp_files(&run), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        names(&cp),
        vec!["LATEST".to_string(), format!("round-{ROUNDS:04}")]
    );
    assert_eq!(RunCheck::new(&run).checkpoints(), ROUNDS);
    assert_same_outputs(&run, &reference);
}

#[test]
fn a_refit_killed_mid_checkpoint_resumes_to_the_uninterrupted_result() {
    const ROUNDS: usize = 8;
    // Kills while the refit (`[data] refit`: training again on every row for the rounds the
    // validation rows chose) stages its checkpoints, deletes superseded ones and replaces
    // its `metrics.jsonl`.
    const TARGETS: [Phase; 3] = [Phase::Staging, Phase::Cleanup, Phase::RunFile];
    let (tmp, cfg) = train_setup(6, ROUNDS);
    let toml = std::fs::read_to_string(&cfg).expect("config").replace(
        "shots = 8\n",
        "shots = 16\nvalidation = 0.25\nrefit = true\n",
    );
    std::fs::write(&cfg, toml).expect("refit config");
    let reference = tmp.path().join("reference");
    train(&cfg, &reference, false);
    let kept = summary(&reference)["rounds"].as_u64().expect("rounds") as usize;
    assert!(
        kept >= 4,
        "the refit has {kept} rounds: too few to kill within"
    );

    let run = tmp.path().join("run");
    let (refit, cp) = (run.join("refit"), run.join("refit/checkpoint"));
    let mut resumed = 0;
    for (k, &target) in TARGETS.iter().enumerate() {
        let log = tmp.path().join(format!("refit-{k}.log"));
        let state = kill_train_mid_write(&cfg, &run, &refit, k, target, &log);
        // The refit's LATEST names a complete checkpoint, newer than the last one, and every
        // one of its checkpoints restores.
        let now = RunCheck::new(&run).checkpoints_under(&cp);
        assert!(
            now > resumed,
            "the refit's LATEST did not move on: {resumed} → {now}"
        );
        eprintln!("refit kill {} after round {now}: {state}", k + 1);
        resumed = now;
    }
    assert!(
        resumed < kept,
        "every kill should land before the refit's last round"
    );
    // The refit rounds recorded so far, wall times included: resuming restores the refit's
    // checkpoint, so they are not trained (and timed) again.
    let recorded = || -> Vec<String> {
        let text = std::fs::read_to_string(refit.join("metrics.jsonl")).expect("refit metrics");
        text.lines().map(String::from).collect()
    };
    let done = recorded();
    assert!(
        !done.is_empty(),
        "no refit round recorded before the last resume"
    );
    let leftovers = temp_files(&run);
    leftovers.iter().for_each(|p| backdate(p));
    train(&cfg, &run, true);
    assert_eq!(temp_files(&run), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        recorded()[..done.len()],
        done[..],
        "refit rounds were trained again"
    );
    assert_same_outputs(&run, &reference);
    assert_eq!(metrics(&refit), metrics(&reference.join("refit")));
}

#[test]
fn train_killed_while_writing_its_outputs_leaves_complete_files_and_resumes() {
    // Kill k waits for the (SKIP[k] + 1)-th task file write of its process, so the kills
    // land early and late in the sequence.
    const SKIP: [usize; 3] = [3, 0, 6];
    let (tmp, cfg) = train_setup(8, 2);
    let reference = tmp.path().join("reference");
    train(&cfg, &reference, false);
    let want = task_hashes(&reference.join("tasks"));

    // The first kill hits a fresh run's output writes; the later ones a finished run whose
    // `--resume` rewrites the same outputs.
    let run = tmp.path().join("run");
    for (k, skip) in SKIP.iter().enumerate() {
        let before = names(&run.join("tasks"));
        // A process whose write finished before it could be frozen is simply run again.
        let state = (0..ATTEMPTS)
            .find_map(|attempt| {
                let log = tmp.path().join(format!("train-{k}-{attempt}.log"));
                let mut child = spawn_train(&cfg, &run, k > 0 || attempt > 0, &log);
                let mut seen = std::collections::BTreeSet::new();
                let outcome = kill_mid_write(&mut child, delay(k + attempt), || {
                    let t = new_temps(&run.join("tasks"), &[".lrs-tmp-"], &before);
                    seen.extend(t.iter().cloned());
                    (!t.is_empty() && seen.len() > *skip)
                        .then(|| format!("writing task file {} of {}", seen.len(), want.len()))
                });
                finished_or_killed(outcome, &log)
            })
            .unwrap_or_else(|| panic!("no task-file write caught in {ATTEMPTS} runs"));
        eprintln!("kill {}: {state}", k + 1);
        // Each task file present is the final version (old and new are the same parameters)
        // and loads against the shared file now on disk.
        let got = task_hashes(&run.join("tasks"));
        for (name, hash) in &got {
            assert_eq!(
                Some(hash),
                want.get(name),
                "{name} is not a complete version"
            );
        }
        assert_eq!(shared_hash(&run), shared_hash(&reference));
        assert_eq!(RunCheck::new(&run).outputs().len(), got.len());
    }
    train(&cfg, &run, true);
    assert_same_outputs(&run, &reference);
}

#[test]
fn personalize_killed_mid_write_leaves_each_task_file_old_or_new() {
    let (tmp, cfg) = train_setup(4, 2);
    let run = tmp.path().join("run");
    train(&cfg, &run, false);
    let tasks = run.join("tasks");

    // Two versions of six new users' data; their task files differ.
    let versions = [tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl")];
    write_data(&versions[0], "n", 6, 10, false);
    write_data(&versions[1], "n", 6, 10, true);
    let personalize = |file: &Path| {
        let mut cmd = lrs();
        cmd.args(["personalize", "--run"])
            .arg(&run)
            .arg("--task-data")
            .arg(file);
        cmd
    };
    let trained = task_hashes(&tasks);
    let mut known = Vec::new();
    for v in &versions {
        ok(&personalize(v).output().expect("lrs personalize"));
        let mut h = task_hashes(&tasks);
        h.retain(|n, _| n.starts_with('n'));
        assert_eq!(h.len(), 6);
        known.push(h);
    }
    for (name, a) in &known[0] {
        assert_ne!(
            Some(a),
            known[1].get(name),
            "{name}: both versions are equal"
        );
    }

    // Which version each new user's file holds (B, written last).
    let mut current: std::collections::BTreeMap<String, usize> =
        known[1].keys().map(|n| (n.clone(), 1)).collect();
    // Kill k lands in the (SKIP[k] + 1)-th of the six writes of its process.
    const SKIP: [usize; 4] = [2, 0, 5, 3];
    for (k, skip) in SKIP.iter().enumerate() {
        let version = k % 2;
        let before = names(&tasks);
        // A process whose write finished before it could be frozen is simply run again.
        let state = (0..ATTEMPTS)
            .find_map(|attempt| {
                let log = tmp.path().join(format!("personalize-{k}-{attempt}.log"));
                let mut child = personalize(&versions[version])
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).expect("log"))
                    .spawn()
                    .expect("spawn lrs personalize");
                let mut seen = std::collections::BTreeSet::new();
                let outcome = kill_mid_write(&mut child, delay(k + attempt), || {
                    let t = new_temps(&tasks, &[".lrs-tmp-"], &before);
                    seen.extend(t.iter().cloned());
                    (!t.is_empty() && seen.len() > *skip)
                        .then(|| format!("writing task file {} of 6", seen.len()))
                });
                finished_or_killed(outcome, &log)
            })
            .unwrap_or_else(|| panic!("no task-file write caught in {ATTEMPTS} runs"));
        // Every file is the version it held before or the one being written.
        let now = task_hashes(&tasks);
        for (name, hash) in &now {
            match current.get_mut(name) {
                Some(v) => {
                    let old = *v;
                    *v = [0, 1]
                        .into_iter()
                        .find(|&w| *hash == known[w][name])
                        .unwrap_or_else(|| panic!("{name} is neither version"));
                    assert!(*v == old || *v == version, "{name} went to a third version");
                }
                None => assert_eq!(Some(hash), trained.get(name), "{name} changed"),
            }
        }
        assert_eq!(now.len(), trained.len() + 6, "a task file vanished");
        // And each loads against the base model and the run's shared file.
        assert_eq!(RunCheck::new(&run).outputs().len(), now.len());
        let at_new = current.values().filter(|&&v| v == version).count();
        eprintln!(
            "kill {}: {state}; {at_new} of 6 files at the version being written",
            k + 1
        );
    }
}

#[test]
fn serve_killed_mid_upload_keeps_a_complete_task_file_and_serves_it_after_restart() {
    const KILLS: usize = 4;
    let f = lrs_bench::testing::Fixture::new(2).expect("fixture");
    let toml = f.dir.path().join("serve.toml");
    std::fs::write(
        &toml,
        format!(
            "model = {:?}\nshared = {:?}\ntasks_dir = {:?}\ncache_bytes = \"16MiB\"\n",
            f.config.model, f.config.shared, f.config.tasks_dir
        ),
    )
    .expect("serve config");
    // Versions A and B of task `u`: two valid task files for the same shared file.
    let versions = [
        Arc::new(std::fs::read(f.tasks_dir.join("t0.safetensors")).expect("t0")),
        Arc::new(std::fs::read(f.tasks_dir.join("t1.safetensors")).expect("t1")),
    ];
    let hashes: Vec<String> = versions
        .iter()
        .map(|v| lrs_nn::files::sha256_hex(v))
        .collect();
    let model = f.model().expect("model");
    let shared = model.load_shared(&f.shared_path).expect("shared");
    let u = f.tasks_dir.join("u.safetensors");
    let (put, get) = ("/v1/tasks/u", "application/octet-stream");

    // The version `u` holds; each round's uploads start with the other one, so the upload
    // in flight always changes the file.
    let mut current = 0;
    for k in 0..KILLS {
        let (mut child, addr) = common::http::start_serve(&toml);
        if k == 0 {
            let (status, body) =
                common::http::request(&addr, "PUT", put, get, &versions[0]).expect("first upload");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        }
        let before = names(&f.tasks_dir);
        let stop = Arc::new(AtomicBool::new(false));
        let uploader = {
            let (stop, addr, versions) = (stop.clone(), addr.clone(), versions.clone());
            std::thread::spawn(move || {
                let mut i = 1 - current;
                while !stop.load(Ordering::Relaxed) {
                    let body = &versions[i % 2];
                    // Errors are expected once the server is killed.
                    let _ = common::http::request(&addr, "PUT", put, get, body);
                    i += 1;
                }
            })
        };
        // Kill k lands in the (k + 1)-th upload the server stages.
        let mut seen = std::collections::BTreeSet::new();
        let outcome = kill_mid_write(&mut child, delay(k), || {
            // Each upload is one atomic write: one uniquely named temp file.
            let t = new_temps(&f.tasks_dir, &[".lrs-tmp-"], &before);
            seen.extend(t.iter().cloned());
            (!t.is_empty() && seen.len() > k)
                .then(|| format!("upload {} in progress ({})", seen.len(), t.join(", ")))
        });
        stop.store(true, Ordering::Relaxed);
        uploader.join().expect("uploader");
        let Outcome::Killed(state) = outcome else {
            panic!("lrs serve exited by itself: {outcome:?}");
        };
        let now = lrs_nn::files::sha256_hex(&std::fs::read(&u).expect("u.safetensors"));
        current = hashes
            .iter()
            .position(|h| *h == now)
            .expect("u.safetensors is one of the uploads");
        model.load_task(&u, &shared).expect("u loads");
        eprintln!(
            "kill {}: {state}; u.safetensors is version {}",
            k + 1,
            ["A", "B"][current]
        );
    }
    // The fixture's own tasks were never touched.
    for (t, h) in ["t0", "t1"].iter().zip(&hashes) {
        let bytes = std::fs::read(f.tasks_dir.join(format!("{t}.safetensors"))).expect("read");
        assert_eq!(&lrs_nn::files::sha256_hex(&bytes), h);
    }

    // Restarted, the server lists only whole task files and serves `u`.
    let leftovers = new_temps(&f.tasks_dir, &[".lrs-tmp-"], &[]);
    eprintln!("temp files left by the kills: {leftovers:?}");
    let (mut child, addr) = common::http::start_serve(&toml);
    let (status, body) =
        common::http::request(&addr, "GET", "/v1/tasks", "application/json", b"").expect("list");
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .or_else(|| listed.as_array())
        .expect("task list")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["t0", "t1", "u"], "{listed}");
    let (status, body) = common::http::request(
        &addr,
        "POST",
        "/v1/predict",
        "application/json",
        br#"{"task":"u","inputs":["w5 w6","w7"]}"#,
    )
    .expect("predict");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["scores"].as_array().map(Vec::len), Some(2));
    // Child::kill sends SIGKILL on Unix.
    child.kill().expect("stop server");
    child.wait().expect("reap");
}
