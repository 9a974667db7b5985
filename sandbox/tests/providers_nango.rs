//! The Nango emulator over HTTP (docs/providers.md, Nango): reads, list, metadata merge/replace,
//! strict validation, errors, auth and the per-account fixed-window rate limit.

mod providers_support;

use providers_support::{Env, header, header_u64, unix_now};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn nango() -> Env {
    let env = Env::start("nango").await;
    env.seed("acme-1", json!({"provider_config_key": "salesforce"})).await;
    env.seed(
        "acme-2",
        json!({"provider_config_key": "salesforce", "metadata": {"region": "eu"}, "tags": {"Team": "a"}}),
    )
    .await;
    env.seed("other-1", json!({"provider_config_key": "hubspot", "provider": "hubspot-v2"})).await;
    env
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn patch(env: &Env, path: &str, body: Value) -> (StatusCode, Value) {
    json_of(env.api(Method::PATCH, path).json(&body).send().await.unwrap()).await
}

async fn post(env: &Env, path: &str, body: Value) -> (StatusCode, Value) {
    json_of(env.api(Method::POST, path).json(&body).send().await.unwrap()).await
}

async fn get(env: &Env, path: &str) -> (StatusCode, Value) {
    json_of(env.api(Method::GET, path).send().await.unwrap()).await
}

#[tokio::test]
async fn get_returns_connection_full_with_null_metadata_when_never_set() {
    let env = nango().await;
    let response = env.api(Method::GET, "/connections/acme-1?provider_config_key=salesforce").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("200"));
    let body: Value = response.json().await.unwrap();
    for field in [
        "id",
        "connection_id",
        "provider_config_key",
        "provider",
        "errors",
        "metadata",
        "connection_config",
        "tags",
        "created_at",
        "updated_at",
        "last_fetched_at",
        "credentials",
        "end_user",
    ] {
        assert!(body.get(field).is_some(), "ConnectionFull lacks {field}: {body}");
    }
    assert_eq!(body["metadata"], Value::Null);
    assert_eq!(body["credentials"], json!({}));
    assert_eq!(body["connection_id"], "acme-1");
    assert_eq!(body["provider"], "salesforce");
    assert!(body["id"].is_u64());

    // The deprecated path serves the same connection; optional boolean flags set to false pass.
    let (status, old) = get(
        &env,
        "/connection/acme-2?provider_config_key=salesforce&force_refresh=false&refresh_token=false&refresh_github_app_jwt_token=false",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(old["metadata"], json!({"region": "eu"}));
    assert_eq!(old["tags"], json!({"team": "a"}));
}

#[tokio::test]
async fn get_rejects_bad_queries_unknown_integrations_and_missing_connections() {
    let env = nango().await;
    let (status, body) = get(&env, "/connections/acme-1?provider_config_key=salesforce&foo=1").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_query_params");
    assert_eq!(body["error"]["errors"][0]["code"], "unrecognized_keys");

    let (status, body) = get(&env, "/connections/acme-1").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["errors"],
        json!([{"code": "invalid_type", "message": "Required", "path": ["provider_config_key"]}])
    );

    let (status, body) = get(&env, "/connections/acme-1?provider_config_key=salesforce&force_refresh=yes").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["errors"][0]["code"], "invalid_enum_value");

    let (status, body) = get(&env, "/connections/acme-1?provider_config_key=nope").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "unknown_provider_config", "message": "Provider does not exists"}})
        )
    );

    let (status, body) = get(&env, "/connections/missing?provider_config_key=salesforce").await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": {"code": "not_found", "message": "Failed to find connection"}}))
    );

    // A connection of another integration is not found under this one.
    let (status, _) = get(&env, "/connections/other-1?provider_config_key=salesforce").await;
    assert_eq!(status, 404);

    // Asking for a refresh needs the read_credentials scope the emulated key lacks.
    let (status, body) = get(&env, "/connections/acme-1?provider_config_key=salesforce&force_refresh=true").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn patch_merges_shallowly_stores_null_and_echoes_the_request() {
    let env = nango().await;
    let first = json!({"connection_id": "acme-2", "provider_config_key": "salesforce",
                       "metadata": {"fieldMapping": {"a": 1, "b": 2}, "keep": true}});
    assert_eq!(patch(&env, "/connections/metadata", first.clone()).await, (StatusCode::OK, first));

    let second = json!({"connection_id": "acme-2", "provider_config_key": "salesforce",
                        "metadata": {"fieldMapping": {"c": 3}, "region": null}});
    assert_eq!(patch(&env, "/connections/metadata", second.clone()).await, (StatusCode::OK, second));

    let (_, read) = get(&env, "/connections/acme-2?provider_config_key=salesforce").await;
    // Nested objects are replaced whole; null is stored, not deleted.
    assert_eq!(read["metadata"], json!({"region": null, "fieldMapping": {"c": 3}, "keep": true}));

    // An empty merge changes nothing and still answers 200.
    let empty = json!({"connection_id": "acme-2", "provider_config_key": "salesforce", "metadata": {}});
    assert_eq!(patch(&env, "/connection/metadata", empty).await.0, 200);
    assert_eq!(env.stored("acme-2").await["metadata"], json!({"region": null, "fieldMapping": {"c": 3}, "keep": true}));
}

