//! The Datagrid emulator over HTTP (docs/providers.md, Datagrid): read, rename, the
//! cursor-paged list, teamspace scoping, auth, and the sliding window per teamspace, route and
//! method.

mod providers_support;

use providers_support::{Env, header, header_u64, unix_now};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const NOT_FOUND: &str = "Not found. The requested connection does not exist, or the authenticated user does not have permission to access it.";

async fn datagrid() -> Env {
    let env = Env::start("datagrid").await;
    env.seed("conn_1", json!({"name": "Acme Drive", "teamspace_id": "ts_a", "connector_id": "google_drive"})).await;
    env.seed("conn_2", json!({"name": "Acme Slack", "teamspace_id": "ts_a", "connector_id": "slack"})).await;
    env.seed("conn_3", json!({"name": "Beta Drive", "teamspace_id": "ts_b", "connector_id": "google_drive"})).await;
    env
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn ids(body: &Value) -> Vec<String> {
    body["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn reads_a_connection_in_the_documented_shape() {
    let env = datagrid().await;
    let response = env.api(Method::GET, "/connections/conn_1").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("200"));
    assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("199"));
    assert!(header(&response, "retry-after").is_none(), "Retry-After only once Remaining is 0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "connection");
    assert_eq!(body["id"], "conn_1");
    assert_eq!(body["name"], "Acme Drive");
    assert_eq!(body["teamspace_id"], "ts_a");
    assert_eq!(body["connector_id"], "google_drive");
    assert_eq!(body["valid"], true);
    assert!(body["created_at"].is_string() && body["updated_at"].is_string());

    let (status, body) = json_of(env.api(Method::GET, "/connections/conn_missing").send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], NOT_FOUND);
}

