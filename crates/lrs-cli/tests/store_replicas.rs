//! Two `lrs serve` replicas on one S3 bucket, against a real S3-compatible server (`s3s-fs`)
//! on loopback: a task uploaded through one replica is served by the other with the same
//! `task_sha256`; a delete through one is a 404 on the other within the polling interval;
//! killing the store gives 503s (never a hang, never another 5xx) and both replicas recover
//! when it returns. Throughout, two clients per replica predict while tasks change, and every
//! answer is checked against the history of the bucket (`lrs_bench::stress::history`),
//! allowing a replica to serve a version for at most one polling interval after it changed.
//!
//! The server binary: `LRS_S3S_FS`, else `~/.cache/lrs/tools/bin/s3s-fs`, as
//! `scripts/install-s3s-fs.sh` installs it (`scripts/test.sh` runs that first). Without it
//! this test fails: it never passes without having run.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lrs_bench::stress::history::History;
use lrs_bench::synth::{write_tasks, TaskSpec};
use lrs_bench::testing::Fixture;

const BUCKET: &str = "lrs-e2e";
const ACCESS_KEY: &str = "lrs-test-key";
const SECRET_KEY: &str = "lrs-test-secret";
/// The replicas' polling interval.
const POLL_MS: u64 = 300;
/// How long after a change a replica may still serve what it replaced: one polling interval,
/// plus the ms rounding of the registry's clock and the client's own timing.
const STALE_S: f64 = (POLL_MS as f64 + 200.0) / 1e3;
const TASKS: usize = 4;
const VERSIONS: usize = 4;

/// The S3 server binary; panics (failing the test) when it is not installed.
fn s3s_fs() -> PathBuf {
    let path = std::env::var_os("LRS_S3S_FS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lrs/tools/bin/s3s-fs"))
        })
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "the S3 test server is not installed at {} (LRS_S3S_FS): run \
         scripts/install-s3s-fs.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A free loopback port (bound and released; the server binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `s3s-fs` serving `root` (buckets are its directories) on a fixed port.
struct Store {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Store {
    fn start(bin: PathBuf, root: PathBuf, port: u16) -> Self {
        let mut s = Self {
            bin,
            root,
            port,
            child: None,
        };
        s.up();
        s
    }

