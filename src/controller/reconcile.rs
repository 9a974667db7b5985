//! One reconcile of a Connection, in named steps (Stackable style): `desired` (the spec's
//! own rules, its shared settings merged in) → `dereference` (Provider and credentials, from
//! the watch caches) → `read` (upstream GET, or for a drift check a row of the account's list
//! snapshot) → `plan` (ownership-aware diff) → `write` (the minimum, Manage only, planned
//! from a GET) → `status` (built deterministically, written only when changed).
//! Deletion runs `dereference` → `read` → `plan_removal` → `write` → release the finalizer.
//!
//! `Stages::run` is the list of stages; each returns its result or a typed `Stop` whose
//! `reason()` is the Ready reason, and `Stages::stopped` writes what each stop shows. The
//! decisions (`drift_check`, `next_attempt`, `provider_health`) are pure
//! functions with their own unit tests.
//!
//! `desired` and `dereference` are `resolve`'s, which `connection-operator plan` runs too (with
//! plain API reads instead of the watch caches), and the plan is `diff::plan` for both.
//!
//! Every provider failure is classified once (`ProviderError`) and mapped here to a Ready
//! reason and a requeue (docs/controller.md, "Reconcile"); a reconcile never sleeps waiting for a
//! rate-limited provider, it returns and requeues at `retryAt`. Values that came from a
//! Secret are kept out of every message (`Desired::redact`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use rand::Rng;
use serde_json::json;
use tracing::Instrument;

use super::conflict::{self, Claim};
use super::context::{Context, FIELD_MANAGER, Resolution};
use super::events::{self, CLEANUP_SKIPPED, DRIFT_CORRECTED, ORPHANED};
use super::finalizer;
use super::status::{self, Observation, Outcome, ProviderHealth};
use crate::api::conditions::{self, READY, Reason};
use crate::api::{
    ClusterProvider, Connection, ConnectionStatus, DeletionPolicy, ManagementPolicy, Provider, ProviderStatus,
};
use crate::desired::Desired;
use crate::diff;
use crate::providers::{self, Freshness, ProviderError, Target};
use crate::resolve::{self, ProviderObject, Resolved};

/// Annotation that requests a reconcile now; its value is echoed in
/// `status.lastHandledReconcileAt` (the Flux convention).
pub const RECONCILE_REQUESTED_AT: &str = "connection-operator.dev/reconcile-requested-at";

/// A failure of the reconcile itself (not of the provider): retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Connection has no namespace")]
    NoNamespace,
}

/// Why `dereference` or `desired` stopped: a Ready reason with its message, and what to tell
/// the Provider about its credentials.
struct Unresolved {
    reason: Reason,
    message: String,
    provider: Option<(ProviderObject, ProviderHealth)>,
}

impl From<resolve::Unresolved> for Unresolved {
    fn from(u: resolve::Unresolved) -> Self {
        let provider = u.provider.map(|p| (p, ProviderHealth::CredentialsMissing(u.message.clone())));
        Unresolved { reason: u.reason, message: u.message, provider }
    }
}

/// Entry point called by kube-runtime.
///
/// kube-runtime polls every running reconcile inside its one runner task, so however many
/// worker threads the runtime has, all reconciles would share one core (a 100,000-Connection
/// run held the operator at one core of two for its whole converge). Each reconcile therefore
/// runs as a task of its own; dropping this future (shutdown, a lost Lease) aborts that task,
/// as dropping the reconcile did before, so nothing keeps writing after the controller stops.
pub async fn reconcile(conn: Arc<Connection>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut task = AbortOnDrop(tokio::spawn(reconcile_on_a_worker(conn, ctx).in_current_span()));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only an abort cancels the task, and only this future's drop aborts it.
        Err(_) => unreachable!("a reconcile task cancelled while awaited"),
    }
}

/// A spawned task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn reconcile_on_a_worker(conn: Arc<Connection>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = conn.namespace().ok_or(Error::NoNamespace)?;
    let key = format!("{namespace}/{}", conn.name_any());
    let result = reconcile_connection(&conn, &ctx, &namespace, &key).await;
    let label = match &result {
        Ok((Outcome::Deferred, _)) => "deferred",
        Ok((Outcome::OtherShard, _)) => "other_shard",
        Ok((outcome, _)) => match outcome.reason() {
            Reason::InSync => "ok",
            other => other.as_str(),
        },
        Err(_) => "error",
    };
    ctx.metrics.reconciled(label, started.elapsed());
    result.map(|(_, action)| action)
}

