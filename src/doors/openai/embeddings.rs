//! `POST /v1/embeddings` in OpenAI's shape (contract section 13): RAG demos
//! call it before they chat. The mock answers deterministic unit vectors
//! (`providers/mock/embed.rs`); an OpenAI-compatible upstream gets the
//! request as it came. `encoding_format: "base64"` (what the official SDKs
//! ask for by default) is little-endian `f32`s in base64.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use super::error::OpenAiError;
use crate::config::ProviderKind;
use crate::doors::json::parse;
use crate::doors::{Admission, LimitedBody, Planned};
use crate::error::ApiError;
use crate::generation::{EmbedRequest, GenRequest};
use crate::state::AppState;

/// Inputs one request may embed at most (OpenAI's own limit).
const MAX_INPUTS: usize = 2048;
/// The longest vector a request may ask for.
const MAX_DIMENSIONS: u64 = 8192;

pub async fn create(
    State(app): State<AppState>,
    admission: Admission,
    LimitedBody(body): LimitedBody,
) -> Result<Response, OpenAiError> {
    let raw = parse(&body)?;
    let model = match raw.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(model)) => Some(model.clone()),
        Some(_) => return Err(ApiError::invalid("model", "`model` must be a string").into()),
    };
    let input = inputs(raw.get("input"))?;
    let base64 = match raw.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(format)) if format == "float" => false,
        Some(Value::String(format)) if format == "base64" => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "encoding_format",
                "`encoding_format` must be \"float\" or \"base64\"",
            )
            .into())
        }
    };
    let dimensions = match raw.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(n) => match n.as_u64() {
            Some(n @ 1..=MAX_DIMENSIONS) => Some(n as usize),
            _ => {
                return Err(ApiError::invalid(
                    "dimensions",
                    format!("`dimensions` must be a whole number from 1 to {MAX_DIMENSIONS}"),
                )
                .into())
            }
        },
    };
    let planned = Planned::new(
        &app,
        &admission.tally,
        model.as_deref(),
        GenRequest::default(),
    )?;
    let route = planned.route;
    match route.kind {
        ProviderKind::Mock | ProviderKind::Openai => {}
        ProviderKind::Anthropic | ProviderKind::Ollama | ProviderKind::Replay => {
            return Err(ApiError::invalid(
                "model",
                format!("model `{}` has no embeddings in sluice (only mock and OpenAI-compatible models do)", route.name),
            )
            .into())
        }
    }
    let embedded = route
        .provider
        .embed(EmbedRequest {
            input,
            dimensions,
            raw,
        })
        .await
        .map_err(ApiError::from)?;
    let data: Vec<Value> = embedded
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match base64 {
                true => Value::from(encoded(vector)),
                false => json!(vector),
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": route.name,
        "usage": {"prompt_tokens": embedded.prompt_tokens, "total_tokens": embedded.prompt_tokens},
    }))
    .into_response())
}

/// `input` as texts: a string, an array of strings, or token arrays (whose
/// ids stand for their text to the mock).
fn inputs(input: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "input",
            "`input` must be a string, an array of strings, or an array of token arrays",
        )
    };
    let texts = match input {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("input", "missing field `input`"))
        }
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ApiError::invalid("input", "`input` must not be empty"))
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_u64) => vec![tokens(items)],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Array(ids) if ids.iter().all(Value::is_u64) => Ok(tokens(ids)),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    if texts.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!("`input` may hold at most {MAX_INPUTS} items"),
        ));
    }
    Ok(texts)
}

fn tokens(ids: &[Value]) -> String {
    ids.iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Little-endian `f32`s in base64, as OpenAI encodes them.
fn encoded(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
