//! What `connection-operator plan` found, and its three renderings: `text` for a terminal,
//! `json` for programs, `markdown` to post as a pull-request comment. Values that came from
//! a Secret are `(secret)` in all three (the plan never holds them: see `plan::rows`).

use serde::Serialize;
use serde_json::Value;

use crate::desired::SECRET_PLACEHOLDER;

/// How the report is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Markdown,
}

/// What applying a Connection would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// The operator would write upstream.
    Change,
    /// Upstream already matches.
    NoChange,
    /// Observe: upstream differs; reported, never written.
    Drift,
    /// `spec.suspend`: no upstream call.
    Suspended,
    /// It cannot be planned, or would not become Ready.
    Error,
}

/// One key the write would set, change or remove.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRow {
    /// Named as in `status.managedKeys` (`config.<key>` for Mielto's config).
    pub key: String,
    /// `add`, `change` or `remove`.
    pub action: String,
    /// The value upstream now (`None`: absent).
    pub old: Option<Value>,
    /// The value after the write (`None`: removed).
    pub new: Option<Value>,
    /// Where the desired value comes from: `inline`, `ConfigMap/<name>`, `Secret/<name>`.
    pub from: Option<String>,
}

/// The plan of one Connection.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    /// `file.yaml#2`.
    pub source: String,
    pub namespace: String,
    pub name: String,
    /// `Provider ns/name (type)` or `ClusterProvider name (type)`, once resolved.
    pub provider: Option<String>,
    pub connection_id: Option<String>,
    /// `Manage` or `Observe`, once admitted.
    pub policy: Option<String>,
    pub verdict: Verdict,
    /// For an error: the Ready reason the operator would report (`Invalid` when the API
    /// server refuses the manifest).
    pub reason: Option<String>,
    pub message: Option<String>,
    pub changes: Vec<KeyRow>,
    /// Declared keys already right upstream.
    pub unchanged: Vec<String>,
    /// Upstream keys it neither declares nor owns: left alone.
    pub foreign: Vec<String>,
    /// The upstream requests a reconcile would cost (`GET ...`, then the write).
    pub requests: Vec<String>,
    pub writes: usize,
}

impl Planned {
    pub fn new(source: &str, namespace: &str, name: &str) -> Self {
        Planned {
            source: source.into(),
            namespace: namespace.into(),
            name: name.into(),
            provider: None,
            connection_id: None,
            policy: None,
            verdict: Verdict::Error,
            reason: None,
            message: None,
            changes: vec![],
            unchanged: vec![],
            foreign: vec![],
            requests: vec![],
            writes: 0,
        }
    }

    pub fn error(mut self, reason: &str, message: impl Into<String>) -> Self {
        self.verdict = Verdict::Error;
        self.reason = Some(reason.into());
        self.message = Some(message.into());
        self.writes = 0;
        self
    }

    fn title(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Everything `plan` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub connections: Vec<Planned>,
    /// Objects of the input that are not Connections, ConfigMaps or Secrets.
    pub skipped: Vec<String>,
    /// ConfigMaps and Secrets of the input used instead of the cluster's.
    pub from_input: Vec<String>,
    /// Input that cannot be planned at all.
    #[serde(rename = "errors")]
    pub input_errors: Vec<String>,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub change: usize,
    pub no_change: usize,
    pub drift: usize,
    pub suspended: usize,
    pub error: usize,
    pub upstream_writes: usize,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut s = Summary { error: self.input_errors.len(), ..Summary::default() };
        for c in &self.connections {
            match c.verdict {
                Verdict::Change => s.change += 1,
                Verdict::NoChange => s.no_change += 1,
                Verdict::Drift => s.drift += 1,
                Verdict::Suspended => s.suspended += 1,
                Verdict::Error => s.error += 1,
            }
            s.upstream_writes += c.writes;
        }
        s
    }

