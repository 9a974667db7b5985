//! Nango (`nango.yaml`, docs/providers.md, Nango) behind Prism.

use serde_json::{Value, json};

use crate::exchange::Call;
use crate::fixture::{Contract, Provider};

/// Nango secret keys look like UUIDv4 (docs/providers.md, Nango, `invalid_secret_key_format`).
const TOKEN: &str = "5b0f7c1e-2d3a-4c5b-8e6f-7a8b9c0d1e2f";
const KEY: &str = "github-prod";

async fn with_connections(connections: &[(&str, Value)]) -> Contract {
    let contract = Contract::start(Provider::Nango).await;
    for (id, metadata) in connections {
        let state = match metadata {
            Value::Null => json!({"provider_config_key": KEY}),
            metadata => json!({"provider_config_key": KEY, "metadata": metadata}),
        };
        contract.seed(id, state).await;
    }
    contract
}

fn get(id: &str, query: &str) -> Call {
    Call::get(format!("/connections/{id}?provider_config_key={KEY}{query}")).bearer(TOKEN)
}

fn write(method: reqwest::Method, path: &str, body: Value) -> Call {
    Call::new(method, path).json(body).bearer(TOKEN)
}

#[tokio::test]
async fn reads_conform_to_connection_full_and_the_list_schema() {
    let contract = with_connections(&[("acme", json!({"plan": "pro"}))]).await;

    let read = contract.forwarded(&get("acme", "")).await;
    read.assert_conforms(200);
    assert_eq!(read.body["metadata"], json!({"plan": "pro"}));

    // The node SDK's getMetadata sends the three booleans as `false` (docs/providers.md, Nango).
    let sdk = "&force_refresh=false&refresh_token=false&refresh_github_app_jwt_token=false";
    contract.forwarded(&get("acme", sdk)).await.assert_conforms(200);

    // The deprecated path still works and returns the same ConnectionFull.
    let legacy = Call::get(format!("/connection/acme?provider_config_key={KEY}")).bearer(TOKEN);
    contract.forwarded(&legacy).await.assert_conforms(200);

    let list = contract.forwarded(&Call::get("/connections?connectionId=acme").bearer(TOKEN)).await;
    list.assert_conforms(200);
    assert_eq!(list.body["connections"][0]["connection_id"], "acme");

    // Tags, provider and connection_config in both shapes; the list filters by tag
    // (`tags[k]=v`, a deepObject Prism validates against Tags) and by a partial id.
    let tagged = json!({
        "provider_config_key": KEY,
        "provider": "github",
        "tags": {"env": "prod", "team": "core"},
        "connection_config": {"subdomain": "acme"},
        "metadata": {"region": "eu"},
    });
    contract.seed("tagged", tagged).await;
    let read = contract.forwarded(&get("tagged", "")).await;
    read.assert_conforms(200);
    assert_eq!(read.body["tags"], json!({"env": "prod", "team": "core"}));
    for query in ["tags[env]=prod", "search=tagg", "limit=1"] {
        let list = contract.forwarded(&Call::get(format!("/connections?{query}")).bearer(TOKEN)).await;
        list.assert_conforms(200);
        let ids: Vec<&Value> =
            list.body["connections"].as_array().expect("connections").iter().map(|c| &c["connection_id"]).collect();
        assert_eq!(ids.len(), 1, "{query}: {ids:?}");
    }
}

/// Disagreement: `ConnectionFull.metadata` is `type: object` in the document, but the server
/// returns `data.metadata || null`, so `null` for a connection whose metadata was never set
/// (docs/providers.md, Nango [C] formatters/connection.ts). The emulator follows the server,
/// and Prism reports exactly that one violation and nothing else. The list endpoint documents
/// `object|null` and so accepts the same `null`.
#[tokio::test]
async fn never_set_metadata_is_null_which_only_the_list_schema_allows() {
    let contract = with_connections(&[("fresh", Value::Null)]).await;

    let direct = contract.direct(&get("fresh", "")).await;
    direct.assert_status(200);
    assert_eq!(direct.body["metadata"], Value::Null);

    let through_prism = contract.forwarded(&get("fresh", "")).await;
    assert!(through_prism.is_prism_violations(), "{}", through_prism.text);
    assert_eq!(contract.journal().await[0]["status"], 200, "the emulator answered 200");
    let violations = through_prism.violations();
    assert!(
        violations.len() == 1
            && violations[0]["location"] == json!(["response", "body", "metadata"])
            && violations[0]["code"] == "type",
        "expected only the metadata-null violation, got {violations:?}"
    );

    let list = contract.forwarded(&Call::get("/connections?connectionId=fresh").bearer(TOKEN)).await;
    list.assert_conforms(200);
    assert_eq!(list.body["connections"][0]["metadata"], Value::Null);
}

