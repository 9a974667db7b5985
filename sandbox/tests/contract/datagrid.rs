//! Datagrid (`datagrid.yaml`, docs/providers.md, Datagrid) behind Prism.

use serde_json::json;

use crate::exchange::Call;
use crate::fixture::{Contract, Provider};

const TOKEN: &str = "dg-contract-key";

async fn with_connection(id: &str) -> Contract {
    let contract = Contract::start(Provider::Datagrid).await;
    contract.seed(id, json!({"name": "Team drive"})).await;
    contract
}

#[tokio::test]
async fn get_and_patch_conform_to_connection() {
    let contract = with_connection("conn_contract").await;

    let read = contract.forwarded(&Call::get("/connections/conn_contract").bearer(TOKEN)).await;
    read.assert_conforms(200);
    assert_eq!(read.body["name"], "Team drive");

    let renamed = Call::patch("/connections/conn_contract", json!({"name": "Shared drive"})).bearer(TOKEN);
    let patched = contract.forwarded(&renamed).await;
    patched.assert_conforms(200);
    assert_eq!(patched.body["name"], "Shared drive");

    // The rename is what a later read sees.
    let again = contract.forwarded(&Call::get("/connections/conn_contract").bearer(TOKEN)).await;
    again.assert_conforms(200);
    assert_eq!(again.body["name"], "Shared drive");
}

#[tokio::test]
async fn document_invalid_patches_are_rejected_by_prism_and_emulator() {
    let contract = with_connection("conn_contract").await;
    let path = "/connections/conn_contract";

    // `name` is required: Prism reports it at the body, the emulator answers 400.
    let no_name = Call::patch(path, json!({})).bearer(TOKEN);
    contract.rejected_by_both(&no_name, &["body"], 400).await;

    let numeric_name = Call::patch(path, json!({"name": 7})).bearer(TOKEN);
    contract.rejected_by_both(&numeric_name, &["body", "name"], 400).await;

    // The document only lists application/json; Prism reports a 415 inside its 422 (with
    // no location), the emulator answers 415 itself.
    let text = Call::new(reqwest::Method::PATCH, path).raw_body("text/plain", "name=x").bearer(TOKEN);
    contract.rejected_by_both(&text, &[], 415).await;

    // A failed write changes nothing.
    let read = contract.forwarded(&Call::get(path).bearer(TOKEN)).await;
    read.assert_conforms(200);
    assert_eq!(read.body["name"], "Team drive");
}

#[tokio::test]
async fn missing_credentials_are_rejected_by_prism_and_emulator() {
    let contract = with_connection("conn_contract").await;
    let anonymous = Call::get("/connections/conn_contract");
    contract.stopped_by_prism(&anonymous).await.assert_prism_unauthorized();
    contract.direct(&anonymous).await.assert_status(401);
}

#[tokio::test]
async fn not_found_and_rate_limit_conform() {
    let contract = with_connection("conn_contract").await;

    // 404 is documented without a body schema, so Prism accepts any body; a connection of
    // another teamspace gets the same 404 as a missing one (docs/providers.md, Datagrid).
    let missing = contract.forwarded(&Call::get("/connections/conn_missing").bearer(TOKEN)).await;
    missing.assert_conforms(404);
    let rename_missing = Call::patch("/connections/conn_missing", json!({"name": "x"})).bearer(TOKEN);
    contract.forwarded(&rename_missing).await.assert_conforms(404);

    // 429 is documented with `RateLimitError`, and Prism checks the emulator's body against it.
    contract.set_rate_limit(1, 60.0).await;
    let read = Call::get("/connections/conn_contract").bearer(TOKEN);
    contract.forwarded(&read).await.assert_conforms(200);
    let limited = contract.forwarded(&read).await;
    limited.assert_conforms(429);
    assert_eq!(limited.body["error"], "rate_limit_exceeded");
    assert!(limited.header("retry-after").is_some(), "429 without Retry-After: {:?}", limited.headers);
}

#[tokio::test]
async fn wrong_token_is_an_undocumented_401() {
    let contract = with_connection("conn_contract").await;
    contract.set_tokens(&[TOKEN], &[]).await;
    // The document lists no 401, and its body is undocumented ([I], docs/providers.md, Datagrid).
    let stranger = Call::get("/connections/conn_contract").bearer("someone-else");
    contract.forwarded(&stranger).await.assert_undocumented_status(401);
}

