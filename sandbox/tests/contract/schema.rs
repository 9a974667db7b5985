//! Validation of a body against a schema of an official document, for the responses Prism
//! cannot check: the emulator's answers to requests that Prism refused to forward (it
//! answers those itself), and error bodies whose status an operation does not list.

use std::path::Path;

use serde_json::{Value, json};

/// An official document, parsed (YAML or JSON).
pub struct Document {
    root: Value,
}

impl Document {
    pub fn load(path: &Path) -> Document {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let root = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        Document { root }
    }

    /// The schema errors of `body` against `#/components/schemas/<name>` (empty = conforms).
    /// The schema keeps its `$ref`s into the document's `components`, so the validator gets
    /// them beside it. All four documents use JSON-Schema-compatible keywords for their error
    /// bodies (no OpenAPI 3.0 `nullable`), so draft 2020-12 reads them as written.
    pub fn errors_against(&self, name: &str, body: &Value) -> Vec<String> {
        assert!(!self.root["components"]["schemas"][name].is_null(), "the document has no components.schemas.{name}");
        let schema = json!({
            "$ref": format!("#/components/schemas/{name}"),
            "components": self.root["components"],
        });
        let validator =
            jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"));
        validator.iter_errors(body).map(|e| format!("{}: {e}", e.instance_path())).collect()
    }

    /// Assert that `body` conforms to `#/components/schemas/<name>`.
    pub fn assert_conforms(&self, name: &str, body: &Value) {
        let errors = self.errors_against(name, body);
        assert!(errors.is_empty(), "{body} does not conform to {name}: {errors:?}");
    }
}