/// kube-runtime calls this when `reconcile` returned an error (a Kubernetes API failure):
/// per-object exponential backoff, kept by us since this hook never sees successes.
pub fn error_policy(conn: Arc<Connection>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", conn.namespace().unwrap_or_default(), conn.name_any());
    let delay = ctx.backoffs.next(&key);
    tracing::warn!(connection = %key, error = %error, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
    Action::requeue(delay)
}

/// Why the reconcile stopped before its `status` stage. Each stop has the Ready reason it
/// shows (`reason`) and its own status write and requeue (`Stages::stopped`).
enum Stop {
    /// `desired` or `dereference` cannot go on: terminal until something referenced changes.
    Unresolved(Box<Unresolved>),
    /// An older Connection of the same upstream connection owns overlapping keys.
    Conflict(String),
    /// `spec.suspend`: no upstream call at all.
    Suspended,
    /// Every reconcile slot of the provider account is taken: try again shortly.
    Busy,
    /// A drift check the account's budget cannot afford before `retry_at`: postponed, not
    /// failed (the Connection was in sync and nothing says otherwise, so its status stays).
    Postponed { retry_at: SystemTime },
    /// A Kubernetes API failure: the reconcile itself failed.
    Kube(Error),
}

impl Stop {
    /// The Ready reason this stop shows (or, for the stops that leave status alone, the
    /// closest one for logs and metrics).
    fn reason(&self) -> Reason {
        match self {
            Stop::Unresolved(u) => u.reason,
            Stop::Conflict(_) => Reason::Conflict,
            Stop::Suspended => Reason::Suspended,
            Stop::Busy | Stop::Postponed { .. } => Outcome::Deferred.reason(),
            Stop::Kube(_) => Reason::UpstreamUnavailable,
        }
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Kube(e)
    }
}

impl From<kube::Error> for Stop {
    fn from(e: kube::Error) -> Self {
        Stop::Kube(e.into())
    }
}

impl From<Unresolved> for Stop {
    fn from(u: Unresolved) -> Self {
        Stop::Unresolved(Box::new(u))
    }
}

impl From<resolve::Unresolved> for Stop {
    fn from(u: resolve::Unresolved) -> Self {
        Unresolved::from(u).into()
    }
}

/// What every stage of one reconcile of a Connection needs.
struct Stages<'a> {
    conn: &'a Connection,
    ctx: &'a Context,
    api: Api<Connection>,
    namespace: &'a str,
    key: &'a str,
    requested_at: Option<String>,
}

async fn reconcile_connection(
    conn: &Connection,
    ctx: &Context,
    namespace: &str,
    key: &str,
) -> Result<(Outcome, Action), Error> {
    // Before anything is written for it: another shard's Connection is that process's
    // alone (finalizer, status, Events, upstream), so one process paces each account.
    if let Some(why) = ctx.shard_gate.not_mine(conn, namespace, ctx).await? {
        tracing::trace!(connection = %key, ?why, "not this shard's Connection");
        return Ok((Outcome::OtherShard, Action::await_change()));
    }
    let api: Api<Connection> = Api::namespaced(ctx.client.clone(), namespace);
    if conn.meta().deletion_timestamp.is_some() {
        return finalize(conn, ctx, &api, namespace, key).await;
    }
    match conn.spec.deletion_policy {
        DeletionPolicy::Delete => finalizer::add(&api, conn).await?,
        DeletionPolicy::Orphan => finalizer::remove(&api, conn).await?,
    }
    let requested_at = conn.annotations().get(RECONCILE_REQUESTED_AT).cloned();
    let stages = Stages { conn, ctx, api, namespace, key, requested_at };
    match stages.run().await {
        Ok(done) => Ok(done),
        Err(stop) => stages.stopped(stop).await,
    }
}

