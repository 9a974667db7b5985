//! The provider sandbox framework over HTTP: the admin API (seeding, journal, faults,
//! rate-limit configuration, tokens), connection resets, prefixes, and the
//! `connection-sandbox providers` command line. Driven through the Nango and Datagrid
//! emulators; the behaviour is common to all four.

mod providers_support;

use std::time::Duration;

use providers_support::{Env, header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

async fn nango() -> Env {
    let env = Env::start("nango").await;
    env.seed("acme", json!({"provider_config_key": "salesforce", "metadata": {"a": 1}})).await;
    env
}

const LIST: &str = "/connections";

#[tokio::test]
async fn seeding_stores_reads_back_and_deletes_raw_state() {
    let env = nango().await;
    assert_eq!(env.stored("acme").await["metadata"], json!({"a": 1}));

    // Ids may contain slashes (Nango allows them); the admin path takes the rest of the URL.
    env.seed("team/acme@corp", json!({"provider_config_key": "salesforce"})).await;
    assert_eq!(env.stored("team/acme@corp").await["provider_config_key"], "salesforce");

    let bad = env.admin_put("connections/x", json!({"metadata": {}})).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("provider_config_key"));
    let not_json = env.http.put(env.url("/_sandbox/connections/x")).body("{").send().await.unwrap();
    assert_eq!(not_json.status(), 400);

    let deleted = env.http.delete(env.url("/_sandbox/connections/acme")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(env.http.get(env.url("/_sandbox/connections/acme")).send().await.unwrap().status(), 404);
    assert_eq!(env.http.delete(env.url("/_sandbox/connections/acme")).send().await.unwrap().status(), 404);
    assert!(env.journal().await.is_empty(), "admin requests are not journaled");
}

#[tokio::test]
async fn journal_records_api_requests_oldest_first() {
    let env = nango().await;
    let before = providers_support::unix_now();
    env.api(Method::GET, "/connections/acme?provider_config_key=salesforce").send().await.unwrap();
    env.api(Method::PATCH, "/connections/metadata")
        .json(&json!({"connection_id": "acme", "provider_config_key": "salesforce", "metadata": {"b": 2}}))
        .send()
        .await
        .unwrap();
    env.http.get(env.url(LIST)).send().await.unwrap(); // 401: journaled too
    let after = providers_support::unix_now();

    let journal = env.journal().await;
    assert_eq!(journal.len(), 3);
    assert_eq!(journal[0]["method"], "GET");
    assert_eq!(journal[0]["path"], "/connections/acme");
    assert_eq!(journal[0]["query"], "provider_config_key=salesforce");
    assert_eq!(journal[0]["status"], 200);
    assert_eq!(journal[0]["body"], Value::Null);
    assert_eq!(journal[1]["method"], "PATCH");
    assert_eq!(journal[1]["query"], Value::Null);
    assert_eq!(
        journal[1]["body"],
        json!({"connection_id": "acme", "provider_config_key": "salesforce", "metadata": {"b": 2}})
    );
    assert_eq!(journal[2]["status"], 401);
    let at: Vec<f64> = journal.iter().map(|e| e["at"].as_f64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "oldest first: {at:?}");
    assert!(at[0] >= before - 0.001 && at[2] <= after + 0.001);
    assert_eq!((at[0] * 1000.0).round() / 1000.0, at[0], "millisecond precision");

    assert_eq!(env.http.delete(env.url("/_sandbox/requests")).send().await.unwrap().status(), 204);
    assert!(env.journal().await.is_empty());
}

#[tokio::test]
async fn requests_in_flight_are_counted_with_the_most_at_once() {
    let env = nango().await;
    let in_flight = || async {
        let answer = env.http.get(env.url("/_sandbox/requests/in-flight")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        (body["inFlight"].as_u64().unwrap(), body["maxInFlight"].as_u64().unwrap())
    };
    assert_eq!(in_flight().await, (0, 0));
    // Three slow answers at once; the count is read while they are under way.
    env.admin_put("faults", json!({"method": "GET", "path": LIST, "latencyMs": 1000, "count": 3})).await;
    let slow: Vec<_> = (0..3).map(|_| tokio::spawn(env.api(Method::GET, LIST).send())).collect();
    let mut seen = (0, 0);
    for _ in 0..100 {
        seen = in_flight().await;
        if seen.0 == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, (3, 3), "three requests in flight together");
    for request in slow {
        assert_eq!(request.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(in_flight().await, (0, 3), "answered: none in flight, the most was three");
    env.api(Method::GET, LIST).send().await.unwrap();
    assert_eq!(in_flight().await, (0, 3), "one at a time adds nothing to the most");
    assert_eq!(env.http.delete(env.url("/_sandbox/requests")).send().await.unwrap().status(), 204);
    assert_eq!(in_flight().await, (0, 0), "clearing the journal starts the count again");
}

#[tokio::test]
async fn faults_answer_with_status_count_and_retry_after_then_stop() {
    let env = nango().await;
    let queued = env
        .admin_put("faults", json!({"method": "GET", "path": LIST, "status": 503, "count": 2, "retryAfter": 7}))
        .await;
    assert_eq!(queued.status(), 200);
    for _ in 0..2 {
        let response = env.api(Method::GET, LIST).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(header(&response, "retry-after").as_deref(), Some("7"));
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "server_error");
    }
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 200);
    let statuses: Vec<Value> = env.journal().await.iter().map(|e| e["status"].clone()).collect();
    assert_eq!(statuses, [json!(503), json!(503), json!(200)]);
}

#[tokio::test]
async fn faults_match_by_method_and_path_prefix_in_queue_order() {
    let env = nango().await;
    env.admin_put(
        "faults",
        json!([
            {"method": "PATCH", "path": "/connections/*", "status": 500},
            {"path": "*", "status": 502},
        ]),
    )
    .await;
    // GET does not match the PATCH fault, so the catch-all answers it.
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 502);
    let patch = env
        .api(Method::PATCH, "/connections/metadata")
        .json(&json!({"connection_id": "acme", "provider_config_key": "salesforce", "metadata": {"x": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 500);
    assert_eq!(env.stored("acme").await["metadata"], json!({"a": 1}), "a faulted write changes nothing");
    let remaining: Value = env.http.get(env.url("/_sandbox/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!(remaining, json!([]));

    env.admin_put("faults", json!({"path": LIST, "status": 500, "count": 5})).await;
    assert_eq!(env.http.delete(env.url("/_sandbox/faults")).send().await.unwrap().status(), 204);
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 200);

    for bad in [
        json!({"path": LIST}),
        json!({"path": LIST, "status": 99}),
        json!({"path": LIST, "status": 500, "count": 0}),
        json!({"path": LIST, "status": 500, "unknown": 1}),
        json!({"path": "connections", "reset": true}),
    ] {
        assert_eq!(env.admin_put("faults", bad.clone()).await.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn a_fault_can_serve_a_raw_malformed_body() {
    let env = Env::start("datagrid").await;
    env.seed("conn_1", json!({"name": "A"})).await;
    env.admin_put("faults", json!({"path": "/connections/conn_1", "status": 200, "body": "{\"object\": \"conn"})).await;
    let response = env.api(Method::GET, "/connections/conn_1").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("application/json"));
    assert_eq!(response.text().await.unwrap(), "{\"object\": \"conn");
    // Without a body, the provider's own error shape is used.
    env.admin_put("faults", json!({"path": "/connections/conn_1", "status": 500})).await;
    let body: Value = env.api(Method::GET, "/connections/conn_1").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status_code"], 500);
}

#[tokio::test]
async fn latency_delays_the_answer_and_can_exceed_a_client_timeout() {
    let env = nango().await;
    // Latency alone delays the real answer.
    env.admin_put("faults", json!({"path": LIST, "latencyMs": 50})).await;
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 200);
    // Latency far beyond the client's timeout makes the client give up.
    env.admin_put("faults", json!({"path": LIST, "latencyMs": 30000, "status": 200})).await;
    let error = env.api(Method::GET, LIST).timeout(Duration::from_millis(300)).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 200, "the fault was used up");
}

#[tokio::test]
async fn reset_aborts_the_connection_with_rst_and_no_response() {
    let env = nango().await;
    env.admin_put("faults", json!({"path": LIST, "reset": true, "count": 2})).await;

    // A raw socket sees ECONNRESET (a RST), not an orderly end of stream (FIN).
    let mut stream = tokio::net::TcpStream::connect(env.sandbox.addr()).await.unwrap();
    stream.write_all(b"GET /nango/connections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await.expect("server never reset");
    let error = read.expect_err("expected a connection reset, got an orderly close");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(buf.is_empty(), "no response bytes before the reset");

    // An HTTP client sees a request error without any status.
    let error = env.api(Method::GET, LIST).send().await.unwrap_err();
    assert!(error.status().is_none() && !error.is_timeout(), "{error}");

    // The next request, on a new connection, is served.
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 200);
    let statuses: Vec<Value> = env.journal().await.iter().map(|e| e["status"].clone()).collect();
    assert_eq!(statuses, [Value::Null, Value::Null, json!(200)]);
}

#[tokio::test]
async fn rate_limit_configuration_can_be_read_disabled_and_restored() {
    let env = nango().await;
    let current: Value = env.http.get(env.url("/_sandbox/rate-limit")).send().await.unwrap().json().await.unwrap();
    assert_eq!(current, Value::Null, "null = the provider's documented default");
    assert_eq!(header(&env.api(Method::GET, LIST).send().await.unwrap(), "x-ratelimit-limit").as_deref(), Some("200"));

    assert_eq!(env.admin_put("rate-limit", json!({"limit": 5, "windowSeconds": 0})).await.status(), 400);
    assert_eq!(env.admin_put("rate-limit", json!({"limit": 5, "window": 1})).await.status(), 400);

    env.rate_limit(0, 60.0).await;
    for _ in 0..5 {
        let response = env.api(Method::GET, LIST).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(header(&response, "x-ratelimit-limit").is_none(), "limit 0 disables limiting and its headers");
    }
    env.rate_limit(1, 60.0).await;
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 200);
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 429);
    assert_eq!(env.http.delete(env.url("/_sandbox/rate-limit")).send().await.unwrap().status(), 204);
    let restored = env.api(Method::GET, LIST).send().await.unwrap();
    assert_eq!(restored.status(), 200, "restoring the default also starts a fresh window");
    assert_eq!(header(&restored, "x-ratelimit-limit").as_deref(), Some("200"));
}

#[tokio::test]
async fn clearing_tokens_accepts_any_token_again() {
    let env = nango().await;
    env.admin_put("tokens", json!({"tokens": ["only"]})).await;
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(env.admin_put("tokens", json!({"token": ["typo"]})).await.status(), 400);
    assert_eq!(env.http.delete(env.url("/_sandbox/tokens")).send().await.unwrap().status(), 204);
    assert_eq!(env.api(Method::GET, LIST).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn providers_are_isolated_under_their_prefixes() {
    let env = nango().await;
    let datagrid = env.sandbox.base_url("datagrid");
    assert!(datagrid.ends_with("/datagrid/v1"));
    env.http
        .put(format!("{datagrid}/_sandbox/rate-limit"))
        .json(&json!({"limit": 1, "windowSeconds": 60}))
        .send()
        .await
        .unwrap();
    // Nango keeps its own default limit and journal.
    assert_eq!(header(&env.api(Method::GET, LIST).send().await.unwrap(), "x-ratelimit-limit").as_deref(), Some("200"));
    let datagrid_journal: Vec<Value> =
        env.http.get(format!("{datagrid}/_sandbox/requests")).send().await.unwrap().json().await.unwrap();
    assert!(datagrid_journal.is_empty());
    let unknown = env.http.get(format!("http://{}/nothing-here", env.sandbox.addr())).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_command_line_prints_its_address_serves_and_stops_on_sigterm() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_connection-sandbox"))
        .args(["providers", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap();
    let addr = line.strip_prefix("listening on http://").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert_ne!(addr.port(), 0);

    let http = reqwest::Client::new();
    for (prefix, path) in [("nango", "/connections"), ("datagrid/v1", "/connections")] {
        let response = http.get(format!("http://{addr}/{prefix}{path}")).bearer_auth("k").send().await.unwrap();
        assert_eq!(response.status(), 200, "{prefix}");
    }

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
}