#[tokio::test]
async fn post_replaces_metadata_and_answers_201() {
    let env = nango().await;
    let body = json!({"connection_id": "acme-2", "provider_config_key": "salesforce", "metadata": {"only": "this"}});
    assert_eq!(post(&env, "/connections/metadata", body.clone()).await, (StatusCode::CREATED, body));
    assert_eq!(env.stored("acme-2").await["metadata"], json!({"only": "this"}));

    let clear = json!({"connection_id": ["acme-1", "acme-2"], "provider_config_key": "salesforce", "metadata": {}});
    assert_eq!(post(&env, "/connection/metadata", clear.clone()).await, (StatusCode::CREATED, clear));
    assert_eq!(env.stored("acme-1").await["metadata"], json!({}));
    assert_eq!(env.stored("acme-2").await["metadata"], json!({}));
}

#[tokio::test]
async fn an_unknown_id_fails_the_whole_write_with_the_exact_message() {
    let env = nango().await;
    let (status, body) = patch(
        &env,
        "/connections/metadata",
        json!({"connection_id": ["acme-1", "ghost"], "provider_config_key": "salesforce", "metadata": {"x": 1}}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"code": "unknown_connection", "message":
        "Connection with connection id ghost and provider config key salesforce not found. Please make sure the connection exists in the Nango dashboard. No actions were taken on any of the connections as a result of this failure."}})
    );
    assert_eq!(env.stored("acme-1").await["metadata"], Value::Null, "nothing may be written");

    let (status, body) = post(
        &env,
        "/connections/metadata",
        json!({"connection_id": "ghost", "provider_config_key": "salesforce", "metadata": {}}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        "Connection with connection id ghost and provider config key salesforce not found. Please make sure the connection exists in the Nango dashboard"
    );

    // An unknown integration on a write is the same 404, not a 400.
    let (status, body) = patch(
        &env,
        "/connections/metadata",
        json!({"connection_id": "acme-1", "provider_config_key": "nope", "metadata": {}}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_connection");

    // An empty array passes validation and updates nothing.
    let empty = json!({"connection_id": [], "provider_config_key": "salesforce", "metadata": {"x": 1}});
    assert_eq!(patch(&env, "/connections/metadata", empty.clone()).await, (StatusCode::OK, empty));
    assert_eq!(env.stored("acme-1").await["metadata"], Value::Null);
}

#[tokio::test]
async fn strict_body_and_query_reject_and_change_nothing() {
    let env = nango().await;
    let before = env.stored("acme-2").await;

    let (status, body) = patch(
        &env,
        "/connections/metadata",
        json!({"connection_id": "acme-2", "provider_config_key": "salesforce", "metadata": {"x": 1}, "extra": true}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"code": "invalid_body", "errors": [
        {"code": "unrecognized_keys", "message": "Unrecognized key(s) in object: 'extra'", "path": []}]}})
    );

    let (status, body) = post(&env, "/connections/metadata", json!({"connection_id": "acme-2", "metadata": [1]})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["errors"],
        json!([
        {"code": "invalid_type", "message": "Required", "path": ["provider_config_key"]},
        {"code": "invalid_type", "message": "Expected object, received array", "path": ["metadata"]}])
    );

    let (status, body) = patch(
        &env,
        "/connections/metadata",
        json!({"connection_id": 7, "provider_config_key": "salesforce", "metadata": null}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["errors"],
        json!([
        {"code": "invalid_union", "message": "Invalid input", "path": ["connection_id"]},
        {"code": "invalid_type", "message": "Expected object, received null", "path": ["metadata"]}])
    );

    // The id and key patterns, the 255 limits, and empty strings.
    let (status, body) = patch(
        &env,
        "/connections/metadata",
        json!({"connection_id": "x".repeat(256), "provider_config_key": "sales/force", "metadata": {}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["errors"],
        json!([
        {"code": "too_big", "message": "String must contain at most 255 character(s)", "path": ["connection_id"]},
        {"code": "invalid_string", "message": "Invalid", "path": ["provider_config_key"]}])
    );
    let (status, body) = patch(
        &env,
        "/connections/metadata",
        json!({"connection_id": "", "provider_config_key": "salesforce", "metadata": {}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["errors"][0],
        json!({"code": "invalid_string", "message": "Invalid", "path": ["connection_id"]})
    );

    // Any query string on a write is refused.
    let response = env
        .api(Method::PATCH, "/connections/metadata?provider_config_key=salesforce")
        .json(&json!({"connection_id": "acme-2", "provider_config_key": "salesforce", "metadata": {"x": 1}}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_query_params");

    assert_eq!(env.stored("acme-2").await, before, "a failed write changes nothing");
}

#[tokio::test]
async fn content_type_must_be_json() {
    let env = nango().await;
    let response = env
        .api(Method::PATCH, "/connections/metadata")
        .header("content-type", "text/plain")
        .body(r#"{"connection_id":"acme-1","provider_config_key":"salesforce","metadata":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(response).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"error": {
        "code": "invalid_content_type", "message": "Content-Type header must be application/json"}})
        )
    );

    // Without a Content-Type the body is not parsed at all, so every field is missing.
    let response = env
        .api(Method::POST, "/connections/metadata")
        .body(r#"{"connection_id":"acme-1","provider_config_key":"salesforce","metadata":{}}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["errors"].as_array().unwrap().len(), 3);

    let response = env
        .api(Method::POST, "/connections/metadata")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_body");
    assert_eq!(env.stored("acme-1").await["metadata"], Value::Null);
}

#[tokio::test]
async fn list_filters_and_pages_without_credentials() {
    let env = nango().await;
    let (status, body) = get(&env, "/connections").await;
    assert_eq!(status, 200);
    let rows = body["connections"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert!(row.get("credentials").is_none());
        for field in ["id", "connection_id", "provider", "provider_config_key", "created", "metadata", "tags", "errors"]
        {
            assert!(row.get(field).is_some(), "row lacks {field}");
        }
    }
    let ids = |body: &Value| -> Vec<String> {
        body["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["connection_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&get(&env, "/connections?connectionId=acme-2").await.1), ["acme-2"]);
    assert_eq!(ids(&get(&env, "/connections?search=ACME").await.1), ["acme-1", "acme-2"]);
    assert_eq!(ids(&get(&env, "/connections?integrationId=hubspot,nothing").await.1), ["other-1"]);
    assert_eq!(ids(&get(&env, "/connections?tags[team]=a").await.1), ["acme-2"]);
    assert_eq!(ids(&get(&env, "/connections?limit=2&page=1").await.1), ["other-1"]);
    assert_eq!(ids(&get(&env, "/connections?limit=2").await.1), ["acme-1", "acme-2"]);
    for bad in ["limit=0", "limit=2001", "limit=x", "unknown=1", "connectionId="] {
        let (status, body) = get(&env, &format!("/connections?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_query_params", "{bad}");
    }
}

#[tokio::test]
async fn authentication_errors_use_the_nango_envelope() {
    let env = nango().await;
    let response = env.http.get(env.url("/connections")).send().await.unwrap();
    assert_eq!(
        json_of(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": {
        "message": "Authentication failed. The request is missing the Authorization header.",
        "code": "missing_auth_header", "payload": {}}})
        )
    );
    let response = env.http.get(env.url("/connections")).header("authorization", "Token abc").send().await.unwrap();
    assert_eq!(json_of(response).await.1["error"]["code"], "malformed_auth_header");

    assert_eq!(env.admin_put("tokens", json!({"tokens": ["full-key"], "readOnly": ["read-key"]})).await.status(), 204);
    let (status, body) = get(&env, "/connections").await; // test-key is no longer accepted
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unknown_account");

    let read = env
        .http
        .get(env.url("/connections/acme-1?provider_config_key=salesforce"))
        .bearer_auth("read-key")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = env
        .http
        .patch(env.url("/connections/metadata"))
        .bearer_auth("read-key")
        .json(&json!({"connection_id": "acme-1", "provider_config_key": "salesforce", "metadata": {"x": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(write).await,
        (
            StatusCode::FORBIDDEN,
            json!({"error": {
        "code": "forbidden", "message": "Insufficient scope. Required: environment:connections:update"}})
        )
    );
    assert_eq!(env.stored("acme-1").await["metadata"], Value::Null);
    let write = env
        .http
        .patch(env.url("/connections/metadata"))
        .bearer_auth("full-key")
        .json(&json!({"connection_id": "acme-1", "provider_config_key": "salesforce", "metadata": {"x": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);
}

#[tokio::test]
async fn fixed_window_is_shared_by_all_endpoints_of_an_account() {
    let env = nango().await;
    env.rate_limit(3, 30.0).await;
    let before = unix_now().floor() as u64;
    let r1 = env.api(Method::GET, "/connections").send().await.unwrap();
    let r2 = env.api(Method::GET, "/connections/acme-1?provider_config_key=salesforce").send().await.unwrap();
    let r3 = env
        .api(Method::PATCH, "/connections/metadata")
        .json(&json!({"connection_id": "acme-1", "provider_config_key": "salesforce", "metadata": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!([r1.status(), r2.status(), r3.status()], [200, 200, 200]);
    assert_eq!(
        [r1.headers(), r2.headers(), r3.headers()].map(|h| h["x-ratelimit-remaining"].to_str().unwrap().to_owned()),
        ["2", "1", "0"]
    );
    let reset = header_u64(&r1, "x-ratelimit-reset");
    assert!(reset >= before && reset <= before + 31, "reset {reset} is the window end in unix seconds");

    let limited = env
        .api(Method::POST, "/connections/metadata")
        .json(&json!({"connection_id": "acme-1", "provider_config_key": "salesforce", "metadata": {"x": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(header(&limited, "x-ratelimit-limit").as_deref(), Some("3"));
    let retry_after = header_u64(&limited, "retry-after");
    assert!(retry_after <= 30);
    assert_eq!(
        limited.json::<Value>().await.unwrap(),
        json!({"error": {"code": "too_many_request", "method": "POST", "path": "/connections/metadata"}})
    );
    assert_eq!(env.stored("acme-1").await["metadata"], json!({}), "the limited write was not applied");

    // Another account has its own bucket.
    let other = env.http.get(env.url("/connections")).bearer_auth("another-key").send().await.unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "x-ratelimit-remaining").as_deref(), Some("2"));
}

#[tokio::test]
async fn retry_after_is_floored_so_it_can_be_zero_and_the_window_resets() {
    let env = nango().await;
    env.rate_limit(1, 0.5).await;
    assert_eq!(env.api(Method::GET, "/connections").send().await.unwrap().status(), 200);
    let limited = env.api(Method::GET, "/connections").send().await.unwrap();
    assert_eq!(limited.status(), 429);
    // Less than a second remains in a half-second window: floor(ms / 1000) = 0.
    assert_eq!(header(&limited, "retry-after").as_deref(), Some("0"));

    // Once the window has passed, requests are accepted again (polled, generous bound).
    let mut accepted = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if env.api(Method::GET, "/connections").send().await.unwrap().status() == 200 {
            accepted = true;
            break;
        }
    }
    assert!(accepted, "the fixed window never reset");
}