impl Stages<'_> {
    /// The stages, in order; each either hands its result to the next or stops.
    async fn run(&self) -> Result<(Outcome, Action), Stop> {
        let desired = resolve::desired(self.conn, self.namespace, self.ctx).await??;
        let resolved = dereference(self.conn, self.ctx, self.namespace).await?;
        self.check_ownership(&desired, &resolved).await?;
        if self.conn.spec.suspend {
            return Err(Stop::Suspended);
        }
        let turn = self.ctx.upstream_slot(&resolved.handle).await.ok_or(Stop::Busy)?;
        let (outcome, managed_keys) = self.read_plan_write(&desired, &resolved).await?;
        // The status and Event writes are Kubernetes requests: another reconcile may talk
        // to its provider meanwhile.
        drop(turn);
        Ok(self.status(&desired, &resolved, outcome, managed_keys).await?)
    }

    fn observation(&self, outcome: Outcome, managed_keys: Option<Vec<String>>) -> Observation {
        Observation {
            generation: self.conn.meta().generation,
            outcome,
            managed_keys,
            secret_keys: None,
            requested_at: self.requested_at.clone(),
        }
    }

    /// Credentials that would loop back through the Connection, then ownership: an older
    /// Connection of the same upstream connection through the same account keeps its keys;
    /// this one writes nothing while they overlap. Observe never writes, so it never
    /// conflicts.
    async fn check_ownership(&self, desired: &Desired, resolved: &Resolved) -> Result<(), Stop> {
        let (conn, ctx) = (self.conn, self.ctx);
        if let Some(refused) = resolve::credentials_loop(desired, &resolved.account, self.namespace) {
            return Err(refused.into());
        }
        let declared = conflict::declared_keys(&desired.spec);
        if let Some(uid) = &conn.metadata.uid {
            let resolution = Resolution { account: resolved.account.key.clone(), declared: declared.clone() };
            ctx.remember_resolution(uid, resolution);
        }
        if conn.spec.management_policy != ManagementPolicy::Manage {
            return Ok(());
        }
        let mine = Claim::new(Arc::new(conn.clone()), Some(resolved.account.key.clone()), Some(declared));
        let mut others: Vec<Claim> = ctx
            .connection_targets
            .candidates(conn)
            .into_iter()
            .filter(|o| o.spec.management_policy == ManagementPolicy::Manage)
            .map(|o| {
                let resolution = o.metadata.uid.as_deref().and_then(|uid| ctx.resolution(uid));
                let (account, declared) = resolution.map(|r| (r.account, r.declared)).unzip();
                Claim::new(o, account, declared)
            })
            .collect();
        while let Some((owner, keys)) = conflict::older_owner(&mine, &others) {
            // The cache may still hold an owner that was just deleted (its deletion is what
            // brought us here): confirm with a fresh read before reporting a conflict.
            let owner_api: Api<Connection> =
                Api::namespaced(ctx.client.clone(), &owner.namespace().unwrap_or_default());
            let live = owner_api.get_opt(&owner.name_any()).await?;
            if live.is_some_and(|l| l.metadata.uid == owner.metadata.uid) {
                return Err(Stop::Conflict(conflict::message(&owner, &keys)));
            }
            others.retain(|o| o.conn.metadata.uid != owner.metadata.uid);
        }
        Ok(())
    }

    /// Read, plan, write (`sync`), after the budget check of a Manage reconcile. A drift
    /// check the budget cannot afford is postponed; any other provider failure is the
    /// outcome.
    async fn read_plan_write(
        &self,
        desired: &Desired,
        resolved: &Resolved,
    ) -> Result<(Outcome, Option<Vec<String>>), Stop> {
        let (conn, ctx) = (self.conn, self.ctx);
        let provider_name = resolved.account.config.type_.as_str();
        let target = Target::for_connection(&conn.spec);
        let managed = conn.status.as_ref().map(|s| s.managed_keys.clone()).unwrap_or_default();
        let freshness = drift_check(
            conn.status.as_ref(),
            conn.meta().generation,
            self.requested_at.as_deref(),
            drift_interval(conn, ctx),
        );
        let wait = match (freshness, conn.spec.management_policy) {
            (None, ManagementPolicy::Manage) => budget_wait(resolved),
            _ => None,
        };
        let result = match wait {
            Some(retry_at) => Err(ProviderError::RateLimited { retry_at }),
            None => sync(conn, desired, resolved, &target, &managed, freshness).await,
        };
        if let Err(ProviderError::RateLimited { retry_at }) = result {
            ctx.metrics.rate_limited(provider_name);
            if freshness.is_some() {
                return Err(Stop::Postponed { retry_at });
            }
        }
        let (outcome, managed_keys) =
            result.unwrap_or_else(|e| (redacted(Outcome::from_provider_error(&e), desired), None));
        if outcome == (Outcome::InSync { wrote: true }) {
            ctx.metrics.drift_corrected(provider_name);
        }
        Ok((outcome, managed_keys))
    }

    /// The Provider's health and the Connection's status, the Event of a correction, and
    /// when to look again.
    async fn status(
        &self,
        desired: &Desired,
        resolved: &Resolved,
        outcome: Outcome,
        managed_keys: Option<Vec<String>>,
    ) -> Result<(Outcome, Action), Error> {
        let (conn, ctx) = (self.conn, self.ctx);
        let provider = &resolved.account.provider;
        if let Some(health) = provider_health(&outcome, status_ready(provider.status())) {
            update_provider_status(ctx, provider, &health, Some(resolved.handle.pacer.snapshot())).await;
        }
        let secret_keys =
            managed_keys.as_ref().map(|keys| keys.iter().filter(|k| desired.is_secret(k)).cloned().collect::<Vec<_>>());
        let observation = Observation { secret_keys, ..self.observation(outcome.clone(), managed_keys) };
        let transitioned = write_status(conn, ctx, &self.api, observation).await?;
        // A write that also made the Connection Ready is told by the Ready event; one more
        // Event per Connection would be one more API request each in a wave of thousands.
        if outcome == (Outcome::InSync { wrote: true }) && !transitioned {
            let reference = conn.object_ref(&());
            events::publish(
                &ctx.recorder,
                &reference,
                EventType::Normal,
                DRIFT_CORRECTED,
                "Write",
                "upstream was updated to match the spec".into(),
            )
            .await;
        }
        let action = requeue(conn, ctx, self.key, &outcome);
        Ok((outcome, action))
    }

    /// A stage that cannot go on: its status (if any) and its requeue.
    async fn stopped(&self, stop: Stop) -> Result<(Outcome, Action), Error> {
        let (conn, ctx) = (self.conn, self.ctx);
        let reason = stop.reason();
        let (outcome, action) = match stop {
            Stop::Kube(e) => return Err(e),
            Stop::Busy => {
                let interval = drift_interval(conn, ctx);
                let routine =
                    drift_check(conn.status.as_ref(), conn.meta().generation, self.requested_at.as_deref(), interval)
                        .is_some();
                (Outcome::Deferred, if routine { Action::requeue(deferred_drift_check(interval)) } else { deferred() })
            }
            Stop::Postponed { retry_at } => {
                let wait = retry_at.duration_since(SystemTime::now()).unwrap_or_default();
                (Outcome::Deferred, Action::requeue(wait.max(Duration::from_millis(100))))
            }
            Stop::Suspended => {
                write_status(conn, ctx, &self.api, self.observation(Outcome::Suspended, None)).await?;
                (Outcome::Suspended, Action::await_change())
            }
            Stop::Conflict(message) => {
                let outcome = Outcome::Failed { reason, message, retry_at: None };
                write_status(conn, ctx, &self.api, self.observation(outcome.clone(), None)).await?;
                ctx.backoffs.reset(self.key);
                (outcome, Action::requeue(ctx.timing.terminal_requeue))
            }
            // Terminal: nothing is retried before the Connection, its Provider, its Secret
            // or its shared settings change, or the safety requeue.
            Stop::Unresolved(unresolved) => {
                if let Some((provider, health)) = &unresolved.provider {
                    update_provider_status(ctx, provider, health, None).await;
                }
                let outcome = Outcome::Failed { reason, message: unresolved.message, retry_at: None };
                write_status(conn, ctx, &self.api, self.observation(outcome.clone(), None)).await?;
                let action = requeue(conn, ctx, self.key, &outcome);
                (outcome, action)
            }
        };
        Ok((outcome, action))
    }
}

