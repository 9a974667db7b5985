//! The provider accounts in use, behind one door: for each account
//! ([`crate::api::AccountKey`]) its pacer, its clients, its reconcile slots and its budget,
//! handed out together as an [`AccountHandle`]; and the tokens read from Secrets, by where
//! they are stored.
//!
//! Every Connection of an account must share that state (one pacing budget, one 429 block,
//! one list snapshot, one cap on the workers it may hold), and the state must go when the
//! account is no longer used, or the registry would grow with every Provider or token ever
//! seen. So the registry remembers which Provider or ClusterProvider ([`ProviderId`]) last
//! resolved to which account, and drops an account when the last of them goes
//! ([`Accounts::forget`], [`Accounts::sweep`]) or moves to another account (a rotated token
//! is another account).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::http::RequestObserver;
use super::pacing::AccountPacer;
use super::{ProviderClient, ProviderError, Token, observed_client, sync_buckets};
use crate::api::{
    AccountKey, CredentialsLocation, ProviderConfig, ProviderId, ProviderKind, ProviderType, RateLimitSpec,
};

/// Told the number of accounts whenever it may have changed (the operator's gauge).
pub type CountObserver = Arc<dyn Fn(usize) + Send + Sync>;

/// The registry of provider accounts. See the module documentation.
pub struct Accounts {
    state: Mutex<State>,
    /// Shared by every client (connection pooling).
    http: reqwest::Client,
    observer: Option<RequestObserver>,
    counted: Option<CountObserver>,
    /// Reconciles of one account allowed at once.
    slots_per_account: usize,
}

#[derive(Default)]
struct State {
    accounts: HashMap<AccountKey, Entry>,
    /// The account each Provider or ClusterProvider last resolved to, and where its token is.
    users: HashMap<ProviderId, User>,
    /// Each token, by where it is stored, with the Secret `resourceVersion` it was read at.
    tokens: HashMap<CredentialsLocation, (String, Token)>,
}

struct User {
    account: AccountKey,
    credentials: CredentialsLocation,
}

/// One account's shared state.
struct Entry {
    pacer: Arc<AccountPacer>,
    /// The rate limit each Provider of the account declares.
    declared: HashMap<ProviderId, RateLimitSpec>,
    /// By what a client is built from besides the token (its timeout and authentication).
    clients: HashMap<String, Cached>,
    slots: Arc<Semaphore>,
    /// Places to wait in for a slot.
    queue: Arc<Semaphore>,
}

struct Cached {
    shape: ProviderConfig,
    token: Token,
    pacer: Arc<AccountPacer>,
    client: Arc<dyn ProviderClient>,
}

/// What a reconcile needs of its account.
#[derive(Clone, Debug)]
pub struct AccountHandle {
    key: AccountKey,
    type_: ProviderType,
    /// The account's pacer: its budget and its 429 block.
    pub pacer: Arc<AccountPacer>,
    /// The account's client (its list snapshot and batched writes).
    pub client: Arc<dyn ProviderClient>,
    slots: Arc<Semaphore>,
    queue: Arc<Semaphore>,
    capacity: usize,
}

impl Default for Accounts {
    /// A registry without observers, one reconcile slot per account (the command line's
    /// `plan` and `import`, which reconcile nothing).
    fn default() -> Self {
        Accounts::new(None, None, 1)
    }
}

