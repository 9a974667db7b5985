//! The one place a sharded process decides whether a Connection is its own (`--shards N`):
//! before anything is written for it (finalizer, status, Event, upstream request), the
//! reconcile asks [`ShardGate::not_mine`]. The decision is `shard::assign` over the
//! watch caches: the Connection's Provider (or ClusterProvider) names the account, and the
//! shard labels of every Provider of that account pin it.
//!
//! A Connection whose Provider cannot be found has no account; shard 0 owns it, so exactly
//! one process reports `ProviderNotFound`.

use std::collections::HashSet;
use std::sync::Mutex;

use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::context::Context;
use super::events;
use super::shard::{self, SHARD_LABEL, Shard};
use crate::api::{Connection, ProviderConfig, ProviderKind};
use crate::resolve::Lookup;

/// Reason of the Warning Event on a Provider whose shard label is ignored.
pub const INVALID_SHARD_LABEL: &str = "InvalidShardLabel";

/// Why a Connection is left alone by this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotMine {
    /// Its account is on that shard.
    OtherShard(u32),
    /// The watches are gone (the controller is stopping): nothing can be decided.
    ShuttingDown,
}

/// This process's shard, and the bad labels it already reported.
#[derive(Default)]
pub struct ShardGate {
    shard: Option<Shard>,
    /// `uid=label` of the Providers already warned about, so a bad label gives one Event
    /// per process rather than one per reconcile.
    warned: Mutex<HashSet<String>>,
}

impl ShardGate {
    /// `None`: not sharded, every Connection is this process's.
    pub fn new(shard: Option<Shard>) -> Self {
        ShardGate { shard, warned: Mutex::default() }
    }

    /// Why `conn` is not this process's to write; `None` when it is (or there is no
    /// sharding).
    pub async fn not_mine(
        &self,
        conn: &Connection,
        namespace: &str,
        ctx: &Context,
    ) -> Result<Option<NotMine>, kube::Error> {
        let Some(mine) = self.shard else { return Ok(None) };
        // The shard labels come from the Provider caches: deciding before their first full
        // list could miss a label and take another shard's account (the controller starts
        // reconciling as soon as Connections arrive). Once synced this returns at once.
        if !(super::synced(&ctx.providers).await && super::synced(&ctx.cluster_providers).await) {
            return Ok(Some(NotMine::ShuttingDown));
        }
        let owner = self.owner(conn, namespace, ctx, mine).await?;
        Ok((owner != mine.index).then_some(NotMine::OtherShard(owner)))
    }

    async fn owner(&self, conn: &Connection, namespace: &str, ctx: &Context, mine: Shard) -> Result<u32, kube::Error> {
        let reference = &conn.spec.provider_ref;
        let (config, label, provider_ref) = match reference.kind {
            ProviderKind::Provider => match ctx.provider(namespace, &reference.name).await? {
                Some(p) => (ProviderConfig::from_provider(&p.spec, namespace), shard_label(&p), p.object_ref(&())),
                None => return Ok(0),
            },
            ProviderKind::ClusterProvider => match ctx.cluster_provider(&reference.name).await? {
                Some(p) => (ProviderConfig::from_cluster_provider(&p.spec), shard_label(&p), p.object_ref(&())),
                None => return Ok(0),
            },
        };
        let key = shard::shard_key(&config);
        let mut labelled = self.labelled_providers(ctx);
        // The Connection's own Provider counts even when the cache does not hold it yet (it
        // was just read from the API server).
        if let Some(label) = &label {
            labelled.push((key.clone(), label.clone()));
        }
        let owner = shard::assign(&key, labelled.iter().map(|(k, l)| (k.as_str(), Some(l.as_str()))), mine.count);
        if owner == mine.index
            && let Err(bad) = shard::parse_label(label.as_deref(), mine.count)
        {
            self.warn_once(ctx, &provider_ref, label.as_deref().unwrap_or_default(), bad.to_string()).await;
        }
        Ok(owner)
    }

    /// The shard key and label of every cached Provider and ClusterProvider that carries a
    /// shard label (few do; the others need no work).
    fn labelled_providers(&self, ctx: &Context) -> Vec<(String, String)> {
        let namespaced = ctx.providers.state().into_iter().filter_map(|p| {
            let label = shard_label(p.as_ref())?;
            let namespace = p.namespace().unwrap_or_default();
            Some((shard::shard_key(&ProviderConfig::from_provider(&p.spec, &namespace)), label))
        });
        let cluster = ctx.cluster_providers.state().into_iter().filter_map(|p| {
            let label = shard_label(p.as_ref())?;
            Some((shard::shard_key(&ProviderConfig::from_cluster_provider(&p.spec)), label))
        });
        namespaced.chain(cluster).collect()
    }

    async fn warn_once(
        &self,
        ctx: &Context,
        provider: &k8s_openapi::api::core::v1::ObjectReference,
        label: &str,
        note: String,
    ) {
        let seen = format!("{}={label}", provider.uid.as_deref().unwrap_or_default());
        if !self.warned.lock().unwrap_or_else(|e| e.into_inner()).insert(seen) {
            return;
        }
        events::publish(&ctx.recorder, provider, EventType::Warning, INVALID_SHARD_LABEL, "Shard", note).await;
    }
}

fn shard_label<K: Resource>(object: &K) -> Option<String> {
    object.meta().labels.as_ref()?.get(SHARD_LABEL).cloned()
}
