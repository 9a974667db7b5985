//! The contract checks can fail: a response that breaks the document, served by the
//! emulator's fault injection, is caught by Prism and by the harness assertions.

use serde_json::json;

use crate::exchange::Call;
use crate::fixture::{Contract, Provider};

#[tokio::test]
async fn prism_turns_a_nonconforming_response_into_a_violation() {
    let contract = Contract::start(Provider::Datagrid).await;
    contract.seed("conn_contract", json!({"name": "Team drive"})).await;
    let read = Call::get("/connections/conn_contract").bearer("dg-contract-key");

    // A 200 whose body lacks the required Connection fields.
    let partial = json!({"object": "connection", "id": "conn_contract"}).to_string();
    contract
        .inject_fault(json!({"method": "GET", "path": "/connections/conn_contract", "status": 200, "body": partial}))
        .await;
    let broken = contract.forwarded(&read).await;
    assert_eq!(broken.status, 500, "Prism with --errors answers a violating response with 500: {}", broken.text);
    assert!(broken.is_prism_violations(), "{}", broken.text);
    let violations = broken.violations();
    for field in ["name", "teamspace_id", "connector_id", "created_at", "updated_at"] {
        assert!(
            violations
                .iter()
                .any(|v| v["code"] == "required" && v["message"].as_str().is_some_and(|m| m.contains(field))),
            "no violation for missing {field}: {violations:?}"
        );
    }
    assert!(broken.conformance_problem(200).is_some(), "the conformance check accepted a violating response");

    // A 429 whose body is not the documented RateLimitError.
    let wrong_429 = json!({"message": "slow down"}).to_string();
    contract
        .inject_fault(json!({"method": "GET", "path": "/connections/conn_contract", "status": 429, "body": wrong_429}))
        .await;
    let broken = contract.forwarded(&read).await;
    assert_eq!(broken.status, 500, "{}", broken.text);
    assert!(
        broken.violations().iter().any(|v| v["location"] == json!(["response", "body"]) && v["code"] == "required"),
        "{:?}",
        broken.violations()
    );

    // Once the faults are used up, the emulator's own answer conforms again.
    contract.forwarded(&read).await.assert_conforms(200);
}
