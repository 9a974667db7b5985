//! kube-rs tier: kube 5 (client and runtime) against the real control plane and against the
//! Kubernetes emulator, exercising what an operator relies on: `Controller` + `watcher`
//! (paged and streaming initial lists), recovery after dropped watches and after 410 Gone,
//! the finalizer helper, status server-side apply, `Recorder` events and Leases. Every case
//! runs on both (`real::*`, `emulator::*`) in a namespace of its own, with the Widget test
//! CRD (`fixtures/widget-crd.yaml`) installed through kube-rs. Dropped watches, 410s and
//! failed requests come from the `/_sandbox/` admin API: the emulator's own, or a
//! kube-proxy in front of kube-apiserver (testkit's `Instrumented`).

#[macro_use]
#[path = "kube_support/mod.rs"]
mod kube_support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        coordination::v1::{Lease, LeaseSpec},
        core::v1::Event as CoreEvent,
        events::v1::Event as EventsV1Event,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResource, Resource, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    runtime::{
        Controller,
        controller::{self, Action},
        events::{Event as RecorderEvent, EventType, Recorder, Reporter},
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector::ObjectRef,
        wait::{await_condition, conditions},
        watcher,
    },
};
use kube_support::{Backend, GENEROUS, Instrumented, Kube, TestNamespace};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The Widget test CRD as a typed kube-rs resource. The schema lives in the fixture (the CRD
/// is installed from it), so the derive does not generate one.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    schema = "disabled"
)]
struct WidgetSpec {
    size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replicas: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<String>,
}

/// One case's Kubernetes API with a kube-rs client, the Widget CRD and a namespace of its
/// own. Fields drop in order: the namespace goes before the cluster it lives in.
struct Harness {
    ns: TestNamespace,
    client: Client,
    /// The `/_sandbox/` admin API the client goes through, for the cases that inject faults
    /// or end watches (the emulator's own, or a kube-proxy in front of kube-apiserver).
    instrumented: Option<Instrumented>,
    kube: Kube,
}

impl Harness {
    /// The backend, a kube-rs client as the admin, the Widget CRD installed through kube-rs
    /// (server-side apply, waiting for Established) and a namespace `<prefix>-<random>`.
    async fn start(backend: Backend, prefix: &str) -> Self {
        let kube = Kube::start(backend);
        let client = kube.client().await;
        Self::install_crd(&kube, &client).await;
        let ns = kube.namespace(prefix);
        Self { ns, client, instrumented: None, kube }
    }

    /// [`Harness::start`] with the client going through the `/_sandbox/` admin API's door.
    async fn instrumented(backend: Backend, prefix: &str) -> Self {
        let mut h = Self::start(backend, prefix).await;
        let instrumented = h.kube.instrumented();
        h.client = connection_testkit::cluster::client_for(instrumented.kubeconfig()).await;
        h.instrumented = Some(instrumented);
        h
    }

    async fn install_crd(kube: &Kube, client: &Client) {
        let _guard = kube.cluster().control_plane().map(|plane| plane.lock("widget-crd"));
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let yaml = std::fs::read_to_string(kube_support::fixture("widget-crd.yaml")).expect("fixture");
        let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml).expect("CRD fixture");
        crds.patch("widgets.example.com", &PatchParams::apply("kube-tiers").force(), &Patch::Apply(&crd))
            .await
            .expect("apply CRD");
        within(await_condition(crds, "widgets.example.com", conditions::is_crd_established()))
            .await
            .expect("CRD established");
    }

    fn ns(&self) -> &str {
        self.ns.name()
    }

    fn widgets(&self) -> Api<Widget> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    fn admin(&self) -> &Instrumented {
        self.instrumented.as_ref().expect("a Harness::instrumented case")
    }
}

fn widget(name: &str, size: &str) -> Widget {
    let mut w = Widget::new(name, WidgetSpec { size: size.into(), replicas: None });
    w.metadata.labels = Some([("app".to_string(), "kube-rs-tier".to_string())].into());
    w
}

