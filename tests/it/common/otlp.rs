//! A real OTLP/HTTP receiver on 127.0.0.1: `POST /v1/traces` bodies decoded
//! as `ExportTraceServiceRequest` protobuf (the `opentelemetry-proto`
//! crate's messages), and the spans kept for a test to look at.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;

pub struct Receiver {
    pub base_url: String,
    pub spans: Arc<Mutex<Vec<Span>>>,
    /// Each request's resource attributes, as `key=value`.
    pub resources: Arc<Mutex<Vec<String>>>,
}

type Kept = (Arc<Mutex<Vec<Span>>>, Arc<Mutex<Vec<String>>>);

pub async fn start() -> Receiver {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let resources = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state((spans.clone(), resources.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        base_url: format!("http://{addr}"),
        spans,
        resources,
    }
}

async fn traces(State((spans, resources)): State<Kept>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    let mut kept = spans.lock().unwrap();
    for resource in request.resource_spans {
        for kv in resource.resource.iter().flat_map(|r| &r.attributes) {
            let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
            if let Some(Any::StringValue(text)) = value {
                resources.lock().unwrap().push(format!("{}={text}", kv.key));
            }
        }
        for scope in resource.scope_spans {
            kept.extend(scope.spans);
        }
    }
    // An empty ExportTraceServiceResponse.
    Vec::new()
}

impl Receiver {
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

/// A span attribute's value, as text.
pub fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    Some(match value.value.as_ref()? {
        Any::StringValue(text) => text.clone(),
        Any::IntValue(n) => n.to_string(),
        Any::DoubleValue(x) => x.to_string(),
        Any::BoolValue(b) => b.to_string(),
        Any::ArrayValue(items) => items
            .values
            .iter()
            .filter_map(|v| match v.value.as_ref()? {
                Any::StringValue(text) => Some(text.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => return None,
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
