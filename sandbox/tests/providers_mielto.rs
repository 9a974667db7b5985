//! The Mielto emulator over HTTP (docs/providers.md, Mielto, `openapi/mielto.yaml`): every
//! test starts the provider sandbox on a free loopback port and talks to it with reqwest.

#[macro_use]
mod providers_support;

use providers_support::method_path_status;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "mielto-test-key";

// The shared fixture plus Mielto's API calls (below).
provider_fixture!(Mielto, "mielto");

impl Mielto {
    /// Seeds and returns the stored state.
    async fn seed(&self, id: &str, state: Value) -> Value {
        self.0.seed(id, state).await;
        self.stored(id).await
    }

    async fn raw(&self, id: &str) -> Value {
        self.stored(id).await
    }

    async fn get(&self, id: &str) -> Response {
        self.http.get(self.url(&format!("/api/v1/connections/{id}"))).bearer_auth(TOKEN).send().await.unwrap()
    }

    async fn put(&self, id: &str, body: Value) -> Response {
        self.http
            .put(self.url(&format!("/api/v1/connections/{id}")))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// PUT with a raw body and optional Content-Type.
    async fn put_raw(&self, id: &str, body: &'static str, content_type: Option<&str>) -> Response {
        let mut rb = self.http.put(self.url(&format!("/api/v1/connections/{id}"))).bearer_auth(TOKEN).body(body);
        if let Some(ct) = content_type {
            rb = rb.header("content-type", ct);
        }
        rb.send().await.unwrap()
    }
}

async fn body(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap())
}

fn standard_seed() -> Value {
    json!({
        "label": "Acme",
        "status": "active",
        "integration": "slack",
        "config": {"channel": "#ops", "nested": {"a": 1}},
        "updated_at": "2020-01-01T00:00:00Z"
    })
}

#[tokio::test]
async fn get_returns_connection_read_with_every_required_field() {
    let m = Mielto::start().await;
    m.seed("conn-1", standard_seed()).await;
    let (status, read) = body(m.get("conn-1").await).await;
    assert_eq!(status, StatusCode::OK);
    // Every property the official ConnectionRead schema lists as required.
    for field in [
        "integration",
        "integration_type",
        "id",
        "credential_id",
        "user_id",
        "workspace_id",
        "created_by",
        "status",
        "created_at",
        "updated_at",
    ] {
        assert!(read.get(field).is_some(), "ConnectionRead lacks required {field}: {read}");
    }
    assert_eq!(read["id"], "conn-1");
    assert_eq!(read["label"], "Acme");
    assert_eq!(read["integration"], "slack");
    assert_eq!(read["integration_type"], "connectors");
    assert_eq!(read["status"], "active");
    assert_eq!(read["config"], json!({"channel": "#ops", "nested": {"a": 1}}));
    assert_eq!(read["user_id"], Value::Null);
    assert_eq!(read["updated_at"], "2020-01-01T00:00:00.000000Z");
    // The admin API returns the same shape.
    assert_eq!(m.raw("conn-1").await, read);
}

#[tokio::test]
async fn put_replaces_supplied_fields_and_the_whole_config() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    let (status, read) = body(m.put("c", json!({"config": {"nested": {"b": 2}}})).await).await;
    assert_eq!(status, StatusCode::OK);
    // `config` replaced whole: `channel` and `nested.a` are gone, no deep merge.
    assert_eq!(read["config"], json!({"nested": {"b": 2}}));
    // Omitted fields unchanged.
    assert_eq!(read["label"], "Acme");
    assert_eq!(read["status"], "active");
    assert_ne!(read["updated_at"], "2020-01-01T00:00:00.000000Z");
    assert_eq!(body(m.get("c").await).await.1, read);

    let (_, read) = body(m.put("c", json!({"label": "Acme EU", "status": "inactive"})).await).await;
    assert_eq!((read["label"].clone(), read["status"].clone()), (json!("Acme EU"), json!("inactive")));
    assert_eq!(read["config"], json!({"nested": {"b": 2}}));

    // An empty update is valid and changes nothing.
    let (status, again) = body(m.put("c", json!({})).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, read);
}

#[tokio::test]
async fn repeated_put_is_idempotent_down_to_updated_at() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    let desired = json!({"label": "X", "config": {"k": "v"}, "status": "testing"});
    let (_, first) = body(m.put("c", desired.clone()).await).await;
    let (_, second) = body(m.put("c", desired).await).await;
    assert_eq!(first, second);
}

