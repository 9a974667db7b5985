//! Are.na v3 (`arena.json`, docs/providers.md, Are.na) behind Prism.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::exchange::Call;
use crate::fixture::{Contract, Provider};

const TOKEN: &str = "arena-contract-token";
const PATH: &str = "/v3/connections/98765";

async fn with_connection() -> Contract {
    let contract = Contract::start(Provider::Arena).await;
    contract.seed("98765", json!({"metadata": {"status": "draft", "score": 0.5}})).await;
    contract
}

fn many_keys(count: usize, prefix: &str) -> Value {
    let keys: Map<String, Value> = (0..count).map(|i| (format!("{prefix}{i}"), json!(i))).collect();
    Value::Object(keys)
}

#[tokio::test]
async fn get_and_put_conform_to_connection() {
    let contract = with_connection().await;

    // Reading needs no token (the document's security lists `{}`; docs/providers.md, Are.na).
    let anonymous = contract.forwarded(&Call::get(PATH)).await;
    anonymous.assert_conforms(200);
    assert_eq!(anonymous.body["metadata"], json!({"status": "draft", "score": 0.5}));
    contract.forwarded(&Call::get(PATH).bearer(TOKEN)).await.assert_conforms(200);

    // Merge: keys added and overwritten, `null` removes (docs/providers.md, Are.na [D]).
    let merge = json!({"metadata": {"status": "reviewed", "featured": true, "score": null}});
    let put = contract.forwarded(&Call::put(PATH, merge).bearer(TOKEN)).await;
    put.assert_conforms(200);
    assert_eq!(put.body["metadata"], json!({"status": "reviewed", "featured": true}));

    // The document makes `metadata` optional and allows other top-level keys; what the
    // server does then is undocumented (docs/providers.md, Are.na). The emulator treats both as a
    // merge of nothing.
    for nothing in [json!({}), json!({"metadata": {}, "note": "ignored"})] {
        let put = contract.forwarded(&Call::put(PATH, nothing).bearer(TOKEN)).await;
        put.assert_conforms(200);
        assert_eq!(put.body["metadata"], json!({"status": "reviewed", "featured": true}));
    }

    // Removing every key leaves metadata null, `{}` or absent, all of which the document allows.
    let clear = json!({"metadata": {"status": null, "featured": null}});
    contract.forwarded(&Call::put(PATH, clear).bearer(TOKEN)).await.assert_conforms(200);
    contract.forwarded(&Call::get(PATH)).await.assert_conforms(200);
}

/// Every response carries an `ETag`, and a GET with a matching `If-None-Match` answers 304
/// (docs/providers.md, Are.na [D], the caching section of the docs). The document lists no 304 for
/// the operation, so Prism relays it with the status warning only.
#[tokio::test]
async fn conditional_get_is_an_undocumented_304() {
    let contract = with_connection().await;
    let first = contract.forwarded(&Call::get(PATH)).await;
    first.assert_conforms(200);
    let etag = first.header("etag").expect("a 200 carries an ETag").to_string();
    let again = contract.forwarded(&Call::get(PATH).header("if-none-match", &etag)).await;
    again.assert_undocumented_status(304);
    assert!(again.text.is_empty(), "a 304 has no body: {}", again.text);
}