impl Accounts {
    /// `observer` is told every request the clients send, `counted` the number of accounts;
    /// one account may hold `slots_per_account` reconciles at once.
    pub fn new(observer: Option<RequestObserver>, counted: Option<CountObserver>, slots_per_account: usize) -> Self {
        Accounts {
            state: Mutex::default(),
            http: reqwest::Client::new(),
            observer,
            counted,
            slots_per_account: slots_per_account.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change leaves the maps consistent; a panic elsewhere does not poison them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tell the observer how many accounts there are, after a change under `state`.
    fn count(&self, state: MutexGuard<'_, State>) {
        let n = state.accounts.len();
        drop(state);
        if let Some(counted) = &self.counted {
            counted(n);
        }
    }

    /// The account `key` as `user` (the Provider or ClusterProvider whose `config` and `token`
    /// resolved to it) uses it: the account's pacer, whose budget is the lowest any of its
    /// Providers declares (per field) so that no Provider's limit is exceeded by the
    /// traffic of the others; its client for `config` (Providers of one account share it as
    /// long as they agree on what it is built from besides where the token is stored and
    /// the rate limit); its slots. `user` now counts as a user of `key` only.
    pub fn handle(
        &self,
        user: &ProviderId,
        key: &AccountKey,
        config: &ProviderConfig,
        token: &Token,
    ) -> Result<AccountHandle, ProviderError> {
        let mut state = self.lock();
        if state.users.get(user).is_some_and(|u| u.account != *key) {
            state.leave(user);
        }
        state.users.insert(user.clone(), User { account: key.clone(), credentials: config.credentials.clone() });
        let slots = self.slots_per_account;
        let entry = state.accounts.entry(key.clone()).or_insert_with(|| Entry {
            pacer: Arc::new(AccountPacer::new(config.rate_limit)),
            declared: HashMap::new(),
            clients: HashMap::new(),
            slots: Arc::new(Semaphore::new(slots)),
            queue: Arc::new(Semaphore::new(queue_places(slots))),
        });
        let pacer = entry.pacer_for(user, config.rate_limit);
        let client = entry.client_for(config, token, &self.http, &pacer, &self.observer);
        let handle = client.map(|client| AccountHandle {
            key: key.clone(),
            type_: config.type_,
            pacer,
            client,
            slots: entry.slots.clone(),
            queue: entry.queue.clone(),
            capacity: slots,
        });
        self.count(state);
        handle
    }

    /// `user` is gone (deleted, or found missing): the account it used is dropped when no
    /// other Provider uses it, and so is its token when no other Provider reads it there.
    pub fn forget(&self, user: &ProviderId) {
        let mut state = self.lock();
        state.leave(user);
        self.count(state);
    }

    /// After a relist of the `kind` objects: forget every user of that kind not among
    /// `live`, so that a deletion the watch did not deliver (it happened while the watch
    /// was down) still frees its account.
    pub fn sweep(&self, kind: ProviderKind, live: &HashSet<ProviderId>) {
        let mut state = self.lock();
        let gone: Vec<ProviderId> =
            state.users.keys().filter(|u| u.kind() == kind && !live.contains(*u)).cloned().collect();
        for user in &gone {
            state.leave(user);
        }
        self.count(state);
    }

    /// Accounts in the registry.
    pub fn len(&self) -> usize {
        self.lock().accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The token read from `location` at `resource_version`, if that is what is kept.
    pub fn token(&self, location: &CredentialsLocation, resource_version: &str) -> Option<Token> {
        let state = self.lock();
        state.tokens.get(location).filter(|(version, _)| version == resource_version).map(|(_, t)| t.clone())
    }

    /// Keep `token`, read from `location` at `resource_version`.
    pub fn remember_token(&self, location: &CredentialsLocation, resource_version: String, token: Token) {
        self.lock().tokens.insert(location.clone(), (resource_version, token));
    }

    /// Drop the token of a Secret that is gone or no longer yields one.
    pub fn forget_token(&self, location: &CredentialsLocation) {
        self.lock().tokens.remove(location);
    }
}

impl State {
    /// `user` no longer uses its account: drop the account, and the token `user` read,
    /// when nothing else uses them.
    fn leave(&mut self, user: &ProviderId) {
        let Some(left) = self.users.remove(user) else { return };
        if !self.users.values().any(|u| u.account == left.account) {
            self.accounts.remove(&left.account);
        } else if let Some(entry) = self.accounts.get_mut(&left.account) {
            entry.declared.remove(user);
        }
        if !self.users.values().any(|u| u.credentials == left.credentials) {
            self.tokens.remove(&left.credentials);
        }
    }
}

/// The budget of an account whose Providers declare different limits: the lowest of each.
fn tightest(declared: &HashMap<ProviderId, RateLimitSpec>) -> Option<RateLimitSpec> {
    let rpm = declared.values().map(|s| s.requests_per_minute).min()?;
    let burst = declared.values().map(|s| s.burst).min()?;
    Some(RateLimitSpec { requests_per_minute: rpm, burst })
}

impl Entry {
    /// The pacer once `user` declares `spec`; a changed budget starts a fresh pacer,
    /// keeping a running block.
    fn pacer_for(&mut self, user: &ProviderId, spec: RateLimitSpec) -> Arc<AccountPacer> {
        self.declared.insert(user.clone(), spec);
        let effective = tightest(&self.declared).unwrap_or(spec);
        if self.pacer.spec() != effective {
            let fresh = Arc::new(AccountPacer::new(effective));
            if let Some(until) = self.pacer.blocked_until() {
                fresh.block_until(until);
            }
            self.pacer = fresh;
        }
        self.pacer.clone()
    }

    /// The client for `config`, built anew when what it is built from, the token or the
    /// pacer changed.
    fn client_for(
        &mut self,
        config: &ProviderConfig,
        token: &Token,
        http: &reqwest::Client,
        pacer: &Arc<AccountPacer>,
        observer: &Option<RequestObserver>,
    ) -> Result<Arc<dyn ProviderClient>, ProviderError> {
        let shape = client_shape(config);
        let key = format!("{}|{:?}", shape.timeout.as_millis(), shape.auth);
        if let Some(cached) = self.clients.get(&key)
            && cached.shape == shape
            && cached.token == *token
            && Arc::ptr_eq(&cached.pacer, pacer)
        {
            return Ok(cached.client.clone());
        }
        let made = observed_client(config, token.clone(), http.clone(), pacer.clone(), observer.clone())?;
        let cached = Cached { shape, token: token.clone(), pacer: pacer.clone(), client: made.clone() };
        self.clients.insert(key, cached);
        Ok(made)
    }
}

/// What a client is built from, without the token's location and the rate limit.
fn client_shape(config: &ProviderConfig) -> ProviderConfig {
    let mut shape = config.clone();
    shape.credentials = CredentialsLocation { namespace: String::new(), name: String::new(), key: String::new() };
    shape.rate_limit = RateLimitSpec { requests_per_minute: 1, burst: 1 };
    shape
}

impl AccountHandle {
    pub fn key(&self) -> &AccountKey {
        &self.key
    }

    /// One of the account's reconcile slots: a free one at once, else after waiting in the
    /// account's queue, first come first served; `None` when the queue is full too.
    ///
    /// Requests to a busy account wait for pacing tokens inside the worker (up to
    /// `pacing::MAX_PACING_WAIT`); without a cap a burst of Connections of one account would
    /// occupy every worker and starve the Connections of other providers. So only a few
    /// reconciles wait (they hold workers while they do: [`queue_places`]); the rest
    /// requeue shortly. Without the queue every reconcile of a wave would requeue and retry
    /// at random, and the oldest change could lose that lottery again and again; in the
    /// queue the first to come is the first served (tokio's semaphore is fair, and a
    /// released slot goes to a waiter before anyone new).
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(free) = self.slots.clone().try_acquire_owned() {
            return Some(free);
        }
        let _place = self.queue.clone().try_acquire_owned().ok()?;
        // The semaphore is never closed.
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Reconciles of the account holding a slot now.
    pub fn busy(&self) -> usize {
        self.capacity.saturating_sub(self.slots.available_permits())
    }

    /// When the account's budget will cover a read and a write for every reconcile of the
    /// account under way (at least the caller's); `None`: now.
    pub fn budget_ready_at(&self, now: Instant, wall: SystemTime) -> Option<SystemTime> {
        budget_ready_at(&self.pacer, sync_buckets(self.type_), self.busy(), now, wall)
    }
}

/// Reconciles that may wait for one of an account's `slots`: half as many (at least one),
/// enough to hand a freed slot on at once without holding many workers idle.
fn queue_places(slots: usize) -> usize {
    (slots / 2).max(1)
}

/// When `pacer` has, in each of `buckets` (bucket, requests of one sync), the requests of
/// `busy` reconciles (at least one); `None`: now.
fn budget_ready_at(
    pacer: &AccountPacer,
    buckets: &[(&str, u32)],
    busy: usize,
    now: Instant,
    wall: SystemTime,
) -> Option<SystemTime> {
    let busy = busy.max(1) as u32;
    buckets
        .iter()
        .filter_map(|(bucket, per_sync)| pacer.available_at(bucket, f64::from(per_sync * busy), now, wall))
        .max()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::task::Poll;

    use futures::FutureExt;

    use super::*;
    use crate::api::ProviderSpec;
    use crate::providers::pacing::Admission;

    fn spec(rpm: u32, burst: u32) -> RateLimitSpec {
        RateLimitSpec { requests_per_minute: rpm, burst }
    }

    fn provider(namespace: &str, name: &str) -> ProviderId {
        ProviderId::Namespaced { namespace: namespace.into(), name: name.into() }
    }

    /// A Mielto Provider in `namespace` reading its token from Secret `secret`.
    fn config(namespace: &str, secret: &str, limit: RateLimitSpec) -> ProviderConfig {
        let spec: ProviderSpec = serde_json::from_value(serde_json::json!({
            "type": "mielto", "baseUrl": "http://127.0.0.1:9", "credentialsRef": {"name": secret, "key": "token"},
            "rateLimit": {"requestsPerMinute": limit.requests_per_minute, "burst": limit.burst},
        }))
        .unwrap();
        ProviderConfig::from_provider(&spec, namespace)
    }

    fn counted() -> (Accounts, Arc<Mutex<Vec<usize>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tell = seen.clone();
        let observer: CountObserver = Arc::new(move |n| tell.lock().unwrap().push(n));
        (Accounts::new(None, Some(observer), 2), seen)
    }

    #[test]
    fn two_providers_of_one_account_share_it_until_the_last_goes() {
        let (accounts, seen) = counted();
        let token = Token::new("tok");
        let (a, b) = (config("t1", "a", spec(60, 10)), config("t2", "b", spec(60, 10)));
        let key = a.account_key(&token);
        assert_eq!(key, b.account_key(&token), "one account");
        let via_a = accounts.handle(&provider("t1", "a"), &key, &a, &token).unwrap();
        let via_b = accounts.handle(&provider("t2", "b"), &key, &b, &token).unwrap();
        assert!(Arc::ptr_eq(&via_a.pacer, &via_b.pacer) && Arc::ptr_eq(&via_a.client, &via_b.client));
        let _held = via_a.slot().now_or_never().flatten().unwrap();
        assert_eq!(via_b.busy(), 1, "one set of slots");
        accounts.remember_token(&a.credentials, "1".into(), token.clone());
        accounts.remember_token(&b.credentials, "1".into(), token.clone());

        accounts.forget(&provider("t1", "a"));
        assert_eq!(accounts.len(), 1, "b still uses the account");
        assert_eq!(accounts.token(&a.credentials, "1"), None, "nothing reads a's Secret any more");
        assert_eq!(accounts.token(&b.credentials, "1"), Some(token.clone()));
        let again = accounts.handle(&provider("t2", "b"), &key, &b, &token).unwrap();
        assert!(Arc::ptr_eq(&again.pacer, &via_b.pacer), "the account kept its state");

        accounts.forget(&provider("t2", "b"));
        assert!(accounts.is_empty());
        assert_eq!(accounts.token(&b.credentials, "1"), None);
        assert_eq!(*seen.lock().unwrap(), [1, 1, 1, 1, 0]);
    }

    #[test]
    fn a_provider_moved_to_another_account_leaves_the_old_one() {
        let accounts = Accounts::default();
        let a = config("t1", "a", spec(60, 10));
        let (old, new) = (Token::new("old"), Token::new("new"));
        accounts.handle(&provider("t1", "a"), &a.account_key(&old), &a, &old).unwrap();
        accounts.handle(&provider("t1", "a"), &a.account_key(&new), &a, &new).unwrap();
        assert_eq!(accounts.len(), 1, "the rotated token's account only");
    }

    #[test]
    fn a_sweep_forgets_the_providers_of_its_kind_that_are_not_listed() {
        let (accounts, _) = counted();
        let (one, two) = (Token::new("one"), Token::new("two"));
        let a = config("t1", "a", spec(60, 10));
        let cluster = ProviderConfig {
            credentials: CredentialsLocation { namespace: "ops".into(), ..a.credentials.clone() },
            ..a.clone()
        };
        accounts.handle(&provider("t1", "a"), &a.account_key(&one), &a, &one).unwrap();
        accounts.handle(&provider("t1", "gone"), &a.account_key(&two), &a, &two).unwrap();
        let shared = ProviderId::Cluster { name: "shared".into() };
        accounts.handle(&shared, &cluster.account_key(&two), &cluster, &two).unwrap();
        assert_eq!(accounts.len(), 2);

        // The relist shows a only: "gone" was deleted while the watch was down; the
        // ClusterProvider is another watch's business and keeps the second account.
        accounts.sweep(ProviderKind::Provider, &HashSet::from([provider("t1", "a")]));
        assert_eq!(accounts.len(), 2);
        accounts.sweep(ProviderKind::ClusterProvider, &HashSet::new());
        assert_eq!(accounts.len(), 1, "only a's account is left");
        accounts.sweep(ProviderKind::Provider, &HashSet::new());
        assert!(accounts.is_empty());
    }

    #[test]
    fn providers_of_one_account_share_the_tightest_budget() {
        let accounts = Accounts::default();
        let token = Token::new("tok");
        let (a, b) = (config("t1", "a", spec(60, 10)), config("t2", "b", spec(30, 20)));
        let key = a.account_key(&token);
        let pacer_a = accounts.handle(&provider("t1", "a"), &key, &a, &token).unwrap().pacer;
        let pacer_b = accounts.handle(&provider("t2", "b"), &key, &b, &token).unwrap().pacer;
        assert_eq!(pacer_b.spec(), spec(30, 10), "the lowest of each field");
        assert!(!Arc::ptr_eq(&pacer_a, &pacer_b), "a tighter declaration starts a fresh pacer");
        let again = accounts.handle(&provider("t1", "a"), &key, &a, &token).unwrap().pacer;
        assert!(Arc::ptr_eq(&pacer_b, &again), "then it is shared");
        // A block seen through one Provider holds for the other, across budget changes.
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(500);
        again.block_until(until);
        let loosened = config("t2", "b", spec(600, 20));
        let pacer = accounts.handle(&provider("t2", "b"), &key, &loosened, &token).unwrap().pacer;
        assert_eq!(pacer.spec(), spec(60, 10), "loosening one Provider's limit keeps the other's");
        assert_eq!(pacer.admit("", Instant::now(), SystemTime::UNIX_EPOCH), Admission::RateLimited(until));
        // Once b is gone, a's own limit is the account's.
        accounts.forget(&provider("t2", "b"));
        let alone = accounts.handle(&provider("t1", "a"), &key, &a, &token).unwrap().pacer;
        assert_eq!(alone.spec(), spec(60, 10));
    }

    #[tokio::test]
    async fn a_busy_account_queues_a_few_reconciles_in_order_and_turns_the_rest_away() {
        let accounts = Accounts::new(None, None, 4);
        let (token, a) = (Token::new("tok"), config("t1", "a", spec(60, 10)));
        let handle = accounts.handle(&provider("t1", "a"), &a.account_key(&token), &a, &token).unwrap();
        let mut held: Vec<_> = (0..4).map(|_| handle.slot().now_or_never().flatten().expect("a free slot")).collect();
        assert_eq!(handle.busy(), 4);

        // Two places in the queue (half the slots), taken in order; the next is turned away.
        let mut first = Box::pin(handle.slot());
        let mut second = Box::pin(handle.slot());
        assert!(futures::poll!(&mut first).is_pending());
        assert!(futures::poll!(&mut second).is_pending());
        assert!(handle.slot().await.is_none(), "the queue is full");

        // A freed slot goes to the first in the queue, not to a newcomer.
        drop(held.pop());
        assert!(handle.slot().await.is_none(), "no jumping the queue");
        let Poll::Ready(Some(slot)) = futures::poll!(&mut first) else { panic!("the first waiter is served first") };
        held.push(slot);
        assert!(futures::poll!(&mut second).is_pending());

        // Its place is free again: a newcomer queues behind the second.
        let mut third = Box::pin(handle.slot());
        assert!(futures::poll!(&mut third).is_pending());
        drop(held.pop());
        let Poll::Ready(Some(slot)) = futures::poll!(&mut second) else { panic!("then the second") };
        assert!(futures::poll!(&mut third).is_pending());
        drop(slot);
        assert!(matches!(futures::poll!(&mut third), Poll::Ready(Some(_))), "then the third");
    }

    #[test]
    fn a_token_is_current_only_for_the_version_it_was_read_at() {
        let accounts = Accounts::default();
        let at = CredentialsLocation { namespace: "ns".into(), name: "s".into(), key: "token".into() };
        assert_eq!(accounts.token(&at, "1"), None);
        accounts.remember_token(&at, "1".into(), Token::new("a"));
        assert_eq!(accounts.token(&at, "1"), Some(Token::new("a")));
        assert_eq!(accounts.token(&at, "2"), None);
        let other_key = CredentialsLocation { key: "other".into(), ..at.clone() };
        assert_eq!(accounts.token(&other_key, "1"), None);
        accounts.forget_token(&at);
        assert_eq!(accounts.token(&at, "1"), None);
    }

    #[test]
    fn the_budget_covers_a_read_and_a_write_for_every_busy_reconcile() {
        let pacer = AccountPacer::new(spec(60, 6));
        let (now, wall) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        for _ in 0..2 {
            pacer.admit("", now, wall);
        }
        // Four tokens left, one more per second.
        let one_sync: &[(&str, u32)] = &[("", 2)];
        assert_eq!(budget_ready_at(&pacer, one_sync, 0, now, wall), None, "this reconcile alone");
        assert_eq!(budget_ready_at(&pacer, one_sync, 2, now, wall), None, "two syncs: four requests");
        let three = budget_ready_at(&pacer, one_sync, 3, now, wall);
        assert_eq!(three, Some(wall + Duration::from_secs(2)), "three syncs need two more tokens");
        let buckets: &[(&str, u32)] = &[("", 1), ("PATCH", 1)];
        assert_eq!(budget_ready_at(&pacer, buckets, 5, now, wall), Some(wall + Duration::from_secs(1)), "worst bucket");
    }
}