/// How the Provider looks after a reconcile with `outcome` (`None`: leave it). A rate limit
/// says nothing about the credentials, but a new block is worth recording when the Provider
/// is not already shown not Ready (`ready`: its current Ready status).
fn provider_health(outcome: &Outcome, ready: Option<bool>) -> Option<ProviderHealth> {
    match outcome {
        Outcome::Failed { reason: Reason::Unauthorized, message, .. } => {
            Some(ProviderHealth::Unauthorized(message.clone()))
        }
        Outcome::Failed { reason: Reason::RateLimited, .. } if ready == Some(false) => None,
        _ => Some(ProviderHealth::Ready),
    }
}

/// When this reconcile is only a drift check, what a list snapshot must satisfy to stand
/// in for a GET (`None`: read the connection itself).
///
/// It is a drift check when the last reconcile of this generation succeeded (`Synced`) and
/// no reconcile was requested since. The snapshot must postdate the last change of the
/// status (a write shows there, seconds truncated, hence the extra second) and be at most
/// half a drift interval old, so each Connection is looked at at least once per interval.
fn drift_check(
    status: Option<&ConnectionStatus>,
    generation: Option<i64>,
    requested_at: Option<&str>,
    interval: Duration,
) -> Option<Freshness> {
    let status = status?;
    if status.observed_generation != generation || requested_at != status.last_handled_reconcile_at.as_deref() {
        return None;
    }
    let synced = conditions::find(&status.conditions, conditions::SYNCED).filter(|c| c.status == "True")?;
    let ready = conditions::find(&status.conditions, READY)?;
    let last_change =
        [Some(&synced.last_transition_time), Some(&ready.last_transition_time), status.last_sync_time.as_ref()]
            .into_iter()
            .flatten()
            .map(|t| SystemTime::from(t.0))
            .max()?;
    Some(Freshness { not_before: last_change + Duration::from_secs(1), max_age: interval / 2 })
}

/// When the account's budget will cover a read and a write for every reconcile of the
/// account under way (this one included); `None`: now. Starting a read that the budget
/// cannot follow with its write would waste it: the Connection would need a second read
/// in the next window, spending a scarce budget twice on reads for one write.
fn budget_wait(resolved: &Resolved) -> Option<SystemTime> {
    let until = resolved.handle.budget_ready_at(Instant::now(), SystemTime::now())?;
    // Spread the reconciles that wait together.
    Some(until + Duration::from_millis(rand::rng().random_range(0..=250)))
}