#[tokio::test]
async fn metadata_writes_conform_and_echo_the_request() {
    use reqwest::Method;
    let contract = with_connections(&[("acme", json!({"plan": "pro"})), ("beta", json!({}))]).await;

    for path in ["/connections/metadata", "/connection/metadata"] {
        let merge =
            json!({"connection_id": "acme", "provider_config_key": KEY, "metadata": {"seats": 3, "plan": null}});
        let patched = contract.forwarded(&write(Method::PATCH, path, merge.clone())).await;
        patched.assert_conforms(200);
        assert_eq!(patched.body, merge, "PATCH echoes the request body (docs/providers.md, Nango)");

        let replace =
            json!({"connection_id": ["acme", "beta"], "provider_config_key": KEY, "metadata": {"plan": "team"}});
        let posted = contract.forwarded(&write(Method::POST, path, replace.clone())).await;
        posted.assert_conforms(201);
        assert_eq!(posted.body, replace, "POST echoes the request body (docs/providers.md, Nango)");
    }

    let read = contract.forwarded(&get("beta", "")).await;
    read.assert_conforms(200);
    assert_eq!(read.body["metadata"], json!({"plan": "team"}));

    // An empty id array passes validation and updates nothing (docs/providers.md, Nango [C]).
    let nobody = json!({"connection_id": [], "provider_config_key": KEY, "metadata": {"plan": "gone"}});
    let patched = contract.forwarded(&write(Method::PATCH, "/connections/metadata", nobody.clone())).await;
    patched.assert_conforms(200);
    assert_eq!(patched.body, nobody);
    contract.forwarded(&write(Method::POST, "/connections/metadata", nobody)).await.assert_conforms(201);
    let read = contract.forwarded(&get("beta", "")).await;
    assert_eq!(read.body["metadata"], json!({"plan": "team"}));
}

#[tokio::test]
async fn document_invalid_requests_are_rejected_by_prism_and_emulator() {
    use reqwest::Method;
    let contract = with_connections(&[("acme", json!({"plan": "pro"}))]).await;
    let doc = &contract.document;

    // Nango validates with zod and answers 400 `invalid_query_params` / `invalid_body`
    // (docs/providers.md, Nango); Prism's proxy answers any request violation with 422.
    let no_key = Call::get("/connections/acme").bearer(TOKEN);
    // Prism reports a missing required parameter at its parent location.
    let direct = contract.rejected_by_both(&no_key, &["query"], 400).await;
    assert_eq!(direct.body["error"]["code"], "invalid_query_params");
    doc.assert_conforms("StdError", &direct.body);

    let not_boolean = get("acme", "&force_refresh=maybe");
    let direct = contract.rejected_by_both(&not_boolean, &["query", "force_refresh"], 400).await;
    assert_eq!(direct.body["error"]["code"], "invalid_query_params");
    doc.assert_conforms("StdError", &direct.body);

    let bodies = [
        (json!({"connection_id": "acme", "provider_config_key": KEY, "metadata": []}), vec!["body", "metadata"]),
        (json!({"connection_id": "acme", "provider_config_key": KEY, "metadata": null}), vec!["body", "metadata"]),
        (json!({"connection_id": "acme", "provider_config_key": KEY}), vec!["body"]),
        (json!({"connection_id": 42, "provider_config_key": KEY, "metadata": {}}), vec!["body", "connection_id"]),
        (
            json!({"connection_id": "acme", "provider_config_key": 7, "metadata": {}}),
            vec!["body", "provider_config_key"],
        ),
    ];
    for (body, location) in bodies {
        for method in [Method::PATCH, Method::POST] {
            let call = write(method, "/connections/metadata", body.clone());
            let direct = contract.rejected_by_both(&call, &location, 400).await;
            assert_eq!(direct.body["error"]["code"], "invalid_body", "{body}");
            doc.assert_conforms("StdError", &direct.body);
        }
    }

    let not_integer = Call::get("/connections?limit=many").bearer(TOKEN);
    let direct = contract.rejected_by_both(&not_integer, &["query", "limit"], 400).await;
    assert_eq!(direct.body["error"]["code"], "invalid_query_params");
    doc.assert_conforms("StdError", &direct.body);

    // A non-JSON body: Prism reports the 415 inside its 422; Nango answers 415
    // `invalid_content_type` (docs/providers.md, Nango [C] json.middleware.ts).
    let text = Call::new(Method::PATCH, "/connections/metadata").raw_body("text/plain", "x").bearer(TOKEN);
    let direct = contract.rejected_by_both(&text, &[], 415).await;
    assert_eq!(direct.body["error"]["code"], "invalid_content_type");
    doc.assert_conforms("StdError", &direct.body);

    // None of the rejected writes changed anything.
    let read = contract.forwarded(&get("acme", "")).await;
    read.assert_conforms(200);
    assert_eq!(read.body["metadata"], json!({"plan": "pro"}));
}