/// Bound any wait on the API server by [`GENEROUS`], failing the test instead of hanging.
async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(GENEROUS, fut).await.expect("timed out waiting on the API server")
}

/// Poll `probe` every 100 ms until it returns `Some`, for at most [`GENEROUS`].
async fn eventually<T, Fut>(what: &str, mut probe: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    let poll = async {
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(GENEROUS, poll).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

/// What the test controller's reconcile saw: (name, spec.size) per call.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Run a Controller over Widgets in `ns` with watcher config `wc`, and check that it sees a
/// create, an update and a delete.
async fn controller_sees_lifecycle(backend: Backend, prefix: &str, wc: watcher::Config) {
    let h = Harness::start(backend, prefix).await;
    let ns = h.ns();
    let api = h.widgets();
    let seen: Seen = Arc::default();
    let controller = Controller::new(api.clone(), wc).with_config(controller::Config::default().concurrency(2));
    let store = controller.store();
    let run = tokio::spawn(
        controller
            .run(
                |obj: Arc<Widget>, seen: Arc<Seen>| async move {
                    seen.lock().unwrap().push((obj.name_any(), obj.spec.size.clone()));
                    Ok::<_, ReconcileError>(Action::await_change())
                },
                |_, _, _| Action::requeue(Duration::from_secs(1)),
                Arc::new(seen.clone()),
            )
            .for_each(|_| async {}),
    );
    let saw = |size: &'static str| {
        let seen = seen.clone();
        move || {
            let hit = seen.lock().unwrap().iter().any(|(n, s)| n == "w1" && s == size);
            async move { hit.then_some(()) }
        }
    };

    api.create(&PostParams::default(), &widget("w1", "small")).await.expect("create");
    eventually("reconcile of the created widget", saw("small")).await;

    api.patch("w1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "large"}}))).await.expect("patch");
    eventually("reconcile of the updated widget", saw("large")).await;

    api.delete("w1", &DeleteParams::default()).await.expect("delete");
    let key = ObjectRef::<Widget>::new("w1").within(ns);
    eventually("the controller's store to drop the deleted widget", || {
        let gone = store.get(&key).is_none();
        async move { gone.then_some(()) }
    })
    .await;
    run.abort();
}

async fn controller_with_paged_lists_sees_create_update_delete(backend: Backend) {
    controller_sees_lifecycle(backend, "paged", watcher::Config::default()).await;
}

async fn controller_with_streaming_lists_sees_create_update_delete(backend: Backend) {
    controller_sees_lifecycle(backend, "streaming", watcher::Config::default().streaming_lists()).await;
}

/// Events a raw `watcher` stream delivered, as (kind, name) with kind one of
/// `Init`, `InitApply`, `InitDone`, `Apply`, `Delete`.
type Journal = Arc<Mutex<Vec<(&'static str, String)>>>;

fn spawn_journal(api: Api<Widget>, wc: watcher::Config) -> (Journal, tokio::task::JoinHandle<()>) {
    let journal: Journal = Arc::default();
    let sink = journal.clone();
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, wc).boxed();
        while let Some(ev) = stream.next().await {
            let entry = match ev {
                Ok(watcher::Event::Init) => ("Init", String::new()),
                Ok(watcher::Event::InitApply(o)) => ("InitApply", o.name_any()),
                Ok(watcher::Event::InitDone) => ("InitDone", String::new()),
                Ok(watcher::Event::Apply(o)) => ("Apply", o.name_any()),
                Ok(watcher::Event::Delete(o)) => ("Delete", o.name_any()),
                // Errors are what recovery is about; the watcher retries after them, and
                // the journal shows whether it recovered. Back off a little so a broken
                // emulator does not spin a core.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    ("Error", String::new())
                }
            };
            sink.lock().unwrap().push(entry);
        }
    });
    (journal, task)
}