/// The Connection's drift interval (replaced by the test-only override when set).
fn drift_interval(conn: &Connection, ctx: &Context) -> Duration {
    ctx.timing.drift_interval_override.unwrap_or_else(|| conn.spec.drift_interval())
}

/// Read upstream, plan, and (Manage) write the minimum. Returns the outcome and the keys
/// owned afterwards (`None`: unchanged).
///
/// With `freshness` (a drift check) the upstream state may come from the account's list
/// snapshot; a write is never planned from it: drift seen there is read again with a GET.
async fn sync(
    conn: &Connection,
    desired: &Desired,
    resolved: &Resolved,
    target: &Target,
    managed: &[String],
    freshness: Option<Freshness>,
) -> Result<(Outcome, Option<Vec<String>>), ProviderError> {
    let Some(block) = desired.spec.block() else {
        return Ok((mismatch("exactly one provider block (nango, mielto, arena or datagrid) must be set"), None));
    };
    let listed = match freshness {
        Some(freshness) => resolved.handle.client.read_listed(target, freshness).await?,
        None => None,
    };
    let from_list = listed.is_some();
    let upstream = match listed {
        Some(upstream) => upstream,
        None => resolved.handle.client.read(target).await?,
    };
    let mut plan = diff::plan(block, managed, &upstream);
    if from_list && plan.as_ref().is_ok_and(|p| !p.in_sync()) && conn.spec.management_policy == ManagementPolicy::Manage
    {
        plan = diff::plan(block, managed, &resolved.handle.client.read(target).await?);
    }
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => return Ok((mismatch(&e.to_string()), None)),
    };
    if plan.in_sync() {
        return Ok((Outcome::InSync { wrote: false }, Some(plan.managed_keys)));
    }
    match (conn.spec.management_policy, plan.write) {
        // Observe reads and reports; it never writes and takes no new ownership.
        (ManagementPolicy::Observe, _) | (_, None) => Ok((Outcome::Drift { keys: plan.drift }, None)),
        (ManagementPolicy::Manage, Some(write)) => {
            resolved.handle.client.write(target, &write).await?;
            Ok((Outcome::InSync { wrote: true }, Some(plan.managed_keys)))
        }
    }
}

fn mismatch(message: &str) -> Outcome {
    Outcome::Failed { reason: Reason::ProviderMismatch, message: message.to_string(), retry_at: None }
}

/// A Connection being deleted: release it at once when it is not ours to clean (no
/// finalizer, or `deletionPolicy: Orphan`), else clean upstream first (`delete`).
async fn finalize(
    conn: &Connection,
    ctx: &Context,
    api: &Api<Connection>,
    namespace: &str,
    key: &str,
) -> Result<(Outcome, Action), Error> {
    if !finalizer::has_finalizer(conn) {
        return Ok((Outcome::Deleting, Action::await_change()));
    }
    if conn.spec.deletion_policy == DeletionPolicy::Orphan {
        // Switching to Orphan while deleting releases the Connection (docs/controller.md).
        finalizer::remove(api, conn).await?;
        ctx.backoffs.reset(key);
        return Ok((Outcome::Deleting, Action::await_change()));
    }
    delete(conn, ctx, api, namespace, key).await
}

