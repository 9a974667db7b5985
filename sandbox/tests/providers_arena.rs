//! The Are.na v3 emulator over HTTP (docs/providers.md, Are.na, `openapi/arena.json`): every test
//! starts the provider sandbox on a free loopback port and talks to it with reqwest.

#[macro_use]
mod providers_support;

use providers_support::{header, method_path_status};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Map, Value, json};

const TOKEN: &str = "arena-test-token";

// The shared fixture plus Are.na's API calls (below).
provider_fixture!(Arena, "arena");

impl Arena {
    fn conn(&self, id: &str) -> String {
        self.url(&format!("/v3/connections/{id}"))
    }

    /// Seeds and returns the stored state.
    async fn seed(&self, id: &str, state: Value) -> Value {
        self.0.seed(id, state).await;
        self.stored(id).await
    }

    async fn raw(&self, id: &str) -> Value {
        self.stored(id).await
    }

    fn put(&self, id: &str) -> RequestBuilder {
        self.http.put(self.conn(id)).bearer_auth(TOKEN)
    }

    async fn put_json(&self, id: &str, body: Value) -> Response {
        self.put(id).json(&body).send().await.unwrap()
    }

    async fn get(&self, id: &str) -> Response {
        self.http.get(self.conn(id)).bearer_auth(TOKEN).send().await.unwrap()
    }
}

async fn body(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap())
}

fn envelope(code: u16, error: &str, message: &str) -> Value {
    json!({"error": error, "code": code, "details": {"message": message}})
}

#[tokio::test]
async fn get_returns_the_full_connection_shape() {
    let a = Arena::start().await;
    a.seed(
        "98765",
        json!({"metadata": {"status": "reviewed", "score": 0.95, "featured": true}, "position": 3,
               "connected_at": "2023-01-15T10:30:00Z"}),
    )
    .await;
    let (status, c) = body(a.get("98765").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        c,
        json!({
            "id": 98765,
            "position": 3,
            "pinned": false,
            "metadata": {"status": "reviewed", "score": 0.95, "featured": true},
            "connected_at": "2023-01-15T10:30:00Z",
            "connected_by": {"id": 1, "type": "User", "name": "Sandbox User", "slug": "sandbox-user",
                             "avatar": null, "initials": "SU"},
            "can": {"remove": true},
            "_links": {"self": {"href": format!("{}/v3/connections/98765", a.base)}}
        })
    );
}

#[tokio::test]
async fn get_works_without_authentication_as_guest() {
    let a = Arena::start().await;
    a.seed("1", json!({"metadata": {"a": 1}})).await;
    let r = a.http.get(a.conn("1")).send().await.unwrap();
    assert_eq!(header(&r, "x-ratelimit-tier").as_deref(), Some("guest"));
    assert_eq!(header(&r, "cache-control").as_deref(), Some("max-age=300, public"));
    let (status, c) = body(r).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["can"], json!({"remove": false}));
    assert_eq!(c["metadata"], json!({"a": 1}));
}

#[tokio::test]
async fn rate_limit_headers_are_on_every_response_and_never_remaining() {
    let a = Arena::start().await;
    a.seed("1", json!({})).await;
    let now = providers_support::unix_now().floor() as u64;
    let guest = a.http.get(a.conn("1")).send().await.unwrap();
    let free = a.get("1").await;
    let not_found = a.get("2").await;
    let bad_request = a.put("1").send().await.unwrap();
    let unauthorized = a.http.put(a.conn("1")).json(&json!({})).send().await.unwrap();
    for (r, limit, tier) in [
        (&guest, "30", "guest"),
        (&free, "120", "free"),
        (&not_found, "120", "free"),
        (&bad_request, "120", "free"),
        (&unauthorized, "30", "guest"),
    ] {
        assert_eq!(header(r, "x-ratelimit-limit").as_deref(), Some(limit), "{}", r.status());
        assert_eq!(header(r, "x-ratelimit-tier").as_deref(), Some(tier));
        assert_eq!(header(r, "x-ratelimit-window").as_deref(), Some("60"));
        let reset: u64 = header(r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset >= now && reset <= now + 61, "reset {reset} now {now}");
        assert_eq!(header(r, "x-ratelimit-remaining"), None);
    }
    assert_eq!(
        [guest.status(), free.status(), not_found.status(), bad_request.status(), unauthorized.status()],
        [StatusCode::OK, StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED]
    );
}

