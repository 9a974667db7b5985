//! Mielto (`mielto.yaml`, docs/providers.md, Mielto) behind Prism.

use reqwest::Method;
use serde_json::json;

use crate::exchange::Call;
use crate::fixture::{Contract, Provider};

const TOKEN: &str = "mielto-contract-key";
const PATH: &str = "/api/v1/connections/conn-slack";

async fn with_connection() -> Contract {
    let contract = Contract::start(Provider::Mielto).await;
    let state = json!({
        "label": "Support",
        "status": "active",
        "config": {"channel": "#help", "threads": true},
        "integration": "slack",
    });
    contract.seed("conn-slack", state).await;
    contract
}

#[tokio::test]
async fn get_and_put_conform_to_connection_read() {
    let contract = with_connection().await;

    let read = contract.forwarded(&Call::get(PATH).bearer(TOKEN)).await;
    read.assert_conforms(200);
    assert_eq!(read.body["config"], json!({"channel": "#help", "threads": true}));
    let with_flag = Call::get(format!("{PATH}?include_credentials=false")).bearer(TOKEN);
    contract.forwarded(&with_flag).await.assert_conforms(200);

    // PUT replaces each supplied top-level field, `config` whole (docs/providers.md, Mielto [I]).
    let update = json!({"label": "Escalations", "config": {"channel": "#urgent"}, "status": "testing"});
    let put = contract.forwarded(&Call::put(PATH, update).bearer(TOKEN)).await;
    put.assert_conforms(200);
    assert_eq!(put.body["label"], "Escalations");
    assert_eq!(put.body["config"], json!({"channel": "#urgent"}));
    assert_eq!(put.body["status"], "testing");

    // Omitted fields stay as they are.
    let only_label = contract.forwarded(&Call::put(PATH, json!({"label": "Ops"})).bearer(TOKEN)).await;
    only_label.assert_conforms(200);
    assert_eq!(only_label.body["config"], json!({"channel": "#urgent"}));
}

/// `ConnectionUpdate` allows `null` for every field, while `ConnectionRead` requires a
/// non-null `status` and types `config` as an object: whatever the emulator does with
/// explicit nulls (undocumented, [I] in docs/providers.md, Mielto), what it answers must still be a
/// valid ConnectionRead.
#[tokio::test]
async fn explicit_nulls_still_answer_a_valid_connection_read() {
    let contract = with_connection().await;
    let nulls = json!({"label": null, "config": null, "status": null});
    let put = contract.forwarded(&Call::put(PATH, nulls).bearer(TOKEN)).await;
    put.assert_conforms(200);
    // The emulator's choice: a nullable column (label) takes the null, the others keep
    // their value.
    assert_eq!(put.body["label"], serde_json::Value::Null);
    assert_eq!(put.body["status"], "active");
    assert_eq!(put.body["config"], json!({"channel": "#help", "threads": true}));
    contract.forwarded(&Call::get(PATH).bearer(TOKEN)).await.assert_conforms(200);
}