/// Deletion with `deletionPolicy: Delete`: remove the managed keys upstream (a 404 means
/// there is nothing left to remove), report fields the provider cannot remove, then
/// release the finalizer.
async fn delete(
    conn: &Connection,
    ctx: &Context,
    api: &Api<Connection>,
    namespace: &str,
    key: &str,
) -> Result<(Outcome, Action), Error> {
    let reference = conn.object_ref(&());
    let resolved = match dereference(conn, ctx, namespace).await {
        Ok(resolved) => resolved,
        Err(Stop::Unresolved(unresolved)) if unresolved.reason == Reason::ProviderNotFound => {
            // Without its Provider nothing can be cleaned (e.g. the whole namespace is
            // being deleted); holding the Connection forever would block that deletion.
            let note = format!("{}; the managed keys are left upstream", unresolved.message);
            events::publish(&ctx.recorder, &reference, EventType::Warning, CLEANUP_SKIPPED, "Delete", note).await;
            finalizer::remove(api, conn).await?;
            return Ok((Outcome::Deleting, Action::await_change()));
        }
        Err(Stop::Unresolved(unresolved)) => {
            let outcome = Outcome::Failed { reason: unresolved.reason, message: unresolved.message, retry_at: None };
            return finish_failed_deletion(conn, ctx, api, key, outcome).await;
        }
        Err(Stop::Kube(e)) => return Err(e),
        // `dereference` stops only unresolved or on a Kubernetes failure; anything else is
        // tried again shortly.
        Err(_) => return Ok((Outcome::Deferred, deferred())),
    };
    if conn.spec.suspend {
        // No upstream call at all while suspended; unsuspend or switch to Orphan to go on.
        write_status(conn, ctx, api, deletion_observation(conn, Outcome::Suspended)).await?;
        return Ok((Outcome::Suspended, Action::await_change()));
    }
    let Some(turn) = ctx.upstream_slot(&resolved.handle).await else {
        return Ok((Outcome::Deferred, deferred()));
    };
    let target = Target::for_connection(&conn.spec);
    let managed = conn.status.as_ref().map(|s| s.managed_keys.clone()).unwrap_or_default();
    let removed = async {
        let upstream = resolved.handle.client.read(&target).await?;
        let removal = diff::plan_removal(&managed, &upstream);
        if let Some(write) = &removal.write {
            resolved.handle.client.write(&target, write).await?;
        }
        Ok::<_, ProviderError>(removal.orphaned)
    }
    .await;
    drop(turn);
    match removed {
        Ok(orphaned) => {
            if !orphaned.is_empty() {
                let note = format!("the provider cannot remove {}; left upstream", orphaned.join(", "));
                events::publish(&ctx.recorder, &reference, EventType::Normal, ORPHANED, "Delete", note).await;
            }
        }
        Err(ProviderError::NotFound { .. }) => {}
        Err(e) => return finish_failed_deletion(conn, ctx, api, key, Outcome::from_provider_error(&e)).await,
    }
    finalizer::remove(api, conn).await?;
    ctx.backoffs.reset(key);
    if let Some(uid) = &conn.metadata.uid {
        ctx.forget_resolution(uid);
    }
    Ok((Outcome::Deleting, Action::await_change()))
}

async fn finish_failed_deletion(
    conn: &Connection,
    ctx: &Context,
    api: &Api<Connection>,
    key: &str,
    outcome: Outcome,
) -> Result<(Outcome, Action), Error> {
    write_status(conn, ctx, api, deletion_observation(conn, outcome.clone())).await?;
    let action = requeue(conn, ctx, key, &outcome);
    Ok((outcome, action))
}

fn deletion_observation(conn: &Connection, outcome: Outcome) -> Observation {
    Observation {
        generation: conn.meta().generation,
        outcome,
        managed_keys: None,
        secret_keys: None,
        requested_at: conn.annotations().get(RECONCILE_REQUESTED_AT).cloned(),
    }
}

/// When to look again after `outcome` (docs/controller.md, "Reconcile").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// The drift check, one drift interval on (with jitter); the backoff starts over.
    DriftCheck,
    /// Only when something changes.
    AwaitChange,
    /// Shortly (a busy account).
    Soon,
    /// At the provider's retry time.
    RetryAt(Option<SystemTime>),
    /// After the per-object backoff.
    Backoff,
    /// Terminal: the safety requeue only; the backoff starts over.
    Terminal,
}

fn next_attempt(outcome: &Outcome) -> Next {
    match outcome {
        Outcome::InSync { .. } | Outcome::Drift { .. } => Next::DriftCheck,
        // Another shard's: its own watches bring it back when its Provider's shard label
        // changes; a takeover restarts the controller, which lists everything again.
        Outcome::Suspended | Outcome::Deleting | Outcome::OtherShard => Next::AwaitChange,
        Outcome::Deferred => Next::Soon,
        Outcome::Failed { reason: Reason::RateLimited, retry_at, .. } => Next::RetryAt(*retry_at),
        Outcome::Failed { reason: Reason::UpstreamUnavailable, .. } => Next::Backoff,
        // No retry loop: the watches bring it back when something changes.
        Outcome::Failed { .. } => Next::Terminal,
    }
}

/// The requeue of `outcome`, and the per-object backoff bookkeeping.
fn requeue(conn: &Connection, ctx: &Context, key: &str, outcome: &Outcome) -> Action {
    match next_attempt(outcome) {
        Next::DriftCheck => {
            ctx.backoffs.reset(key);
            let interval = drift_interval(conn, ctx);
            // Up to 10% jitter spreads the drift checks of Connections created together.
            let jitter_ms = (interval.as_millis() as u64 / 10).max(1);
            Action::requeue(interval + Duration::from_millis(rand::rng().random_range(0..=jitter_ms)))
        }
        Next::AwaitChange => Action::await_change(),
        Next::Soon => deferred(),
        Next::RetryAt(retry_at) => {
            // Requeue at retryAt (the pacer added jitter to it); never sleep in a worker.
            let wait = retry_at.and_then(|at| at.duration_since(SystemTime::now()).ok()).unwrap_or_default();
            Action::requeue(wait.max(Duration::from_millis(100)))
        }
        Next::Backoff => Action::requeue(ctx.backoffs.next(key)),
        Next::Terminal => {
            ctx.backoffs.reset(key);
            Action::requeue(ctx.timing.terminal_requeue)
        }
    }
}