#[tokio::test]
async fn missing_credentials_are_rejected_by_prism_and_emulator() {
    let contract = with_connections(&[("acme", json!({}))]).await;
    let anonymous = Call::get(format!("/connections/acme?provider_config_key={KEY}"));
    contract.stopped_by_prism(&anonymous).await.assert_prism_unauthorized();
    let direct = contract.direct(&anonymous).await;
    direct.assert_status(401);
    assert_eq!(direct.body["error"]["code"], "missing_auth_header");
    // The operations list no 401, and the server's body has `payload` (see below).
    assert_only_extra_fields_outside_std_error(&contract.document, &direct.body, &["payload"]);
}

/// Rules the document cannot express (docs/providers.md, Nango [C]): the strict query and body, the
/// id patterns, an unknown integration. Prism forwards these requests; the emulator rejects
/// them, and Prism checks the rejection against the documented 400 (StdError on the GET, an
/// open `{message}` object on the metadata writes, so there the StdError check is ours).
#[tokio::test]
async fn stricter_server_rules_reach_the_emulator_and_conform() {
    use reqwest::Method;
    let contract = with_connections(&[("acme", json!({"plan": "pro"}))]).await;
    let doc = &contract.document;

    let unknown_param = contract.forwarded(&get("acme", "&verbose=true")).await;
    unknown_param.assert_conforms(400);
    assert_eq!(unknown_param.body["error"]["code"], "invalid_query_params");

    let unknown_key = Call::get("/connections/acme?provider_config_key=nope").bearer(TOKEN);
    let unknown_key = contract.forwarded(&unknown_key).await;
    unknown_key.assert_conforms(400);
    assert_eq!(unknown_key.body["error"]["code"], "unknown_provider_config");

    // `limit` is a bare integer in the document; the server bounds it to 1..2000.
    for limit in ["0", "2001"] {
        let out_of_range = Call::get(format!("/connections?limit={limit}")).bearer(TOKEN);
        let rejected = contract.forwarded(&out_of_range).await;
        rejected.assert_conforms(400);
        assert_eq!(rejected.body["error"]["code"], "invalid_query_params");
    }

    let extra_key = json!({"connection_id": "acme", "provider_config_key": KEY, "metadata": {}, "tags": {}});
    let empty_id = json!({"connection_id": "", "provider_config_key": KEY, "metadata": {}});
    let bad_key = json!({"connection_id": "acme", "provider_config_key": "no/slash", "metadata": {}});
    for body in [extra_key, empty_id, bad_key] {
        let rejected = contract.forwarded(&write(Method::PATCH, "/connections/metadata", body.clone())).await;
        rejected.assert_conforms(400);
        assert_eq!(rejected.body["error"]["code"], "invalid_body", "{body}");
        doc.assert_conforms("StdError", &rejected.body);
    }

    let body = json!({"connection_id": "acme", "provider_config_key": KEY, "metadata": {}});
    let with_query = write(Method::POST, "/connections/metadata?dry_run=1", body);
    let rejected = contract.forwarded(&with_query).await;
    rejected.assert_conforms(400);
    assert_eq!(rejected.body["error"]["code"], "invalid_query_params");
    doc.assert_conforms("StdError", &rejected.body);
}

#[tokio::test]
async fn not_found_conforms_to_std_error() {
    use reqwest::Method;
    let contract = with_connections(&[("acme", json!({}))]).await;
    let doc = &contract.document;

    // GET documents 404 as StdError, and Prism checks it.
    let missing = contract.forwarded(&get("ghost", "")).await;
    missing.assert_conforms(404);
    assert_eq!(missing.body["error"]["code"], "not_found");

    // The metadata writes do not document 404; their `unknown_connection` body is StdError.
    let body = json!({"connection_id": ["acme", "ghost"], "provider_config_key": KEY, "metadata": {"a": 1}});
    let missing = contract.forwarded(&write(Method::PATCH, "/connections/metadata", body)).await;
    missing.assert_undocumented_status(404);
    assert_eq!(missing.body["error"]["code"], "unknown_connection");
    doc.assert_conforms("StdError", &missing.body);
}

