//! Decoding of `application/vnd.kubernetes.protobuf` request bodies. kubectl's generator
//! commands (`kubectl create namespace|configmap|secret|serviceaccount|token`) and Helm's release
//! storage send built-in objects as protobuf (client-go typed clients prefer it), so the
//! emulator decodes the kinds those tools write. The envelope is `k8s\0` + `runtime.Unknown`
//! (k8s.io/apimachinery/pkg/runtime/generated.proto); field numbers below are those of
//! k8s.io/api/core/v1/generated.proto and k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto.

use base64::Engine;
use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("protobuf body is truncated or malformed")]
    Malformed,
    #[error("protobuf body lacks the k8s\\0 envelope")]
    NoEnvelope,
    #[error("protobuf encoding of {0} is not supported by this server; send application/json")]
    Unsupported(String),
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    Time,
    Msg(&'static [Field]),
    StrMap,
    BytesMap,
    RepeatedStr,
    RepeatedMsg(&'static [Field]),
    /// `FieldsV1` (raw JSON bytes in field 1).
    FieldsV1,
    /// `IntOrString` {type = 1, intVal = 2, strVal = 3}: a JSON number or string.
    IntOrString,
}

#[derive(Clone, Copy)]
struct Field(u32, &'static str, Kind);

const OWNER_REFERENCE: &[Field] = &[
    Field(1, "kind", Kind::Str),
    Field(3, "name", Kind::Str),
    Field(4, "uid", Kind::Str),
    Field(5, "apiVersion", Kind::Str),
    Field(6, "controller", Kind::Bool),
    Field(7, "blockOwnerDeletion", Kind::Bool),
];

const MANAGED_FIELDS: &[Field] = &[
    Field(1, "manager", Kind::Str),
    Field(2, "operation", Kind::Str),
    Field(3, "apiVersion", Kind::Str),
    Field(4, "time", Kind::Time),
    Field(6, "fieldsType", Kind::Str),
    Field(7, "fieldsV1", Kind::FieldsV1),
    Field(8, "subresource", Kind::Str),
];

const OBJECT_META: &[Field] = &[
    Field(1, "name", Kind::Str),
    Field(2, "generateName", Kind::Str),
    Field(3, "namespace", Kind::Str),
    Field(5, "uid", Kind::Str),
    Field(6, "resourceVersion", Kind::Str),
    Field(7, "generation", Kind::Int),
    Field(8, "creationTimestamp", Kind::Time),
    Field(9, "deletionTimestamp", Kind::Time),
    Field(10, "deletionGracePeriodSeconds", Kind::Int),
    Field(11, "labels", Kind::StrMap),
    Field(12, "annotations", Kind::StrMap),
    Field(13, "ownerReferences", Kind::RepeatedMsg(OWNER_REFERENCE)),
    Field(14, "finalizers", Kind::RepeatedStr),
    Field(17, "managedFields", Kind::RepeatedMsg(MANAGED_FIELDS)),
];

const NAMESPACE: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "spec", Kind::Msg(&[Field(1, "finalizers", Kind::RepeatedStr)])),
    Field(3, "status", Kind::Msg(&[Field(1, "phase", Kind::Str)])),
];

const CONFIG_MAP: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "data", Kind::StrMap),
    Field(3, "binaryData", Kind::BytesMap),
    Field(4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "data", Kind::BytesMap),
    Field(3, "type", Kind::Str),
    Field(4, "stringData", Kind::StrMap),
    Field(5, "immutable", Kind::Bool),
];

const OBJECT_REFERENCE: &[Field] = &[
    Field(1, "kind", Kind::Str),
    Field(2, "namespace", Kind::Str),
    Field(3, "name", Kind::Str),
    Field(4, "uid", Kind::Str),
    Field(5, "apiVersion", Kind::Str),
    Field(6, "resourceVersion", Kind::Str),
    Field(7, "fieldPath", Kind::Str),
];

const SERVICE_ACCOUNT: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(2, "secrets", Kind::RepeatedMsg(OBJECT_REFERENCE)),
    Field(3, "imagePullSecrets", Kind::RepeatedMsg(&[Field(1, "name", Kind::Str)])),
    Field(4, "automountServiceAccountToken", Kind::Bool),
];