/// The requeue of a reconcile deferred because its provider account is busy: soon, with
/// jitter so that the deferred ones do not all come back at once.
fn deferred() -> Action {
    // A slot frees when a reconcile of the account ends, typically within a few requests.
    Action::requeue(Duration::from_millis(rand::rng().random_range(100..=400)))
}

/// The requeue of a drift check deferred because its account is busy: later in its
/// interval (a tenth to a fifth of it), not soon. A busy account is one whose demand exceeds
/// what it may use at once; retried soon, routine drift checks would keep drawing against
/// first reconciles and spec changes for the same slots, and under a sustained overload
/// (100,000 Connections whose drift checks alone asked for more reconciles per second than
/// the operator could run) a quarter of the fleet went unreconciled. Postponed, they leave
/// the slots to the work a user is waiting for; the check still happens within its interval
/// plus a fifth.
fn deferred_drift_check(interval: Duration) -> Duration {
    let ms = interval.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(ms / 10..=(ms / 5).max(ms / 10 + 1)))
}

/// Step 1: the Provider (or ClusterProvider), its type against the Connection's block,
/// and the token from the referenced Secret (`resolve::account_handle` with the watch
/// caches), then the account's shared state from the registry.
async fn dereference(conn: &Connection, ctx: &Context, namespace: &str) -> Result<Resolved, Stop> {
    Ok(resolve::account_handle(conn, namespace, ctx, &ctx.accounts).await??)
}

/// A failure outcome without the values that came from Secrets (a provider's message may
/// quote what it was sent).
fn redacted(outcome: Outcome, desired: &Desired) -> Outcome {
    match outcome {
        Outcome::Failed { reason, message, retry_at } => {
            Outcome::Failed { reason, message: desired.redact(&message), retry_at }
        }
        other => other,
    }
}

/// Build the status, publish an Event on a Ready transition, and server-side apply the
/// status only when it changed. True when a Ready transition Event was published.
async fn write_status(
    conn: &Connection,
    ctx: &Context,
    api: &Api<Connection>,
    observation: Observation,
) -> Result<bool, Error> {
    let current = conn.status.as_ref();
    let wanted = status::connection_status(current, &observation, Timestamp::now());
    if !status::connection_status_changed(current, &wanted) {
        return Ok(false);
    }
    let before =
        current.and_then(|s| conditions::find(&s.conditions, READY)).map(|c| (c.status.clone(), c.reason.clone()));
    let after =
        conditions::find(&wanted.conditions, READY).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
    let body = json!({
        "apiVersion": "connection-operator.dev/v1alpha1",
        "kind": "Connection",
        "metadata": {"name": conn.name_any()},
        "status": wanted,
    });
    api.patch_status(&conn.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(body)).await?;
    if let Some((status, reason, message)) = after
        && before.as_ref() != Some(&(status.clone(), reason.clone()))
    {
        let kind = events::event_type(observation.outcome.reason());
        events::publish(&ctx.recorder, &conn.object_ref(&()), kind, &reason, "Reconcile", message).await;
        return Ok(true);
    }
    Ok(false)
}

fn status_ready(status: Option<&ProviderStatus>) -> Option<bool> {
    status.and_then(|s| conditions::find(&s.conditions, READY)).map(|c| c.status == "True")
}

/// Server-side apply the Provider's status when it changed. Failures are logged only: the
/// Connection's own status is what this reconcile is about.
async fn update_provider_status(
    ctx: &Context,
    provider: &ProviderObject,
    health: &ProviderHealth,
    snapshot: Option<providers::RateLimitSnapshot>,
) {
    let current = provider.status();
    let wanted = status::provider_status(current, provider.generation(), health, snapshot, Timestamp::now());
    if !status::provider_status_changed(current, &wanted) {
        return;
    }
    // One code path for both kinds: only the API (namespaced or cluster-wide) differs.
    let result = match provider {
        ProviderObject::Namespaced(p) => {
            let api: Api<Provider> = Api::namespaced(ctx.client.clone(), &p.namespace().unwrap_or_default());
            apply_status(&api, p, &wanted).await
        }
        ProviderObject::Cluster(p) => apply_status(&Api::<ClusterProvider>::all(ctx.client.clone()), p, &wanted).await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot update the Provider status");
    }
}

