//! Task registries over an object store, without a server: two registries on one in-memory
//! store act as two replicas (one sees the other's uploads and deletions within its polling
//! interval, never a torn or foreign version), the write path keeps every validation, and
//! an unreachable S3 endpoint is a `store_unavailable` 503 within its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lrs_bench::testing::Fixture;
use lrs_serve::store::{ObjectTasks, StoreOptions, TaskStore};
use lrs_serve::{ServeError, TaskId, TaskRegistry};
use object_store::memory::InMemory;
use object_store::ObjectStore;

fn id(s: &str) -> TaskId {
    TaskId::parse(s).expect("valid id")
}

/// A registry ("replica") over `store`'s prefix `tasks`, polling every `poll`.
fn replica(f: &Fixture, store: Arc<dyn ObjectStore>, poll: Duration) -> TaskRegistry {
    let model = Arc::new(f.model().expect("model"));
    let shared = Arc::new(model.load_shared(&f.shared_path).expect("shared"));
    let tasks = ObjectTasks::new(
        store,
        "tasks",
        "mem://b/tasks".into(),
        Duration::from_secs(5),
    )
    .expect("tasks");
    let registry =
        TaskRegistry::with_store(Arc::new(tasks), model, shared, 64 << 20, Arc::default());
    registry.set_poll_interval(poll);
    registry
}

fn file(f: &Fixture, task: &str) -> Vec<u8> {
    std::fs::read(f.tasks_dir.join(format!("{task}.safetensors"))).expect("task file")
}

#[test]
fn a_replica_sees_another_s_changes_within_its_polling_interval() {
    let f = Fixture::new(3).expect("fixture");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let poll = Duration::from_millis(300);
    let a = replica(&f, store.clone(), poll);
    let b = replica(&f, store, poll);
    let (v1, v2) = (file(&f, "t0"), file(&f, "t1"));

    // Uploaded through A, served by B with the same version.
    let put = a.install(&id("t0"), &v1).expect("install");
    assert_eq!(put.sha256, lrs_nn::files::sha256_hex(&v1));
    let got = b.get(&id("t0")).expect("B loads it");
    assert_eq!(got.sha256, put.sha256);

    // Replaced through A: B keeps its confirmed version for at most `poll`, then reloads.
    let put2 = a.install(&id("t0"), &v2).expect("replace");
    assert_ne!(put2.sha256, put.sha256);
    assert_eq!(a.get(&id("t0")).expect("A").sha256, put2.sha256);
    let start = Instant::now();
    loop {
        let sha = b.get(&id("t0")).expect("B").sha256.clone();
        if sha == put2.sha256 {
            break;
        }
        assert_eq!(sha, put.sha256, "B served a version never uploaded");
        assert!(
            start.elapsed() < poll + Duration::from_millis(200),
            "B kept the old one"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Deleted through B: A answers unknown within `poll`.
    b.remove(&id("t0")).expect("delete");
    assert!(matches!(b.get(&id("t0")), Err(ServeError::UnknownTask(_))));
    let start = Instant::now();
    while a.get(&id("t0")).is_ok() {
        assert!(
            start.elapsed() < poll + Duration::from_millis(200),
            "A kept a deleted task"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(matches!(
        a.remove(&id("t0")),
        Err(ServeError::UnknownTask(_))
    ));

    // With polling off (0), every lookup asks the store: no staleness at all.
    b.set_poll_interval(Duration::ZERO);
    a.install(&id("t2"), &v1).expect("install");
    assert_eq!(b.get(&id("t2")).expect("B").sha256, put.sha256);
    a.install(&id("t2"), &v2).expect("replace");
    assert_eq!(b.get(&id("t2")).expect("B").sha256, put2.sha256);
    let listed: Vec<String> = b.list().expect("list").into_iter().map(|t| t.id).collect();
    assert_eq!(listed, ["t2"]);
}

#[test]
fn uploads_to_the_store_keep_every_validation() {
    let f = Fixture::new(1).expect("fixture");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = replica(&f, store.clone(), Duration::from_secs(1));
    // Not a task file: refused, nothing written.
    let bad = a.install(&id("junk"), b"not safetensors");
    assert!(
        matches!(bad, Err(ServeError::InvalidTaskFile { .. })),
        "{bad:?}"
    );
    let tasks =
        ObjectTasks::new(store, "tasks", "mem".into(), Duration::from_secs(5)).expect("tasks");
    assert_eq!(tasks.head(&id("junk")).ok(), Some(None));
    // A corrupt object in the store (written behind the registry's back) is a 422, and is
    // never served.
    tasks
        .write(&id("bad"), b"\x08\0\0\0\0\0\0\0{}")
        .expect("write");
    let e = a.get(&id("bad")).expect_err("corrupt object");
    assert_eq!(e.status(), 422, "{e}");
    // Limits hold for objects too.
    let mut limits = a.limits();
    limits.max_task_file_bytes = 8;
    a.set_limits(limits);
    tasks.write(&id("big"), &file(&f, "t0")).expect("write");
    let e = a.get(&id("big")).expect_err("too large");
    assert_eq!(e.code(), "task_file_too_large", "{e}");
}

#[test]
fn an_unreachable_store_is_a_503_within_its_deadline() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    std::env::set_var("AWS_ACCESS_KEY_ID", "k");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "s");
    let options = StoreOptions {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".into()),
        allow_http: Some(true),
        timeout_ms: 300,
        retries: 2,
    };
    let location = lrs_serve::store::Location::parse("s3://bucket/tasks").expect("location");
    let store = lrs_serve::store::open(&location, &options).expect("client");
    let start = Instant::now();
    let e = store.head(&id("t0")).expect_err("nothing listens");
    assert!(start.elapsed() < options.deadline() + Duration::from_secs(1));
    assert_eq!((e.status(), e.code()), (503, "store_unavailable"), "{e}");
    assert!(e.to_string().contains("s3://bucket/tasks"), "{e}");
    assert!(store.check().is_err());
}
