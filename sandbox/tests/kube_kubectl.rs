//! kubectl tier: the real `/usr/bin/kubectl` (which runs the kubectl matching the server's
//! minor version) against the Kubernetes emulator, with the Widget test CRD
//! (`fixtures/widget-crd.yaml`). Each test starts its own emulator and works in its own
//! namespace. Expected messages are kube-apiserver 1.33's, as kubectl prints them.

#[path = "kube_support/mod.rs"]
mod kube_support;

use kube_support::{Emulator, eventually};
use serde_json::Value;

/// A Widget manifest in namespace `ns`; `spec` is the YAML body of `spec:` (indented 2).
fn widget(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

fn widget_json(emu: &Emulator, ns: &str, name: &str) -> Value {
    emu.kubectl(&["get", "widget", name, "-n", ns, "-o", "json", "--show-managed-fields"]).json()
}

/// An emulator with the Widget CRD installed and namespace `ns` created.
fn setup(ns: &str) -> Emulator {
    let emu = Emulator::start();
    emu.install_widget_crd();
    emu.namespace(ns);
    emu
}

#[test]
fn client_side_apply_creates_with_defaults_and_reapply_is_idempotent() {
    let emu = setup("csa");
    let w = widget("csa", "w1", "  size: small\n");
    let out = emu.apply(&w, &[]);
    assert!(out.ok().contains("widget.example.com/w1 created"), "{out:?}");

    let obj = widget_json(&emu, "csa", "w1");
    // Defaults from the schema are applied on create.
    assert_eq!(obj["spec"]["replicas"], 1, "{obj}");
    assert_eq!(obj["spec"]["color"], "blue", "{obj}");
    assert_eq!(obj["metadata"]["generation"], 1);
    assert!(obj["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(obj["metadata"]["creationTimestamp"].is_string());
    // Client-side apply keeps its last-applied annotation (that is how it computes deletions).
    let last = &obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"];
    assert!(last.as_str().is_some_and(|s| s.contains("\"size\":\"small\"")), "{obj}");
    let rv = obj["metadata"]["resourceVersion"].clone();

    // Re-applying the same manifest changes nothing.
    let again = emu.apply(&w, &[]);
    assert!(again.ok().contains("widget.example.com/w1 unchanged"), "{again:?}");
    let obj = widget_json(&emu, "csa", "w1");
    assert_eq!(obj["metadata"]["resourceVersion"], rv);
    assert_eq!(obj["metadata"]["generation"], 1);

    // A server-side dry run validates and answers, but stores nothing.
    let dry = emu.apply(&widget("csa", "w1", "  size: medium\n"), &["--dry-run=server"]);
    assert!(dry.ok().contains("(server dry run)"), "{dry:?}");
    let obj = widget_json(&emu, "csa", "w1");
    assert_eq!(obj["spec"]["size"], "small");
    assert_eq!(obj["metadata"]["resourceVersion"], rv);
    let dry_bad = emu.apply(&widget("csa", "w1", "  size: huge\n"), &["--dry-run=server"]);
    assert!(dry_bad.fails().contains("Unsupported value: \"huge\""), "{dry_bad:?}");

    // A changed manifest is patched in and bumps the generation.
    let changed = emu.apply(&widget("csa", "w1", "  size: large\n  replicas: 3\n"), &[]);
    assert!(changed.ok().contains("widget.example.com/w1 configured"), "{changed:?}");
    let obj = widget_json(&emu, "csa", "w1");
    assert_eq!(obj["spec"]["size"], "large");
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(obj["metadata"]["generation"], 2);
    assert_ne!(obj["metadata"]["resourceVersion"], rv);
}

#[test]
fn server_side_apply_conflicts_with_another_manager_unless_forced() {
    let emu = setup("ssa");
    let w = widget("ssa", "w1", "  size: small\n  replicas: 2\n");
    let out = emu.apply(&w, &["--server-side"]);
    assert!(out.ok().contains("widget.example.com/w1 serverside-applied"), "{out:?}");
    let obj = widget_json(&emu, "ssa", "w1");
    let managers: Vec<&str> = obj["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl"), "{obj}");

    // Re-applying the same configuration is a no-op.
    let rv = obj["metadata"]["resourceVersion"].clone();
    emu.apply(&w, &["--server-side"]).ok();
    assert_eq!(widget_json(&emu, "ssa", "w1")["metadata"]["resourceVersion"], rv);

    // Another manager applying a different value for a field owned by "kubectl" conflicts.
    let other = widget("ssa", "w1", "  size: large\n");
    let conflict = emu.apply(&other, &["--server-side", "--field-manager=other"]);
    let err = conflict.fails();
    assert!(err.contains("conflict"), "{err}");
    assert!(err.contains("\"kubectl\""), "{err}");
    assert!(err.contains(".spec.size"), "{err}");
    assert_eq!(widget_json(&emu, "ssa", "w1")["spec"]["size"], "small");

    // The same value is shared ownership, not a conflict.
    emu.apply(&widget("ssa", "w1", "  size: small\n"), &["--server-side", "--field-manager=other"])
        .ok();

    // --force-conflicts takes the field over.
    let forced = emu.apply(&other, &["--server-side", "--field-manager=other", "--force-conflicts"]);
    forced.ok();
    let obj = widget_json(&emu, "ssa", "w1");
    assert_eq!(obj["spec"]["size"], "large");
    let other_entry = obj["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|m| m["manager"] == "other" && m["operation"] == "Apply")
        .cloned()
        .unwrap_or_else(|| panic!("no Apply entry for manager other: {obj}"));
    assert!(other_entry["fieldsV1"]["f:spec"]["f:size"].is_object(), "{other_entry}");
    let kubectl_entry = obj["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .find(|m| m["manager"] == "kubectl")
        .cloned()
        .unwrap_or_else(|| panic!("no entry for manager kubectl: {obj}"));
    assert!(kubectl_entry["fieldsV1"]["f:spec"].get("f:size").is_none(), "{kubectl_entry}");

    // A field last written by `kubectl patch` (an Update by manager kubectl-patch) belongs to
    // that manager, so re-applying the old value conflicts with it.
    emu.kubectl(&["patch", "widget", "w1", "-n", "ssa", "--type=merge", "-p", r#"{"spec":{"replicas":7}}"#])
        .ok();
    let reapply = emu.apply(&widget("ssa", "w1", "  replicas: 2\n"), &["--server-side"]);
    let err = reapply.fails();
    assert!(err.contains("conflict with \"kubectl-patch\""), "{err}");
    assert!(err.contains(".spec.replicas"), "{err}");
    assert_eq!(widget_json(&emu, "ssa", "w1")["spec"]["replicas"], 7);
}

#[test]
fn get_lists_across_namespaces_with_selectors_tables_and_formats() {
    let emu = setup("get-a");
    emu.namespace("get-b");
    for (ns, name, tier, size) in
        [("get-a", "alpha", "gold", "small"), ("get-a", "beta", "silver", "medium"), ("get-b", "gamma", "bronze", "large")]
    {
        let doc = format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    tier: {tier}\nspec:\n  size: {size}\n  replicas: 2\n"
        );
        emu.apply(&doc, &[]).ok();
    }

    // Table output with the CRD's printer columns.
    let table = emu.kubectl(&["get", "widgets", "-n", "get-a"]).ok().to_string();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "REPLICAS", "PHASE", "AGE"], "{table}");
    let alpha: Vec<&str> = lines
        .find(|l| l.starts_with("alpha"))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    // Phase is empty (no status yet), so the row is NAME SIZE REPLICAS AGE.
    assert_eq!(&alpha[..3], ["alpha", "small", "2"], "{table}");
    assert!(!table.contains("gamma"), "{table}");
    // Priority columns only appear in the wide output.
    let wide = emu.kubectl(&["get", "widget", "alpha", "-n", "get-a", "-o", "wide"]).ok().to_string();
    let header: Vec<&str> = wide.lines().next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "REPLICAS", "PHASE", "AGE", "COLOR"], "{wide}");
    assert!(wide.lines().nth(1).is_some_and(|l| l.trim_end().ends_with("blue")), "{wide}");

    // -A adds the NAMESPACE column and sees every namespace.
    let all = emu.kubectl(&["get", "widgets", "-A"]).ok().to_string();
    assert!(all.lines().next().is_some_and(|h| h.starts_with("NAMESPACE")), "{all}");
    for name in ["alpha", "beta", "gamma"] {
        assert!(all.contains(name), "{all}");
    }
    assert!(all.lines().any(|l| l.starts_with("get-b") && l.contains("gamma")), "{all}");

    // Short name and category resolve to the CRD.
    let short = emu.kubectl(&["get", "wdg", "-n", "get-b", "-o", "name"]).ok().to_string();
    assert_eq!(short.trim(), "widget.example.com/gamma");
    let cat = emu.kubectl(&["get", "sandboxtest", "-A", "-o", "name"]).ok().to_string();
    assert_eq!(cat.lines().count(), 3, "{cat}");

    // Label selectors: equality, inequality, set-based, existence.
    let names = |sel: &str| -> Vec<String> {
        let mut v: Vec<String> = emu
            .kubectl(&["get", "widgets", "-A", "-l", sel, "-o", "jsonpath={.items[*].metadata.name}"])
            .ok()
            .split_whitespace()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("tier=gold"), ["alpha"]);
    assert_eq!(names("tier!=gold"), ["beta", "gamma"]);
    assert_eq!(names("tier in (gold,bronze)"), ["alpha", "gamma"]);
    assert_eq!(names("tier notin (gold,bronze)"), ["beta"]);
    assert_eq!(names("tier"), ["alpha", "beta", "gamma"]);
    assert!(names("!tier").is_empty());

    // Paged lists (limit + continue): kubectl fetches one object per request here.
    let chunked = emu.kubectl(&["get", "widgets", "-A", "--chunk-size=1", "-o", "name"]).ok().to_string();
    assert_eq!(chunked.lines().count(), 3, "{chunked}");

    // -o json of a list and -o yaml of one object.
    let list = emu.kubectl(&["get", "widgets", "-n", "get-a", "-o", "json"]).json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    assert!(list["items"].as_array().unwrap().iter().all(|i| i["kind"] == "Widget"), "{list}");
    let yaml = emu.kubectl(&["get", "widget", "beta", "-n", "get-a", "-o", "yaml"]).ok().to_string();
    let obj: Value = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(obj["apiVersion"], "example.com/v1");
    assert_eq!(obj["kind"], "Widget");
    assert_eq!(obj["metadata"]["labels"]["tier"], "silver");
    assert_eq!(obj["spec"]["size"], "medium");

    // A missing object is a NotFound error naming it.
    let missing = emu.kubectl(&["get", "widget", "nope", "-n", "get-a"]);
    let err = missing.fails();
    assert!(err.contains("NotFound") && err.contains("\"nope\" not found"), "{err}");
}

#[test]
fn get_watch_streams_existing_and_new_objects() {
    let emu = setup("watch");
    emu.apply(&widget("watch", "first", "  size: small\n"), &[]).ok();
    let mut watch = emu.kubectl_stream(&["get", "widgets", "-n", "watch", "-w"]);
    let initial = watch.lines_until(|l| l.starts_with("first"));
    assert!(initial[0].starts_with("NAME"), "{initial:?}");

    emu.apply(&widget("watch", "second", "  size: large\n"), &[]).ok();
    let added = watch.lines_until(|l| l.starts_with("second"));
    assert!(added.last().unwrap().contains("large"), "{added:?}");

    emu.kubectl(&["patch", "widget", "first", "-n", "watch", "--type=merge", "-p", r#"{"spec":{"size":"medium"}}"#])
        .ok();
    let modified = watch.lines_until(|l| l.starts_with("first"));
    assert!(modified.last().unwrap().contains("medium"), "{modified:?}");
    watch.stop();
}

#[test]
fn explain_prints_field_descriptions_from_the_schema() {
    let emu = setup("explain");
    let out = emu.kubectl(&["explain", "widgets.spec"]).ok().to_string();
    assert!(out.contains("Desired state of the Widget."), "{out}");
    assert!(out.contains("size"), "{out}");
    assert!(out.contains("-required-"), "{out}");
    let field = emu.kubectl(&["explain", "widget.spec.size"]).ok().to_string();
    assert!(field.contains("How big the widget is"), "{field}");
    // Discovery lists the resource with its short name; the CRD itself prints as a Table.
    let resources = emu.kubectl(&["api-resources", "--api-group=example.com"]).ok().to_string();
    let row: Vec<&str> = resources
        .lines()
        .find(|l| l.starts_with("widgets"))
        .unwrap_or_else(|| panic!("{resources}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["widgets", "wdg", "example.com/v1", "true", "Widget"], "{resources}");
    let crds = emu.kubectl(&["get", "crd", "widgets.example.com"]).ok().to_string();
    assert!(crds.lines().next().is_some_and(|h| h.split_whitespace().eq(["NAME", "CREATED", "AT"])), "{crds}");

    let top = emu.kubectl(&["explain", "wdg"]).ok().to_string();
    assert!(top.contains("KIND:") && top.contains("Widget"), "{top}");
    assert!(top.contains("A Widget is the test object"), "{top}");
}

#[test]
fn status_patch_satisfies_wait_and_leaves_spec_and_generation() {
    let emu = setup("status");
    emu.apply(&widget("status", "w1", "  size: small\n"), &[]).ok();

    // Without the condition, wait times out with kubectl's own message.
    let timeout = emu.kubectl(&["wait", "--for=condition=Ready", "widget/w1", "-n", "status", "--timeout=2s"]);
    let err = timeout.fails();
    assert!(err.contains("timed out waiting for the condition"), "{err}");

    // A waiting kubectl returns once the status subresource gets the condition.
    let mut waiting =
        emu.kubectl_stream(&["wait", "--for=condition=Ready", "widget/w1", "-n", "status", "--timeout=120s"]);
    let status = r#"{"status":{"phase":"Running","observedGeneration":1,"conditions":[{"type":"Ready","status":"True","reason":"Reconciled","message":"all good","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let patched = emu.kubectl(&["patch", "widget", "w1", "-n", "status", "--subresource=status", "--type=merge", "-p", status]);
    patched.ok();
    let met = waiting.next_line();
    assert_eq!(met, "widget.example.com/w1 condition met");

    let obj = widget_json(&emu, "status", "w1");
    assert_eq!(obj["status"]["phase"], "Running");
    assert_eq!(obj["metadata"]["generation"], 1, "status writes must not bump generation: {obj}");

    // The main resource ignores status; the status subresource ignores spec.
    emu.kubectl(&["patch", "widget", "w1", "-n", "status", "--type=merge", "-p", r#"{"status":{"phase":"Broken"}}"#])
        .ok();
    emu.kubectl(&["patch", "widget", "w1", "-n", "status", "--subresource=status", "--type=merge", "-p", r#"{"spec":{"size":"large"}}"#])
        .ok();
    let obj = widget_json(&emu, "status", "w1");
    assert_eq!(obj["status"]["phase"], "Running", "{obj}");
    assert_eq!(obj["spec"]["size"], "small", "{obj}");

    // Table output shows the status printer column.
    let table = emu.kubectl(&["get", "widget", "w1", "-n", "status"]).ok().to_string();
    assert!(table.lines().nth(1).is_some_and(|l| l.contains("Running")), "{table}");

    // Custom resources take no strategic merge patch, as on kube-apiserver.
    let smp = emu.kubectl(&["patch", "widget", "w1", "-n", "status", "--type=strategic", "-p", r#"{"spec":{"size":"large"}}"#]);
    let err = smp.fails();
    // kubectl rewords the 415 UnsupportedMediaType Status, keeping the server's message.
    assert!(err.contains("application/strategic-merge-patch+json is not supported"), "{err}");
    assert!(err.contains("accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"), "{err}");

    // Status is validated too.
    let bad = emu.kubectl(&["patch", "widget", "w1", "-n", "status", "--subresource=status", "--type=merge", "-p", r#"{"status":{"conditions":[{"type":"Ready","status":"Maybe"}]}}"#]);
    let err = bad.fails();
    assert!(err.contains("status.conditions[0].status") && err.contains("Unsupported value"), "{err}");
}

#[test]
fn delete_waits_for_finalizers_to_be_released() {
    let emu = setup("fin");
    let doc = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: held\n  namespace: fin\n  finalizers:\n    - example.com/hold\nspec:\n  size: small\n";
    emu.apply(doc, &[]).ok();
    let out = emu.kubectl(&["delete", "widget", "held", "-n", "fin", "--wait=false"]);
    assert!(out.ok().contains("widget.example.com \"held\" deleted"), "{out:?}");

    // Held by the finalizer: still there, marked for deletion.
    let obj = widget_json(&emu, "fin", "held");
    assert!(obj["metadata"]["deletionTimestamp"].is_string(), "{obj}");
    assert_eq!(obj["metadata"]["finalizers"][0], "example.com/hold");

    // Releasing the finalizer lets the deletion complete; a waiting kubectl sees it.
    let mut waiting = emu.kubectl_stream(&["wait", "--for=delete", "widget/held", "-n", "fin", "--timeout=120s"]);
    emu.kubectl(&["patch", "widget", "held", "-n", "fin", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#])
        .ok();
    // kubectl prints "condition met" when it saw the deletion happen, and nothing (exit 0)
    // when the object was already gone by the time it looked.
    let (status, lines) = waiting.finish();
    assert!(status.success(), "kubectl wait --for=delete failed: {lines:?}");
    assert!(lines.is_empty() || lines == ["widget.example.com/held condition met"], "{lines:?}");
    eventually("the widget to be gone", || {
        let get = emu.kubectl(&["get", "widget", "held", "-n", "fin"]);
        (!get.status.success() && get.stderr.contains("not found")).then_some(())
    });

    // Without finalizers, delete (which waits by default) completes at once.
    emu.apply(&widget("fin", "free", "  size: small\n"), &[]).ok();
    emu.kubectl(&["delete", "widget", "free", "-n", "fin"]).ok();
    let gone = emu.kubectl(&["get", "widget", "free", "-n", "fin"]);
    assert!(gone.fails().contains("\"free\" not found"), "{gone:?}");
}

#[test]
fn create_namespace_and_generic_secret() {
    let emu = Emulator::start();
    let out = emu.kubectl(&["create", "namespace", "team"]);
    assert!(out.ok().contains("namespace/team created"), "{out:?}");
    let ns = emu.kubectl(&["get", "namespace", "team", "-o", "json"]).json();
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    let dup = emu.kubectl(&["create", "namespace", "team"]);
    assert!(dup.fails().contains("AlreadyExists"), "{dup:?}");

    let out = emu.kubectl(&["create", "secret", "generic", "creds", "-n", "team", "--from-literal=user=alice", "--from-literal=role=admin"]);
    assert!(out.ok().contains("secret/creds created"), "{out:?}");
    let secret = emu.kubectl(&["get", "secret", "creds", "-n", "team", "-o", "json"]).json();
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["user"], "YWxpY2U=", "{secret}");
    assert_eq!(secret["data"]["role"], "YWRtaW4=", "{secret}");
    let table = emu.kubectl(&["get", "secret", "creds", "-n", "team"]).ok().to_string();
    let row: Vec<&str> = table.lines().nth(1).expect("row").split_whitespace().collect();
    assert_eq!(&row[..3], ["creds", "Opaque", "2"], "{table}");

    // A namespaced object in a missing namespace is refused like kube-apiserver does.
    let missing = emu.kubectl(&["create", "secret", "generic", "x", "-n", "nowhere", "--from-literal=a=b"]);
    assert!(missing.fails().contains("namespaces \"nowhere\" not found"), "{missing:?}");
}

#[test]
fn replace_with_stale_resource_version_is_a_conflict() {
    let emu = setup("replace");
    emu.apply(&widget("replace", "w1", "  size: small\n"), &[]).ok();
    let stale = widget_json(&emu, "replace", "w1");
    emu.kubectl(&["patch", "widget", "w1", "-n", "replace", "--type=merge", "-p", r#"{"spec":{"replicas":4}}"#])
        .ok();

    let mut edited = stale.clone();
    edited["spec"]["size"] = "medium".into();
    let out = emu.kubectl_stdin(&["replace", "-f", "-"], &edited.to_string());
    let err = out.fails();
    assert!(err.contains("Conflict") || err.contains("the object has been modified"), "{err}");
    assert!(err.contains("please apply your changes to the latest version and try again"), "{err}");
    assert_eq!(widget_json(&emu, "replace", "w1")["spec"]["size"], "small");

    // With the current resourceVersion the replace goes through.
    let mut fresh = widget_json(&emu, "replace", "w1");
    fresh["spec"]["size"] = "medium".into();
    let out = emu.kubectl_stdin(&["replace", "-f", "-"], &fresh.to_string());
    assert!(out.ok().contains("widget.example.com/w1 replaced"), "{out:?}");
    let obj = widget_json(&emu, "replace", "w1");
    assert_eq!(obj["spec"]["size"], "medium");
    assert_eq!(obj["spec"]["replicas"], 4);
}

#[test]
fn describe_shows_metadata_spec_and_status() {
    let emu = setup("desc");
    let doc = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: desc\n  labels:\n    tier: gold\nspec:\n  size: medium\n  description: shiny\n";
    emu.apply(doc, &[]).ok();
    // describe looks events up by involvedObject field selectors (name, namespace, uid).
    let uid = widget_json(&emu, "desc", "w1")["metadata"]["uid"].as_str().expect("uid").to_string();
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: w1.test\n  namespace: desc\ninvolvedObject:\n  apiVersion: example.com/v1\n  kind: Widget\n  name: w1\n  namespace: desc\n  uid: {uid}\nreason: Polished\nmessage: polished by the test\ntype: Normal\nsource:\n  component: kube-tests\nfirstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:00:00Z\"\ncount: 1\n"
    );
    emu.kubectl_stdin(&["create", "-f", "-"], &event).ok();
    let out = emu.kubectl(&["describe", "widget", "w1", "-n", "desc"]).ok().to_string();
    for needle in ["Name:", "w1", "Namespace:", "desc", "tier=gold", "API Version:", "example.com/v1", "Kind:", "Widget", "Spec:", "Size:", "medium", "Description:", "shiny", "Events:", "Polished", "polished by the test"] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

/// One invalid manifest and the words kube-apiserver's rejection must contain.
struct Invalid {
    what: &'static str,
    spec: &'static str,
    expect: &'static [&'static str],
}

#[test]
fn invalid_objects_are_rejected_naming_the_field_or_rule() {
    let emu = setup("invalid");
    let cases = [
        Invalid { what: "type", spec: "  size: small\n  replicas: lots\n", expect: &["spec.replicas", "must be of type integer"] },
        Invalid { what: "enum", spec: "  size: huge\n", expect: &["spec.size", "Unsupported value: \"huge\"", "supported values", "\"small\""] },
        Invalid { what: "pattern", spec: "  size: small\n  color: Blue1\n", expect: &["spec.color", "should match '^[a-z]+$'"] },
        Invalid { what: "maxLength", spec: "  size: small\n  description: this text is far longer than twenty bytes\n", expect: &["spec.description", "Too long", "20"] },
        Invalid { what: "maxProperties", spec: "  size: small\n  tags: {a: x, b: x, c: x, d: x}\n", expect: &["spec.tags", "Too many: 4", "at most 3"] },
        Invalid { what: "maximum", spec: "  size: small\n  replicas: 11\n", expect: &["spec.replicas", "less than or equal to 10"] },
        Invalid { what: "minimum", spec: "  size: small\n  replicas: -1\n", expect: &["spec.replicas", "greater than or equal to 0"] },
        Invalid { what: "required", spec: "  replicas: 2\n", expect: &["spec.size", "Required value"] },
        Invalid { what: "CEL rule", spec: "  size: small\n  replicas: 2\n  minReplicas: 5\n", expect: &["spec: Invalid value: minReplicas must not exceed replicas"] },
        Invalid { what: "CEL messageExpression and reason", spec: "  size: small\n  tags: {Bad: one, ok: two}\n", expect: &["spec.tags: Forbidden: tag keys must be lower-case letters; 2 keys given"] },
    ];
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        let run = emu.apply(&widget("invalid", &name, case.spec), &[]);
        if run.status.success() {
            failures.push(format!("{}: accepted: {}", case.what, run.stdout));
            continue;
        }
        let missing: Vec<_> = case.expect.iter().filter(|e| !run.stderr.contains(**e)).collect();
        if !missing.is_empty() || !run.stderr.contains("is invalid") {
            failures.push(format!("{}: stderr lacks {missing:?} / \"is invalid\": {}", case.what, run.stderr));
        }
        let get = emu.kubectl(&["get", "widget", &name, "-n", "invalid"]);
        if get.status.success() {
            failures.push(format!("{}: the rejected object was stored", case.what));
        }
    }
    // Metadata is validated like any object's: the name and label keys.
    let bad_meta = [
        ("name", "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: Bad_Name\n  namespace: invalid\nspec:\n  size: small\n", &["metadata.name: Invalid value: \"Bad_Name\"", "RFC 1123"][..]),
        ("label key", "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: labelled\n  namespace: invalid\n  labels:\n    \"bad key\": x\nspec:\n  size: small\n", &["metadata.labels: Invalid value: \"bad key\""][..]),
    ];
    for (what, doc, expect) in bad_meta {
        let run = emu.apply(doc, &[]);
        if run.status.success() {
            failures.push(format!("{what}: accepted: {}", run.stdout));
        } else if let Some(missing) = expect.iter().find(|e| !run.stderr.contains(**e)) {
            failures.push(format!("{what}: stderr lacks {missing:?}: {}", run.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn transition_rule_keeps_serial_immutable() {
    let emu = setup("transition");
    emu.apply(&widget("transition", "w1", "  size: small\n  serial: sn-1\n"), &[]).ok();
    let changed = emu.apply(&widget("transition", "w1", "  size: small\n  serial: sn-2\n"), &[]);
    let err = changed.fails();
    assert!(err.contains("spec.serial") && err.contains("serial is immutable"), "{err}");
    assert_eq!(widget_json(&emu, "transition", "w1")["spec"]["serial"], "sn-1");
    // Other fields may still change.
    emu.apply(&widget("transition", "w1", "  size: large\n  serial: sn-1\n"), &[]).ok();
    assert_eq!(widget_json(&emu, "transition", "w1")["spec"]["size"], "large");
}

#[test]
fn unknown_fields_are_rejected_under_strict_and_pruned_otherwise() {
    let emu = setup("strict");
    // kubectl's default --validate=strict asks the server for fieldValidation=Strict.
    let strict = emu.apply(&widget("strict", "w1", "  size: small\n  bogus: 1\n"), &[]);
    let err = strict.fails();
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    let get = emu.kubectl(&["get", "widget", "w1", "-n", "strict"]);
    assert!(!get.status.success(), "a strictly rejected object was stored");

    // --validate=warn stores the object without the field and warns about it.
    let warn = emu.apply(&widget("strict", "w1", "  size: small\n  bogus: 1\n"), &["--validate=warn"]);
    warn.ok();
    assert!(warn.stderr.contains("unknown field \"spec.bogus\""), "{warn:?}");
    let obj = widget_json(&emu, "strict", "w1");
    assert!(obj["spec"].get("bogus").is_none(), "{obj}");

    // --validate=false (fieldValidation=Ignore) prunes silently.
    let ignore = emu.apply(&widget("strict", "w2", "  size: small\n  extra: {a: 1}\n"), &["--validate=false"]);
    ignore.ok();
    assert!(!ignore.stderr.contains("unknown field"), "{ignore:?}");
    assert!(widget_json(&emu, "strict", "w2")["spec"].get("extra").is_none());

    // Built-in kinds are decoded strictly too.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: strict\ndata:\n  a: b\nbogus: 1\n";
    let err = emu.apply(cm, &[]);
    let err = err.fails();
    assert!(err.contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap"), "{err}");
    assert!(err.contains("unknown field \"bogus\""), "{err}");
    let wrong_type = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: strict\ndata:\n  a: [1]\n";
    let err = emu.apply(wrong_type, &[]);
    assert!(err.fails().contains("cannot be handled as a ConfigMap"), "{err:?}");
}

#[test]
fn deleting_a_namespace_deletes_its_objects() {
    let emu = setup("doomed");
    emu.namespace("kept");
    emu.apply(&widget("doomed", "w1", "  size: small\n"), &[]).ok();
    emu.apply(&widget("kept", "w2", "  size: small\n"), &[]).ok();
    emu.kubectl(&["create", "configmap", "settings", "-n", "doomed", "--from-literal=a=b"]).ok();

    let out = emu.kubectl(&["delete", "namespace", "doomed"]);
    assert!(out.ok().contains("namespace \"doomed\" deleted"), "{out:?}");
    eventually("the namespace to be gone", || {
        let get = emu.kubectl(&["get", "namespace", "doomed"]);
        (!get.status.success() && get.stderr.contains("not found")).then_some(())
    });
    let left = emu.kubectl(&["get", "widgets,configmaps", "-n", "doomed", "-o", "name"]);
    assert_eq!(left.ok().trim(), "", "{left:?}");
    // Other namespaces are untouched.
    assert_eq!(widget_json(&emu, "kept", "w2")["spec"]["size"], "small");
    // Nothing can be created in a deleted namespace.
    let late = emu.apply(&widget("doomed", "w3", "  size: small\n"), &[]);
    assert!(late.fails().contains("namespaces \"doomed\" not found"), "{late:?}");
}

/// A CRD named `bads.example.com` whose `spec` property schema is `spec_schema` (YAML
/// indented for its place).
fn bad_crd(spec_schema: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: bads.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    plural: bads\n    singular: bad\n    kind: Bad\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec:\n{spec_schema}"
    )
}

#[test]
fn invalid_crds_are_rejected_naming_the_field() {
    let emu = Emulator::start();
    // Not structural: an object property without a type.
    let untyped = emu.apply(&bad_crd("              properties:\n                size:\n                  type: string\n"), &[]);
    let err = untyped.fails();
    assert!(err.contains("CustomResourceDefinition \"bads.example.com\" is invalid"), "{err}");
    // One version: kube-apiserver reports its schema where it hoists it, spec.validation.
    assert!(err.contains("spec.validation.openAPIV3Schema.properties[spec].type: Required value"), "{err}");

    // A CEL rule that does not compile.
    let cel = emu.apply(
        &bad_crd("              type: object\n              x-kubernetes-validations:\n                - rule: self.nonsense(\n"),
        &[],
    );
    let err = cel.fails();
    assert!(err.contains("spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"), "{err}");
    assert!(err.contains("compilation failed"), "{err}");

    // Neither was stored, and a valid CRD still goes through.
    let get = emu.kubectl(&["get", "crd", "bads.example.com"]);
    assert!(get.fails().contains("not found"), "{get:?}");
    emu.apply(&bad_crd("              type: object\n"), &[]).ok();
}

#[test]
fn built_in_kinds_are_created_by_kubectl_and_print_the_server_columns() {
    let emu = Emulator::start();
    let ns = emu.namespace("builtins");
    // kubectl's generators send protobuf (decoded by the emulator for these kinds)...
    emu.kubectl(&["create", "configmap", "settings", "--from-literal=a=1", "--from-literal=b=2", "-n", &ns]).ok();
    emu.kubectl(&["create", "serviceaccount", "robot", "-n", &ns]).ok();
    // ...while apply sends JSON through kubectl's dynamic client.
    let manifests = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: builtins, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: robot
      containers:
        - name: web
          image: registry.example.com/web:1
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: builtins}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: builtins}
rules:
  - {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: builtins}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
  - {kind: ServiceAccount, name: robot, namespace: builtins}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: builtins}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"#;
    let applied = emu.apply(manifests, &[]);
    assert_eq!(applied.ok().lines().count(), 5, "{applied:?}");
    // Re-applying is a no-op for every kind.
    let again = emu.apply(manifests, &[]);
    assert!(again.ok().lines().all(|l| l.ends_with(" unchanged")), "{again:?}");

    // (kind, name, header, leading cells of the row) as kube-apiserver 1.33 prints them.
    let tables: [(&str, &str, &[&str], &[&str]); 7] = [
        ("deployment", "web", &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], &["web", "0/2", "0", "0"]),
        ("configmap", "settings", &["NAME", "DATA", "AGE"], &["settings", "2"]),
        ("serviceaccount", "robot", &["NAME", "SECRETS", "AGE"], &["robot", "0"]),
        ("service", "web", &["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], &["web", "ClusterIP"]),
        ("role", "reader", &["NAME", "CREATED", "AT"], &["reader"]),
        ("rolebinding", "reader", &["NAME", "ROLE", "AGE"], &["reader", "Role/reader"]),
        ("poddisruptionbudget", "web", &["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"], &["web", "1", "N/A", "0"]),
    ];
    let mut failures = Vec::new();
    for (kind, name, header, cells) in tables {
        let out = emu.kubectl(&["get", kind, name, "-n", &ns]).ok().to_string();
        let mut lines = out.lines();
        let got_header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        let got_row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        if got_header != header || !got_row.starts_with(cells) {
            failures.push(format!("{kind}:\n{out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The objects carry what kubectl built.
    let svc = emu.kubectl(&["get", "service", "web", "-n", &ns, "-o", "json"]).json();
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert!(svc["spec"]["clusterIP"].as_str().is_some_and(|ip| !ip.is_empty()), "{svc}");
    let deploy = emu.kubectl(&["get", "deployment", "web", "-n", &ns, "-o", "json"]).json();
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/web:1");
}

#[test]
fn edit_changes_the_object_and_owns_what_it_changed() {
    let emu = setup("edit");
    emu.apply(&widget("edit", "w1", "  size: small\n"), &["--server-side"]).ok();
    // kubectl runs $EDITOR (through a shell when it has arguments) on a temporary file.
    let out = emu
        .kubectl_cmd(&["edit", "widget", "w1", "-n", "edit"])
        .env("EDITOR", "sed -i -e 's/size: small/size: large/'")
        .output()
        .expect("run kubectl edit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("widget.example.com/w1 edited"), "{stdout}");
    let obj = widget_json(&emu, "edit", "w1");
    assert_eq!(obj["spec"]["size"], "large");
    assert_eq!(obj["metadata"]["generation"], 2);
    // The edited field now belongs to kubectl-edit, so re-applying the old value conflicts.
    let reapply = emu.apply(&widget("edit", "w1", "  size: small\n"), &["--server-side"]);
    let err = reapply.fails();
    assert!(err.contains("conflict with \"kubectl-edit\"") && err.contains(".spec.size"), "{err}");
}

#[test]
fn bearer_tokens_and_secret_data_never_reach_the_emulator_log() {
    // The most verbose log the emulator can write.
    let emu = Emulator::start_with_env(&[("RUST_LOG", "trace")]);
    emu.namespace("vault");
    let secret_value = "s3cr3t-v4lue";
    emu.kubectl(&["create", "secret", "generic", "creds", "-n", "vault", &format!("--from-literal=password={secret_value}")])
        .ok();
    emu.kubectl(&["get", "secret", "creds", "-n", "vault", "-o", "json"]).json();
    emu.kubectl(&["patch", "secret", "creds", "-n", "vault", "--type=merge", "-p", r#"{"stringData":{"password":"an0ther-s3cret"}}"#])
        .ok();
    let kubeconfig: Value =
        serde_yaml::from_str(&std::fs::read_to_string(emu.kubeconfig()).expect("kubeconfig")).expect("kubeconfig yaml");
    let token = kubeconfig["users"][0]["user"]["token"].as_str().expect("bearer token in kubeconfig").to_string();
    assert!(token.len() >= 16, "the kubeconfig token is too short to be a credential: {token:?}");

    let log = emu.log();
    // The log does describe these requests, so the checks below are not vacuous.
    assert!(log.contains("secrets"), "the emulator logged nothing about the requests:\n{log}");
    for (what, needle) in [
        ("the bearer token", token.as_str()),
        ("secret data", secret_value),
        ("secret data (base64)", "czNjcjN0LXY0bHVl"),
        ("patched secret data", "an0ther-s3cret"),
    ] {
        assert!(!log.contains(needle), "{what} appears in the emulator log");
    }
}

#[test]
fn deleting_the_crd_deletes_its_objects() {
    let emu = setup("crd-gone");
    emu.apply(&widget("crd-gone", "w1", "  size: small\n"), &[]).ok();
    let out = emu.kubectl(&["delete", "crd", "widgets.example.com"]);
    assert!(out.ok().contains("\"widgets.example.com\" deleted"), "{out:?}");
    // The group/version leaves discovery and its resource path answers 404 (kubectl still
    // knows the type from its discovery cache, so it asks and reports the 404).
    eventually("the widgets resource to disappear", || {
        let raw = emu.kubectl(&["get", "--raw", "/apis/example.com/v1"]);
        (!raw.status.success() && raw.stderr.contains("NotFound")).then_some(())
    });
    let get = emu.kubectl(&["get", "widgets", "-n", "crd-gone"]);
    assert!(get.fails().contains("the server could not find the requested resource"), "{get:?}");
    // Re-creating the CRD does not bring the old objects back.
    emu.install_widget_crd();
    let left = emu.kubectl(&["get", "widgets", "-n", "crd-gone", "-o", "name"]);
    assert_eq!(left.ok().trim(), "", "{left:?}");
}
