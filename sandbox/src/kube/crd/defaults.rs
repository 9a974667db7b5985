//! Defaulting from the schema's `default` values, the way apiextensions-apiserver's
//! `structural/defaulting.Default` applies them: a missing property (or a `null` in a
//! non-nullable one) takes a deep copy of its default, and the walk then continues into the
//! defaulted value so nested defaults apply too. Only objects that are present are
//! defaulted: a default never creates a parent object that the schema does not default.

use serde_json::Value;

use super::schema;

pub(super) fn apply(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema::properties(schema) {
                for (k, prop) in props {
                    let Some(default) = prop.get("default") else {
                        continue;
                    };
                    let missing = match map.get(k) {
                        None => true,
                        Some(Value::Null) => !schema::nullable(prop),
                        Some(_) => false,
                    };
                    if missing {
                        map.insert(k.clone(), default.clone());
                    }
                }
            }
            let extra = schema::additional_properties(schema).filter(|s| !s.is_null());
            for (k, v) in map.iter_mut() {
                if let Some(prop) = schema::property(schema, k) {
                    apply(v, prop);
                } else if let Some(extra) = extra {
                    if v.is_null()
                        && !schema::nullable(extra)
                        && let Some(d) = extra.get("default")
                    {
                        *v = d.clone();
                    } else {
                        apply(v, extra);
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema::items(schema) else {
                return;
            };
            for item in items.iter_mut() {
                if item.is_null()
                    && !schema::nullable(item_schema)
                    && let Some(d) = item_schema.get("default")
                {
                    *item = d.clone();
                } else {
                    apply(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_missing_and_null_fields_then_recurses() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "mode": {"type": "string", "default": "Auto"},
            "keep": {"type": "string", "nullable": true, "default": "x"},
            "policy": {"type": "object", "default": {}, "properties": {"retries": {"type": "integer", "default": 3}}},
            "absentParent": {"type": "object", "properties": {"inner": {"type": "integer", "default": 1}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"w": {"type": "integer", "default": 10}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"on": {"type": "boolean", "default": true}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"lvl": {"type": "string", "default": "info"}}}
        }}}});
        let mut obj = json!({"spec": {"keep": null, "list": [{}, {"w": 1}], "map": {"a": {}}, "free": {"other": 1}, "mode": null}});
        apply(&mut obj, &s);
        assert_eq!(
            obj["spec"],
            json!({
                "keep": null,
                "list": [{"w": 10}, {"w": 1}],
                "map": {"a": {"on": true}},
                "free": {"other": 1, "lvl": "info"},
                "mode": "Auto",
                "policy": {"retries": 3}
            })
        );
    }

    #[test]
    fn does_not_create_missing_spec() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string", "default": "x"}}}}});
        let mut obj = json!({"metadata": {"name": "n"}});
        apply(&mut obj, &s);
        assert_eq!(obj, json!({"metadata": {"name": "n"}}));
    }
}
