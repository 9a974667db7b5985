//! The CRD engine: everything kube-apiserver does with a CustomResourceDefinition's schema.
//! Pure functions over JSON; the object store (`super`) calls them.
//!
//! INTERFACE CONTRACT between the store and this engine (keep the signatures stable):
//! - `validate_crd(crd, old)`: admission of a CRD object itself (structural schema rules,
//!   names, versions, CEL rules that compile and have a CEL type, CEL on defaults).
//! - `crd_warnings(crd, old)`: the `Warning`s of a CRD write (unrecognized formats).
//! - `CompiledVersion::compile(crd, version)`: prepare one served version for admission.
//! - `CompiledVersion::admit(obj, old, validation)`: defaulting, pruning (or Strict/Warn
//!   handling of unknown fields), structural validation and CEL rules (transition rules only
//!   when `old` is given). Mutates `obj`. Ok = warnings for the `Warning` header.
//! - `openapi::group_version_document`, `table::*`: OpenAPI v3 and Table rendering.
//!
//! Rooms: `schema` (accessors and path notations), `prune`, `defaults`, `validate`
//! (+ `formats`), `cel` (x-kubernetes-validations), `definition` (CRD admission),
//! `openapi` (+ `builtin_schemas` from k8s-openapi), `table` (+ `builtin_columns`,
//! `jsonpath`). Admission follows kube-apiserver 1.33's order: decode/prune → default →
//! schema validation → list-type invariants → CEL (skipped after blocking errors), with
//! validation ratcheting on update. Known gaps: no CEL cost estimation (the real server
//! refuses over-budget rules at CRD admission and aborts over-budget evaluations); CEL is
//! parsed, not type-checked, so type errors surface at evaluation rather than admission.

mod builtin_columns;
mod builtin_schemas;
mod cel;
mod column;
mod defaults;
mod definition;
mod formats;
mod jsonpath;
pub mod openapi;
mod prune;
mod schema;
pub mod table;
mod validate;
mod warnings;

use serde_json::Value;

use super::field_error::FieldError;

pub use definition::validate_crd;
pub use warnings::crd_warnings;

/// The `fieldValidation` query parameter. kube-apiserver's default when absent is `Warn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    #[default]
    Warn,
    Ignore,
}

/// Why a custom object was refused by [`CompiledVersion::admit_object`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// 422 `Invalid`: one cause per field error.
    #[error("invalid object: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<FieldError>),
    /// 400 `BadRequest` (`fieldValidation=Strict` and undeclared fields). `message` is the
    /// whole Status message, e.g. `Widget in version "v1" cannot be handled as a Widget:
    /// strict decoding error: unknown field "spec.colour"`; the decoder refuses the body
    /// before any validation runs.
    #[error("{message}")]
    StrictDecoding { message: String, unknown_fields: Vec<String> },
}

/// `FieldError::reason` used by [`CompiledVersion::admit`] for a strict decoding failure
/// (the whole message in `message`, empty `field`): the store must answer 400 BadRequest
/// with that message, not 422.
pub const STRICT_DECODING_REASON: &str = "StrictDecoding";

/// One served version of an established CRD, compiled for admission.
#[derive(Clone, Debug)]
pub struct CompiledVersion {
    schema: Value,
    kind: String,
    version: String,
    rules: cel::Rules,
}

impl CompiledVersion {
    pub fn compile(crd: &Value, version: &str) -> Result<Self, Vec<FieldError>> {
        let versions = crd["spec"]["versions"].as_array();
        let Some((i, v)) = versions.and_then(|vs| vs.iter().enumerate().find(|(_, v)| v["name"] == version)) else {
            return Err(vec![FieldError::not_supported(
                "spec.versions",
                &Value::String(version.to_owned()),
                &versions.map(|vs| vs.iter().map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
            )]);
        };
        let schema = v["schema"]["openAPIV3Schema"].clone();
        let (rules, errs) = cel::compile(&schema, &format!("spec.versions[{i}].schema.openAPIV3Schema"));
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            schema,
            kind: crd["spec"]["names"]["kind"].as_str().unwrap_or_default().to_owned(),
            version: version.to_owned(),
            rules,
        })
    }

    /// The version's `openAPIV3Schema` (the patch engine reads list types from it).
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// [`Self::admit_object`] with the strict-decoding failure folded into a single
    /// `FieldError` whose reason is [`STRICT_DECODING_REASON`].
    pub fn admit(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        validation: FieldValidation,
    ) -> Result<Vec<String>, Vec<FieldError>> {
        self.admit_object(obj, old, validation).map_err(|e| match e {
            AdmitError::Invalid(errs) => errs,
            AdmitError::StrictDecoding { message, .. } => {
                vec![FieldError { reason: STRICT_DECODING_REASON, field: String::new(), message }]
            }
        })
    }

    /// What kube-apiserver does to a custom object on create/update, in its order: prune
    /// undeclared fields (decoder; Strict refuses them, Warn reports them), apply defaults,
    /// drop non-nullable nulls, validate against the schema and the list-type invariants,
    /// then the CEL rules (transition rules only when `old` is given). Mutates `obj`.
    /// Ok carries the warnings for the `Warning` header.
    pub fn admit_object(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        validation: FieldValidation,
    ) -> Result<Vec<String>, AdmitError> {
        let unknown = prune::prune_object(obj, &self.schema);
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            match validation {
                FieldValidation::Strict => {
                    let listed: Vec<String> = unknown.iter().map(|p| format!("unknown field {p:?}")).collect();
                    return Err(AdmitError::StrictDecoding {
                        message: format!(
                            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                            listed.join(", "),
                            kind = self.kind,
                            version = self.version,
                        ),
                        unknown_fields: unknown,
                    });
                }
                FieldValidation::Warn => warnings.extend(unknown.iter().map(|p| format!("unknown field {p:?}"))),
                FieldValidation::Ignore => {}
            }
        }
        defaults::apply(obj, &self.schema);
        prune::prune_non_nullable_nulls(obj, &self.schema);

        let mut errs = validate::validate_object(&self.schema, obj, old);
        validate::validate_list_types(&self.schema, obj, "", &mut errs);
        // Errors that could make CEL see values it was not written for (wrong type, missing
        // required field, unsupported enum value, bounds that size the rules' cost) stop the
        // server from running the rules, and it says so (apiextensions `hasBlockingErr`).
        const BLOCKING: &[&str] = &[
            "FieldValueNotSupported",
            "FieldValueRequired",
            "FieldValueTooLong",
            "FieldValueTooMany",
            "FieldValueTypeInvalid",
        ];
        if errs.iter().any(|e| BLOCKING.contains(&e.reason)) {
            errs.push(FieldError {
                reason: "FieldValueInvalid",
                field: "<nil>".into(),
                message: "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
            });
        } else {
            let outcome = cel::evaluate(&self.rules, &self.schema, obj, old);
            errs.extend(outcome.errors);
            warnings.extend(outcome.warnings);
        }
        if errs.is_empty() { Ok(warnings) } else { Err(AdmitError::Invalid(errs)) }
    }
}

#[cfg(test)]
mod tests;