const POLICY_RULE: &[Field] = &[
    Field(1, "verbs", Kind::RepeatedStr),
    Field(2, "apiGroups", Kind::RepeatedStr),
    Field(3, "resources", Kind::RepeatedStr),
    Field(4, "resourceNames", Kind::RepeatedStr),
    Field(5, "nonResourceURLs", Kind::RepeatedStr),
];

const ROLE: &[Field] =
    &[Field(1, "metadata", Kind::Msg(OBJECT_META)), Field(2, "rules", Kind::RepeatedMsg(POLICY_RULE))];

const ROLE_BINDING: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(
        2,
        "subjects",
        Kind::RepeatedMsg(&[
            Field(1, "kind", Kind::Str),
            Field(2, "apiGroup", Kind::Str),
            Field(3, "name", Kind::Str),
            Field(4, "namespace", Kind::Str),
        ]),
    ),
    Field(
        3,
        "roleRef",
        Kind::Msg(&[Field(1, "apiGroup", Kind::Str), Field(2, "kind", Kind::Str), Field(3, "name", Kind::Str)]),
    ),
];

const SERVICE_PORT: &[Field] = &[
    Field(1, "name", Kind::Str),
    Field(2, "protocol", Kind::Str),
    Field(3, "port", Kind::Int),
    Field(4, "targetPort", Kind::IntOrString),
    Field(5, "nodePort", Kind::Int),
    Field(6, "appProtocol", Kind::Str),
];

/// The ServiceSpec fields `kubectl create service` fills in.
const SERVICE_SPEC: &[Field] = &[
    Field(1, "ports", Kind::RepeatedMsg(SERVICE_PORT)),
    Field(2, "selector", Kind::StrMap),
    Field(3, "clusterIP", Kind::Str),
    Field(4, "type", Kind::Str),
    Field(5, "externalIPs", Kind::RepeatedStr),
    Field(7, "sessionAffinity", Kind::Str),
    Field(10, "externalName", Kind::Str),
];

const SERVICE: &[Field] = &[Field(1, "metadata", Kind::Msg(OBJECT_META)), Field(2, "spec", Kind::Msg(SERVICE_SPEC))];

const LABEL_SELECTOR: &[Field] = &[
    Field(1, "matchLabels", Kind::StrMap),
    Field(
        2,
        "matchExpressions",
        Kind::RepeatedMsg(&[
            Field(1, "key", Kind::Str),
            Field(2, "operator", Kind::Str),
            Field(3, "values", Kind::RepeatedStr),
        ]),
    ),
];

/// The Container fields `kubectl create deployment` can fill in (`--image`, `--port`,
/// `-- command`).
const CONTAINER: &[Field] = &[
    Field(1, "name", Kind::Str),
    Field(2, "image", Kind::Str),
    Field(3, "command", Kind::RepeatedStr),
    Field(4, "args", Kind::RepeatedStr),
    Field(5, "workingDir", Kind::Str),
    Field(
        6,
        "ports",
        Kind::RepeatedMsg(&[
            Field(1, "name", Kind::Str),
            Field(2, "hostPort", Kind::Int),
            Field(3, "containerPort", Kind::Int),
            Field(4, "protocol", Kind::Str),
        ]),
    ),
    Field(7, "env", Kind::RepeatedMsg(&[Field(1, "name", Kind::Str), Field(2, "value", Kind::Str)])),
    Field(14, "imagePullPolicy", Kind::Str),
];

const POD_SPEC: &[Field] = &[
    Field(2, "containers", Kind::RepeatedMsg(CONTAINER)),
    Field(3, "restartPolicy", Kind::Str),
    Field(8, "serviceAccountName", Kind::Str),
];

const DEPLOYMENT_SPEC: &[Field] = &[
    Field(1, "replicas", Kind::Int),
    Field(2, "selector", Kind::Msg(LABEL_SELECTOR)),
    Field(
        3,
        "template",
        Kind::Msg(&[Field(1, "metadata", Kind::Msg(OBJECT_META)), Field(2, "spec", Kind::Msg(POD_SPEC))]),
    ),
];