/// Server-side apply `status` to `object` (a Provider or a ClusterProvider).
async fn apply_status<K>(api: &Api<K>, object: &K, status: &ProviderStatus) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": object.name_any()},
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&object.name_any(), &params, &Patch::Apply(body)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::conditions::{SYNCED, condition};

    const INTERVAL: Duration = Duration::from_secs(600);

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    /// The status of a Connection whose generation 3 was last found in sync at 1000 s.
    fn synced(requested_at: Option<&str>) -> ConnectionStatus {
        ConnectionStatus {
            observed_generation: Some(3),
            conditions: vec![
                condition(&[], READY, true, "InSync", "", Some(3), at(900)),
                condition(&[], SYNCED, true, "InSync", "", Some(3), at(950)),
            ],
            last_sync_time: Some(Time(at(1_000))),
            last_handled_reconcile_at: requested_at.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn a_busy_accounts_drift_check_steps_aside_for_a_tenth_to_a_fifth_of_its_interval() {
        for _ in 0..100 {
            let delay = deferred_drift_check(INTERVAL);
            assert!(delay >= INTERVAL / 10 && delay <= INTERVAL / 5, "{delay:?} for a drift interval of {INTERVAL:?}");
        }
    }

    #[test]
    fn a_synced_generation_is_a_drift_check_after_its_last_change() {
        let status = synced(None);
        let freshness = drift_check(Some(&status), Some(3), None, INTERVAL).expect("a drift check");
        assert_eq!(freshness.not_before, SystemTime::UNIX_EPOCH + Duration::from_secs(1_001));
        assert_eq!(freshness.max_age, INTERVAL / 2);
    }

    #[test]
    fn a_new_generation_a_request_or_a_failed_sync_reads_the_connection() {
        let status = synced(Some("t1"));
        assert!(drift_check(Some(&status), Some(3), Some("t1"), INTERVAL).is_some(), "handled request");
        assert_eq!(drift_check(Some(&status), Some(3), Some("t2"), INTERVAL), None, "new request");
        assert_eq!(drift_check(Some(&status), Some(4), Some("t1"), INTERVAL), None, "new generation");
        assert_eq!(drift_check(None, Some(3), None, INTERVAL), None, "never reconciled");
        let mut failed = synced(None);
        failed.conditions[1] = condition(&[], SYNCED, false, "UpstreamUnavailable", "", Some(3), at(990));
        assert_eq!(drift_check(Some(&failed), Some(3), None, INTERVAL), None, "last sync failed");
    }

    #[test]
    fn each_outcome_has_its_next_attempt() {
        let failed = |reason, retry_at| Outcome::Failed { reason, message: String::new(), retry_at };
        let retry = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(next_attempt(&Outcome::InSync { wrote: true }), Next::DriftCheck);
        assert_eq!(next_attempt(&Outcome::Drift { keys: vec![] }), Next::DriftCheck);
        assert_eq!(next_attempt(&Outcome::Suspended), Next::AwaitChange);
        assert_eq!(next_attempt(&Outcome::Deleting), Next::AwaitChange);
        assert_eq!(next_attempt(&Outcome::OtherShard), Next::AwaitChange);
        assert_eq!(next_attempt(&Outcome::Deferred), Next::Soon);
        assert_eq!(next_attempt(&failed(Reason::RateLimited, Some(retry))), Next::RetryAt(Some(retry)));
        assert_eq!(next_attempt(&failed(Reason::UpstreamUnavailable, None)), Next::Backoff);
        for terminal in [Reason::InvalidSpec, Reason::Unauthorized, Reason::ProviderNotFound, Reason::Conflict] {
            assert_eq!(next_attempt(&failed(terminal, None)), Next::Terminal, "{terminal:?}");
        }
    }

    #[test]
    fn provider_health_follows_authentication_not_rate_limits() {
        let failed = |reason| Outcome::Failed { reason, message: "m".into(), retry_at: None };
        let refused = provider_health(&failed(Reason::Unauthorized), Some(true));
        assert_eq!(refused, Some(ProviderHealth::Unauthorized("m".into())));
        assert_eq!(provider_health(&failed(Reason::RateLimited), Some(false)), None, "stays not Ready");
        assert_eq!(provider_health(&failed(Reason::RateLimited), Some(true)), Some(ProviderHealth::Ready));
        assert_eq!(provider_health(&Outcome::InSync { wrote: false }, Some(false)), Some(ProviderHealth::Ready));
    }

    #[test]
    fn each_stop_shows_its_reason() {
        let unresolved = Unresolved { reason: Reason::ProviderNotFound, message: String::new(), provider: None };
        assert_eq!(Stop::from(unresolved).reason(), Reason::ProviderNotFound);
        assert_eq!(Stop::Conflict(String::new()).reason(), Reason::Conflict);
        assert_eq!(Stop::Suspended.reason(), Reason::Suspended);
        assert_eq!(Stop::Busy.reason(), Outcome::Deferred.reason());
    }
}
