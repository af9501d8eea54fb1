//! [`Bridge`]: runs the object store's async calls from the registry's blocking code, on a
//! small runtime of its own, so it works the same from a request's blocking thread, a CLI
//! with no runtime, or a test — and every call ends by a deadline.

use std::future::Future;
use std::time::Duration;

use crate::error::{Result, ServeError};

/// A two-thread tokio runtime that blocking callers hand futures to.
#[derive(Debug)]
pub struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Bridge {
    /// Starts the runtime.
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lrs-store")
            .enable_all()
            .build()
            .map_err(|e| ServeError::Internal(format!("starting the object-store runtime: {e}")))?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` to completion on the bridge's runtime and waits for it, at most
    /// `deadline` (then a [`ServeError::Store`] naming `what` and `location`). Never call it
    /// from an async task: it blocks the calling thread.
    pub fn run<T: Send + 'static>(
        &self,
        location: &str,
        what: &str,
        deadline: Duration,
        future: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| ServeError::Internal("the object-store runtime is gone".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let out = tokio::time::timeout(deadline, future).await;
            let _ = tx.send(out);
        });
        let timed_out = || ServeError::Store {
            location: location.to_string(),
            message: format!("{what}: no answer within {} ms", deadline.as_millis()),
        };
        // The runtime's own timeout ends the future; this one is only a backstop.
        match rx.recv_timeout(deadline + Duration::from_secs(1)) {
            Ok(Ok(out)) => out,
            Ok(Err(_)) | Err(_) => Err(timed_out()),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // A runtime dropped inside another one's async context would panic; this never waits.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_futures_and_times_out_slow_ones() {
        let bridge = Bridge::new().unwrap_or_else(|e| panic!("{e}"));
        let got = bridge.run("mem", "add", Duration::from_secs(5), async { Ok(2 + 2) });
        assert_eq!(got.ok(), Some(4));
        let slow = bridge.run("mem", "sleep", Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        });
        match slow {
            Err(ServeError::Store { location, message }) => {
                assert_eq!(location, "mem");
                assert!(
                    message.contains("sleep: no answer within 50 ms"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn works_from_inside_a_runtime_s_blocking_thread() {
        let outer = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
        let got = outer.block_on(async {
            tokio::task::spawn_blocking(|| {
                let bridge = Bridge::new()?;
                bridge.run("mem", "x", Duration::from_secs(5), async { Ok(7) })
            })
            .await
        });
        assert_eq!(got.ok().and_then(|r| r.ok()), Some(7));
    }
}
