//! Write coalescing for fleets: when many Connections need the same change at once (a fleet
//! moved to a new plan), Nango takes one `PATCH /connections/metadata` with an array of
//! `connection_id`s instead of one request each (docs/providers.md, Nango).
//!
//! There is no waiting for company: the first write of a body goes out at once; writes of
//! the same body that arrive while it is in flight are sent together right after it. The
//! array is all-or-nothing (one unknown id fails it with 404 and writes nothing), so a batch
//! that fails with 404 is retried one id at a time and each Connection gets its own answer.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::ProviderError;

/// Most ids in one request; keeps bodies small whatever the fleet size.
pub(crate) const MAX_BATCH: usize = 100;

type Waiter = (String, oneshot::Sender<Result<(), ProviderError>>);

/// Writes waiting for a batch, per batch key (same endpoint and body but the ids).
pub(crate) struct Coalescer<K> {
    pending: Arc<Mutex<HashMap<K, Vec<Waiter>>>>,
}

impl<K> Default for Coalescer<K> {
    fn default() -> Self {
        Coalescer { pending: Arc::default() }
    }
}

impl<K> std::fmt::Debug for Coalescer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> Coalescer<K> {
    /// Write `id` as part of the batch `key`. `send` sends one request for the ids it is
    /// given (one or more); it runs on a background task, so a cancelled reconcile cannot
    /// strand the others of its batch.
    pub(crate) async fn write<F, Fut>(&self, key: K, id: String, send: F) -> Result<(), ProviderError>
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ProviderError>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get_mut(&key) {
                // A sender is running for this key: it takes this id with its next batch.
                Some(waiters) => {
                    waiters.push((id, tx));
                    false
                }
                None => {
                    pending.insert(key.clone(), vec![(id, tx)]);
                    true
                }
            }
        };
        if lead {
            tokio::spawn(drain(self.pending.clone(), key, send));
        }
        rx.await.unwrap_or_else(|_| {
            Err(ProviderError::Retryable { status: None, message: "the batched write was abandoned".into() })
        })
    }
}

/// Send batches for `key` until nobody waits; the entry stays in the map while this runs,
/// which is what tells later writers that a sender exists.
async fn drain<K, F, Fut>(pending: Arc<Mutex<HashMap<K, Vec<Waiter>>>>, key: K, send: F)
where
    K: Eq + Hash,
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<(), ProviderError>>,
{
    loop {
        let batch: Vec<Waiter> = {
            let mut map = pending.lock().unwrap_or_else(|e| e.into_inner());
            let Some(waiters) = map.get_mut(&key) else { return };
            if waiters.is_empty() {
                map.remove(&key);
                return;
            }
            let take = waiters.len().min(MAX_BATCH);
            waiters.drain(..take).collect()
        };
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        let result = send(ids).await;
        match result {
            Err(ProviderError::NotFound { .. }) if batch.len() > 1 => {
                // All-or-nothing: nothing was written; find out which ids are missing.
                for (id, tx) in batch {
                    let single = send(vec![id]).await;
                    let _ = tx.send(single);
                }
            }
            result => {
                for (_, tx) in batch {
                    let _ = tx.send(result.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    #[tokio::test]
    async fn writes_arriving_while_one_is_in_flight_go_out_together() {
        let coalescer: Arc<Coalescer<&'static str>> = Arc::default();
        let sent: Arc<StdMutex<Vec<Vec<String>>>> = Arc::default();
        let send = {
            let sent = sent.clone();
            move |ids: Vec<String>| {
                let sent = sent.clone();
                async move {
                    sent.lock().unwrap().push(ids);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(())
                }
            }
        };
        let first = {
            let (c, send) = (coalescer.clone(), send.clone());
            tokio::spawn(async move { c.write("k", "a".into(), send).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let rest: Vec<_> = ["b", "c", "d"]
            .into_iter()
            .map(|id| {
                let (c, send) = (coalescer.clone(), send.clone());
                tokio::spawn(async move { c.write("k", id.into(), send).await })
            })
            .collect();
        assert_eq!(first.await.unwrap(), Ok(()));
        for r in rest {
            assert_eq!(r.await.unwrap(), Ok(()));
        }
        let sent = sent.lock().unwrap().clone();
        assert_eq!(sent, vec![vec!["a".to_string()], vec!["b".into(), "c".into(), "d".into()]]);
        assert!(coalescer.pending.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_404_batch_is_retried_one_id_at_a_time() {
        let coalescer: Arc<Coalescer<&'static str>> = Arc::default();
        let sent: Arc<StdMutex<Vec<Vec<String>>>> = Arc::default();
        let gate = Arc::new(tokio::sync::Notify::new());
        let send = {
            let (sent, gate) = (sent.clone(), gate.clone());
            move |ids: Vec<String>| {
                let (sent, gate) = (sent.clone(), gate.clone());
                async move {
                    let first = sent.lock().unwrap().is_empty();
                    sent.lock().unwrap().push(ids.clone());
                    if first {
                        gate.notified().await;
                    }
                    if ids.iter().any(|id| id == "gone") {
                        Err(ProviderError::NotFound { message: "unknown_connection".into() })
                    } else {
                        Ok(())
                    }
                }
            }
        };
        let spawn = |id: &'static str| {
            let (c, send) = (coalescer.clone(), send.clone());
            tokio::spawn(async move { c.write("k", id.into(), send).await })
        };
        let first = spawn("a");
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (gone, ok) = (spawn("gone"), spawn("b"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        gate.notify_one();
        assert_eq!(first.await.unwrap(), Ok(()));
        assert!(matches!(gone.await.unwrap(), Err(ProviderError::NotFound { .. })));
        assert_eq!(ok.await.unwrap(), Ok(()));
        let sent = sent.lock().unwrap().clone();
        assert_eq!(
            sent,
            vec![vec!["a".to_string()], vec!["gone".into(), "b".into()], vec!["gone".into()], vec!["b".into()]]
        );
    }
}
