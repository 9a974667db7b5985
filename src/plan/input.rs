//! The manifests `connection-operator plan -f` reads: files, directories (their `.yaml`,
//! `.yml` and `.json` files, not recursively, in name order) and standard input (`-f -`,
//! e.g. `kustomize build | connection-operator plan -f -`), each a YAML stream of one or
//! more documents; a `kind: List` contributes its items.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One object of the input, with where it came from (`file.yaml#2`: its second document).
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub origin: String,
    pub object: Value,
}

/// Input that cannot be read as Kubernetes objects.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{origin}: not YAML or JSON: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: not a Kubernetes object (it needs apiVersion, kind and metadata.name)")]
    NotAnObject { origin: String },
}

/// Read every path (`-`: standard input, read once) into documents.
pub fn read(paths: &[String], stdin: &mut dyn Read) -> Result<Vec<Document>, InputError> {
    let mut documents = Vec::new();
    for path in paths {
        if path == "-" {
            let mut text = String::new();
            stdin.read_to_string(&mut text).map_err(|source| InputError::Io { path: "<stdin>".into(), source })?;
            documents.extend(parse("<stdin>", &text)?);
            continue;
        }
        for file in files(Path::new(path))? {
            let shown = file.display().to_string();
            let text =
                std::fs::read_to_string(&file).map_err(|source| InputError::Io { path: shown.clone(), source })?;
            documents.extend(parse(&shown, &text)?);
        }
    }
    Ok(documents)
}

/// `path` itself, or the manifest files of the directory `path`.
fn files(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let shown = || path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| InputError::Io { path: shown(), source })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| InputError::Io { path: shown(), source })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The documents of one YAML stream (JSON is YAML), skipping empty ones.
pub fn parse(name: &str, text: &str) -> Result<Vec<Document>, InputError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = format!("{name}#{}", i + 1);
        let yaml = serde_yaml::Value::deserialize(doc)
            .map_err(|e| InputError::Parse { origin: origin.clone(), message: e.to_string() })?;
        let object = serde_json::to_value(yaml)
            .map_err(|e| InputError::Parse { origin: origin.clone(), message: e.to_string() })?;
        match object {
            Value::Null => continue,
            Value::Object(_) if object["kind"] == "List" && object["items"].is_array() => {
                for (j, item) in object["items"].as_array().into_iter().flatten().enumerate() {
                    let origin = format!("{origin}.items[{j}]");
                    out.push(checked(origin, item.clone())?);
                }
            }
            other => out.push(checked(origin, other)?),
        }
    }
    Ok(out)
}

fn checked(origin: String, object: Value) -> Result<Document, InputError> {
    let ok = object["apiVersion"].is_string() && object["kind"].is_string() && object["metadata"]["name"].is_string();
    if ok { Ok(Document { origin, object }) } else { Err(InputError::NotAnObject { origin }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_lists_and_empty_documents() {
        let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"s\"}}]}\n";
        let docs = parse("in.yaml", text).unwrap();
        assert_eq!(docs.iter().map(|d| d.origin.as_str()).collect::<Vec<_>>(), ["in.yaml#1", "in.yaml#3.items[0]"]);
        assert_eq!(docs[1].object["kind"], "Secret");
    }

    #[test]
    fn bad_documents_are_named() {
        let err =
            parse("x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkey: [unclosed\n").unwrap_err();
        assert!(err.to_string().starts_with("x.yaml#2: not YAML or JSON"), "{err}");
        let err = parse("x.yaml", "just: a map\n").unwrap_err();
        assert_eq!(err.to_string(), "x.yaml#1: not a Kubernetes object (it needs apiVersion, kind and metadata.name)");
    }

    #[test]
    fn directories_are_read_in_name_order_without_recursion() {
        let dir = tempfile::tempdir().unwrap();
        let doc = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n");
        std::fs::write(dir.path().join("b.yaml"), doc("b")).unwrap();
        std::fs::write(dir.path().join("a.yml"), doc("a")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/c.yaml"), doc("c")).unwrap();
        let mut stdin = doc("d").into_bytes();
        let docs = read(&[dir.path().display().to_string(), "-".into()], &mut stdin.as_slice()).unwrap();
        let names: Vec<&str> = docs.iter().map(|d| d.object["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b", "d"]);
        stdin.clear();
        let err = read(&["/no/such/file.yaml".into()], &mut stdin.as_slice()).unwrap_err();
        assert!(err.to_string().starts_with("/no/such/file.yaml: "), "{err}");
    }
}