#[tokio::test]
async fn document_invalid_requests_are_rejected_by_prism_and_emulator() {
    let contract = with_connection().await;
    let doc = &contract.document;

    // FastAPI answers request-validation failures with 422 HTTPValidationError, the same
    // status Prism's proxy uses for them.
    let cases = [
        (Call::put(PATH, json!({"status": "paused"})), vec!["body", "status"]),
        (Call::put(PATH, json!({"label": "x".repeat(256)})), vec!["body", "label"]),
        (Call::put(PATH, json!({"config": ["channel"]})), vec!["body", "config"]),
        (Call::put(PATH, json!(["label"])), vec!["body"]),
        (Call::get(format!("{PATH}?include_credentials=maybe")), vec!["query", "include_credentials"]),
    ];
    for (call, location) in cases {
        let direct = contract.rejected_by_both(&call.bearer(TOKEN), &location, 422).await;
        doc.assert_conforms("HTTPValidationError", &direct.body);
    }

    // The request body is required; Prism's violation carries no location.
    let no_body = Call::new(Method::PUT, PATH).bearer(TOKEN);
    let direct = contract.rejected_by_both(&no_body, &[], 422).await;
    doc.assert_conforms("HTTPValidationError", &direct.body);

    // Only application/json is documented: Prism reports a 415 inside its 422; FastAPI does
    // not parse another media type and fails the body model with 422.
    let text = Call::new(Method::PUT, PATH).raw_body("text/plain", r#"{"label":"b"}"#).bearer(TOKEN);
    let direct = contract.rejected_by_both(&text, &[], 422).await;
    doc.assert_conforms("HTTPValidationError", &direct.body);

    // None of them changed anything.
    let read = contract.forwarded(&Call::get(PATH).bearer(TOKEN)).await;
    read.assert_conforms(200);
    assert_eq!(read.body["label"], "Support");
    assert_eq!(read.body["status"], "active");
}

#[tokio::test]
async fn missing_credentials_are_rejected_by_prism_and_emulator() {
    let contract = with_connection().await;
    let anonymous = Call::get(PATH);
    contract.stopped_by_prism(&anonymous).await.assert_prism_unauthorized();
    contract.direct(&anonymous).await.assert_status(401);
}

/// Disagreement: Mielto documents `X-API-Key: <key>` as an alternative to the bearer token
/// (docs/providers.md, Mielto [D], DualAuthScheme), but the document declares DualAuthScheme as
/// `http`/`bearer` only. The emulator follows the server and accepts the header; Prism,
/// following the document, refuses such a request itself as unauthenticated.
#[tokio::test]
async fn api_key_header_is_accepted_by_the_emulator_though_the_document_omits_it() {
    let contract = with_connection().await;
    let with_api_key = Call::get(PATH).header("x-api-key", TOKEN);
    contract.stopped_by_prism(&with_api_key).await.assert_prism_unauthorized();
    let direct = contract.direct(&with_api_key).await;
    direct.assert_status(200);
    assert_eq!(direct.body["label"], "Support");
}

#[tokio::test]
async fn not_found_conforms() {
    let contract = with_connection().await;
    // 404 is documented without a body schema; the body is FastAPI's `{"detail": "..."}`.
    let missing = "/api/v1/connections/conn-ghost";
    let read = contract.forwarded(&Call::get(missing).bearer(TOKEN)).await;
    read.assert_conforms(404);
    assert_eq!(read.body, json!({"detail": "Connection not found"}));
    let put = contract.forwarded(&Call::put(missing, json!({"label": "x"})).bearer(TOKEN)).await;
    put.assert_conforms(404);
    assert_eq!(put.body, json!({"detail": "Connection not found"}));
}

/// `X-Workspace-Id` is a documented optional header; a connection of another workspace is
/// as invisible as a missing one (docs/providers.md, Mielto [D], 404 documented without a schema).
#[tokio::test]
async fn workspace_header_scopes_connections() {
    let contract = Contract::start(Provider::Mielto).await;
    let state =
        json!({"label": "Ops", "status": "active", "config": {}, "integration": "github", "workspace_id": "ws-ops"});
    contract.seed("conn-gh", state).await;
    let path = "/api/v1/connections/conn-gh";

    let own = contract.forwarded(&Call::get(path).bearer(TOKEN).header("x-workspace-id", "ws-ops")).await;
    own.assert_conforms(200);
    assert_eq!(own.body["workspace_id"], "ws-ops");

    let other = Call::get(path).bearer(TOKEN).header("x-workspace-id", "ws-sales");
    let other = contract.forwarded(&other).await;
    other.assert_conforms(404);
    assert_eq!(other.body, json!({"detail": "Connection not found"}));
}

/// Mielto documents no 401, 403 or 429 on these operations (its SDK maps those statuses, their
/// bodies are undocumented: docs/providers.md, Mielto). Prism relays them with the status warning
/// only; the bodies are FastAPI's `{"detail": "<text>"}`, the shape of the SDK's ErrorResponse.
#[tokio::test]
async fn auth_and_rate_limit_errors_are_undocumented_statuses() {
    let contract = with_connection().await;
    contract.set_tokens(&[TOKEN], &["mielto-read-only"]).await;

    let stranger = contract.forwarded(&Call::get(PATH).bearer("not-a-key")).await;
    stranger.assert_undocumented_status(401);
    assert!(stranger.body["detail"].is_string(), "{}", stranger.text);

    contract.forwarded(&Call::get(PATH).bearer("mielto-read-only")).await.assert_conforms(200);
    let write = Call::put(PATH, json!({"label": "x"})).bearer("mielto-read-only");
    let forbidden = contract.forwarded(&write).await;
    forbidden.assert_undocumented_status(403);
    assert!(forbidden.body["detail"].is_string(), "{}", forbidden.text);

    contract.set_rate_limit(1, 60.0).await;
    contract.forwarded(&Call::get(PATH).bearer(TOKEN)).await.assert_conforms(200);
    let limited = contract.forwarded(&Call::get(PATH).bearer(TOKEN)).await;
    limited.assert_undocumented_status(429);
    assert!(limited.body["detail"].is_string(), "{}", limited.text);
    assert!(limited.header("retry-after").is_some(), "429 without Retry-After: {:?}", limited.headers);
}

/// Prism reads the document's `boolean` query parameter as exactly `true` or `false`;
/// FastAPI (pydantic's lax mode) also takes `1`, `yes`, `on`, `0`, `off` and any case. The
/// emulator follows FastAPI, so these requests are valid for the server and refused by Prism
/// (Mielto documents none of this; it is the framework's documented behaviour [I]).
#[tokio::test]
async fn pydantic_booleans_beyond_true_and_false_are_refused_only_by_prism() {
    let contract = with_connection().await;
    for value in ["1", "yes", "on", "TRUE", "0", "off", "False"] {
        let call = Call::get(format!("{PATH}?include_credentials={value}")).bearer(TOKEN);
        contract.stopped_by_prism(&call).await.assert_prism_rejected(&["query", "include_credentials"]);
        contract.direct(&call).await.assert_status(200);
    }
}