#[tokio::test]
async fn explicit_null_clears_label_and_leaves_config_and_status() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    let (status, read) = body(m.put("c", json!({"label": null, "config": null, "status": null})).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["label"], Value::Null);
    assert_eq!(read["config"], json!({"channel": "#ops", "nested": {"a": 1}}));
    assert_eq!(read["status"], "active");
}

#[tokio::test]
async fn label_over_255_characters_is_a_fastapi_422_and_changes_nothing() {
    let m = Mielto::start().await;
    let before = m.seed("c", standard_seed()).await;
    let long = "x".repeat(256);
    let (status, err) = body(m.put("c", json!({"label": long, "config": {"new": true}})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err,
        json!({"detail": [{
            "type": "string_too_long",
            "loc": ["body", "label"],
            "msg": "String should have at most 255 characters",
            "input": long,
            "ctx": {"max_length": 255}
        }]})
    );
    // A failed write changes nothing, not even the valid `config` of the same body.
    assert_eq!(m.raw("c").await, before);
    // Exactly 255 is fine.
    assert_eq!(m.put("c", json!({"label": "y".repeat(255)})).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn status_outside_the_enum_and_wrong_types_are_422_per_field() {
    let m = Mielto::start().await;
    let before = m.seed("c", standard_seed()).await;
    let (status, err) = body(m.put("c", json!({"status": "paused"})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err["detail"][0],
        json!({
            "type": "enum",
            "loc": ["body", "status"],
            "msg": "Input should be 'active', 'inactive', 'testing', 'error' or 'expired'",
            "input": "paused",
            "ctx": {"expected": "'active', 'inactive', 'testing', 'error' or 'expired'"}
        })
    );

    let (status, err) = body(m.put("c", json!({"label": 7, "config": ["a"], "status": 1})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let summary: Vec<(Value, Value, Value)> = err["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].clone(), e["loc"].clone(), e["msg"].clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!("string_type"), json!(["body", "label"]), json!("Input should be a valid string")),
            (json!("dict_type"), json!(["body", "config"]), json!("Input should be a valid dictionary")),
            (
                json!("enum"),
                json!(["body", "status"]),
                json!("Input should be 'active', 'inactive', 'testing', 'error' or 'expired'")
            ),
        ]
    );
    assert_eq!(m.raw("c").await, before);
}

#[tokio::test]
async fn malformed_missing_and_non_object_bodies_are_422() {
    let m = Mielto::start().await;
    let before = m.seed("c", standard_seed()).await;

    let (status, err) = body(m.put_raw("c", r#"{"label": }"#, Some("application/json")).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err,
        json!({"detail": [{
            "type": "json_invalid", "loc": ["body", 10], "msg": "JSON decode error",
            "input": {}, "ctx": {"error": "Expecting value"}
        }]})
    );

    let (status, err) = body(m.put_raw("c", "", Some("application/json")).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err, json!({"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}]}));

    let (status, err) = body(m.put_raw("c", "[1, 2]", Some("application/json")).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["detail"][0]["type"], "model_attributes_type");
    assert_eq!(err["detail"][0]["loc"], json!(["body"]));
    assert_eq!(err["detail"][0]["msg"], "Input should be a valid dictionary or object to extract fields from");

    // FastAPI parses only JSON content types; anything else reaches pydantic as raw text.
    let (status, err) = body(m.put_raw("c", r#"{"label":"x"}"#, Some("text/plain")).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["detail"][0]["type"], "model_attributes_type");
    assert_eq!(err["detail"][0]["input"], r#"{"label":"x"}"#);

    // Python's decoder positions and messages.
    let (_, err) = body(m.put_raw("c", "{\"label\": \"x\"", Some("application/json")).await).await;
    assert_eq!(err["detail"][0]["loc"], json!(["body", 13]));
    assert_eq!(err["detail"][0]["ctx"], json!({"error": "Expecting ',' delimiter"}));

    // A body that is not UTF-8 fails before JSON decoding: FastAPI's generic 400.
    let r = m
        .http
        .put(m.url("/api/v1/connections/c"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(&b"{\"label\": \"\xff\"}"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(body(r).await, (StatusCode::BAD_REQUEST, json!({"detail": "There was an error parsing the body"})));
    assert_eq!(m.raw("c").await, before);

    // Without any Content-Type the body is still decoded as JSON.
    assert_eq!(m.put_raw("c", r#"{"status":"error"}"#, None).await.status(), StatusCode::OK);
    let after = m.raw("c").await;
    assert_eq!(after["status"], "error");
    assert_eq!(after["config"], before["config"]);
}

#[tokio::test]
async fn unknown_connection_is_404_connection_not_found() {
    let m = Mielto::start().await;
    let (status, err) = body(m.get("nope").await).await;
    assert_eq!((status, err), (StatusCode::NOT_FOUND, json!({"detail": "Connection not found"})));
    let (status, err) = body(m.put("nope", json!({"label": "x"})).await).await;
    assert_eq!((status, err), (StatusCode::NOT_FOUND, json!({"detail": "Connection not found"})));
    // Validation runs before the lookup, as in FastAPI.
    assert_eq!(m.put("nope", json!({"status": "bad"})).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn x_workspace_id_scopes_connections() {
    let m = Mielto::start().await;
    m.seed("home", standard_seed()).await;
    let mut other = standard_seed();
    other["workspace_id"] = json!("ws_other");
    let seeded = m.seed("away", other).await;
    assert_eq!(seeded["workspace_id"], "ws_other");

    let url = |id: &str| m.url(&format!("/api/v1/connections/{id}"));
    let get_in = |id: &str, ws: Option<&str>| {
        let mut rb = m.http.get(url(id)).bearer_auth(TOKEN);
        if let Some(ws) = ws {
            rb = rb.header("X-Workspace-Id", ws);
        }
        rb.send()
    };
    // Without the header: the key's own workspace only.
    assert_eq!(get_in("home", None).await.unwrap().status(), StatusCode::OK);
    let r = get_in("away", None).await.unwrap();
    assert_eq!(body(r).await, (StatusCode::NOT_FOUND, json!({"detail": "Connection not found"})));
    // With the header: that workspace only.
    assert_eq!(get_in("away", Some("ws_other")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(get_in("home", Some("ws_other")).await.unwrap().status(), StatusCode::NOT_FOUND);

    // A PUT into the wrong workspace is a 404 and writes nothing.
    let r = m.http.put(url("away")).bearer_auth(TOKEN).json(&json!({"label": "hijack"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(m.raw("away").await["label"], "Acme");
    let r = m
        .http
        .put(url("away"))
        .bearer_auth(TOKEN)
        .header("X-Workspace-Id", "ws_other")
        .json(&json!({"label": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(m.raw("away").await["label"], "mine");
}

#[tokio::test]
async fn bearer_or_api_key_is_required() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    let url = m.url("/api/v1/connections/c");

    let r = m.http.get(&url).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(body(r).await, (StatusCode::UNAUTHORIZED, json!({"detail": "Not authenticated"})));
    let r = m.http.put(&url).json(&json!({"label": "x"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(m.raw("c").await["label"], "Acme");

    // X-API-Key is the documented alternative to Authorization.
    let r = m.http.get(&url).header("X-API-Key", "some-key").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Another Authorization scheme is not a credential.
    let r = m.http.get(&url).header("Authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::UNAUTHORIZED, json!({"detail": "Invalid authentication credentials"})));

    // Once tokens are configured, only those are accepted, by either header.
    assert_eq!(m.admin_put("tokens", json!({"tokens": [TOKEN]})).await.status(), StatusCode::NO_CONTENT);
    let r = m.http.get(&url).bearer_auth("stolen").send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::UNAUTHORIZED, json!({"detail": "Invalid authentication credentials"})));
    assert_eq!(m.http.get(&url).header("X-API-Key", TOKEN).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(m.get("c").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn checks_run_in_fastapi_order() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    m.admin_put("tokens", json!({"tokens": [TOKEN], "readOnly": ["viewer"]})).await;
    let url = m.url("/api/v1/connections/c");
    let anonymous_put =
        |body: &'static str| m.http.put(&url).header("content-type", "application/json").body(body).send();

    // 1. The route: unknown paths are 404 before any authentication.
    let r = m.http.get(m.url("/api/v1/elsewhere")).send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::NOT_FOUND, json!({"detail": "Not Found"})));
    // 2. JSON decoding happens before the dependencies: 422 even without credentials.
    let (status, err) = body(anonymous_put("{oops").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["detail"][0]["type"], "json_invalid");
    // 3. Authentication comes before schema validation...
    let r = anonymous_put(r#"{"status": "paused"}"#).await.unwrap();
    assert_eq!(body(r).await, (StatusCode::UNAUTHORIZED, json!({"detail": "Not authenticated"})));
    let r = m.http.put(&url).bearer_auth("viewer").json(&json!({"status": "paused"})).send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::FORBIDDEN, json!({"detail": "Not enough permissions"})));
    // 4. ...which comes before the lookup.
    let r = m.put("missing", json!({"status": "paused"})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = m.http.get(m.url("/api/v1/connections/missing?include_credentials=x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(m.raw("c").await["status"], "active");
}

#[tokio::test]
async fn read_only_credentials_can_read_but_not_write() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    m.admin_put("tokens", json!({"tokens": [TOKEN], "readOnly": ["viewer"]})).await;
    let url = m.url("/api/v1/connections/c");
    assert_eq!(m.http.get(&url).bearer_auth("viewer").send().await.unwrap().status(), StatusCode::OK);
    for rb in [m.http.put(&url).bearer_auth("viewer"), m.http.put(&url).header("X-API-Key", "viewer")] {
        let r = rb.json(&json!({"label": "x"})).send().await.unwrap();
        assert_eq!(body(r).await, (StatusCode::FORBIDDEN, json!({"detail": "Not enough permissions"})));
    }
    assert_eq!(m.raw("c").await["label"], "Acme");
}

#[tokio::test]
async fn no_rate_limit_by_default_and_a_configured_one_answers_fastapi_429() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    // No documented limit: 150 requests in a row all succeed, without rate-limit headers.
    for _ in 0..150 {
        let r = m.get("c").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().keys().all(|k| !k.as_str().starts_with("x-ratelimit")));
    }

    assert_eq!(m.admin_put("rate-limit", json!({"limit": 2, "windowSeconds": 60})).await.status(), StatusCode::OK);
    assert_eq!(m.get("c").await.status(), StatusCode::OK);
    assert_eq!(m.put("c", json!({"label": "one"})).await.status(), StatusCode::OK);
    let r = m.put("c", json!({"label": "two"})).await;
    let retry_after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert!(r.headers().keys().all(|k| !k.as_str().starts_with("x-ratelimit")));
    assert_eq!(body(r).await, (StatusCode::TOO_MANY_REQUESTS, json!({"detail": "Rate limit exceeded"})));
    // The refused write changed nothing.
    assert_eq!(m.raw("c").await["label"], "one");
    // The window is per credential.
    let r = m.http.get(m.url("/api/v1/connections/c")).header("X-API-Key", "other").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_short_configured_window_reopens() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    m.admin_put("rate-limit", json!({"limit": 1, "windowSeconds": 0.3})).await;
    assert_eq!(m.get("c").await.status(), StatusCode::OK);
    assert_eq!(m.get("c").await.status(), StatusCode::TOO_MANY_REQUESTS);
    let mut reopened = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if m.get("c").await.status() == StatusCode::OK {
            reopened = true;
            break;
        }
    }
    assert!(reopened, "the window never reopened");
}

#[tokio::test]
async fn include_credentials_is_validated_as_a_boolean() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    let url = m.url("/api/v1/connections/c");
    for ok in ["true", "false", "1", "no"] {
        let r = m.http.get(format!("{url}?include_credentials={ok}")).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{ok}");
    }
    let r = m.http.get(format!("{url}?include_credentials=maybe")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(
        body(r).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{
                "type": "bool_parsing",
                "loc": ["query", "include_credentials"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": "maybe"
            }]})
        )
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_like_fastapi() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    let r = m.http.get(m.url("/api/v1/nothing")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::NOT_FOUND, json!({"detail": "Not Found"})));
    let r = m.http.delete(m.url("/api/v1/connections/c")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method Not Allowed"})));
    assert!(m.raw("c").await.is_object());
}

#[tokio::test]
async fn admin_seeding_is_strict_and_the_journal_records_api_calls() {
    let m = Mielto::start().await;
    for bad in [
        json!({"status": "paused"}),
        json!({"lable": "typo"}),
        json!({"config": "not an object"}),
        json!({"integration_type": "other"}),
        json!({"label": "x".repeat(256)}),
    ] {
        let r = m.admin_put("connections/c", bad.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(m.http.get(m.url("/_sandbox/connections/c")).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    m.seed("c", standard_seed()).await;
    m.put("c", json!({"label": "L"})).await;
    m.put("c", json!({"status": "bad"})).await;
    let seen = method_path_status(&m.journal().await);
    assert_eq!(
        seen,
        vec![
            (json!("PUT"), json!("/api/v1/connections/c"), json!(200)),
            (json!("PUT"), json!("/api/v1/connections/c"), json!(422)),
        ]
    );
}

#[tokio::test]
async fn injected_faults_use_the_fastapi_error_shape() {
    let m = Mielto::start().await;
    m.seed("c", standard_seed()).await;
    let r = m
        .admin_put("faults", json!({"method": "PUT", "path": "/api/v1/connections/c", "status": 503, "count": 1}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = m.put("c", json!({"label": "x"})).await;
    assert_eq!(body(r).await, (StatusCode::SERVICE_UNAVAILABLE, json!({"detail": "Service Unavailable"})));
    assert_eq!(m.raw("c").await["label"], "Acme");
    assert_eq!(m.put("c", json!({"label": "x"})).await.status(), StatusCode::OK);
}