    /// 1 on any error, else 2 when something would be written upstream, else 0.
    pub fn exit_code(&self) -> u8 {
        let s = self.summary();
        if s.error > 0 {
            1
        } else if s.upstream_writes > 0 {
            2
        } else {
            0
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Json => {
                let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
                value["summary"] = serde_json::to_value(self.summary()).unwrap_or(Value::Null);
                value["exitCode"] = self.exit_code().into();
                let mut out = serde_json::to_string_pretty(&value).unwrap_or_default();
                out.push('\n');
                out
            }
            Format::Markdown => self.markdown(),
        }
    }

    fn summary_line(&self) -> String {
        let s = self.summary();
        let mut parts = vec![
            format!(
                "{} to change ({} upstream write{})",
                s.change,
                s.upstream_writes,
                if s.upstream_writes == 1 { "" } else { "s" }
            ),
            format!("{} unchanged", s.no_change),
        ];
        if s.drift > 0 {
            parts.push(format!("{} drifted (Observe)", s.drift));
        }
        if s.suspended > 0 {
            parts.push(format!("{} suspended", s.suspended));
        }
        parts.push(format!("{} error{}", s.error, if s.error == 1 { "" } else { "s" }));
        parts.join(", ")
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for e in &self.input_errors {
            out.push_str(&format!("! error: {e}\n"));
        }
        for c in &self.connections {
            let marker = match c.verdict {
                Verdict::Change => "~",
                Verdict::NoChange => "=",
                Verdict::Drift => "?",
                Verdict::Suspended => "-",
                Verdict::Error => "!",
            };
            let mut head = format!("{marker} Connection {}", c.title());
            if let (Some(p), Some(id)) = (&c.provider, &c.connection_id) {
                head.push_str(&format!(" via {p}, connection {id}"));
            }
            out.push_str(&head);
            out.push_str(&format!(": {}\n", verdict_text(c)));
            if let Some(m) = &c.message {
                let label = if c.verdict == Verdict::Error { "error" } else { "note" };
                out.push_str(&format!("    {label}: {m}\n"));
            }
            let width = c.changes.iter().map(|r| r.key.chars().count()).max().unwrap_or(0);
            for r in &c.changes {
                let sign = match r.action.as_str() {
                    "add" => "+",
                    "remove" => "-",
                    _ => "~",
                };
                let from = r.from.as_deref().map(|f| format!("   [{f}]")).unwrap_or_default();
                let value = match (&r.old, &r.new) {
                    (None, Some(new)) => shown(new),
                    (Some(old), Some(new)) => format!("{} -> {}", shown(old), shown(new)),
                    (Some(old), None) => format!("{} -> (removed)", shown(old)),
                    (None, None) => String::new(),
                };
                out.push_str(&format!("    {sign} {:width$}  {value}{from}\n", r.key));
            }
            if !c.unchanged.is_empty() {
                out.push_str(&format!("    unchanged: {}\n", c.unchanged.join(", ")));
            }
            if !c.foreign.is_empty() {
                out.push_str(&format!("    left alone (not owned): {}\n", c.foreign.join(", ")));
            }
            if !c.requests.is_empty() {
                out.push_str(&format!("    upstream: {} ({})\n", cost(c), c.requests.join(", ")));
            }
        }
        for f in &self.from_input {
            out.push_str(&format!("  using {f} from the input\n"));
        }
        for s in &self.skipped {
            out.push_str(&format!("  skipped {s}\n"));
        }
        out.push_str(&format!("\nPlan: {}.\n", self.summary_line()));
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::from("### connection-operator plan\n\n");
        out.push_str(&format!("**{}**\n\n", self.summary_line()));
        for e in &self.input_errors {
            out.push_str(&format!("- **Error:** {}\n", md_text(e)));
        }
        if !self.input_errors.is_empty() {
            out.push('\n');
        }
        for c in &self.connections {
            out.push_str(&format!("#### `{}`: {}\n\n", c.title(), verdict_text(c)));
            let mut facts = Vec::new();
            if let Some(p) = &c.provider {
                facts.push(md_text(p));
            }
            if let Some(id) = &c.connection_id {
                facts.push(format!("connection {}", md_code(id)));
            }
            if let Some(p) = &c.policy {
                facts.push(p.clone());
            }
            facts.push(format!("from {}", md_code(&c.source)));
            out.push_str(&format!("{}\n\n", facts.join(" · ")));
            if let Some(m) = &c.message {
                let label = if c.verdict == Verdict::Error { "Error" } else { "Note" };
                out.push_str(&format!("> **{label}:** {}\n\n", md_text(m)));
            }
            if !c.changes.is_empty() {
                out.push_str("| | Key | Upstream now | After apply | From |\n|---|---|---|---|---|\n");
                for r in &c.changes {
                    let sign = match r.action.as_str() {
                        "add" => "+",
                        "remove" => "−",
                        _ => "~",
                    };
                    let cell = |v: &Option<Value>| {
                        v.as_ref().map(|v| md_code(&shown(v))).unwrap_or_else(|| "_(absent)_".into())
                    };
                    out.push_str(&format!(
                        "| {sign} | {} | {} | {} | {} |\n",
                        md_code(&r.key),
                        cell(&r.old),
                        if r.new.is_none() { "_(removed)_".into() } else { cell(&r.new) },
                        r.from.as_deref().map(md_text).unwrap_or_default()
                    ));
                }
                out.push('\n');
            }
            if !c.unchanged.is_empty() {
                out.push_str(&format!(
                    "Unchanged: {}\n\n",
                    c.unchanged.iter().map(|k| md_code(k)).collect::<Vec<_>>().join(", ")
                ));
            }
            if !c.foreign.is_empty() {
                out.push_str(&format!(
                    "Left alone (not owned): {}\n\n",
                    c.foreign.iter().map(|k| md_code(k)).collect::<Vec<_>>().join(", ")
                ));
            }
            if !c.requests.is_empty() {
                out.push_str(&format!(
                    "Upstream: {}: {}\n\n",
                    cost(c),
                    c.requests.iter().map(|r| md_code(r)).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if !self.from_input.is_empty() {
            out.push_str(&format!(
                "Used from the input instead of the cluster: {}\n\n",
                self.from_input.iter().map(|f| md_text(f)).collect::<Vec<_>>().join(", ")
            ));
        }
        if !self.skipped.is_empty() {
            out.push_str(&format!("Skipped (not Connections): {}\n\n", self.skipped.len()));
        }
        out
    }
}

fn verdict_text(c: &Planned) -> String {
    match c.verdict {
        Verdict::Change => format!("{} key(s) to change", c.changes.len()),
        Verdict::NoChange => "no change".into(),
        Verdict::Drift => format!("{} key(s) drifted (Observe: not written)", c.changes.len()),
        Verdict::Suspended => "suspended".into(),
        Verdict::Error => format!("error ({})", c.reason.as_deref().unwrap_or("Error")),
    }
}

fn cost(c: &Planned) -> String {
    let reads = c.requests.len() - c.writes;
    format!(
        "{reads} read{}, {} write{}",
        if reads == 1 { "" } else { "s" },
        c.writes,
        if c.writes == 1 { "" } else { "s" }
    )
}

/// A value as compact JSON, or `(secret)` bare for a hidden one.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) if s == SECRET_PLACEHOLDER => SECRET_PLACEHOLDER.into(),
        other => other.to_string(),
    }
}

/// Text safe inside a Markdown table or paragraph (HTML-escaped, pipes escaped).
fn md_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('|', "&#124;").replace('\n', " ")
}

/// Inline code that survives any content (backticks, pipes) inside a table.
fn md_code(s: &str) -> String {
    format!("<code>{}</code>", md_text(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change() -> Planned {
        let mut p = Planned::new("c.yaml#1", "tenants", "acme");
        p.provider = Some("Provider tenants/nango (nango)".into());
        p.connection_id = Some("acme-1".into());
        p.policy = Some("Manage".into());
        p.verdict = Verdict::Change;
        p.changes = vec![
            KeyRow {
                key: "region".into(),
                action: "change".into(),
                old: Some(json!("us")),
                new: Some(json!("eu")),
                from: Some("inline".into()),
            },
            KeyRow {
                key: "apiKey".into(),
                action: "add".into(),
                old: None,
                new: Some(json!(SECRET_PLACEHOLDER)),
                from: Some("Secret/keys".into()),
            },
            KeyRow {
                key: "old".into(),
                action: "remove".into(),
                old: Some(json!({"a": "x|y"})),
                new: None,
                from: None,
            },
        ];
        p.unchanged = vec!["same".into()];
        p.foreign = vec!["webhook".into()];
        p.requests = vec!["GET /connections/acme-1?provider_config_key=k".into(), "POST /connections/metadata".into()];
        p.writes = 1;
        p
    }

    #[test]
    fn exit_codes_follow_detailed_exitcode() {
        let mut r = Report::default();
        assert_eq!(r.exit_code(), 0);
        let mut same = Planned::new("s", "ns", "same");
        same.verdict = Verdict::NoChange;
        r.connections.push(same);
        assert_eq!(r.exit_code(), 0);
        r.connections.push(change());
        assert_eq!(r.exit_code(), 2);
        r.connections.push(Planned::new("e", "ns", "bad").error("Invalid", "The Connection \"bad\" is invalid"));
        assert_eq!(r.exit_code(), 1);
        assert_eq!(
            r.summary(),
            Summary { change: 1, no_change: 1, drift: 0, suspended: 0, error: 1, upstream_writes: 1 }
        );
    }

    #[test]
    fn text_shows_old_and_new_values_and_hides_secrets() {
        let r = Report { connections: vec![change()], ..Report::default() };
        let text = r.render(Format::Text);
        assert!(
            text.contains(
                "~ Connection tenants/acme via Provider tenants/nango (nango), connection acme-1: 3 key(s) to change"
            ),
            "{text}"
        );
        assert!(text.contains("~ region  \"us\" -> \"eu\"   [inline]"), "{text}");
        assert!(text.contains("+ apiKey  (secret)   [Secret/keys]"), "{text}");
        assert!(text.contains("- old     {\"a\":\"x|y\"} -> (removed)"), "{text}");
        assert!(text.contains("left alone (not owned): webhook"), "{text}");
        assert!(
            text.contains(
                "upstream: 1 read, 1 write (GET /connections/acme-1?provider_config_key=k, POST /connections/metadata)"
            ),
            "{text}"
        );
        assert!(text.ends_with("Plan: 1 to change (1 upstream write), 0 unchanged, 0 errors.\n"), "{text}");
    }

    #[test]
    fn markdown_is_a_table_safe_for_pipes_and_json_carries_the_exit_code() {
        let r = Report { connections: vec![change()], ..Report::default() };
        let md = r.render(Format::Markdown);
        assert!(
            md.contains("| ~ | <code>region</code> | <code>\"us\"</code> | <code>\"eu\"</code> | inline |"),
            "{md}"
        );
        assert!(md.contains("<code>{\"a\":\"x&#124;y\"}</code> | _(removed)_ |"), "{md}");
        assert!(md.contains("| + | <code>apiKey</code> | _(absent)_ | <code>(secret)</code> | Secret/keys |"), "{md}");
        let json: Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(json["exitCode"], 2);
        assert_eq!(json["connections"][0]["changes"][1]["new"], SECRET_PLACEHOLDER);
        assert_eq!(json["summary"]["upstreamWrites"], 1);
    }
}