#[tokio::test]
async fn another_teamspace_looks_exactly_like_a_missing_connection() {
    let env = datagrid().await;
    let foreign =
        env.api(Method::GET, "/connections/conn_3").header("Datagrid-Teamspace", "ts_a").send().await.unwrap();
    let missing = env.api(Method::GET, "/connections/nope").header("Datagrid-Teamspace", "ts_a").send().await.unwrap();
    assert_eq!(foreign.status(), 404);
    let (foreign, missing) = (json_of(foreign).await, json_of(missing).await);
    assert_eq!(foreign, missing);

    let own = env.api(Method::GET, "/connections/conn_3").header("Datagrid-Teamspace", "ts_b").send().await.unwrap();
    assert_eq!(own.status(), 200);

    let rename = env
        .api(Method::PATCH, "/connections/conn_3")
        .header("Datagrid-Teamspace", "ts_a")
        .json(&json!({"name": "Hijack"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rename.status(), 404);
    assert_eq!(env.stored("conn_3").await["name"], "Beta Drive");
}

#[tokio::test]
async fn patch_renames_and_validates_the_body() {
    let env = datagrid().await;
    let (status, body) = json_of(
        env.api(Method::PATCH, "/connections/conn_1")
            .json(&json!({"name": "Acme Drive EU", "ignored": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Acme Drive EU");
    assert_eq!(body["object"], "connection");
    assert_eq!(env.stored("conn_1").await["name"], "Acme Drive EU");

    // Same name again: idempotent, same answer, updated_at unchanged.
    let again = json_of(
        env.api(Method::PATCH, "/connections/conn_1").json(&json!({"name": "Acme Drive EU"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(again, (StatusCode::OK, body));

    for bad in [json!({}), json!({"name": 5}), json!({"name": ""}), json!({"name": "  "}), json!(["name"])] {
        let (status, body) =
            json_of(env.api(Method::PATCH, "/connections/conn_1").json(&bad).send().await.unwrap()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["status_code"], 400);
    }
    let malformed = env
        .api(Method::PATCH, "/connections/conn_1")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let text = env
        .api(Method::PATCH, "/connections/conn_1")
        .header("content-type", "text/plain")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    assert_eq!(env.stored("conn_1").await["name"], "Acme Drive EU", "failed writes change nothing");

    let missing = env.api(Method::PATCH, "/connections/nope").json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn list_pages_by_cursor_and_filters() {
    let env = datagrid().await;
    for i in 4..=6 {
        env.seed(&format!("conn_{i}"), json!({"name": format!("n{i}"), "teamspace_id": "ts_a"})).await;
    }
    let (status, body) = json_of(env.api(Method::GET, "/connections").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list");
    assert_eq!(ids(&body), ["conn_1", "conn_2", "conn_3", "conn_4", "conn_5", "conn_6"]);
    assert_eq!(body["has_more"], false);

    // Follow `after` the way the SDK does until has_more is false.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/connections?limit=4&after={a}"),
            None => "/connections?limit=4".to_owned(),
        };
        let (_, page) =
            json_of(env.api(Method::GET, &path).header("Datagrid-Teamspace", "ts_a").send().await.unwrap()).await;
        let page_ids = ids(&page);
        seen.extend(page_ids.clone());
        if page["has_more"] == false {
            break;
        }
        after = page_ids.last().cloned();
    }
    assert_eq!(seen, ["conn_1", "conn_2", "conn_4", "conn_5", "conn_6"]);

    let (_, before) = json_of(env.api(Method::GET, "/connections?limit=2&before=conn_5").send().await.unwrap()).await;
    assert_eq!(
        (ids(&before), before["has_more"].clone()),
        (vec!["conn_3".to_owned(), "conn_4".to_owned()], json!(true))
    );
    let (_, slack) = json_of(env.api(Method::GET, "/connections?connector_id=slack").send().await.unwrap()).await;
    assert_eq!(ids(&slack), ["conn_2"]);
    for bad in ["limit=0", "limit=101", "limit=x", "after=conn_1&before=conn_2", "after=unknown"] {
        let response = env.api(Method::GET, &format!("/connections?{bad}")).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn authentication_and_read_only_tokens() {
    let env = datagrid().await;
    let (status, body) = json_of(env.http.get(env.url("/connections/conn_1")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["status_code"], 401);
    env.admin_put("tokens", json!({"tokens": ["dg-key"], "readOnly": ["dg-read"]})).await;
    assert_eq!(env.api(Method::GET, "/connections/conn_1").send().await.unwrap().status(), 401);
    let read = env.http.get(env.url("/connections/conn_1")).bearer_auth("dg-read").send().await.unwrap();
    assert_eq!(read.status(), 200);
    let write = env
        .http
        .patch(env.url("/connections/conn_1"))
        .bearer_auth("dg-read")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
    let write = env
        .http
        .patch(env.url("/connections/conn_1"))
        .bearer_auth("dg-key")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);
}

#[tokio::test]
async fn sliding_window_per_teamspace_route_and_method() {
    let env = datagrid().await;
    env.rate_limit(2, 30.0).await;
    let get = |path: &'static str, ts: &'static str| env.api(Method::GET, path).header("Datagrid-Teamspace", ts).send();

    let first = get("/connections/conn_1", "ts_a").await.unwrap();
    assert_eq!(header(&first, "x-ratelimit-remaining").as_deref(), Some("1"));
    assert!(header(&first, "retry-after").is_none());
    // A different concrete path of the same route shares the window.
    let second = get("/connections/conn_2", "ts_a").await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-ratelimit-remaining").as_deref(), Some("0"));
    let retry_after = header_u64(&second, "retry-after");
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after} once Remaining is 0");
    let reset = header_u64(&second, "x-ratelimit-reset");
    assert!(reset as f64 >= unix_now() && reset as f64 <= unix_now() + 31.0);

    let limited = get("/connections/conn_1", "ts_a").await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(header(&limited, "retry-after").is_some());
    assert_eq!(
        limited.json::<Value>().await.unwrap(),
        json!({
        "status_code": 429, "statusCode": 429, "error": "rate_limit_exceeded", "message": "Rate limit exceeded",
        "mitigation": "Implement exponential backoff and retry with delays", "retryable": true,
        "details": {"reason": "Rate limit exceeded. Please retry after the current window resets."}})
    );

    // Other method, other route, other teamspace: separate windows.
    let patch = env
        .api(Method::PATCH, "/connections/conn_1")
        .header("Datagrid-Teamspace", "ts_a")
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    assert_eq!(header(&patch, "x-ratelimit-remaining").as_deref(), Some("1"));
    assert_eq!(get("/connections", "ts_a").await.unwrap().status(), 200);
    assert_eq!(get("/connections/conn_3", "ts_b").await.unwrap().status(), 200);

    // The journal shows the rejected request was answered 429 and nothing else changed.
    let statuses: Vec<u64> = env.journal().await.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 429, 200, 200, 200]);
}

#[tokio::test]
async fn sliding_window_frees_capacity_as_requests_age_out() {
    let env = datagrid().await;
    env.rate_limit(1, 0.5).await;
    assert_eq!(env.api(Method::GET, "/connections/conn_1").send().await.unwrap().status(), 200);
    assert_eq!(env.api(Method::GET, "/connections/conn_1").send().await.unwrap().status(), 429);
    let mut accepted = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if env.api(Method::GET, "/connections/conn_1").send().await.unwrap().status() == 200 {
            accepted = true;
            break;
        }
    }
    assert!(accepted, "the sliding window never freed capacity");
}