#[tokio::test]
async fn put_merges_and_null_deletes() {
    let a = Arena::start().await;
    a.seed("5", json!({"metadata": {"keep": "k", "change": 1, "drop": true}})).await;
    let (status, c) =
        body(a.put_json("5", json!({"metadata": {"change": 2.5, "drop": null, "added": "new", "absent": null}})).await)
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["metadata"], json!({"keep": "k", "change": 2.5, "added": "new"}));
    // Existing keys keep their place, new keys are appended.
    let keys: Vec<&String> = c["metadata"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["keep", "change", "added"]);
    assert_eq!(c["_links"]["self"]["href"], format!("{}/v3/connections/5", a.base));
    assert_eq!(body(a.get("5").await).await.1["metadata"], c["metadata"]);

    // Idempotent: the same body again gives the same state.
    let (_, again) =
        body(a.put_json("5", json!({"metadata": {"change": 2.5, "drop": null, "added": "new", "absent": null}})).await)
            .await;
    assert_eq!(again, c);

    // A body without `metadata` changes nothing.
    let (status, same) = body(a.put_json("5", json!({})).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["metadata"], c["metadata"]);

    // Deleting every key leaves an empty object.
    let (_, emptied) =
        body(a.put_json("5", json!({"metadata": {"keep": null, "change": null, "added": null}})).await).await;
    assert_eq!(emptied["metadata"], json!({}));
}

#[tokio::test]
async fn never_set_metadata_is_null_until_a_put_sets_it() {
    let a = Arena::start().await;
    a.seed("6", json!({})).await;
    assert_eq!(body(a.get("6").await).await.1["metadata"], Value::Null);
    assert_eq!(a.raw("6").await["metadata"], Value::Null);
    let (_, c) = body(a.put_json("6", json!({"metadata": {"x": false}})).await).await;
    assert_eq!(c["metadata"], json!({"x": false}));
    assert_eq!(a.raw("6").await["metadata"], json!({"x": false}));
}

#[tokio::test]
async fn non_integer_ids_are_400_and_unknown_ids_404() {
    let a = Arena::start().await;
    a.seed("1", json!({})).await;
    for id in ["abc", "1.5", "my-connection"] {
        let (status, err) = body(a.get(id).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
        assert_eq!(err["error"], "Bad Request");
        assert_eq!(err["code"], 400);
        assert_eq!(err["details"]["message"], "Invalid request parameters");
        assert_eq!(err["details"]["errors"][0], format!("id must be an integer, got {id:?}"));
        let r = a.put_json(id, json!({"metadata": {"a": 1}})).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let not_found = envelope(404, "Not Found", "The resource you are looking for does not exist.");
    assert_eq!(body(a.get("2").await).await, (StatusCode::NOT_FOUND, not_found.clone()));
    assert_eq!(
        body(a.put_json("2", json!({"metadata": {"a": 1}})).await).await,
        (StatusCode::NOT_FOUND, not_found.clone())
    );
    // An integer no connection can have is simply not found.
    assert_eq!(body(a.get("99999999999999999999").await).await, (StatusCode::NOT_FOUND, not_found));
}

#[tokio::test]
async fn missing_body_is_400_body_is_required() {
    let a = Arena::start().await;
    let before = a.seed("1", json!({"metadata": {"a": 1}})).await;
    let expected = envelope(400, "Bad Request", "body is required");
    assert_eq!(body(a.put("1").send().await.unwrap()).await, (StatusCode::BAD_REQUEST, expected.clone()));
    let r = a.put("1").header("content-type", "application/json").body("").send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::BAD_REQUEST, expected.clone()));
    // Rails parses only JSON bodies: any other content type looks like no body at all.
    let r = a.put("1").header("content-type", "text/plain").body(r#"{"metadata":{"a":2}}"#).send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::BAD_REQUEST, expected));
    let r = a.put("1").header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::BAD_REQUEST, envelope(400, "Bad Request", "body is not valid JSON")));
    assert_eq!(a.raw("1").await, before);
}