async fn journal_has(journal: &Journal, what: &str, kind: &'static str, name: &str) -> usize {
    let journal = journal.clone();
    let name = name.to_string();
    eventually(what, || {
        let pos = journal.lock().unwrap().iter().position(|(k, n)| *k == kind && *n == name);
        async move { pos }
    })
    .await
}

async fn watcher_recovers(backend: Backend, prefix: &str, wc: watcher::Config) {
    let h = Harness::instrumented(backend, prefix).await;
    let api = h.widgets();
    let (journal, task) = spawn_journal(api.clone(), wc);
    journal_has(&journal, "the initial list", "InitDone", "").await;

    api.create(&PostParams::default(), &widget("before-drop", "small")).await.expect("create");
    journal_has(&journal, "the first create", "Apply", "before-drop").await;

    // Every open watch ends (the emulator, or the kube-proxy in front of kube-apiserver,
    // ends it); the watcher resumes from its last resourceVersion and misses nothing
    // written afterwards.
    h.admin().drop_watches().await;
    api.create(&PostParams::default(), &widget("after-drop", "small")).await.expect("create");
    journal_has(&journal, "a create after the watches were dropped", "Apply", "after-drop").await;
    api.delete("before-drop", &DeleteParams::default()).await.expect("delete");
    journal_has(&journal, "a delete after the watches were dropped", "Delete", "before-drop").await;

    // `expire` arms a 410 for the next watch resuming from an older version, so the
    // resumed watch fails with an in-stream 410 Expired and the watcher must re-list (a new
    // Init ... InitDone), then keep watching.
    let done_before = journal.lock().unwrap().iter().filter(|(k, _)| *k == "InitDone").count();
    h.admin().expire_watches().await;
    h.admin().drop_watches().await;
    eventually("a complete re-list after 410 Gone", || {
        let done = journal.lock().unwrap().iter().filter(|(k, _)| *k == "InitDone").count();
        async move { (done > done_before).then_some(()) }
    })
    .await;
    api.create(&PostParams::default(), &widget("after-expire", "small")).await.expect("create");
    journal_has(&journal, "a create after the re-list", "Apply", "after-expire").await;
    let relisted: Vec<_> = {
        let j = journal.lock().unwrap();
        let last_init = j.iter().rposition(|(k, _)| *k == "Init").expect("an Init");
        j[last_init..].iter().filter(|(k, _)| *k == "InitApply").map(|(_, n)| n.clone()).collect()
    };
    assert_eq!(relisted, ["after-drop"], "the re-list must carry exactly the live objects");
    let j = journal.lock().unwrap().clone();
    let last_init = j.iter().rposition(|(k, _)| *k == "Init").expect("an Init");
    assert_eq!(j[last_init - 1].0, "Error", "the re-list must follow the 410 error: {j:?}");
    task.abort();
}

async fn paged_watcher_recovers_after_dropped_watches_and_410(backend: Backend) {
    watcher_recovers(backend, "recover-paged", watcher::Config::default()).await;
}

async fn streaming_watcher_recovers_after_dropped_watches_and_410(backend: Backend) {
    watcher_recovers(backend, "recover-streaming", watcher::Config::default().streaming_lists()).await;
}