const DEPLOYMENT: &[Field] =
    &[Field(1, "metadata", Kind::Msg(OBJECT_META)), Field(2, "spec", Kind::Msg(DEPLOYMENT_SPEC))];

/// meta/v1 DeleteOptions (Helm deletes its release Secrets with a typed client).
const DELETE_OPTIONS: &[Field] = &[
    Field(1, "gracePeriodSeconds", Kind::Int),
    Field(2, "preconditions", Kind::Msg(&[Field(1, "uid", Kind::Str), Field(2, "resourceVersion", Kind::Str)])),
    Field(3, "orphanDependents", Kind::Bool),
    Field(4, "propagationPolicy", Kind::Str),
    Field(5, "dryRun", Kind::RepeatedStr),
];

/// authentication/v1 TokenRequest (`kubectl create token`).
const TOKEN_REQUEST: &[Field] = &[
    Field(1, "metadata", Kind::Msg(OBJECT_META)),
    Field(
        2,
        "spec",
        Kind::Msg(&[
            Field(1, "audiences", Kind::RepeatedStr),
            Field(4, "expirationSeconds", Kind::Int),
            Field(
                3,
                "boundObjectRef",
                Kind::Msg(&[
                    Field(1, "kind", Kind::Str),
                    Field(2, "apiVersion", Kind::Str),
                    Field(3, "name", Kind::Str),
                    Field(4, "uid", Kind::Str),
                ]),
            ),
        ]),
    ),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    match (api_version, kind) {
        ("v1", "Namespace") => Some(NAMESPACE),
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Secret") => Some(SECRET),
        ("v1", "ServiceAccount") => Some(SERVICE_ACCOUNT),
        ("v1", "Service") => Some(SERVICE),
        ("apps/v1", "Deployment") => Some(DEPLOYMENT),
        ("rbac.authorization.k8s.io/v1", "Role" | "ClusterRole") => Some(ROLE),
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => Some(ROLE_BINDING),
        ("v1" | "meta.k8s.io/v1", "DeleteOptions") => Some(DELETE_OPTIONS),
        ("authentication.k8s.io/v1", "TokenRequest") => Some(TOKEN_REQUEST),
        _ => None,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(ProtoError::Malformed)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(ProtoError::Malformed)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or(ProtoError::Malformed)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Next field: (number, wire value).
    fn field(&mut self) -> Result<(u32, Wire<'a>), ProtoError> {
        let tag = self.varint()?;
        let num = u32::try_from(tag >> 3).map_err(|_| ProtoError::Malformed)?;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| ProtoError::Malformed)?;
                Wire::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            _ => return Err(ProtoError::Malformed),
        };
        Ok((num, wire))
    }
}

enum Wire<'a> {
    Varint(u64),
    /// 32/64-bit fields; no supported kind uses them, they are skipped.
    Fixed,
    Bytes(&'a [u8]),
}

fn string(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed)
}

/// A map entry message: key = 1, value = 2.
fn map_entry(b: &[u8]) -> Result<(String, &[u8]), ProtoError> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v): (String, &[u8]) = (String::new(), &[]);
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(x)) => k = string(x)?,
            (2, Wire::Bytes(x)) => v = x,
            _ => {}
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Option<Value>, ProtoError> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut secs = 0i64;
    while !r.done() {
        if let (1, Wire::Varint(s)) = r.field()? {
            secs = s as i64;
        }
    }
    if secs == 0 {
        return Ok(None);
    }
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or(ProtoError::Malformed)?;
    Ok(Some(json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))))
}