#[tokio::test]
async fn schema_violations_are_400_and_change_nothing() {
    let a = Arena::start().await;
    let before = a.seed("1", json!({"metadata": {"a": 1}})).await;
    let many: Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    for (bad, error) in [
        (
            json!({"metadata": {"b": 2, "nested": {"x": 1}}}),
            "metadata.nested must be a string, number, boolean or null",
        ),
        (json!({"metadata": {"list": [1, 2]}}), "metadata.list must be a string, number, boolean or null"),
        (json!({"metadata": {"long": "x".repeat(2001)}}), "metadata.long must be at most 2000 characters"),
        (json!({"metadata": many}), "metadata must have at most 50 keys"),
        (json!({"metadata": null}), "metadata must be an object"),
        (json!({"metadata": "a=1"}), "metadata must be an object"),
        (json!([{"metadata": {}}]), "body must be an object"),
    ] {
        let (status, err) = body(a.put_json("1", bad.clone()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            err,
            json!({"error": "Bad Request", "code": 400,
                   "details": {"message": "Invalid request body", "errors": [error]}}),
            "{bad}"
        );
    }
    assert_eq!(a.raw("1").await, before);
    // The boundaries themselves are accepted.
    let (status, _) = body(a.put_json("1", json!({"metadata": {"long": "é".repeat(2000)}})).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn documented_rules_outside_the_schema_are_422_and_change_nothing() {
    let a = Arena::start().await;
    let fifty: Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
    let before = a.seed("1", json!({ "metadata": fifty })).await;

    // Keys must match ^[A-Za-z0-9_]{1,40}$.
    for key in ["has-dash", "with space", "ünï", &"k".repeat(41)] {
        let (status, err) = body(a.put_json("1", json!({"metadata": {"k0": null, key: 1}})).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{key}");
        assert_eq!(err["error"], "Unprocessable Entity");
        assert_eq!(err["code"], 422);
        assert_eq!(err["details"]["message"], "Metadata is invalid");
        assert!(err["details"]["errors"][0].as_str().unwrap().contains(key), "{err}");
    }

    // At most 50 keys on the merged result, even when the request itself is small.
    let (status, err) = body(a.put_json("1", json!({"metadata": {"k50": 1}})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["details"]["errors"], json!(["metadata would have 51 keys; at most 50 are allowed"]));
    assert_eq!(a.raw("1").await, before);
    // Replacing one key by another keeps 50 and is fine.
    let (status, c) = body(a.put_json("1", json!({"metadata": {"k0": null, "k50": 1}})).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["metadata"].as_object().unwrap().len(), 50);

    // At most 32 KB in total.
    let big: Map<String, Value> = (0..16).map(|i| (format!("s{i}"), json!("x".repeat(2000)))).collect();
    a.seed("2", json!({ "metadata": big })).await;
    let before = a.raw("2").await;
    let (status, err) = body(a.put_json("2", json!({"metadata": {"more": "y".repeat(1000)}})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["details"]["errors"][0].as_str().unwrap().contains("at most 32768 bytes"), "{err}");
    assert_eq!(a.raw("2").await, before);
}

#[tokio::test]
async fn put_requires_a_write_token() {
    let a = Arena::start().await;
    let before = a.seed("1", json!({"metadata": {"a": 1}})).await;
    let update = json!({"metadata": {"a": 2}});

    let r = a.http.put(a.conn("1")).json(&update).send().await.unwrap();
    assert_eq!(
        body(r).await,
        (
            StatusCode::UNAUTHORIZED,
            envelope(401, "Unauthorized", "Authentication is required to access this resource.")
        )
    );

    a.admin_put("tokens", json!({"tokens": [TOKEN], "readOnly": ["reader"]})).await;
    let r = a.http.put(a.conn("1")).bearer_auth("reader").json(&update).send().await.unwrap();
    assert_eq!(
        body(r).await,
        (StatusCode::FORBIDDEN, envelope(403, "Forbidden", "You do not have permission to access this resource."))
    );
    let invalid = envelope(401, "Unauthorized", "The access token is invalid.");
    let r = a.http.put(a.conn("1")).bearer_auth("forged").json(&update).send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::UNAUTHORIZED, invalid.clone()));
    assert_eq!(a.raw("1").await, before);

    // Reads: a read token is fine (and may not remove), an unknown token is refused.
    let (status, c) = body(a.http.get(a.conn("1")).bearer_auth("reader").send().await.unwrap()).await;
    assert_eq!((status, c["can"].clone()), (StatusCode::OK, json!({"remove": false})));
    let r = a.http.get(a.conn("1")).bearer_auth("forged").send().await.unwrap();
    assert_eq!(body(r).await, (StatusCode::UNAUTHORIZED, invalid));

    assert_eq!(a.put_json("1", update).await.status(), StatusCode::OK);
    assert_eq!(a.raw("1").await["metadata"], json!({"a": 2}));
}

#[tokio::test]
async fn default_tier_limits_are_30_for_guests_and_120_for_tokens() {
    let a = Arena::start().await;
    a.seed("1", json!({})).await;
    for i in 1..=30 {
        let r = a.http.get(a.conn("1")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "guest request {i}");
    }
    let r = a.http.get(a.conn("1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let (_, err) = body(r).await;
    assert_eq!(err["error"]["tier"], "guest");
    assert_eq!(err["error"]["limit"], 30);
    assert_eq!(
        err["error"]["message"],
        "Rate limit of 30 requests per minute exceeded for guest tier. Try again later."
    );

    // A token has its own bucket at the free tier.
    for i in 1..=120 {
        assert_eq!(a.get("1").await.status(), StatusCode::OK, "token request {i}");
    }
    let r = a.get("1").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("120"));
    assert_eq!(body(r).await.1["error"]["tier"], "free");
}

#[tokio::test]
async fn the_429_has_its_own_body_and_retry_after() {
    let a = Arena::start().await;
    a.seed("1", json!({"metadata": {"a": 1}})).await;
    let r = a.admin_put("rate-limit", json!({"limit": 2, "windowSeconds": 60})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(a.get("1").await.status(), StatusCode::OK);
    assert_eq!(a.put_json("1", json!({"metadata": {"a": 2}})).await.status(), StatusCode::OK);
    let r = a.put_json("1", json!({"metadata": {"a": 3}})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(header(&r, "x-ratelimit-tier").as_deref(), Some("free"));
    assert_eq!(header(&r, "x-ratelimit-window").as_deref(), Some("60"));
    assert!(header(&r, "x-ratelimit-reset").is_some());
    assert_eq!(header(&r, "x-ratelimit-remaining"), None);
    let (_, err) = body(r).await;
    let e = &err["error"];
    assert_eq!(e["type"], "rate_limit_exceeded");
    assert_eq!(e["message"], "Rate limit of 2 requests per minute exceeded for free tier. Try again later.");
    assert_eq!(e["tier"], "free");
    assert_eq!(e["limit"], 2);
    assert_eq!(e["limit_window"], "1 minute");
    assert_eq!(e["retry_after"], retry_after);
    assert_eq!(e["current_status"]["limits"], json!({"guest": 30, "free": 120, "premium": 300, "supporter": 600}));
    assert!(e["suggestions"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(e["headers_note"].is_string());
    // Not the generic envelope.
    assert!(err.get("code").is_none());
    // The refused write changed nothing.
    assert_eq!(a.raw("1").await["metadata"], json!({"a": 2}));
}

#[tokio::test]
async fn a_shortened_window_is_reported_and_reopens() {
    let a = Arena::start().await;
    a.seed("1", json!({})).await;
    a.admin_put("rate-limit", json!({"limit": 1, "windowSeconds": 0.5})).await;
    let r = a.get("1").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-ratelimit-window").as_deref(), Some("0.5"));
    let r = a.get("1").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body(r).await.1["error"]["limit_window"], "0.5 seconds");
    let mut reopened = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if a.get("1").await.status() == StatusCode::OK {
            reopened = true;
            break;
        }
    }
    assert!(reopened, "the window never reopened");

    // Limit 0 disables limiting: no 429 and no rate-limit headers.
    a.admin_put("rate-limit", json!({"limit": 0, "windowSeconds": 60})).await;
    for _ in 0..40 {
        let r = a.http.get(a.conn("1")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "x-ratelimit-limit"), None);
    }
}

#[tokio::test]
async fn etag_and_cache_control_allow_revalidation() {
    let a = Arena::start().await;
    a.seed("1", json!({"metadata": {"a": 1}})).await;
    let r = a.get("1").await;
    assert_eq!(header(&r, "cache-control").as_deref(), Some("private, no-cache"));
    let etag = header(&r, "etag").expect("an ETag");
    let r = a.http.get(a.conn("1")).bearer_auth(TOKEN).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&r, "etag").as_deref(), Some(etag.as_str()));
    assert!(r.bytes().await.unwrap().is_empty());
    // After a change the old ETag no longer matches.
    a.put_json("1", json!({"metadata": {"a": 2}})).await;
    let r = a.http.get(a.conn("1")).bearer_auth(TOKEN).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(header(&r, "etag").as_deref(), Some(etag.as_str()));
}

#[tokio::test]
async fn faults_and_unknown_routes_use_the_error_envelope() {
    let a = Arena::start().await;
    a.seed("1", json!({"metadata": {"a": 1}})).await;
    let r = a.admin_put("faults", json!({"method": "PUT", "path": "/v3/connections/*", "status": 503})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = a.put_json("1", json!({"metadata": {"a": 2}})).await;
    assert_eq!(
        body(r).await,
        (StatusCode::SERVICE_UNAVAILABLE, envelope(503, "Service Unavailable", "Service Unavailable"))
    );
    assert_eq!(a.raw("1").await["metadata"], json!({"a": 1}));

    let r = a.http.get(a.url("/v3/nothing")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(r).await.1["code"], 404);
    let r = a.http.delete(a.conn("1")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body(r).await.1["code"], 405);
}

#[tokio::test]
async fn admin_seeding_is_strict_and_the_journal_records_api_calls() {
    let a = Arena::start().await;
    for (id, bad) in [
        ("abc", json!({})),
        ("1", json!({"metadata": {"bad-key": 1}})),
        ("1", json!({"metadata": {"a": null}})),
        ("1", json!({"metadata": {"a": {"b": 1}}})),
        ("1", json!({"position": 0})),
        ("1", json!({"meta": {}})),
    ] {
        let r = a.admin_put(&format!("connections/{id}"), bad.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{id} {bad}");
    }
    let raw = a.seed("1", json!({"metadata": {"a": 1}, "pinned": true})).await;
    assert_eq!(raw["pinned"], true);
    assert_eq!(a.raw("1").await, raw);

    a.get("1").await;
    a.put_json("1", json!({"metadata": {"b": 2}})).await;
    a.get("x").await;
    let journal = a.journal().await;
    let seen = method_path_status(&journal);
    assert_eq!(
        seen,
        vec![
            (json!("GET"), json!("/v3/connections/1"), json!(200)),
            (json!("PUT"), json!("/v3/connections/1"), json!(200)),
            (json!("GET"), json!("/v3/connections/x"), json!(400)),
        ]
    );
    assert_eq!(journal[1]["body"], json!({"metadata": {"b": 2}}));
}
