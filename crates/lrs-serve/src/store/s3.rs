//! Opening a store from a [`Location`]: a [`LocalDir`], or an [`ObjectTasks`] over S3 with
//! [`StoreOptions`] (endpoint, region, timeouts, retries).
//!
//! Credentials and defaults come from the usual AWS environment variables, read by
//! `object_store`'s `AmazonS3Builder::from_env`: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL` (an S3-compatible server), `AWS_ALLOW_HTTP=true` (plain HTTP, for a
//! server on loopback). The options given here override the environment.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use serde::{Deserialize, Serialize};

use super::bridge::Bridge;
use super::{LocalDir, Location, ObjectTasks, TaskStore};
use crate::error::{Result, ServeError};

/// How to reach an object store (ignored for local directories).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOptions {
    /// S3 endpoint URL (default: `AWS_ENDPOINT_URL`, else AWS itself).
    pub endpoint: Option<String>,
    /// Region (default: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Allow plain `http://` endpoints (default: `AWS_ALLOW_HTTP`).
    pub allow_http: Option<bool>,
    /// Longest one request may take, in milliseconds (connecting: at most half of it).
    pub timeout_ms: u64,
    /// Retries of a failed request (with exponential backoff from 50 ms).
    pub retries: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            allow_http: None,
            timeout_ms: 5_000,
            retries: 3,
        }
    }
}

impl StoreOptions {
    /// Longest one store call may take, retries included: every try's timeout plus the
    /// backoff between them.
    pub fn deadline(&self) -> Duration {
        let tries = self.retries as u64 + 1;
        Duration::from_millis(self.timeout_ms.saturating_mul(tries))
            + self.max_backoff() * self.retries as u32
    }

    fn max_backoff(&self) -> Duration {
        Duration::from_millis(1_000)
    }

    /// The S3 client for `bucket`, from the environment and these options.
    pub fn s3(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let timeout = Duration::from_millis(self.timeout_ms.max(1));
        let mut client = ClientOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout((timeout / 2).max(Duration::from_millis(1)));
        if let Some(allow) = self.allow_http {
            client = client.with_allow_http(allow);
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: self.max_backoff(),
                base: 2.0,
            },
            max_retries: self.retries,
            retry_timeout: self.deadline(),
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry);
        // The environment's `AWS_ALLOW_HTTP` lives in the builder's client options, which
        // `with_client_options` replaces: carry it over unless an option says otherwise.
        if self.allow_http.is_none() {
            let env = std::env::var("AWS_ALLOW_HTTP").unwrap_or_default();
            client = client.with_allow_http(env.eq_ignore_ascii_case("true"));
        }
        builder = builder.with_client_options(client);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        match &self.region {
            Some(region) => builder = builder.with_region(region),
            None if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none() =>
            {
                builder = builder.with_region("us-east-1");
            }
            None => {}
        }
        let store = builder.build().map_err(|e| ServeError::Store {
            location: format!("s3://{bucket}"),
            message: format!("configuring the S3 client: {e}"),
        })?;
        Ok(Arc::new(store))
    }
}

/// The task store at `location`: a directory (created if missing) or an S3 prefix.
pub fn open(location: &Location, options: &StoreOptions) -> Result<Arc<dyn TaskStore>> {
    match location {
        Location::Dir(dir) => Ok(Arc::new(LocalDir::open(dir)?)),
        Location::S3 { bucket, prefix } => Ok(Arc::new(ObjectTasks::new(
            options.s3(bucket)?,
            prefix,
            location.to_string(),
            options.deadline(),
        )?)),
    }
}

/// The whole object at `location` (`s3://bucket/key`), e.g. a shared file kept in the store.
pub fn fetch_object(location: &Location, options: &StoreOptions) -> Result<Vec<u8>> {
    let Location::S3 { bucket, prefix } = location else {
        return Err(ServeError::Config(format!(
            "{location}: not an object-store location"
        )));
    };
    let store = options.s3(bucket)?;
    let key = object_store::path::Path::from(prefix.as_str());
    let loc = location.to_string();
    let what = format!("GET {key}");
    let err = {
        let (loc, what) = (loc.clone(), what.clone());
        move |e: object_store::Error| ServeError::Store {
            location: loc,
            message: format!("{what}: {e}"),
        }
    };
    Bridge::new()?.run(&loc, &what, options.deadline(), async move {
        let got = store.get(&key).await.map_err(err.clone())?;
        Ok(got.bytes().await.map_err(err)?.to_vec())
    })
}