async fn watches_follow_label_and_field_selectors(backend: Backend) {
    let h = Harness::start(backend, "selectors").await;
    let api = h.widgets();
    let (journal, task) = spawn_journal(api.clone(), watcher::Config::default().labels("tier=gold"));
    journal_has(&journal, "the initial list", "InitDone", "").await;

    let mut gold = widget("w1", "small");
    gold.labels_mut().insert("tier".into(), "gold".into());
    api.create(&PostParams::default(), &gold).await.expect("create");
    api.create(&PostParams::default(), &widget("plain", "small")).await.expect("create");
    journal_has(&journal, "the labelled widget", "Apply", "w1").await;

    // Leaving the selection is a deletion for this watch; coming back is an addition.
    let relabel = |tier: &str| Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}}));
    api.patch("w1", &PatchParams::default(), &relabel("silver")).await.expect("patch");
    journal_has(&journal, "w1 leaving the selection", "Delete", "w1").await;
    api.patch("w1", &PatchParams::default(), &relabel("gold")).await.expect("patch");
    let w1_events = || -> Vec<&'static str> {
        journal.lock().unwrap().iter().filter(|(_, n)| n == "w1").map(|(k, _)| *k).collect()
    };
    eventually("w1 coming back", || {
        let events = w1_events();
        async move { (events.len() >= 3).then_some(()) }
    })
    .await;
    assert_eq!(w1_events(), ["Apply", "Delete", "Apply"]);
    let j = journal.lock().unwrap().clone();
    assert!(j.iter().all(|(_, n)| n != "plain"), "an unselected widget reached the watch: {j:?}");
    task.abort();

    // Field selectors: metadata.name selects; other fields are refused like kube-apiserver.
    let named = api.list(&ListParams::default().fields("metadata.name=plain")).await.expect("list");
    assert_eq!(named.items.iter().map(|w| w.name_any()).collect::<Vec<_>>(), ["plain"]);
    let refused = api.list(&ListParams::default().fields("spec.size=small")).await;
    match refused {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400, "{s:?}");
            assert!(s.message.contains("spec.size"), "{s:?}");
        }
        other => panic!("an unsupported field selector must be a 400: {other:?}"),
    }

    // timeoutSeconds ends a watch cleanly (the stream simply finishes).
    let rv = api.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("rv");
    let mut short = api.watch(&WatchParams::default().timeout(1), &rv).await.expect("watch").boxed();
    while let Some(ev) = within(short.next()).await {
        match ev.expect("watch event") {
            WatchEvent::Bookmark(_) => {}
            other => panic!("nothing was written, yet the watch sent {other:?}"),
        }
    }
}

async fn writes_honour_generate_name_dry_run_and_preconditions(backend: Backend) {
    let h = Harness::start(backend, "writes").await;
    let api = h.widgets();

    // generateName: the server completes the name.
    let mut w = Widget::new("", WidgetSpec { size: "small".into(), replicas: None });
    w.metadata.name = None;
    w.metadata.generate_name = Some("gen-".into());
    let created = api.create(&PostParams::default(), &w).await.expect("create with generateName");
    let name = created.name_any();
    assert!(name.starts_with("gen-") && name.len() > "gen-".len(), "{name}");

    // dryRun=All: validated and answered (with defaults), never stored.
    let dry = PostParams { dry_run: true, ..Default::default() };
    let answered = api.create(&dry, &widget("dry", "large")).await.expect("dry-run create");
    assert_eq!(answered.spec.replicas, Some(1), "defaults apply to a dry run too");
    assert!(api.get_opt("dry").await.expect("get").is_none(), "a dry-run create was stored");
    let invalid = api.create(&dry, &widget("dry", "huge")).await;
    assert!(matches!(invalid, Err(kube::Error::Api(ref s)) if s.code == 422), "{invalid:?}");

    // Optimistic concurrency on the status subresource: a stale resourceVersion is a 409.
    let mut stale = created.clone();
    let missing = api.patch("gen-missing", &PatchParams::default(), &Patch::Merge(json!({}))).await;
    assert!(matches!(missing, Err(kube::Error::Api(ref s)) if s.code == 404), "{missing:?}");
    api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.expect("patch");
    stale.status = Some(WidgetStatus { phase: Some("Running".into()) });
    let conflict = api.replace_status(&name, &PostParams::default(), &stale).await;
    assert!(matches!(conflict, Err(kube::Error::Api(ref s)) if s.code == 409), "{conflict:?}");

    // Delete preconditions: a wrong uid is a 409 and the object stays.
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: Some("not-the-uid".into()), resource_version: None }),
        ..Default::default()
    };
    let refused = api.delete(&name, &wrong).await;
    assert!(matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 409), "{refused:?}");
    assert!(api.get_opt(&name).await.expect("get").is_some());
    let right = DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: created.uid(), resource_version: None }),
        ..Default::default()
    };
    api.delete(&name, &right).await.expect("delete with the right uid");
    assert!(api.get_opt(&name).await.expect("get").is_none());
}

