//! `connection-operator import` as its own process against the REAL control plane and the
//! provider emulators: the manifests it writes (listed for Nango and Datagrid, read by id for
//! Mielto and Are.na), applied back with kubectl, bring every Connection to Ready with zero
//! upstream writes; `Observe` is the default; bad input is a clear error that writes nothing.

mod cli_support;

use cli_support::Env;
use connection_testkit::providers::{PROVIDERS, writes};
use serde_json::{Value, json};

fn docs(stream: &str) -> Vec<Value> {
    connection_operator::plan::parse("import", stream)
        .expect("import printed YAML")
        .into_iter()
        .map(|d| d.object)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_manifests_applied_back_are_ready_with_zero_upstream_writes() {
    let env = Env::start("import-roundtrip").await;
    let p = &env.providers;
    // Keys and values a YAML 1.1 reader (kubectl) would take for booleans, octal numbers or
    // timestamps if they were written bare.
    let tricky = json!({"region": "eu", "mapping": {"a": [1, 2]}, "n": 1.5, "on": "off", "mode": "0755", "when": "2024-01-01", "y": [true, "no"]});
    p.seed("nango", "acme-sf", json!({"provider_config_key": "salesforce", "metadata": tricky})).await;
    p.seed("nango", "acme_sf", json!({"provider_config_key": "hubspot", "metadata": null})).await;
    p.seed("nango", "Beta Corp 7", json!({"provider_config_key": "hubspot", "metadata": {"tier": "gold"}})).await;
    p.seed("datagrid", "conn_01A", json!({"name": "Acme Drive"})).await;
    p.seed("datagrid", "conn_01B", json!({"name": "Beta Drive"})).await;
    p.seed(
        "mielto",
        "conn_slack",
        json!({"label": "Slack", "status": "active", "config": {"channel": "#ops", "n": {"deep": true}}}),
    )
    .await;
    p.seed("mielto", "conn_bare", json!({"label": "Bare", "status": "inactive"})).await;
    p.seed("arena", "101", json!({"metadata": {"reviewed": true, "score": 0.5, "by": "ops"}})).await;
    p.seed("arena", "102", json!({"metadata": null})).await;
    let arena_cp = env
        .cluster_provider(
            "arena",
            json!({"type": "arena", "baseUrl": p.base_url("arena"), "credentialsRef": {"name": "arena-credentials", "namespace": env.ns(), "key": "token"}}),
        )
        .await;

    let ns = env.ns().to_string();
    let nango = env.run(&["import", "--provider", "nango", "--namespace", &ns], None).await;
    assert_eq!(nango.code, 0, "{nango:?}");
    assert_eq!(nango.stderr.trim(), "imported 3 Connection(s)");
    let datagrid = env.run(&["import", "--provider", "provider/datagrid", "-n", &ns, "--policy", "Manage"], None).await;
    assert_eq!(datagrid.code, 0, "{datagrid:?}");
    let mielto = env.run(&["import", "--provider", "mielto", "-n", &ns, "--ids", "conn_slack,conn_bare"], None).await;
    assert_eq!(mielto.code, 0, "{mielto:?}");
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("arena");
    let arena = env
        .run(
            &[
                "import",
                "--provider",
                &format!("clusterprovider/{arena_cp}"),
                "-n",
                &ns,
                "--ids",
                "101,102",
                "--out",
                out_dir.to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert_eq!(arena.code, 0, "{arena:?}");
    assert!(arena.stdout.is_empty(), "with --out nothing goes to stdout");

    // The manifests declare what is upstream, Observe unless asked otherwise.
    let nango_docs = docs(&nango.stdout);
    let names: Vec<&str> = nango_docs.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["beta-corp-7", "acme-sf", "acme-sf-2"], "sorted by id; unique DNS names");
    assert_eq!(nango_docs[0]["spec"]["connectionId"], "Beta Corp 7");
    assert_eq!(nango_docs[1]["spec"]["nango"], json!({"providerConfigKey": "salesforce", "metadata": tricky}));
    assert_eq!(
        nango_docs[2]["spec"],
        json!({"providerRef": {"name": "nango"}, "connectionId": "acme_sf", "managementPolicy": "Observe",
               "nango": {"providerConfigKey": "hubspot"}})
    );
    let datagrid_docs = docs(&datagrid.stdout);
    assert_eq!(datagrid_docs.len(), 2);
    assert!(datagrid_docs.iter().all(|d| d["spec"]["managementPolicy"] == "Manage"));
    assert_eq!(datagrid_docs[0]["spec"]["datagrid"], json!({"name": "Acme Drive"}));
    let mielto_docs = docs(&mielto.stdout);
    assert_eq!(mielto_docs[0]["spec"]["mielto"], json!({"label": "Bare", "status": "inactive"}));
    assert_eq!(
        mielto_docs[1]["spec"]["mielto"],
        json!({"label": "Slack", "status": "active", "config": {"channel": "#ops", "n": {"deep": true}}})
    );
    let arena_101 = std::fs::read_to_string(out_dir.join("101.yaml")).unwrap();
    let arena_101 = &docs(&arena_101)[0];
    assert_eq!(arena_101["spec"]["providerRef"], json!({"kind": "ClusterProvider", "name": arena_cp}));
    assert_eq!(arena_101["spec"]["arena"], json!({"metadata": {"reviewed": true, "score": 0.5, "by": "ops"}}));
    assert!(out_dir.join("102.yaml").exists());
    // Importing read, and only read.
    for provider in PROVIDERS {
        assert!(writes(&env.providers.journal(provider).await).is_empty(), "import wrote to {provider}");
        env.providers.clear_journal(provider).await;
    }

    // Applied back with kubectl: every Connection Ready, zero upstream writes.
    let kubectl = env.kubectl();
    for stream in [&nango.stdout, &datagrid.stdout, &mielto.stdout] {
        let applied = kubectl.run_async(&["apply", "-f", "-"], Some(stream)).await;
        assert!(applied.ok, "{}", applied.stderr);
    }
    let applied = kubectl.run_async(&["apply", "-f", out_dir.to_str().unwrap()], None).await;
    assert!(applied.ok, "{}", applied.stderr);
    env.start_operator();
    let all = ["beta-corp-7", "acme-sf", "acme-sf-2", "conn-01a", "conn-01b", "conn-slack", "conn-bare", "101", "102"];
    for name in all {
        env.ready_reason(name, "InSync").await;
    }
    for provider in PROVIDERS {
        let journal = env.providers.journal(provider).await;
        assert!(!journal.is_empty(), "{provider} was read");
        assert!(writes(&journal).is_empty(), "applying the import wrote to {provider}: {journal:?}");
    }
    // And a plan of the imported manifests agrees: nothing to change.
    let run = env.run(&["plan", "-f", "-"], Some(&nango.stdout)).await;
    assert_eq!(run.code, 0, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_import_requests_are_clear_errors_that_write_nothing() {
    let env = Env::start("import-errors").await;
    env.providers.seed("arena", "101", json!({"metadata": {"a": 1}})).await;
    env.providers.seed("mielto", "m1", json!({"label": "M"})).await;
    let ns = env.ns().to_string();

    let run = env.run(&["import", "--provider", "mielto", "-n", &ns], None).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.trim(), "error: mielto cannot list the account's connections: name them with --ids a,b,...");
    assert!(run.stdout.is_empty());
    let run = env.run(&["import", "--provider", "arena", "-n", &ns, "--ids", "101,999"], None).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.trim(), "error: not found upstream: 999");
    assert!(run.stdout.is_empty(), "nothing is printed when one id is missing");
    let run = env.run(&["import", "--provider", "nope", "-n", &ns], None).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.trim(), format!("error: Provider {ns}/nope not found"));
    let run = env.run(&["import", "--provider", "deployment/x", "-n", &ns], None).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--provider is NAME, provider/NAME or clusterprovider/NAME"), "{run:?}");
    // A missing credential key is named, the token never shown.
    env.provider("broken", "arena", json!({"credentialsRef": {"name": "arena-credentials", "key": "nokey"}})).await;
    let run = env.run(&["import", "--provider", "broken", "-n", &ns, "--ids", "101"], None).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.trim(), format!("error: Secret {ns}/arena-credentials has no key nokey"));

    // A provider nobody answers at: the reason, nothing printed.
    env.provider("down", "nango", json!({"baseUrl": "http://127.0.0.1:9/nango"})).await;
    let run = env.run(&["import", "--provider", "down", "-n", &ns], None).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "error: reading upstream: the provider is unavailable: cannot connect to the provider"
    );
    assert!(run.stdout.is_empty());

    // --out never overwrites: a second import into the same directory writes nothing.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let first = env.run(&["import", "--provider", "arena", "-n", &ns, "--ids", "101", "--out", dir], None).await;
    assert_eq!(first.code, 0, "{first:?}");
    std::fs::write(out.path().join("101.yaml"), "# edited by hand\n").unwrap();
    let second = env.run(&["import", "--provider", "mielto", "-n", &ns, "--ids", "m1"], None).await;
    assert_eq!(second.code, 0, "{second:?}");
    let again = env.run(&["import", "--provider", "arena", "-n", &ns, "--ids", "101", "--out", dir], None).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("refusing to overwrite existing files"), "{again:?}");
    assert_eq!(std::fs::read_to_string(out.path().join("101.yaml")).unwrap(), "# edited by hand\n");
    for provider in PROVIDERS {
        assert!(writes(&env.providers.journal(provider).await).is_empty(), "import wrote to {provider}");
    }
}
