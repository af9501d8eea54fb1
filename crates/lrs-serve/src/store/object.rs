//! [`ObjectTasks`]: task files as objects `<prefix>/<task_id>.safetensors` in an object store
//! (S3-compatible in production, [`object_store::memory::InMemory`] in unit tests).
//!
//! A version is the object's ETag (with its size); a GET returns the ETag of the bytes it
//! returns, so a loaded task always knows which version it validated. A PUT replaces an
//! object whole: readers see the old bytes or the new ones, never a mix. Every call is
//! bounded by the store options' timeouts and retries ([`super::StoreOptions`]); a failure is
//! a [`ServeError::Store`] (HTTP 503).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::bridge::Bridge;
use super::{Fetched, TaskStore, Version};
use crate::error::{Result, ServeError};
use crate::task_id::TaskId;

/// Task files in an object store under one key prefix.
#[derive(Debug)]
pub struct ObjectTasks {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    deadline: Duration,
    bridge: Bridge,
}

/// The version an object's metadata names: its ETag, else its object version, else its
/// modification time (stores without ETags).
fn version_of(meta: &object_store::ObjectMeta) -> Version {
    let tag = meta
        .e_tag
        .clone()
        .or_else(|| meta.version.clone())
        .unwrap_or_else(|| meta.last_modified.to_rfc3339());
    Version {
        len: meta.size,
        tag,
    }
}

impl ObjectTasks {
    /// Tasks under `prefix` (`""`: the bucket's top level) of `store`, shown as `location`
    /// in messages; every call fails after `deadline` at the latest (the store's own retries
    /// included).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        location: String,
        deadline: Duration,
    ) -> Result<Self> {
        Ok(Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            location,
            deadline,
            bridge: Bridge::new()?,
        })
    }

    fn key(&self, id: &TaskId) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(id.file_name())
        } else {
            ObjectPath::from(format!("{}/{}", self.prefix, id.file_name()))
        }
    }

    /// An error of the store, as [`ServeError::Store`] naming what was being done.
    fn failed(location: &str, what: &str, e: &object_store::Error) -> ServeError {
        ServeError::Store {
            location: location.to_string(),
            message: format!("{what}: {e}"),
        }
    }

    /// Runs `call(store, key)` on the bridge; `what` names it in errors.
    fn run<T: Send + 'static, F>(
        &self,
        what: String,
        call: impl FnOnce(Arc<dyn ObjectStore>, String) -> F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let future = call(self.store.clone(), self.location.clone());
        self.bridge
            .run(&self.location, &what, self.deadline, future)
    }
}

impl TaskStore for ObjectTasks {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn path(&self, id: &TaskId) -> PathBuf {
        PathBuf::from(format!("{}/{}", self.location, id.file_name()))
    }

    fn head(&self, id: &TaskId) -> Result<Option<Version>> {
        let key = self.key(id);
        let what = format!("HEAD {key}");
        self.run(what.clone(), |store, loc| async move {
            match store.head(&key).await {
                Ok(meta) => Ok(Some(version_of(&meta))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(Self::failed(&loc, &what, &e)),
            }
        })
    }

    fn read(&self, id: &TaskId, max_bytes: u64) -> Result<Option<Fetched>> {
        let key = self.key(id);
        let what = format!("GET {key}");
        self.run(what.clone(), |store, loc| async move {
            let got = match store.get(&key).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(Self::failed(&loc, &what, &e)),
            };
            let version = version_of(&got.meta);
            if version.len > max_bytes {
                // Dropping the response closes it unread.
                return Ok(Some(Fetched {
                    version,
                    bytes: Vec::new(),
                }));
            }
            let bytes = got
                .bytes()
                .await
                .map_err(|e| Self::failed(&loc, &what, &e))?;
            Ok(Some(Fetched {
                version,
                bytes: bytes.to_vec(),
            }))
        })
    }

