//! [`Batcher`]: collects requests for any mix of tasks into one forward pass.
//!
//! One dedicated thread owns the compute: it blocks for a first request, then gathers more
//! until `max_batch_rows` rows are waiting or `max_wait` has passed since the first, runs
//! [`Engine::forward`] once over all their rows, and splits the outputs back. Async callers
//! await a oneshot reply, so executor threads never run model code. The queue is bounded:
//! when it is full, [`Batcher::submit`] refuses with [`ServeError::Overloaded`] at once.
//!
//! Shutdown ([`Batcher::close`], or dropping the batcher): no new requests are taken; every
//! request already queued is still run and answered, then the thread exits.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::engine::{sigmoid, Engine, Row};
use crate::error::{Result, ServeError};
use crate::registry::LoadedTask;

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    /// Most rows in one forward pass; a request never has more rows than this.
    pub max_batch_rows: usize,
    /// Longest the first request of a batch waits for others.
    pub max_wait: Duration,
    /// Requests that may wait in the queue.
    pub queue_capacity: usize,
}

/// One request: rows of one task (or of none).
#[derive(Debug, Clone)]
pub struct PredictRequest {
    /// The task, already resolved ([`Engine::resolve`]); `None`: base-only.
    pub task: Option<Arc<LoadedTask>>,
    /// Token ids per input row.
    pub tokens: Vec<Vec<u32>>,
    /// Whether to return pooled embeddings.
    pub embeddings: bool,
}

/// The answer to a [`PredictRequest`], row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Binary logit per input.
    pub logits: Vec<f32>,
    /// `σ(logit)` per input.
    pub scores: Vec<f32>,
    /// Mean-pooled embedding per input, when asked for.
    pub embeddings: Option<Vec<Vec<f32>>>,
}

struct Job {
    request: PredictRequest,
    reply: oneshot::Sender<Result<Prediction>>,
}

/// Handle to the batching thread.
pub struct Batcher {
    engine: Arc<Engine>,
    tx: Mutex<Option<SyncSender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    max_rows: usize,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max_rows", &self.max_rows)
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching thread over `engine`.
    pub fn spawn(engine: Arc<Engine>, cfg: BatcherConfig) -> Result<Self> {
        if cfg.max_batch_rows == 0 || cfg.queue_capacity == 0 {
            return Err(ServeError::Config(
                "max_batch_rows and queue_capacity must be ≥ 1".into(),
            ));
        }
        let (tx, rx) = sync_channel(cfg.queue_capacity);
        let compute = engine.clone();
        let worker = std::thread::Builder::new()
            .name("lrs-batcher".into())
            .spawn(move || run(&compute, &rx, cfg))
            .map_err(|e| ServeError::Internal(format!("cannot start the batcher: {e}")))?;
        Ok(Self {
            engine,
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            max_rows: cfg.max_batch_rows,
        })
    }

    /// Queues a request; the receiver yields its prediction. Token rows are checked here
    /// (length, vocabulary), so one bad request can never fail a batch it would share.
    pub fn submit(&self, request: PredictRequest) -> Result<oneshot::Receiver<Result<Prediction>>> {
        if request.tokens.len() > self.max_rows {
            return Err(ServeError::TooManyInputs {
                got: request.tokens.len(),
                max: self.max_rows,
            });
        }
        self.engine.check_tokens(&request.tokens)?;
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.lock().map_err(|_| ServeError::ShuttingDown)?;
        let tx = tx.as_ref().ok_or(ServeError::ShuttingDown)?;
        match tx.try_send(Job { request, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(ServeError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(ServeError::ShuttingDown),
        }
    }

    /// Queues a request and awaits its prediction.
    pub async fn predict(&self, request: PredictRequest) -> Result<Prediction> {
        self.submit(request)?
            .await
            .map_err(|_| ServeError::Internal("the batcher dropped the request".into()))?
    }

    /// Queues a request and blocks until its prediction (not from an async context).
    pub fn predict_blocking(&self, request: PredictRequest) -> Result<Prediction> {
        self.submit(request)?
            .blocking_recv()
            .map_err(|_| ServeError::Internal("the batcher dropped the request".into()))?
    }

    /// Stops taking requests, answers every queued one, and waits for the thread to end.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = worker {
            let _ = w.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.close();
    }
}

/// The batching loop: runs until every sender is gone and the queue is empty.
fn run(engine: &Engine, rx: &Receiver<Job>, cfg: BatcherConfig) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let deadline = Instant::now() + cfg.max_wait;
        let mut rows = first.request.tokens.len();
        let mut jobs = vec![first];
        while rows < cfg.max_batch_rows {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                rx.recv_timeout(left)
            };
            let Ok(job) = next else { break };
            let n = job.request.tokens.len();
            if rows + n > cfg.max_batch_rows {
                carry = Some(job);
                break;
            }
            rows += n;
            jobs.push(job);
        }
        // Clients that went away (timeouts, closed connections) cost nothing.
        jobs.retain(|j| !j.reply.is_closed());
        if !jobs.is_empty() {
            run_batch(engine, jobs);
        }
    }
}

/// One forward pass over the jobs' rows, split back per job.
fn run_batch(engine: &Engine, jobs: Vec<Job>) {
    let embeddings = jobs.iter().any(|j| j.request.embeddings);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let rows: Vec<Row<'_>> = jobs
            .iter()
            .flat_map(|j| {
                j.request.tokens.iter().map(|t| Row {
                    task: j.request.task.as_deref(),
                    tokens: t,
                })
            })
            .collect();
        engine.forward(&rows, embeddings)
    }));
    let output = match outcome {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            let msg = e.to_string();
            for j in jobs {
                let _ = j.reply.send(Err(ServeError::Internal(msg.clone())));
            }
            return;
        }
        Err(_) => {
            for j in jobs {
                let _ = j.reply.send(Err(ServeError::Internal(
                    "the forward pass panicked".into(),
                )));
            }
            return;
        }
    };
    let mut logits = output.logits.into_iter();
    let mut embs = output.embeddings.map(Vec::into_iter);
    for j in jobs {
        let n = j.request.tokens.len();
        let l: Vec<f32> = logits.by_ref().take(n).collect();
        let e: Option<Vec<Vec<f32>>> = embs.as_mut().map(|it| it.by_ref().take(n).collect());
        let _ = j.reply.send(Ok(Prediction {
            scores: l.iter().copied().map(sigmoid).collect(),
            logits: l,
            embeddings: if j.request.embeddings { e } else { None },
        }));
    }
}