/// Choices where Datagrid documents nothing (docs/providers.md, Datagrid [I]): the document
/// allows any string `name` and extra keys. The emulator ignores extra keys (200, conforming) and
/// rejects a blank name with 400, a status the operation does not list, so Prism relays it
/// with the status warning; its body reuses the `RateLimitError` envelope fields.
#[tokio::test]
async fn extra_keys_are_ignored_and_a_blank_name_is_an_undocumented_400() {
    let contract = with_connection("conn_contract").await;
    let path = "/connections/conn_contract";

    let extra = Call::patch(path, json!({"name": "Renamed", "color": "blue"})).bearer(TOKEN);
    let patched = contract.forwarded(&extra).await;
    patched.assert_conforms(200);
    assert_eq!(patched.body["name"], "Renamed");
    assert!(patched.body.get("color").is_none(), "{}", patched.text);

    let blank = Call::patch(path, json!({"name": "  "})).bearer(TOKEN);
    let rejected = contract.forwarded(&blank).await;
    rejected.assert_undocumented_status(400);
    assert_eq!(rejected.body["status_code"], 400);
    assert!(rejected.body["message"].is_string() && rejected.body["retryable"].is_boolean(), "{}", rejected.text);
}

/// Disagreement: the SDK types `valid` as `bool|null` and `value` as `str|null`
/// (docs/providers.md, Datagrid [C] types/connection.py), the document as non-nullable boolean and
/// string. The emulator leaves them out when unknown, which both accept.
#[tokio::test]
async fn unknown_valid_and_value_are_omitted_not_null() {
    let contract = Contract::start(Provider::Datagrid).await;
    contract.seed("conn_known", json!({"name": "Known", "valid": true, "value": "acct-42"})).await;
    contract.seed("conn_unknown", json!({"name": "Unknown", "valid": null, "value": null})).await;

    let known = contract.forwarded(&Call::get("/connections/conn_known").bearer(TOKEN)).await;
    known.assert_conforms(200);
    assert_eq!((&known.body["valid"], &known.body["value"]), (&json!(true), &json!("acct-42")));

    let unknown = contract.forwarded(&Call::get("/connections/conn_unknown").bearer(TOKEN)).await;
    unknown.assert_conforms(200);
    assert!(unknown.body.get("valid").is_none() && unknown.body.get("value").is_none(), "{}", unknown.text);
}

/// `Datagrid-Teamspace` scopes what a key sees; a connection of another teamspace gets the
/// documented 404, like a missing one (docs/providers.md, Datagrid [D]).
#[tokio::test]
async fn other_teamspace_gets_the_documented_404() {
    let contract = Contract::start(Provider::Datagrid).await;
    contract.seed("conn_ts", json!({"name": "Scoped", "teamspace_id": "ts_alpha"})).await;

    let own = Call::get("/connections/conn_ts").bearer(TOKEN).header("datagrid-teamspace", "ts_alpha");
    contract.forwarded(&own).await.assert_conforms(200);
    let other = Call::get("/connections/conn_ts").bearer(TOKEN).header("datagrid-teamspace", "ts_beta");
    contract.forwarded(&other).await.assert_conforms(404);
    let rename =
        Call::patch("/connections/conn_ts", json!({"name": "x"})).bearer(TOKEN).header("datagrid-teamspace", "ts_beta");
    contract.forwarded(&rename).await.assert_conforms(404);
}

/// `datagrid.yaml` documents only GET and PATCH of one connection, so the cursor-paged list
/// (docs/providers.md, Datagrid [D]) is outside this tier: Prism answers it itself with its
/// NO_PATH_MATCHED 404 and forwards nothing. `providers_datagrid` covers the list.
#[tokio::test]
async fn the_list_is_not_in_the_document() {
    let contract = with_connection("conn_contract").await;
    let list = Call::get("/connections?limit=5").bearer(TOKEN);
    contract.stopped_by_prism(&list).await.assert_prism_no_route();
    let direct = contract.direct(&list).await;
    direct.assert_status(200);
    assert_eq!(direct.body["object"], "list");
}