const FINALIZER: &str = "example.com/cleanup";

/// Context of the finalizer test's controller: the Widget API and the names cleaned up.
type FinalizerCtx = (Api<Widget>, Arc<Mutex<Vec<String>>>);

async fn finalizer_helper_adds_and_removes_its_finalizer(backend: Backend) {
    let h = Harness::start(backend, "finalizer").await;
    let api = h.widgets();
    let cleanups: Arc<Mutex<Vec<String>>> = Arc::default();
    let ctx = Arc::new((api.clone(), cleanups.clone()));
    let run = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .with_config(controller::Config::default().concurrency(2))
            .run(
                |obj: Arc<Widget>, ctx: Arc<FinalizerCtx>| async move {
                    let (api, cleanups) = &*ctx;
                    finalizer(api, FINALIZER, obj, |ev| async move {
                        if let FinalizerEvent::Cleanup(w) = ev {
                            cleanups.lock().unwrap().push(w.name_any());
                        }
                        Ok::<_, kube::Error>(Action::await_change())
                    })
                    .await
                    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
                },
                |_, _, _| Action::requeue(Duration::from_secs(1)),
                ctx,
            )
            .for_each(|_| async {}),
    );

    api.create(&PostParams::default(), &widget("w1", "small")).await.expect("create");
    eventually("the finalizer to be added", || {
        let api = api.clone();
        async move {
            let w = api.get("w1").await.ok()?;
            w.finalizers().iter().any(|f| f == FINALIZER).then_some(())
        }
    })
    .await;

    api.delete("w1", &DeleteParams::default()).await.expect("delete");
    eventually("the finalizer to be removed and the widget gone", || {
        let api = api.clone();
        async move { matches!(api.get_opt("w1").await, Ok(None)).then_some(()) }
    })
    .await;
    assert_eq!(*cleanups.lock().unwrap(), ["w1"], "cleanup must run exactly once");
    run.abort();
}

async fn controller_retries_through_injected_api_failures(backend: Backend) {
    let h = Harness::instrumented(backend, "faults").await;
    let ns = h.ns();
    let api = h.widgets();
    // The next two PATCHes of any Widget in the namespace fail with 500.
    h.admin()
        .faults(&json!({
            "method": "PATCH",
            "path": format!("/apis/example.com/v1/namespaces/{ns}/widgets/*"),
            "status": 500,
            "count": 2,
        }))
        .await;
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let ctx = Arc::new((api.clone(), Arc::default()));
    let seen_failures = failures.clone();
    let run = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .with_config(controller::Config::default().concurrency(2))
            .run(
                |obj: Arc<Widget>, ctx: Arc<FinalizerCtx>| async move {
                    finalizer(&ctx.0, FINALIZER, obj, |_| async { Ok::<_, kube::Error>(Action::await_change()) })
                        .await
                        .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
                },
                move |_, err, _| {
                    seen_failures.lock().unwrap().push(err.to_string());
                    Action::requeue(Duration::from_millis(100))
                },
                ctx,
            )
            .for_each(|_| async {}),
    );

    api.create(&PostParams::default(), &widget("w1", "small")).await.expect("create");
    eventually("the finalizer to be added despite the failures", || {
        let api = api.clone();
        async move {
            let w = api.get("w1").await.ok()?;
            w.finalizers().iter().any(|f| f == FINALIZER).then_some(())
        }
    })
    .await;
    let failures = failures.lock().unwrap().clone();
    assert_eq!(failures.len(), 2, "each injected failure reaches error_policy once: {failures:?}");
    assert!(failures.iter().all(|f| f.contains("500")), "{failures:?}");
    run.abort();
}

