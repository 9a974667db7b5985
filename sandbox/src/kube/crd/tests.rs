//! Admission of custom objects end to end (prune → default → validate → CEL) against a
//! CRD shaped like the project's own Connection CRD.

use serde_json::{Value, json};

use super::*;

/// Shaped like the project's Connection CRD (the operator generates the real one).
const CONNECTION_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: connections.connection-operator.dev
spec:
  group: connection-operator.dev
  scope: Namespaced
  names: {plural: connections, singular: connection, kind: Connection, listKind: ConnectionList, shortNames: [conn]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Provider, type: string, jsonPath: .status.provider}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A connection at a SaaS integration provider.
        required: [spec]
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            description: Desired connection.
            x-kubernetes-validations:
            - rule: "[has(self.nango), has(self.mielto), has(self.arena), has(self.datagrid)].filter(x, x).size() == 1"
              message: exactly one provider block (nango, mielto, arena, datagrid) must be set
            properties:
              connectionId:
                type: string
                minLength: 1
                maxLength: 2000
                x-kubernetes-validations:
                - {rule: self == oldSelf, message: connectionId is immutable}
              deletionPolicy: {type: string, enum: [Delete, Orphan], default: Delete}
              nango:
                type: object
                required: [integrationId]
                properties: {integrationId: {type: string}}
              mielto:
                type: object
                properties: {workspace: {type: string}}
              datagrid:
                type: object
                properties: {retries: {type: integer, minimum: 0, default: 3}}
              arena:
                type: object
                properties:
                  channel: {type: string}
                  metadata:
                    type: object
                    maxProperties: 50
                    additionalProperties: {type: string, maxLength: 2000}
                    x-kubernetes-validations:
                    - rule: "self.all(k, k.matches('^[A-Za-z0-9_]{1,40}$'))"
                      message: metadata keys must match ^[A-Za-z0-9_]{1,40}$
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

pub(super) fn connection_crd() -> Value {
    serde_yaml::from_str(CONNECTION_CRD).expect("valid YAML")
}

fn compiled() -> CompiledVersion {
    CompiledVersion::compile(&connection_crd(), "v1alpha1").expect("compiles")
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection", "metadata": {"name": "c1", "namespace": "default"}, "spec": spec})
}

