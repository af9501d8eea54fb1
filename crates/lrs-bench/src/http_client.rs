//! A minimal keep-alive HTTP/1.1 client (hyper) for benchmarking a running server, and the
//! HTTP throughput run: `concurrency` connections each sending requests back to back.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::stats::Summary;
use lrs_serve::error::{Result, ServeError};

/// One HTTP/1.1 connection to `http://host:port`.
pub struct HttpClient {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

fn net_err(what: &str, e: impl std::fmt::Display) -> ServeError {
    ServeError::Io {
        file: what.into(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl HttpClient {
    /// Connects to `url` (`http://host:port`, a trailing path is ignored).
    pub async fn connect(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| ServeError::Config(format!("{url}: only http:// URLs")))?;
        let authority = rest.split('/').next().unwrap_or(rest).to_string();
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| net_err(&authority, e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| net_err(&authority, e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| net_err(&authority, e))?;
        tokio::spawn(conn);
        Ok(Self { sender, authority })
    }

    /// Sends one request; returns the status and the whole body.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes)> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| net_err(path, e))?;
        self.sender.ready().await.map_err(|e| net_err(path, e))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| net_err(path, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| net_err(path, e))?
            .to_bytes();
        Ok((status, body))
    }
}

/// One measured HTTP scenario.
#[derive(Debug, Clone, Serialize)]
pub struct HttpResult {
    /// Scenario name.
    pub label: String,
    /// Distinct tasks the requests cycle over (0: base-only).
    pub distinct_tasks: usize,
    /// Requests sent.
    pub requests: usize,
    /// Requests that did not answer 200.
    pub failed: usize,
    /// Inputs (rows) per second.
    pub rows_per_s: f64,
    /// Per-request latency.
    pub latency: Summary,
}

/// Sends `requests` `POST /v1/predict` over `concurrency` connections; request `k` asks for
/// task `tasks[k % len]` (`None`: base-only) with `inputs_per_request` texts from `texts`.
pub async fn run(
    url: &str,
    label: &str,
    tasks: &[Option<String>],
    texts: &[String],
    inputs_per_request: usize,
    requests: usize,
    concurrency: usize,
) -> Result<HttpResult> {
    if tasks.is_empty() || texts.is_empty() || concurrency == 0 {
        return Err(ServeError::Config(
            "HTTP bench needs tasks, texts and connections".into(),
        ));
    }
    let bodies: Vec<Vec<u8>> = (0..requests)
        .map(|k| {
            let inputs: Vec<&String> = (0..inputs_per_request)
                .map(|j| &texts[(k * inputs_per_request + j) % texts.len()])
                .collect();
            serde_json::json!({"task": tasks[k % tasks.len()], "inputs": inputs})
                .to_string()
                .into_bytes()
        })
        .collect();
    let start = Instant::now();
    let mut workers = Vec::new();
    for c in 0..concurrency {
        let mine: Vec<Vec<u8>> = bodies
            .iter()
            .skip(c)
            .step_by(concurrency)
            .cloned()
            .collect();
        let url = url.to_string();
        workers.push(tokio::spawn(async move {
            let mut client = HttpClient::connect(&url).await?;
            let mut out: Vec<(Duration, bool)> = Vec::with_capacity(mine.len());
            for body in mine {
                let t = Instant::now();
                let (status, _) = client
                    .send("POST", "/v1/predict", "application/json", body)
                    .await?;
                out.push((t.elapsed(), status == 200));
            }
            Ok::<_, ServeError>(out)
        }));
    }
    let mut samples = Vec::new();
    let mut failed = 0;
    for w in workers {
        let got = w
            .await
            .map_err(|e| ServeError::Internal(format!("bench worker: {e}")))??;
        for (d, ok) in got {
            samples.push(d);
            failed += usize::from(!ok);
        }
    }
    let wall = start.elapsed().as_secs_f64().max(1e-9);
    Ok(HttpResult {
        label: label.to_string(),
        distinct_tasks: tasks.iter().filter(|t| t.is_some()).count(),
        requests,
        failed,
        rows_per_s: (requests * inputs_per_request) as f64 / wall,
        latency: Summary::of(&samples),
    })
}