async fn status_apply_keeps_generation_and_unchanged_apply_is_a_no_op(backend: Backend) {
    let h = Harness::start(backend, "status-apply").await;
    let api = h.widgets();
    let created = api.create(&PostParams::default(), &widget("w1", "small")).await.expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let rv0 = created.resource_version().expect("resourceVersion");

    let mut events = api.watch(&WatchParams::default().fields("metadata.name=w1"), &rv0).await.expect("watch").boxed();

    let status = json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "status": {"phase": "Running"},
    });
    let pp = PatchParams::apply("widget-tester");
    let applied = api.patch_status("w1", &pp, &Patch::Apply(&status)).await.expect("status apply");
    assert_eq!(applied.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running"));
    assert_eq!(applied.metadata.generation, Some(1), "a status write must not bump generation");
    let rv1 = applied.resource_version().expect("resourceVersion");
    assert_ne!(rv1, rv0);
    let entry = applied
        .metadata
        .managed_fields
        .as_ref()
        .and_then(|mf| mf.iter().find(|m| m.manager.as_deref() == Some("widget-tester")))
        .cloned()
        .expect("managedFields entry of widget-tester");
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.subresource.as_deref(), Some("status"));

    // The same apply again changes nothing: same resourceVersion, and no watch event.
    let again = api.patch_status("w1", &pp, &Patch::Apply(&status)).await.expect("status apply");
    assert_eq!(again.resource_version().as_deref(), Some(rv1.as_str()));
    assert_eq!(again.metadata.generation, Some(1));

    // A marker write after the no-op: the watch must show the first apply, then the marker,
    // and nothing in between.
    api.patch("w1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"marker": "1"}}})))
        .await
        .expect("marker patch");
    let mut seen = Vec::new();
    while let Some(ev) = within(events.try_next()).await.expect("watch stream") {
        match ev {
            WatchEvent::Modified(w) => {
                let marker = w.labels().contains_key("marker");
                seen.push(w.resource_version().unwrap_or_default());
                if marker {
                    break;
                }
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected watch event {other:?}"),
        }
    }
    assert_eq!(seen.len(), 2, "expected the status apply and the marker only, got {seen:?}");
    assert_eq!(seen[0], rv1);
}

async fn recorder_events_are_visible_as_core_and_events_k8s_io(backend: Backend) {
    let h = Harness::start(backend, "events").await;
    let ns = h.ns();
    let api = h.widgets();
    let w = api.create(&PostParams::default(), &widget("w1", "small")).await.expect("create");
    let recorder = Recorder::new(
        h.client.clone(),
        Reporter { controller: "widget-controller".into(), instance: Some("widget-controller-0".into()) },
    );
    let ev = RecorderEvent {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("widget is in shape".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = w.object_ref(&());
    recorder.publish(&ev, &reference).await.expect("publish");
    // A repeat of the same event becomes a series on the same object (the Recorder patches it).
    recorder.publish(&ev, &reference).await.expect("publish again");

    let new_api: Api<EventsV1Event> = Api::namespaced(h.client.clone(), ns);
    let list = new_api.list(&Default::default()).await.expect("list events.k8s.io");
    let mine: Vec<_> = list.items.iter().filter(|e| e.reason.as_deref() == Some("Reconciled")).collect();
    assert_eq!(mine.len(), 1, "{:?}", list.items);
    let e = mine[0];
    assert_eq!(e.note.as_deref(), Some("widget is in shape"));
    assert_eq!(e.reporting_controller.as_deref(), Some("widget-controller"));
    assert_eq!(e.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("w1"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2), "{e:?}");

    let core_api: Api<CoreEvent> = Api::namespaced(h.client.clone(), ns);
    let list = core_api.list(&Default::default()).await.expect("list core/v1 events");
    let core = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Reconciled"))
        .unwrap_or_else(|| panic!("no core/v1 view of the event: {:?}", list.items));
    assert_eq!(core.metadata.name, e.metadata.name);
    assert_eq!(core.message.as_deref(), Some("widget is in shape"));
    assert_eq!(core.involved_object.name.as_deref(), Some("w1"));
    assert_eq!(core.involved_object.kind.as_deref(), Some("Widget"));
    assert_eq!(core.type_.as_deref(), Some("Normal"));
    assert_eq!(core.reporting_component.as_deref(), Some("widget-controller"));
    // The series is the same object in both views; core/v1 `count` is the separate
    // deprecatedCount (pkg/apis/events/v1 conversion), which the Recorder never sets.
    assert_eq!(core.series.as_ref().and_then(|s| s.count), Some(2), "{core:?}");
    assert_eq!(core.count, None);

    // `kubectl get events` (core/v1, as a Table) lists what the Recorder wrote.
    let table = h.kube.kubectl(&["get", "events", "-n", ns]).ok().to_string();
    let row = table
        .lines()
        .find(|l| l.contains("Reconciled"))
        .unwrap_or_else(|| panic!("no Reconciled event in kubectl get events:\n{table}"));
    assert!(row.contains("Normal") && row.contains("widget/w1") && row.contains("widget is in shape"), "{row}");
}

async fn leases_can_be_created_updated_and_managed(backend: Backend) {
    let h = Harness::start(backend, "leases").await;
    let ns = h.ns();
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), ns);

    // Plain create and optimistic-concurrency update.
    let lease = Lease {
        metadata: ObjectMeta { name: Some("plain".into()), ..Default::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    let mut created = leases.create(&PostParams::default(), &lease).await.expect("create lease");
    created.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    let updated = leases.replace("plain", &PostParams::default(), &created).await.expect("replace lease");
    assert_eq!(updated.spec.and_then(|s| s.holder_identity).as_deref(), Some("b"));
    // Replacing with the now stale resourceVersion is a conflict.
    let stale = leases.replace("plain", &PostParams::default(), &created).await;
    assert!(matches!(stale, Err(kube::Error::Api(ref s)) if s.code == 409), "{stale:?}");

    // kube-lease-manager (server-side apply on the Lease) acquires and releases it.
    let manager = kube_lease_manager::LeaseManagerBuilder::new(h.client.clone(), "leader")
        .with_namespace(ns)
        .with_identity("replica-1")
        .with_duration(5)
        .with_grace(2)
        .build()
        .await
        .expect("lease manager");
    assert!(within(manager.changed()).await.expect("lock"), "the free lease must be acquired");
    let held = leases.get("leader").await.expect("lease");
    assert_eq!(held.spec.as_ref().and_then(|s| s.holder_identity.as_deref()), Some("replica-1"));
    manager.release().await.expect("release");
    let released = leases.get("leader").await.expect("lease");
    assert_eq!(released.spec.as_ref().and_then(|s| s.holder_identity.as_deref()), None);
}

async_tests_on_both_backends!(
    controller_with_paged_lists_sees_create_update_delete,
    controller_with_streaming_lists_sees_create_update_delete,
    paged_watcher_recovers_after_dropped_watches_and_410,
    streaming_watcher_recovers_after_dropped_watches_and_410,
    watches_follow_label_and_field_selectors,
    writes_honour_generate_name_dry_run_and_preconditions,
    finalizer_helper_adds_and_removes_its_finalizer,
    controller_retries_through_injected_api_failures,
    status_apply_keeps_generation_and_unchanged_apply_is_a_no_op,
    recorder_events_are_visible_as_core_and_events_k8s_io,
    leases_can_be_created_updated_and_managed,
);