/// 401 for an unknown key and 429 are not listed on these operations, so Prism relays them
/// with the status warning only. Their bodies as Nango's server sends them (docs/providers.md,
/// Nango [C]) do not fit the document's StdError, whose `additionalProperties: false` forbids
/// the server's extra fields (`payload` on auth errors, `method` and `path` on 429). The
/// emulator follows the server; the check below pins that only those fields are outside
/// StdError.
#[tokio::test]
async fn auth_and_rate_limit_errors_are_undocumented_statuses() {
    let contract = with_connections(&[("acme", json!({}))]).await;
    let doc = &contract.document;

    contract.set_tokens(&[TOKEN], &[]).await;
    let stranger = Call::get(format!("/connections/acme?provider_config_key={KEY}"))
        .bearer("0e3c5a7b-9d1f-4a2b-8c4d-6e8f0a1b2c3d");
    let denied = contract.forwarded(&stranger).await;
    denied.assert_undocumented_status(401);
    assert_only_extra_fields_outside_std_error(doc, &denied.body, &["payload"]);

    contract.set_rate_limit(1, 60.0).await;
    contract.forwarded(&get("acme", "")).await.assert_conforms(200);
    let limited = contract.forwarded(&get("acme", "")).await;
    limited.assert_undocumented_status(429);
    assert_eq!(limited.body["error"]["code"], "too_many_request");
    assert!(limited.header("retry-after").is_some(), "429 without Retry-After: {:?}", limited.headers);
    assert_only_extra_fields_outside_std_error(doc, &limited.body, &["method", "path"]);
}

/// `body` carries the server's `extra` fields inside `error`, which StdError forbids, and is
/// StdError apart from them.
fn assert_only_extra_fields_outside_std_error(doc: &crate::schema::Document, body: &Value, extra: &[&str]) {
    for field in extra {
        assert!(body["error"].get(*field).is_some(), "the server's {field} is missing from {body}");
    }
    assert!(!doc.errors_against("StdError", body).is_empty(), "{body} unexpectedly fits StdError");
    let mut trimmed = body.clone();
    if let Some(error) = trimmed["error"].as_object_mut() {
        for field in extra {
            error.remove(*field);
        }
    }
    doc.assert_conforms("StdError", &trimmed);
}

/// 403 `forbidden` (docs/providers.md, Nango [C] scope.middleware.ts, getConnection.ts): a key
/// without `connections:update` writing, and `force_refresh`/`refresh_token` asked of a key
/// without `connections:read_credentials`. No operation lists 403; the body is StdError.
#[tokio::test]
async fn missing_scopes_are_undocumented_403s_in_std_error() {
    let contract = with_connections(&[("acme", json!({"plan": "pro"}))]).await;
    let doc = &contract.document;
    let read_only = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    contract.set_tokens(&[TOKEN], &[read_only]).await;

    let body = json!({"connection_id": "acme", "provider_config_key": KEY, "metadata": {"plan": "free"}});
    let write = Call::patch("/connections/metadata", body).bearer(read_only);
    let forbidden = contract.forwarded(&write).await;
    forbidden.assert_undocumented_status(403);
    assert_eq!(forbidden.body["error"]["code"], "forbidden");
    doc.assert_conforms("StdError", &forbidden.body);

    for flag in ["force_refresh", "refresh_token"] {
        let refresh = contract.forwarded(&get("acme", &format!("&{flag}=true"))).await;
        refresh.assert_undocumented_status(403);
        assert_eq!(refresh.body["error"]["code"], "forbidden");
        doc.assert_conforms("StdError", &refresh.body);
    }

    let read = contract.forwarded(&get("acme", "")).await;
    read.assert_conforms(200);
    assert_eq!(read.body["metadata"], json!({"plan": "pro"}), "the refused write changed nothing");
}

/// Connection ids may hold the punctuation Nango's id pattern allows (docs/providers.md, Nango
/// `^[a-zA-Z0-9,.;:=+~[\]|@${}"'\\/_ -]+$`), percent-encoded in the path; Prism must
/// forward them unchanged and the emulator find the connection.
#[tokio::test]
async fn ids_with_allowed_punctuation_pass_through_prism() {
    let ids = ["user@example.com", "org/team", "a b", "x|y", "{tenant}", "it's"];
    let seeds: Vec<(&str, Value)> = ids.iter().map(|id| (*id, json!({"n": 1}))).collect();
    let contract = with_connections(&seeds).await;
    for id in ids {
        let encoded: String =
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>().replace('+', "%20");
        let read = contract.via_prism(&get(&encoded, "")).await;
        read.assert_conforms(200);
        assert_eq!(read.body["connection_id"], id);

        let body = json!({"connection_id": id, "provider_config_key": KEY, "metadata": {"n": 2}});
        let patched = contract.forwarded(&write(reqwest::Method::PATCH, "/connections/metadata", body.clone())).await;
        patched.assert_conforms(200);
        assert_eq!(patched.body, body);
    }
}