fn invalid(r: Result<Vec<String>, AdmitError>) -> Vec<String> {
    match r {
        Err(AdmitError::Invalid(errs)) => errs.iter().map(ToString::to_string).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn the_connection_crd_itself_is_accepted() {
    assert_eq!(validate_crd(&connection_crd(), None), Ok(()));
}

#[test]
fn valid_object_is_defaulted() {
    let mut o = obj(json!({"connectionId": "c", "datagrid": {}}));
    let warnings = compiled().admit_object(&mut o, None, FieldValidation::Strict).expect("admitted");
    assert!(warnings.is_empty());
    assert_eq!(o["spec"]["deletionPolicy"], "Delete");
    assert_eq!(o["spec"]["datagrid"]["retries"], 3);
}

#[test]
fn unknown_fields_by_field_validation_mode() {
    let v = compiled();
    let base = obj(json!({"connectionId": "c", "nango": {"integrationId": "gh", "colour": "red"}, "zzz": 1}));

    let mut o = base.clone();
    match v.admit_object(&mut o, None, FieldValidation::Strict) {
        Err(AdmitError::StrictDecoding { message, unknown_fields }) => {
            assert_eq!(
                message,
                r#"Connection in version "v1alpha1" cannot be handled as a Connection: strict decoding error: unknown field "spec.nango.colour", unknown field "spec.zzz""#
            );
            assert_eq!(unknown_fields, vec!["spec.nango.colour", "spec.zzz"]);
        }
        other => panic!("expected strict decoding error, got {other:?}"),
    }
    // The folded form for callers of `admit`.
    let mut o = base.clone();
    let errs = v.admit(&mut o, None, FieldValidation::Strict).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].reason, STRICT_DECODING_REASON);

    let mut o = base.clone();
    let warnings = v.admit_object(&mut o, None, FieldValidation::Warn).expect("admitted");
    assert_eq!(warnings, vec![r#"unknown field "spec.nango.colour""#, r#"unknown field "spec.zzz""#]);
    assert!(o["spec"].get("zzz").is_none());

    let mut o = base;
    assert_eq!(v.admit_object(&mut o, None, FieldValidation::Ignore).expect("admitted"), Vec::<String>::new());
    assert!(o["spec"]["nango"].get("colour").is_none());
}

#[test]
fn project_rules_evaluate() {
    let v = compiled();
    let mut two = obj(json!({"connectionId": "c", "nango": {"integrationId": "gh"}, "mielto": {}}));
    assert_eq!(
        invalid(v.admit_object(&mut two, None, FieldValidation::Strict)),
        vec![r#"spec: Invalid value: exactly one provider block (nango, mielto, arena, datagrid) must be set"#]
    );

    let meta: serde_json::Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut big = obj(json!({"connectionId": "c", "arena": {"metadata": meta}}));
    assert_eq!(
        invalid(v.admit_object(&mut big, None, FieldValidation::Strict)),
        vec![
            "spec.arena.metadata: Too many: 51: must have at most 50 items",
            r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
        ]
    );

    let mut long_value = obj(json!({"connectionId": "c", "arena": {"metadata": {"key": "x".repeat(2001)}}}));
    assert_eq!(
        invalid(v.admit_object(&mut long_value, None, FieldValidation::Strict)),
        vec![
            "spec.arena.metadata.key: Too long: may not be more than 2000 bytes",
            r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
        ]
    );
    let mut bad_key = obj(json!({"connectionId": "c", "arena": {"metadata": {"bad key": "v"}}}));
    assert_eq!(
        invalid(v.admit_object(&mut bad_key, None, FieldValidation::Strict)),
        vec![r#"spec.arena.metadata: Invalid value: metadata keys must match ^[A-Za-z0-9_]{1,40}$"#]
    );

    let old = obj(json!({"connectionId": "c", "nango": {"integrationId": "gh"}}));
    let mut changed = obj(json!({"connectionId": "d", "nango": {"integrationId": "gh"}}));
    assert_eq!(
        invalid(v.admit_object(&mut changed, Some(&old), FieldValidation::Strict)),
        vec![r#"spec.connectionId: Invalid value: "d": connectionId is immutable"#]
    );
    let mut same = old.clone();
    assert!(v.admit_object(&mut same, Some(&old), FieldValidation::Strict).is_ok());
}

#[test]
fn blocking_schema_errors_skip_cel() {
    let v = compiled();
    let mut o = obj(json!({"connectionId": "", "nango": {}, "mielto": {}, "deletionPolicy": "Keep"}));
    assert_eq!(
        invalid(v.admit_object(&mut o, None, FieldValidation::Strict)),
        vec![
            r#"spec.connectionId: Invalid value: "": spec.connectionId in body should be at least 1 chars long"#,
            "spec.nango.integrationId: Required value",
            r#"spec.deletionPolicy: Unsupported value: "Keep": supported values: "Delete", "Orphan""#,
            r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
        ]
    );
    // A plain `Invalid value` (minLength) does not block the rules.
    let mut o = obj(json!({"connectionId": "", "nango": {"integrationId": "gh"}, "mielto": {}}));
    assert_eq!(
        invalid(v.admit_object(&mut o, None, FieldValidation::Strict)),
        vec![
            r#"spec.connectionId: Invalid value: "": spec.connectionId in body should be at least 1 chars long"#,
            r#"spec: Invalid value: exactly one provider block (nango, mielto, arena, datagrid) must be set"#,
        ]
    );
    let mut o = obj(json!({"connectionId": 7, "nango": {"integrationId": "gh"}, "mielto": {}}));
    let errs = invalid(v.admit_object(&mut o, None, FieldValidation::Strict));
    assert_eq!(
        errs,
        vec![
            r#"spec.connectionId: Invalid value: "integer": spec.connectionId in body must be of type string: "integer""#,
            r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
        ]
    );
    let mut missing =
        json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection", "metadata": {"name": "x"}});
    assert_eq!(
        invalid(v.admit_object(&mut missing, None, FieldValidation::Strict)),
        vec![
            "spec: Required value",
            r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#
        ]
    );
}

#[test]
fn status_preserves_unknown_fields() {
    let v = compiled();
    let mut o = obj(json!({"connectionId": "c", "mielto": {}}));
    o["status"] = json!({"provider": "mielto", "conditions": [{"type": "Ready", "status": "True"}]});
    v.admit_object(&mut o, None, FieldValidation::Strict).expect("admitted");
    assert_eq!(o["status"]["provider"], "mielto");
}

#[test]
fn updates_ratchet_unchanged_invalid_values() {
    let v = compiled();
    // Stored before the schema was tightened: a retired enum value and two provider blocks.
    let old = obj(json!({"connectionId": "c", "deletionPolicy": "Keep", "arena": {"channel": "x"}, "mielto": {}}));
    let mut update = old.clone();
    update["metadata"]["labels"] = json!({"team": "a"});
    let warnings = v
        .admit_object(&mut update, Some(&old), FieldValidation::Strict)
        .expect("unchanged invalid values are ratcheted");
    assert_eq!(
        warnings,
        vec![r#"spec: Invalid value: exactly one provider block (nango, mielto, arena, datagrid) must be set"#]
    );
    // Touching spec re-evaluates the spec rule; the untouched enum value stays ratcheted.
    let mut touched = old.clone();
    touched["spec"]["arena"]["channel"] = json!("y");
    assert_eq!(
        invalid(v.admit_object(&mut touched, Some(&old), FieldValidation::Strict)),
        vec![r#"spec: Invalid value: exactly one provider block (nango, mielto, arena, datagrid) must be set"#]
    );
    let mut worse = old.clone();
    worse["spec"]["deletionPolicy"] = json!("Never");
    assert_eq!(
        invalid(v.admit_object(&mut worse, Some(&old), FieldValidation::Strict)),
        vec![
            r#"spec.deletionPolicy: Unsupported value: "Never": supported values: "Delete", "Orphan""#,
            r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#,
        ]
    );
    // The same object is refused on create.
    let mut fresh = old.clone();
    assert_eq!(invalid(v.admit_object(&mut fresh, None, FieldValidation::Strict)).len(), 2);
}