fn message(b: &[u8], schema: &[Field]) -> Result<Map<String, Value>, ProtoError> {
    let mut out = Map::new();
    let mut r = Reader { buf: b, pos: 0 };
    let b64 = |x: &[u8]| json!(base64::engine::general_purpose::STANDARD.encode(x));
    while !r.done() {
        let (num, wire) = r.field()?;
        let Some(Field(_, name, kind)) = schema.iter().find(|f| f.0 == num).copied() else { continue };
        let name = name.to_string();
        match (kind, wire) {
            // Go's JSON omits empty strings and zero integers (`omitempty`) where protobuf
            // carries them explicitly.
            (Kind::Str, Wire::Bytes(x)) => {
                if !x.is_empty() {
                    out.insert(name, json!(string(x)?));
                }
            }
            (Kind::Int, Wire::Varint(v)) => {
                if v != 0 {
                    out.insert(name, json!(v as i64));
                }
            }
            (Kind::Bool, Wire::Varint(v)) => {
                out.insert(name, json!(v != 0));
            }
            (Kind::Time, Wire::Bytes(x)) => {
                // A zero time (empty message) is Go's zero `metav1.Time`: JSON null, omitted.
                if let Some(t) = time(x)? {
                    out.insert(name, t);
                }
            }
            (Kind::Msg(s), Wire::Bytes(x)) => {
                out.insert(name, Value::Object(message(x, s)?));
            }
            (Kind::StrMap, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                let m = out.entry(name).or_insert_with(|| json!({}));
                m[k] = json!(string(v)?);
            }
            (Kind::BytesMap, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                let m = out.entry(name).or_insert_with(|| json!({}));
                m[k] = b64(v);
            }
            (Kind::RepeatedStr, Wire::Bytes(x)) => {
                let item = json!(string(x)?);
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(item);
                }
            }
            (Kind::RepeatedMsg(s), Wire::Bytes(x)) => {
                let item = Value::Object(message(x, s)?);
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(item);
                }
            }
            (Kind::IntOrString, Wire::Bytes(x)) => {
                let (mut is_str, mut int_val, mut str_val) = (false, 0i64, String::new());
                let mut ir = Reader { buf: x, pos: 0 };
                while !ir.done() {
                    match ir.field()? {
                        (1, Wire::Varint(t)) => is_str = t == 1,
                        (2, Wire::Varint(v)) => int_val = v as i64,
                        (3, Wire::Bytes(v)) => str_val = string(v)?,
                        _ => {}
                    }
                }
                out.insert(name, if is_str { json!(str_val) } else { json!(int_val) });
            }
            (Kind::FieldsV1, Wire::Bytes(x)) => {
                let mut fr = Reader { buf: x, pos: 0 };
                while !fr.done() {
                    if let (1, Wire::Bytes(raw)) = fr.field()? {
                        out.insert(name.clone(), serde_json::from_slice(raw).map_err(|_| ProtoError::Malformed)?);
                    }
                }
            }
            _ => return Err(ProtoError::Malformed),
        }
    }
    Ok(out)
}