    fn write(&self, id: &TaskId, bytes: &[u8]) -> Result<Version> {
        let key = self.key(id);
        let what = format!("PUT {key}");
        let payload = PutPayload::from(bytes.to_vec());
        let len = bytes.len() as u64;
        self.run(what.clone(), |store, loc| async move {
            let put = store
                .put(&key, payload)
                .await
                .map_err(|e| Self::failed(&loc, &what, &e))?;
            if let Some(tag) = put.e_tag.or(put.version) {
                return Ok(Version { len, tag });
            }
            // No ETag in the answer: ask for the version the store now reports.
            let meta = store
                .head(&key)
                .await
                .map_err(|e| Self::failed(&loc, &what, &e))?;
            Ok(version_of(&meta))
        })
    }

    fn delete(&self, id: &TaskId) -> Result<bool> {
        let key = self.key(id);
        let what = format!("DELETE {key}");
        self.run(what.clone(), |store, loc| async move {
            // S3 deletes of absent keys succeed: ask first, so a missing task is a 404.
            match store.head(&key).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(Self::failed(&loc, &what, &e)),
            }
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
                Err(e) => Err(Self::failed(&loc, &what, &e)),
            }
        })
    }

    fn list(&self) -> Result<Vec<(TaskId, u64)>> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let what = format!("LIST {}", self.prefix);
        self.run(what.clone(), |store, loc| async move {
            let listed = store
                .list_with_delimiter(prefix.as_ref())
                .await
                .map_err(|e| Self::failed(&loc, &what, &e))?;
            Ok(listed
                .objects
                .iter()
                .filter_map(|m| {
                    let id = m.location.filename().and_then(TaskId::from_file_name)?;
                    Some((id, m.size))
                })
                .collect())
        })
    }

    fn check(&self) -> Result<()> {
        // Any answer, "no such key" included, shows the store is reachable and the
        // credentials work.
        let key = if self.prefix.is_empty() {
            ObjectPath::from(".lrs-health")
        } else {
            ObjectPath::from(format!("{}/.lrs-health", self.prefix))
        };
        let what = format!("HEAD {key}");
        self.run(what.clone(), |store, loc| async move {
            match store.head(&key).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(Self::failed(&loc, &what, &e)),
            }
        })
    }

    fn remote(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn tasks(prefix: &str) -> ObjectTasks {
        ObjectTasks::new(
            Arc::new(InMemory::new()),
            prefix,
            "mem://b".into(),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn versions_follow_writes_and_deletes() {
        let store = tasks("p/q");
        let id = TaskId::parse("alice").unwrap();
        assert_eq!(store.head(&id).ok(), Some(None));
        assert!(store.read(&id, 100).unwrap().is_none());
        let v1 = store.write(&id, b"one").unwrap();
        assert_eq!(store.head(&id).unwrap(), Some(v1.clone()));
        let got = store.read(&id, 100).unwrap().unwrap();
        assert_eq!((got.version, got.bytes), (v1.clone(), b"one".to_vec()));
        let v2 = store.write(&id, b"two!").unwrap();
        assert_ne!(v1, v2);
        assert_eq!(v2.len, 4);
        // Over the size limit: the version, no bytes.
        let big = store.read(&id, 3).unwrap().unwrap();
        assert!(big.bytes.is_empty() && big.version == v2);
        store.write(&TaskId::parse("bob").unwrap(), b"b").unwrap();
        let mut listed = store.list().unwrap();
        listed.sort();
        let names: Vec<_> = listed.iter().map(|(i, n)| (i.to_string(), *n)).collect();
        assert_eq!(names, [("alice".to_string(), 4), ("bob".to_string(), 1)]);
        assert!(store.delete(&id).unwrap());
        assert!(!store.delete(&id).unwrap());
        assert_eq!(store.head(&id).ok(), Some(None));
        assert!(store.check().is_ok());
        assert_eq!(store.path(&id), PathBuf::from("mem://b/alice.safetensors"));
    }
}