#[tokio::test]
async fn document_invalid_requests_are_rejected_by_prism_and_emulator() {
    let contract = with_connection().await;
    let doc = &contract.document;

    // Are.na validates requests against its OpenAPI file and answers 400 in its Error
    // envelope (docs/providers.md, Are.na); Prism's proxy answers 422.
    //
    // Disagreement: the rendered docs call the path id "The Connection ID or slug", the
    // document says integer. We use integers (docs/providers.md, Are.na), and so does the emulator.
    let slug = Call::get("/v3/connections/my-connection");
    let direct = contract.rejected_by_both(&slug, &["path", "id"], 400).await;
    doc.assert_conforms("Error", &direct.body);

    // Prism coerces the path segment with JavaScript's Number(), so `5.0` and `1e3` pass as
    // integers and are forwarded; the emulator reads the id as a literal integer and answers
    // 400. The PUT documents 400 (Prism checks the body); the GET lists no 400 although the
    // server validates every request against the document (docs/providers.md, Are.na), so
    // there it is an undocumented status whose body we check against Error.
    for id in ["98765.0", "1e3"] {
        let path = format!("/v3/connections/{id}");
        let put = contract.forwarded(&Call::put(&path, json!({"metadata": {"a": 1}})).bearer(TOKEN)).await;
        put.assert_conforms(400);
        let get = contract.forwarded(&Call::get(&path)).await;
        get.assert_undocumented_status(400);
        doc.assert_conforms("Error", &get.body);
    }

    let cases = [
        (json!({"metadata": {"nested": {"a": 1}}}), vec!["body", "metadata", "nested"]),
        (json!({"metadata": {"list": [1, 2]}}), vec!["body", "metadata", "list"]),
        (json!({"metadata": {"long": "x".repeat(2001)}}), vec!["body", "metadata", "long"]),
        (json!({"metadata": many_keys(51, "k")}), vec!["body", "metadata"]),
        (json!({"metadata": "status=reviewed"}), vec!["body", "metadata"]),
        // MetadataInput is an object; `null` is only allowed for its values.
        (json!({"metadata": null}), vec!["body", "metadata"]),
    ];
    for (body, location) in cases {
        let direct = contract.rejected_by_both(&Call::put(PATH, body).bearer(TOKEN), &location, 400).await;
        doc.assert_conforms("Error", &direct.body);
    }

    // A PUT without a body: the document's one 400 example is "body is required".
    let no_body = Call::new(Method::PUT, PATH).bearer(TOKEN);
    let direct = contract.rejected_by_both(&no_body, &[], 400).await;
    doc.assert_conforms("Error", &direct.body);

    // Only application/json is documented (Prism: a 415 inside its 422); the emulator finds
    // no JSON body and answers the same 400 "body is required".
    let text = Call::new(Method::PUT, PATH).raw_body("text/plain", r#"{"metadata":{"b":1}}"#).bearer(TOKEN);
    let direct = contract.rejected_by_both(&text, &[], 400).await;
    doc.assert_conforms("Error", &direct.body);

    let read = contract.forwarded(&Call::get(PATH)).await;
    read.assert_conforms(200);
    assert_eq!(read.body["metadata"], json!({"status": "draft", "score": 0.5}));
}

#[tokio::test]
async fn writes_without_credentials_are_rejected_by_prism_and_emulator() {
    let contract = with_connection().await;
    let doc = &contract.document;
    let anonymous = Call::put(PATH, json!({"metadata": {"a": 1}}));
    contract.stopped_by_prism(&anonymous).await.assert_prism_unauthorized();
    let direct = contract.direct(&anonymous).await;
    direct.assert_status(401);
    doc.assert_conforms("Error", &direct.body);
}

/// Rules the schema cannot express: the key pattern `^[A-Za-z0-9_]{1,40}$` (docs/providers.md,
/// Are.na [C] aredotna/cli), 50 keys counted on the merged result and 32 KB in total ([D] prose;
/// where to count is [I]). Prism forwards these; the emulator answers the documented 422
/// Error ("the request was well-formed but contained semantic errors"), and Prism checks it.
#[tokio::test]
async fn rules_beyond_the_schema_reach_the_emulator_and_conform() {
    let contract = with_connection().await;

    for key in ["has-dash", "has space", &"k".repeat(41)] {
        let body = json!({"metadata": {key: 1}});
        let rejected = contract.forwarded(&Call::put(PATH, body).bearer(TOKEN)).await;
        rejected.assert_conforms(422);
        assert_eq!(rejected.body["code"], 422);
    }

    // 49 new keys are fine in the request but make 51 with the two seeded ones.
    let body = json!({"metadata": many_keys(49, "extra_")});
    contract.forwarded(&Call::put(PATH, body).bearer(TOKEN)).await.assert_conforms(422);

    // 20 strings of 2000 characters: each within the schema, together over 32 KB.
    let big: Map<String, Value> = (0..20).map(|i| (format!("big_{i}"), json!("x".repeat(2000)))).collect();
    let body = json!({"metadata": big});
    contract.forwarded(&Call::put(PATH, body).bearer(TOKEN)).await.assert_conforms(422);

    let read = contract.forwarded(&Call::get(PATH)).await;
    read.assert_conforms(200);
    assert_eq!(read.body["metadata"], json!({"status": "draft", "score": 0.5}));
}

#[tokio::test]
async fn not_found_unauthorized_and_forbidden_conform_to_error() {
    let contract = with_connection().await;

    let missing = contract.forwarded(&Call::get("/v3/connections/11111")).await;
    missing.assert_conforms(404);
    assert_eq!(missing.body["code"], 404);
    let missing = Call::put("/v3/connections/11111", json!({"metadata": {"a": 1}})).bearer(TOKEN);
    contract.forwarded(&missing).await.assert_conforms(404);

    contract.set_tokens(&[TOKEN], &["arena-read-only"]).await;
    let stranger = Call::get(PATH).bearer("not-a-token");
    let unauthorized = contract.forwarded(&stranger).await;
    unauthorized.assert_conforms(401);
    assert_eq!(unauthorized.body["code"], 401);

    // A read-scoped token may read, and gets 403 on a write (docs/providers.md, Are.na [D]).
    contract.forwarded(&Call::get(PATH).bearer("arena-read-only")).await.assert_conforms(200);
    let write = Call::put(PATH, json!({"metadata": {"a": 1}})).bearer("arena-read-only");
    let forbidden = contract.forwarded(&write).await;
    forbidden.assert_conforms(403);
    assert_eq!(forbidden.body["code"], 403);
}

#[tokio::test]
async fn rate_limit_conforms_to_rate_limit_error() {
    let contract = with_connection().await;
    contract.set_rate_limit(1, 60.0).await;

    let read = Call::get(PATH).bearer(TOKEN);
    contract.forwarded(&read).await.assert_conforms(200);
    let limited = contract.forwarded(&read).await;
    limited.assert_conforms(429);
    assert_eq!(limited.body["error"]["type"], "rate_limit_exceeded");
    // The documented 429 headers; `X-RateLimit-Remaining` is not one of them
    // (docs/providers.md, Are.na).
    for header in ["retry-after", "x-ratelimit-limit", "x-ratelimit-tier", "x-ratelimit-window"] {
        assert!(limited.header(header).is_some(), "429 without {header}: {:?}", limited.headers);
    }
    assert!(limited.header("x-ratelimit-remaining").is_none(), "{:?}", limited.headers);
}