/// Decode a protobuf request body into the JSON form of the object.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(b"k8s\0".as_slice()).ok_or(ProtoError::NoEnvelope)?;
    let mut r = Reader { buf: rest, pos: 0 };
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) = (String::new(), String::new(), &[]);
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(tm)) => {
                let m = message(tm, &[Field(1, "apiVersion", Kind::Str), Field(2, "kind", Kind::Str)])?;
                api_version = m.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
                kind = m.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            }
            (2, Wire::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let schema =
        schema_for(&api_version, &kind).ok_or_else(|| ProtoError::Unsupported(format!("{api_version} {kind}")))?;
    let mut obj = message(raw, schema)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body `kubectl create namespace foo` sends (captured with `kubectl -v=9`).
    #[test]
    fn decodes_kubectl_create_namespace() {
        let body: &[u8] = &[
            0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09, 0x4e, 0x61, 0x6d, 0x65, 0x73, 0x70,
            0x61, 0x63, 0x65, 0x12, 0x1b, 0x0a, 0x13, 0x0a, 0x03, 0x66, 0x6f, 0x6f, 0x12, 0x00, 0x1a, 0x00, 0x22, 0x00,
            0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x00, 0x1a, 0x02, 0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00,
        ];
        let v = decode(body).unwrap();
        assert_eq!(v["kind"], "Namespace");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["metadata"]["name"], "foo");
    }

    /// Length-delimited field `num` holding `payload`.
    fn ld(num: u8, payload: &[u8]) -> Vec<u8> {
        [&[num << 3 | 2, payload.len() as u8][..], payload].concat()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
        [b"k8s\0".to_vec(), ld(1, &tm), ld(2, raw)].concat()
    }

    #[test]
    fn decodes_services_with_int_or_string_ports() {
        // targetPort as a string (type = 1) and as a number (type = 0).
        let named = [ld(1, b"http"), vec![3 << 3, 80], ld(4, &[&[1 << 3, 1][..], &ld(3, b"web")].concat())].concat();
        let numbered = [vec![3 << 3, 81], ld(4, &[1 << 3, 0, 2 << 3, 90])].concat();
        let spec = [ld(1, &named), ld(1, &numbered), ld(4, b"ClusterIP")].concat();
        let raw = [ld(1, &ld(1, b"svc")), ld(2, &spec)].concat();
        let v = decode(&envelope("v1", "Service", &raw)).unwrap();
        assert_eq!(
            v["spec"]["ports"],
            json!([{"name": "http", "port": 80, "targetPort": "web"}, {"port": 81, "targetPort": 90}])
        );
        assert_eq!(v["spec"]["type"], "ClusterIP");
    }

    #[test]
    fn decodes_kubectl_create_deployment() {
        let entry = [ld(1, b"app"), ld(2, b"web")].concat();
        let labels = ld(11, &entry);
        let container = [ld(1, b"nginx"), ld(2, b"nginx"), ld(3, b"/bin/sh"), ld(6, &[3 << 3, 0x90, 0x3f])].concat();
        let template = [ld(1, &labels), ld(2, &ld(2, &container))].concat();
        let spec = [vec![1 << 3, 1], ld(2, &ld(1, &entry)), ld(3, &template)].concat();
        let raw = [ld(1, &[ld(1, b"web"), labels.clone()].concat()), ld(2, &spec)].concat();
        let v = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(v["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx", "command": ["/bin/sh"], "ports": [{"containerPort": 8080}]}])
        );
    }

    #[test]
    fn decodes_role_bindings() {
        let subject = [ld(1, b"ServiceAccount"), ld(3, b"default"), ld(4, b"ns")].concat();
        let role_ref = [ld(1, b"rbac.authorization.k8s.io"), ld(2, b"Role"), ld(3, b"r")].concat();
        let raw = [ld(1, &ld(1, b"rb")), ld(2, &subject), ld(3, &role_ref)].concat();
        let v = decode(&envelope("rbac.authorization.k8s.io/v1", "RoleBinding", &raw)).unwrap();
        assert_eq!(v["subjects"], json!([{"kind": "ServiceAccount", "name": "default", "namespace": "ns"}]));
        assert_eq!(v["roleRef"]["name"], "r");
    }

    #[test]
    fn decodes_delete_options_with_preconditions() {
        let mut body = b"k8s\0".to_vec();
        let tm = [&[0x0a, 2][..], b"v1", &[0x12, 13], b"DeleteOptions"].concat();
        let pre = [&[0x0a, 3][..], b"abc"].concat();
        let raw = [&[0x12, pre.len() as u8][..], &pre, &[0x22, 10], b"Background", &[0x2a, 3], b"All"].concat();
        body.extend([0x0a, tm.len() as u8]);
        body.extend(tm);
        body.extend([0x12, raw.len() as u8]);
        body.extend(raw);
        let v = decode(&body).unwrap();
        assert_eq!(v["preconditions"]["uid"], "abc");
        assert_eq!(v["propagationPolicy"], "Background");
        assert_eq!(v["dryRun"], json!(["All"]));
    }

    #[test]
    fn rejects_unknown_kinds_and_garbage() {
        assert!(matches!(decode(b"{}"), Err(ProtoError::NoEnvelope)));
        assert!(matches!(decode(b"k8s\0\x0a\xff"), Err(ProtoError::Malformed)));
        // TypeMeta batch/v1 Job.
        let mut body = b"k8s\0".to_vec();
        let tm = [&[0x0a, 8][..], b"batch/v1", &[0x12, 3], b"Job"].concat();
        body.extend([0x0a, tm.len() as u8]);
        body.extend(tm);
        assert!(matches!(decode(&body), Err(ProtoError::Unsupported(_))));
    }
}