    fn up(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `lrs serve` child, killed when dropped.
struct Replica {
    child: Child,
    addr: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(toml: &Path) -> Replica {
    let (child, addr, lines) = common::http::start_serve_with(toml, &[]);
    std::thread::spawn(move || lines.for_each(drop));
    Replica { child, addr }
}

/// One answer: status, error code, `task_sha256`, logits.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    code: String,
    sha: Option<String>,
    logits: Vec<f32>,
}

fn call(addr: &str, method: &str, path: &str, body: &[u8]) -> Answer {
    let (status, body) =
        common::http::request(addr, method, path, "application/octet-stream", body)
            .unwrap_or((0, Vec::new()));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Answer {
        status,
        code: v["error"]["code"].as_str().unwrap_or_default().to_string(),
        sha: v["task_sha256"]
            .as_str()
            .or(v["sha256"].as_str())
            .map(str::to_string),
        logits: v["logits"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| x as f32)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn predict(addr: &str, task: &str) -> Answer {
    let body = format!(r#"{{"task":"{task}","inputs":["w5 w6 w7","w9 w11"]}}"#);
    call(addr, "POST", "/v1/predict", body.as_bytes())
}

/// Whether two answers' logits agree (same version, same inputs).
fn close(x: &[f32], y: &[f32]) -> bool {
    x.len() == y.len()
        && !x.is_empty()
        && x.iter()
            .zip(y)
            .all(|(p, q)| (p - q).abs() <= 1e-4 * (1.0 + p.abs()))
}

/// A predict request as a client saw it (seconds since the run began).
#[derive(Debug, Clone)]
struct Record {
    replica: usize,
    task: usize,
    answer: Answer,
    start: f64,
    end: f64,
}

fn task_id(t: usize) -> String {
    format!("u{t}")
}

/// Waits until `f` holds (polling every 20 ms) or `within` passes; returns the time waited.
fn until(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn replicas_share_a_bucket_see_each_other_s_changes_and_survive_a_store_outage() {
    let bin = s3s_fs();
    let f = Fixture::new(0).expect("fixture");
    let root = f.dir.path().join("s3");
    let bucket = root.join(BUCKET);
    std::fs::create_dir_all(&bucket).expect("bucket dir");
    // The shared file is read from the bucket too.
    std::fs::copy(&f.shared_path, bucket.join("shared.safetensors")).expect("shared");
    let model = f.model().expect("model");
    let ids: Vec<String> = (0..TASKS).map(task_id).collect();
    let spec = TaskSpec {
        density: 0.1,
        value_scale: 0.5,
        ..TaskSpec::default()
    };
    // VERSIONS distinct versions of every task, as local files to upload.
    let versions: Vec<Vec<Vec<u8>>> = {
        let mut by_task = vec![Vec::new(); TASKS];
        for v in 0..VERSIONS {
            let dir = f.dir.path().join(format!("v{v}"));
            write_tasks(&model, &f.shared, &dir, &ids, &spec, 1000 + 100 * v as u64)
                .expect("tasks");
            for (t, id) in ids.iter().enumerate() {
                by_task[t].push(std::fs::read(dir.join(format!("{id}.safetensors"))).expect("v"));
            }
        }
        by_task
    };
    let sha_of = |bytes: &[u8]| lrs_nn::files::sha256_hex(bytes);

    let mut store = Store::start(bin, root.clone(), free_port());
    std::env::set_var(
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", store.port),
    );
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    let toml = f.dir.path().join("serve.toml");
    std::fs::write(
        &toml,
        format!(
            "model = {:?}\nshared = \"s3://{BUCKET}/shared.safetensors\"\n\
             tasks_dir = \"s3://{BUCKET}/tasks\"\npoll_ms = {POLL_MS}\n\
             store_timeout_ms = 500\nstore_retries = 1\ncache_bytes = \"16MiB\"\n",
            f.config.model
        ),
    )
    .expect("config");
    let replicas = [replica(&toml), replica(&toml)];
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr.clone()).collect();
    let (a, b) = (addrs[0].as_str(), addrs[1].as_str());
    for addr in [a, b] {
        let h = call(addr, "GET", "/healthz", b"");
        assert_eq!(h.status, 200, "{h:?}");
    }

    // --- Step by step: upload through A, served by B; delete through B, 404 on A. ---
    let put = call(a, "PUT", "/v1/tasks/u0", &versions[0][0]);
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(put.sha.as_deref(), Some(sha_of(&versions[0][0]).as_str()));
    let on_b = predict(b, "u0");
    assert_eq!(
        (on_b.status, on_b.sha.clone()),
        (200, put.sha.clone()),
        "{on_b:?}"
    );
    let on_a = predict(a, "u0");
    assert_eq!(on_a.sha, on_b.sha);
    assert!(close(&on_a.logits, &on_b.logits), "{on_a:?} {on_b:?}");
    // Replaced through A while B holds the old version: B serves the new one within the
    // polling interval.
    let put = call(a, "PUT", "/v1/tasks/u0", &versions[0][1]);
    assert_eq!(put.status, 200, "{put:?}");
    let seen = until(Duration::from_secs(5), || predict(b, "u0").sha == put.sha);
    let seen = seen.expect("B never served the replacement");
    assert!(seen.as_secs_f64() <= STALE_S, "B took {seen:?}");
    // Deleted through B while A holds it: a 404 on A within the polling interval.
    assert_eq!(predict(a, "u0").status, 200);
    assert_eq!(call(b, "DELETE", "/v1/tasks/u0", b"").status, 204);
    let gone = until(Duration::from_secs(5), || predict(a, "u0").status == 404);
    let gone = gone.expect("A kept serving a deleted task");
    assert!(gone.as_secs_f64() <= STALE_S, "A took {gone:?}");
    assert_eq!(call(a, "DELETE", "/v1/tasks/u0", b"").status, 404);

    // --- Under load: changes through both replicas, a store outage in the middle. ---
    let t0 = Instant::now();
    let now = move || t0.elapsed().as_secs_f64();
    let history = Arc::new(Mutex::new(History::new(vec![None; TASKS])));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (addr, stop) = (addrs[c % 2].clone(), stop.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut k = c;
                while !stop.load(Ordering::Relaxed) {
                    k = (k * 7 + 3) % 1009;
                    let task = k % TASKS;
                    let start = now();
                    let answer = predict(&addr, &task_id(task));
                    out.push(Record {
                        replica: c % 2,
                        task,
                        answer,
                        start,
                        end: now(),
                    });
                }
                out
            })
        })
        .collect();
    // Change task `t` through replica `r`: version `v`, or a delete for `None`; logged with
    // the time it was sent and answered.
    let mut version_now: Vec<Option<usize>> = vec![None; TASKS];
    let mut change = |step: usize, t: usize, v: Option<usize>| {
        let addr = &addrs[step % 2];
        let path = format!("/v1/tasks/{}", task_id(t));
        let sent = now();
        let answer = match v {
            Some(v) => call(addr, "PUT", &path, &versions[t][v]),
            None => call(addr, "DELETE", &path, b""),
        };
        let done = now();
        let want = if v.is_some() { 200 } else { 204 };
        assert_eq!(answer.status, want, "step {step}: {answer:?}");
        let state = v.map(|v| sha_of(&versions[t][v]));
        if v.is_some() {
            assert_eq!(answer.sha, state, "step {step}");
        }
        history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(t, state, sent, done);
        version_now[t] = v;
    };
    let mut step = 0;
    let mut script = |phase: usize, change: &mut dyn FnMut(usize, usize, Option<usize>)| {
        for i in 0..12 {
            let t = (i * 3 + phase) % TASKS;
            let v = if (i + phase) % 5 == 4 {
                None
            } else {
                Some((i + phase) % VERSIONS)
            };
            change(step, t, v);
            step += 1;
            std::thread::sleep(Duration::from_millis(120));
        }
    };
    script(0, &mut change);

    // The store goes away: within a polling interval every request needs it, and gets a 503.
    let killed = now();
    store.kill();
    std::thread::sleep(Duration::from_millis(3 * POLL_MS));
    let mut outage = Vec::new();
    for addr in [a, b] {
        let h = call(addr, "GET", "/healthz", b"");
        assert_eq!(h.status, 503, "{h:?}");
        let start = Instant::now();
        let put = call(addr, "PUT", "/v1/tasks/u1", &versions[1][0]);
        assert!(start.elapsed() < Duration::from_secs(5), "a PUT hung");
        outage.push(put);
    }
    for put in &outage {
        assert_eq!((put.status, put.code.as_str()), (503, "store_unavailable"));
    }
    std::thread::sleep(Duration::from_millis(3 * POLL_MS));
    store.up();
    let revived = now();
    for addr in [a, b] {
        let back = until(Duration::from_secs(10), || {
            call(addr, "GET", "/healthz", b"").status == 200
        });
        assert!(back.is_some(), "{addr} did not see the store come back");
    }
    let recovered = now();
    script(1, &mut change);
    std::thread::sleep(Duration::from_millis(2 * POLL_MS));
    stop.store(true, Ordering::Relaxed);
    let records: Vec<Record> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    let history = history.lock().unwrap_or_else(|p| p.into_inner()).clone();

    // --- Every answer checked. ---
    let mut counts: BTreeMap<(usize, u16), usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut logits_of: HashMap<String, Vec<f32>> = HashMap::new();
    let mut max_latency = 0f64;
    for r in &records {
        *counts.entry((r.replica, r.answer.status)).or_default() += 1;
        max_latency = max_latency.max(r.end - r.start);
        let during_outage = r.end >= killed && r.start <= recovered;
        let fits = |observed: Option<&str>| {
            history
                .check(r.task, observed, r.start - STALE_S, r.end)
                .is_ok()
        };
        let ok = match r.answer.status {
            200 => {
                let sha = r.answer.sha.as_deref();
                if let Some(sha) = sha {
                    let first = logits_of
                        .entry(sha.to_string())
                        .or_insert_with(|| r.answer.logits.clone());
                    close(first, &r.answer.logits) && fits(Some(sha))
                } else {
                    false
                }
            }
            404 => fits(None),
            503 => during_outage && r.answer.code == "store_unavailable",
            _ => false,
        };
        if !ok {
            wrong.push(r.clone());
        }
    }
    println!(
        "{} requests, by (replica, status): {counts:?}; max latency {max_latency:.3} s; \
         outage {killed:.2}–{revived:.2} s, recovered at {recovered:.2} s",
        records.len()
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert!(max_latency < 5.0, "a request took {max_latency:.2} s");
    for replica in 0..2 {
        // Both replicas answered, refused during the outage, and answered again after it.
        assert!(
            counts.get(&(replica, 200)).copied().unwrap_or(0) > 20,
            "{counts:?}"
        );
        assert!(
            counts.get(&(replica, 503)).copied().unwrap_or(0) > 0,
            "{counts:?}"
        );
        assert!(
            records
                .iter()
                .any(|r| r.replica == replica && r.start > recovered && r.answer.status == 200),
            "replica {replica} never answered after the outage"
        );
    }
    // Versions differ in their answers, so a wrong version could not pass the logit check.
    let all: Vec<&Vec<f32>> = logits_of.values().collect();
    assert!(all.len() >= TASKS, "{} versions seen", all.len());
    for (i, x) in all.iter().enumerate() {
        for y in &all[i + 1..] {
            let gap = x
                .iter()
                .zip(*y)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(gap > 1e-3, "two versions answer alike");
        }
    }
    // The bucket holds what the history says, and both replicas list it.
    let present: Vec<String> = (0..TASKS)
        .filter(|&t| version_now[t].is_some())
        .map(task_id)
        .collect();
    for addr in [a, b] {
        let (status, body) =
            common::http::request(addr, "GET", "/v1/tasks", "application/json", b"").expect("list");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let listed: Vec<String> = v["tasks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(listed, present, "{addr}");
    }
    for (t, v) in version_now.iter().enumerate() {
        let object = bucket
            .join("tasks")
            .join(format!("{}.safetensors", task_id(t)));
        match v {
            Some(v) => assert_eq!(
                std::fs::read(&object).ok().as_deref(),
                Some(&versions[t][*v][..])
            ),
            None => assert!(!object.exists(), "{}", object.display()),
        }
    }
    drop(replicas);
}
