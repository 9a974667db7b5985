//! Mielto (docs/providers.md, Mielto): `GET`/`PUT /api/v1/connections/{id}` below the base URL,
//! with the optional `X-Workspace-Id` header. The PUT carries only the fields that change and
//! never `null` (whether `null` clears a field is undocumented).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use http::{HeaderMap, Method};
use serde_json::{Map, Value};

use super::http::{Call, Dialect, Http, RequestObserver, rate_limit_reset, retry_after, retry_after_ms};
use super::{AccountPacer, ProviderClient, ProviderError, Target, Token, unexpected, unsupported};
use crate::api::{ProviderAuth, ProviderConfig};
use crate::diff::{Upstream, Write};

#[derive(Debug)]
pub(super) struct Mielto {
    http: Http,
}

impl Mielto {
    pub(super) fn new(
        config: &ProviderConfig,
        token: Token,
        client: reqwest::Client,
        pacer: Arc<AccountPacer>,
        observer: Option<RequestObserver>,
    ) -> Result<Self, ProviderError> {
        let mut http = Http::new(client, &config.base_url, token, config.timeout, pacer, Box::new(MieltoDialect))?
            .with_observer(observer);
        if let Some(workspace) = &config.workspace_id {
            http = http.with_header("x-workspace-id", workspace)?;
        }
        if config.auth == ProviderAuth::ApiKey {
            http = http.with_api_key_header();
        }
        Ok(Mielto { http })
    }
}

impl ProviderClient for Mielto {
    fn read<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Upstream, ProviderError>> {
        Box::pin(async move {
            let body = self
                .http
                .send(Call {
                    method: Method::GET,
                    bucket: "",
                    segments: &["api", "v1", "connections", &target.connection_id],
                    query: &[],
                    body: None,
                })
                .await?;
            connection(&body)
        })
    }

    fn write<'a>(&'a self, target: &'a Target, write: &'a Write) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let Write::MieltoPut { label, status, config } = write else {
                return Err(unsupported("mielto", write));
            };
            let mut body = Map::new();
            if let Some(label) = label {
                body.insert("label".into(), label.clone().into());
            }
            if let Some(status) = status {
                body.insert("status".into(), status.clone().into());
            }
            if let Some(config) = config {
                body.insert("config".into(), Value::Object(config.clone()));
            }
            self.http
                .send(Call {
                    method: Method::PUT,
                    bucket: "",
                    segments: &["api", "v1", "connections", &target.connection_id],
                    query: &[],
                    body: Some(Value::Object(body)),
                })
                .await
                .map(drop)
        })
    }
}

/// The connection of a `GET /api/v1/connections/{id}` body.
pub(super) fn connection(body: &Value) -> Result<Upstream, ProviderError> {
    if !body.is_object() {
        return Err(unexpected("the connection is not a JSON object"));
    }
    Ok(Upstream::mielto(
        body.get("label").and_then(Value::as_str),
        body.get("status").and_then(Value::as_str),
        body.get("config"),
    ))
}

/// FastAPI error bodies: `{"detail": "..."}`, `{"detail": [{"loc", "msg"}]}` (422) or
/// `{"detail": {"message", "errors"}}` (integration validation).
pub(super) struct MieltoDialect;

impl Dialect for MieltoDialect {
    fn name(&self) -> &'static str {
        "mielto"
    }

    fn error_message(&self, _: u16, body: &Value) -> Option<String> {
        match body.get("detail")? {
            Value::String(detail) => Some(detail.clone()),
            Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|item| {
                        let loc = item
                            .get("loc")
                            .and_then(Value::as_array)
                            .map(|l| {
                                l.iter()
                                    .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                                    .collect::<Vec<_>>()
                                    .join(".")
                            })
                            .unwrap_or_default();
                        let msg = item.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                        if loc.is_empty() { msg.to_string() } else { format!("{loc}: {msg}") }
                    })
                    .collect();
                Some(parts.join("; "))
            }
            Value::Object(detail) => detail.get("message").and_then(Value::as_str).map(str::to_string),
            _ => None,
        }
    }

    /// Nothing is documented; honour whichever standard header is present.
    fn retry_at(&self, headers: &HeaderMap, _: &Value, now: SystemTime) -> Option<SystemTime> {
        retry_after_ms(headers, now).or_else(|| retry_after(headers, now)).or_else(|| rate_limit_reset(headers, now))
    }

    fn default_window(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The request head a client sends, captured by a one-shot HTTP server on loopback.
    async fn captured_head(auth: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before sending its head");
                head.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"label": "L", "status": "active", "config": {}}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        let spec: crate::api::ProviderSpec = serde_json::from_value(json!({
            "type": "mielto", "baseUrl": base, "credentialsRef": {"name": "s", "key": "k"}, "auth": auth,
        }))
        .unwrap();
        let config = ProviderConfig::from_provider(&spec, "ns");
        let pacer = Arc::new(AccountPacer::new(config.rate_limit));
        let client = Mielto::new(&config, Token::new("key-7c1e"), reqwest::Client::new(), pacer, None).unwrap();
        let target = Target { connection_id: "c1".into(), provider_config_key: None };
        client.read(&target).await.unwrap();
        server.await.unwrap().to_ascii_lowercase()
    }

    #[tokio::test]
    async fn api_key_auth_sends_x_api_key_and_no_authorization() {
        let head = captured_head("ApiKey").await;
        assert!(head.contains("\r\nx-api-key: key-7c1e\r\n"), "{head}");
        assert!(!head.contains("authorization:"), "{head}");
        let head = captured_head("Bearer").await;
        assert!(head.contains("\r\nauthorization: bearer key-7c1e\r\n"), "{head}");
        assert!(!head.contains("x-api-key"), "{head}");
    }

    #[test]
    fn fastapi_details_become_messages() {
        assert_eq!(
            MieltoDialect.error_message(404, &json!({"detail": "Connection not found"})).unwrap(),
            "Connection not found"
        );
        let body = json!({"detail": [{"loc": ["body", "label"], "msg": "String should have at most 255 characters", "type": "string_too_long"}]});
        assert_eq!(
            MieltoDialect.error_message(422, &body).unwrap(),
            "body.label: String should have at most 255 characters"
        );
        let body = json!({"detail": {"message": "Connection validation failed", "errors": []}});
        assert_eq!(MieltoDialect.error_message(400, &body).unwrap(), "Connection validation failed");
    }
}
